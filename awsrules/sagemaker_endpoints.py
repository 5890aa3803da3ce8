"""SageMaker's validation rules for endpoint deployment requests, as pure functions.

SageMaker rejects a bad ``DeploymentConfig`` or production-variant list with a
``ValidationException`` before anything changes. The deployment code checks the
same rules client-side (so a bad policy fails fast on AWS too) and the local
control plane (``infra/local/sagemaker``) enforces them server-side, so both
backends refuse the same input; the local endpoint host shifts traffic by
:func:`traffic_steps`, as SageMaker does.
Each function returns nothing and raises :class:`DeploymentConfigError` whose
message names the offending field, the value and the allowed range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

# Ranges from the SageMaker API reference (botocore's service model agrees).
WAIT_INTERVAL_RANGE = (0, 3600)
TERMINATION_WAIT_RANGE = (0, 3600)
MAX_EXECUTION_TIMEOUT_RANGE = (600, 28800)
TRAFFIC_ROUTING_TYPES = ("ALL_AT_ONCE", "CANARY", "LINEAR")
#: the member that sizes each shifting routing type's steps (ALL_AT_ONCE takes neither)
STEP_SIZE_MEMBER = {"CANARY": "CanarySize", "LINEAR": "LinearStepSize"}
CAPACITY_SIZE_TYPES = ("INSTANCE_COUNT", "CAPACITY_PERCENT")
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
MODEL_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?$")


class DeploymentConfigError(ValueError):
    """A deployment request SageMaker would reject (``ValidationException``)."""


def _int_in_range(value: Any, where: str, lo: int, hi: int | None) -> int:
    # bool is an int in Python but not an Integer in the AWS model
    if isinstance(value, bool) or not isinstance(value, int):
        raise DeploymentConfigError(f"{where}: expected an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise DeploymentConfigError(f"{where}: {value} is out of range {bound}")
    return value


def validate_resource_name(name: Any, kind: str, pattern: re.Pattern[str] = NAME_PATTERN) -> str:
    """Endpoint/config/variant/model names: 1-63 characters of letters, digits and hyphens."""
    if not isinstance(name, str) or not pattern.match(name):
        raise DeploymentConfigError(
            f"{kind} {name!r} is invalid: use 1-63 letters, digits and hyphens, starting with a letter or digit")
    return name


def step_instances(size: Mapping[str, Any], where: str, instance_count: int) -> int:
    """Validate a ``CapacitySize`` and return how many of the variant's instances one step turns on.

    SageMaker shifts traffic by whole instances of the green fleet: ``INSTANCE_COUNT`` is that
    number; ``CAPACITY_PERCENT`` is a share of the variant's instance count, rounded up to a whole
    instance (at least one). The rules on canary and linear sizes apply to this number.
    """
    if not isinstance(size, Mapping):
        raise DeploymentConfigError(f"{where}: expected an object with Type and Value, got {size!r}")
    kind = size.get("Type")
    if kind not in CAPACITY_SIZE_TYPES:
        raise DeploymentConfigError(f"{where}.Type: {kind!r} is not one of {', '.join(CAPACITY_SIZE_TYPES)}")
    value = _int_in_range(size.get("Value"), f"{where}.Value", 1, None)
    count = max(1, int(instance_count))
    if kind == "CAPACITY_PERCENT":
        if value > 100:
            raise DeploymentConfigError(f"{where}.Value: {value}% is more than 100%")
        return max(1, math.ceil(value * count / 100 - 1e-9))
    if value > count:
        raise DeploymentConfigError(
            f"{where}.Value: {value} instances is more than the variant's {count} instance(s)")
    return value


def capacity_fraction(size: Mapping[str, Any], where: str, green_instance_count: int) -> float:
    """A ``CapacitySize`` as the share of the variant's instances (and so of its traffic) one step moves."""
    return step_instances(size, where, green_instance_count) / float(max(1, int(green_instance_count)))


def shift_possible(kind: str, size: Mapping[str, Any], instance_count: int) -> bool:
    """Whether SageMaker accepts a ``CANARY``/``LINEAR`` step of ``size`` on a variant of ``instance_count``."""
    try:
        _check_step(kind, size, instance_count)
    except DeploymentConfigError:
        return False
    return True


