"""One place that hands out AWS-shaped clients for the configured backend.

``aws``: real boto3 clients. ``local``: the embedded stand-ins in ``infra/local``,
with the same method names and request/response shapes, except
``sagemaker-runtime``, which is a real boto3 client pointed at the local endpoint host.
"""

from __future__ import annotations

from typing import Any

from aircast.settings import Settings


def get_client(service: str, settings: Settings) -> Any:
    """Return a boto3-shaped client for ``service`` ("s3", "sagemaker", "sagemaker-runtime", "cloudwatch", "logs", "events", "glue")."""
    if settings.backend == "aws":
        import boto3

        return boto3.client(service, region_name=settings.region)
    if service == "s3":
        from infra.local.s3 import LocalS3Client

        return LocalS3Client(settings.s3_root)
    if service == "sagemaker-runtime":
        import boto3
        from botocore.config import Config

        return boto3.client(
            "sagemaker-runtime", region_name=settings.region, endpoint_url=settings.endpoint_url,
            aws_access_key_id="local", aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 1}, read_timeout=120),
        )
    if service == "sagemaker":
        from infra.local.sagemaker.client import LocalSageMakerClient

        return LocalSageMakerClient(settings)
    if service == "cloudwatch":
        from infra.local.sagemaker.cloudwatch import LocalCloudWatchClient

        return LocalCloudWatchClient(settings)
    if service == "events":
        from infra.local.eventbridge.client import LocalEventsClient

        return LocalEventsClient(settings)
    if service == "logs":
        from infra.local.logs import LocalLogsClient

        return LocalLogsClient(settings.data_dir)
    if service == "glue":
        from infra.local.glue.catalog import LocalGlueClient

        return LocalGlueClient(settings)
    raise ValueError(f"no local stand-in for AWS service {service!r}")
