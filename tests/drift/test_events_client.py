"""The local EventBridge client: boto3 shapes, validation errors, delivery to targets, history, schedules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from aircast.settings import Settings
from infra.local import awslambda
from infra.local.eventbridge.client import LocalEventsClient, lambda_arn, pipeline_arn

RECEIVED: list[dict[str, Any]] = []


def recording_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A Lambda handler for the bus mechanics tests: records what it got."""
    RECEIVED.append(event)
    return {"status": "recorded", "function": context.function_name}


def failing_handler(event: dict[str, Any], context: Any) -> None:
    raise RuntimeError("handler exploded on purpose")


@pytest.fixture
def events(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> LocalEventsClient:
    RECEIVED.clear()
    monkeypatch.setitem(awslambda.LOCAL_FUNCTIONS, "test-recorder", f"{__name__}:recording_handler")
    monkeypatch.setitem(awslambda.LOCAL_FUNCTIONS, "test-failer", f"{__name__}:failing_handler")
    return LocalEventsClient(settings)


def _entry(source: str = "aircast.test", detail_type: str = "Thing Happened", **detail: Any) -> dict[str, Any]:
    return {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail)}


def _code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return err.value.response["Error"]["Code"]


def test_put_rule_validates_pattern_and_schedule(events: LocalEventsClient) -> None:
    with pytest.raises(ClientError) as err:
        events.put_rule(Name="bad", EventPattern='{"source": "aircast.test"}')
    assert _code(err) == "InvalidEventPatternException"
    assert "must be in an array" in str(err.value)
    with pytest.raises(ClientError) as err:
        events.put_rule(Name="bad", ScheduleExpression="cron(0 12 * * * *)")
    assert _code(err) == "ValidationException" and "must be '?'" in str(err.value)
    with pytest.raises(ClientError, match="EventPattern or ScheduleExpression must be specified"):
        events.put_rule(Name="bad")
    with pytest.raises(ClientError, match="Rule name"):
        events.put_rule(Name="bad name!", ScheduleExpression="rate(1 day)")
    with pytest.raises(ClientError, match="Event bus other does not exist"):
        events.put_rule(Name="x", ScheduleExpression="rate(1 day)", EventBusName="other")
    assert events.list_rules()["Rules"] == []


def test_rules_and_targets_round_trip_in_boto3_shapes(events: LocalEventsClient, settings: Settings) -> None:
    arn = events.put_rule(Name="r1", EventPattern=json.dumps({"source": ["aircast.test"]}),
                          Description="first")["RuleArn"]
    assert arn == f"arn:aws:events:{settings.region}:{settings.account_id}:rule/r1"
    events.put_rule(Name="r2", ScheduleExpression="rate(5 minutes)", State="DISABLED")
    rules = events.list_rules()["Rules"]
    assert [r["Name"] for r in rules] == ["r1", "r2"]
    assert rules[1]["ScheduleExpression"] == "rate(5 minutes)" and rules[1]["State"] == "DISABLED"
    assert events.list_rules(NamePrefix="r2")["Rules"][0]["Name"] == "r2"
    page = events.list_rules(Limit=1)
    assert len(page["Rules"]) == 1 and events.list_rules(NextToken=page["NextToken"])["Rules"][0]["Name"] == "r2"
    assert events.describe_rule(Name="r1")["Description"] == "first"

    resp = events.put_targets(Rule="r1", Targets=[
        {"Id": "fn", "Arn": lambda_arn(settings, "test-recorder")},
        {"Id": "queue", "Arn": "arn:aws:sqs:us-east-1:000000000000:q"},
        {"Id": "badinput", "Arn": lambda_arn(settings, "test-recorder"), "Input": "{nope"},
    ])
    assert resp["FailedEntryCount"] == 2
    failures = {f["TargetId"]: f["ErrorMessage"] for f in resp["FailedEntries"]}
    assert "delivers to Lambda function ARNs" in failures["queue"] and "valid JSON" in failures["badinput"]
    assert [t["Id"] for t in events.list_targets_by_rule(Rule="r1")["Targets"]] == ["fn"]

    with pytest.raises(ClientError, match="has targets"):
        events.delete_rule(Name="r1")
    assert events.remove_targets(Rule="r1", Ids=["fn", "ghost"])["FailedEntryCount"] == 1
    events.delete_rule(Name="r1")
    with pytest.raises(ClientError) as err:
        events.describe_rule(Name="r1")
    assert _code(err) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        events.list_targets_by_rule(Rule="r1")
    assert _code(err) == "ResourceNotFoundException"


