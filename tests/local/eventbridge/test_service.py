"""The local EventBridge process: started as the stack starts it, it speaks EventBridge's JSON protocol
(boto3's events client works unchanged), refuses what is unsigned, forged or malformed with AWS's error
codes, delivers asynchronously and fires schedules."""

from __future__ import annotations

import json
import socket
import stat
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from aircast import local_wiring
from aircast.clients import event_bus_running, get_client
from aircast.event_rules import APPROVAL_RULE, DRIFT_CHECK_RULE, ensure_default_rules
from aircast.settings import Settings
from infra.local import stack
from infra.local.auth import token_file
from infra.local.awslambda import register_function
from infra.local.eventbridge.client import LocalEventsClient
from tests.helpers import wait_until
from tests.local.eventbridge import handlers as recorder

SERVICE = "eventbridge"


def _port(settings: Settings) -> int:
    """The port the bus process reported (the test settings give it port 0: it picks a free one)."""
    port = stack.bound_port(settings.local_config(), SERVICE)
    assert port is not None, "the bus process reported no port"
    return port


@pytest.fixture
def bus(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    # a tiny clock scale makes the default rate(1 hour) drift check due within seconds
    settings = settings.replace(clock_scale=0.001)
    monkeypatch.setenv("AIRCAST_CLOCK_SCALE", "0.001")
    assert SERVICE in local_wiring.LOCAL_SERVICES
    assert settings.eventbus_port == 0
    try:
        (started,) = local_wiring.up(settings, [SERVICE])
        assert started["state"] == "started" and started["port"] == _port(settings) > 0
        yield settings
    finally:
        local_wiring.down(settings, [SERVICE])
    assert local_wiring.status(settings, [SERVICE])[0]["state"] == "stopped"


def _http(settings: Settings, method: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(f"http://127.0.0.1:{_port(settings)}{path}", data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_boto3_events_client_works_against_the_bus_process(bus: Settings) -> None:
    settings = bus
    assert event_bus_running(settings)
    events = get_client("events", settings)
    assert events.meta.endpoint_url == f"http://127.0.0.1:{_port(settings)}"  # the process, not in-process
    assert stat.S_IMODE(token_file(settings.data_dir).stat().st_mode) == 0o600

    assert set(ensure_default_rules(settings)) >= {APPROVAL_RULE, DRIFT_CHECK_RULE}
    status, health = _http(settings, "GET", "/health")
    assert status == 200 and health["status"] == "ok" and health["rules"] == 4
    assert DRIFT_CHECK_RULE in health["next_fire_times"]

    register_function(settings.data_dir, "test-recorder", recorder.recording_handler)
    events.put_rule(Name="pings", EventPattern=json.dumps({"source": ["aircast.test"]}))
    events.put_targets(Rule="pings", Targets=[{"Id": "fn", "Arn": f"arn:aws:lambda:{settings.region}:"
                                              f"{settings.account_id}:function:test-recorder"}])
    resp = events.put_events(Entries=[
        {"Source": "aircast.test", "DetailType": "Ping", "Detail": json.dumps({"n": 1})},
        {"Source": "aircast.test", "DetailType": "Ping", "Detail": "{oops"}])
    assert resp["FailedEntryCount"] == 1 and resp["Entries"][1]["ErrorCode"] == "MalformedDetail"
    with pytest.raises(events.exceptions.InvalidEventPatternException):
        events.put_rule(Name="bad", EventPattern='{"source": "x"}')
    with pytest.raises(ClientError, match="enum value set"):  # validated by the server, whatever the client
        events.put_rule(Name="bad", ScheduleExpression="rate(1 day)", State="ON")

    history = LocalEventsClient(settings.local_config())
    # delivered by the bus process's workers, after PutEvents returned
    delivered = wait_until(lambda: [h for h in history.history(source="aircast.test") if h["invocations"]],
                           20, 0.2, "delivery by the bus process")
    assert delivered and delivered[0]["event"]["detail"] == {"n": 1}
    assert delivered[0]["invocations"][0]["status"] == "succeeded", delivered[0]["invocations"][0]["error"]

    fired = wait_until(lambda: [h for h in history.history(rule=DRIFT_CHECK_RULE) if h["invocations"]],
                       20, 0.2, "the scheduler firing the drift check rule")
    assert fired, "the scheduler did not fire the drift check rule"
    assert fired[0]["detail_type"] == "Scheduled Event" and fired[0]["source"] == "aws.events"
    assert local_wiring.status(settings, [SERVICE])[0]["state"] == "running"


def test_unsigned_forged_and_malformed_requests_are_refused(bus: Settings) -> None:
    settings = bus
    forged = {"Source": "aws.sagemaker", "DetailType": "SageMaker Model Package State Change",
              "Detail": json.dumps({"ModelPackageGroupName": settings.model_package_group,
                                    "ModelApprovalStatus": "Approved"})}
    body = json.dumps({"Entries": [forged]}).encode()
    amz = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents.PutEvents"}
    # no signature: what another local user or a web page can send
    status, err = _http(settings, "POST", "/", body, amz)
    assert (status, err["__type"]) == (403, "MissingAuthenticationTokenException")
    # the old unauthenticated path is gone
    assert _http(settings, "POST", "/events", body, {"Content-Type": "application/json"})[0] == 404
    # a caller holding the token still cannot speak for SageMaker
    events = get_client("events", settings)
    entry = events.put_events(Entries=[forged])["Entries"][0]
    assert (entry["ErrorCode"], entry["ErrorMessage"]) == ("NotAuthorizedForSourceException",
                                                           "Not authorized for the source.")
    assert LocalEventsClient(settings.local_config()).history() == []
    # a body of another content type, or a non-numeric Content-Length: a 4xx answer, not a dropped connection
    status, err = _http(settings, "POST", "/", body, {"Content-Type": "text/plain"})
    assert 400 <= status < 500
    port = _port(settings)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: abc\r\n\r\n{}" % port)
        reply = sock.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 400") and "SerializationException" in reply
