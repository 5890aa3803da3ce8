"""Deploy a registered model package to a real-time endpoint, as SageMaker does.

Every function takes boto3-shaped clients (boto3 on AWS, ``infra.local`` stand-ins locally), so
the deploy Lambda, the pipeline's Deploy step and ``aircast endpoint deploy`` share one path:

model package (an exact ARN or version — never "the latest") → ``create_model`` →
``create_endpoint_config`` (production variants, weights, data capture) → ``create_endpoint`` when
the endpoint is new, else ``update_endpoint`` with a blue/green ``DeploymentConfig`` and the
rollback alarms (``put_metric_alarm``) in ``AutoRollbackConfiguration``.

Deploys of the same package may overlap (the approval rule and the pipeline's Deploy step both fire
when a package registers as Approved): model and endpoint config names are derived from what they
contain (``<endpoint>-v<version>-<hash>``), so both deploys name the same resources, and a deploy
that loses the race to ``create_*``/``update_endpoint`` finds the other one's work and reports it
(``in progress``) instead of failing or leaving orphans.

Several models behind one endpoint: production variants (:func:`create_multi_variant_endpoint`),
chosen per request with ``TargetVariant`` or shared by weight (:func:`set_variant_weights`).
SageMaker's multi-model endpoints (``TargetModel``) need a container with the multi-model label,
which the built-in DeepAR does not have.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from aircast.poll import WaitTimeout, poll_until
from awsrules.sagemaker_endpoints import validate_production_variants
from deployment.policy import DeploymentPolicy, alarm_names, deployment_config, rollback_alarms

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


def _already_exists(exc: ClientError) -> bool:
    # SageMaker: 'Cannot create already existing model "arn:..."' (endpoint configuration, endpoint alike)
    return _error_code(exc) == "ValidationException" and "already existing" in exc.response["Error"].get("Message", "")


def _in_progress(exc: ClientError) -> bool:
    # SageMaker: 'Cannot update in-progress endpoint "arn:..."'
    return _error_code(exc) == "ValidationException" and "in-progress" in exc.response["Error"].get("Message", "")


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


def content_hash(*parts: Any) -> str:
    """Ten hex digits naming what a model/endpoint config contains (same content → same name)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def resource_name(endpoint_name: str, version: int | str, suffix: str) -> str:
    """``<endpoint>-v<version>-<suffix>`` trimmed to SageMaker's 63 characters."""
    tail = f"-v{version}-{suffix}"
    return endpoint_name[: 63 - len(tail)].rstrip("-") + tail


def data_capture_destination(base_uri: str, endpoint_name: str, config_name: str) -> str:
    """Data Capture destination of one endpoint config: ``<base>/<endpoint>/<config>``.

    SageMaker writes each record under ``<destination>/<endpoint>/<variant>/YYYY/MM/DD/HH/``; its
    records carry no model identity, so a destination per endpoint config is what tells the drift
    monitor which config (and so which model package) answered, also while blue and green both serve.
    """
    return f"{base_uri.rstrip('/')}/{endpoint_name}/{config_name}"


def endpoint_exists(sm_client: Any, endpoint_name: str) -> dict[str, Any] | None:
    """``describe_endpoint`` or None when the endpoint does not exist."""
    try:
        return sm_client.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise


def config_package(sm_client: Any, config_name: str | None) -> str | None:
    """The model package an endpoint config serves (its first variant's model), or None."""
    if not config_name:
        return None
    try:
        cfg = sm_client.describe_endpoint_config(EndpointConfigName=config_name)
        model = sm_client.describe_model(ModelName=cfg["ProductionVariants"][0]["ModelName"])
    except ClientError:
        return None
    containers = [model.get("PrimaryContainer") or {}] + list(model.get("Containers") or [])
    return next((c["ModelPackageName"] for c in containers if c.get("ModelPackageName")), None)


