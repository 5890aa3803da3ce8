"""Build the aircast pipeline definition from aircast settings, and load ``get_pipeline`` modules.

Shared by the ``aircast pipeline`` commands, ``run-pipeline`` and the local runner.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aircast.lake_paths import curated_uri

DEFAULT_MODULE = "pipelines.aircast.pipeline"


class PipelineArgumentError(ValueError):
    """Arguments ``get_pipeline`` does not accept; the message lists the ones it does."""


def load_get_pipeline(module_name: str = DEFAULT_MODULE) -> Callable[..., Any]:
    """``get_pipeline`` of a pipeline module (``pipelines.aircast.pipeline``)."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise PipelineArgumentError(f"cannot import pipeline module {module_name!r}: {exc}") from exc
    func = getattr(module, "get_pipeline", None)
    if func is None:
        raise PipelineArgumentError(f"module {module_name!r} has no get_pipeline function")
    return func


def accepted_arguments(get_pipeline: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(get_pipeline).parameters)


def check_arguments(get_pipeline: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Reject unknown or missing arguments with a message naming the accepted ones (not a TypeError)."""
    params = accepted_arguments(get_pipeline)
    unknown = sorted(set(kwargs) - set(params))
    accepted = ", ".join(params)
    if unknown:
        raise PipelineArgumentError(f"get_pipeline does not accept {', '.join(unknown)}; accepted arguments: {accepted}")
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in kwargs]
    if missing:
        raise PipelineArgumentError(f"get_pipeline needs {', '.join(missing)}; accepted arguments: {accepted}")


def pipeline_kwargs(settings: Any, pipeline_name: str | None = None) -> dict[str, Any]:
    """``get_pipeline`` arguments that follow from aircast settings."""
    name = pipeline_name or settings.pipeline_name
    return {
        "region": settings.region,
        "role": settings.role_arn,
        "default_bucket": settings.artifacts_bucket,
        "default_bucket_prefix": f"pipelines/{name}",
        "pipeline_name": name,
        "model_package_group_name": settings.model_package_group,
        "input_data_uri": curated_uri(settings, "hourly"),
        "endpoint_name": settings.endpoint_name,
        "tags": [{"Key": "project", "Value": "aircast"}],
        **({"deploy_function_arn": settings.deploy_function_arn} if getattr(settings, "deploy_function_arn", "")
           else {}),
    }


def build_definition(settings: Any, pipeline_name: str | None = None) -> tuple[str, str]:
    """(definition JSON, the S3 prefix the scripts must be uploaded under) for these settings."""
    kwargs = pipeline_kwargs(settings, pipeline_name)
    pipeline = load_get_pipeline()(**kwargs)
    definition = pipeline.definition()
    quiet_sdk_logging()
    return definition, kwargs["default_bucket_prefix"]


def quiet_sdk_logging() -> None:
    """The SDK configures the root logger at INFO on import (``sagemaker.core.experiments._metrics``) and
    sets DEBUG on some of its own loggers; keep both out of aircast's output once the definition is built."""
    logging.getLogger().setLevel(logging.WARNING)
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] == "sagemaker":
            logging.getLogger(name).setLevel(logging.ERROR)
