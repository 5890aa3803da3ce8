"""Local SageMaker endpoints: the control plane (models, endpoint configs, endpoints).

The control plane only records *desired state* in SQLite under the data dir
(``<data_dir>/sagemaker/endpoints.sqlite``); the endpoint host
(:mod:`infra.local.sagemaker.host`) reads it, loads the models, runs the
blue/green state machine and writes back progress, so ``describe_endpoint``
shows what the host is doing (``EndpointStatus``, variant weights,
``PendingDeploymentSummary`` with per-variant ``VariantStatus``, ``FailureReason``
after a rollback). Without a running host an endpoint stays ``Creating`` /
``Updating``, as on AWS while instances are provisioned.

Requests and responses use boto3's keyword names and shapes; bad requests
raise ``botocore.exceptions.ClientError`` with code ``ValidationException`` (or
``ResourceNotFound`` where AWS uses it), like the real client.
``describe_endpoint`` answers exactly AWS's members (the green fleet's share of traffic
shows in its variants' ``CurrentWeight``); the local-only deployment story (timestamped
lines of what the host did and why) is :meth:`EndpointsAPI.deployment_history`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from awsrules.sagemaker_endpoints import (
    MODEL_NAME_PATTERN,
    DeploymentConfigError,
    validate_deployment_config,
    validate_production_variants,
    validate_resource_name,
)
from infra.local.core.arns import sagemaker_arn
from infra.local.core.config import LocalConfig
from infra.local.core.errors import ServiceError
from infra.local.s3 import uri_to_path
from infra.local.sqlite import open_store

HISTORY_LIMIT = 100
DEFAULT_IMAGE = "local/deepar:1"
#: ECR repositories of the AWS images whose containers carry the multi-model label (SageMaker's
#: "Supported algorithms, frameworks, and instances for multi-model endpoints" page, CPU list);
#: the built-in DeepAR (``forecasting-deepar``) is not among them.
MULTI_MODEL_REPOSITORIES = frozenset({
    "sagemaker-xgboost", "knn", "linear-learner", "randomcutforest", "tensorflow-inference",
    "sagemaker-scikit-learn", "mxnet-inference", "pytorch-inference"})
MULTI_MODEL_LABEL = "com.amazonaws.sagemaker.capabilities.multi-models=true"


def image_repository(image: str) -> str:
    """``<registry>/<repository>:<tag>`` or ``@digest`` → ``repository``."""
    path = image.split("@", 1)[0]
    name = path.split("/", 1)[1] if "/" in path and "." in path.split("/", 1)[0] else path
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def guardrails_excluded(variants: list[Mapping[str, Any]], models: list[Mapping[str, Any]]) -> str | None:
    """Why an update of these variants cannot use deployment guardrails (the "Exclusions" page:
    Marketplace containers and Inf1 instances fall back to all at once without a final bake), or None."""
    for pv in variants:
        if str(pv.get("InstanceType", "")).startswith("ml.inf1."):
            return f"variant {pv['VariantName']} uses an Inf1 instance type ({pv['InstanceType']})"
    for model in models:
        container = model.get("ResolvedContainer", {})
        if ":aws-marketplace:" in str(container.get("ModelPackageArn", "")):
            return f"model {model['ModelName']} uses an AWS Marketplace container"
    return None

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS endpoint_configs (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alarms (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS metric_minutes (
    endpoint TEXT NOT NULL, variant TEXT NOT NULL, minute INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (endpoint, variant, minute)
);
"""


def _ts(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, tz=dt.UTC)


