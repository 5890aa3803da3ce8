"""A local service speaking AWS's JSON protocol: boto3's own client works against it unchanged,
and a request not signed with the data dir's credentials is refused with AWS's error codes."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer

import pytest
from botocore.exceptions import ClientError

from infra.local.core import ServiceError
from infra.local.core.jsonserver import LOCAL_ACCESS_KEY, make_handler, remote_client


class RulesBackend:
    """A tiny EventBridge backend: enough operations to exercise the protocol."""

    def __init__(self) -> None:
        self.rules: dict[str, dict] = {}

    def put_rule(self, Name: str, ScheduleExpression: str | None = None, State: str = "ENABLED", **_) -> dict:
        self.rules[Name] = {"Name": Name, "State": State, "ScheduleExpression": ScheduleExpression,
                            "Arn": f"arn:aws:events:us-east-1:000000000000:rule/{Name}"}
        return {"RuleArn": self.rules[Name]["Arn"]}

    def describe_rule(self, Name: str, **_) -> dict:
        if Name not in self.rules:
            raise ServiceError("ResourceNotFoundException", f"Rule {Name} does not exist on EventBus default.")
        return self.rules[Name]

    def put_events(self, Entries: list, **_) -> dict:
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i, _ in enumerate(Entries)]}


@pytest.fixture
def service(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler("events", RulesBackend(), tmp_path, 0))
    port = server.server_address[1]
    server.RequestHandlerClass = make_handler("events", RulesBackend(), tmp_path, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", tmp_path
    server.shutdown()
    server.server_close()


def test_boto3_client_works_unchanged(service) -> None:
    url, data_dir = service
    events = remote_client("events", url, data_dir, "us-east-1")
    assert events.put_rule(Name="hourly", ScheduleExpression="rate(1 hour)")["RuleArn"].endswith("rule/hourly")
    assert events.describe_rule(Name="hourly")["State"] == "ENABLED"
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        events.describe_rule(Name="nope")
    with pytest.raises(ClientError, match="enum value set"):  # the server checks what botocore does not
        events.put_rule(Name="x", State="ON")


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_unsigned_forged_and_wrong_key_requests_are_refused(service, tmp_path) -> None:
    url, data_dir = service
    forged = {"Entries": [{"Source": "aws.sagemaker", "DetailType": "x", "Detail": "{}"}]}
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSEvents.PutEvents"}
    status, body = _post(url, json.dumps(forged).encode(), headers)
    assert (status, body["__type"]) == (403, "MissingAuthenticationTokenException")
    other = tmp_path / "other-user"
    other.mkdir()
    stranger = remote_client("events", url, other, "us-east-1")  # signs with another data dir's token
    with pytest.raises(ClientError) as info:
        stranger.put_events(Entries=forged["Entries"])
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential=AKIAOTHER/20260101/us-east-1/events/aws4_request, "
                                f"SignedHeaders=host, Signature={'0' * 64}")
    assert _post(url, b"{}", headers)[1]["__type"] == "UnrecognizedClientException"
    assert LOCAL_ACCESS_KEY not in headers["Authorization"]


def test_malformed_requests_get_4xx_not_a_dropped_connection(service) -> None:
    url, _ = service
    for headers in ({"Content-Length": "abc"}, {"Content-Type": "text/plain"}):
        request = urllib.request.Request(url + "/", data=b"{}", method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert 400 <= info.value.code < 500


def test_each_connection_sends_without_waiting_for_acks(tmp_path) -> None:
    """TCP_NODELAY on the server's connections: a response's headers and body go out at once (with Nagle's
    algorithm every call on a kept-alive connection waited ~40 ms for the client's delayed ACK)."""
    import socket

    seen: list[int] = []
    base = make_handler("events", RulesBackend(), tmp_path, 0)

    class Recording(base):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            super().setup()
            seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(server.server_address) as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            conn.recv(1024)
    finally:
        server.shutdown()
        server.server_close()
    assert seen and seen[0] != 0
