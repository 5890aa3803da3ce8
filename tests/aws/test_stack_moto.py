"""The stack as moto creates it from the template through a change set: IoT policy and thing type,
buckets, the deploy Lambda, the approval and retraining rules with their targets, and a thing
registered against it. (What moto does not model: see tests/aws/test_provision.py's docstring.)"""

from __future__ import annotations

import ast
import json
import os
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509

from aircast import event_rules as local_rules
from aircast.settings import Settings
from infra.aws import provision
from tests.aws.mocked import ACCOUNT, REGION, deploy, moto_account
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory):
    """One stack created through a change set (module-wide: these tests only read it or add things)."""
    with moto_account() as clients:
        params, result = deploy(clients, tmp_path_factory.mktemp("repo"))
        yield clients, params, result


def test_stack_is_created_through_a_change_set(deployed) -> None:
    aws, params, result = deployed
    assert (result.change_set_type, result.status) == ("CREATE", "CREATE_COMPLETE")
    logical = {c["logical_id"] for c in result.changes}
    assert {"LakeBucket", "SensorPolicy", "TelemetryTopicRule", "TelemetryDeliveryStream", "EtlJob",
            "DeployFunction", "ApprovalRule", "RetrainingRule", "ModelPackageGroup"} <= logical

    buckets = {b["Name"] for b in aws["s3"].list_buckets()["Buckets"]}
    assert {f"aircast-lake-{ACCOUNT}-{REGION}", f"aircast-artifacts-{ACCOUNT}-{REGION}"} <= buckets

    document = aws["iot"].get_policy(policyName="aircast-sensor")["policyDocument"]
    # AWS returns JSON; moto returns the Python repr of the dict CloudFormation gave it
    policy = json.loads(document) if document.startswith('{"') else ast.literal_eval(document)
    by_action = {s["Action"]: s for s in policy["Statement"]}
    assert by_action["iot:Connect"]["Resource"].endswith(":client/${iot:Connection.Thing.ThingName}")
    assert by_action["iot:Publish"]["Resource"].endswith(":topic/sensors/${iot:Connection.Thing.ThingName}/telemetry")
    assert aws["iot"].describe_thing_type(thingTypeName="aircast-sensor")["thingTypeName"] == "aircast-sensor"

    fn = aws["lambda"].get_function_configuration(FunctionName="aircast-deploy")
    assert fn["Handler"] == "deployment.handler.lambda_handler"
    assert fn["Environment"]["Variables"]["AIRCAST_BACKEND"] == "aws"
    assert fn["Environment"]["Variables"]["AIRCAST_ENDPOINT_NAME"] == "aircast-forecast"


def test_approval_rule_invokes_the_deploy_lambda_for_approvals_only(deployed) -> None:
    aws, _, _ = deployed
    # the same rule as the local event bus installs (name and pattern)
    rule = aws["events"].describe_rule(Name=local_rules.APPROVAL_RULE)
    pattern = json.loads(rule["EventPattern"])
    assert pattern == local_rules.approval_pattern(Settings())
    assert pattern["detail"] == {"ModelPackageGroupName": ["aircast-deepar"], "ModelApprovalStatus": ["Approved"]}
    (target,) = aws["events"].list_targets_by_rule(Rule=local_rules.APPROVAL_RULE)["Targets"]
    assert target["Arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:aircast-deploy"
    # (moto's TestEventPattern answers without a Result, so the pattern is compared, not evaluated)


def _pipeline_target(aws, rule: str) -> dict[str, str]:
    (target,) = aws["events"].list_targets_by_rule(Rule=rule)["Targets"]
    assert target["Arn"] == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/aircast-deepar"
    assert target["RoleArn"].startswith(f"arn:aws:iam::{ACCOUNT}:role/")
    return {p["Name"]: p["Value"] for p in target["SageMakerPipelineParameters"]["PipelineParameterList"]}


def test_retraining_schedule_starts_the_pipeline_with_its_parameters(deployed) -> None:
    aws, _, _ = deployed
    rule = aws["events"].describe_rule(Name=local_rules.SCHEDULED_RETRAIN_RULE)
    assert rule["ScheduleExpression"] == Settings().retrain_schedule
    params = _pipeline_target(aws, local_rules.SCHEDULED_RETRAIN_RULE)
    assert params == {"ModelApprovalStatus": "PendingManualApproval", "EndpointName": "aircast-forecast",
                      "InputDataUri": f"s3://aircast-lake-{ACCOUNT}-{REGION}/curated/hourly/"}
    # every name is a parameter the pipeline declares (else StartPipelineExecution fails on AWS)
    source = (REPO_ROOT / "pipelines" / "aircast" / "pipeline.py").read_text()
    declared = set(re.findall(r'Parameter(?:String|Integer|Float|Boolean)\(\s*"(\w+)"', source))
    assert set(params) <= declared, set(params) - declared


def test_drift_event_starts_a_retraining_run(deployed) -> None:
    aws, _, _ = deployed
    rule = aws["events"].describe_rule(Name=local_rules.DRIFT_RULE)
    assert json.loads(rule["EventPattern"]) == local_rules.drift_pattern(Settings())
    assert _pipeline_target(aws, local_rules.DRIFT_RULE) == _pipeline_target(aws, local_rules.SCHEDULED_RETRAIN_RULE)


def test_register_thing_creates_identity_attaches_policy_and_writes_files(deployed, tmp_path: Path) -> None:
    aws, _, _ = deployed
    iot = aws["iot"]
    # the names the stack gave its policy and thing type (moto has no stack Outputs to read them from)
    reg = provision.register_thing(iot, "sensor-01", policy_name="aircast-sensor",
                                   thing_type="aircast-sensor", pki_dir=tmp_path / "pki")
    assert iot.describe_thing(thingName="sensor-01")["thingTypeName"] == "aircast-sensor"
    assert iot.list_thing_principals(thingName="sensor-01")["principals"] == [reg.certificate_arn]
    attached = iot.list_attached_policies(target=reg.certificate_arn)["policies"]
    assert [p["policyName"] for p in attached] == ["aircast-sensor"]
    described = iot.describe_certificate(certificateId=reg.certificate_id)["certificateDescription"]
    assert described["status"] == "ACTIVE"
    assert reg.cert_path.read_text() == described["certificatePem"]
    assert "PRIVATE KEY" in reg.key_path.read_text()
    assert stat.S_IMODE(os.stat(reg.key_path).st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(reg.ca_path.read_bytes())
    assert "Amazon Root CA 1" in ca.subject.rfc4514_string()
    assert reg.endpoint.endswith(".amazonaws.com") and "-ats.iot." in reg.endpoint
    assert reg.cert_path == tmp_path / "pki" / "things" / "sensor-01" / "cert.pem"

    with pytest.raises(provision.ProvisionError, match="already holds credentials"):
        provision.register_thing(iot, "sensor-01", policy_name="aircast-sensor", thing_type=None,
                                 pki_dir=tmp_path / "pki")
    with pytest.raises(provision.ProvisionError, match="invalid thing name"):
        provision.register_thing(iot, "bad/name", policy_name="aircast-sensor", thing_type=None,
                                 pki_dir=tmp_path / "pki")
