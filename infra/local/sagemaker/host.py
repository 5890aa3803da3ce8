"""The local endpoint host: SageMaker Runtime + the fleets behind each endpoint.

A FastAPI/uvicorn server on 127.0.0.1 (``python -m infra.local.sagemaker.host --data-dir DIR``,
started by ``aircast local up``):

- ``POST /endpoints/{name}/invocations`` is the SageMaker Runtime ``InvokeEndpoint`` API
  (path, ``Content-Type``, ``X-Amzn-SageMaker-Target-Variant`` / ``-Inference-Id`` / ... request
  headers, ``X-Amzn-Invoked-Production-Variant`` response header, rest-json error bodies with
  ``x-amzn-ErrorType``), so ``boto3.client("sagemaker-runtime", endpoint_url=...)`` works unchanged.
  Every request is checked against botocore's model of ``InvokeEndpoint`` as the service checks it
  (lengths, patterns: ``ValidationError``, 400, in the Coral wording). Requests are parsed with the
  DeepAR wire format (``deepar_format.parse_request``); a request the DeepAR container would refuse
  is a ``ModelError`` (HTTP 424, ``OriginalStatusCode`` 400) with the reason; an unknown endpoint or
  variant, a ``TargetModel`` (DeepAR endpoints are not multi-model endpoints) or an oversize body a
  ``ValidationError`` (400); a host shutting down ``ServiceUnavailable`` (503). A client's mistake
  is never a 5xx.
- ``GET /ping`` (container-style health), ``GET /metrics`` (Prometheus text: per-variant
  invocations, errors, latency percentiles, blue/green traffic share).

A reconciler thread polls the control plane's SQLite (:mod:`infra.local.sagemaker.endpoints`) and
executes what it asks: loads an endpoint's models (``create``), applies variant weights
(``weights``), or runs a blue/green deployment (``update``): provision green; shift traffic as
ALL_AT_ONCE / CANARY / LINEAR says; bake for ``WaitIntervalInSeconds`` after each shift while the
``AutoRollbackConfiguration`` alarms watch the green fleet's metrics; wait
``TerminationWaitInSeconds``; then retire blue. An alarm in ALARM, a green fleet that fails to load
or ``MaximumExecutionTimeoutInSeconds`` rolls all traffic back to blue and records why. Blue serves
throughout. Waits run on the scaled clock (``settings.clock_scale``: real seconds = seconds × scale).

Chaos hook: a model's container ``Environment`` may set ``AIRCAST_FAULT_INJECTION`` (comma-separated):
``error`` (every invocation fails with a model 500), ``error_rate=0.3`` (that fraction fails),
``latency_ms=800`` (each invocation takes that much longer), ``load_failure`` (the model never loads).
It exists for testing rollbacks and is ignored on AWS (the built-in container never reads it).

With a ``DataCaptureConfig`` on the endpoint config, successful invocations are captured as SageMaker
Data Capture does: JSON lines under ``<DestinationS3Uri>/<endpoint>/<variant>/YYYY/MM/DD/HH/*.jsonl``
holding exactly AWS's members (``captureData.endpointInput``/``endpointOutput`` with
``observedContentType``, ``mode``, ``data``, ``encoding``; ``eventMetadata`` with ``eventId``,
``inferenceTime`` and ``inferenceId`` when the caller sent one; ``eventVersion``), the modes its
``CaptureOptions`` name, ``JSON``/``CSV`` encoding for the content types its
``CaptureContentTypeHeader`` lists and ``BASE64`` for the rest, sampled at
``InitialSamplingPercentage``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import functools
import hashlib
import json
import logging
import queue
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from awsrules.sagemaker_endpoints import traffic_steps
from infra.local.core.botoclient import constraint_violations
from infra.local.core.config import LocalConfig
from infra.local.s3 import parse_s3_uri, uri_to_path
from infra.local.sagemaker.cloudwatch import Sample, add_to_minute, alarm_dimensions, evaluate_alarm, write_minutes
from infra.local.sagemaker.deepar_format import DEFAULT_MAX_BYTES, InvalidRequest, parse_request
from infra.local.sagemaker.endpoints import EndpointStore, add_history

log = logging.getLogger("aircast.endpoint_host")

FAULT_ENV = "AIRCAST_FAULT_INJECTION"
POLL_INTERVAL_S = 0.1
SAMPLES_PER_SERIES = 5000
METRICS_FLUSH_S = 1.0  # how often the one-minute aggregates reach the local CloudWatch store
ROLLBACK_HOLD_S = 0.3  # how long RollingBack stays visible before InService again (real seconds)


# ---------------------------------------------------------------------------- errors


class InvocationError(Exception):
    """An InvokeEndpoint failure, shaped as the SageMaker Runtime error it stands for."""

    def __init__(self, status: int, code: str, message: str, original_status: int | None = None,
                 outcome: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.original_status = original_status
        # which error metric it counts as on the variant (None: not a variant's invocation)
        self.outcome = outcome

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "Message": self.message}
        if self.original_status is not None:
            body.update({"ErrorCode": "CLIENT_ERROR_FROM_MODEL" if self.original_status < 500
                         else "SERVER_ERROR_FROM_MODEL",
                         "OriginalStatusCode": self.original_status, "OriginalMessage": self.message})
        return body


def validation_error(message: str) -> InvocationError:
    return InvocationError(400, "ValidationError", message)


def endpoint_not_found(name: str, account: str) -> InvocationError:
    return validation_error(f"Endpoint {name} of account {account} not found.")


@functools.cache
def _invoke_endpoint_shape() -> Any:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    return model.operation_model("InvokeEndpoint").input_shape


def request_problems(params: Mapping[str, Any]) -> list[str]:
    """What SageMaker Runtime's own validation says of an ``InvokeEndpoint`` request (string members:
    minimum and maximum length, pattern), in its words."""
    shape = _invoke_endpoint_shape()
    problems = []
    for name, value in params.items():
        member = shape.members[name]
        low = member.metadata.get("min")
        if isinstance(value, str) and low is not None and len(value) < low:
            key = name[:1].lower() + name[1:]
            problems.append(f"Value '{value}' at '{key}' failed to satisfy constraint: Member must have length "
                            f"greater than or equal to {low}")
    problems += constraint_violations(dict(params), shape)
    return problems


def request_validation_error(problems: list[str]) -> InvocationError:
    count = len(problems)
    return validation_error(f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems[:10]))


@functools.cache
def _header_members() -> dict[str, str]:
    """InvokeEndpoint's header members → the (lower-case) HTTP header that carries each."""
    return {name: member.serialization["name"].lower() for name, member in _invoke_endpoint_shape().members.items()
            if member.serialization.get("location") == "header"}


