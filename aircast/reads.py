"""Reads the CLI and the console share: executions, model packages and their evaluation.

Everything goes through boto3-shaped clients with AWS's method names and documented
parameters, so the same functions read the local stand-ins and a real account.
"""

from __future__ import annotations

import json
from typing import Any

from aircast.settings import Settings

#: the approval statuses of the Model Registry
APPROVAL_STATUSES = ("PendingManualApproval", "Approved", "Rejected")


class NotFound(LookupError):
    """A pipeline, execution or package that does not exist; the message says what to do."""


def _error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def pipeline_executions(sm: Any, pipeline_name: str, max_results: int = 100) -> list[dict[str, Any]]:
    """``list_pipeline_executions`` newest first; NotFound when the pipeline does not exist yet."""
    from botocore.exceptions import ClientError

    try:
        resp = sm.list_pipeline_executions(PipelineName=pipeline_name, SortBy="CreationTime",
                                           SortOrder="Descending", MaxResults=max_results)
    except ClientError as exc:
        if _error_code(exc) in ("ResourceNotFound", "ValidationException"):
            raise NotFound(f"pipeline {pipeline_name} does not exist yet; run `aircast pipeline run`") from exc
        raise
    return resp["PipelineExecutionSummaries"]


def package_arn(settings: Settings, version_or_arn: str) -> str:
    """A version number of the configured group, or a model package ARN, → the ARN (ValueError otherwise)."""
    if version_or_arn.startswith("arn:"):
        return version_or_arn
    if not version_or_arn.isdigit() or int(version_or_arn) < 1:
        raise ValueError(f"expected a version number (1, 2, ...) or a model package ARN, got {version_or_arn!r}")
    return (f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:model-package/"
            f"{settings.model_package_group}/{int(version_or_arn)}")


def as_float(text: Any) -> float | None:
    """A metric value from a string property (None when absent or not a number)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def evaluation_uri(package: dict[str, Any]) -> str | None:
    """Where a package's ``evaluation.json`` is (its model quality statistics)."""
    return package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def read_s3_bytes(s3: Any, uri: str) -> bytes:
    bucket, key = split_s3_uri(uri)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def read_s3_json(s3: Any, uri: str) -> Any:
    return json.loads(read_s3_bytes(s3, uri))
