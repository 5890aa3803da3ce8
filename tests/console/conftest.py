"""The console tests reuse the pipeline definition fixture."""

from tests.pipeline.conftest import definition  # noqa: F401
