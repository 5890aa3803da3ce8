"""The Deploy step invokes the stack's deploy function: its DeployFunctionArn output, or its
DeployFunctionName parameter in the role's partition and account (issue 12, finding 14)."""

from __future__ import annotations

import json

import pytest

from pipelines.aircast.pipeline import deploy_lambda_arn

GOV_ROLE = "arn:aws-us-gov:iam::123456789012:role/aircast-sagemaker-execution"


@pytest.mark.parametrize(("region", "role", "expected"), [
    ("eu-west-1", "arn:aws:iam::123456789012:role/r", "arn:aws:lambda:eu-west-1:123456789012:function:aircast-deploy"),
    ("us-gov-west-1", GOV_ROLE, "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:aircast-deploy"),
    ("cn-north-1", "arn:aws-cn:iam::123456789012:role/r",
     "arn:aws-cn:lambda:cn-north-1:123456789012:function:aircast-deploy"),
])
def test_default_arn_is_in_the_role_partition(region: str, role: str, expected: str) -> None:
    assert deploy_lambda_arn(region, role) == expected


def test_the_stack_parameter_and_output_are_used() -> None:
    role = "arn:aws:iam::123456789012:role/r"
    assert deploy_lambda_arn("eu-west-1", role, "team-a-deploy").endswith(":function:team-a-deploy")
    output = "arn:aws:lambda:eu-west-1:123456789012:function:team-a-deploy"
    assert deploy_lambda_arn("eu-west-1", role, function_arn=output) == output


@pytest.mark.parametrize(("region", "role", "name", "arn", "message"), [
    ("eu-west-1", "arn:aws-cn:iam::123456789012:role/r", "aircast-deploy", None,
     "in partition 'aws-cn' but region eu-west-1 is in 'aws'"),
    ("eu-west-1", "arn:aws:iam::123456789012:role/r", "aircast-deploy",
     "arn:aws:lambda:us-east-1:123456789012:function:aircast-deploy", "not in the pipeline's partition, region"),
    ("eu-west-1", "arn:aws:iam::123456789012:role/r", "aircast-deploy",
     "arn:aws:lambda:eu-west-1:999999999999:function:aircast-deploy", "invoke only its own deploy function"),
    ("eu-west-1", "arn:aws:iam::123456789012:role/r", "aircast-deploy", "aircast-deploy",
     "must be a Lambda function ARN"),
    ("eu-west-1", "arn:aws:iam::123456789012:role/r", "bad name!", None, "must be a Lambda function name"),
    ("xx-nowhere-1", "arn:aws:iam::123456789012:role/r", "aircast-deploy", None, "unknown region"),
    ("eu-west-1", "not-a-role", "aircast-deploy", None, "role must be an IAM role ARN"),
])
def test_arns_the_stack_would_not_let_the_pipeline_invoke_are_refused(region, role, name, arn, message) -> None:
    with pytest.raises(ValueError, match=message):
        deploy_lambda_arn(region, role, name, arn)


def test_a_gov_cloud_definition_invokes_the_named_function() -> None:
    from pipelines.aircast.pipeline import get_pipeline

    definition = json.loads(get_pipeline(region="us-gov-west-1", role=GOV_ROLE,
                                         deploy_function_name="aircast-prod-deploy").definition())
    gate = next(s for s in definition["Steps"] if s["Type"] == "Condition")
    deploy = next(s for s in gate["Arguments"]["IfSteps"] if s["Type"] == "Lambda")
    assert deploy["FunctionArn"] == "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:aircast-prod-deploy"


def test_settings_carry_the_stack_output_into_the_definition() -> None:
    from aircast.commands.aws import backend_environment
    from aircast.settings import load_settings
    from pipelines.definition import pipeline_kwargs

    arn = "arn:aws:lambda:eu-west-1:123456789012:function:team-a-deploy"
    env = backend_environment({"DeployFunctionArn": arn}, "eu-west-1", "123456789012")
    assert env["AIRCAST_DEPLOY_FUNCTION_ARN"] == arn
    assert pipeline_kwargs(load_settings(deploy_function_arn=arn))["deploy_function_arn"] == arn
    assert "deploy_function_arn" not in pipeline_kwargs(load_settings())
