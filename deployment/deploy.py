"""Deploy a registered model package to a real-time endpoint, as SageMaker does.

Every function takes boto3-shaped clients (boto3 on AWS, ``infra.local`` stand-ins locally), so
the deploy Lambda, the pipeline's Deploy step and ``aircast endpoint deploy`` share one path:

model package (an exact ARN or version — never "the latest") → ``create_model`` →
``create_endpoint_config`` (production variants, weights, data capture) → ``create_endpoint`` when
the endpoint is new, else ``update_endpoint`` with a blue/green ``DeploymentConfig`` and the
rollback alarms (``put_metric_alarm``) in ``AutoRollbackConfiguration``.
A/B: :func:`create_ab_endpoint_config` + :func:`set_variant_weights`; multi-model:
:func:`create_multi_model_endpoint`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from deployment.policy import DeploymentPolicy, deployment_config, rollback_alarms
from deployment.validation import validate_production_variants

DEFAULT_VARIANT = "AllTraffic"
_PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/([^/]+)/(\d+)$")


class DeploymentError(RuntimeError):
    """A deployment that cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class DeploymentResult:
    """What :func:`deploy_model_package` did."""

    endpoint_name: str
    model_package_arn: str
    model_name: str
    endpoint_config_name: str
    action: str  # "created" | "updating" | "unchanged" | "in progress"
    deployment_config: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        status = {"created": "deployed", "unchanged": "deployed"}.get(self.action, "deploying")
        return {"status": status,
                "action": self.action, "endpoint_name": self.endpoint_name,
                "model_package_arn": self.model_package_arn, "model_name": self.model_name,
                "endpoint_config_name": self.endpoint_config_name, "deployment_config": self.deployment_config}


def _error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _not_found(exc: ClientError) -> bool:
    message = exc.response.get("Error", {}).get("Message", "")
    return _error_code(exc) in ("ValidationException", "ResourceNotFound") and "Could not find" in message


def resolve_model_package(sm_client: Any, package: str | int, group: str | None = None) -> dict[str, Any]:
    """``describe_model_package`` of an exact package: a full ARN, or a version number of ``group``.

    "latest" is refused on purpose: a deployment names what it deploys.
    """
    text = str(package).strip()
    if text.lower() in ("latest", "", "none"):
        raise DeploymentError("name the model package to deploy by ARN or version number; 'latest' is not accepted")
    if text.isdigit():
        if not group:
            raise DeploymentError(f"version {text} needs the model package group name")
        group_arn = sm_client.describe_model_package_group(ModelPackageGroupName=group)["ModelPackageGroupArn"]
        text = group_arn.replace(":model-package-group/", ":model-package/") + f"/{int(text)}"
    elif not _PACKAGE_ARN.match(text):
        raise DeploymentError(f"{text!r} is neither a model package ARN "
                              "(arn:aws:sagemaker:REGION:ACCOUNT:model-package/GROUP/VERSION) nor a version number")
    try:
        return sm_client.describe_model_package(ModelPackageName=text)
    except ClientError as exc:
        raise DeploymentError(f"model package {text} not found: {exc.response['Error'].get('Message', exc)}") from None


def _suffix() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + f"{int(time.time() * 1000) % 1000:03d}"


def resource_name(endpoint_name: str, version: int | str, suffix: str) -> str:
    """``<endpoint>-v<version>-<suffix>`` trimmed to SageMaker's 63 characters."""
    tail = f"-v{version}-{suffix}"
    return endpoint_name[: 63 - len(tail)].rstrip("-") + tail


def endpoint_exists(sm_client: Any, endpoint_name: str) -> dict[str, Any] | None:
    """``describe_endpoint`` or None when the endpoint does not exist."""
    try:
        return sm_client.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise


