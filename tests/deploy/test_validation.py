"""SageMaker's validation rules for deployment configs and variants (awsrules), and the deployment policies
built on them (deployment.policy). The local control plane enforcing them is tested with the emulator
(tests/local/sagemaker/test_endpoints.py)."""

from __future__ import annotations

import pytest

from awsrules.sagemaker_endpoints import DeploymentConfigError, traffic_steps, validate_deployment_config
from deployment.policy import DeploymentPolicy, deployment_config


def _config(routing: dict, **policy) -> dict:
    return {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, **policy}}


def test_traffic_steps_move_whole_instances():
    assert traffic_steps({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}) == [1.0]
    assert traffic_steps({"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20}}, 5) == [0.2, 1.0]
    assert traffic_steps({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}}, 4) == \
        [0.25, 0.5, 0.75, 1.0]
    assert traffic_steps({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 40}}, 5) == \
        [0.4, 0.8, 1.0]
    assert traffic_steps({"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}, 4) == [0.25, 1.0]
    # 20% of 2 instances is one instance: half the traffic per step
    assert traffic_steps({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 20}}, 2) == \
        [0.5, 1.0]


@pytest.mark.parametrize("config,message", [
    (_config({"Type": "SOMETIMES", "WaitIntervalInSeconds": 1}), "Type"),
    (_config({"Type": "ALL_AT_ONCE"}), "WaitIntervalInSeconds is required"),
    (_config({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 3601}), "out of range 0..3600"),
    (_config({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": -1}), "out of range"),
    (_config({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": "60"}), "expected an integer"),
    (_config({"Type": "CANARY", "WaitIntervalInSeconds": 60}), "CanarySize is required"),
    (_config({"Type": "CANARY", "WaitIntervalInSeconds": 60, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 60}}),
     "50%"),
    (_config({"Type": "CANARY", "WaitIntervalInSeconds": 60, "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 0}}),
     "out of range"),
    (_config({"Type": "CANARY", "WaitIntervalInSeconds": 60, "CanarySize": {"Type": "PERCENT", "Value": 10}}),
     "CanarySize.Type"),
    (_config({"Type": "LINEAR", "WaitIntervalInSeconds": 60,
              "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 5}}), "10-50%"),
    (_config({"Type": "LINEAR", "WaitIntervalInSeconds": 60,
              "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 60}}), "10-50%"),
    (_config({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 60,
              "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}}), "ALL_AT_ONCE takes no"),
    (_config({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}, TerminationWaitInSeconds=4000), "0..3600"),
    (_config({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}, MaximumExecutionTimeoutInSeconds=599), "600..28800"),
    (_config({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}, MaximumExecutionTimeoutInSeconds=30000), "600..28800"),
    (_config({"Type": "CANARY", "WaitIntervalInSeconds": 600, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}},
             TerminationWaitInSeconds=600, MaximumExecutionTimeoutInSeconds=1200), "larger than"),
    ({**_config({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}), "AutoRollbackConfiguration": {"Alarms": []}},
     "1 to 10"),
    ({}, "BlueGreenUpdatePolicy is required"),
])
def test_invalid_deployment_configs_are_refused(config, message):
    with pytest.raises(DeploymentConfigError, match=message):
        validate_deployment_config(config, 20)


CANARY_20 = {"Type": "CANARY", "WaitIntervalInSeconds": 60, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20}}
LINEAR_10 = {"Type": "LINEAR", "WaitIntervalInSeconds": 60, "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 10}}


@pytest.mark.parametrize("routing,counts,message", [
    # TrafficRoutingConfig: "Value must be less than or equal to 50% of the variant's total instance count"
    (CANARY_20, 1, "a variant of one instance cannot take a canary"),
    ({**CANARY_20, "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}, 1, "more than 50%"),
    ({**CANARY_20, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50}}, 3, "2 of the variant's 3 instances"),
    # "Value must be 10-50% of the variant's total instance count"
    (LINEAR_10, 1, "a variant of one instance cannot shift linearly"),
    (LINEAR_10, [20, 1], "1 of the variant's 1 instance"),  # every variant, not the sum
])
def test_canary_and_linear_sizes_are_shares_of_each_variants_instances(routing, counts, message):
    with pytest.raises(DeploymentConfigError, match=message):
        validate_deployment_config(_config(routing), counts)


@pytest.mark.parametrize("routing,counts", [(CANARY_20, 2), (CANARY_20, 5), (LINEAR_10, 10), (LINEAR_10, [10, 2]),
                                            ({**CANARY_20, "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}, 2)])
def test_canary_and_linear_sizes_aws_accepts(routing, counts):
    validate_deployment_config(_config(routing), counts)


def test_the_default_policy_fits_a_one_instance_endpoint():
    """Finding 7: the default policy on the default (one-instance) endpoint is one SageMaker accepts:
    all at once, baked with the alarms watching; with 2+ instances it is a canary."""
    one = deployment_config(DeploymentPolicy(), ["a"])  # the one UpdateEndpoint gets on one instance
    assert DeploymentPolicy().strategy == "auto" and DeploymentPolicy().instance_count == 1
    assert one["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {"Type": "ALL_AT_ONCE",
                                                                           "WaitIntervalInSeconds": 300}
    assert one["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "a"}]}
    two = deployment_config(DeploymentPolicy(instance_count=2), ["a"])
    assert two["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    with pytest.raises(DeploymentConfigError, match="one instance cannot take a canary"):
        deployment_config(DeploymentPolicy(strategy="canary"), ["a"])


def test_policies_build_valid_configs():
    for strategy in ("auto", "canary", "linear", "all-at-once"):
        cfg = deployment_config(DeploymentPolicy(strategy=strategy, instance_count=5), ["a", "b"])
        assert cfg["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "a"}, {"AlarmName": "b"}]}
    with pytest.raises(DeploymentConfigError, match="strategy"):
        deployment_config(DeploymentPolicy(strategy="yolo"), [])
