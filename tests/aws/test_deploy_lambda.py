"""The deploy Lambda as the stack runs it: its zip imports on its own, it reads the environment
the template gives it, and its AWS calls (checked with botocore's Stubber) have the shapes
SageMaker and CloudWatch accept and are all allowed by the function's role in the template.

The handler's behaviour against the local control plane is tested with deployment/.
"""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from cfnlint.decode.decode import decode_str

from infra.aws import provision

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/aircast-sagemaker-execution"
GROUP = "aircast-deepar"
PACKAGE = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/3"
ENDPOINT = "aircast-forecast"
ARTIFACTS = f"aircast-artifacts-{ACCOUNT}-{REGION}"


def _template() -> dict[str, Any]:
    template, errors = decode_str(provision.TEMPLATE_PATH.read_text())
    assert not errors
    return template


def lambda_environment(template: dict[str, Any]) -> dict[str, str]:
    """The DeployFunction's environment with intrinsics resolved: parameters to their defaults,
    resources and pseudo parameters to the values a stack in account 123456789012 would give."""
    params = template["Parameters"]
    resolved = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "LakeBucket": f"aircast-lake-{ACCOUNT}-{REGION}",
                "ArtifactsBucket": ARTIFACTS, "SageMakerExecutionRole.Arn": ROLE}
    env = {}
    for name, value in template["Resources"]["DeployFunction"]["Properties"]["Environment"]["Variables"].items():
        if isinstance(value, dict) and "Ref" in value:
            ref = value["Ref"]
            value = str(params[ref]["Default"]) if ref in params else resolved[ref]
        elif isinstance(value, dict) and "Fn::GetAtt" in value:
            value = resolved[".".join(value["Fn::GetAtt"])]
        env[name] = str(value)
    return env