@dataclass(frozen=True)
class Invocation:
    """An ``InvokeEndpoint`` request as the host received it: the endpoint, the body, the header members sent."""

    endpoint: str
    body: bytes
    params: Mapping[str, str]


def parse_invocation(endpoint: str, headers: Mapping[str, str], body: bytes) -> Invocation:
    """The request's members, checked as SageMaker Runtime checks them (raises ``ValidationError``)."""
    params = {name: headers[header] for name, header in _header_members().items() if header in headers}
    problems = request_problems({"EndpointName": endpoint, **params})
    if problems:
        raise request_validation_error(problems)
    return Invocation(endpoint, body, params)


def _unsupported_member(endpoint: str, params: Mapping[str, str]) -> str | None:
    """Why a valid member cannot apply to a DeepAR endpoint (each is a ``ValidationError`` on AWS too)."""
    if "TargetModel" in params:
        return f"Endpoint {endpoint} is not a multi-model endpoint and does not support target model header."
    if "TargetContainerHostname" in params:
        return (f"Endpoint {endpoint} is not a multi-container endpoint with direct invocation and does not support "
                "the target container hostname header.")
    if "InferenceComponentName" in params:
        return f"Endpoint {endpoint} does not host inference components; omit the inference component header."
    if "SessionId" in params:
        return f"Endpoint {endpoint} does not support stateful sessions; omit the session id header."
    if "EnableExplanations" in params:
        return f"Endpoint {endpoint} has no explainer configuration; omit the enable explanations header."
    return None


def model_error(variant: str, original_status: int, message: str) -> InvocationError:
    kind = "client" if original_status < 500 else "server"
    return InvocationError(424, "ModelError",
                           f"Received {kind} error ({original_status}) from primary with message \"{message}\". "
                           f"See the endpoint host log for variant {variant}.",
                           original_status, outcome="4xx" if original_status < 500 else "5xx")


# ---------------------------------------------------------------------------- chaos hook


@dataclass(frozen=True)
class FaultSpec:
    """Faults a container's ``AIRCAST_FAULT_INJECTION`` asks for (see module docstring)."""

    error_rate: float = 0.0
    latency_ms: float = 0.0
    load_failure: bool = False


def parse_fault_injection(value: str | None) -> FaultSpec:
    """``"error"``, ``"error_rate=0.3"``, ``"latency_ms=800"``, ``"load_failure"`` (comma-separated)."""
    if not value:
        return FaultSpec()
    error_rate, latency, load_failure = 0.0, 0.0, False
    for part in (p.strip() for p in value.split(",") if p.strip()):
        key, _, raw = part.partition("=")
        try:
            if key == "error" and not raw:
                error_rate = 1.0
            elif key == "error_rate":
                error_rate = float(raw)
                if not 0.0 <= error_rate <= 1.0:
                    raise ValueError
            elif key == "latency_ms":
                latency = float(raw)
                if latency < 0:
                    raise ValueError
            elif key == "load_failure" and not raw:
                load_failure = True
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"{FAULT_ENV}: {part!r} is not one of error, error_rate=0..1, latency_ms=N, "
                             "load_failure") from None
    return FaultSpec(error_rate, latency, load_failure)


# ---------------------------------------------------------------------------- models


