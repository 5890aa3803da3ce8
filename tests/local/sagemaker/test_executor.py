"""Executor mechanics on small hand-written definitions (the JSON shape SageMaker executes):
parameters, Get/Join/JsonGet, execution variables, property files, condition branches,
/opt/ml path rewriting, failure reasons, and the detached start_pipeline_execution."""

from __future__ import annotations

import json
import textwrap
import time

import pytest
from botocore.exceptions import ClientError

from aircast.clients import get_client
from infra.local.sagemaker.executor import PipelineExecutor
from infra.local.sagemaker.expressions import json_get, parse_property_path
from infra.local.sagemaker.pipeline_definition import PipelineDefinitionError, step_graph
from tests.helpers import wait_until

#: the pipeline's processing image (a job runs only in an image local mode has a manifest for)
IMAGE = "763104351884.dkr.ecr.eu-west-1.amazonaws.com/autogluon-training:1.4.0-cpu-py311"

# A job script of our own (not project job code): writes a score report, echoes what it saw.
SCRIPT = textwrap.dedent("""
    import argparse, json, os, pathlib, sys
    p = argparse.ArgumentParser()
    p.add_argument("--score", type=float)
    p.add_argument("--input-dir", default="/opt/ml/processing/input/data")
    p.add_argument("--output-dir", default="/opt/ml/processing/output/report")
    p.add_argument("--fail", default="no")
    a = p.parse_args()
    if a.fail == "yes":
        print("something broke: bad input row 7", file=sys.stderr)
        sys.exit(3)
    out = pathlib.Path(a.output_dir); out.mkdir(parents=True, exist_ok=True)
    seen = sorted(x.name for x in pathlib.Path(a.input_dir).iterdir())
    (out / "report.json").write_text(json.dumps({"score": {"value": a.score}, "seen": seen,
                                                 "env": os.environ["REPORT_DIR"], "cwd": os.getcwd()}))
""")


def _processing(name: str, *, arguments: list, inputs: list, output_uri) -> dict:
    return {
        "Name": name, "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                                      "VolumeSizeInGB": 30}},
            "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["python3",
                                                                            "/opt/ml/processing/input/code/job.py"],
                                 # the contract: every path is passed explicitly (defaults are container paths)
                                 "ContainerArguments": [*arguments, "--input-dir", "/opt/ml/processing/input/data",
                                                        "--output-dir", "/opt/ml/processing/output/report"]},
            "RoleArn": "arn:aws:iam::000000000000:role/r",
            "ProcessingInputs": [{"InputName": "code", "S3Input": {"S3Uri": "s3://aircast-artifacts/code/job.py",
                                                                   "LocalPath": "/opt/ml/processing/input/code",
                                                                   "S3DataType": "S3Prefix", "S3InputMode": "File"}},
                                 *inputs],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "report", "S3Output": {
                "S3Uri": output_uri, "LocalPath": "/opt/ml/processing/output/report", "S3UploadMode": "EndOfJob"}}]},
            "Environment": {"REPORT_DIR": "/opt/ml/processing/output/report"},
        },
        "PropertyFiles": [{"PropertyFileName": "Report", "OutputName": "report", "FilePath": "report.json"}],
    }


def _data_input(uri) -> dict:
    return {"InputName": "data", "S3Input": {"S3Uri": uri, "LocalPath": "/opt/ml/processing/input/data",
                                             "S3DataType": "S3Prefix", "S3InputMode": "File"}}


def _definition() -> dict:
    report = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Score.PropertyFiles.Report"}, "Path": "score.value"}}
    run_uri = {"Std:Join": {"On": "/", "Values": ["s3://aircast-artifacts/runs", {"Get": "Execution.PipelineExecutionId"}, "score"]}}
    return {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "Score", "Type": "Float", "DefaultValue": 0.3},
                       {"Name": "Threshold", "Type": "Float", "DefaultValue": 0.5},
                       {"Name": "Fail", "Type": "String", "DefaultValue": "no"}],
        "Steps": [
            _processing("Score", arguments=["--score", {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.Score"}]}},
                                            "--fail", {"Get": "Parameters.Fail"}],
                        inputs=[_data_input("s3://aircast-artifacts/data/")], output_uri=run_uri),
            {"Name": "Gate", "Type": "Condition", "Arguments": {
                "Conditions": [{"Type": "LessThanOrEqualTo", "LeftValue": report,
                                "RightValue": {"Get": "Parameters.Threshold"}}],
                "IfSteps": [_processing("Publish", arguments=["--score", "1"], inputs=[_data_input(
                    {"Get": "Steps.Score.ProcessingOutputConfig.Outputs['report'].S3Output.S3Uri"})],
                    output_uri={"Std:Join": {"On": "/", "Values": ["s3://aircast-artifacts/runs",
                                                                   {"Get": "Execution.PipelineExecutionId"},
                                                                   "publish"]}})],
                "ElseSteps": [{"Name": "TooHigh", "Type": "Fail", "Arguments": {"ErrorMessage": {"Std:Join": {
                    "On": "", "Values": ["score ", report, " above ", {"Get": "Parameters.Threshold"}]}}}}],
            }},
        ],
    }


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def step_started(self, step, step_type):  # noqa: ANN001
        self.events.append(("start", step, step_type))

    def step_finished(self, step, status, metadata, failure_reason):  # noqa: ANN001
        self.events.append(("end", step, status, failure_reason))


