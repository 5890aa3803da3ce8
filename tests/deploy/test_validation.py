"""AWS's validation rules for deployment configs and variants, the alarm evaluator, the chaos hook,
and the control plane refusing bad requests as SageMaker does (no host needed)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from deployment.policy import DeploymentPolicy, deployment_config
from deployment.validation import DeploymentConfigError, traffic_steps, validate_deployment_config
from infra.local.sagemaker.client import LocalSageMakerClient
from infra.local.sagemaker.cloudwatch import LocalCloudWatchClient, Sample, evaluate_alarm
from infra.local.sagemaker.host import parse_fault_injection


def _config(routing: dict, **policy) -> dict:
    return {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, **policy}}


def test_traffic_steps():
    assert traffic_steps({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}) == [1.0]
    assert traffic_steps({"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20}}) == [0.2, 1.0]
    assert traffic_steps({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}}) == \
        [0.25, 0.5, 0.75, 1.0]
    assert traffic_steps({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 40}}) == \
        [0.4, 0.8, 1.0]
    assert traffic_steps({"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}, 4) == [0.25, 1.0]


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
        validate_deployment_config(config)


def test_policies_build_valid_configs():
    for strategy in ("canary", "linear", "all-at-once"):
        cfg = deployment_config(DeploymentPolicy(strategy=strategy), ["a", "b"])
        assert cfg["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "a"}, {"AlarmName": "b"}]}
    with pytest.raises(DeploymentConfigError, match="strategy"):
        deployment_config(DeploymentPolicy(strategy="yolo"), [])


def test_alarm_evaluation():
    alarm = {"MetricName": "Invocation5XXErrors", "Statistic": "Average", "Threshold": 0.05,
             "ComparisonOperator": "GreaterThanThreshold", "Period": 60, "EvaluationPeriods": 1}
    now = 1000.0
    ok = [Sample(now - 0.1, 1000, "ok")] * 50
    assert evaluate_alarm(alarm, ok, now, 0.01).state == "OK"
    assert evaluate_alarm(alarm, ok + [Sample(now, 1000, "5xx")] * 5, now, 0.01).state == "ALARM"
    assert evaluate_alarm(alarm, [], now, 0.01).state == "INSUFFICIENT_DATA"
    old = [Sample(now - 100, 1000, "5xx")]
    assert evaluate_alarm(alarm, old, now, 0.01).state == "INSUFFICIENT_DATA"  # outside the window
    latency = {"MetricName": "ModelLatency", "ExtendedStatistic": "p99", "Threshold": 500_000.0,
               "ComparisonOperator": "GreaterThanThreshold", "Period": 60, "EvaluationPeriods": 1}
    assert evaluate_alarm(latency, [Sample(now, 900_000, "ok")], now, 1.0).state == "ALARM"
    assert evaluate_alarm(latency, [Sample(now, 90_000, "ok")], now, 1.0).state == "OK"


def test_fault_injection_parsing():
    assert parse_fault_injection("error").error_rate == 1.0
    spec = parse_fault_injection("latency_ms=800, error_rate=0.25")
    assert (spec.latency_ms, spec.error_rate) == (800.0, 0.25)
    assert parse_fault_injection("load_failure").load_failure
    assert parse_fault_injection(None) == parse_fault_injection("")
    with pytest.raises(ValueError, match="AIRCAST_FAULT_INJECTION"):
        parse_fault_injection("explode")
    with pytest.raises(ValueError):
        parse_fault_injection("error_rate=2")


def test_control_plane_refuses_bad_requests(settings):
    sm = LocalSageMakerClient(settings)
    cw = LocalCloudWatchClient(settings)
    with pytest.raises(ClientError, match="ModelDataUrl"):
        sm.create_model(ModelName="m", PrimaryContainer={"Image": "x"})
    with pytest.raises(ClientError, match="invalid"):
        sm.create_model(ModelName="bad_name!", PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://b/k"})
    sm.create_model(ModelName="m", PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://b/model.tar.gz"})
    with pytest.raises(ClientError, match="already existing"):
        sm.create_model(ModelName="m", PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://b/model.tar.gz"})
    with pytest.raises(ClientError, match="Could not find model"):
        sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[{"VariantName": "v", "ModelName": "zz"}])
    with pytest.raises(ClientError, match="used twice"):
        sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[
            {"VariantName": "v", "ModelName": "m"}, {"VariantName": "v", "ModelName": "m"}])
    sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[{"VariantName": "v", "ModelName": "m"}])
    with pytest.raises(ClientError, match="Could not find endpoint configuration"):
        sm.create_endpoint(EndpointName="e", EndpointConfigName="nope")
    sm.create_endpoint(EndpointName="e", EndpointConfigName="c")
    desc = sm.describe_endpoint(EndpointName="e")
    assert desc["EndpointStatus"] == "Creating"  # no host running: stays Creating, like provisioning on AWS
    assert desc["ProductionVariants"][0]["DesiredWeight"] == 1.0
    with pytest.raises(ClientError, match="while its status is Creating"):
        sm.update_endpoint(EndpointName="e", EndpointConfigName="c")
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sm.describe_endpoint(EndpointName="nope")
    with pytest.raises(ClientError, match="Metrics|metric"):
        cw.put_metric_alarm(AlarmName="a", MetricName="CPUUtilization", Statistic="Average", Threshold=1,
                            Dimensions=[{"Name": "EndpointName", "Value": "e"}])
    assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == ["e"]
    sm.delete_endpoint(EndpointName="e")
    assert sm.list_endpoints()["Endpoints"] == []


def test_update_endpoint_validates_deployment_config(settings):
    from infra.local.sagemaker.endpoints import EndpointStore

    sm = LocalSageMakerClient(settings)
    sm.create_model(ModelName="m", PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://b/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[{"VariantName": "v", "ModelName": "m"}])
    sm.create_endpoint(EndpointName="e", EndpointConfigName="c")
    store = EndpointStore(settings.data_dir)
    with store.transaction() as conn:  # as the host would after loading the model
        doc = store.get("endpoints", "e", conn)
        doc["EndpointStatus"] = "InService"
        store.put(conn, "endpoints", "e", doc)
    bad = _config({"Type": "LINEAR", "WaitIntervalInSeconds": 60,
                   "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 70}})
    with pytest.raises(ClientError, match="10-50%") as info:
        sm.update_endpoint(EndpointName="e", EndpointConfigName="c", DeploymentConfig=bad)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    good = {**_config({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}),
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "missing"}]}}
    with pytest.raises(ClientError, match="does not exist"):
        sm.update_endpoint(EndpointName="e", EndpointConfigName="c", DeploymentConfig=good)
    sm.update_endpoint(EndpointName="e", EndpointConfigName="c")
    desc = sm.describe_endpoint(EndpointName="e")
    assert desc["EndpointStatus"] == "Updating"
    assert desc["PendingDeploymentSummary"]["ProductionVariants"][0]["VariantStatus"][0]["Status"] == "Creating"
