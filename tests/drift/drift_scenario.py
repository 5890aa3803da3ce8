"""A drift scenario's timeline and plot: ``python -m tests.drift.drift_scenario --data-dir DIR``.

Day 0-12: training data; model v1 (a per-hour profile fitted on it) serves forecasts from day 12.
Day 17: sensor-b's level shifts ×2.5. The monitor (run every 6 data hours, as the hourly drift check
would) declares drift; the event goes through the local bus; the drift rule starts a pipeline
execution (recorded; the real pipeline run is covered by ``test_retrain_e2e``). The retrained
model v2 (fitted on two days of the new regime, evaluated on the third) is registered, approved
through the bus (the real deploy handler runs), and serves from the day after. Prints the timeline as JSON and the plot's path.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from aircast.clients import get_client
from aircast.event_rules import DRIFT_RULE, ensure_default_rules
from aircast.monitoring import report_dir, run_monitor_for
from aircast.settings import load_settings
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
from tests.drift.test_drift_flow import _model_wql


def _register(settings: Any, name: str, wql: float, status: str) -> str:
    s3 = get_client("s3", settings)
    key = f"evaluation/{name}/evaluation.json"
    s3.put_object(Bucket=settings.artifacts_bucket, Key=key, Body=json.dumps(evaluation_json(wql)).encode())
    sm = get_client("sagemaker", settings)
    return sm.create_model_package(
        ModelPackageGroupName=settings.model_package_group, ModelApprovalStatus=status,
        InferenceSpecification={"Containers": [{"Image": "deepar", "ModelDataUrl": placeholder_model(settings, name)}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                      "S3Uri": f"s3://{settings.artifacts_bucket}/{key}"}}},
    )["ModelPackageArn"]


def run(data_dir: Path) -> dict[str, Any]:
    """Play the scenario in ``data_dir``; return the timeline."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    settings = load_settings(data_dir=data_dir)
    starts: list[dict[str, Any]] = []
    # the pipeline start is recorded here; test_retrain_e2e runs the real one
    LocalSageMakerClient.start_pipeline_execution = (  # type: ignore[method-assign]
        lambda self, **kw: starts.append(kw) or {"PipelineExecutionArn": "scenario"})
    ensure_default_rules(settings)
    get_client("sagemaker", settings).create_model_package_group(ModelPackageGroupName=settings.model_package_group)

    sc = Scenario(days=28, shift_thing="sensor-b", issue_every_h=3)
    full = hourly_frame(sc)
    train_until = T0 + pd.Timedelta(days=sc.train_days)
    v1 = ProfileModel(full, train_until)
    quiet = hourly_frame(Scenario(days=28, seed=sc.seed))
    v1_arn = _register(settings, "v1", _model_wql(settings, quiet, v1, train_until,
                                                  train_until + pd.Timedelta(days=2)), "PendingManualApproval")
    v1_config = serving_config(settings, v1_arn, f"{settings.endpoint_name}-v1-scenario")
    timeline: dict[str, Any] = {"shift_began": sc.shift_hour.isoformat(), "model_v1": v1_arn}

    # time moves forward six data hours at a time: the lake grows, v1 serves, the monitor checks
    now = train_until
    drift_series: list[dict[str, Any]] = []
    while now < T0 + pd.Timedelta(days=24) and "drift_declared" not in timeline:
        now += pd.Timedelta(hours=6)
        write_lake(settings, full[full["hour"] < now])
        report = run_monitor_for(settings, emit=True, plot=False)
        if report["event_sent"]:
            timeline["drift_declared"] = report["decision"]["declared_at"]
            timeline["drift_checked_at_data_hour"] = str(now)
            timeline["drift_reason"] = report["decision"]["reason"]
            drift_series = [s for s in report["decision"]["series"] if s["drifted"]]
        write_capture(settings, full, v1, v1_config, now - pd.Timedelta(hours=6), now - pd.Timedelta(hours=3), 3)
    history = LocalEventsClient(settings).history(rule=DRIFT_RULE)
    timeline["retrain_started"] = bool(starts) and history[0]["invocations"][0]["status"] == "succeeded"
    timeline["retrain_parameters"] = starts[0]["PipelineParameters"] if starts else None

    # the retrained model: fitted on two full days of the new regime (from where the drift event says the
    # degradation began), evaluated on the third, serving from the day after
    fresh_from = pd.Timestamp(min(s["degraded_since"] for s in drift_series)).ceil("D")
    serve_from = fresh_from + pd.Timedelta(days=3)
    v2 = ProfileModel(full[full["hour"] >= fresh_from], fresh_from + pd.Timedelta(days=2))
    v2_wql = _model_wql(settings.replace(data_dir=data_dir / "eval-v2"), full, v2, fresh_from + pd.Timedelta(days=2),
                        serve_from - pd.Timedelta(hours=24))
    v2_arn = _register(settings, "v2", v2_wql, "PendingManualApproval")
    get_client("sagemaker", settings).update_model_package(ModelPackageArn=v2_arn, ModelApprovalStatus="Approved")
    deploys = [h for h in LocalEventsClient(settings).history(rule="aircast-approval-deploy")]
    timeline["model_v2"] = v2_arn
    timeline["v2_deploy_outcome"] = deploys[0]["invocations"][0]["result"] if deploys else None
    timeline["v2_serves_from"] = serve_from.isoformat()
    write_capture(settings, full, v1, v1_config, now, serve_from - pd.Timedelta(hours=3), 3)
    write_lake(settings, full)
    write_capture(settings, full, v2, serving_config(settings, v2_arn, f"{settings.endpoint_name}-v2-scenario"),
                  serve_from, T0 + pd.Timedelta(days=27), 3)
    final = run_monitor_for(settings, emit=True, plot=True)
    timeline["after_retrain"] = final["decision"]["reason"]
    timeline["after_retrain_drift"] = final["decision"]["drift"]
    timeline["plot"] = str(report_dir(settings) / "error_timeline.png")
    return timeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/tmp/aircast-drift-scenario")
    args = parser.parse_args(argv)
    print(json.dumps(run(Path(args.data_dir)), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