def endpoint_packages(sm_client: Any, desc: Mapping[str, Any]) -> dict[str, str | None]:
    """Model package ARNs behind an endpoint: ``serving`` (current config) and ``pending`` (a deployment in flight)."""

    def package_of(config_name: str | None) -> str | None:
        if not config_name:
            return None
        try:
            cfg = sm_client.describe_endpoint_config(EndpointConfigName=config_name)
            model = sm_client.describe_model(ModelName=cfg["ProductionVariants"][0]["ModelName"])
        except ClientError:
            return None
        containers = [model.get("PrimaryContainer") or {}] + list(model.get("Containers") or [])
        return next((c["ModelPackageName"] for c in containers if c.get("ModelPackageName")), None)

    pending = desc.get("PendingDeploymentSummary") or {}
    return {"serving": package_of(desc.get("EndpointConfigName")), "pending": package_of(pending.get("EndpointConfigName"))}


def ensure_rollback_alarms(cw_client: Any, policy: DeploymentPolicy, endpoint_name: str,
                           variant_name: str = DEFAULT_VARIANT) -> list[str]:
    """Create (or update) the error-rate and latency alarms; returns their names."""
    names = []
    for alarm in rollback_alarms(policy, endpoint_name, variant_name):
        cw_client.put_metric_alarm(**alarm)
        names.append(alarm["AlarmName"])
    return names


def create_model_from_package(sm_client: Any, package: Mapping[str, Any], model_name: str, role_arn: str,
                              environment: Mapping[str, str] | None = None) -> str:
    """``create_model`` from a versioned package (``ModelPackageName``), with optional container env overrides."""
    container: dict[str, Any] = {"ModelPackageName": package["ModelPackageArn"]}
    if environment:
        container["Environment"] = dict(environment)
    sm_client.create_model(ModelName=model_name, PrimaryContainer=container, ExecutionRoleArn=role_arn)
    return model_name


def deploy_model_package(sm_client: Any, model_package_arn_or_version: str | int, endpoint_name: str,
                         policy: DeploymentPolicy, *, role_arn: str, cw_client: Any | None = None,
                         model_package_group: str | None = None, variant_name: str = DEFAULT_VARIANT,
                         environment: Mapping[str, str] | None = None,
                         data_capture_uri: str | None = None, skip_if_current: bool = False) -> DeploymentResult:
    """Deploy exactly one Approved model package to ``endpoint_name``.

    New endpoint → ``create_endpoint``. Existing → blue/green ``update_endpoint`` with the policy's
    ``DeploymentConfig``; with ``cw_client`` the rollback alarms are created first and named in
    ``AutoRollbackConfiguration``. Returns at once; the endpoint's status shows the progress.
    ``environment`` overrides container variables (e.g. the local chaos hook ``AIRCAST_FAULT_INJECTION``).
    With ``skip_if_current`` a package the endpoint already serves (or is deploying) is not deployed
    again (action ``unchanged`` / ``in progress``): approval events may arrive more than once, and the
    pipeline's Deploy step follows the approval event of a package registered as Approved.
    Raises :class:`DeploymentError` for a package that is not Approved or an endpoint mid-update.
    """
    package = resolve_model_package(sm_client, model_package_arn_or_version, model_package_group)
    arn = package["ModelPackageArn"]
    status = package.get("ModelApprovalStatus")
    if status != "Approved":
        raise DeploymentError(f"model package {arn} is {status}, not Approved; approve it before deploying")
    current = endpoint_exists(sm_client, endpoint_name)
    if skip_if_current and current is not None:
        packages = endpoint_packages(sm_client, current)
        if arn == packages["pending"] or (arn == packages["serving"] and current["EndpointStatus"] != "Updating"):
            action = "in progress" if arn == packages["pending"] else "unchanged"
            config = (current.get("PendingDeploymentSummary") or {}).get("EndpointConfigName") \
                if action == "in progress" else current["EndpointConfigName"]
            return DeploymentResult(endpoint_name, arn, "", config, action, None)
    if current is not None and current["EndpointStatus"] != "InService":
        raise DeploymentError(f"endpoint {endpoint_name} is {current['EndpointStatus']}; "
                              "wait until it is InService before deploying again")
    version = package.get("ModelPackageVersion", arn.rsplit("/", 1)[-1])
    suffix = _suffix()
    model_name = resource_name(endpoint_name, version, suffix)
    config_name = model_name
    create_model_from_package(sm_client, package, model_name, role_arn, environment)
    variants = [{"VariantName": variant_name, "ModelName": model_name, "InitialInstanceCount": policy.instance_count,
                 "InstanceType": policy.instance_type, "InitialVariantWeight": 1.0}]
    validate_production_variants(variants)
    config_kwargs: dict[str, Any] = {"EndpointConfigName": config_name, "ProductionVariants": variants}
    if data_capture_uri:
        config_kwargs["DataCaptureConfig"] = {
            "EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": data_capture_uri,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}}
    sm_client.create_endpoint_config(**config_kwargs)
    if current is None:
        sm_client.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=config_name)
        return DeploymentResult(endpoint_name, arn, model_name, config_name, "created", None)
    alarms = ensure_rollback_alarms(cw_client, policy, endpoint_name, variant_name) if cw_client is not None else []
    config = deployment_config(policy, alarms, policy.instance_count)
    sm_client.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=config_name, DeploymentConfig=config)
    return DeploymentResult(endpoint_name, arn, model_name, config_name, "updating", config)