def endpoint_packages(sm_client: Any, desc: Mapping[str, Any]) -> dict[str, str | None]:
    """Model package ARNs behind an endpoint: ``serving`` (current config) and ``pending`` (a deployment in flight)."""
    pending = desc.get("PendingDeploymentSummary") or {}
    return {"serving": config_package(sm_client, desc.get("EndpointConfigName")),
            "pending": config_package(sm_client, pending.get("EndpointConfigName"))}


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
    """``create_model`` from a versioned package (``ModelPackageName``), with optional container env overrides.

    A model of that name that exists already is the one an overlapping deploy of the same content made."""
    container: dict[str, Any] = {"ModelPackageName": package["ModelPackageArn"]}
    if environment:
        container["Environment"] = dict(environment)
    _create_once(sm_client.create_model, ModelName=model_name, PrimaryContainer=container, ExecutionRoleArn=role_arn)
    return model_name


def _create_once(create: Any, **request: Any) -> bool:
    """Call a ``create_*``; False when the resource exists already (made by an overlapping deploy)."""
    try:
        create(**request)
    except ClientError as exc:
        if _already_exists(exc):
            return False
        raise
    return True


def _deployment_of_package(sm_client: Any, endpoint_name: str, arn: str) -> DeploymentResult | None:
    """What an overlapping deploy of ``arn`` has done to the endpoint, or None when it serves something else."""
    current = endpoint_exists(sm_client, endpoint_name)
    if current is None:
        return None
    packages = endpoint_packages(sm_client, current)
    if arn == packages["pending"]:
        config = (current.get("PendingDeploymentSummary") or {}).get("EndpointConfigName", "")
        return DeploymentResult(endpoint_name, arn, "", config, "in progress", None)
    if arn == packages["serving"]:
        action = "unchanged" if current["EndpointStatus"] == "InService" else "in progress"
        return DeploymentResult(endpoint_name, arn, "", current["EndpointConfigName"], action, None)
    return None


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
    pipeline's Deploy step follows the approval event of a package registered as Approved. Overlapping
    deploys of one package are safe: they share content-named resources and the one that loses the
    race to SageMaker reports the other's deployment. ``data_capture_uri`` is the base of the Data
    Capture destination (:func:`data_capture_destination`).
    Raises :class:`DeploymentError` for a package that is not Approved or an endpoint mid-update with
    another package.
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
            action = "in progress" if arn == packages["pending"] or current["EndpointStatus"] != "InService" \
                else "unchanged"
            config = (current.get("PendingDeploymentSummary") or {}).get("EndpointConfigName") \
                if arn == packages["pending"] else current["EndpointConfigName"]
            return DeploymentResult(endpoint_name, arn, "", config, action, None)
    if current is not None and current["EndpointStatus"] != "InService":
        raise DeploymentError(f"endpoint {endpoint_name} is {current['EndpointStatus']}; "
                              "wait until it is InService before deploying again")
    version = package.get("ModelPackageVersion", arn.rsplit("/", 1)[-1])
    config = None
    if current is not None:  # before anything is created: a policy SageMaker would refuse creates nothing
        config = deployment_config(policy, alarm_names(endpoint_name, variant_name) if cw_client is not None else [],
                                   policy.instance_count)
    model_name = resource_name(endpoint_name, version, content_hash(arn, role_arn, dict(environment or {})))
    variants = [{"VariantName": variant_name, "ModelName": model_name, "InitialInstanceCount": policy.instance_count,
                 "InstanceType": policy.instance_type, "InitialVariantWeight": 1.0}]
    validate_production_variants(variants)
    config_name = resource_name(endpoint_name, version, content_hash(model_name, variants, data_capture_uri))
    create_model_from_package(sm_client, package, model_name, role_arn, environment)
    config_kwargs: dict[str, Any] = {"EndpointConfigName": config_name, "ProductionVariants": variants}
    if data_capture_uri:
        config_kwargs["DataCaptureConfig"] = {
            "EnableCapture": True, "InitialSamplingPercentage": 100,
            "DestinationS3Uri": data_capture_destination(data_capture_uri, endpoint_name, config_name),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}}
    _create_once(sm_client.create_endpoint_config, **config_kwargs)
    if current is None:
        try:
            sm_client.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=config_name)
        except ClientError as exc:
            if not _already_exists(exc):
                raise
            return _lost_race(sm_client, endpoint_name, arn)
        return DeploymentResult(endpoint_name, arn, model_name, config_name, "created", None)
    if cw_client is not None:
        ensure_rollback_alarms(cw_client, policy, endpoint_name, variant_name)
    try:
        sm_client.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=config_name, DeploymentConfig=config)
    except ClientError as exc:
        if not _in_progress(exc):
            raise
        return _lost_race(sm_client, endpoint_name, arn)
    return DeploymentResult(endpoint_name, arn, model_name, config_name, "updating", config)