class ModelCache:
    """DeepAR predictors loaded from ``model.tar.gz`` in the local S3, shared by every fleet."""

    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self.root = config.data_dir / "sagemaker" / "model-cache"
        self._models: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path_of(self, model_data_url: str) -> Path:
        return uri_to_path(model_data_url, self.config.s3_root)

    def get(self, model_data_url: str) -> Any:
        """The predictor for an artifact (loaded once; raises FileNotFoundError/AlgorithmError)."""
        path = self.path_of(model_data_url)
        if not path.is_file():
            bucket, key = parse_s3_uri(model_data_url)
            raise FileNotFoundError(f"Failed to download model data (bucket: {bucket}, key: {key}): "
                                    "there is no object at that URL")
        stat = path.stat()
        cache_key = hashlib.sha1(f"{path}:{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest()[:16]
        with self._guard:
            if cache_key in self._models:
                return self._models[cache_key]
            lock = self._locks.setdefault(cache_key, threading.Lock())
        with lock:
            if cache_key not in self._models:
                from infra.local.sagemaker.deepar import DeepARPredictor

                self._models[cache_key] = DeepARPredictor.from_tarball(path, extract_to=self.root / cache_key)
            return self._models[cache_key]


@dataclass
class VariantRuntime:
    """One production variant of a fleet: its model container, weight and faults."""

    name: str
    model_name: str
    weight: float
    instance_count: int
    fault: FaultSpec
    model_package_arn: str | None
    predictor: Any = None  # single-model endpoints
    predict_lock: threading.Lock = field(default_factory=threading.Lock)
    current: float = 0.0  # smooth weighted round robin state


@dataclass
class Fleet:
    """The instances behind one endpoint config (blue or green)."""

    config_name: str
    variants: dict[str, VariantRuntime]
    data_capture: dict[str, Any] | None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pick_variant(self) -> VariantRuntime:
        """Smooth weighted round robin over variants with weight > 0 (exact shares, no randomness)."""
        with self.lock:
            live = [v for v in self.variants.values() if v.weight > 0]
            if not live:
                raise validation_error("Every production variant of the endpoint has weight 0")
            total = sum(v.weight for v in live)
            for v in live:
                v.current += v.weight
            best = max(live, key=lambda v: v.current)
            best.current -= total
            return best


@dataclass
class LiveEndpoint:
    """What the host serves for one endpoint right now."""

    name: str
    blue: Fleet | None = None
    green: Fleet | None = None
    green_share: float = 0.0
    generation: int = 0
    busy: bool = False  # a create/update thread owns it
    credit: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pick_fleet(self, target_variant: str | None) -> Fleet:
        with self.lock:
            blue, green, share = self.blue, self.green, self.green_share
            if green is not None and share > 0:
                if share >= 1.0:
                    chosen = green
                else:
                    # deterministic split: exactly `share` of the requests go to green
                    self.credit += share
                    if self.credit >= 1.0 - 1e-9:
                        self.credit -= 1.0
                        chosen = green
                    else:
                        chosen = blue or green
            else:
                chosen = blue or green
        if chosen is None:  # still Creating
            raise validation_error(f"Endpoint {self.name} is not ready yet (its models are still loading)")
        if target_variant and target_variant not in chosen.variants:
            for other in (blue, green):
                if other is not None and target_variant in other.variants:
                    return other
        return chosen


# ---------------------------------------------------------------------------- metrics


class Metrics:
    """Per (endpoint, endpoint config, variant) invocation samples and totals, and the one-minute
    aggregates per (endpoint, variant) that go to the local CloudWatch (``drain_minutes``)."""

    def __init__(self) -> None:
        self._samples: dict[tuple[str, str, str], deque[Sample]] = {}
        self._totals: dict[tuple[str, str, str], dict[str, int]] = {}
        self._minutes: dict[tuple[str, str, int], dict[str, float]] = {}
        self._dirty: set[tuple[str, str, int]] = set()
        self._lock = threading.Lock()

    def record(self, endpoint: str, config: str, variant: str, sample: Sample) -> None:
        key = (endpoint, config, variant)
        minute = (endpoint, variant, int(sample.time // 60 * 60))
        with self._lock:
            self._samples.setdefault(key, deque(maxlen=SAMPLES_PER_SERIES)).append(sample)
            totals = self._totals.setdefault(key, {"ok": 0, "4xx": 0, "5xx": 0})
            totals[sample.outcome] += 1
            add_to_minute(self._minutes.setdefault(minute, {}), sample)
            self._dirty.add(minute)

    def drain_minutes(self) -> dict[tuple[str, str, int], dict[str, float]]:
        """The minute aggregates changed since the last drain (whole aggregates; older minutes are forgotten)."""
        with self._lock:
            out = {k: dict(self._minutes[k]) for k in self._dirty}
            self._dirty.clear()
            newest = max((m for _, _, m in self._minutes), default=0)
            for key in [k for k in self._minutes if k[2] < newest - 120]:
                del self._minutes[key]
            return out

    def samples(self, endpoint: str, config: str, variant: str | None, since: float) -> list[Sample]:
        with self._lock:
            return [s for (e, c, v), dq in self._samples.items()
                    if e == endpoint and c == config and (variant is None or v == variant)
                    for s in dq if s.time >= since]

    def snapshot(self) -> list[tuple[tuple[str, str, str], dict[str, int], list[float]]]:
        with self._lock:
            return [(key, dict(self._totals[key]), [s.latency_us for s in dq])
                    for key, dq in self._samples.items()]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q * (len(ordered) - 1)))))]


# ---------------------------------------------------------------------------- data capture


