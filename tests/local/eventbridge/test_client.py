"""The local EventBridge through boto3's own ``events`` client: AWS's validation rules and wording,
delivery to Lambda targets through the local Lambda (the event exactly as EventBridge delivers it)
and to SageMaker pipeline targets, the history, schedules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from aircast.clients import get_client
from aircast.event_rules import lambda_arn, pipeline_arn
from aircast.settings import Settings
from infra.local.awslambda import register_function
from infra.local.eventbridge.client import LocalEventsClient
from tests.local.eventbridge.handlers import (
    CONTEXTS,
    RECEIVED,
    echo_handler,
    entry,
    failing_handler,
    recording_handler,
)


@pytest.fixture
def events(settings: Settings) -> Any:
    """boto3's events client answered by the local bus (in-process: no bus process runs)."""
    RECEIVED.clear()
    CONTEXTS.clear()
    for name, handler in (("test-recorder", recording_handler), ("test-failer", failing_handler),
                          ("test-echo", echo_handler)):
        register_function(settings.data_dir, name, handler, timeout_s=30)
    return get_client("events", settings)


def _code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return err.value.response["Error"]["Code"]


def _history(settings: Settings, **kwargs: Any) -> list[dict[str, Any]]:
    return LocalEventsClient(settings.local_config()).history(**kwargs)


def test_put_rule_validates_pattern_and_schedule(events: Any) -> None:
    with pytest.raises(events.exceptions.InvalidEventPatternException, match="must be in an array"):
        events.put_rule(Name="bad", EventPattern='{"source": "aircast.test"}')
    with pytest.raises(ClientError) as err:
        events.put_rule(Name="bad", ScheduleExpression="cron(0 12 * * * *)")
    assert _code(err) == "ValidationException" and "Parameter ScheduleExpression is not valid." in str(err.value)
    assert "must be '?'" in str(err.value)
    with pytest.raises(ClientError, match=r"Parameter\(s\) EventPattern or ScheduleExpression must be specified"):
        events.put_rule(Name="bad")
    with pytest.raises(ClientError, match="regular expression pattern"):  # checked server-side, as AWS does
        events.put_rule(Name="bad name!", ScheduleExpression="rate(1 day)")
    with pytest.raises(events.exceptions.ResourceNotFoundException, match="Event bus other does not exist"):
        events.put_rule(Name="x", ScheduleExpression="rate(1 day)", EventBusName="other")
    with pytest.raises(ClientError, match="length less than or equal to 4096"):
        events.put_rule(Name="x", EventPattern=json.dumps({"source": ["a" * 5000]}))
    assert events.list_rules()["Rules"] == []


# the rate expressions AWS refuses (LocalStack's AWS-validated test tests/aws/services/events/test_events_schedule.py)
@pytest.mark.parametrize("expression", [
    "rate(10 seconds)", "rate(10 years)", "rate(1 minutes)", "rate(1 hours)", "rate(1 days)", "rate(10 minute)",
    "rate(10 hour)", "rate(10 day)", "rate()", "rate(10)", "rate(10 minutess)", "rate(foo minutes)",
    "rate(0 minutes)", "rate(-10 minutes)", "rate(10 MINUTES)", "rate( 10 minutes )", " rate(10 minutes)",
])
def test_schedule_expressions_aws_refuses_are_refused(events: Any, expression: str) -> None:
    with pytest.raises(ClientError) as err:
        events.put_rule(Name="r", ScheduleExpression=expression)
    assert _code(err) == "ValidationException"
    assert err.value.response["Error"]["Message"].startswith("Parameter ScheduleExpression is not valid.")


def test_rules_and_targets_round_trip_in_boto3_shapes(events: Any, settings: Settings) -> None:
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
    # a pipeline target acts with a role; EventBridge refuses one without (Lambda targets use a resource policy)
    with pytest.raises(ClientError, match="RoleArn is required for target arn:aws:sagemaker"):
        events.put_targets(Rule="r1", Targets=[{"Id": "p", "Arn": pipeline_arn(settings, "p")}])
    with pytest.raises(events.exceptions.LimitExceededException):
        events.put_targets(Rule="r1", Targets=[{"Id": f"t{i}", "Arn": lambda_arn(settings, "test-recorder")}
                                               for i in range(5)])

    with pytest.raises(ClientError, match="Rule can't be deleted since it has targets."):
        events.delete_rule(Name="r1")
    assert events.remove_targets(Rule="r1", Ids=["fn", "ghost"])["FailedEntryCount"] == 1
    events.delete_rule(Name="r1")
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        events.describe_rule(Name="r1")
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        events.list_targets_by_rule(Rule="r1")


