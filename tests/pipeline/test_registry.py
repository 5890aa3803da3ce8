"""Local Model Registry: groups, versions, approvals, sort order, state-change events."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from infra.local.sagemaker.client import LocalSageMakerClient

SPEC = {"Containers": [{"Image": "img:1", "ModelDataUrl": "s3://aircast-artifacts/m/model.tar.gz",
                        "Environment": {"A": "1"}}]}


def _register(client: LocalSageMakerClient, status: str = "PendingManualApproval", wql: str = "0.5") -> str:
    return client.create_model_package(
        ModelPackageGroupName="aircast-deepar", InferenceSpecification=SPEC, ModelApprovalStatus=status,
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                      "S3Uri": "s3://aircast-artifacts/e/evaluation.json"}}},
        CustomerMetadataProperties={"mean_wQuantileLoss": wql})["ModelPackageArn"]


def test_versions_and_approvals(settings) -> None:
    client = LocalSageMakerClient(settings.local_config())
    with pytest.raises(ClientError, match="does not exist"):
        _register(client)
    client.create_model_package_group(ModelPackageGroupName="aircast-deepar")
    with pytest.raises(ClientError, match="already exists"):
        client.create_model_package_group(ModelPackageGroupName="aircast-deepar")
    first, second = _register(client, wql="0.6"), _register(client, wql="0.4")
    assert first == "arn:aws:sagemaker:us-east-1:000000000000:model-package/aircast-deepar/1"
    assert second.endswith("/aircast-deepar/2")
    pkg = client.describe_model_package(ModelPackageName=second)
    assert pkg["ModelPackageVersion"] == 2 and pkg["ModelApprovalStatus"] == "PendingManualApproval"
    assert pkg["InferenceSpecification"] == SPEC
    assert pkg["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].endswith("evaluation.json")
    assert pkg["CustomerMetadataProperties"] == {"mean_wQuantileLoss": "0.4"}

    listed = client.list_model_packages(ModelPackageGroupName="aircast-deepar", SortBy="CreationTime",
                                        SortOrder="Descending")["ModelPackageSummaryList"]
    assert [p["ModelPackageVersion"] for p in listed] == [2, 1]
    client.update_model_package(ModelPackageArn=first, ModelApprovalStatus="Approved", ApprovalDescription="ok")
    approved = client.list_model_packages(ModelPackageGroupName="aircast-deepar", ModelApprovalStatus="Approved")
    assert [p["ModelPackageArn"] for p in approved["ModelPackageSummaryList"]] == [first]
    assert client.describe_model_package(ModelPackageName=first)["ApprovalDescription"] == "ok"
    with pytest.raises(ClientError, match="ModelApprovalStatus must be one of"):
        client.update_model_package(ModelPackageArn=first, ModelApprovalStatus="Maybe")
    with pytest.raises(ClientError, match="does not exist"):
        client.describe_model_package(ModelPackageName=first.replace("/1", "/9"))
    page = client.list_model_packages(ModelPackageGroupName="aircast-deepar", MaxResults=1)
    assert len(page["ModelPackageSummaryList"]) == 1 and page["NextToken"] == "1"
    groups = client.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in groups] == ["aircast-deepar"]


def test_status_change_puts_event(settings) -> None:
    from infra.local.eventbridge.client import LocalEventsClient

    client = LocalSageMakerClient(settings.local_config())
    client.create_model_package_group(ModelPackageGroupName="aircast-deepar")
    arn = _register(client)
    client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    client.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")  # no change → no event
    details = []
    for entry in LocalEventsClient(settings).history(source="aws.sagemaker"):
        assert entry["event"]["detail-type"] == "SageMaker Model Package State Change"
        assert entry["event"]["resources"] == [arn]
        details.append(entry["event"]["detail"])
    statuses = sorted(d["ModelApprovalStatus"] for d in details)
    assert statuses == ["PendingManualApproval", "Rejected"]  # creation + one change
    assert all(d["ModelPackageArn"] == arn and d["ModelPackageGroupName"] == "aircast-deepar"
               and d["ModelPackageVersion"] == 1 for d in details)


def test_models_cli(settings, capsys: pytest.CaptureFixture[str]) -> None:
    from aircast.cli import main

    client = LocalSageMakerClient(settings.local_config())
    client.create_model_package_group(ModelPackageGroupName=settings.model_package_group)
    _register(client, wql="0.42")
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["version"] == 1 and rows[0]["mean_wQL"] == 0.42 and rows[0]["status"] == "PendingManualApproval"
    assert main(["models", "approve", "1"]) == 0
    assert "PendingManualApproval → Approved" in capsys.readouterr().out
    assert main(["models", "reject", "7"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["models", "approve", "latest"]) == 2  # usage
    assert "version number" in capsys.readouterr().err