class DataCaptureWriter:
    """Writes Data Capture JSON lines from a background thread (keeps file I/O off the request path)."""

    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self.run_id = uuid.uuid4().hex[:8]
        self._queue: queue.Queue[tuple[Path, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="data-capture", daemon=True)
        self._thread.start()

    def destination(self, fleet: Fleet, endpoint: str, variant: str, when: dt.datetime) -> Path | None:
        """Where this invocation's record goes, or None when the config captures nothing (no
        ``DataCaptureConfig``, capture disabled, or not sampled)."""
        cfg = fleet.data_capture
        if not cfg or not cfg.get("EnableCapture", True):
            return None
        pct = cfg.get("InitialSamplingPercentage", 100)
        if pct < 100 and random.random() * 100 >= pct:
            return None
        base = str(cfg["DestinationS3Uri"])
        key = f"{endpoint}/{variant}/{when:%Y/%m/%d/%H}/{when:%M-%S}-{self.run_id}.jsonl"
        return uri_to_path(base.rstrip("/") + "/" + key, self.config.s3_root)

    def submit(self, path: Path, record: Mapping[str, Any]) -> None:
        self._queue.put((path, json.dumps(record, separators=(",", ":")) + "\n"))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            path, line = item
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # one write() per whole line: readers never see half a record
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(line)
            except OSError as exc:  # capture must never break serving
                log.warning("data capture write to %s failed: %s", path, exc)

    def flush(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)


def capture_record(config: Mapping[str, Any], request: bytes, request_type: str, response: bytes,
                   response_type: str, when: dt.datetime, inference_id: str | None) -> dict[str, Any]:
    """One Data Capture record exactly as SageMaker writes it (see the module docstring)."""
    modes = {o.get("CaptureMode") for o in config.get("CaptureOptions") or []}
    headers = config.get("CaptureContentTypeHeader") or {}
    data: dict[str, Any] = {}
    if modes & {"Input", "InputAndOutput"}:
        data["endpointInput"] = _capture_payload(request, request_type, "INPUT", headers)
    if modes & {"Output", "InputAndOutput"}:
        data["endpointOutput"] = _capture_payload(response, response_type, "OUTPUT", headers)
    meta = {"eventId": str(uuid.uuid4()), "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if inference_id:
        meta["inferenceId"] = inference_id
    return {"captureData": data, "eventMetadata": meta, "eventVersion": "0"}


def _capture_payload(body: bytes, content_type: str, mode: str, headers: Mapping[str, Any]) -> dict[str, Any]:
    base = content_type.split(";")[0].strip().lower()
    for encoding, listed in (("JSON", headers.get("JsonContentTypes")), ("CSV", headers.get("CsvContentTypes"))):
        if base in {str(t).lower() for t in listed or ()}:
            try:
                return {"observedContentType": content_type, "mode": mode, "data": body.decode("utf-8"),
                        "encoding": encoding}
            except UnicodeDecodeError:
                break  # not text after all: kept exactly, as base64
    return {"observedContentType": content_type, "mode": mode, "data": base64.b64encode(body).decode(),
            "encoding": "BASE64"}


# ---------------------------------------------------------------------------- the host


def _preload_deepar() -> None:
    try:
        import infra.local.sagemaker.deepar  # noqa: F401
    except Exception as exc:  # loading a model later reports the real error
        log.warning("preloading DeepAR failed: %s", exc)


class EndpointHost:
    """Serves every endpoint in the control plane and executes their deployments."""

    def __init__(self, config: LocalConfig, max_body_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.config = config
        self.store = EndpointStore(config.data_dir)
        self.models = ModelCache(config)
        self.metrics = Metrics()
        self.capture = DataCaptureWriter(config)
        self.max_body_bytes = max_body_bytes
        self.endpoints: dict[str, LiveEndpoint] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        # import torch/GluonTS in the background: the first model load is then much quicker
        threading.Thread(target=_preload_deepar, name="preload", daemon=True).start()
        self._thread = threading.Thread(target=self._reconcile_loop, name="reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        write_minutes(self.store, self.metrics.drain_minutes())
        self.capture.flush()
        self.capture.close()

    def _reconcile_loop(self) -> None:
        flushed = time.monotonic()
        while not self._stop.is_set():
            try:
                self.reconcile_once()
                if time.monotonic() - flushed >= METRICS_FLUSH_S:
                    flushed = time.monotonic()
                    write_minutes(self.store, self.metrics.drain_minutes())
            except Exception:  # keep serving whatever happens to one poll
                log.exception("reconcile failed")
            self._stop.wait(POLL_INTERVAL_S)

    def reconcile_once(self) -> None:
        """Compare the control plane's desired state with what is served; start the work needed."""
        docs = {d["EndpointName"]: d for d in self.store.all("endpoints")}
        for name in list(self.endpoints):
            if name not in docs:
                log.info("endpoint %s deleted: no longer served", name)
                self.endpoints.pop(name, None)
        for name, doc in docs.items():
            live = self.endpoints.get(name)
            if live is None:
                live = self.endpoints[name] = LiveEndpoint(name)
            if live.busy or doc["Generation"] <= live.generation:
                continue
            live.generation = doc["Generation"]
            op = doc.get("Operation")
            if op == "create" or (live.blue is None and op != "update"):
                # also after a host restart: rebuild the serving fleet from the current config
                self._spawn(live, self._create, doc)
            elif op == "weights":
                self._apply_weights(live, doc)
            elif op == "update" and doc["EndpointStatus"] == "Updating":
                if live.blue is None:  # host restarted mid-deployment: serve blue first
                    self._spawn(live, self._resume_then_update, doc)
                else:
                    self._spawn(live, self._blue_green_update, doc)

    def _spawn(self, live: LiveEndpoint, target: Any, doc: dict[str, Any]) -> None:
        live.busy = True

        def run() -> None:
            try:
                target(live, doc)
            except Exception as exc:
                log.exception("endpoint %s: %s failed", live.name, target.__name__)
                problem = str(exc)
                self._write(live.name, lambda d: (d.update(EndpointStatus="Failed" if live.blue is None else "InService",
                                                           FailureReason=f"Internal error in the endpoint host: {problem}",
                                                           Pending=None, Operation=None),
                                                  add_history(d, f"host error: {problem}")))
            finally:
                live.busy = False

        threading.Thread(target=run, name=f"endpoint-{live.name}", daemon=True).start()

    def _write(self, name: str, change: Any) -> bool:
        """Apply ``change(doc)`` to the endpoint's document in one transaction; False if it was deleted."""
        with self.store.transaction() as conn:
            doc = self.store.get("endpoints", name, conn)
            if doc is None:
                return False
            change(doc)
            doc["LastModifiedTime"] = time.time()
            self.store.put(conn, "endpoints", name, doc)
        return True

    # ---- fleets ----------------------------------------------------------------------------
    def build_fleet(self, config_name: str) -> Fleet:
        """Load every variant's model of an endpoint config (raises with the reason on failure)."""
        cfg = self.store.get("endpoint_configs", config_name)
        if cfg is None:
            raise RuntimeError(f"endpoint config {config_name} no longer exists")
        variants: dict[str, VariantRuntime] = {}
        for pv in cfg["ProductionVariants"]:
            model = self.store.get("models", pv["ModelName"])
            if model is None:
                raise RuntimeError(f"model {pv['ModelName']} of variant {pv['VariantName']} no longer exists")
            container = model["ResolvedContainer"]
            env = container.get("Environment", {}) or {}
            fault = parse_fault_injection(env.get(FAULT_ENV))
            if fault.load_failure:
                raise RuntimeError(f"variant {pv['VariantName']}: the model container failed its health check "
                                   f"({FAULT_ENV}=load_failure)")
            if container.get("Mode") == "MultiModel":
                # CreateModel refuses MultiModel for images without the multi-model label (DeepAR has none)
                raise RuntimeError(f"variant {pv['VariantName']}: the local host serves DeepAR models only; "
                                   f"a MultiModel container ({container.get('Image')}) is not emulated")
            runtime = VariantRuntime(
                name=pv["VariantName"], model_name=pv["ModelName"], weight=float(pv["InitialVariantWeight"]),
                instance_count=int(pv["InitialInstanceCount"]), fault=fault,
                model_package_arn=container.get("ModelPackageArn"))
            try:
                runtime.predictor = self.models.get(container["ModelDataUrl"])
            except Exception as exc:
                raise RuntimeError(f"variant {pv['VariantName']}: could not load model {pv['ModelName']}: {exc}") from exc
            variants[pv["VariantName"]] = runtime
        return Fleet(config_name, variants, cfg.get("DataCaptureConfig"))

    def _variant_weights(self, fleet: Fleet) -> dict[str, dict[str, Any]]:
        return {v.name: {"CurrentWeight": v.weight, "DesiredWeight": v.weight,
                         "CurrentInstanceCount": v.instance_count, "DesiredInstanceCount": v.instance_count}
                for v in fleet.variants.values()}

    def _create(self, live: LiveEndpoint, doc: dict[str, Any]) -> None:
        try:
            fleet = self.build_fleet(doc["EndpointConfigName"])
        except Exception as exc:
            problem = str(exc)
            self._write(live.name, lambda d: (d.update(EndpointStatus="Failed", FailureReason=problem, Operation=None),
                                              add_history(d, f"creation failed: {problem}")))
            return
        # weights the control plane recorded (e.g. set before a host restart) win over the config's
        for name, v in doc.get("Variants", {}).items():
            if name in fleet.variants and v.get("DesiredWeight") is not None:
                fleet.variants[name].weight = float(v["DesiredWeight"])
        live.blue = fleet
        weights = self._variant_weights(fleet)

        def done(d: dict[str, Any]) -> None:
            if d["EndpointStatus"] == "Creating" or d.get("Operation") in ("create", "weights"):
                d["EndpointStatus"] = "InService"
                d["Operation"] = None
                add_history(d, f"InService: serving endpoint config {fleet.config_name} "
                               f"({', '.join(fleet.variants)})")
            d["Variants"] = weights

        self._write(live.name, done)

    def _resume_then_update(self, live: LiveEndpoint, doc: dict[str, Any]) -> None:
        live.blue = self.build_fleet(doc["EndpointConfigName"])
        self._blue_green_update(live, doc)

    def _apply_weights(self, live: LiveEndpoint, doc: dict[str, Any]) -> None:
        fleet = live.blue
        if fleet is None:
            return
        with fleet.lock:
            for name, v in doc["Variants"].items():
                if name in fleet.variants:
                    fleet.variants[name].weight = float(v["DesiredWeight"])
                    fleet.variants[name].current = 0.0
        weights = self._variant_weights(fleet)

        def done(d: dict[str, Any]) -> None:
            d["Variants"] = weights
            d["EndpointStatus"] = "InService"
            d["Operation"] = None
            add_history(d, "variant weights applied: " + ", ".join(f"{n}={w['CurrentWeight']:g}"
                                                                 for n, w in weights.items()))

        self._write(live.name, done)

    # ---- blue/green ------------------------------------------------------------------------
    def _set_phase(self, name: str, phase: str, message: str, share: float) -> bool:
        now = time.time()

        def change(d: dict[str, Any]) -> None:
            if d.get("Pending"):
                d["Pending"].update(Phase=phase, PhaseMessage=message, PhaseStartTime=now, TrafficShare=share)
            add_history(d, f"{phase}: {message}", now)

        return self._write(name, change)

    def _check_alarms(self, live: LiveEndpoint, alarms: list[dict[str, Any]], green: Fleet,
                      since: float) -> str | None:
        """The reason to roll back if any rollback alarm is in ALARM on the green fleet's metrics."""
        now = time.time()
        for alarm in alarms:
            dims = alarm_dimensions(alarm)
            if dims.get("EndpointName") not in (None, live.name):
                continue  # an alarm on another endpoint's metrics: nothing of ours to evaluate
            variant = dims.get("VariantName")
            samples = self.metrics.samples(live.name, green.config_name, variant, since)
            result = evaluate_alarm(alarm, samples, now, self.config.clock_scale)
            if result.state == "ALARM":
                return f"alarm {alarm['AlarmName']} went into ALARM on the green fleet: {result.reason}"
        return None

    def _bake(self, live: LiveEndpoint, seconds: float, alarms: list[dict[str, Any]], green: Fleet,
              since: float, deadline: float | None) -> str | None:
        """Wait ``seconds`` (already scaled) watching the alarms; the rollback reason, or None."""
        end = time.monotonic() + seconds
        while True:
            if self.endpoints.get(live.name) is not live:
                return "endpoint deleted during the deployment"
            reason = self._check_alarms(live, alarms, green, since)
            if reason:
                return reason
            if deadline is not None and time.monotonic() > deadline:
                return "the deployment exceeded MaximumExecutionTimeoutInSeconds"
            if time.monotonic() >= end:
                return None
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))

    def _blue_green_update(self, live: LiveEndpoint, doc: dict[str, Any]) -> None:
        pending = doc["Pending"]
        policy = pending["DeploymentConfig"]["BlueGreenUpdatePolicy"]
        routing = policy["TrafficRoutingConfiguration"]
        scale = self.config.clock_scale
        started = time.monotonic()
        timeout = policy.get("MaximumExecutionTimeoutInSeconds")
        deadline = started + timeout * scale if timeout else None
        alarm_names = [a["AlarmName"] for a in pending["DeploymentConfig"].get("AutoRollbackConfiguration", {})
                       .get("Alarms", [])]
        alarms = [a for a in (self.store.get("alarms", n) for n in alarm_names) if a is not None]
        since = time.time()
        try:
            green = self.build_fleet(pending["EndpointConfigName"])
        except Exception as exc:
            self._roll_back(live, f"the green fleet failed to provision: {exc}")
            return
        # CanarySize/LinearStepSize are shares of each variant's instances; the smallest variant moves the
        # largest share per step, and the host shifts the whole green fleet by that share
        instances = min(v.instance_count for v in green.variants.values())
        steps = traffic_steps(routing, instances)
        wait_s = float(routing.get("WaitIntervalInSeconds", 0)) * scale
        live.green_share, live.credit = 0.0, 0.0
        live.green = green
        for i, share in enumerate(steps, start=1):
            live.green_share = share
            if not self._set_phase(live.name, "ActivatingTraffic",
                                   f"step {i}/{len(steps)} ({routing['Type']}): {share:.0%} of traffic on green", share):
                return
            self._set_phase(live.name, "Baking", f"step {i}/{len(steps)}: baking {routing['WaitIntervalInSeconds']} s "
                                                 f"with {share:.0%} on green, alarms watching green", share)
            reason = self._bake(live, wait_s, alarms, green, since, deadline)
            if reason:
                self._roll_back(live, reason)
                return
        termination = int(policy.get("TerminationWaitInSeconds", 0))
        self._set_phase(live.name, "Baking", f"all traffic on green; waiting {termination} s before terminating blue", 1.0)
        reason = self._bake(live, termination * scale, alarms, green, since, deadline)
        if reason:
            self._roll_back(live, reason)
            return
        with live.lock:
            live.blue, live.green, live.green_share = green, None, 0.0
        weights = self._variant_weights(green)
        requested = pending.get("RequestedDeploymentConfig")

        def done(d: dict[str, Any]) -> None:
            d.update(EndpointStatus="InService", EndpointConfigName=green.config_name, Variants=weights,
                     Pending=None, Operation=None, FailureReason=None)
            if requested:
                d["LastDeploymentConfig"] = requested
            add_history(d, f"deployment complete: blue fleet terminated, serving {green.config_name}")

        self._write(live.name, done)

    def _roll_back(self, live: LiveEndpoint, reason: str) -> None:
        """Move all traffic back to blue, drop green, and record why."""
        with live.lock:
            live.green_share = 0.0
            live.green = None
        log.warning("endpoint %s: rolling back: %s", live.name, reason)

        def rolling(d: dict[str, Any]) -> None:
            d["EndpointStatus"] = "RollingBack"
            if d.get("Pending"):
                d["Pending"].update(TrafficShare=0.0, Phase="ActivatingTraffic",
                                    PhaseMessage="rolling back: all traffic to blue", PhaseStartTime=time.time())
            add_history(d, f"RollingBack: {reason}; all traffic moved back to the blue fleet")

        if not self._write(live.name, rolling):
            return
        time.sleep(ROLLBACK_HOLD_S)

        def done(d: dict[str, Any]) -> None:
            config = (d.get("Pending") or {}).get("EndpointConfigName", "?")
            d.update(EndpointStatus="InService", Pending=None, Operation=None,
                     FailureReason=f"Update to endpoint config {config} was rolled back: {reason}.")
            add_history(d, f"rollback complete: serving {d['EndpointConfigName']} (blue)")

        self._write(live.name, done)

    # ---- invocations -----------------------------------------------------------------------
    def invoke(self, call: Invocation) -> tuple[bytes, str, str]:
        """One InvokeEndpoint: (response body, content type, invoked variant) or InvocationError."""
        name, params = call.endpoint, call.params
        if self._stop.is_set():
            raise InvocationError(503, "ServiceUnavailable", "The endpoint host is shutting down; retry shortly.")
        live = self.endpoints.get(name)
        if live is None:
            raise endpoint_not_found(name, self.config.account_id)
        if len(call.body) > self.max_body_bytes:
            raise validation_error(f"Request body of {len(call.body)} bytes exceeds the maximum payload size of "
                                   f"{self.max_body_bytes} bytes; send fewer instances per request")
        unsupported = _unsupported_member(name, params)
        if unsupported:
            raise validation_error(unsupported)
        target_variant = params.get("TargetVariant")
        fleet = live.pick_fleet(target_variant)
        if target_variant:
            variant = fleet.variants.get(target_variant)
            if variant is None:
                raise validation_error(f"Variant {target_variant} not found for endpoint {name}; variants: "
                                       f"{', '.join(fleet.variants)}")
        else:
            variant = fleet.pick_variant()
        content_type = params.get("ContentType") or "application/json"
        started = time.perf_counter()
        try:
            response = self._run_model(variant, call.body, content_type)
        except InvocationError as exc:
            if exc.outcome is not None:  # a variant's invocation that failed: counts in its metrics
                self._record(name, fleet, variant, started, exc.outcome)
            raise
        self._record(name, fleet, variant, started, "ok")
        when = dt.datetime.now(dt.UTC)
        path = self.capture.destination(fleet, name, variant.name, when)
        if path is not None and fleet.data_capture:
            self.capture.submit(path, capture_record(fleet.data_capture, call.body, content_type, response,
                                                     "application/json", when, params.get("InferenceId")))
        return response, "application/json", variant.name

    def _record(self, name: str, fleet: Fleet, variant: VariantRuntime, started: float, outcome: str) -> None:
        latency_us = (time.perf_counter() - started) * 1e6
        self.metrics.record(name, fleet.config_name, variant.name, Sample(time.time(), latency_us, outcome))

    def _run_model(self, variant: VariantRuntime, body: bytes, content_type: str) -> bytes:
        from infra.local.sagemaker.deepar_format import format_response

        predictor = variant.predictor
        base = content_type.split(";")[0].strip().lower()
        if base not in ("application/json", ""):
            raise model_error(variant.name, 415, f"content type {content_type!r} is not supported; "
                                                 "send application/json")
        try:
            instances, configuration = parse_request(body, self.max_body_bytes,
                                                     prediction_length=predictor.prediction_length)
        except InvalidRequest as exc:
            raise model_error(variant.name, 400, str(exc)) from None
        fault = variant.fault
        if fault.latency_ms:
            time.sleep(fault.latency_ms / 1000.0)
        if fault.error_rate and random.random() < fault.error_rate:
            raise model_error(variant.name, 500, f"injected fault ({FAULT_ENV}): the model crashed")
        try:
            with variant.predict_lock:
                predictions = predictor.predict(instances, configuration)
        except InvalidRequest as exc:
            raise model_error(variant.name, 400, str(exc)) from None
        except Exception as exc:
            log.exception("variant %s: prediction failed", variant.name)
            raise model_error(variant.name, 500, f"prediction failed: {exc}") from None
        return format_response(predictions)

    # ---- metrics ----------------------------------------------------------------------------
    def prometheus_text(self) -> str:
        """Per-variant counters, latency percentiles (ms) and traffic shares, Prometheus text format."""
        lines = ["# HELP aircast_endpoint_invocations_total InvokeEndpoint calls served by a variant.",
                 "# TYPE aircast_endpoint_invocations_total counter"]
        err_lines = ["# HELP aircast_endpoint_invocation_errors_total Failed invocations by class (4xx, 5xx).",
                     "# TYPE aircast_endpoint_invocation_errors_total counter"]
        lat_lines = ["# HELP aircast_endpoint_model_latency_ms Model latency percentiles over recent invocations.",
                     "# TYPE aircast_endpoint_model_latency_ms summary"]
        for (endpoint, config, variant), totals, latencies in sorted(self.metrics.snapshot()):
            live = self.endpoints.get(endpoint)
            fleet = "retired"
            if live is not None and live.blue is not None and live.blue.config_name == config:
                fleet = "blue"
            elif live is not None and live.green is not None and live.green.config_name == config:
                fleet = "green"
            labels = f'endpoint="{endpoint}",variant="{variant}",endpoint_config="{config}",fleet="{fleet}"'
            lines.append(f"aircast_endpoint_invocations_total{{{labels}}} {sum(totals.values())}")
            for cls in ("4xx", "5xx"):
                err_lines.append(f'aircast_endpoint_invocation_errors_total{{{labels},class="{cls}"}} {totals[cls]}')
            if latencies:
                for q in (0.5, 0.9, 0.99):
                    lat_lines.append(f'aircast_endpoint_model_latency_ms{{{labels},quantile="{q}"}} '
                                     f"{_percentile(latencies, q) / 1000.0:.3f}")
                lat_lines.append(f"aircast_endpoint_model_latency_ms_count{{{labels}}} {len(latencies)}")
        share_lines = ["# HELP aircast_endpoint_green_traffic_share Share of traffic on the green fleet.",
                       "# TYPE aircast_endpoint_green_traffic_share gauge"]
        for name, live in sorted(self.endpoints.items()):
            share_lines.append(f'aircast_endpoint_green_traffic_share{{endpoint="{name}"}} {live.green_share:g}')
        return "\n".join(lines + err_lines + lat_lines + share_lines) + "\n"


# ---------------------------------------------------------------------------- HTTP


def create_app(host: EndpointHost) -> Any:
    """The FastAPI app over an :class:`EndpointHost`."""
    app = FastAPI(title="aircast local SageMaker Runtime", docs_url=None, redoc_url=None, openapi_url=None)

    def error_response(err: InvocationError) -> Response:
        return JSONResponse(err.body(), status_code=err.status, headers={"x-amzn-ErrorType": err.code})

    @app.post("/endpoints/{name}/invocations")
    async def invocations(name: str, request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and not declared.isdigit():
            return error_response(validation_error(f"Content-Length {declared!r} is not a number of bytes"))
        if declared and int(declared) > host.max_body_bytes:
            return error_response(validation_error(
                f"Request body of {declared} bytes exceeds the maximum payload size of "
                f"{host.max_body_bytes} bytes; send fewer instances per request"))
        try:
            body = await _read_body(request, host.max_body_bytes)
            call = parse_invocation(name, request.headers, body)
            data, ctype, variant = await to_thread.run_sync(host.invoke, call)
        except InvocationError as err:
            return error_response(err)
        except Exception as exc:  # a bug of the host, never a client's mistake; the server keeps serving
            log.exception("invocation of %s failed", name)
            return JSONResponse({"message": f"internal failure: {exc}"}, status_code=500,
                                headers={"x-amzn-ErrorType": "InternalFailure"})
        return Response(content=data, media_type=ctype, headers={"X-Amzn-Invoked-Production-Variant": variant})

    @app.get("/ping")
    async def ping() -> Response:
        return JSONResponse({"status": "healthy", "endpoints": sorted(host.endpoints)})

    @app.get("/metrics")
    async def metrics() -> Response:
        return PlainTextResponse(host.prometheus_text(), media_type="text/plain; version=0.0.4")

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
    async def not_found(path: str) -> Response:
        return JSONResponse({"message": f"unknown path /{path}; use POST /endpoints/NAME/invocations"},
                            status_code=404, headers={"x-amzn-ErrorType": "UnknownOperationException"})

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it passes ``limit`` bytes (a chunked body declares no length)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise validation_error(f"Request body of more than {limit} bytes exceeds the maximum payload size of "
                                   f"{limit} bytes; send fewer instances per request")
        chunks.append(chunk)
    return b"".join(chunks)


def serve(config: LocalConfig, port: int, bind: str = "127.0.0.1") -> None:
    """Serve the SageMaker Runtime API on ``bind``:``port`` (0: any free port, reported in the run dir)
    until interrupted."""
    import socket

    import uvicorn

    from infra.local.sagemaker.service import NAME
    from infra.local.stack import write_bound_port

    # bind first: with port 0 the port the kernel chose is reported before the first request can come
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind, port))
    port = sock.getsockname()[1]
    host = EndpointHost(config)
    host.start()
    server = uvicorn.Server(uvicorn.Config(create_app(host), log_level="warning", access_log=False,
                                           # clients (boto3, load generators) keep connections open
                                           timeout_keep_alive=75))
    print(f"endpoint host on http://{bind}:{port} (data dir {config.data_dir}, clock scale {config.clock_scale:g})",
          flush=True)
    write_bound_port(config.run_dir, NAME, port)
    try:
        server.run(sockets=[sock])
    finally:
        host.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m infra.local.sagemaker.host --data-dir DIR --port N [--bind ADDR --region R --account-id A
    --clock-scale S]``."""
    parser = argparse.ArgumentParser(description="aircast local SageMaker endpoint host (SageMaker Runtime API)")
    LocalConfig.add_arguments(parser)
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0: any free port, reported)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(LocalConfig.from_arguments(args), args.port, args.bind)


if __name__ == "__main__":
    main()