class EndpointStore:
    """SQLite-backed state shared by the control plane and the endpoint host (JSON documents)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "sagemaker" / "endpoints.sqlite"
        with open_store(self.path, _SCHEMA):
            pass

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): read-modify-write without lost updates."""
        with open_store(self.path, immediate=True) as conn:
            yield conn

    def get(self, table: str, name: str, conn: sqlite3.Connection | None = None) -> dict[str, Any] | None:
        if conn is not None:
            row = conn.execute(f"SELECT doc FROM {table} WHERE name = ?", (name,)).fetchone()
        else:
            with open_store(self.path) as own:
                row = own.execute(f"SELECT doc FROM {table} WHERE name = ?", (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    def all(self, table: str) -> list[dict[str, Any]]:
        with open_store(self.path) as conn:
            rows = conn.execute(f"SELECT doc FROM {table} ORDER BY name").fetchall()
        return [json.loads(r[0]) for r in rows]

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement (no write lock)."""
        with open_store(self.path) as conn:
            return [tuple(row) for row in conn.execute(sql, args).fetchall()]

    @staticmethod
    def put(conn: sqlite3.Connection, table: str, name: str, doc: Mapping[str, Any]) -> None:
        conn.execute(f"INSERT OR REPLACE INTO {table} (name, doc) VALUES (?, ?)", (name, json.dumps(doc)))

    @staticmethod
    def delete(conn: sqlite3.Connection, table: str, name: str) -> None:
        conn.execute(f"DELETE FROM {table} WHERE name = ?", (name,))


def add_history(endpoint: dict[str, Any], message: str, now: float | None = None) -> None:
    """Append one line to the endpoint's local ``DeploymentHistory`` (bounded)."""
    history = endpoint.setdefault("History", [])
    history.append({"Time": now if now is not None else time.time(), "Message": message})
    del history[:-HISTORY_LIMIT]


class EndpointsAPI:
    """Mixin of LocalSageMakerClient: SageMaker's model, endpoint-config and endpoint calls."""

    config: LocalConfig  # set by LocalSageMakerClient.__init__
    default_role_arn: str | None

    # ---- helpers -------------------------------------------------------------
    @property
    def _endpoint_store(self) -> EndpointStore:
        store = getattr(self, "_endpoint_store_cache", None)
        if store is None or store.path.parent.parent != self.config.data_dir:
            store = EndpointStore(self.config.data_dir)
            self._endpoint_store_cache = store
        return store

    def _arn(self, kind: str, name: str) -> str:
        return sagemaker_arn(self.config.region, self.config.account_id, kind, name)

    def _missing(self, operation: str, kind: str, name: str) -> ServiceError:
        """SageMaker's answer for a model, endpoint configuration or endpoint that does not exist."""
        noun = {"endpoint-config": "endpoint configuration"}.get(kind, kind)
        return ServiceError.validation(f'Could not find {noun} "{self._arn(kind, name)}".', operation)

    @staticmethod
    def _validate(operation: str, check: Any, *args: Any) -> Any:
        try:
            return check(*args)
        except DeploymentConfigError as exc:
            raise ServiceError.validation(str(exc), operation) from None

    def _resolve_container(self, operation: str, container: Mapping[str, Any]) -> dict[str, Any]:
        """Fill Image/ModelDataUrl of a container given as ``ModelPackageName`` (AWS resolves it at CreateModel)."""
        resolved = dict(container)
        package = container.get("ModelPackageName")
        if package:
            describe = getattr(self, "describe_model_package", None)
            if describe is None:
                raise ServiceError.validation("ModelPackageName needs the local Model Registry, which is not available",
                                              operation)
            try:
                desc = describe(ModelPackageName=package)
            except ClientError as exc:
                raise ServiceError.validation(f"Could not find model package {package!r}: "
                                              f"{exc.response['Error'].get('Message', '')}", operation) from None
            spec_container = desc["InferenceSpecification"]["Containers"][0]
            resolved.setdefault("Image", spec_container.get("Image", DEFAULT_IMAGE))
            resolved["ModelDataUrl"] = spec_container.get("ModelDataUrl")
            # the container's own environment first, the CreateModel overrides on top (as AWS)
            resolved["Environment"] = {**spec_container.get("Environment", {}), **container.get("Environment", {})}
            resolved["ModelPackageArn"] = desc.get("ModelPackageArn", package)
        if not resolved.get("ModelDataUrl"):
            raise ServiceError.validation("Container needs ModelDataUrl (s3://...) or ModelPackageName", operation)
        url = str(resolved["ModelDataUrl"])
        try:
            path = uri_to_path(url, self.config.s3_root)
        except ValueError as exc:
            raise ServiceError.validation(f"ModelDataUrl {url!r} is not a usable S3 URI: {exc}", operation) from None
        mode = resolved.get("Mode", "SingleModel")
        if mode not in ("SingleModel", "MultiModel"):
            raise ServiceError.validation(f"Container Mode {mode!r} is not SingleModel or MultiModel", operation)
        image = str(resolved.get("Image", DEFAULT_IMAGE))
        if mode == "MultiModel" and image_repository(image) not in MULTI_MODEL_REPOSITORIES:
            raise ServiceError.validation(f"Your Ecr Image {image} does not contain required "
                                          f"{MULTI_MODEL_LABEL} Docker label(s).", operation)
        if mode == "SingleModel" and not path.is_file():
            raise ServiceError.validation(f"Could not find model data at {url}.", operation)
        env = resolved.get("Environment", {})
        if not isinstance(env, Mapping) or not all(isinstance(v, str) for v in env.values()):
            raise ServiceError.validation("Container Environment must map names to string values", operation)
        return resolved

    # ---- models ----------------------------------------------------------------
    def create_model(self, *, ModelName: str, PrimaryContainer: Mapping[str, Any] | None = None,
                     Containers: list[Mapping[str, Any]] | None = None, ExecutionRoleArn: str | None = None,
                     **kwargs: Any) -> dict[str, Any]:
        """``CreateModel``: one container (``PrimaryContainer`` or a one-element ``Containers``)."""
        op = "CreateModel"
        self._validate(op, validate_resource_name, ModelName, "ModelName", MODEL_NAME_PATTERN)
        if PrimaryContainer is None and Containers:
            if len(Containers) != 1:
                raise ServiceError.validation(
                    "Only one container per model is supported locally (inference pipelines are not)", op)
            PrimaryContainer = Containers[0]
        if PrimaryContainer is None:
            raise ServiceError.validation("PrimaryContainer is required", op)
        resolved = self._resolve_container(op, PrimaryContainer)
        arn = self._arn("model", ModelName)
        with self._endpoint_store.transaction() as conn:
            if self._endpoint_store.get("models", ModelName, conn) is not None:
                raise ServiceError.validation(f'Cannot create already existing model "{arn}".', op)
            self._endpoint_store.put(conn, "models", ModelName, {
                "ModelName": ModelName, "ModelArn": arn, "PrimaryContainer": dict(PrimaryContainer),
                "ResolvedContainer": resolved, "ExecutionRoleArn": ExecutionRoleArn or self.default_role_arn,
                "Tags": kwargs.get("Tags", []), "CreationTime": time.time()})
        return {"ModelArn": arn}

    def describe_model(self, *, ModelName: str) -> dict[str, Any]:
        doc = self._endpoint_store.get("models", ModelName)
        if doc is None:
            raise self._missing("DescribeModel", "model", ModelName)
        out = {"ModelName": doc["ModelName"], "ModelArn": doc["ModelArn"], "PrimaryContainer": doc["PrimaryContainer"],
               "CreationTime": _ts(doc["CreationTime"])}
        if doc["ExecutionRoleArn"] is not None:
            out["ExecutionRoleArn"] = doc["ExecutionRoleArn"]
        return out

    def list_models(self, **kwargs: Any) -> dict[str, Any]:
        docs = self._endpoint_store.all("models")
        return {"Models": [{"ModelName": d["ModelName"], "ModelArn": d["ModelArn"],
                            "CreationTime": _ts(d["CreationTime"])} for d in docs]}

    def delete_model(self, *, ModelName: str) -> dict[str, Any]:
        with self._endpoint_store.transaction() as conn:
            if self._endpoint_store.get("models", ModelName, conn) is None:
                raise self._missing("DeleteModel", "model", ModelName)
            self._endpoint_store.delete(conn, "models", ModelName)
        return {}

    # ---- endpoint configs --------------------------------------------------------
    def create_endpoint_config(self, *, EndpointConfigName: str, ProductionVariants: list[Mapping[str, Any]],
                               DataCaptureConfig: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """``CreateEndpointConfig``: production variants (model, instance count, weight) and data capture."""
        op = "CreateEndpointConfig"
        self._validate(op, validate_resource_name, EndpointConfigName, "EndpointConfigName")
        self._validate(op, validate_production_variants, ProductionVariants)
        arn = self._arn("endpoint-config", EndpointConfigName)
        with self._endpoint_store.transaction() as conn:
            if self._endpoint_store.get("endpoint_configs", EndpointConfigName, conn) is not None:
                raise ServiceError.validation(f'Cannot create already existing endpoint configuration "{arn}".', op)
            variants = []
            for v in ProductionVariants:
                if self._endpoint_store.get("models", v["ModelName"], conn) is None:
                    raise self._missing(op, "model", v["ModelName"])
                variants.append({"InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
                                 "InitialVariantWeight": 1.0, **dict(v)})
            if DataCaptureConfig is not None:
                pct = DataCaptureConfig.get("InitialSamplingPercentage")
                if not isinstance(pct, int) or not 0 <= pct <= 100:
                    raise ServiceError.validation(
                        f"DataCaptureConfig.InitialSamplingPercentage: {pct!r} must be 0..100", op)
                destination = str(DataCaptureConfig.get("DestinationS3Uri", ""))
                try:
                    uri_to_path(destination, self.config.s3_root)
                except ValueError as exc:
                    raise ServiceError.validation(f"DataCaptureConfig.DestinationS3Uri {destination!r} is not a usable "
                                                  f"S3 URI: {exc}", op) from None
            self._endpoint_store.put(conn, "endpoint_configs", EndpointConfigName, {
                "EndpointConfigName": EndpointConfigName, "EndpointConfigArn": arn,
                "ProductionVariants": variants, "DataCaptureConfig": dict(DataCaptureConfig or {}) or None,
                "CreationTime": time.time()})
        return {"EndpointConfigArn": arn}

    def describe_endpoint_config(self, *, EndpointConfigName: str) -> dict[str, Any]:
        doc = self._endpoint_store.get("endpoint_configs", EndpointConfigName)
        if doc is None:
            raise self._missing("DescribeEndpointConfig", "endpoint-config", EndpointConfigName)
        out = {k: v for k, v in doc.items() if v is not None}
        out["CreationTime"] = _ts(doc["CreationTime"])
        return out

    def delete_endpoint_config(self, *, EndpointConfigName: str) -> dict[str, Any]:
        with self._endpoint_store.transaction() as conn:
            if self._endpoint_store.get("endpoint_configs", EndpointConfigName, conn) is None:
                raise self._missing("DeleteEndpointConfig", "endpoint-config", EndpointConfigName)
            self._endpoint_store.delete(conn, "endpoint_configs", EndpointConfigName)
        return {}

    def list_endpoint_configs(self, **kwargs: Any) -> dict[str, Any]:
        docs = self._endpoint_store.all("endpoint_configs")
        return {"EndpointConfigs": [{"EndpointConfigName": d["EndpointConfigName"],
                                     "EndpointConfigArn": d["EndpointConfigArn"],
                                     "CreationTime": _ts(d["CreationTime"])} for d in docs]}

    # ---- endpoints ----------------------------------------------------------------
    def _config_or_error(self, op: str, name: str, conn: sqlite3.Connection) -> dict[str, Any]:
        cfg = self._endpoint_store.get("endpoint_configs", name, conn)
        if cfg is None:
            raise self._missing(op, "endpoint-config", name)
        return cfg

    def create_endpoint(self, *, EndpointName: str, EndpointConfigName: str,
                        DeploymentConfig: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """``CreateEndpoint``: status ``Creating`` until the host has loaded every variant's model."""
        op = "CreateEndpoint"
        self._validate(op, validate_resource_name, EndpointName, "EndpointName")
        arn = self._arn("endpoint", EndpointName)
        now = time.time()
        with self._endpoint_store.transaction() as conn:
            if self._endpoint_store.get("endpoints", EndpointName, conn) is not None:
                raise ServiceError.validation(f'Cannot create already existing endpoint "{arn}".', op)
            cfg = self._config_or_error(op, EndpointConfigName, conn)
            doc: dict[str, Any] = {
                "EndpointName": EndpointName, "EndpointArn": arn, "EndpointConfigName": EndpointConfigName,
                "EndpointStatus": "Creating", "FailureReason": None, "CreationTime": now, "LastModifiedTime": now,
                "LastDeploymentConfig": dict(DeploymentConfig) if DeploymentConfig else None,
                "Variants": {v["VariantName"]: {"CurrentWeight": None, "DesiredWeight": float(v["InitialVariantWeight"]),
                                                "CurrentInstanceCount": None,
                                                "DesiredInstanceCount": v["InitialInstanceCount"]}
                             for v in cfg["ProductionVariants"]},
                "Pending": None, "Operation": "create", "Generation": 1, "History": []}
            add_history(doc, f"CreateEndpoint with endpoint config {EndpointConfigName}", now)
            self._endpoint_store.put(conn, "endpoints", EndpointName, doc)
        return {"EndpointArn": arn}

    def _updatable_endpoint(self, op: str, name: str, conn: sqlite3.Connection) -> dict[str, Any]:
        """The endpoint's document, or AWS's error when it does not exist or is not InService."""
        doc = self._endpoint_store.get("endpoints", name, conn)
        if doc is None:
            raise self._missing(op, "endpoint", name)
        if doc["EndpointStatus"] != "InService":
            # SageMaker's own words for an endpoint that is Creating, Updating or RollingBack
            raise ServiceError.validation(f'Cannot update in-progress endpoint "{doc["EndpointArn"]}".', op)
        return doc

    def update_endpoint(self, *, EndpointName: str, EndpointConfigName: str,
                        DeploymentConfig: Mapping[str, Any] | None = None, RetainDeploymentConfig: bool = False,
                        RetainAllVariantProperties: bool = False, **kwargs: Any) -> dict[str, Any]:
        """``UpdateEndpoint``: a blue/green deployment of the new config, run by the host.

        ``DeploymentConfig`` is validated as AWS does; without one the update shifts all traffic at once
        with no baking (SageMaker's default); ``RetainDeploymentConfig`` reuses the last one.
        """
        op = "UpdateEndpoint"
        now = time.time()
        with self._endpoint_store.transaction() as conn:
            doc = self._updatable_endpoint(op, EndpointName, conn)
            cfg = self._config_or_error(op, EndpointConfigName, conn)
            if RetainDeploymentConfig and DeploymentConfig is None:
                DeploymentConfig = doc.get("LastDeploymentConfig")
            counts = [int(v["InitialInstanceCount"]) for v in cfg["ProductionVariants"]]
            fallback = None
            if DeploymentConfig is not None:
                self._validate(op, validate_deployment_config, DeploymentConfig, counts)
                for alarm in DeploymentConfig.get("AutoRollbackConfiguration", {}).get("Alarms", []):
                    if self._endpoint_store.get("alarms", alarm["AlarmName"], conn) is None:
                        raise ServiceError.validation(f"AutoRollbackConfiguration: alarm {alarm['AlarmName']!r} does "
                                                      "not exist (create it with put_metric_alarm first)", op)
                # "Exclusions": a blue/green update keeps the old config's variant names
                old = self._endpoint_store.get("endpoint_configs", doc["EndpointConfigName"], conn) or {}
                old_names = sorted(v["VariantName"] for v in old.get("ProductionVariants", []))
                new_names = sorted(v["VariantName"] for v in cfg["ProductionVariants"])
                if old_names and old_names != new_names:
                    raise ServiceError.validation("When doing a blue/green deployment, the new endpoint configuration "
                                                  "must have the same variant name as the old endpoint configuration: "
                                                  f"{EndpointConfigName} has {', '.join(new_names)}, "
                                                  f"{doc['EndpointConfigName']} has {', '.join(old_names)}", op)
                models = [self._endpoint_store.get("models", v["ModelName"], conn) or {}
                          for v in cfg["ProductionVariants"]]
                fallback = guardrails_excluded(cfg["ProductionVariants"], models)
            all_at_once = {"BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                "TerminationWaitInSeconds": 0}}
            effective = dict(DeploymentConfig) if DeploymentConfig and not fallback else all_at_once
            doc["EndpointStatus"] = "Updating"
            doc["FailureReason"] = None
            doc["LastModifiedTime"] = now
            doc["Pending"] = {"EndpointConfigName": EndpointConfigName, "DeploymentConfig": effective,
                              "StartTime": now, "TrafficShare": 0.0, "Phase": "Creating",
                              "PhaseMessage": "provisioning the green fleet", "PhaseStartTime": now,
                              "RequestedDeploymentConfig": dict(DeploymentConfig) if DeploymentConfig else None}
            doc["Operation"] = "update"
            doc["Generation"] += 1
            strategy = effective["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"]
            add_history(doc, f"UpdateEndpoint to endpoint config {EndpointConfigName} ({strategy} blue/green)", now)
            if fallback:
                add_history(doc, f"deployment guardrails do not apply ({fallback}): all at once, "
                                 "no baking period, no auto-rollback", now)
            self._endpoint_store.put(conn, "endpoints", EndpointName, doc)
        return {"EndpointArn": doc["EndpointArn"]}

    def update_endpoint_weights_and_capacities(self, *, EndpointName: str,
                                               DesiredWeightsAndCapacities: list[Mapping[str, Any]]) -> dict[str, Any]:
        """``UpdateEndpointWeightsAndCapacities``: new variant weights (A/B) applied by the host without redeploying."""
        op = "UpdateEndpointWeightsAndCapacities"
        now = time.time()
        with self._endpoint_store.transaction() as conn:
            doc = self._updatable_endpoint(op, EndpointName, conn)
            if not DesiredWeightsAndCapacities:
                raise ServiceError.validation("DesiredWeightsAndCapacities must name at least one variant", op)
            for item in DesiredWeightsAndCapacities:
                name = item.get("VariantName")
                if name not in doc["Variants"]:
                    raise ServiceError.validation(f"The variant(s) \"[{name}]\" are not present in endpoint "
                                                  f"\"{doc['EndpointArn']}\"; variants: {', '.join(doc['Variants'])}",
                                                  op)
                weight = item.get("DesiredWeight")
                if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0):
                    raise ServiceError.validation(f"DesiredWeight {weight!r} of variant {name} must be a number >= 0",
                                                  op)
                count = item.get("DesiredInstanceCount")
                if count is not None and (not isinstance(count, int) or count < 0):
                    raise ServiceError.validation(
                        f"DesiredInstanceCount {count!r} of variant {name} must be an integer >= 0", op)
            for item in DesiredWeightsAndCapacities:
                v = doc["Variants"][item["VariantName"]]
                if item.get("DesiredWeight") is not None:
                    v["DesiredWeight"] = float(item["DesiredWeight"])
                if item.get("DesiredInstanceCount") is not None:
                    v["DesiredInstanceCount"] = item["DesiredInstanceCount"]
            if sum(v["DesiredWeight"] for v in doc["Variants"].values()) <= 0:
                raise ServiceError.validation("At least one variant must keep a weight above 0", op)
            doc["EndpointStatus"] = "Updating"
            doc["LastModifiedTime"] = now
            doc["Operation"] = "weights"
            doc["Generation"] += 1
            add_history(doc, "UpdateEndpointWeightsAndCapacities: " + ", ".join(
                f"{n}={v['DesiredWeight']:g}" for n, v in doc["Variants"].items()), now)
            self._endpoint_store.put(conn, "endpoints", EndpointName, doc)
        return {"EndpointArn": doc["EndpointArn"]}

    def describe_endpoint(self, *, EndpointName: str) -> dict[str, Any]:
        """``DescribeEndpoint`` in AWS's shape (the local history is :meth:`deployment_history`)."""
        store = self._endpoint_store
        doc = store.get("endpoints", EndpointName)
        if doc is None:
            raise self._missing("DescribeEndpoint", "endpoint", EndpointName)
        cfg = store.get("endpoint_configs", doc["EndpointConfigName"]) or {"ProductionVariants": []}
        variants = []
        for pv in cfg["ProductionVariants"]:
            state = doc["Variants"].get(pv["VariantName"], {})
            summary: dict[str, Any] = {"VariantName": pv["VariantName"], "DeployedImages": self._deployed_images(pv)}
            for key in ("CurrentWeight", "DesiredWeight", "CurrentInstanceCount", "DesiredInstanceCount"):
                if state.get(key) is not None:
                    summary[key] = state[key]
            variants.append(summary)
        out: dict[str, Any] = {
            "EndpointName": doc["EndpointName"], "EndpointArn": doc["EndpointArn"],
            "EndpointConfigName": doc["EndpointConfigName"], "ProductionVariants": variants,
            "EndpointStatus": doc["EndpointStatus"], "CreationTime": _ts(doc["CreationTime"]),
            "LastModifiedTime": _ts(doc["LastModifiedTime"])}
        if cfg.get("DataCaptureConfig"):
            dc = cfg["DataCaptureConfig"]
            out["DataCaptureConfig"] = {"EnableCapture": dc.get("EnableCapture", True),
                                        "CaptureStatus": "Started" if dc.get("EnableCapture", True) else "Stopped",
                                        "CurrentSamplingPercentage": dc["InitialSamplingPercentage"],
                                        "DestinationS3Uri": dc["DestinationS3Uri"]}
        if doc.get("FailureReason"):
            out["FailureReason"] = doc["FailureReason"]
        if doc.get("LastDeploymentConfig"):
            out["LastDeploymentConfig"] = doc["LastDeploymentConfig"]
        pending = doc.get("Pending")
        if pending:
            pcfg = store.get("endpoint_configs", pending["EndpointConfigName"]) or {"ProductionVariants": []}
            share = float(pending.get("TrafficShare", 0.0))
            total = sum(float(pv["InitialVariantWeight"]) for pv in pcfg["ProductionVariants"]) or 1.0
            out["PendingDeploymentSummary"] = {
                "EndpointConfigName": pending["EndpointConfigName"], "StartTime": _ts(pending["StartTime"]),
                "ProductionVariants": [{
                    "VariantName": pv["VariantName"], "DeployedImages": self._deployed_images(pv),
                    "DesiredWeight": float(pv["InitialVariantWeight"]),
                    "CurrentWeight": round(float(pv["InitialVariantWeight"]) * share, 6),
                    "DesiredInstanceCount": pv["InitialInstanceCount"],
                    "CurrentInstanceCount": pv["InitialInstanceCount"] if pending["Phase"] != "Creating" else 0,
                    "InstanceType": pv.get("InstanceType"),
                    "VariantStatus": [{"Status": pending["Phase"],
                                       "StatusMessage": f"{pending.get('PhaseMessage', '')} "
                                                        f"({share:.0%} of traffic on the green fleet, "
                                                        f"{float(pv['InitialVariantWeight']) / total:.0%} of it here)",
                                       "StartTime": _ts(pending.get("PhaseStartTime", pending["StartTime"]))}]}
                    for pv in pcfg["ProductionVariants"]]}
        return out

    def deployment_history(self, EndpointName: str) -> list[dict[str, Any]]:
        """Local only, no AWS operation: the endpoint's timestamped deployment lines, oldest first
        (on AWS the same story is in the endpoint's EventBridge state-change events)."""
        doc = self._endpoint_store.get("endpoints", EndpointName)
        return [{"Time": _ts(h["Time"]), "Message": h["Message"]} for h in (doc or {}).get("History", [])]

    def _deployed_images(self, pv: Mapping[str, Any]) -> list[dict[str, Any]]:
        model = self._endpoint_store.get("models", pv["ModelName"])
        image = (model or {}).get("ResolvedContainer", {}).get("Image", DEFAULT_IMAGE)
        return [{"SpecifiedImage": image, "ResolvedImage": image}]

    def list_endpoints(self, *, NameContains: str | None = None, StatusEquals: str | None = None,
                       SortBy: str = "CreationTime", SortOrder: str = "Descending", MaxResults: int = 100,
                       **kwargs: Any) -> dict[str, Any]:
        """``ListEndpoints`` (filters by name and status, sorted as asked)."""
        docs = self._endpoint_store.all("endpoints")
        rows = [d for d in docs if (not NameContains or NameContains in d["EndpointName"])
                and (not StatusEquals or d["EndpointStatus"] == StatusEquals)]
        key = {"Name": "EndpointName", "CreationTime": "CreationTime", "Status": "EndpointStatus"}.get(SortBy)
        if key is None:
            raise ServiceError.validation(f"SortBy {SortBy!r} is not Name, CreationTime or Status", "ListEndpoints")
        rows.sort(key=lambda d: d[key], reverse=SortOrder == "Descending")
        return {"Endpoints": [{"EndpointName": d["EndpointName"], "EndpointArn": d["EndpointArn"],
                               "CreationTime": _ts(d["CreationTime"]), "LastModifiedTime": _ts(d["LastModifiedTime"]),
                               "EndpointStatus": d["EndpointStatus"]} for d in rows[:MaxResults]]}

    def delete_endpoint(self, *, EndpointName: str) -> dict[str, Any]:
        """``DeleteEndpoint``: the host stops serving it at its next poll (configs and models stay)."""
        with self._endpoint_store.transaction() as conn:
            if self._endpoint_store.get("endpoints", EndpointName, conn) is None:
                raise self._missing("DeleteEndpoint", "endpoint", EndpointName)
            self._endpoint_store.delete(conn, "endpoints", EndpointName)
        return {}
