"""Deployment policies: how a new model reaches an endpoint (blue/green strategy + rollback alarms).

``DeploymentPolicy`` is the whole configuration of one deployment; ``deployment_config`` turns it
into SageMaker's ``DeploymentConfig`` and ``rollback_alarms`` into the CloudWatch alarms that
``AutoRollbackConfiguration`` names (error rate and model latency of the endpoint's variant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from awsrules.sagemaker_endpoints import DeploymentConfigError, shift_possible, validate_deployment_config

STRATEGIES = {"all-at-once": "ALL_AT_ONCE", "canary": "CANARY", "linear": "LINEAR"}
#: ``auto``: a canary where the fleet can take one, else all at once with a baking period
POLICY_STRATEGIES = ("auto", *STRATEGIES)


@dataclass(frozen=True)
class DeploymentPolicy:
    """A blue/green deployment policy.

    Parameters
    ----------
    strategy:
        ``canary`` (``step_percent`` of the fleet first, then the rest), ``linear`` (steps of
        ``step_percent``), ``all-at-once``, or ``auto`` (the default): a canary when the variant
        has enough instances for one (SageMaker shifts whole instances and a canary may be at most
        50% of them, so at least 2), otherwise all at once. A one-instance endpoint therefore gets
        ALL_AT_ONCE: all traffic moves to the green fleet, the alarms watch it for ``wait_seconds``
        (the baking period) and then ``termination_wait_seconds`` more, and any alarm rolls all
        traffic back to blue before blue is terminated.
    wait_seconds:
        Baking period after each traffic shift, alarms watching the green fleet (0..3600).
    termination_wait_seconds:
        How long blue is kept after all traffic moved to green (0..3600).
    max_timeout_seconds:
        Limit of the whole deployment (600..28800), larger than the sum of the waits.
    error_rate_threshold:
        Roll back when the green fleet's ``Invocation5XXErrors`` average (the error rate) exceeds this.
    latency_p99_ms:
        Roll back when the green fleet's ``ModelLatency`` p99 exceeds this many milliseconds.
    """

    strategy: str = "auto"
    step_percent: int = 20
    wait_seconds: int = 300
    termination_wait_seconds: int = 120
    max_timeout_seconds: int = 3600
    error_rate_threshold: float = 0.05
    latency_p99_ms: float = 2000.0
    alarm_period_seconds: int = 60
    instance_type: str = "ml.m5.large"
    instance_count: int = 1

    @classmethod
    def from_settings(cls, settings: Any) -> DeploymentPolicy:
        """The policy configured by ``AIRCAST_DEPLOY_*`` settings."""
        return cls(strategy=settings.deploy_strategy, step_percent=settings.deploy_step_percent,
                   wait_seconds=settings.deploy_wait_seconds,
                   termination_wait_seconds=settings.deploy_termination_wait_seconds,
                   max_timeout_seconds=settings.deploy_max_timeout_seconds,
                   error_rate_threshold=settings.deploy_error_rate_threshold,
                   latency_p99_ms=settings.deploy_latency_p99_ms, instance_type=settings.deploy_instance_type,
                   instance_count=settings.deploy_instance_count)

    def effective_strategy(self, instance_count: int | None = None) -> str:
        """The strategy a fleet of ``instance_count`` instances (default: the policy's) gets: ``auto``
        resolves to ``canary`` when SageMaker accepts the canary for that count, else ``all-at-once``."""
        if self.strategy not in POLICY_STRATEGIES:
            raise DeploymentConfigError(f"strategy {self.strategy!r} is not one of {', '.join(POLICY_STRATEGIES)}")
        if self.strategy != "auto":
            return self.strategy
        count = self.instance_count if instance_count is None else instance_count
        canary = {"Type": "CAPACITY_PERCENT", "Value": self.step_percent}
        return "canary" if shift_possible("CANARY", canary, count) else "all-at-once"

    def traffic_routing(self, instance_count: int | None = None) -> dict[str, Any]:
        """``TrafficRoutingConfiguration`` for a fleet of ``instance_count`` instances (default: the policy's)."""
        strategy = self.effective_strategy(instance_count)
        routing: dict[str, Any] = {"Type": STRATEGIES[strategy], "WaitIntervalInSeconds": self.wait_seconds}
        if strategy == "canary":
            routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": self.step_percent}
        elif strategy == "linear":
            routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": self.step_percent}
        return routing


def alarm_names(endpoint_name: str, variant_name: str) -> list[str]:
    """Names of the two rollback alarms of an endpoint variant."""
    return [f"{endpoint_name}-{variant_name}-error-rate", f"{endpoint_name}-{variant_name}-model-latency-p99"]


def rollback_alarms(policy: DeploymentPolicy, endpoint_name: str, variant_name: str) -> list[dict[str, Any]]:
    """``put_metric_alarm`` requests: error rate and p99 model latency of the variant.

    ``Invocation5XXErrors`` is published per request as 0/1, so its ``Average`` is the error rate;
    ``ModelLatency`` is in microseconds.
    """
    dims = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant_name}]
    errors, latency = alarm_names(endpoint_name, variant_name)
    common = {"Namespace": "AWS/SageMaker", "Dimensions": dims, "Period": policy.alarm_period_seconds,
              "EvaluationPeriods": 1, "ComparisonOperator": "GreaterThanThreshold",
              "TreatMissingData": "notBreaching"}
    return [
        {"AlarmName": errors, "MetricName": "Invocation5XXErrors", "Statistic": "Average",
         "Threshold": float(policy.error_rate_threshold),
         "AlarmDescription": f"Roll back a deployment of {endpoint_name} when the error rate exceeds "
                             f"{policy.error_rate_threshold:.0%}", **common},
        {"AlarmName": latency, "MetricName": "ModelLatency", "ExtendedStatistic": "p99",
         "Threshold": float(policy.latency_p99_ms) * 1000.0,
         "AlarmDescription": f"Roll back a deployment of {endpoint_name} when p99 model latency exceeds "
                             f"{policy.latency_p99_ms:g} ms", **common},
    ]


def deployment_config(policy: DeploymentPolicy, alarms: list[str], instance_count: int | None = None) -> dict[str, Any]:
    """SageMaker ``DeploymentConfig`` for the policy on a variant of ``instance_count`` instances (default:
    the policy's), validated as ``UpdateEndpoint`` validates it."""
    count = policy.instance_count if instance_count is None else instance_count
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": policy.traffic_routing(count),
            "TerminationWaitInSeconds": policy.termination_wait_seconds,
            "MaximumExecutionTimeoutInSeconds": policy.max_timeout_seconds,
        },
    }
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    validate_deployment_config(config, count)
    return config
