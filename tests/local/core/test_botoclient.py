"""Local clients are real botocore clients: botocore validates every request against the
service model, and a stand-in's errors reach the caller as the service's modeled classes."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from aircast.clients import get_client
from infra.local.core import ServiceError, local_client
from infra.local.core.botoclient import LocalShapeError


@pytest.mark.parametrize(("service", "operation", "params"), [
    ("sagemaker", "describe_model_package", {"ModelPackageNam": "x"}),  # misspelt parameter
    ("sagemaker", "list_model_packages", {"ModelPackageGroupName": "g", "MaxResults": 0}),  # below the minimum
    ("sagemaker", "start_pipeline_execution", {}),  # required PipelineName missing
    ("glue", "get_table", {"DatabaseName": "aircast", "Name": 7}),  # wrong type
    ("cloudwatch", "describe_alarms", {"AlarmNames": "one"}),  # a list, not a string
    ("s3", "put_object", {"Bucket": "aircast-lake", "Key": "k", "Bodyy": b""}),
])
def test_a_request_aws_would_reject_for_its_shape_is_rejected(settings, service, operation, params) -> None:
    with pytest.raises(ParamValidationError):
        getattr(get_client(service, settings), operation)(**params)


@pytest.mark.parametrize(("service", "operation", "params", "message"), [
    ("sagemaker", "describe_endpoint", {"EndpointName": "bad name!"},
     "1 validation error detected: Value 'bad name!' at 'endpointName' failed to satisfy constraint: "
     "Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"),
    ("sagemaker", "list_model_packages", {"ModelPackageGroupName": "g", "MaxResults": 1000},
     "Value '1000' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 100"),
    ("sagemaker", "create_endpoint_config",
     {"EndpointConfigName": "c", "ProductionVariants": [{"VariantName": "v" * 64, "ModelName": "m"}]},
     "2 validation errors detected: Value '" + "v" * 64 + "' at 'productionVariants.1.member.variantName' "
     "failed to satisfy constraint: Member must have length less than or equal to 63"),
    ("events", "put_rule", {"Name": "r", "State": "ON", "ScheduleExpression": "rate(1 hour)"},
     "Value 'ON' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED"),
    ("glue", "get_table", {"DatabaseName": "aircast", "Name": "t" * 256},
     "at 'name' failed to satisfy constraint: Member must have length less than or equal to 255"),
])
def test_server_side_constraints_in_aws_words(settings, service, operation, params, message) -> None:
    """botocore checks minimums only; the service checks max, pattern and enum, and so does the stand-in."""
    with pytest.raises(ClientError) as info:
        getattr(get_client(service, settings), operation)(**params)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert message in info.value.response["Error"]["Message"]


def test_errors_are_the_services_modeled_exception_classes(settings) -> None:
    sagemaker = get_client("sagemaker", settings)
    with pytest.raises(sagemaker.exceptions.ResourceNotFound, match="does not exist"):
        sagemaker.describe_pipeline(PipelineName="nope")
    events = get_client("events", settings)
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        events.describe_rule(Name="nope")
    glue = get_client("glue", settings)
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_table(DatabaseName="aircast", Name="nope")
    # a code the model does not declare is a plain ClientError with that code, as boto3 raises it
    with pytest.raises(ClientError) as info:
        sagemaker.describe_model_package_group(ModelPackageGroupName="nope")
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert type(info.value) is ClientError


class _Backend:
    def __init__(self, answer):
        self.answer = answer

    def describe_model_package_group(self, ModelPackageGroupName: str):
        if ModelPackageGroupName == "boom":
            raise ServiceError("ResourceNotFound", "not here")
        return self.answer


def test_answers_are_conformed_to_the_output_shape(monkeypatch) -> None:
    answer = {"ModelPackageGroupName": "g", "ModelPackageGroupArn": "arn:aws:sagemaker:us-east-1:1:model-package-group/g",
              "CreationTime": 0.0, "ModelPackageGroupStatus": "Completed"}
    client = local_client("sagemaker", _Backend(answer), region="us-east-1")
    out = client.describe_model_package_group(ModelPackageGroupName="g")
    assert out["CreationTime"] == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(client.exceptions.ResourceNotFound, match="not here"):
        client.describe_model_package_group(ModelPackageGroupName="boom")
    with pytest.raises(ClientError, match="NotImplemented"):
        client.describe_model_package(ModelPackageName="x")


def test_a_member_aws_never_returns_is_a_stand_in_bug(monkeypatch) -> None:
    monkeypatch.setenv("AIRCAST_STRICT_RESPONSES", "1")
    client = local_client("sagemaker", _Backend({"ModelPackageGroupName": "g", "LocalOnly": 1}), region="us-east-1")
    with pytest.raises(LocalShapeError, match="no member 'LocalOnly'"):
        client.describe_model_package_group(ModelPackageGroupName="g")
    bad_enum = local_client("sagemaker", _Backend({"ModelPackageGroupStatus": "Fine"}), region="us-east-1")
    with pytest.raises(LocalShapeError, match="not one of"):
        bad_enum.describe_model_package_group(ModelPackageGroupName="g")


def test_tests_on_the_settings_fixture_run_with_strict_responses(settings) -> None:
    """The suite's promise (tests/conftest.py): a stand-in answering a member AWS never returns fails
    the test, in every test, also those that take the isolated settings."""
    client = local_client("sagemaker", _Backend({"ModelPackageGroupName": "g", "LocalOnly": 1}), region="us-east-1")
    with pytest.raises(LocalShapeError, match="no member 'LocalOnly'"):
        client.describe_model_package_group(ModelPackageGroupName="g")