def test_lambda_targets_get_the_event_as_eventbridge_delivers_it(events: Any, settings: Settings) -> None:
    events.put_rule(Name="approved", EventPattern=json.dumps(
        {"source": ["aircast.test"], "detail": {"status": [{"anything-but": "Rejected"}]}}))
    events.put_targets(Rule="approved", Targets=[{"Id": "fn", "Arn": lambda_arn(settings, "test-recorder")}])
    events.put_rule(Name="disabled", EventPattern=json.dumps({"source": ["aircast.test"]}), State="DISABLED")
    events.put_targets(Rule="disabled", Targets=[{"Id": "fn", "Arn": lambda_arn(settings, "test-recorder")}])

    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    first = {**entry(status="Approved", n=1), "Time": when, "Resources": ["arn:aws:test:r"]}
    resp = events.put_events(Entries=[first, entry(status="Rejected", n=2),
                                      entry(source="elsewhere", status="Approved", n=3)])
    assert resp["FailedEntryCount"] == 0 and all("EventId" in e for e in resp["Entries"])
    (got,) = RECEIVED
    assert got == {"version": "0", "id": resp["Entries"][0]["EventId"], "detail-type": "Thing Happened",
                   "source": "aircast.test", "account": settings.account_id, "time": "2026-03-01T12:30:00Z",
                   "region": settings.region, "resources": ["arn:aws:test:r"], "detail": {"status": "Approved", "n": 1}}
    (ctx,) = CONTEXTS
    assert ctx["function_name"] == "test-recorder" and ctx["aws_request_id"]
    assert 0 < ctx["remaining_ms"] <= 30_000 and ctx["invoked_function_arn"] == lambda_arn(settings, "test-recorder")

    history = _history(settings)
    assert len(history) == 3
    record = next(h for h in history if h["event_id"] == got["id"])
    assert record["matched_rules"] == ["approved"]
    assert record["invocations"][0]["status"] == "succeeded"
    assert record["invocations"][0]["result"] == {"status": "recorded", "function": "test-recorder"}
    # Lambda's own log of the invocation (CloudWatch Logs, /aws/lambda/<name>)
    logs = get_client("logs", settings).filter_log_events(logGroupName="/aws/lambda/test-recorder")["events"]
    assert any(e["message"].startswith(f"START RequestId: {ctx['aws_request_id']}") for e in logs)


def test_input_and_input_path_shape_the_payload(events: Any, settings: Settings) -> None:
    events.put_rule(Name="r", EventPattern=json.dumps({"source": ["aircast.test"]}))
    events.put_targets(Rule="r", Targets=[
        {"Id": "a", "Arn": lambda_arn(settings, "test-recorder"), "Input": '{"fixed": true}'},
        {"Id": "b", "Arn": lambda_arn(settings, "test-recorder"), "InputPath": "$.detail"},
    ])
    events.put_events(Entries=[entry(value=7)])
    assert RECEIVED == [{"fixed": True}, {"value": 7}]


def test_failing_target_is_recorded_and_never_raises(events: Any, settings: Settings) -> None:
    events.put_rule(Name="r", EventPattern=json.dumps({"source": ["aircast.test"]}))
    events.put_targets(Rule="r", Targets=[
        {"Id": "boom", "Arn": lambda_arn(settings, "test-failer")},
        {"Id": "missing", "Arn": lambda_arn(settings, "no-such-function")},
        {"Id": "ok", "Arn": lambda_arn(settings, "test-recorder")},
    ])
    resp = events.put_events(Entries=[entry()])
    assert resp["FailedEntryCount"] == 0
    invs = {i["target_id"]: i for i in _history(settings)[0]["invocations"]}
    assert invs["boom"]["status"] == "failed" and invs["boom"]["error"] == "RuntimeError: handler exploded on purpose"
    assert invs["boom"]["result"]["errorType"] == "RuntimeError"  # the runtime's error document
    assert invs["missing"]["status"] == "failed"
    assert "Function not found: arn:aws:lambda:" in invs["missing"]["error"]
    assert invs["ok"]["status"] == "succeeded" and len(RECEIVED) == 1