@pytest.fixture
def store(settings):
    s3 = get_client("s3", settings)
    s3.put_object(Bucket="aircast-artifacts", Key="code/job.py", Body=SCRIPT)
    s3.put_object(Bucket="aircast-artifacts", Key="data/a.csv", Body="1\n")
    s3.put_object(Bucket="aircast-artifacts", Key="data/sub/b.csv", Body="2\n")
    return s3


def _run(settings, params: dict, arn_id: str = "abc123"):
    recorder = _Recorder()
    lines: list[str] = []
    ex = PipelineExecutor(_definition(), params, config=settings.local_config(), pipeline_name="p",
                          execution_arn=f"arn:aws:sagemaker:us-east-1:000000000000:pipeline/p/execution/{arn_id}",
                          recorder=recorder, progress=lines.append)
    return ex.run(), recorder, lines


def test_passing_gate_runs_if_branch(settings, store) -> None:
    result, recorder, lines = _run(settings, {})
    assert result.status == "Succeeded", result.failure_reason
    assert list(result.steps) == ["Score", "Gate", "Publish"]  # the else branch is not executed
    assert result.steps["Gate"]["metadata"] == {"Condition": {"Outcome": "True"}}
    report = json.loads((settings.s3_root / "aircast-artifacts/runs/abc123/score/report.json").read_text())
    assert report["score"] == {"value": 0.3}
    assert report["seen"] == ["a.csv", "sub"]  # the S3 prefix, keys below it
    assert report["env"].endswith("Score/opt/ml/processing/output/report")  # /opt/ml rewritten in env too
    # Publish read Score's output through a Get on its properties
    publish = json.loads((settings.s3_root / "aircast-artifacts/runs/abc123/publish/report.json").read_text())
    assert publish["seen"] == ["report.json"]
    assert [e[1] for e in recorder.events if e[0] == "end"] == ["Score", "Gate", "Publish"]
    assert any(line.startswith("[Score] Succeeded") for line in lines)


def test_failing_gate_runs_fail_step_with_message(settings, store) -> None:
    result, _, _ = _run(settings, {"Threshold": "0.1"}, "def456")
    assert result.status == "Failed" and result.failed_step == "TooHigh"
    assert result.failure_reason == "Step TooHigh failed: score 0.3 above 0.1"
    assert "Publish" not in result.steps


def test_script_failure_names_step_and_reason(settings, store) -> None:
    result, recorder, _ = _run(settings, {"Fail": "yes"}, "ghi789")
    assert result.status == "Failed" and result.failed_step == "Score"
    assert "exited with code 3" in result.failure_reason and "bad input row 7" in result.failure_reason
    assert ("end", "Score", "Failed", result.steps["Score"]["failure_reason"]) in recorder.events
    assert list(result.steps) == ["Score"]


def test_bad_parameters(settings, store) -> None:
    with pytest.raises(PipelineDefinitionError, match="unknown pipeline parameter.*Scor.*accepted: Fail, Score"):
        _run(settings, {"Scor": "1"})
    with pytest.raises(PipelineDefinitionError, match="Score must be a Float"):
        _run(settings, {"Score": "high"})


def test_expression_helpers() -> None:
    assert parse_property_path("ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri") == [
        "ProcessingOutputConfig", "Outputs", "train", "S3Output", "S3Uri"]
    assert parse_property_path("FinalMetricDataList[0].Value") == ["FinalMetricDataList", 0, "Value"]
    doc = {"a": {"b": [{"c": 1}, {"c": 2}]}, "m": {"x[0.1]": {"value": 5}}}
    assert json_get(doc, "a.b[1].c", "doc") == 2
    assert json_get(doc, "m['x[0.1]'].value", "doc") == 5
    with pytest.raises(PipelineDefinitionError, match="'zz' not found"):
        json_get(doc, "a.zz", "doc")


