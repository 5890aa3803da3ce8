"""A processing step runs its script under its image's contract (infra/local/runtimes): a module
the image lacks fails the step with the container's ModuleNotFoundError, code too new for the
image's Python fails it before it starts, and an image nobody described is refused."""

from __future__ import annotations

import textwrap

import pytest

from aircast.clients import get_client
from infra.local.sagemaker.executor import PipelineExecutor

AUTOGLUON = "763104351884.dkr.ecr.eu-west-1.amazonaws.com/autogluon-training:1.4.0-cpu-py311"
SKLEARN_1_2 = "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"

#: the job package, mounted on PYTHONPATH as the pipeline mounts processing/ and evaluation/
HELPER = textwrap.dedent("""
    def pairs(a, b):
        return list(zip(a, b, strict=True))      # Python 3.10+
""")
SCRIPT = textwrap.dedent("""
    import pathlib, sys
    from jobpkg.helper import pairs
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    (out / "started.txt").write_text("the script ran")
    if len(sys.argv) > 2:
        exec(f"import {sys.argv[2]}")  # a plain import statement of the job's own code
    (out / "done.txt").write_text(str(pairs([1], [2])))
""")


def _definition(image: str, *arguments: str) -> dict:
    def s3_in(name: str, uri: str, local: str) -> dict:
        return {"InputName": name, "S3Input": {"S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix",
                                               "S3InputMode": "File"}}

    return {"Version": "2020-12-01", "Parameters": [], "Steps": [{
        "Name": "Job", "Type": "Processing", "Arguments": {
            "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                                      "VolumeSizeInGB": 30}},
            "AppSpecification": {"ImageUri": image,
                                 "ContainerArguments": ["/opt/ml/processing/output/report", *arguments],
                                 "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/job.py"]},
            "RoleArn": "arn:aws:iam::000000000000:role/r",
            "ProcessingInputs": [s3_in("code", "s3://aircast-artifacts/code/job.py", "/opt/ml/processing/input/code"),
                                 s3_in("lib", "s3://aircast-artifacts/lib", "/opt/ml/processing/input/lib")],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "report", "S3Output": {
                "S3Uri": "s3://aircast-artifacts/runs/report", "LocalPath": "/opt/ml/processing/output/report",
                "S3UploadMode": "EndOfJob"}}]},
            "Environment": {"PYTHONPATH": "/opt/ml/processing/input/lib"},
        }}]}


@pytest.fixture
def run(settings):
    s3 = get_client("s3", settings)
    s3.put_object(Bucket="aircast-artifacts", Key="code/job.py", Body=SCRIPT)
    s3.put_object(Bucket="aircast-artifacts", Key="lib/jobpkg/__init__.py", Body="")
    s3.put_object(Bucket="aircast-artifacts", Key="lib/jobpkg/helper.py", Body=HELPER)

    def go(image: str, *arguments: str):
        ex = PipelineExecutor(_definition(image, *arguments), {}, config=settings.local_config(), pipeline_name="p",
                              execution_arn="arn:aws:sagemaker:us-east-1:000000000000:pipeline/p/execution/c1")
        result = ex.run()
        return result, settings.s3_root / "aircast-artifacts" / "runs" / "report", ex.work_dir
    return go


def test_the_job_runs_in_an_image_that_has_what_it_imports(run) -> None:
    result, out, _ = run(AUTOGLUON, "statsforecast")
    assert result.status == "Succeeded", result.failure_reason
    assert (out / "done.txt").read_text() == "[(1, 2)]"


def test_a_module_the_image_lacks_fails_the_step_as_in_the_container(run) -> None:
    result, out, work_dir = run(AUTOGLUON, "duckdb")  # installed here, not in the image
    assert result.status == "Failed"
    assert result.failure_reason.startswith("Step Job failed: AlgorithmError: script exited with code 1")
    assert result.failure_reason.rstrip().endswith("ModuleNotFoundError: No module named 'duckdb' "
                                                   f"(log: {work_dir / 'Job' / 'job.log'})")
    assert not out.exists()  # EndOfJob outputs of a failed job are not uploaded


def test_project_code_is_not_importable_in_the_container(run) -> None:
    result, _, _ = run(AUTOGLUON, "aircast")  # installed in this virtualenv, never in the image
    assert "ModuleNotFoundError: No module named 'aircast'" in result.failure_reason


def test_code_newer_than_the_image_python_fails_before_it_starts(run, settings) -> None:
    result, _, work_dir = run(SKLEARN_1_2)
    assert result.status == "Failed"
    assert result.failure_reason == (
        "Step Job failed: AlgorithmError: the job's code needs a newer Python than image "
        "sagemaker-scikit-learn:1.2-1-cpu-py3's 3.9: "
        "/opt/ml/processing/input/lib/jobpkg/helper.py:3: 'zip(strict)' requires Python 3.10")
    assert not (work_dir / "Job" / "opt" / "ml" / "processing" / "output" / "report" / "started.txt").exists()


def test_an_image_without_a_manifest_is_refused(run) -> None:
    result, _, _ = run("763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311")
    assert result.failure_reason.startswith("Step Job failed: ClientError: no manifest in ")
    assert "describes image pytorch-training:2.5.1-cpu-py311" in result.failure_reason
    deepar = "224300973850.dkr.ecr.eu-west-1.amazonaws.com/forecasting-deepar:1"
    result, _, _ = run(deepar)
    assert "is a built-in algorithm; a processing job needs an image that runs your script" in result.failure_reason
