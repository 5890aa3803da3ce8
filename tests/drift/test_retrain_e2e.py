"""The whole loop with the real local pipeline: a sensor's level shifts → the monitor declares drift →
the drift event on the bus → the retrain rule starts the real pipeline execution (GluonTS DeepAR,
tiny settings) → it passes the gate and registers a new model version, pending approval."""

from __future__ import annotations

import json

import pytest

from aircast.clients import get_client
from aircast.event_rules import DRIFT_RULE, ensure_default_rules
from aircast.monitoring import run_monitor_for
from aircast.settings import Settings
from infra.local.eventbridge.client import LocalEventsClient
from tests.drift.replay import Scenario
from tests.drift.test_drift_flow import _replay

# tiny training so the test takes a minute; a generous gate so a 1-epoch model registers
TINY = {"Epochs": 1, "NumCells": 8, "NumLayers": 1, "ContextLength": 24, "NumEvalWindows": 2, "MiniBatchSize": 8,
        "NumValidationWindows": 2, "MaxTuningJobs": 1, "MaxParallelTuningJobs": 1,
        "MaxRelativeWQL": 1000.0, "MaxMeanWQL": 100.0}


@pytest.mark.slow
def test_drift_event_starts_the_real_pipeline_and_a_new_version_registers(settings: Settings) -> None:
    from pipelines import definition as definition_module
    from pipelines.code import upload_code
    from pipelines.executions import upsert_pipeline, wait_for_execution

    settings = settings.replace(retrain_pipeline_parameters=json.dumps(TINY))
    events = LocalEventsClient(settings)
    ensure_default_rules(settings)
    definition, prefix = definition_module.build_definition(settings, pipeline_name=settings.pipeline_name)
    upload_code(get_client("s3", settings), settings.artifacts_bucket, prefix)
    sm = get_client("sagemaker", settings)
    upsert_pipeline(sm, settings.pipeline_name, definition, settings.role_arn)

    first_arn, _ = _replay(settings, Scenario(shift_thing="sensor-b"))
    report = run_monitor_for(settings, emit=True, plot=False)
    assert report["decision"]["drift"] and report["event_sent"]

    (entry,) = events.history(rule=DRIFT_RULE)
    (inv,) = entry["invocations"]
    assert inv["status"] == "succeeded", inv["error"]
    execution_arn = inv["result"]["PipelineExecutionArn"]
    params = {p["Name"]: p["Value"] for p in
              sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution_arn)["PipelineParameters"]}
    assert params["ModelApprovalStatus"] == "PendingManualApproval" and params["Epochs"] == "1"
    try:
        desc = wait_for_execution(sm, execution_arn, timeout_s=480, poll_s=1.0)
    finally:
        current = sm.describe_pipeline_execution(PipelineExecutionArn=execution_arn)["PipelineExecutionStatus"]
        if current == "Executing":  # never leave a detached trainer behind
            sm.stop_pipeline_execution(PipelineExecutionArn=execution_arn)
    assert desc["PipelineExecutionStatus"] == "Succeeded", desc.get("FailureReason")

    packages = sm.list_model_packages(ModelPackageGroupName=settings.model_package_group, SortBy="CreationTime",
                                      SortOrder="Ascending")["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in packages][0] == first_arn
    assert len(packages) == 2
    new = packages[1]
    assert new["ModelPackageArn"].endswith(f"/{settings.model_package_group}/2")
    # pending approval: nothing was deployed by the retrain itself
    assert new["ModelApprovalStatus"] == "PendingManualApproval"
