"""The AWS path with moto: the same rule-installing code against boto3's events client, and the
monitor job's container entry point sending its drift event with a boto3 events client."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from aircast.event_rules import (
    APPROVAL_RULE,
    DRIFT_CHECK_RULE,
    DRIFT_RULE,
    SCHEDULED_RETRAIN_RULE,
    approval_pattern,
    ensure_default_rules,
)
from aircast.settings import Settings
from evaluation import drift_monitor
from tests.drift.replay import T0, ProfileModel, Scenario, evaluation_json, hourly_frame, write_capture, write_lake


@pytest.fixture
def aws_settings(settings: Settings) -> Settings:
    return settings.replace(backend="aws")


def test_default_rules_install_on_boto3_events(aws_settings: Settings) -> None:
    with mock_aws():
        events = boto3.client("events", region_name=aws_settings.region)
        names = ensure_default_rules(aws_settings, events)
        assert ensure_default_rules(aws_settings, events) == names  # idempotent on AWS too
        rules = {r["Name"]: r for r in events.list_rules()["Rules"]}
        assert set(rules) == {APPROVAL_RULE, DRIFT_RULE, SCHEDULED_RETRAIN_RULE, DRIFT_CHECK_RULE}
        assert json.loads(rules[APPROVAL_RULE]["EventPattern"]) == approval_pattern(aws_settings)
        assert rules[SCHEDULED_RETRAIN_RULE]["ScheduleExpression"] == aws_settings.retrain_schedule
        (target,) = events.list_targets_by_rule(Rule=DRIFT_RULE)["Targets"]
        assert target["SageMakerPipelineParameters"]["PipelineParameterList"][0]["Name"] == "ModelApprovalStatus"


@pytest.mark.slow
def test_monitor_job_entry_point_sends_the_event_with_a_boto3_client(settings: Settings, tmp_path: Path) -> None:
    """The processing-job main(): container-style folders in, drift event out through boto3 (moto)."""
    arn = "arn:aws:sagemaker:us-east-1:000000000000:model-package/aircast-deepar/1"
    sc = Scenario(shift_thing="sensor-b")
    frame = hourly_frame(sc)
    write_lake(settings, frame)
    train_until = T0 + pd.Timedelta(days=sc.train_days)
    # a record names no model; the monitor job is told which package each endpoint config serves
    write_capture(settings, frame, ProfileModel(frame, train_until), "aircast-forecast-v1-abc", train_until,
                  T0 + pd.Timedelta(days=sc.days - 1), sc.issue_every_h)
    evaluation = tmp_path / "evaluation" / "evaluation.json"
    evaluation.parent.mkdir()
    evaluation.write_text(json.dumps(evaluation_json(0.028)))
    out = tmp_path / "output"
    args = ["--datacapture", str(settings.s3_root / "aircast-artifacts" / "datacapture"),
            "--hourly", str(settings.s3_root / "aircast-lake" / "curated" / "hourly"),
            "--evaluation", f"{arn}={evaluation.parent}", "--endpoint-config", f"aircast-forecast-v1-abc={arn}",
            "--output", str(out),
            "--state", str(tmp_path / "state.json")]
    with mock_aws():
        events = boto3.client("events", region_name="us-east-1")
        assert drift_monitor.main(args, events_client=events) == 0
    report = json.loads((out / "drift_report.json").read_text())
    assert report["decision"]["drift"] and report["event_sent"]["event_id"]
    assert (out / "error_timeline.png").is_file() and (out / "scores.csv").is_file()
    # the state remembers the announcement: a second run (no client needed) sends nothing
    assert drift_monitor.main([*args, "--no-emit", "--no-plot"]) == 0
    assert json.loads((out / "drift_report.json").read_text())["event_sent"] is None

    with pytest.raises(ValueError, match="ARN=PATH"):
        drift_monitor.main([*args[:4], "--evaluation", str(evaluation)])

