"""Local SageMaker endpoints (to be filled in by its issue)."""

from __future__ import annotations


class EndpointsAPI:
    """Mixin of LocalSageMakerClient."""