def role_actions(template: dict[str, Any]) -> set[str]:
    """IAM actions the DeployFunctionRole allows."""
    actions: set[str] = set()
    for policy in template["Resources"]["DeployFunctionRole"]["Properties"]["Policies"]:
        for stmt in policy["PolicyDocument"]["Statement"]:
            if stmt["Effect"] == "Allow":
                actions.update([stmt["Action"]] if isinstance(stmt["Action"], str) else stmt["Action"])
    return actions


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    for key in [k for k in __import__("os").environ if k.startswith("AIRCAST_")]:
        monkeypatch.delenv(key)
    env = lambda_environment(_template())
    env["AIRCAST_DATA_DIR"] = str(tmp_path / "lambda-tmp")  # /tmp/aircast on Lambda
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # no aircast.toml from the checkout
    return env


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch):
    """boto3.client → stubbed sagemaker/cloudwatch clients; records every operation called."""
    made = {name: boto3.client(name, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
            for name in ("sagemaker", "cloudwatch")}
    calls: list[str] = []
    for service, client in made.items():
        client.meta.events.register(
            "before-parameter-build", lambda model, _service=service, **_: calls.append(f"{_service}:{model.name}"))
    stubs = {name: Stubber(client) for name, client in made.items()}

    def fake_client(service: str, *args: Any, **kwargs: Any) -> Any:
        assert kwargs.get("region_name") == REGION, "the handler must use the configured region"
        return made[service]

    monkeypatch.setattr(boto3, "client", fake_client)
    for stub in stubs.values():
        stub.activate()
    yield stubs, calls
    for stub in stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def _package(status: str) -> dict[str, Any]:
    return {"ModelPackageArn": PACKAGE, "ModelPackageName": GROUP, "ModelPackageGroupName": GROUP,
            "ModelPackageVersion": 3, "ModelApprovalStatus": status, "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
            "CreationTime": dt.datetime(2026, 1, 1),
            "InferenceSpecification": {"Containers": [{"Image": "522234722520.dkr.ecr.us-east-1.amazonaws.com/forecasting-deepar:1",
                                                       "ModelDataUrl": f"s3://{ARTIFACTS}/model.tar.gz"}],
                                       "SupportedContentTypes": ["application/json"],
                                       "SupportedResponseMIMETypes": ["application/json"]}}


def _approval_event(status: str) -> dict[str, Any]:
    return {"version": "0", "id": "e1", "source": "aws.sagemaker", "account": ACCOUNT, "region": REGION,
            "detail-type": "SageMaker Model Package State Change", "time": "2026-01-01T00:00:00Z",
            "resources": [PACKAGE],
            "detail": {"ModelPackageGroupName": GROUP, "ModelPackageVersion": 3, "ModelPackageArn": PACKAGE,
                       "ModelApprovalStatus": status}}


def _endpoint(status: str) -> dict[str, Any]:
    return {"EndpointName": ENDPOINT, "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}",
            "EndpointConfigName": f"{ENDPOINT}-v2-x", "EndpointStatus": status,
            "CreationTime": dt.datetime(2026, 1, 1), "LastModifiedTime": dt.datetime(2026, 1, 1)}


def _invoke(event: dict[str, Any]) -> dict[str, Any]:
    from deployment.handler import lambda_handler

    return lambda_handler(event, None)


def test_approval_creates_the_endpoint_with_shapes_sagemaker_accepts(lambda_env, stubbed) -> None:
    stubs, calls = stubbed
    sm = stubs["sagemaker"]
    sm.add_response("describe_model_package", _package("Approved"), {"ModelPackageName": PACKAGE})
    sm.add_client_error("describe_endpoint", "ValidationException", f"Could not find endpoint \"{ENDPOINT}\".",
                        expected_params={"EndpointName": ENDPOINT})
    sm.add_response("create_model", {"ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/m"},
                    {"ModelName": ANY, "PrimaryContainer": {"ModelPackageName": PACKAGE}, "ExecutionRoleArn": ROLE})
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": "arn:aws:sagemaker:r:a:endpoint-config/c"}, {
        "EndpointConfigName": ANY,
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": ANY, "InitialInstanceCount": 1,
                                "InstanceType": lambda_env["AIRCAST_DEPLOY_INSTANCE_TYPE"], "InitialVariantWeight": 1.0}],
        "DataCaptureConfig": ANY})
    sm.add_response("create_endpoint", {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"},
                    {"EndpointName": ENDPOINT, "EndpointConfigName": ANY})
    result = _invoke(_approval_event("Approved"))
    assert result.get("action") == "created", result
    # (the Stubber enforced the order); every call is allowed by the function's role in the template
    assert "sagemaker:CreateEndpoint" in calls
    assert set(calls) <= role_actions(_template()), set(calls) - role_actions(_template())


def test_approval_updates_blue_green_with_the_stacks_rollback_alarms(lambda_env, stubbed) -> None:
    stubs, calls = stubbed
    sm, cw = stubs["sagemaker"], stubs["cloudwatch"]
    template = _template()
    variant = template["Parameters"]["EndpointVariantName"]["Default"]
    # the alarm names the stack creates (Fn::Sub "${EndpointName}-${EndpointVariantName}-...")
    stack_alarms = [template["Resources"][a]["Properties"]["AlarmName"]["Fn::Sub"]
                    .replace("${EndpointName}", ENDPOINT).replace("${EndpointVariantName}", variant)
                    for a in ("ErrorRateAlarm", "ModelLatencyAlarm")]
    sm.add_response("describe_model_package", _package("Approved"), {"ModelPackageName": PACKAGE})
    sm.add_response("describe_endpoint", _endpoint("InService"), {"EndpointName": ENDPOINT})
    # the handler first asks which package the endpoint serves (an approval may arrive twice)
    serving = _endpoint("InService")["EndpointConfigName"]
    sm.add_response("describe_endpoint_config", {
        "EndpointConfigName": serving, "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{serving}",
        "ProductionVariants": [{"VariantName": variant, "ModelName": serving}], "CreationTime": dt.datetime(2026, 1, 1)},
        {"EndpointConfigName": serving})
    sm.add_response("describe_model", {
        "ModelName": serving, "ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{serving}",
        "PrimaryContainer": {"ModelPackageName": PACKAGE.rsplit("/", 1)[0] + "/2"}, "ExecutionRoleArn": ROLE,
        "CreationTime": dt.datetime(2026, 1, 1)}, {"ModelName": serving})
    sm.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:r:a:model/m"})
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": "arn:aws:sagemaker:r:a:endpoint-config/c"})
    for name in stack_alarms:
        cw.add_response("put_metric_alarm", {}, {
            "AlarmName": name, "MetricName": ANY, "Namespace": "AWS/SageMaker",
            "Dimensions": [{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": variant}],
            **({"Statistic": "Average"} if name.endswith("error-rate") else {"ExtendedStatistic": "p99"}),
            "Threshold": ANY, "Period": ANY, "EvaluationPeriods": ANY, "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching", "AlarmDescription": ANY})
    sm.add_response("update_endpoint", {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"}, {
        "EndpointName": ENDPOINT, "EndpointConfigName": ANY,
        "DeploymentConfig": {"BlueGreenUpdatePolicy": ANY,
                             "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in stack_alarms]}}})
    result = _invoke(_approval_event("Approved"))
    assert result.get("action") == "updating", result
    # every call the handler made is allowed by the function's role in the template
    allowed = role_actions(template)
    assert set(calls) <= allowed, set(calls) - allowed


@pytest.mark.parametrize("status", ["Rejected", "PendingManualApproval"])
def test_a_non_approval_makes_no_aws_call(lambda_env, stubbed, status: str) -> None:
    _, calls = stubbed
    result = _invoke(_approval_event(status))
    assert result["status"] == "ignored" and calls == []


def test_direct_invocation_waits_for_approval(lambda_env, stubbed) -> None:
    stubs, calls = stubbed
    stubs["sagemaker"].add_response("describe_model_package", _package("PendingManualApproval"),
                                    {"ModelPackageName": PACKAGE})
    result = _invoke({"model_package_arn": PACKAGE, "endpoint_name": ENDPOINT})
    assert result["status"] == "awaiting approval" and calls == ["sagemaker:DescribeModelPackage"]


def test_the_lambda_zip_imports_the_handler_on_its_own(tmp_path: Path) -> None:
    body = provision.build_assets()["DeployFunctionCodeKey"].body
    names = zipfile.ZipFile(io.BytesIO(body)).namelist()
    assert "deployment/handler.py" in names and "aircast/settings.py" in names
    zip_path = tmp_path / "deploy.zip"
    zip_path.write_bytes(body)
    # -S -I: no site hooks, so the editable install of this checkout is not on the path; the
    # handler's modules can come only from the zip (boto3/botocore from site-packages, as the runtime has them)
    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import deployment.handler as h; "
            "assert h.__file__.startswith(sys.argv[1]), h.__file__; print(h.lambda_handler.__name__)")
    out = subprocess.run([sys.executable, "-S", "-I", "-c", code, str(zip_path), sysconfig.get_paths()["purelib"]],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "lambda_handler"


def _resolve_sub(value: Any, template: dict[str, Any]) -> str:
    """A ``Fn::Sub`` string with pseudo parameters and parameter defaults filled in."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    names = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
             **{k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}}
    for name, resolved in names.items():
        text = text.replace("${" + name + "}", resolved)
    return text


def test_the_models_execution_role_may_describe_the_rollback_alarms(lambda_env) -> None:
    """Finding 6: during a blue/green deployment SageMaker reads the AutoRollbackConfiguration alarms with
    the execution role of the endpoint's models, which needs cloudwatch:DescribeAlarms on them
    ("Auto-Rollback Configuration and Monitoring")."""
    import fnmatch

    from deployment.policy import alarm_names

    template = _template()
    assert lambda_env["AIRCAST_ROLE_ARN"] == ROLE  # the role the deploy passes to CreateModel
    role = template["Resources"]["SageMakerExecutionRole"]["Properties"]
    allowed = []
    for policy in role["Policies"]:
        for stmt in policy["PolicyDocument"]["Statement"]:
            actions = [stmt["Action"]] if isinstance(stmt["Action"], str) else stmt["Action"]
            if stmt["Effect"] == "Allow" and "cloudwatch:DescribeAlarms" in actions:
                resources = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
                allowed += [_resolve_sub(r, template) for r in resources]
    for alarm in alarm_names(lambda_env["AIRCAST_ENDPOINT_NAME"], "AllTraffic"):
        arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm}"
        assert any(fnmatch.fnmatchcase(arn, pattern) for pattern in allowed), (arn, allowed)
