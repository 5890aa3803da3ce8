"""AWS's validation rules for endpoint deployment requests, as pure functions.

SageMaker rejects a bad ``DeploymentConfig`` or production-variant list with a
``ValidationException`` before anything changes. The deployment code checks the
same rules client-side (so a bad policy fails fast on AWS too) and the local
control plane enforces them server-side, so both backends refuse the same input.
Each function returns nothing and raises :class:`DeploymentConfigError` whose
message names the offending field, the value and the allowed range.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# Ranges from the SageMaker API reference (botocore's service model agrees).
WAIT_INTERVAL_RANGE = (0, 3600)
TERMINATION_WAIT_RANGE = (0, 3600)
MAX_EXECUTION_TIMEOUT_RANGE = (600, 28800)
TRAFFIC_ROUTING_TYPES = ("ALL_AT_ONCE", "CANARY", "LINEAR")
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


def capacity_fraction(size: Mapping[str, Any], where: str, green_instance_count: int) -> float:
    """Validate a ``CapacitySize`` and return it as a fraction of the green fleet (0..1]."""
    if not isinstance(size, Mapping):
        raise DeploymentConfigError(f"{where}: expected an object with Type and Value, got {size!r}")
    kind = size.get("Type")
    if kind not in CAPACITY_SIZE_TYPES:
        raise DeploymentConfigError(f"{where}.Type: {kind!r} is not one of {', '.join(CAPACITY_SIZE_TYPES)}")
    value = _int_in_range(size.get("Value"), f"{where}.Value", 1, None)
    if kind == "CAPACITY_PERCENT":
        if value > 100:
            raise DeploymentConfigError(f"{where}.Value: {value}% is more than 100%")
        return value / 100.0
    if value > green_instance_count:
        raise DeploymentConfigError(
            f"{where}.Value: {value} instances is more than the fleet's {green_instance_count} instance(s)")
    return value / float(green_instance_count)


def traffic_steps(routing: Mapping[str, Any], green_instance_count: int = 1) -> list[float]:
    """The green fleet's traffic share after each shift, ending at 1.0.

    ALL_AT_ONCE → ``[1.0]``; CANARY of 20% → ``[0.2, 1.0]``; LINEAR of 25% → ``[0.25, 0.5, 0.75, 1.0]``.
    A percentage of a fleet smaller than one instance rounds up to one instance as SageMaker does;
    locally a fleet of one instance still gets the exact percentage of the requests.
    """
    kind = routing.get("Type")
    if kind == "ALL_AT_ONCE":
        return [1.0]
    if kind == "CANARY":
        share = capacity_fraction(routing["CanarySize"], "CanarySize", green_instance_count)
        return [share, 1.0]
    share = capacity_fraction(routing["LinearStepSize"], "LinearStepSize", green_instance_count)
    steps: list[float] = []
    current = 0.0
    while current < 1.0 - 1e-9:
        current = min(1.0, current + share)
        steps.append(round(current, 6))
    return steps


def validate_deployment_config(config: Mapping[str, Any], green_instance_count: int = 1) -> None:
    """Check a ``DeploymentConfig`` as ``UpdateEndpoint`` does.

    Rules: exactly one of BlueGreenUpdatePolicy / RollingUpdatePolicy; routing Type in
    ALL_AT_ONCE/CANARY/LINEAR; WaitIntervalInSeconds 0..3600; CanarySize required for CANARY
    and at most 50% of the fleet; LinearStepSize required for LINEAR and 10..50% of the fleet;
    no size for ALL_AT_ONCE; TerminationWaitInSeconds 0..3600; MaximumExecutionTimeoutInSeconds
    600..28800 and larger than the total of the waits; at most 10 rollback alarms with names.
    """
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
    if kind == "CANARY":
        if "CanarySize" not in routing:
            raise DeploymentConfigError("TrafficRoutingConfiguration.CanarySize is required for Type CANARY")
        if "LinearStepSize" in routing:
            raise DeploymentConfigError("TrafficRoutingConfiguration.LinearStepSize is not allowed for Type CANARY")
        share = capacity_fraction(routing["CanarySize"], "TrafficRoutingConfiguration.CanarySize", green_instance_count)
        if share > 0.5:
            raise DeploymentConfigError(
                f"TrafficRoutingConfiguration.CanarySize: {share:.0%} of the fleet is more than the allowed 50%")
    elif kind == "LINEAR":
        if "LinearStepSize" not in routing:
            raise DeploymentConfigError("TrafficRoutingConfiguration.LinearStepSize is required for Type LINEAR")
        if "CanarySize" in routing:
            raise DeploymentConfigError("TrafficRoutingConfiguration.CanarySize is not allowed for Type LINEAR")
        share = capacity_fraction(routing["LinearStepSize"], "TrafficRoutingConfiguration.LinearStepSize",
                                  green_instance_count)
        if not 0.1 - 1e-9 <= share <= 0.5 + 1e-9:
            raise DeploymentConfigError(
                f"TrafficRoutingConfiguration.LinearStepSize: {share:.0%} of the fleet is outside the allowed 10-50%")
    elif "CanarySize" in routing or "LinearStepSize" in routing:
        raise DeploymentConfigError("TrafficRoutingConfiguration: ALL_AT_ONCE takes no CanarySize or LinearStepSize")
    termination = _int_in_range(blue_green.get("TerminationWaitInSeconds", 0),
                                "BlueGreenUpdatePolicy.TerminationWaitInSeconds", *TERMINATION_WAIT_RANGE)
    if "MaximumExecutionTimeoutInSeconds" in blue_green:
        timeout = _int_in_range(blue_green["MaximumExecutionTimeoutInSeconds"],
                                "BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds", *MAX_EXECUTION_TIMEOUT_RANGE)
        total_wait = wait * len(traffic_steps(routing, green_instance_count)) + termination
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
