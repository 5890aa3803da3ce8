"""Redeploying after destroy-stack, and a second region in the same account.

- The resources the stack retains (buckets, Model Package Group) are found by name and taken back with
  a CloudFormation resource import before the full template is applied: the call sequence is checked
  with botocore's Stubber (moto models no IMPORT change sets), which existence checks run against moto.
- IAM names are global: the stack is created in two regions of one moto account (moto's IAM refuses a
  duplicate role name as IAM does), and the GitHub OIDC provider, one per account, is reused.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from cfnlint.api import lint
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from aircast.cli import main
from infra.aws import provision, retained
from tests.aws.mocked import (
    ACCOUNT,
    REGION,
    SECOND_REGION,
    deploy,
    make_checkout,
    moto_account,
    moto_clients,
    pandas_layer_arn,
)

TEMPLATE = provision.parse_template(provision.TEMPLATE_PATH.read_text())
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/aircast/1"
LAKE, ARTIFACTS = f"aircast-lake-{ACCOUNT}-{REGION}", f"aircast-artifacts-{ACCOUNT}-{REGION}"
GROUP_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/aircast-deepar"
PARAMS = {"CodeBucket": "code", "DeployFunctionCodeKey": "lambda/x.zip", "GlueScriptKey": "glue/x.py"}


def _values(**params: str) -> dict:
    return retained.parameter_values(TEMPLATE, {**PARAMS, **params}, account_id=ACCOUNT, region=REGION,
                                     stack_name="aircast")


# ------------------------------------------------------------------ names and identifiers (pure)
def test_the_retained_resources_and_their_names() -> None:
    found = {r.logical_id: r.name for r in retained.retained_resources(TEMPLATE, _values())}
    assert found == {"LakeBucket": LAKE, "ArtifactsBucket": ARTIFACTS, "ModelPackageGroup": "aircast-deepar"}
    chosen = {r.logical_id: r.name for r in retained.retained_resources(
        TEMPLATE, _values(LakeBucketName="my-lake", ModelPackageGroupName="g2"))}
    assert chosen["LakeBucket"] == "my-lake" and chosen["ModelPackageGroup"] == "g2"


def test_every_retained_type_has_an_adopter_keyed_by_its_primary_identifier() -> None:
    kept = {r["Type"] for r in TEMPLATE["Resources"].values() if r.get("DeletionPolicy") == "Retain"}
    assert kept <= set(retained.ADOPTERS) | set(retained.REFERENCED)
    for resource_type, adopter in retained.ADOPTERS.items():
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(REGION, resource_type).schema
        assert schema["primaryIdentifier"] == [f"/properties/{adopter.identifier}"], resource_type
    imports = [r.to_import(_values()) for r in retained.retained_resources(TEMPLATE, _values())]
    assert {"ResourceType": "AWS::SageMaker::ModelPackageGroup", "LogicalResourceId": "ModelPackageGroup",
            "ResourceIdentifier": {"ModelPackageGroupArn": GROUP_ARN}} in imports


def test_a_retained_resource_deploy_stack_could_not_take_back_is_a_template_error() -> None:
    template = {"Resources": {"Q": {"Type": "AWS::SQS::Queue", "DeletionPolicy": "Retain",
                                   "Properties": {"QueueName": "q"}}}}
    with pytest.raises(retained.RetainedResourceError, match="no way to take it back"):
        retained.retained_resources(template, {})
    unnamed = {"Resources": {"B": {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "Properties": {}}}}
    with pytest.raises(retained.RetainedResourceError, match="has no BucketName"):
        retained.retained_resources(unnamed, {})


@pytest.mark.parametrize(("expr", "want"), [
    ({"Fn::Sub": "${ProjectName}-lake-${AWS::AccountId}-${AWS::Region}"}, f"aircast-lake-{ACCOUNT}-{REGION}"),
    ({"Fn::Sub": "client/${!iot:Connection.Thing.ThingName}"}, "client/${iot:Connection.Thing.ThingName}"),
    ({"Fn::Sub": ["${A}/${ProjectName}", {"A": {"Ref": "AWS::Partition"}}]}, "aws/aircast"),
    ({"Fn::Join": ["_", {"Fn::Split": ["-", {"Fn::Sub": "${ProjectName}-x-y"}]}]}, "aircast_x_y"),
    ({"Fn::If": ["GenerateLakeBucketName", "generated", {"Ref": "LakeBucketName"}]}, "generated"),
])
def test_evaluate(expr: dict, want: str) -> None:
    assert retained.evaluate(expr, _values(), TEMPLATE["Conditions"]) == want


def test_the_import_template_holds_only_the_imported_resources_and_lints_clean() -> None:
    body = retained.import_template(TEMPLATE, ["LakeBucket", "ModelPackageGroup"])
    doc = json.loads(body)
    assert set(doc["Resources"]) == {"LakeBucket", "ModelPackageGroup"}
    assert all(r["DeletionPolicy"] == "Retain" for r in doc["Resources"].values())  # import requires one
    assert "Outputs" not in doc
    errors = [m for m in lint(body, regions=[REGION]) if m.rule.id.startswith("E")]
    assert not errors, [f"{m.rule.id}: {m.message}" for m in errors]


# ------------------------------------------------------------------ which exist (moto)
def test_existing_retained_finds_what_an_earlier_stack_left() -> None:
    with moto_account() as aws:
        clients = {"s3": aws["s3"], "sagemaker": aws["sagemaker"]}
        assert retained.existing_retained(TEMPLATE, _values(), clients) == []
        aws["s3"].create_bucket(Bucket=LAKE)
        aws["sagemaker"].create_model_package_group(ModelPackageGroupName="aircast-deepar")
        found = retained.existing_retained(TEMPLATE, _values(), clients)
        assert [(r.logical_id, r.name) for r in found] == [("LakeBucket", LAKE), ("ModelPackageGroup", "aircast-deepar")]


def test_a_bucket_name_another_account_owns_is_refused_with_the_way_out() -> None:
    s3 = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", "403", "Forbidden", 403, expected_params={"Bucket": LAKE})
        with pytest.raises(retained.RetainedResourceError, match="another account owns it.*LakeBucketName="):
            retained.existing_retained(TEMPLATE, _values(), {"s3": s3, "sagemaker": None})


# ------------------------------------------------------------------ destroy-stack, then deploy-stack (Stubber)
def _stack(status: str) -> dict:
    return {"Stacks": [{"StackName": "aircast", "StackId": STACK_ID, "StackStatus": status,
                        "CreationTime": dt.datetime(2026, 1, 1), "Outputs": []}]}


def test_deploy_after_destroy_imports_the_retained_resources_then_applies_the_template() -> None:
    creds = {"region_name": REGION, "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    cfn, s3, sagemaker = (boto3.client(s, **creds) for s in ("cloudformation", "s3", "sagemaker"))
    imported: dict = {}
    cfn.meta.events.register("provide-client-params.cloudformation.CreateChangeSet",
                             lambda params, **_: imported.update(params) if params["ChangeSetType"] == "IMPORT" else None)
    with Stubber(cfn) as c, Stubber(s3) as s, Stubber(sagemaker) as m:
        c.add_client_error("describe_stacks", "ValidationError", "Stack with id aircast does not exist")
        # the buckets and the group the deleted stack kept: the lake and the group are still there
        s.add_response("head_bucket", {}, {"Bucket": LAKE})
        s.add_client_error("head_bucket", "404", "Not Found", 404, expected_params={"Bucket": ARTIFACTS})
        m.add_response("describe_model_package_group", {
            "ModelPackageGroupName": "aircast-deepar", "ModelPackageGroupArn": GROUP_ARN,
            "CreationTime": dt.datetime(2026, 1, 1), "CreatedBy": {}, "ModelPackageGroupStatus": "Completed"},
            {"ModelPackageGroupName": "aircast-deepar"})
        c.add_response("create_change_set", {"Id": "cs-import", "StackId": STACK_ID}, {
            "StackName": "aircast", "ChangeSetName": ANY, "ChangeSetType": "IMPORT", "TemplateBody": ANY,
            "Parameters": provision.stack_parameters(PARAMS), "Capabilities": ["CAPABILITY_NAMED_IAM"],
            "Tags": [{"Key": "project", "Value": "aircast"}],
            "ResourcesToImport": [
                {"ResourceType": "AWS::S3::Bucket", "LogicalResourceId": "LakeBucket",
                 "ResourceIdentifier": {"BucketName": LAKE}},
                {"ResourceType": "AWS::SageMaker::ModelPackageGroup", "LogicalResourceId": "ModelPackageGroup",
                 "ResourceIdentifier": {"ModelPackageGroupArn": GROUP_ARN}}]})
        c.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": []})
        c.add_response("execute_change_set", {}, {"ChangeSetName": "cs-import", "StackName": "aircast"})
        c.add_response("describe_stacks", _stack("IMPORT_IN_PROGRESS"))
        c.add_response("describe_stacks", _stack("IMPORT_COMPLETE"))
        # then the whole template, as an update of the stack the import created
        c.add_response("create_change_set", {"Id": "cs-update", "StackId": STACK_ID}, {
            "StackName": "aircast", "ChangeSetName": ANY, "ChangeSetType": "UPDATE",
            "TemplateBody": provision.TEMPLATE_PATH.read_text(), "Parameters": provision.stack_parameters(PARAMS),
            "Capabilities": ["CAPABILITY_NAMED_IAM"], "Tags": [{"Key": "project", "Value": "aircast"}]})
        c.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "Changes": []})
        c.add_response("execute_change_set", {}, {"ChangeSetName": "cs-update", "StackName": "aircast"})
        c.add_response("describe_stacks", _stack("UPDATE_COMPLETE"))
        c.add_response("describe_stacks", _stack("UPDATE_COMPLETE"))
        result = provision.deploy_stack(cfn, "aircast", PARAMS, retained_clients={"s3": s3, "sagemaker": sagemaker},
                                        account_id=ACCOUNT, sleep=lambda s: None)
        for stub in (c, s, m):
            stub.assert_no_pending_responses()
    assert result.adopted == [f"LakeBucket {LAKE}", "ModelPackageGroup aircast-deepar"]
    assert (result.change_set_type, result.status) == ("UPDATE", "UPDATE_COMPLETE")
    assert set(json.loads(imported["TemplateBody"])["Resources"]) == {"LakeBucket", "ModelPackageGroup"}


def test_an_import_cloudformation_refuses_changes_nothing_and_says_what_to_do() -> None:
    creds = {"region_name": REGION, "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    cfn, s3, sagemaker = (boto3.client(s, **creds) for s in ("cloudformation", "s3", "sagemaker"))
    with Stubber(cfn) as c, Stubber(s3) as s, Stubber(sagemaker) as m:
        c.add_client_error("describe_stacks", "ValidationError", "Stack with id aircast does not exist")
        s.add_response("head_bucket", {})
        s.add_client_error("head_bucket", "404", "Not Found", 404)
        m.add_client_error("describe_model_package_group", "ValidationException",
                           f"ModelPackageGroup {GROUP_ARN} does not exist.")
        c.add_response("create_change_set", {"Id": "cs-import", "StackId": STACK_ID})
        c.add_response("describe_change_set", {
            "Status": "FAILED", "StatusReason": f"Resource {LAKE} is already managed by stack other"})
        with pytest.raises(provision.ProvisionError, match="cannot import LakeBucket .*already managed by stack other"
                                                           ".*Nothing was changed"):
            provision.deploy_stack(cfn, "aircast", PARAMS, retained_clients={"s3": s3, "sagemaker": sagemaker},
                                   account_id=ACCOUNT, sleep=lambda s: None)
        c.assert_no_pending_responses()  # no execute, no update


# ------------------------------------------------------------------ a second region in the same account (moto)
def test_the_stack_runs_in_two_regions_of_one_account(tmp_path: Path) -> None:
    with moto_account() as aws:
        first = deploy(aws, tmp_path / "a", REGION)[1]
        second = deploy(aws, tmp_path / "b", SECOND_REGION)[1]
        assert first.status == second.status == "CREATE_COMPLETE"
        roles = {r["RoleName"] for r in aws["iam"].list_roles()["Roles"]}
        assert {f"aircast-sagemaker-execution-{REGION}", f"aircast-sagemaker-execution-{SECOND_REGION}"} <= roles
        policies = {p["PolicyName"] for p in aws["iam"].list_policies(Scope="Local")["Policies"]}
        assert {f"aircast-pipeline-deployer-{REGION}", f"aircast-pipeline-deployer-{SECOND_REGION}"} <= policies
        # and each region's drift Lambda gets that region's pandas layer (publisher and version differ per region)
        for region in (REGION, SECOND_REGION):
            stack = moto_clients(region)["cloudformation"].describe_stacks(StackName="aircast")["Stacks"][0]
            resolved = {p["ParameterKey"]: p.get("ResolvedValue", p["ParameterValue"]) for p in stack["Parameters"]}
            assert resolved["PandasLayerParameter"] == pandas_layer_arn(region)


def test_iam_names_fit_iams_limit_in_every_region() -> None:
    longest_project = "a" + "b" * 20  # ProjectName's AllowedPattern allows 21 characters
    regions = boto3.session.Session().get_available_regions("sagemaker")
    limits = {"AWS::IAM::Role": ("RoleName", 64), "AWS::IAM::ManagedPolicy": ("ManagedPolicyName", 128)}
    checked = 0
    for resource in TEMPLATE["Resources"].values():
        if resource["Type"] not in limits or limits[resource["Type"]][0] not in resource["Properties"]:
            continue
        prop, limit = limits[resource["Type"]]
        for region in regions:
            values = retained.parameter_values(TEMPLATE, {**PARAMS, "ProjectName": longest_project},
                                               account_id=ACCOUNT, region=region, stack_name="aircast")
            name = retained.evaluate(resource["Properties"][prop], values, TEMPLATE["Conditions"])
            assert region in name and len(name) <= limit, name
        checked += 1
    assert checked == 3  # SageMaker execution role, GitHub Actions role, pipeline deployer policy


def test_deploy_stack_reuses_the_accounts_github_oidc_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               settings, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(provision, "REPO_ROOT", make_checkout(tmp_path / "repo"))
    with moto_account() as aws:
        assert retained.github_oidc_provider(aws["iam"], aws["cloudformation"], "aircast") is None
        arn = aws["iam"].create_open_id_connect_provider(
            Url="https://token.actions.githubusercontent.com", ClientIDList=["sts.amazonaws.com"],
            ThumbprintList=["a" * 40])["OpenIDConnectProviderArn"]
        assert main(["aws", "deploy-stack", "--json", "--github-repository", "me/aircast"]) == 0, capsys.readouterr().err
        assert "using the account's GitHub OIDC provider" in capsys.readouterr().err
        stack = moto_clients()["cloudformation"].describe_stacks(StackName="aircast")["Stacks"][0]
        params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
        assert params["GitHubOidcProviderArn"] == arn and params["GitHubRepository"] == "me/aircast"