def wait_for_endpoint(sm_client: Any, endpoint_name: str, timeout_s: float = 600.0,
                      poll_s: float = 0.25) -> dict[str, Any]:
    """Poll until the endpoint is InService or Failed (after creation, update or rollback); returns describe."""
    deadline = time.monotonic() + timeout_s
    while True:
        desc = sm_client.describe_endpoint(EndpointName=endpoint_name)
        if desc["EndpointStatus"] in ("InService", "Failed", "UpdateRollbackFailed"):
            return desc
        if time.monotonic() > deadline:
            raise DeploymentError(f"endpoint {endpoint_name} still {desc['EndpointStatus']} after {timeout_s:.0f} s")
        time.sleep(poll_s)


# ---------------------------------------------------------------------------- A/B and multi-model


def create_ab_endpoint_config(sm_client: Any, config_name: str, variants: Sequence[Mapping[str, Any]],
                              instance_type: str = "ml.m5.large") -> str:
    """An endpoint config with several production variants, e.g.
    ``[{"VariantName": "A", "ModelName": m1, "Weight": 0.8}, {"VariantName": "B", "ModelName": m2, "Weight": 0.2}]``."""
    production = [{"VariantName": v["VariantName"], "ModelName": v["ModelName"],
                   "InitialInstanceCount": int(v.get("InstanceCount", 1)), "InstanceType": instance_type,
                   "InitialVariantWeight": float(v.get("Weight", 1.0))} for v in variants]
    validate_production_variants(production)
    sm_client.create_endpoint_config(EndpointConfigName=config_name, ProductionVariants=production)
    return config_name


def set_variant_weights(sm_client: Any, endpoint_name: str, weights: Mapping[str, float]) -> None:
    """Shift A/B traffic without redeploying (``update_endpoint_weights_and_capacities``)."""
    if not weights:
        raise DeploymentError("give at least one VARIANT=WEIGHT")
    sm_client.update_endpoint_weights_and_capacities(
        EndpointName=endpoint_name,
        DesiredWeightsAndCapacities=[{"VariantName": k, "DesiredWeight": float(w)} for k, w in weights.items()])


def create_multi_model_endpoint(sm_client: Any, endpoint_name: str, model_data_prefix: str, image: str,
                                role_arn: str, instance_type: str = "ml.m5.large") -> str:
    """One endpoint serving every ``model.tar.gz`` under an S3 prefix, chosen per request by ``TargetModel``."""
    if not model_data_prefix.startswith("s3://") or not model_data_prefix.endswith("/"):
        raise DeploymentError(f"model data prefix {model_data_prefix!r} must be an s3:// URI ending with '/'")
    suffix = _suffix()
    model_name = resource_name(endpoint_name, "mme", suffix)
    sm_client.create_model(ModelName=model_name, ExecutionRoleArn=role_arn,
                           PrimaryContainer={"Image": image, "Mode": "MultiModel", "ModelDataUrl": model_data_prefix})
    sm_client.create_endpoint_config(EndpointConfigName=model_name, ProductionVariants=[{
        "VariantName": DEFAULT_VARIANT, "ModelName": model_name, "InitialInstanceCount": 1,
        "InstanceType": instance_type, "InitialVariantWeight": 1.0}])
    sm_client.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=model_name)
    return model_name