def test_graph_errors() -> None:
    cyclic = {"Steps": [{"Name": "A", "Type": "Fail", "DependsOn": ["B"]},
                        {"Name": "B", "Type": "Fail", "DependsOn": ["A"]}]}
    with pytest.raises(PipelineDefinitionError, match="cycle"):
        step_graph(cyclic)
    with pytest.raises(PipelineDefinitionError, match="unknown step"):
        step_graph({"Steps": [{"Name": "A", "Type": "Fail", "DependsOn": ["Nope"]}]})


def _condition(name: str, holds: bool, *, if_steps: list | None = None, **extra: object) -> dict:
    return {"Name": name, "Type": "Condition", **extra, "Arguments": {
        "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1 if holds else 2}],
        "IfSteps": if_steps or [], "ElseSteps": []}}


def _execute(settings, steps: list[dict]):  # noqa: ANN202
    ex = PipelineExecutor({"Parameters": [], "Steps": steps}, {}, config=settings.local_config(), pipeline_name="p",
                          execution_arn="arn:aws:sagemaker:us-east-1:000000000000:pipeline/p/execution/order")
    return ex.run()


def test_steps_run_in_dependency_order_definition_order_breaking_ties(settings) -> None:
    result = _execute(settings, [_condition("Late", True, DependsOn=["Early"]), _condition("Early", True),
                                 _condition("Other", True)])
    assert result.status == "Succeeded" and list(result.steps) == ["Early", "Late", "Other"]


def test_the_branch_not_taken_and_what_depends_on_it_never_run(settings) -> None:
    skipped = {"Name": "Skipped", "Type": "Fail", "Arguments": {"ErrorMessage": "not this branch"}}
    after = {"Name": "After", "Type": "Fail", "DependsOn": ["Skipped"], "Arguments": {"ErrorMessage": "nor this"}}
    result = _execute(settings, [_condition("Gate", False, if_steps=[skipped]), after])
    assert result.status == "Succeeded" and list(result.steps) == ["Gate"]


def test_a_step_type_local_mode_does_not_run_fails_the_step(settings) -> None:
    result = _execute(settings, [{"Name": "Cluster", "Type": "EMR", "Arguments": {}}])
    assert result.status == "Failed" and result.failed_step == "Cluster"
    assert result.failure_reason == "Step Cluster failed: local mode cannot run steps of type EMR"


@pytest.mark.slow  # imports torch/GluonTS (seconds)
def test_unknown_hyperparameter_fails_training_like_builtin(settings, store) -> None:
    store.put_object(Bucket="aircast-artifacts", Key="train/train.json", Body='{"start": "2024-01-01 00:00:00", "target": [1, 2]}\n')
    definition = {"Parameters": [], "Steps": [{"Name": "Train", "Type": "Training", "Arguments": {
        "AlgorithmSpecification": {"TrainingImage": "522234722520.dkr.ecr.us-east-1.amazonaws.com/forecasting-deepar:1",
                                   "TrainingInputMode": "File"},
        "HyperParameters": {"time_freq": "H", "epochs": "1", "context_length": "2", "prediction_length": "1",
                            "num_cellz": "4"},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": "s3://aircast-artifacts/train"}}}],
        "OutputDataConfig": {"S3OutputPath": "s3://aircast-artifacts/models"}}}]}
    ex = PipelineExecutor(definition, {}, config=settings.local_config(), pipeline_name="p",
                          execution_arn="arn:aws:sagemaker:us-east-1:000000000000:pipeline/p/execution/t1")
    result = ex.run()
    assert result.status == "Failed" and result.failed_step == "Train"
    assert result.failure_reason.startswith("Step Train failed: AlgorithmError: unknown hyperparameter 'num_cellz'")


def test_detached_execution_through_the_client(settings, store) -> None:
    from infra.local.sagemaker.client import LocalSageMakerClient
    from pipelines.executions import upsert_pipeline, wait_for_execution

    client = LocalSageMakerClient(settings.local_config())
    upsert_pipeline(client, "p", json.dumps(_definition()), "arn:aws:iam::000000000000:role/r")
    upsert_pipeline(client, "p", json.dumps(_definition()), "arn:aws:iam::000000000000:role/r")  # update path
    with pytest.raises(ClientError, match="unknown pipeline parameter"):
        client.start_pipeline_execution(PipelineName="p", PipelineParameters=[{"Name": "Nope", "Value": "1"}])
    started = time.time()
    arn = client.start_pipeline_execution(PipelineName="p", PipelineParameters=[
        {"Name": "Threshold", "Value": "0.2"}])["PipelineExecutionArn"]
    assert time.time() - started < 5  # returns at once; the run is detached
    assert client.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] in (
        "Executing", "Failed")
    desc = wait_for_execution(client, arn, timeout_s=120, poll_s=0.5)
    assert desc["PipelineExecutionStatus"] == "Failed"
    assert desc["FailureReason"] == "Step TooHigh failed: score 0.3 above 0.2"
    steps = client.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert [s["StepName"] for s in steps] == ["TooHigh", "Gate", "Score"]  # newest first, as the API
    assert steps[1]["Metadata"] == {"Condition": {"Outcome": "False"}}
    assert steps[2]["Metadata"]["ProcessingJob"]["Arn"].startswith("arn:aws:sagemaker:us-east-1:000000000000:")
    params = client.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert {"Name": "Threshold", "Value": "0.2"} in params
    summaries = client.list_pipeline_executions(PipelineName="p")["PipelineExecutionSummaries"]
    assert [s["PipelineExecutionArn"] for s in summaries] == [arn]


