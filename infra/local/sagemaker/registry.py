"""Local SageMaker registry (to be filled in by its issue)."""

from __future__ import annotations


class ModelRegistryAPI:
    """Mixin of LocalSageMakerClient."""
