"""The local SageMaker control plane (models, endpoint configs, endpoints) refusing bad requests as SageMaker
does, the alarm evaluator and the chaos hook (no host needed)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from infra.local.sagemaker.client import LocalSageMakerClient
from infra.local.sagemaker.cloudwatch import LocalCloudWatchClient, Sample, evaluate_alarm
from infra.local.sagemaker.host.routing import parse_fault_injection


def _config(routing: dict, **policy) -> dict:
    return {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, **policy}}


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


def _model_file(settings, key: str = "models/model.tar.gz") -> str:
    """An object at the model data URL (CreateModel checks it exists; nothing loads it here)."""
    path = settings.s3_root / settings.artifacts_bucket / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"placeholder")
    return f"s3://{settings.artifacts_bucket}/{key}"


def test_control_plane_refuses_bad_requests(settings):
    sm = LocalSageMakerClient(settings.local_config())
    cw = LocalCloudWatchClient(settings.local_config())
    url = _model_file(settings)
    with pytest.raises(ClientError, match="ModelDataUrl"):
        sm.create_model(ModelName="m", PrimaryContainer={"Image": "x"})
    with pytest.raises(ClientError, match="invalid"):
        sm.create_model(ModelName="bad_name!", PrimaryContainer={"Image": "x", "ModelDataUrl": url})
    sm.create_model(ModelName="m", PrimaryContainer={"Image": "x", "ModelDataUrl": url})
    with pytest.raises(ClientError, match="already existing"):
        sm.create_model(ModelName="m", PrimaryContainer={"Image": "x", "ModelDataUrl": url})
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
    with pytest.raises(ClientError, match='Cannot update in-progress endpoint "arn:aws:sagemaker:.*:endpoint/e"'):
        sm.update_endpoint(EndpointName="e", EndpointConfigName="c")
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sm.describe_endpoint(EndpointName="nope")
    with pytest.raises(ClientError, match="Metrics|metric"):
        cw.put_metric_alarm(AlarmName="a", MetricName="CPUUtilization", Statistic="Average", Threshold=1,
                            Dimensions=[{"Name": "EndpointName", "Value": "e"}])
    assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == ["e"]
    sm.delete_endpoint(EndpointName="e")
    assert sm.list_endpoints()["Endpoints"] == []


DEEPAR_IMAGE = "522234722520.dkr.ecr.us-east-1.amazonaws.com/forecasting-deepar:1"


@pytest.mark.parametrize("container,message", [
    # Finding 12: the built-in DeepAR's image has no multi-model label (CreateModel's own words)
    ({"Image": DEEPAR_IMAGE, "Mode": "MultiModel", "ModelDataUrl": "s3://aircast-artifacts/models/"},
     f"Your Ecr Image {DEEPAR_IMAGE} does not contain required "
     "com.amazonaws.sagemaker.capabilities.multi-models=true Docker label(s)."),
    ({"Image": "local/deepar:1", "Mode": "MultiModel", "ModelDataUrl": "s3://aircast-artifacts/models/"},
     "multi-models=true Docker label"),
    ({"Image": DEEPAR_IMAGE, "ModelDataUrl": "s3://aircast-artifacts/nothing/here.tar.gz"},
     "Could not find model data at s3://aircast-artifacts/nothing/here.tar.gz."),
    # issue 14: model data that would leave its bucket, or names no valid bucket
    ({"Image": DEEPAR_IMAGE, "ModelDataUrl": "s3://aircast-artifacts/../pki/ca.key"}, "'..' path segment"),
    ({"Image": DEEPAR_IMAGE, "ModelDataUrl": "s3://../pki/ca.key"}, "invalid bucket"),
])
def test_create_model_refuses_what_sagemaker_refuses(settings, container, message):
    from aircast.clients import get_client

    sm = get_client("sagemaker", settings)
    with pytest.raises(ClientError) as info:
        sm.create_model(ModelName="m", PrimaryContainer=container, ExecutionRoleArn=settings.role_arn)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert message in info.value.response["Error"]["Message"]


@pytest.mark.parametrize("destination", ["s3://aircast-artifacts/../../etc", "s3://../x", "s3://Bad_Bucket/x"])
def test_data_capture_destination_stays_in_its_bucket(settings, destination):
    from aircast.clients import get_client

    sm = get_client("sagemaker", settings)
    sm.create_model(ModelName="m", PrimaryContainer={"Image": DEEPAR_IMAGE, "ModelDataUrl": _model_file(settings)},
                    ExecutionRoleArn=settings.role_arn)
    with pytest.raises(ClientError) as info:
        sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[
            {"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
            DataCaptureConfig={"InitialSamplingPercentage": 100, "DestinationS3Uri": destination,
                               "CaptureOptions": [{"CaptureMode": "Input"}]})
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "DestinationS3Uri" in info.value.response["Error"]["Message"]


def _in_service(settings, name: str) -> None:
    from infra.local.sagemaker.endpoints import EndpointStore

    store = EndpointStore(settings.data_dir)
    with store.transaction() as conn:  # as the host would after loading the model
        doc = store.get("endpoints", name, conn)
        doc["EndpointStatus"] = "InService"
        store.put(conn, "endpoints", name, doc)


def test_update_endpoint_validates_deployment_config(settings):
    sm = LocalSageMakerClient(settings.local_config())
    sm.create_model(ModelName="m", PrimaryContainer={"Image": "x", "ModelDataUrl": _model_file(settings)})
    sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[{"VariantName": "v", "ModelName": "m"}])
    sm.create_endpoint(EndpointName="e", EndpointConfigName="c")
    _in_service(settings, "e")
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


def test_update_endpoint_enforces_sizes_names_and_exclusions(settings):
    """CanarySize as a share of the variant's instances (finding 7), the same variant names, and the
    guardrail exclusions (Inf1: all at once, no baking), through the validated client."""
    from aircast.clients import deployment_history, get_client

    sm = get_client("sagemaker", settings)
    url = _model_file(settings)
    sm.create_model(ModelName="m", PrimaryContainer={"Image": DEEPAR_IMAGE, "ModelDataUrl": url},
                    ExecutionRoleArn=settings.role_arn)

    def config(name: str, variant: str = "AllTraffic", count: int = 1, instance_type: str = "ml.m5.large") -> str:
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
            {"VariantName": variant, "ModelName": "m", "InitialInstanceCount": count, "InstanceType": instance_type}])
        return name

    sm.create_endpoint(EndpointName="e", EndpointConfigName=config("blue"))
    _in_service(settings, "e")
    canary = _config({"Type": "CANARY", "WaitIntervalInSeconds": 60,
                      "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20}})
    with pytest.raises(ClientError) as info:
        sm.update_endpoint(EndpointName="e", EndpointConfigName=config("green-one"), DeploymentConfig=canary)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "less than or equal to 50% of the variant's total instance count" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError, match="same variant name"):
        sm.update_endpoint(EndpointName="e", EndpointConfigName=config("renamed", "B", 2), DeploymentConfig=canary)
    sm.update_endpoint(EndpointName="e", EndpointConfigName=config("green-two", count=2), DeploymentConfig=canary)
    assert sm.describe_endpoint(EndpointName="e")["EndpointStatus"] == "Updating"

    sm.create_endpoint(EndpointName="inf", EndpointConfigName="blue")
    _in_service(settings, "inf")
    sm.update_endpoint(EndpointName="inf", EndpointConfigName=config("on-inf1", count=2, instance_type="ml.inf1.xlarge"),
                       DeploymentConfig=canary)
    history = " | ".join(h["Message"] for h in deployment_history(settings, "inf"))
    assert "(ALL_AT_ONCE blue/green)" in history and "Inf1" in history and "no baking period" in history
