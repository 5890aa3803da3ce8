"""The AWS path (boto3) of the registry and pipeline commands, against moto."""

from __future__ import annotations

import json

import boto3
import pytest

from pipelines.code import code_version

moto = pytest.importorskip("moto")

ROLE = "arn:aws:iam::123456789012:role/aircast-sagemaker-execution"


@pytest.fixture
def aws(settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRCAST_BACKEND", "aws")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto.mock_aws():
        yield settings.replace(backend="aws")


def test_models_commands_on_aws(aws, capsys: pytest.CaptureFixture[str]) -> None:
    from aircast.cli import main

    sm = boto3.client("sagemaker", region_name="us-east-1")
    sm.create_model_package_group(ModelPackageGroupName=aws.model_package_group)
    for wql in ("0.61", "0.47"):
        sm.create_model_package(
            ModelPackageGroupName=aws.model_package_group, ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={"Containers": [{"Image": "img:1", "ModelDataUrl": "s3://b/m.tar.gz"}],
                                    "SupportedContentTypes": ["application/json"],
                                    "SupportedResponseMIMETypes": ["application/json"]},
            CustomerMetadataProperties={"mean_wQuantileLoss": wql})
    assert main(["--backend", "aws", "models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["mean_wQL"] for r in rows] == [0.47, 0.61]  # newest first
    newest = rows[0]["arn"]
    assert main(["--backend", "aws", "models", "approve", newest]) == 0
    assert sm.describe_model_package(ModelPackageName=newest)["ModelApprovalStatus"] == "Approved"


def test_run_pipeline_upserts_and_starts_on_aws(aws, capsys: pytest.CaptureFixture[str]) -> None:
    from aircast.cli import main
    from pipelines import run_pipeline

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="ci-artifacts")
    kwargs = {"region": "us-east-1", "default_bucket": "ci-artifacts", "default_bucket_prefix": "build",
              "pipeline_name": aws.pipeline_name}
    argv = ["--backend", "aws", "--role-arn", ROLE, "--kwargs", json.dumps(kwargs),
            "--tags", '[{"Key": "project", "Value": "aircast"}]', "--parameters", '{"Epochs": 3}']
    assert run_pipeline.main(argv) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    assert first.startswith("arn:aws:sagemaker:us-east-1:") and "/execution/" in first
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="ci-artifacts", Prefix="build/code/")["Contents"]]
    version = code_version()  # the code goes under its content version, which the definition names
    assert f"build/code/{version}/processing/preprocess.py" in keys
    assert f"build/code/{version}/evaluation/evaluate.py" in keys
    assert run_pipeline.main(argv) == 0  # second run: the pipeline exists, so it is updated, not re-created
    sm = boto3.client("sagemaker", region_name="us-east-1")
    definition = json.loads(sm.describe_pipeline(PipelineName=aws.pipeline_name)["PipelineDefinition"])
    assert [s["Name"] for s in definition["Steps"]][0] == "Preprocess"
    capsys.readouterr()
    assert main(["--backend", "aws", "pipeline", "executions", "--json"]) == 0
    executions = json.loads(capsys.readouterr().out)
    assert len(executions) == 2 and first in [e["PipelineExecutionArn"] for e in executions]
