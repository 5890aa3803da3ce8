"""The endpoint host's reconciler: what the control plane asks for, made real, and the blue/green state machine.

The control plane (:mod:`infra.local.sagemaker.endpoints`) records desired state in SQLite; the reconciler
polls it and executes what it asks: loads an endpoint's models (``create``), applies variant weights
(``weights``), or runs a blue/green deployment (``update``): provision green; shift traffic as
ALL_AT_ONCE / CANARY / LINEAR says (whole instances, :func:`awsrules.sagemaker_endpoints.traffic_steps`);
bake for ``WaitIntervalInSeconds`` after each shift while the ``AutoRollbackConfiguration`` alarms watch
the green fleet's metrics; wait ``TerminationWaitInSeconds``; then retire blue. An alarm in ALARM, a green
fleet that fails to load or ``MaximumExecutionTimeoutInSeconds`` rolls all traffic back to blue and records
why. Blue serves throughout. Progress goes back to the control plane's document, so ``DescribeEndpoint``
shows it. Waits run on the scaled clock (``LocalConfig.clock_scale``: real seconds = seconds × scale).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from awsrules.sagemaker_endpoints import traffic_steps
from infra.local.core.config import LocalConfig
from infra.local.core.poll import PollTimeout, poll_until
from infra.local.s3 import parse_s3_uri, uri_to_path
from infra.local.sagemaker.cloudwatch import alarm_dimensions, evaluate_alarm
from infra.local.sagemaker.endpoints import EndpointStore, add_history
from infra.local.sagemaker.host.metrics import Metrics
from infra.local.sagemaker.host.routing import FAULT_ENV, Fleet, LiveEndpoint, VariantRuntime, parse_fault_injection

log = logging.getLogger("aircast.endpoint_host")

ROLLBACK_HOLD_S = 0.3  # how long RollingBack stays visible before InService again (real seconds)
BAKE_POLL_S = 0.05  # how often a baking deployment looks at its alarms

Document = dict[str, Any]


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


def build_fleet(store: EndpointStore, models: ModelCache, config_name: str) -> Fleet:
    """Load every variant's model of an endpoint config (raises with the reason on failure)."""
    cfg = store.get("endpoint_configs", config_name)
    if cfg is None:
        raise RuntimeError(f"endpoint config {config_name} no longer exists")
    variants: dict[str, VariantRuntime] = {}
    for pv in cfg["ProductionVariants"]:
        model = store.get("models", pv["ModelName"])
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
            runtime.predictor = models.get(container["ModelDataUrl"])
        except Exception as exc:
            raise RuntimeError(f"variant {pv['VariantName']}: could not load model {pv['ModelName']}: {exc}") from exc
        variants[pv["VariantName"]] = runtime
    return Fleet(config_name, variants, cfg.get("DataCaptureConfig"))


