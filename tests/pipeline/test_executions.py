"""Pipeline executions through any SageMaker client (pipelines/executions.py), here the local one: upsert,
parameters, waiting for the end (and saying how long and in which status a wait gave up), the summary."""

from __future__ import annotations

import json

import pytest

from aircast.clients import get_client
from aircast.local_wiring import sagemaker_backend
from infra.local.sagemaker.pipelines import run_execution
from pipelines.executions import execution_summary, pipeline_parameters, upsert_pipeline, wait_for_execution

STOP = {"Version": "2020-12-01",
        "Parameters": [{"Name": "Reason", "Type": "String", "DefaultValue": "nothing to do"},
                       {"Name": "Epochs", "Type": "Integer", "DefaultValue": 1}],
        "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": {"Get": "Parameters.Reason"}}}]}


def test_wait_summary_and_parameters(settings) -> None:
    client = get_client("sagemaker", settings)
    arn = upsert_pipeline(client, "p", json.dumps(STOP), settings.role_arn)
    assert upsert_pipeline(client, "p", json.dumps(STOP), settings.role_arn, "again") == arn  # an update
    params = pipeline_parameters({"Reason": "stopped here", "Epochs": 3})
    assert params == [{"Name": "Reason", "Value": "stopped here"}, {"Name": "Epochs", "Value": "3"}]
    execution = sagemaker_backend(settings).create_pipeline_execution_record("p", params)  # recorded, not run
    with pytest.raises(TimeoutError, match=r"still Executing after 0\.2 s"):
        wait_for_execution(client, execution, timeout_s=0.2, poll_s=0.05)
    run_execution(settings.local_config(), execution)
    ended = wait_for_execution(client, execution, timeout_s=5, poll_s=0.05)
    assert ended["PipelineExecutionStatus"] == "Failed"
    summary = execution_summary(client, execution)
    assert summary["status"] == "Failed" and "stopped here" in summary["failure_reason"]
    assert [(s["step"], s["status"]) for s in summary["steps"]] == [("Stop", "Failed")]
    assert summary["model_package_arn"] is None
