"""The provisioning calls against moto: code bucket + assets, the stack through change sets,
the EventBridge rules and targets it creates, a thing with its certificate and policy, destroy.

What moto does not model, and so is not checked here (no fakes in its place):
- the resources moto's CloudFormation cannot create: Firehose delivery stream, IoT topic rule,
  Glue database/crawlers/job/triggers, SageMaker Model Package Group, CloudWatch alarms,
  bucket policies, OIDC provider (moto warns and skips them; cfn-lint validates them instead);
- stack Outputs after a change set executes (moto leaves them empty), hence the physical-id checks;
- an update with no changes (moto executes it anyway), a failed update and its stack events,
  and deleting the stack (moto's IoT policy deletion fails inside its CloudFormation):
  those paths are checked with botocore's Stubber on the exact call shapes;
- IAM evaluation (whether a policy actually permits a call): tests/aws/test_templates.py reads the policies.
"""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from infra.aws import provision
from tests.aws.mocked import ACCOUNT, CODE_BUCKET, REGION, deploy, make_checkout, moto_account


@pytest.fixture
def aws():
    """moto-backed clients on an empty account; no call leaves the process."""
    with moto_account() as clients:
        yield clients


@pytest.fixture
def fresh_stack(aws, tmp_path: Path):
    """A stack of its own, for tests that change or delete it."""
    params, result = deploy(aws, tmp_path / "repo")
    return aws, params, result


def test_assets_are_content_addressed_and_deterministic(tmp_path: Path) -> None:
    root = make_checkout(tmp_path / "repo")
    first, second = provision.build_assets(root), provision.build_assets(root)
    assert first == second
    assert set(first) == {"DeployFunctionCodeKey", "GlueScriptKey"}
    assert re.fullmatch(r"lambda/deploy-[0-9a-f]{16}\.zip", first["DeployFunctionCodeKey"].key)
    import io
    import zipfile
    names = zipfile.ZipFile(io.BytesIO(first["DeployFunctionCodeKey"].body)).namelist()
    assert "deployment/handler.py" in names and "aircast/settings.py" in names
    assert not any("__pycache__" in n for n in names)
    (root / "deployment" / "handler.py").write_text("def lambda_handler(e, c):\n    return 1\n")
    changed = provision.build_assets(root)
    assert changed["DeployFunctionCodeKey"].key != first["DeployFunctionCodeKey"].key
    assert changed["GlueScriptKey"] == first["GlueScriptKey"]


def test_build_assets_names_a_missing_script(tmp_path: Path) -> None:
    root = make_checkout(tmp_path / "repo")
    (root / "processing" / "glue_etl.py").unlink()
    with pytest.raises(provision.ProvisionError, match="glue_etl.py is missing"):
        provision.build_assets(root)


