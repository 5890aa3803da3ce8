"""Which fleet and variant answer an invocation, and running its model with the faults its container asks for.

An endpoint serves one fleet (blue) or, during a blue/green deployment, two (blue and green): exactly the
green fleet's traffic share goes to green (a deterministic credit, no randomness); within a fleet, smooth
weighted round robin over the variants with weight above 0 gives each its exact share, and
``TargetVariant`` picks one by name from whichever fleet has it.

Chaos hook: a model's container ``Environment`` may set ``AIRCAST_FAULT_INJECTION`` (comma-separated):
``error`` (every invocation fails with a model 500), ``error_rate=0.3`` (that fraction fails),
``latency_ms=800`` (each invocation takes that much longer), ``load_failure`` (the model never loads).
It exists for testing rollbacks and is ignored on AWS (the built-in container never reads it).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from infra.local.sagemaker.deepar_format import InvalidRequest, format_response, parse_request
from infra.local.sagemaker.host.invocations import InvocationError, model_error

log = logging.getLogger("aircast.endpoint_host")

FAULT_ENV = "AIRCAST_FAULT_INJECTION"


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


# ---------------------------------------------------------------------------- fleets


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
                raise InvocationError.validation("Every production variant of the endpoint has weight 0")
            total = sum(v.weight for v in live)
            for v in live:
                v.current += v.weight
            best = max(live, key=lambda v: v.current)
            best.current -= total
            return best

    def weights(self) -> dict[str, dict[str, Any]]:
        """The variants' weights and instance counts as the control plane records them."""
        return {v.name: {"CurrentWeight": v.weight, "DesiredWeight": v.weight,
                         "CurrentInstanceCount": v.instance_count, "DesiredInstanceCount": v.instance_count}
                for v in self.variants.values()}


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
            raise InvocationError.validation(f"Endpoint {self.name} is not ready yet (its models are still loading)")
        if target_variant and target_variant not in chosen.variants:
            for other in (blue, green):
                if other is not None and target_variant in other.variants:
                    return other
        return chosen

    def route(self, target_variant: str | None) -> tuple[Fleet, VariantRuntime]:
        """The fleet and variant that answer the next invocation (``TargetVariant``: that one, by name)."""
        fleet = self.pick_fleet(target_variant)
        if not target_variant:
            return fleet, fleet.pick_variant()
        variant = fleet.variants.get(target_variant)
        if variant is None:
            raise InvocationError.validation(f"Variant {target_variant} not found for endpoint {self.name}; "
                                             f"variants: {', '.join(fleet.variants)}")
        return fleet, variant


# ---------------------------------------------------------------------------- the model


def run_model(variant: VariantRuntime, body: bytes, content_type: str, max_body_bytes: int) -> bytes:
    """The variant's DeepAR container answering one request, with its injected faults; a request the
    container refuses (or a fault) is a ``ModelError``."""
    predictor = variant.predictor
    base = content_type.split(";")[0].strip().lower()
    if base not in ("application/json", ""):
        raise model_error(variant.name, 415, f"content type {content_type!r} is not supported; send application/json")
    try:
        instances, configuration = parse_request(body, max_body_bytes, prediction_length=predictor.prediction_length)
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