class Reconciler:
    """Brings the served endpoints (``endpoints``, shared with the host) to the control plane's desired state."""

    def __init__(self, config: LocalConfig, store: EndpointStore, models: ModelCache, metrics: Metrics,
                 endpoints: MutableMapping[str, LiveEndpoint]) -> None:
        self.config, self.store, self.models, self.metrics = config, store, models, metrics
        self.endpoints = endpoints

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

    def _spawn(self, live: LiveEndpoint, target: Callable[[LiveEndpoint, Document], None], doc: Document) -> None:
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

    def _write(self, name: str, change: Callable[[Document], Any]) -> bool:
        """Apply ``change(doc)`` to the endpoint's document in one transaction; False if it was deleted."""
        with self.store.transaction() as conn:
            doc = self.store.get("endpoints", name, conn)
            if doc is None:
                return False
            change(doc)
            doc["LastModifiedTime"] = time.time()
            self.store.put(conn, "endpoints", name, doc)
        return True

    def build_fleet(self, config_name: str) -> Fleet:
        return build_fleet(self.store, self.models, config_name)

    # ---- create, weights ------------------------------------------------------------------
    def _create(self, live: LiveEndpoint, doc: Document) -> None:
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
        weights = fleet.weights()

        def done(d: Document) -> None:
            if d["EndpointStatus"] == "Creating" or d.get("Operation") in ("create", "weights"):
                d["EndpointStatus"] = "InService"
                d["Operation"] = None
                add_history(d, f"InService: serving endpoint config {fleet.config_name} "
                               f"({', '.join(fleet.variants)})")
            d["Variants"] = weights

        self._write(live.name, done)

    def _resume_then_update(self, live: LiveEndpoint, doc: Document) -> None:
        live.blue = self.build_fleet(doc["EndpointConfigName"])
        self._blue_green_update(live, doc)

    def _apply_weights(self, live: LiveEndpoint, doc: Document) -> None:
        fleet = live.blue
        if fleet is None:
            return
        with fleet.lock:
            for name, v in doc["Variants"].items():
                if name in fleet.variants:
                    fleet.variants[name].weight = float(v["DesiredWeight"])
                    fleet.variants[name].current = 0.0
        weights = fleet.weights()

        def done(d: Document) -> None:
            d["Variants"] = weights
            d["EndpointStatus"] = "InService"
            d["Operation"] = None
            add_history(d, "variant weights applied: " + ", ".join(f"{n}={w['CurrentWeight']:g}"
                                                                 for n, w in weights.items()))

        self._write(live.name, done)

    # ---- blue/green ------------------------------------------------------------------------
    def _set_phase(self, name: str, phase: str, message: str, share: float) -> bool:
        now = time.time()

        def change(d: Document) -> None:
            if d.get("Pending"):
                d["Pending"].update(Phase=phase, PhaseMessage=message, PhaseStartTime=now, TrafficShare=share)
            add_history(d, f"{phase}: {message}", now)

        return self._write(name, change)

    def _check_alarms(self, live: LiveEndpoint, alarms: list[Document], green: Fleet, since: float) -> str | None:
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

    def _bake(self, live: LiveEndpoint, seconds: float, alarms: list[Document], green: Fleet,
              since: float, deadline: float | None) -> str | None:
        """Wait ``seconds`` (already scaled) watching the alarms; the rollback reason, or None."""
        def rollback_reason() -> str | None:
            if self.endpoints.get(live.name) is not live:
                return "endpoint deleted during the deployment"
            reason = self._check_alarms(live, alarms, green, since)
            if reason:
                return reason
            if deadline is not None and time.monotonic() > deadline:
                return "the deployment exceeded MaximumExecutionTimeoutInSeconds"
            return None

        try:
            return poll_until(rollback_reason, seconds, BAKE_POLL_S, f"baking of {live.name}")
        except PollTimeout:
            return None  # baked the whole interval: no alarm, no timeout

    def _blue_green_update(self, live: LiveEndpoint, doc: Document) -> None:
        pending = doc["Pending"]
        policy = pending["DeploymentConfig"]["BlueGreenUpdatePolicy"]
        routing = policy["TrafficRoutingConfiguration"]
        scale = self.config.clock_scale
        timeout = policy.get("MaximumExecutionTimeoutInSeconds")
        deadline = time.monotonic() + timeout * scale if timeout else None
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
        self._complete(live, green, pending.get("RequestedDeploymentConfig"))

    def _complete(self, live: LiveEndpoint, green: Fleet, requested: Document | None) -> None:
        """Green serves everything: blue is retired and the control plane says InService on the new config."""
        with live.lock:
            live.blue, live.green, live.green_share = green, None, 0.0
        weights = green.weights()

        def done(d: Document) -> None:
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

        def rolling(d: Document) -> None:
            d["EndpointStatus"] = "RollingBack"
            if d.get("Pending"):
                d["Pending"].update(TrafficShare=0.0, Phase="ActivatingTraffic",
                                    PhaseMessage="rolling back: all traffic to blue", PhaseStartTime=time.time())
            add_history(d, f"RollingBack: {reason}; all traffic moved back to the blue fleet")

        if not self._write(live.name, rolling):
            return
        time.sleep(ROLLBACK_HOLD_S)

        def done(d: Document) -> None:
            config = (d.get("Pending") or {}).get("EndpointConfigName", "?")
            d.update(EndpointStatus="InService", Pending=None, Operation=None,
                     FailureReason=f"Update to endpoint config {config} was rolled back: {reason}.")
            add_history(d, f"rollback complete: serving {d['EndpointConfigName']} (blue)")

        self._write(live.name, done)