def test_code_bucket_is_private_encrypted_and_uploads_once(aws) -> None:
    s3 = aws["s3"]
    provision.ensure_code_bucket(s3, CODE_BUCKET, REGION)
    provision.ensure_code_bucket(s3, CODE_BUCKET, REGION)  # idempotent
    block = s3.get_public_access_block(Bucket=CODE_BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    rules = s3.get_bucket_encryption(Bucket=CODE_BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assets = {"A": provision.Asset("lambda/a.zip", b"zip"), "B": provision.Asset("glue/b.py", b"py")}
    assert provision.upload_assets(s3, CODE_BUCKET, assets) == ["lambda/a.zip", "glue/b.py"]
    assert provision.upload_assets(s3, CODE_BUCKET, assets) == []
    assert s3.get_object(Bucket=CODE_BUCKET, Key="glue/b.py")["Body"].read() == b"py"


def test_stack_update_goes_through_an_update_change_set(fresh_stack) -> None:
    aws, params, _ = fresh_stack
    result = provision.deploy_stack(aws["cloudformation"], "aircast",
                                    {**params, "RetrainingSchedule": "rate(1 day)", "RetrainingState": "DISABLED"},
                                    sleep=lambda s: None)
    assert (result.change_set_type, result.status) == ("UPDATE", "UPDATE_COMPLETE")
    rule = aws["events"].describe_rule(Name="aircast-scheduled-retrain")
    assert (rule["ScheduleExpression"], rule["State"]) == ("rate(1 day)", "DISABLED")
    change_sets = aws["cloudformation"].list_change_sets(StackName="aircast")["Summaries"]
    assert sorted(cs["ExecutionStatus"] for cs in change_sets) == ["EXECUTE_COMPLETE", "EXECUTE_COMPLETE"]


def test_unknown_parameter_is_refused_before_any_call(aws) -> None:
    with pytest.raises(provision.ProvisionError, match="unknown stack parameter.*FirehoseBufferSecs"):
        provision.deploy_stack(aws["cloudformation"], "aircast", {"FirehoseBufferSecs": "60"})
    assert aws["cloudformation"].list_stacks()["StackSummaries"] == []


# ------------------------------------------------------------------ paths moto does not model (Stubber)
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/aircast/1"
CS_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:changeSet/aircast-1/1"


def _stack(status: str, outputs: list[dict[str, str]] | None = None) -> dict:
    import datetime as dt
    return {"Stacks": [{"StackName": "aircast", "StackId": STACK_ID, "StackStatus": status,
                        "CreationTime": dt.datetime(2026, 1, 1), "Outputs": outputs or []}]}


def _cfn():
    return boto3.client("cloudformation", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")


def test_update_without_changes_deletes_the_change_set_and_returns_outputs() -> None:
    cfn = _cfn()
    outputs = [{"OutputKey": "LakeBucketName", "OutputValue": "lake"}]
    with Stubber(cfn) as stub:
        stub.add_response("describe_stacks", _stack("UPDATE_COMPLETE", outputs), {"StackName": "aircast"})
        stub.add_response("create_change_set", {"Id": CS_ID, "StackId": STACK_ID})
        stub.add_response("describe_change_set", {
            "Status": "FAILED", "ChangeSetName": "aircast-1", "StackName": "aircast",
            "StatusReason": "The submitted information didn't contain changes. Submit different information "
                            "to create a change set."}, {"ChangeSetName": CS_ID, "StackName": "aircast"})
        stub.add_response("delete_change_set", {}, {"ChangeSetName": CS_ID, "StackName": "aircast"})
        stub.add_response("describe_stacks", _stack("UPDATE_COMPLETE", outputs), {"StackName": "aircast"})
        result = provision.deploy_stack(cfn, "aircast", {"CodeBucket": "b"}, sleep=lambda s: None)
        stub.assert_no_pending_responses()
    assert result.outputs == {"LakeBucketName": "lake"} and result.changes == []


def test_change_set_request_shape() -> None:
    cfn = _cfn()
    template = provision.TEMPLATE_PATH.read_text()
    with Stubber(cfn) as stub:
        stub.add_client_error("describe_stacks", "ValidationError", "Stack with id aircast does not exist")
        stub.add_response("create_change_set", {"Id": CS_ID, "StackId": STACK_ID}, {
            "StackName": "aircast", "ChangeSetName": stub_any(), "ChangeSetType": "CREATE",
            "Parameters": [{"ParameterKey": "CodeBucket", "ParameterValue": "b"},
                           {"ParameterKey": "FirehoseBufferSeconds", "ParameterValue": "60"}],
            "Capabilities": ["CAPABILITY_NAMED_IAM"], "Tags": [{"Key": "project", "Value": "aircast"}],
            "TemplateBody": template})
        stub.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": []})
        stub.add_response("execute_change_set", {}, {"ChangeSetName": CS_ID, "StackName": "aircast"})
        stub.add_response("describe_stacks", _stack("CREATE_IN_PROGRESS"))
        stub.add_response("describe_stacks", _stack("CREATE_COMPLETE"))
        stub.add_response("describe_stacks", _stack("CREATE_COMPLETE"))
        sleeps: list[float] = []
        result = provision.deploy_stack(cfn, "aircast", {"CodeBucket": "b", "FirehoseBufferSeconds": "60"},
                                        sleep=sleeps.append, poll_s=7)
        stub.assert_no_pending_responses()
    assert result.status == "CREATE_COMPLETE" and sleeps == [7]


def test_failed_update_reports_the_failed_resources() -> None:
    import datetime as dt
    cfn = _cfn()
    with Stubber(cfn) as stub:
        stub.add_response("describe_stacks", _stack("CREATE_COMPLETE"))
        stub.add_response("create_change_set", {"Id": CS_ID, "StackId": STACK_ID})
        stub.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": []})
        stub.add_response("execute_change_set", {})
        stub.add_response("describe_stacks", _stack("UPDATE_ROLLBACK_COMPLETE"))
        stub.add_response("describe_stack_events", {"StackEvents": [
            {"StackId": STACK_ID, "EventId": "1", "StackName": "aircast", "LogicalResourceId": "EtlJob",
             "ResourceStatus": "UPDATE_FAILED", "ResourceStatusReason": "Invalid GlueVersion",
             "Timestamp": dt.datetime(2026, 1, 1)}]})
        with pytest.raises(provision.ProvisionError, match="UPDATE_ROLLBACK_COMPLETE: EtlJob: Invalid GlueVersion"):
            provision.deploy_stack(cfn, "aircast", {"CodeBucket": "b"}, sleep=lambda s: None)


def test_a_stack_that_never_got_created_must_be_destroyed_first() -> None:
    cfn = _cfn()
    with Stubber(cfn) as stub:
        stub.add_response("describe_stacks", _stack("ROLLBACK_COMPLETE"))
        with pytest.raises(provision.ProvisionError, match="destroy-stack"):
            provision.deploy_stack(cfn, "aircast", {"CodeBucket": "b"})


def stub_any():
    from botocore.stub import ANY
    return ANY


def test_parameter_overrides_parse() -> None:
    from aircast.output import CommandError, parse_assignments

    parse = lambda pairs: parse_assignments(pairs, "--parameter", "A=1", form="KEY=VALUE")  # noqa: E731
    assert parse(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(CommandError, match="KEY=VALUE"):
        parse(["nope"])


def test_destroy_detaches_the_policy_then_deletes_the_stack() -> None:
    cfn = _cfn()
    iot = boto3.client("iot", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    cert = f"arn:aws:iot:{REGION}:{ACCOUNT}:cert/abc"
    with Stubber(cfn) as cfn_stub, Stubber(iot) as iot_stub:
        cfn_stub.add_response("describe_stacks", _stack("UPDATE_COMPLETE"))
        cfn_stub.add_response("describe_stacks", _stack("UPDATE_COMPLETE", [
            {"OutputKey": "IotPolicyName", "OutputValue": "aircast-sensor"}]))
        iot_stub.add_response("list_targets_for_policy", {"targets": [cert], "nextMarker": "m"},
                              {"policyName": "aircast-sensor"})
        iot_stub.add_response("list_targets_for_policy", {"targets": []},
                              {"policyName": "aircast-sensor", "marker": "m"})
        iot_stub.add_response("detach_policy", {}, {"policyName": "aircast-sensor", "target": cert})
        cfn_stub.add_response("delete_stack", {}, {"StackName": "aircast"})
        cfn_stub.add_response("describe_stacks", _stack("DELETE_IN_PROGRESS"))
        cfn_stub.add_client_error("describe_stacks", "ValidationError", "Stack with id aircast does not exist")
        assert provision.destroy_stack(cfn, iot, "aircast", sleep=lambda s: None) == "DELETE_COMPLETE"
        cfn_stub.assert_no_pending_responses()
        iot_stub.assert_no_pending_responses()


def test_a_template_over_the_inline_limit_goes_through_the_code_bucket(aws, tmp_path: Path) -> None:
    padded = provision.TEMPLATE_PATH.read_text() + "# " + "x" * provision.MAX_TEMPLATE_BODY_BYTES + "\n"
    assets = provision.build_assets(make_checkout(tmp_path / "repo"))
    provision.ensure_code_bucket(aws["s3"], CODE_BUCKET, REGION)
    provision.upload_assets(aws["s3"], CODE_BUCKET, assets)
    params = {"CodeBucket": CODE_BUCKET, **{k: a.key for k, a in assets.items()}}
    with pytest.raises(provision.ProvisionError, match="over 51,200 bytes"):
        provision.deploy_stack(aws["cloudformation"], "aircast", params, template_text=padded)
    result = provision.deploy_stack(aws["cloudformation"], "aircast", params, template_text=padded,
                                    s3=aws["s3"], code_bucket=CODE_BUCKET, sleep=lambda s: None)
    assert result.status == "CREATE_COMPLETE"
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=CODE_BUCKET, Prefix="templates/")["Contents"]]
    assert len(keys) == 1 and keys[0].endswith(".yaml")