def test_put_events_invokes_matching_lambda_targets(events: LocalEventsClient, settings: Settings) -> None:
    events.put_rule(Name="approved", EventPattern=json.dumps(
        {"source": ["aircast.test"], "detail": {"status": [{"anything-but": "Rejected"}]}}))
    events.put_targets(Rule="approved", Targets=[{"Id": "fn", "Arn": lambda_arn(settings, "test-recorder")}])
    events.put_rule(Name="disabled", EventPattern=json.dumps({"source": ["aircast.test"]}), State="DISABLED")
    events.put_targets(Rule="disabled", Targets=[{"Id": "fn", "Arn": lambda_arn(settings, "test-recorder")}])

    resp = events.put_events(Entries=[_entry(status="Approved", n=1), _entry(status="Rejected", n=2),
                                      _entry(source="elsewhere", status="Approved", n=3)])
    assert resp["FailedEntryCount"] == 0 and all("EventId" in e for e in resp["Entries"])
    assert [e["detail"]["n"] for e in RECEIVED] == [1]
    got = RECEIVED[0]
    assert got["source"] == "aircast.test" and got["detail-type"] == "Thing Happened"
    assert got["id"] == resp["Entries"][0]["EventId"] and got["account"] == settings.account_id

    history = events.history()
    assert len(history) == 3
    first = next(h for h in history if h["event_id"] == got["id"])
    assert first["matched_rules"] == ["approved"]
    assert first["invocations"][0]["status"] == "succeeded"
    assert first["invocations"][0]["result"] == {"status": "recorded", "function": "test-recorder"}


def test_input_and_input_path_shape_the_payload(events: LocalEventsClient, settings: Settings) -> None:
    events.put_rule(Name="r", EventPattern=json.dumps({"source": ["aircast.test"]}))
    events.put_targets(Rule="r", Targets=[
        {"Id": "a", "Arn": lambda_arn(settings, "test-recorder"), "Input": '{"fixed": true}'},
        {"Id": "b", "Arn": lambda_arn(settings, "test-recorder"), "InputPath": "$.detail"},
    ])
    events.put_events(Entries=[_entry(value=7)])
    assert RECEIVED == [{"fixed": True}, {"value": 7}]


def test_failing_target_is_recorded_and_never_raises(events: LocalEventsClient, settings: Settings) -> None:
    events.put_rule(Name="r", EventPattern=json.dumps({"source": ["aircast.test"]}))
    events.put_targets(Rule="r", Targets=[
        {"Id": "boom", "Arn": lambda_arn(settings, "test-failer")},
        {"Id": "missing", "Arn": lambda_arn(settings, "no-such-function")},
        {"Id": "ok", "Arn": lambda_arn(settings, "test-recorder")},
    ])
    resp = events.put_events(Entries=[_entry()])
    assert resp["FailedEntryCount"] == 0
    invs = {i["target_id"]: i for i in events.history()[0]["invocations"]}
    assert invs["boom"]["status"] == "failed" and "handler exploded on purpose" in invs["boom"]["error"]
    assert invs["missing"]["status"] == "failed" and "no local Lambda function named" in invs["missing"]["error"]
    assert invs["ok"]["status"] == "succeeded" and len(RECEIVED) == 1


def test_malformed_entries_fail_individually(events: LocalEventsClient) -> None:
    resp = events.put_events(Entries=[
        {"Source": "a", "DetailType": "b", "Detail": "{bad"},
        {"Source": "a", "Detail": "{}"},
        {"Source": "a", "DetailType": "b", "Detail": "[1]"},
        _entry(),
    ])
    assert resp["FailedEntryCount"] == 3
    assert [e.get("ErrorCode") for e in resp["Entries"]] == ["InvalidArgument"] * 3 + [None]
    assert "not valid JSON" in resp["Entries"][0]["ErrorMessage"]
    assert "must be specified" in resp["Entries"][1]["ErrorMessage"]
    with pytest.raises(ClientError, match="1 to 10"):
        events.put_events(Entries=[_entry()] * 11)