def _check_step(kind: str, size: Mapping[str, Any], instance_count: int) -> float:
    """The share of the variant one step moves; raises when it breaks the canary/linear rule."""
    field = "CanarySize" if kind == "CANARY" else "LinearStepSize"
    where = f"TrafficRoutingConfiguration.{field}"
    count = max(1, int(instance_count))
    instances = step_instances(size, where, count)
    share = instances / count
    plural = "s" if count != 1 else ""
    if kind == "CANARY" and share > 0.5 + 1e-9:
        raise DeploymentConfigError(
            f"{where}: {instances} of the variant's {count} instance{plural} ({share:.0%}) is more than 50%; the "
            "canary must be less than or equal to 50% of the variant's total instance count"
            + (" (a variant of one instance cannot take a canary: use ALL_AT_ONCE, or 2 or more instances)"
               if count == 1 else ""))
    if kind == "LINEAR" and not 0.1 - 1e-9 <= share <= 0.5 + 1e-9:
        raise DeploymentConfigError(
            f"{where}: {instances} of the variant's {count} instance{plural} ({share:.0%}) is outside 10-50%; each "
            "linear step must be 10-50% of the variant's total instance count"
            + (" (a variant of one instance cannot shift linearly: use ALL_AT_ONCE, or 2 or more instances)"
               if count == 1 else ""))
    return share


def traffic_steps(routing: Mapping[str, Any], green_instance_count: int = 1) -> list[float]:
    """The green fleet's traffic share after each shift, ending at 1.0.

    Shifts move whole instances: ALL_AT_ONCE → ``[1.0]``; CANARY of 20% on 5 instances → ``[0.2, 1.0]``;
    LINEAR of 25% on 4 instances → ``[0.25, 0.5, 0.75, 1.0]``; LINEAR of 20% on 2 instances moves one
    instance per step → ``[0.5, 1.0]``.
    """
    kind = routing.get("Type")
    if kind == "ALL_AT_ONCE":
        return [1.0]
    if kind == "CANARY":
        share = capacity_fraction(routing["CanarySize"], "CanarySize", green_instance_count)
        return [share, 1.0] if share < 1.0 else [1.0]
    share = capacity_fraction(routing["LinearStepSize"], "LinearStepSize", green_instance_count)
    steps: list[float] = []
    current = 0.0
    while current < 1.0 - 1e-9:
        current = min(1.0, current + share)
        steps.append(round(current, 6))
    return steps


