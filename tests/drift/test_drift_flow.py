"""Drift end to end on the local stack's pieces: a replay with a regime change → the monitor declares
drift within the window → the drift event goes through the bus → the retrain rule starts the pipeline.
A quiet replay triggers nothing. The CLI shows the verdict and plots the timeline."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from aircast.cli import main as cli
from aircast.clients import get_client
from aircast.event_rules import DRIFT_CHECK_RULE, DRIFT_RULE, ensure_default_rules
from aircast.monitoring import report_dir, run_monitor_for, state_path
from aircast.settings import Settings
from evaluation.drift import hourly_errors, hourly_matrix, identify_series, parse_capture_records, score_forecasts
from evaluation.drift_monitor import read_capture
from infra.local.eventbridge.client import LocalEventsClient
from infra.local.sagemaker.client import LocalSageMakerClient
from tests.drift.replay import (
    T0,
    ProfileModel,
    Scenario,
    evaluation_json,
    hourly_frame,
    placeholder_model,
    serving_config,
    write_capture,
    write_lake,
)

STARTS: list[dict[str, Any]] = []


def _register_model(settings: Settings, mean_wql: float) -> str:
    """A model package in the real local registry whose evaluation.json carries ``mean_wql``."""
    s3 = get_client("s3", settings)
    key = "evaluation/replay/evaluation.json"
    s3.put_object(Bucket=settings.artifacts_bucket, Key=key, Body=json.dumps(evaluation_json(mean_wql)).encode())
    sm = get_client("sagemaker", settings)
    sm.create_model_package_group(ModelPackageGroupName=settings.model_package_group)
    return sm.create_model_package(
        ModelPackageGroupName=settings.model_package_group, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "deepar", "ModelDataUrl": placeholder_model(settings, "replay")}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                      "S3Uri": f"s3://{settings.artifacts_bucket}/{key}"}}},
    )["ModelPackageArn"]


def _replay(settings: Settings, sc: Scenario) -> tuple[str, float]:
    """Lake + a model trained on its first weeks + that model's served forecasts in Data Capture."""
    frame = hourly_frame(sc)
    write_lake(settings, frame)
    train_until = T0 + pd.Timedelta(days=sc.train_days)
    model = ProfileModel(frame, train_until)
    # what Evaluate would have reported: the model's wQL on the two quiet days after training
    quiet = hourly_frame(Scenario(days=sc.days, train_days=sc.train_days, things=sc.things, seed=sc.seed))
    eval_wql = _model_wql(settings, quiet, model, train_until, train_until + pd.Timedelta(days=2))
    arn = _register_model(settings, eval_wql)
    config = serving_config(settings, arn, f"{settings.endpoint_name}-v1-replay")
    write_capture(settings, frame, model, config, train_until, T0 + pd.Timedelta(days=sc.days - 1), sc.issue_every_h)
    return arn, eval_wql


def _model_wql(settings: Settings, frame: pd.DataFrame, model: ProfileModel, start: pd.Timestamp,
               end: pd.Timestamp) -> float:
    scratch = settings.replace(data_dir=settings.data_dir / "eval-scratch", endpoint_name="eval")
    write_capture(scratch, frame, model, "eval", start, end, 3)
    forecasts, _ = parse_capture_records(read_capture(scratch.s3_root / "aircast-artifacts" / "datacapture" / "eval"))
    series = hourly_matrix(frame)
    names = identify_series(forecasts, series)
    hourly = hourly_errors(forecasts, names, series)
    score_forecasts(forecasts, names, series)  # the same scoring path the monitor uses
    return float(hourly["qloss"].sum() / hourly["abs_actual"].sum())


