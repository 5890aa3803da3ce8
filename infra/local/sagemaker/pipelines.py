"""Local SageMaker pipelines (to be filled in by its issue)."""

from __future__ import annotations


class PipelinesAPI:
    """Mixin of LocalSageMakerClient."""