def test_stop_execution_kills_the_detached_run(settings, store) -> None:
    from infra.local.sagemaker.client import LocalSageMakerClient
    from pipelines.executions import upsert_pipeline

    store.put_object(Bucket="aircast-artifacts", Key="code/job.py", Body="import time\ntime.sleep(120)\n")
    client = LocalSageMakerClient(settings.local_config())
    upsert_pipeline(client, "p", json.dumps(_definition()), "arn:aws:iam::000000000000:role/r")
    arn = client.start_pipeline_execution(PipelineName="p")["PipelineExecutionArn"]
    wait_until(lambda: client.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"], 60,
               interval_s=0.3, what="the detached run's first step")
    client.stop_pipeline_execution(PipelineExecutionArn=arn)
    assert client.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Stopped"
    with pytest.raises(ClientError, match="already Stopped"):
        client.stop_pipeline_execution(PipelineExecutionArn=arn)
    from infra.local.sagemaker.pipelines import connect

    with connect(settings.local_config()) as db:
        pid = db.execute("SELECT pid FROM executions WHERE arn=?", (arn,)).fetchone()["pid"]
    wait_until(lambda: not _running(pid), 20, interval_s=0.2, what=f"runner {pid} to end after the stop")


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_job_output_reaches_cloudwatch_logs_and_the_execution_keeps_its_definition(settings, store) -> None:
    """What a processing job prints is in its log stream (group /aws/sagemaker/ProcessingJobs, stream
    <job name>/...), line by line; DescribePipelineDefinitionForExecution returns what that execution ran."""
    from infra.local.logs import LocalLogsClient
    from infra.local.sagemaker.client import LocalSageMakerClient
    from infra.local.sagemaker.pipelines import run_execution
    from pipelines.executions import upsert_pipeline

    client = LocalSageMakerClient(settings.local_config())
    upsert_pipeline(client, "p", json.dumps(_definition()), "arn:aws:iam::000000000000:role/r")
    arn = client.create_pipeline_execution_record("p", [{"Name": "Fail", "Value": "yes"}])
    upsert_pipeline(client, "p", json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": [
        {"Name": "Other", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}]}), "arn:aws:iam::000000000000:role/r")
    assert run_execution(settings.local_config(), arn)["PipelineExecutionStatus"] == "Failed"
    ran = json.loads(client.describe_pipeline_definition_for_execution(PipelineExecutionArn=arn)["PipelineDefinition"])
    assert [s["Name"] for s in ran["Steps"]] == ["Score", "Gate"]  # not the pipeline's newer definition
    step = client.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"][0]
    job = step["Metadata"]["ProcessingJob"]["Arn"]  # a failed step still names its job
    logs = LocalLogsClient(settings.data_dir)
    events = logs.filter_log_events(logGroupName="/aws/sagemaker/ProcessingJobs")["events"]
    messages = [e["message"] for e in events]
    assert "something broke: bad input row 7" in messages
    assert any(m.startswith("Failed in") and "exited with code 3" in m for m in messages)
    stream = events[0]["logStreamName"]
    assert stream.startswith(f"pipelines-{arn.rsplit('/', 1)[-1]}-Score-") and "/algo-1-" in stream
    assert job.rsplit("/", 1)[-1] == stream.split("/")[0].lower()
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        logs.filter_log_events(logGroupName="/aws/sagemaker/TrainingJobs")
    with pytest.raises(ClientError, match="mutually exclusive"):
        logs.filter_log_events(logGroupName="/aws/sagemaker/ProcessingJobs", logStreamNames=[stream],
                               logStreamNamePrefix="p")
    assert logs.filter_log_events(logGroupName="/aws/sagemaker/ProcessingJobs", logStreamNamePrefix="nope")["events"] == []
    page = logs.filter_log_events(logGroupName="/aws/sagemaker/ProcessingJobs", limit=1)
    assert len(page["events"]) == 1 and page["nextToken"]