@pytest.fixture
def bus(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> LocalEventsClient:
    """Default rules on the local bus; the pipeline start is recorded (the real one trains: see the slow test)."""
    STARTS.clear()

    def start_pipeline_execution(self: Any, **kwargs: Any) -> dict[str, str]:
        STARTS.append(kwargs)
        return {"PipelineExecutionArn": f"arn:aws:sagemaker:us-east-1:0:pipeline/{kwargs['PipelineName']}/execution/x"}

    monkeypatch.setattr(LocalSageMakerClient, "start_pipeline_execution", start_pipeline_execution)
    # the approval rule must not deploy anything here: registering a pending package fires no deploy anyway
    events = LocalEventsClient(settings)
    ensure_default_rules(settings)
    return events


@pytest.mark.slow
def test_regime_change_is_detected_and_starts_retraining(settings: Settings, bus: LocalEventsClient,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    sc = Scenario(shift_thing="sensor-b")
    arn, eval_wql = _replay(settings, sc)
    report = run_monitor_for(settings, emit=True, plot=False)
    decision = report["decision"]
    assert decision["drift"], decision["reason"]
    assert decision["model_package_arn"] == arn
    drifted = [s for s in decision["series"] if s["drifted"]]
    assert [(s["thing_name"], s["pollutant"]) for s in drifted] == [("sensor-b", "pm2_5")]
    declared = pd.Timestamp(decision["declared_at"])
    assert sc.shift_hour < declared <= sc.shift_hour + pd.Timedelta(hours=settings.drift_window_hours)
    # the level shift also shows as input drift of that sensor, not of the quiet one
    by_thing = {d["thing_name"]: d for d in decision["input_drift"]}
    assert by_thing["sensor-b"]["drifted"] and not by_thing["sensor-a"]["drifted"]

    # the event went through the bus, matched the drift rule, and started the pipeline with the policy's status
    assert report["event_sent"] is not None
    (entry,) = bus.history(rule=DRIFT_RULE)
    assert entry["source"] == "aircast.monitoring" and entry["detail_type"] == "Forecast Drift Detected"
    assert entry["event"]["detail"]["ModelPackageArn"] == arn
    assert entry["event"]["detail"]["DriftedSeries"][0]["thing_name"] == "sensor-b"
    assert entry["invocations"][0]["status"] == "succeeded"
    assert len(STARTS) == 1 and STARTS[0]["PipelineName"] == settings.pipeline_name
    params = {p["Name"]: p["Value"] for p in STARTS[0]["PipelineParameters"]}
    assert params == {"ModelApprovalStatus": "PendingManualApproval", "EndpointName": settings.endpoint_name,
                      "InputDataUri": f"s3://{settings.lake_bucket}/curated/hourly/"}

    # the same drift is announced once
    again = run_monitor_for(settings, emit=True, plot=False)
    assert again["decision"]["drift"] and again["event_sent"] is None and len(STARTS) == 1
    assert json.loads(state_path(settings).read_text())["emitted"][0]["model_package_arn"] == arn

    # the CLI: status (no event), plot
    assert cli(["monitor", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["decision"]["drift"] and status["event_sent"] is None and len(STARTS) == 1
    assert status["drift_events"][0]["declared_at"] == decision["declared_at"]
    assert cli(["monitor", "status"]) == 0
    text = capsys.readouterr().out
    assert "DRIFT" in text and "sensor-b" in text
    png = settings.data_dir / "timeline.png"
    assert cli(["monitor", "plot", "--output", str(png)]) == 0
    assert capsys.readouterr().out.strip() == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert (report_dir(settings) / "scores.csv").is_file()


def test_quiet_replay_triggers_nothing(settings: Settings, bus: LocalEventsClient) -> None:
    _replay(settings, Scenario())
    report = run_monitor_for(settings, emit=True, plot=False)
    assert not report["decision"]["drift"], report["decision"]["reason"]
    assert report["scored_forecasts"] > 50
    assert all(s["ratio"] < settings.drift_error_ratio for s in report["decision"]["series"])
    assert report["event_sent"] is None and STARTS == []
    assert bus.history(rule=DRIFT_RULE) == []


def test_scheduled_drift_check_emits_through_the_bus(settings: Settings, bus: LocalEventsClient) -> None:
    # the drift check rule invokes the real aircast-drift-monitor function on the local Lambda
    _replay(settings, Scenario(shift_thing="sensor-a", shift_factor=0.3))  # a sensor that reads too low
    due = bus.next_fire_times()[DRIFT_CHECK_RULE]
    (fired,) = [f for f in bus.fire_due_schedules(now=due) if f["rule"] == DRIFT_CHECK_RULE]
    (inv,) = fired["invocations"]
    assert inv["status"] == "succeeded", inv["error"]
    assert inv["result"]["drift"] is True and inv["result"]["event_sent"]["event_id"]
    assert len(STARTS) == 1 and len(bus.history(rule=DRIFT_RULE)) == 1


def test_auto_approve_policy_reaches_the_pipeline(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    STARTS.clear()
    monkeypatch.setattr(LocalSageMakerClient, "start_pipeline_execution",
                        lambda self, **kw: STARTS.append(kw) or {"PipelineExecutionArn": "x"})
    auto = settings.replace(retrain_auto_approve=True, retrain_pipeline_parameters='{"Epochs": 2}')
    ensure_default_rules(auto)
    _replay(auto, Scenario(shift_thing="sensor-b"))
    assert run_monitor_for(auto, emit=True, plot=False)["event_sent"]
    params = {p["Name"]: p["Value"] for p in STARTS[0]["PipelineParameters"]}
    assert params["ModelApprovalStatus"] == "Approved" and params["Epochs"] == "2"
