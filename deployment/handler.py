"""The deploy Lambda (``aircast-deploy``): approval events and the pipeline's Deploy step.

- EventBridge "SageMaker Model Package State Change" with ``ModelApprovalStatus`` Approved →
  deploy exactly that package (``detail.ModelPackageArn``) with the configured policy.
  Rejected or PendingManualApproval → nothing (a rejection never redeploys anything).
- Direct invocation ``{"model_package_arn": ..., "endpoint_name": ...}`` from the pipeline's
  Deploy step → deploy only when that package is Approved, else ``{"status": "awaiting approval"}``.

The backend comes from the environment (``AIRCAST_BACKEND``: ``aws`` uses boto3, the default
``local`` the embedded stand-ins); the policy from ``AIRCAST_DEPLOY_*`` settings.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aircast.settings import Settings, load_settings
from awsrules.sagemaker_endpoints import DeploymentConfigError
from deployment.deploy import DeploymentError, deploy_model_package, resolve_model_package
from deployment.policy import DeploymentPolicy

log = logging.getLogger("aircast.deploy")

EVENT_DETAIL_TYPE = "SageMaker Model Package State Change"


def clients(settings: Settings) -> tuple[Any, Any]:
    """(sagemaker, cloudwatch) clients for the backend."""
    from aircast.clients import get_client

    return get_client("sagemaker", settings), get_client("cloudwatch", settings)


def _deploy(settings: Settings, package_arn: str, endpoint_name: str) -> dict[str, Any]:
    sm, cw = clients(settings)
    result = deploy_model_package(sm, package_arn, endpoint_name, DeploymentPolicy.from_settings(settings),
                                  role_arn=settings.role_arn, cw_client=cw,
                                  data_capture_uri=f"s3://{settings.artifacts_bucket}/datacapture",
                                  skip_if_current=True)
    log.info("deploying %s to %s (%s)", package_arn, endpoint_name, result.action)
    return result.as_dict()


def handle(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The handler's logic with explicit settings (tests call this)."""
    if event.get("detail-type") == EVENT_DETAIL_TYPE:
        detail = event.get("detail") or {}
        if isinstance(detail, str):
            detail = json.loads(detail)
        status = detail.get("ModelApprovalStatus")
        arn = detail.get("ModelPackageArn")
        if status != "Approved":
            return {"status": "ignored", "reason": f"model package {arn} is {status}; only Approved deploys",
                    "model_package_arn": arn}
        if not arn:
            raise ValueError("approval event without detail.ModelPackageArn")
        return _deploy(settings, arn, settings.endpoint_name)
    if "model_package_arn" in event:
        arn = event["model_package_arn"]
        endpoint = event.get("endpoint_name") or settings.endpoint_name
        sm, _ = clients(settings)
        status = resolve_model_package(sm, arn).get("ModelApprovalStatus")
        if status != "Approved":
            return {"status": "awaiting approval", "model_package_arn": arn, "model_approval_status": status,
                    "endpoint_name": endpoint}
        return _deploy(settings, arn, endpoint)
    raise ValueError("unrecognised event: expected a 'SageMaker Model Package State Change' event or "
                     "{'model_package_arn': ..., 'endpoint_name': ...}")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """AWS Lambda entry point (also ``infra.local.awslambda.invoke("aircast-deploy", event)``)."""
    settings = load_settings()
    try:
        return handle(event, settings)
    except (DeploymentError, DeploymentConfigError) as exc:
        # a deployment that cannot proceed (or a policy SageMaker would refuse) is reported, not retried
        # forever by EventBridge
        log.warning("deployment refused: %s", exc)
        return {"status": "refused", "reason": str(exc)}