def validate_deployment_config(config: Mapping[str, Any], instance_counts: int | Sequence[int] = 1) -> None:
    """Check a ``DeploymentConfig`` as ``UpdateEndpoint`` does, for a new config whose variants have
    ``instance_counts`` instances (one count, or one per variant).

    Rules: exactly one of BlueGreenUpdatePolicy / RollingUpdatePolicy; routing Type in
    ALL_AT_ONCE/CANARY/LINEAR; WaitIntervalInSeconds 0..3600; CanarySize required for CANARY
    and at most 50% of each variant's instance count; LinearStepSize required for LINEAR and 10..50%
    of each variant's instance count (steps move whole instances, so a one-instance variant can do
    neither); no size for ALL_AT_ONCE; TerminationWaitInSeconds 0..3600; MaximumExecutionTimeoutInSeconds
    600..28800 and larger than the total of the waits; at most 10 rollback alarms with names.
    """
    counts = [instance_counts] if isinstance(instance_counts, int) else list(instance_counts) or [1]
    if not isinstance(config, Mapping):
        raise DeploymentConfigError(f"DeploymentConfig: expected an object, got {config!r}")
    unknown = sorted(set(config) - {"BlueGreenUpdatePolicy", "RollingUpdatePolicy", "AutoRollbackConfiguration"})
    if unknown:
        raise DeploymentConfigError(f"DeploymentConfig: unknown field(s) {', '.join(unknown)}")
    blue_green = config.get("BlueGreenUpdatePolicy")
    if blue_green is None and config.get("RollingUpdatePolicy") is not None:
        raise DeploymentConfigError("DeploymentConfig: RollingUpdatePolicy is not supported here; use BlueGreenUpdatePolicy")
    if blue_green is not None and config.get("RollingUpdatePolicy") is not None:
        raise DeploymentConfigError("DeploymentConfig: give either BlueGreenUpdatePolicy or RollingUpdatePolicy, not both")
    if blue_green is None:
        raise DeploymentConfigError("DeploymentConfig: BlueGreenUpdatePolicy is required")
    routing = blue_green.get("TrafficRoutingConfiguration")
    if not isinstance(routing, Mapping):
        raise DeploymentConfigError("BlueGreenUpdatePolicy.TrafficRoutingConfiguration is required")
    kind = routing.get("Type")
    if kind not in TRAFFIC_ROUTING_TYPES:
        raise DeploymentConfigError(
            f"TrafficRoutingConfiguration.Type: {kind!r} is not one of {', '.join(TRAFFIC_ROUTING_TYPES)}")
    if "WaitIntervalInSeconds" not in routing:
        raise DeploymentConfigError("TrafficRoutingConfiguration.WaitIntervalInSeconds is required")
    wait = _int_in_range(routing["WaitIntervalInSeconds"], "TrafficRoutingConfiguration.WaitIntervalInSeconds",
                         *WAIT_INTERVAL_RANGE)
    if kind in STEP_SIZE_MEMBER:
        member = STEP_SIZE_MEMBER[kind]
        other = STEP_SIZE_MEMBER["LINEAR" if kind == "CANARY" else "CANARY"]
        if member not in routing:
            raise DeploymentConfigError(f"TrafficRoutingConfiguration.{member} is required for Type {kind}")
        if other in routing:
            raise DeploymentConfigError(f"TrafficRoutingConfiguration.{other} is not allowed for Type {kind}")
        for count in counts:
            _check_step(kind, routing[member], count)
    elif any(m in routing for m in STEP_SIZE_MEMBER.values()):
        raise DeploymentConfigError("TrafficRoutingConfiguration: ALL_AT_ONCE takes no CanarySize or LinearStepSize")
    termination = _int_in_range(blue_green.get("TerminationWaitInSeconds", 0),
                                "BlueGreenUpdatePolicy.TerminationWaitInSeconds", *TERMINATION_WAIT_RANGE)
    if "MaximumExecutionTimeoutInSeconds" in blue_green:
        timeout = _int_in_range(blue_green["MaximumExecutionTimeoutInSeconds"],
                                "BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds", *MAX_EXECUTION_TIMEOUT_RANGE)
        total_wait = wait * max(len(traffic_steps(routing, count)) for count in counts) + termination
        if timeout <= total_wait:
            raise DeploymentConfigError(
                f"BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds: {timeout} s must be larger than the "
                f"deployment's total waiting time of {total_wait} s (wait intervals + termination wait)")
    rollback = config.get("AutoRollbackConfiguration")
    if rollback is not None:
        alarms = rollback.get("Alarms", []) if isinstance(rollback, Mapping) else None
        if not isinstance(alarms, Sequence) or isinstance(alarms, str):
            raise DeploymentConfigError("AutoRollbackConfiguration.Alarms: expected a list of {\"AlarmName\": ...}")
        if not 1 <= len(alarms) <= 10:
            raise DeploymentConfigError(f"AutoRollbackConfiguration.Alarms: {len(alarms)} alarms; give 1 to 10")
        for i, alarm in enumerate(alarms):
            name = alarm.get("AlarmName") if isinstance(alarm, Mapping) else None
            if not isinstance(name, str) or not name.strip() or len(name) > 255:
                raise DeploymentConfigError(f"AutoRollbackConfiguration.Alarms[{i}].AlarmName: {name!r} is not a valid alarm name")


def validate_production_variants(variants: Any, multi_model: Sequence[bool] | None = None) -> None:
    """Check ``ProductionVariants`` as ``CreateEndpointConfig`` does: 1-10 uniquely named variants,
    each with a ModelName, InitialInstanceCount >= 1 and InitialVariantWeight >= 0."""
    if not isinstance(variants, Sequence) or isinstance(variants, str) or not 1 <= len(variants) <= 10:
        raise DeploymentConfigError("ProductionVariants: give a list of 1 to 10 variants")
    seen: set[str] = set()
    for i, variant in enumerate(variants):
        where = f"ProductionVariants[{i}]"
        if not isinstance(variant, Mapping):
            raise DeploymentConfigError(f"{where}: expected an object")
        name = validate_resource_name(variant.get("VariantName"), f"{where}.VariantName")
        if name in seen:
            raise DeploymentConfigError(f"{where}.VariantName: {name!r} is used twice; variant names must be unique")
        seen.add(name)
        if not isinstance(variant.get("ModelName"), str):
            raise DeploymentConfigError(f"{where}.ModelName is required")
        if "InitialInstanceCount" in variant:
            _int_in_range(variant["InitialInstanceCount"], f"{where}.InitialInstanceCount", 1, None)
        weight = variant.get("InitialVariantWeight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise DeploymentConfigError(f"{where}.InitialVariantWeight: {weight!r} must be a number >= 0")
