"""The scheduled drift check on AWS: the stack wires a schedule to the drift Lambda, whose handler and
settings exist in the code, and the handler runs on the aws backend against moto (S3, events)."""

from __future__ import annotations

import dataclasses
import importlib
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from aircast.settings import Settings
from infra.aws import provision
from tests.aws.mocked import deploy, moto_account, moto_clients
from tests.aws.test_deploy_lambda import ACCOUNT, REGION, _template


def test_schedule_invokes_the_drift_function_whose_handler_and_settings_exist() -> None:
    resources = _template()["Resources"]
    rule = resources["DriftCheckRule"]["Properties"]
    assert rule["ScheduleExpression"] == {"Ref": "DriftCheckSchedule"}
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["DriftMonitorFunction", "Arn"]}
    assert resources["DriftCheckInvokePermission"]["Properties"]["SourceArn"] == {"Fn::GetAtt": ["DriftCheckRule", "Arn"]}
    fn = resources["DriftMonitorFunction"]["Properties"]
    module, _, attr = fn["Handler"].rpartition(".")
    assert callable(getattr(importlib.import_module(module), attr))
    fields = {f.name for f in dataclasses.fields(Settings)}
    for name in fn["Environment"]["Variables"]:
        assert name.startswith("AIRCAST_") and name[len("AIRCAST_"):].lower() in fields, name


@mock_aws
def test_drift_lambda_on_aws_with_no_served_forecasts_reports_no_drift(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("AIRCAST_")]:
        monkeypatch.delenv(key)
    lake, artifacts = f"aircast-lake-{ACCOUNT}", f"aircast-artifacts-{ACCOUNT}"
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in (lake, artifacts):
        s3.create_bucket(Bucket=bucket)
    env = {"AIRCAST_BACKEND": "aws", "AIRCAST_REGION": REGION, "AIRCAST_LAKE_BUCKET": lake,
           "AIRCAST_ARTIFACTS_BUCKET": artifacts, "AIRCAST_DATA_DIR": str(tmp_path / "lambda-tmp")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    from aircast.monitoring import lambda_handler

    result = lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None)
    assert result["drift"] is False and not result["event_sent"] and result["scored_forecasts"] == 0
    # the report and the check's state went to the artifacts bucket, not to the Lambda's disk
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=artifacts, Prefix="monitoring/").get("Contents", [])}
    assert "monitoring/aircast-forecast/latest/drift_report.json" in keys
    assert "monitoring/aircast-forecast/state.json" in keys


# ------------------------------------------------------------------ what the drift Lambda runs with
LAYER_PARAMETER = re.compile(r"^/aws/service/aws-sdk-pandas/\d+\.\d+\.\d+/py(?P<python>3\.\d+)/(?P<arch>x86_64|arm64)"
                             r"/layer-arn$")


def test_the_pandas_layer_comes_from_the_public_ssm_parameter_for_the_functions_runtime() -> None:
    """The layer's publisher account and version differ per region: nothing region-specific is hard-coded."""
    template = _template()
    fn = template["Resources"]["DriftMonitorFunction"]["Properties"]
    (layer,) = fn["Layers"]
    spec = template["Parameters"][layer["Ref"]]
    assert spec["Type"] == "AWS::SSM::Parameter::Value<String>"
    match = LAYER_PARAMETER.match(spec["Default"])
    assert match, spec["Default"]
    assert fn["Runtime"] == f"python{match['python']}"
    assert fn.get("Architectures", ["x86_64"]) == [match["arch"]]
    # no account id (an AWS publisher's or anyone's) in any ARN the template writes out
    assert not re.search(r":\d{12}:", provision.TEMPLATE_PATH.read_text())


def test_a_region_without_the_layer_parameter_is_refused_before_any_change(tmp_path: Path) -> None:
    """(That each region resolves its own layer ARN: tests/aws/test_retained.py, two regions in one account.)"""
    with moto_account() as aws:
        with pytest.raises(provision.ProvisionError, match=r"not found in ap-east-1: PandasLayerParameter="
                                                          r"/aws/service/aws-sdk-pandas/"):
            deploy(aws, tmp_path, "ap-east-1")
        assert moto_clients("ap-east-1")["cloudformation"].list_stacks()["StackSummaries"] == []


def test_the_code_zip_imports_the_drift_handler_with_only_the_runtime_and_the_layer(tmp_path: Path) -> None:
    """The Lambda has its zip, the runtime's boto3 and the layer's pandas/numpy/pyarrow: nothing else."""
    body = provision.build_assets()["DeployFunctionCodeKey"].body
    (tmp_path / "code.zip").write_bytes(body)
    site = Path(sysconfig.get_paths()["purelib"])
    runtime_and_layer = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "python_dateutil", "urllib3",
                         "six", "pandas", "numpy", "pyarrow", "pytz", "tzdata")
    lib = tmp_path / "lib"
    lib.mkdir()
    for entry in site.iterdir():
        if re.split(r"[-.]", entry.name)[0] in runtime_and_layer:
            (lib / entry.name).symlink_to(entry)
    code = ("import sys; sys.path[:0] = sys.argv[1:3]; import aircast.monitoring as m; "
            "assert m.__file__.startswith(sys.argv[1]), m.__file__; print(m.lambda_handler.__name__)")
    # -S -I: no site-packages, no editable install of this checkout: only the zip and the listed packages
    out = subprocess.run([sys.executable, "-S", "-I", "-c", code, str(tmp_path / "code.zip"), str(lib)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "lambda_handler"


def test_the_drift_lambda_may_find_which_package_each_endpoint_config_serves() -> None:
    """Finding 3 on AWS: Data Capture records name no model; the drift check reads the endpoint config that
    captured them and its model (DescribeEndpointConfig, DescribeModel), on the names deploy_model_package uses."""
    import fnmatch

    from deployment.deploy import content_hash, resource_name
    from tests.aws.test_deploy_lambda import _resolve_sub

    template = _template()
    endpoint = template["Parameters"]["EndpointName"]["Default"]
    name = resource_name(endpoint, 7, content_hash("anything"))
    wanted = {"sagemaker:DescribeEndpointConfig": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{name}",
              "sagemaker:DescribeModel": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{name}"}
    role = template["Resources"]["DriftMonitorRole"]["Properties"]
    for action, arn in wanted.items():
        allowed = [_resolve_sub(r, template)
                   for policy in role["Policies"] for stmt in policy["PolicyDocument"]["Statement"]
                   if stmt["Effect"] == "Allow" and action in ([stmt["Action"]] if isinstance(stmt["Action"], str)
                                                               else stmt["Action"])
                   for r in (stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]])]
        assert any(fnmatch.fnmatchcase(arn, pattern) for pattern in allowed), (action, arn, allowed)
