"""Local Model Registry: groups, versions, approvals, sort order, state-change events."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from infra.local.sagemaker.client import LocalSageMakerClient

SPEC = {"Containers": [{"Image": "img:1", "ModelDataUrl": "s3://aircast-artifacts/m/model.tar.gz",
                        "Environment": {"A": "1"}}]}


def register_package(client: LocalSageMakerClient, status: str = "PendingManualApproval", wql: str = "0.5") -> str:
    return client.create_model_package(
        ModelPackageGroupName="aircast-deepar", InferenceSpecification=SPEC, ModelApprovalStatus=status,
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                      "S3Uri": "s3://aircast-artifacts/e/evaluation.json"}}},
        CustomerMetadataProperties={"mean_wQuantileLoss": wql})["ModelPackageArn"]


def test_versions_and_approvals(settings) -> None:
    client = LocalSageMakerClient(settings.local_config())
    with pytest.raises(ClientError, match="does not exist"):
        register_package(client)
    client.create_model_package_group(ModelPackageGroupName="aircast-deepar")
    with pytest.raises(ClientError, match="already exists"):
        client.create_model_package_group(ModelPackageGroupName="aircast-deepar")
    first, second = register_package(client, wql="0.6"), register_package(client, wql="0.4")
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
    arn = register_package(client)
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