def test_put_events_entries_follow_eventbridge_rules(events: Any, settings: Settings) -> None:
    resp = events.put_events(Entries=[
        {"Source": "a", "DetailType": "b", "Detail": "{bad"},
        {"Source": "a", "Detail": "{}"},
        {"Source": "a", "DetailType": "b", "Detail": "[1]"},
        {"Source": "aws.sagemaker", "DetailType": "SageMaker Model Package State Change", "Detail": "{}"},
        entry(),
    ])
    assert resp["FailedEntryCount"] == 4
    assert [(e.get("ErrorCode"), e.get("ErrorMessage")) for e in resp["Entries"][:4]] == [
        ("MalformedDetail", "Detail is malformed."),
        ("InvalidArgument", "Parameter DetailType is not valid. Reason: DetailType is a required argument."),
        ("MalformedDetail", "Detail is malformed."),
        ("NotAuthorizedForSourceException", "Not authorized for the source."),
    ]
    assert "EventId" in resp["Entries"][4]
    assert [h["source"] for h in _history(settings)] == ["aircast.test"]  # refused entries never reach the bus
    with pytest.raises(ClientError, match="length less than or equal to 10"):
        events.put_events(Entries=[entry()] * 11)
    with pytest.raises(ParamValidationError):
        events.put_events(Entries=[])
    # EventBridge's entry size: Time 14 bytes + Source + DetailType + Detail + Resources, under 256 KB in all
    big = json.dumps({"blob": "x" * (128 * 1024)})
    with pytest.raises(ClientError, match="Total size of the entries in the request is over the limit."):
        events.put_events(Entries=[entry(blob="x" * (128 * 1024)), {**entry(), "Detail": big}])
    assert events.put_events(Entries=[{**entry(), "Detail": json.dumps({"blob": "x" * 200_000})}])[
        "FailedEntryCount"] == 0


def test_aws_services_emit_their_sources_in_process_only(events: Any, settings: Settings) -> None:
    """The model registry's aws.sagemaker events go through the service path; PutEvents callers cannot forge them."""
    forged = {"Source": "aws.sagemaker", "DetailType": "SageMaker Model Package State Change",
              "Detail": json.dumps({"ModelApprovalStatus": "Approved"})}
    assert events.put_events(Entries=[forged])["Entries"][0]["ErrorCode"] == "NotAuthorizedForSourceException"
    assert not hasattr(events, "put_service_events")  # not an EventBridge operation
    resp = LocalEventsClient(settings.local_config()).put_service_events([forged])
    assert resp["FailedEntryCount"] == 0
    assert [h["source"] for h in _history(settings)] == ["aws.sagemaker"]


def test_scheduled_rules_fire_when_due_and_only_once(events: Any, settings: Settings) -> None:
    events.put_rule(Name="every5", ScheduleExpression="rate(5 minutes)")
    events.put_targets(Rule="every5", Targets=[{"Id": "fn", "Arn": lambda_arn(settings, "test-recorder")}])
    events.put_rule(Name="pattern-only", EventPattern=json.dumps({"source": ["aws.events"]}))
    events.put_targets(Rule="pattern-only", Targets=[{"Id": "fn", "Arn": lambda_arn(settings, "test-failer")}])
    bus = LocalEventsClient(settings.local_config())
    due = bus.next_fire_times()["every5"]
    assert due is not None
    assert bus.fire_due_schedules(now=due - timedelta(seconds=1)) == []
    fired = bus.fire_due_schedules(now=due)
    assert [f["rule"] for f in fired] == ["every5"]
    assert fired[0]["invocations"][0]["status"] == "succeeded"
    assert bus.fire_due_schedules(now=due + timedelta(seconds=30)) == []  # not twice in one period
    assert RECEIVED[0]["detail-type"] == "Scheduled Event" and RECEIVED[0]["source"] == "aws.events"
    assert RECEIVED[0]["resources"] == [f"arn:aws:events:{settings.region}:{settings.account_id}:rule/every5"]
    # a later period fires again; a disabled rule does not
    assert len(bus.fire_due_schedules(now=due + timedelta(minutes=5))) == 1
    events.disable_rule(Name="every5")
    assert bus.fire_due_schedules(now=due + timedelta(hours=1)) == []
    assert len(RECEIVED) == 2