def _lost_race(sm_client: Any, endpoint_name: str, arn: str) -> DeploymentResult:
    """Another deploy reached the endpoint first: fine when it deploys ``arn`` too, refused otherwise."""
    result = _deployment_of_package(sm_client, endpoint_name, arn)
    if result is not None:
        return result
    desc = endpoint_exists(sm_client, endpoint_name) or {}
    raise DeploymentError(f"endpoint {endpoint_name} is {desc.get('EndpointStatus', 'changing')} with another "
                          f"deployment; deploy {arn} again when it is InService")


def wait_for_endpoint(sm_client: Any, endpoint_name: str, timeout_s: float = 600.0,
                      poll_s: float = 0.25) -> dict[str, Any]:
    """Poll until the endpoint is InService or Failed (after creation, update or rollback); returns describe."""
    last: dict[str, Any] = {}

    def settled() -> dict[str, Any] | None:
        last.clear()
        last.update(sm_client.describe_endpoint(EndpointName=endpoint_name))  # the latest answer only
        return last if last["EndpointStatus"] in ("InService", "Failed", "UpdateRollbackFailed") else None

    try:
        return poll_until(settled, timeout_s, poll_s, f"endpoint {endpoint_name}")
    except WaitTimeout:
        raise DeploymentError(f"endpoint {endpoint_name} still {last['EndpointStatus']} after {timeout_s:.0f} s") \
            from None


# ---------------------------------------------------------------------------- A/B and several models


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


#: SageMaker's limit of production variants per endpoint config
MAX_VARIANTS = 10


def create_multi_variant_endpoint(sm_client: Any, endpoint_name: str, packages: Mapping[str, str | int], *,
                                  role_arn: str, model_package_group: str | None = None,
                                  weights: Mapping[str, float] | None = None, instance_type: str = "ml.m5.large",
                                  instance_count: int = 1) -> str:
    """Several model packages behind one endpoint, one production variant each (``{variant: package}``).

    A client picks a model with ``TargetVariant`` (``invoke_endpoint(..., TargetVariant="sensor-a")``);
    requests without one are shared by ``weights`` (default equal). This is how several built-in DeepAR
    models share an endpoint: SageMaker's multi-model endpoints need a container with the multi-model
    label, which DeepAR's does not have. At most 10 variants (SageMaker's limit). Returns the config name.
    """
    if not 1 <= len(packages) <= MAX_VARIANTS:
        raise DeploymentError(f"give 1 to {MAX_VARIANTS} VARIANT=PACKAGE pairs (SageMaker's limit of production "
                              f"variants per endpoint), not {len(packages)}")
    production = []
    for variant, ref in packages.items():
        package = resolve_model_package(sm_client, ref, model_package_group)
        if package.get("ModelApprovalStatus") != "Approved":
            raise DeploymentError(f"model package {package['ModelPackageArn']} is {package.get('ModelApprovalStatus')}, "
                                  "not Approved; approve it before deploying")
        version = package.get("ModelPackageVersion", package["ModelPackageArn"].rsplit("/", 1)[-1])
        model = resource_name(endpoint_name, version, content_hash(package["ModelPackageArn"], role_arn, {}))
        create_model_from_package(sm_client, package, model, role_arn)
        production.append({"VariantName": variant, "ModelName": model, "InitialInstanceCount": instance_count,
                           "InstanceType": instance_type,
                           "InitialVariantWeight": float((weights or {}).get(variant, 1.0))})
    validate_production_variants(production)
    config = resource_name(endpoint_name, "s", content_hash(production))
    _create_once(sm_client.create_endpoint_config, EndpointConfigName=config, ProductionVariants=production)
    if endpoint_exists(sm_client, endpoint_name) is None:
        sm_client.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=config)
    else:
        sm_client.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=config)
    return config
