"""The same deployment code against boto3: moto for the calls it implements (package → model →
config → new endpoint), botocore's Stubber for ``update_endpoint`` with a blue/green
``DeploymentConfig`` and the CloudWatch rollback alarms (moto lacks them). Stubber also checks every
request against botocore's service model, so the shapes are AWS's."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from deployment.deploy import deploy_model_package
from deployment.policy import DeploymentPolicy, deployment_config, rollback_alarms

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/aircast-sagemaker-execution"


@pytest.fixture
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


def test_new_endpoint_on_moto(aws_env):
    with mock_aws():
        sm = boto3.client("sagemaker", region_name=REGION)
        sm.create_model_package_group(ModelPackageGroupName="aircast-deepar")
        arn = sm.create_model_package(
            ModelPackageGroupName="aircast-deepar", ModelApprovalStatus="Approved",
            InferenceSpecification={"Containers": [{"Image": "522234722520.dkr.ecr.us-east-1.amazonaws.com/forecasting-deepar:1",
                                                    "ModelDataUrl": "s3://aircast-artifacts/models/model.tar.gz"}],
                                    "SupportedContentTypes": ["application/json"],
                                    "SupportedResponseMIMETypes": ["application/json"]})["ModelPackageArn"]
        result = deploy_model_package(sm, arn, "aircast-forecast", DeploymentPolicy(), role_arn=ROLE)
        assert result.action == "created"
        desc = sm.describe_endpoint(EndpointName="aircast-forecast")
        assert desc["EndpointConfigName"] == result.endpoint_config_name
        cfg = sm.describe_endpoint_config(EndpointConfigName=result.endpoint_config_name)
        assert cfg["ProductionVariants"][0]["ModelName"] == result.model_name
        assert cfg["ProductionVariants"][0]["InitialVariantWeight"] == 1.0


def test_blue_green_update_request_is_valid_for_aws():
    sm = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    cw = boto3.client("cloudwatch", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/aircast-deepar/7"
    now = dt.datetime.now(dt.UTC)
    # linear steps of 25% need 4+ instances: SageMaker shifts whole instances of the variant
    policy = DeploymentPolicy(strategy="linear", step_percent=25, wait_seconds=600, termination_wait_seconds=300,
                              max_timeout_seconds=7200, instance_count=4)
    with Stubber(sm) as sm_stub, Stubber(cw) as cw_stub:
        sm_stub.add_response("describe_model_package", {
            "ModelPackageName": "aircast-deepar", "ModelPackageArn": arn, "ModelPackageVersion": 7,
            "CreationTime": now, "ModelPackageStatus": "Completed", "ModelApprovalStatus": "Approved",
            "ModelPackageStatusDetails": {"ValidationStatuses": []}},
            {"ModelPackageName": arn})
        sm_stub.add_response("describe_endpoint", {
            "EndpointName": "aircast-forecast", "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/x",
            "EndpointStatus": "InService", "CreationTime": now, "LastModifiedTime": now},
            {"EndpointName": "aircast-forecast"})
        sm_stub.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m"},
                             {"ModelName": ANY, "PrimaryContainer": {"ModelPackageName": arn}, "ExecutionRoleArn": ROLE})
        sm_stub.add_response("create_endpoint_config",
                             {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/c"},
                             {"EndpointConfigName": ANY, "ProductionVariants": ANY})
        for alarm in rollback_alarms(policy, "aircast-forecast", "AllTraffic"):
            cw_stub.add_response("put_metric_alarm", {}, alarm)
        expected = deployment_config(policy, ["aircast-forecast-AllTraffic-error-rate",
                                              "aircast-forecast-AllTraffic-model-latency-p99"])
        sm_stub.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/x"},
                             {"EndpointName": "aircast-forecast", "EndpointConfigName": ANY,
                              "DeploymentConfig": expected})
        result = deploy_model_package(sm, arn, "aircast-forecast", policy, role_arn=ROLE, cw_client=cw)
        sm_stub.assert_no_pending_responses()
        cw_stub.assert_no_pending_responses()
    assert result.action == "updating"
    routing = result.deployment_config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "LINEAR", "WaitIntervalInSeconds": 600,
                       "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}}
    assert "-v7-" in result.endpoint_config_name and len(result.model_name) <= 63