def test_scheduled_rules_fire_when_due_and_only_once(events: LocalEventsClient, settings: Settings) -> None:
    events.put_rule(Name="every5", ScheduleExpression="rate(5 minutes)")
    events.put_targets(Rule="every5", Targets=[{"Id": "fn", "Arn": lambda_arn(settings, "test-recorder")}])
    events.put_rule(Name="pattern-only", EventPattern=json.dumps({"source": ["aws.events"]}))
    events.put_targets(Rule="pattern-only", Targets=[{"Id": "fn", "Arn": lambda_arn(settings, "test-failer")}])
    due = events.next_fire_times()["every5"]
    assert due is not None
    assert events.fire_due_schedules(now=due - timedelta(seconds=1)) == []
    fired = events.fire_due_schedules(now=due)
    assert [f["rule"] for f in fired] == ["every5"]
    assert fired[0]["invocations"][0]["status"] == "succeeded"
    assert events.fire_due_schedules(now=due + timedelta(seconds=30)) == []  # not twice in one period
    assert RECEIVED[0]["detail-type"] == "Scheduled Event" and RECEIVED[0]["source"] == "aws.events"
    assert RECEIVED[0]["resources"] == [f"arn:aws:events:{settings.region}:{settings.account_id}:rule/every5"]
    # a later period fires again; a disabled rule does not
    assert len(events.fire_due_schedules(now=due + timedelta(minutes=5))) == 1
    events.disable_rule(Name="every5")
    assert events.fire_due_schedules(now=due + timedelta(hours=1)) == []
    assert len(RECEIVED) == 2


def test_cron_rule_fires_at_its_minute(events: LocalEventsClient, settings: Settings) -> None:
    events.put_rule(Name="noon", ScheduleExpression="cron(0 12 * * ? *)")
    events.put_targets(Rule="noon", Targets=[{"Id": "fn", "Arn": lambda_arn(settings, "test-recorder")}])
    due = events.next_fire_times()["noon"]
    assert due is not None and (due.hour, due.minute) == (12, 0) and due > datetime.now(UTC)
    assert len(events.fire_due_schedules(now=due)) == 1
    assert RECEIVED[0]["time"] == due.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_pipeline_target_starts_an_execution_with_parameters(events: LocalEventsClient, settings: Settings,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.local.sagemaker.client import LocalSageMakerClient

    calls: list[dict[str, Any]] = []
    if not hasattr(LocalSageMakerClient, "start_pipeline_execution"):
        # the pipeline executor lands separately; until then check the bus side of the call
        def start_pipeline_execution(self: Any, **kwargs: Any) -> dict[str, str]:
            calls.append(kwargs)
            return {"PipelineExecutionArn": "arn:test"}

        monkeypatch.setattr(LocalSageMakerClient, "start_pipeline_execution", start_pipeline_execution, raising=False)
    events.put_rule(Name="retrain", EventPattern=json.dumps({"source": ["aircast.monitoring"]}))
    resp = events.put_targets(Rule="retrain", Targets=[{
        "Id": "p", "Arn": pipeline_arn(settings, "no-such-pipeline-xyz"),
        "SageMakerPipelineParameters": {"PipelineParameterList": [{"Name": "ModelApprovalStatus", "Value": "Approved"}]},
    }])
    assert resp["FailedEntryCount"] == 0
    events.put_events(Entries=[_entry(source="aircast.monitoring")])
    inv = events.history()[0]["invocations"][0]
    if calls:
        assert calls == [{"PipelineName": "no-such-pipeline-xyz",
                          "PipelineParameters": [{"Name": "ModelApprovalStatus", "Value": "Approved"}]}]
        assert inv["status"] == "succeeded"
    else:
        # the real executor refuses an unknown pipeline; the bus records that and carries on
        assert inv["status"] == "failed" and "no-such-pipeline-xyz" in inv["error"]


def test_target_emitting_events_cannot_recurse_forever(events: LocalEventsClient, settings: Settings,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(awslambda.LOCAL_FUNCTIONS, "test-echo", f"{__name__}:echo_handler")
    monkeypatch.setenv("AIRCAST_DATA_DIR", str(settings.data_dir))
    events.put_rule(Name="loop", EventPattern=json.dumps({"source": ["aircast.loop"]}))
    events.put_targets(Rule="loop", Targets=[{"Id": "echo", "Arn": lambda_arn(settings, "test-echo")}])
    events.put_events(Entries=[_entry(source="aircast.loop")])
    statuses = [i["status"] for h in events.history(limit=100) for i in h["invocations"]]
    assert "failed" in statuses and len(statuses) <= 10
    assert any("event chain deeper" in (i["error"] or "") for h in events.history(limit=100) for i in h["invocations"])


def echo_handler(event: dict[str, Any], context: Any) -> None:
    from aircast.settings import load_settings

    LocalEventsClient(load_settings()).put_events(Entries=[_entry(source="aircast.loop")])
