"""`aircast aws ...` end to end against moto (the CLI makes its own boto3 clients)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aircast.cli import main
from aircast.commands.aws import backend_environment, default_parameters
from aircast.settings import Settings
from infra.aws import provision
from tests.aws.mocked import ACCOUNT, REGION, make_checkout, moto_account


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_checkout(tmp_path / "repo")
    monkeypatch.setattr(provision, "REPO_ROOT", root)
    return root


def test_deploy_stack_then_register_thing(settings: Settings, checkout: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with moto_account() as aws:
        rc = main(["aws", "deploy-stack", "--json", "--parameter", "FirehoseBufferSeconds=60"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        result = json.loads(out)
        assert (result["change_set_type"], result["status"]) == ("CREATE", "CREATE_COMPLETE")
        assert result["environment"]["AIRCAST_BACKEND"] == "aws"
        assert result["environment"]["AIRCAST_ACCOUNT_ID"] == ACCOUNT
        assert "packaging the deploy Lambda" in err
        # the code landed in the per-account code bucket, content-addressed
        bucket = provision.code_bucket_name(ACCOUNT, REGION)
        keys = {o["Key"] for o in aws["s3"].list_objects_v2(Bucket=bucket)["Contents"]}
        assert any(k.startswith("lambda/deploy-") for k in keys) and any(k.startswith("glue/glue_etl-") for k in keys)
        params = {p["ParameterKey"]: p["ParameterValue"]
                  for p in aws["cloudformation"].describe_stacks(StackName="aircast")["Stacks"][0]["Parameters"]}
        assert params["FirehoseBufferSeconds"] == "60" and params["CodeBucket"] == bucket

        # moto computes no stack Outputs after a change set, so name the policy and type explicitly
        rc = main(["aws", "register-thing", "sensor-07", "--json", "--policy-name", "aircast-sensor",
                   "--thing-type", "aircast-sensor", "--pki-dir", str(tmp_path / "pki")])
        out, err = capsys.readouterr()
        assert rc == 0, err
        reg = json.loads(out)
        assert reg["thing_name"] == "sensor-07" and Path(reg["cert"]).is_file() and Path(reg["key"]).is_file()
        assert aws["iot"].list_thing_principals(thingName="sensor-07")["principals"] == [reg["certificate_arn"]]


def test_user_errors_are_one_line(settings: Settings, checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with moto_account():
        assert main(["aws", "deploy-stack", "--parameter", "NoEquals"]) == 2  # usage
        assert "KEY=VALUE" in capsys.readouterr().err
        assert main(["aws", "deploy-stack", "--parameter", "Typo=1"]) == 1
        assert "unknown stack parameter(s) Typo" in capsys.readouterr().err
        assert main(["aws", "destroy-stack"]) == 2
        assert "Pass --yes" in capsys.readouterr().err
        assert main(["aws", "destroy-stack", "--yes", "--stack-name", "nope"]) == 1
        assert "stack nope does not exist" in capsys.readouterr().err
        assert main(["aws", "register-thing", "x"]) == 1
        assert "does not exist; run `aircast aws deploy-stack` first" in capsys.readouterr().err


def test_settings_become_stack_parameters_and_outputs_become_settings() -> None:
    s = Settings(firehose_buffer_mib=0.2, firehose_buffer_seconds=2000.0, lake_bucket="my-lake")
    params = default_parameters(s)
    assert params["FirehoseBufferMiB"] == "1" and params["FirehoseBufferSeconds"] == "900"  # clamped to Firehose's limits
    assert params["LakeBucketName"] == "my-lake" and "ArtifactsBucketName" not in params
    assert params["PipelineName"] == s.pipeline_name
    names = provision.template_parameter_names(provision.TEMPLATE_PATH.read_text())
    assert set(params) <= names, set(params) - names
    env = backend_environment({"LakeBucketName": "l", "SageMakerExecutionRoleArn": "arn:r", "Other": "x"}, REGION, ACCOUNT)
    assert env == {"AIRCAST_BACKEND": "aws", "AIRCAST_REGION": REGION, "AIRCAST_ACCOUNT_ID": ACCOUNT,
                   "AIRCAST_LAKE_BUCKET": "l", "AIRCAST_ROLE_ARN": "arn:r"}
    # every variable names a real setting, so exporting them configures aircast
    fields = {f"AIRCAST_{f.upper()}" for f in Settings.__dataclass_fields__}
    all_env = backend_environment({k: "v" for k in ("LakeBucketName", "ArtifactsBucketName", "SageMakerExecutionRoleArn",
                                                    "DeliveryStreamName", "GlueDatabaseName", "GlueJobName", "PipelineName",
                                                    "ModelPackageGroupName", "EndpointName")}, REGION, ACCOUNT)
    assert set(all_env) <= fields
