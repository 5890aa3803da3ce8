"""One place that hands out AWS-shaped clients for the configured backend.

``aws``: real boto3 clients. ``local``: real boto3 clients too, answered in-process by
the embedded stand-ins in ``infra/local`` (:func:`infra.local.core.local_client`), so every
request is validated against botocore's service model and errors are the service's
modeled exception classes on both backends; ``sagemaker-runtime`` is a real boto3 client
pointed at the local endpoint host, and ``events`` one pointed at the local event bus process while
it runs (EventBridge's JSON protocol, signed with the data dir's token), else answered in-process;
``glue`` one pointed at the local Glue service while it runs (its warm Spark session runs the jobs).
Local clients that can invoke a Lambda function (``lambda``, ``events``, ``sagemaker``) first make
sure aircast's functions exist on the local Lambda, as the CloudFormation stack creates them on AWS
(:mod:`aircast.local_wiring` says what aircast registers locally).
"""

from __future__ import annotations

from typing import Any

from aircast.settings import Settings


def get_client(service: str, settings: Settings) -> Any:
    """Return a boto3-shaped client for ``service`` ("s3", "sagemaker", "sagemaker-runtime", "cloudwatch", "logs",
    "events", "lambda", "glue")."""
    if settings.backend == "aws":
        import boto3

        return boto3.client(service, region_name=settings.region)
    from infra.local.core import local_client

    if service in ("lambda", "events", "sagemaker"):
        from aircast.local_wiring import register_local

        register_local(settings)

    if service == "s3":
        from infra.local.s3 import LocalS3Backend

        s3 = LocalS3Backend(settings.s3_root, settings.region)
        for bucket in (settings.lake_bucket, settings.artifacts_bucket):  # what the stack creates on AWS
            s3.ensure_bucket(bucket)
        return local_client("s3", s3, region=settings.region)
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

        return local_client("sagemaker", LocalSageMakerClient(settings), region=settings.region)
    if service == "cloudwatch":
        from infra.local.sagemaker.cloudwatch import LocalCloudWatchClient

        return local_client("cloudwatch", LocalCloudWatchClient(settings), region=settings.region)
    if service == "events":
        from aircast.local_wiring import event_bus_url, events_backend

        url = event_bus_url(settings)
        if url is not None:
            from infra.local.core.jsonserver import remote_client

            return remote_client("events", url, settings.data_dir, settings.region)
        return local_client("events", events_backend(settings), region=settings.region)
    if service == "lambda":
        from infra.local.awslambda import LocalLambdaBackend

        return local_client("lambda", LocalLambdaBackend(settings.data_dir, settings.region, settings.account_id),
                            region=settings.region)
    if service == "logs":
        from infra.local.logs import LocalLogsClient

        return local_client("logs", LocalLogsClient(settings.data_dir), region=settings.region)
    if service == "glue":
        from aircast import glue

        if glue.service_running(settings):  # the Glue service's warm session runs the jobs
            from infra.local.core.jsonserver import remote_client

            return remote_client("glue", glue.service_url(settings), settings.data_dir, settings.region)
        from infra.local.glue.client import LocalGlueClient  # runs execute in this process

        return local_client("glue", LocalGlueClient(glue.glue_config(settings)), region=settings.region)
    raise ValueError(f"no local stand-in for AWS service {service!r}")


def event_bus_running(settings: Settings) -> bool:
    """Whether this data dir's event bus process runs (its PID file names a live process of ours) and listens."""
    from aircast.local_wiring import event_bus_url

    return event_bus_url(settings) is not None


def deployment_history(settings: Settings, endpoint_name: str) -> list[dict[str, Any]]:
    """The local endpoint's deployment lines (``Time``, ``Message``), oldest first; none on AWS,
    where the same story is in the endpoint's EventBridge state-change events."""
    if settings.backend != "local":
        return []
    from infra.local.sagemaker.client import LocalSageMakerClient

    return LocalSageMakerClient(settings).deployment_history(EndpointName=endpoint_name)