def test_cron_rule_fires_at_its_minute(events: Any, settings: Settings) -> None:
    events.put_rule(Name="noon", ScheduleExpression="cron(0 12 * * ? *)")
    events.put_targets(Rule="noon", Targets=[{"Id": "fn", "Arn": lambda_arn(settings, "test-recorder")}])
    bus = LocalEventsClient(settings.local_config())
    due = bus.next_fire_times()["noon"]
    assert due is not None and (due.hour, due.minute) == (12, 0) and due > datetime.now(UTC)
    assert len(bus.fire_due_schedules(now=due)) == 1
    assert RECEIVED[0]["time"] == due.strftime("%Y-%m-%dT%H:%M:%SZ")


TRIVIAL_PIPELINE = {
    "Version": "2020-12-01",
    "Parameters": [{"Name": "ModelApprovalStatus", "Type": "String", "DefaultValue": "PendingManualApproval"}],
    "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "nothing to do"}}],
}


def test_pipeline_target_starts_an_execution_with_its_parameters(events: Any, settings: Settings) -> None:
    from pipelines.executions import upsert_pipeline

    sm = get_client("sagemaker", settings)
    upsert_pipeline(sm, "retrain-me", json.dumps(TRIVIAL_PIPELINE), settings.role_arn)
    events.put_rule(Name="retrain", EventPattern=json.dumps({"source": ["aircast.monitoring"]}))
    params = {"PipelineParameterList": [{"Name": "ModelApprovalStatus", "Value": "Approved"}]}
    resp = events.put_targets(Rule="retrain", Targets=[
        {"Id": "p", "Arn": pipeline_arn(settings, "retrain-me"), "RoleArn": settings.role_arn,
         "SageMakerPipelineParameters": params},
        {"Id": "ghost", "Arn": pipeline_arn(settings, "no-such-pipeline-xyz"), "RoleArn": settings.role_arn}])
    assert resp["FailedEntryCount"] == 0
    events.put_events(Entries=[entry(source="aircast.monitoring")])
    invs = {i["target_id"]: i for i in _history(settings)[0]["invocations"]}
    assert invs["p"]["status"] == "succeeded", invs["p"]["error"]
    execution = invs["p"]["result"]["PipelineExecutionArn"]
    assert sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution)["PipelineParameters"] == [
        {"Name": "ModelApprovalStatus", "Value": "Approved"}]
    # the real local SageMaker refuses an unknown pipeline; the bus records that and carries on
    assert invs["ghost"]["status"] == "failed" and "no-such-pipeline-xyz" in invs["ghost"]["error"]


def test_a_bus_of_its_own_starts_pipelines_on_the_local_sagemaker(events: Any, settings: Settings) -> None:
    """The bus process and the Model Registry's events make a bus of their own (no caller's settings):
    it starts a pipeline target on the emulator's SageMaker, as the in-process bus does."""
    from pipelines.executions import upsert_pipeline

    upsert_pipeline(get_client("sagemaker", settings), "retrain-me", json.dumps(TRIVIAL_PIPELINE), settings.role_arn)
    events.put_rule(Name="retrain", EventPattern=json.dumps({"source": ["aircast.monitoring"]}))
    events.put_targets(Rule="retrain", Targets=[{"Id": "p", "Arn": pipeline_arn(settings, "retrain-me"),
                                                 "RoleArn": settings.role_arn}])
    bus = LocalEventsClient(settings.local_config())
    bus.put_events(Entries=[entry(source="aircast.monitoring")])
    (inv,) = bus.history(rule="retrain")[0]["invocations"]
    assert inv["status"] == "succeeded", inv["error"]
    assert inv["result"]["PipelineExecutionArn"].startswith(pipeline_arn(settings, "retrain-me") + "/execution/")


def test_target_emitting_events_cannot_recurse_forever(events: Any, settings: Settings) -> None:
    events.put_rule(Name="loop", EventPattern=json.dumps({"source": ["aircast.loop"]}))
    events.put_targets(Rule="loop", Targets=[{"Id": "echo", "Arn": lambda_arn(settings, "test-echo")}])
    events.put_events(Entries=[entry(source="aircast.loop")])
    history = _history(settings, limit=100)
    statuses = [i["status"] for h in history for i in h["invocations"]]
    assert "failed" in statuses and len(statuses) <= 10
    assert any("event chain deeper" in (i["error"] or "") for h in history for i in h["invocations"])
