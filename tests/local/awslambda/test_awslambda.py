"""The local Lambda through boto3's own ``lambda`` client: Invoke's shapes, invocation types, function
errors as the Python runtime reports them, the documented payload limits, the context object, the log."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from aircast.clients import get_client
from aircast.settings import Settings
from infra.local.awslambda import LocalLambdaBackend, register_function

SEEN: list[Any] = []


def echo(event: Any, context: Any) -> dict[str, Any]:
    SEEN.append(event)
    return {"event": event, "request_id": context.aws_request_id, "function": context.function_name,
            "version": context.function_version, "arn": context.invoked_function_arn,
            "memory": context.memory_limit_in_mb, "log_group": context.log_group_name,
            "remaining_ms": context.get_remaining_time_in_millis()}


def boom(event: Any, context: Any) -> None:
    raise KeyError("no such thing")


def unserialisable(event: Any, context: Any) -> Any:
    return {"when": object()}


def huge(event: Any, context: Any) -> str:
    return "x" * 6_291_600  # over the 6,291,556 bytes Lambda names


def slow(event: Any, context: Any) -> str:
    time.sleep(1.2)
    return "done"


@pytest.fixture
def functions(settings: Settings) -> Any:
    SEEN.clear()
    for name, handler, timeout in (("echo", echo, 30), ("boom", boom, 3), ("unserialisable", unserialisable, 3),
                                   ("huge", huge, 3), ("slow", slow, 1)):
        register_function(settings.data_dir, name, handler, timeout_s=timeout)
    return get_client("lambda", settings)


def _payload(response: dict[str, Any]) -> Any:
    body = response["Payload"].read()
    return json.loads(body) if body else None


def test_request_response_returns_the_result_and_passes_a_context(functions: Any, settings: Settings) -> None:
    resp = functions.invoke(FunctionName="echo", Payload=json.dumps({"n": 1}))
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp and resp["ExecutedVersion"] == "$LATEST"
    out = _payload(resp)
    arn = f"arn:aws:lambda:{settings.region}:{settings.account_id}:function:echo"
    assert out["event"] == {"n": 1} and out["function"] == "echo" and out["version"] == "$LATEST"
    assert out["arn"] == arn and out["memory"] == "128" and out["log_group"] == "/aws/lambda/echo"
    assert 0 < out["remaining_ms"] <= 30_000 and len(out["request_id"]) == 36
    # a function ARN, with or without $LATEST, names the same function
    assert _payload(functions.invoke(FunctionName=arn + ":$LATEST", Payload=b"{}"))["event"] == {}


def test_invocation_types(functions: Any) -> None:
    event = functions.invoke(FunctionName="echo", InvocationType="Event", Payload=b'{"async": true}')
    assert event["StatusCode"] == 202 and event["Payload"].read() == b""
    assert SEEN == [{"async": True}]
    assert functions.invoke(FunctionName="echo", InvocationType="DryRun")["StatusCode"] == 204
    assert len(SEEN) == 1  # a dry run checks, it does not run
    with pytest.raises(ClientError, match="enum value set"):
        functions.invoke(FunctionName="echo", InvocationType="Later")


def test_function_errors_are_reported_as_the_python_runtime_reports_them(functions: Any) -> None:
    resp = functions.invoke(FunctionName="boom", Payload=b"{}", LogType="Tail")
    assert resp["StatusCode"] == 200 and resp["FunctionError"] == "Unhandled"
    doc = _payload(resp)
    assert doc["errorType"] == "KeyError" and doc["errorMessage"] == "'no such thing'"
    assert doc["requestId"] and any("in boom" in frame for frame in doc["stackTrace"])
    tail = base64.b64decode(resp["LogResult"]).decode()
    assert "[ERROR] KeyError" in tail and "REPORT RequestId:" in tail
    assert _payload(functions.invoke(FunctionName="unserialisable"))["errorType"] == "Runtime.MarshalError"
    too_big = functions.invoke(FunctionName="huge")
    assert too_big["FunctionError"] == "Unhandled"
    assert _payload(too_big)["errorType"] == "Function.ResponseSizeTooLarge"


def test_a_handler_past_its_timeout_is_reported_timed_out(functions: Any) -> None:
    doc = _payload(functions.invoke(FunctionName="slow"))
    assert doc["errorType"] == "Sandbox.Timedout" and "Task timed out after 1.00 seconds" in doc["errorMessage"]


def test_requests_lambda_refuses(functions: Any, settings: Settings) -> None:
    with pytest.raises(functions.exceptions.ResourceNotFoundException) as err:
        functions.invoke(FunctionName="nope")
    assert err.value.response["Error"]["Message"] == (
        f"Function not found: arn:aws:lambda:{settings.region}:{settings.account_id}:function:nope")
    with pytest.raises(functions.exceptions.ResourceNotFoundException, match="function:echo:v7"):
        functions.invoke(FunctionName="echo", Qualifier="v7")
    with pytest.raises(functions.exceptions.InvalidRequestContentException, match="Could not parse request body"):
        functions.invoke(FunctionName="echo", Payload=b"{not json")
    with pytest.raises(ClientError, match="regular expression pattern"):
        functions.invoke(FunctionName="has spaces")
    # Invoke's documented payload limits: 6 MB synchronous, 1 MB asynchronous
    for kind, limit in (("RequestResponse", 6_291_456), ("Event", 1_048_576)):
        body = json.dumps("x" * limit).encode()
        with pytest.raises(ClientError) as err:
            functions.invoke(FunctionName="echo", InvocationType=kind, Payload=body)
        assert err.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
        assert f"Request must be smaller than {limit} bytes for the InvokeFunction operation" in str(err.value)
    assert functions.invoke(FunctionName="echo", InvocationType="Event",
                            Payload=json.dumps("x" * 1_000_000))["StatusCode"] == 202


def test_each_invocation_is_logged_in_cloudwatch_logs(functions: Any, settings: Settings) -> None:
    request_id = _payload(functions.invoke(FunctionName="echo", Payload=b"{}"))["request_id"]
    messages = [e["message"] for e in get_client("logs", settings).filter_log_events(
        logGroupName="/aws/lambda/echo")["events"]]
    assert messages[0] == f"START RequestId: {request_id} Version: $LATEST"
    assert messages[1] == f"END RequestId: {request_id}" and messages[2].startswith(f"REPORT RequestId: {request_id}")


def test_registration_names_a_module_level_handler(settings: Settings) -> None:
    def inner(event: Any, context: Any) -> None:
        return None

    with pytest.raises(ValueError, match="module-level"):
        register_function(settings.data_dir, "inner", inner)
    with pytest.raises(ValueError, match="'module.function'"):
        register_function(settings.data_dir, "bad", "no_dot")
    with pytest.raises(ValueError, match="1-900 seconds"):
        register_function(settings.data_dir, "long", echo, timeout_s=901)
    register_function(settings.data_dir, "late", "tests.local.awslambda.test_awslambda.not_there")
    backend = LocalLambdaBackend(settings.data_dir, settings.region, settings.account_id)
    assert backend.run("late", b"{}").error() == ("Runtime.HandlerNotFound: Handler 'not_there' missing on module "
                                                  "'tests.local.awslambda.test_awslambda'")
    register_function(settings.data_dir, "gone", "no_such_module.handler")
    assert backend.run("gone", b"{}").error().startswith("Runtime.ImportModuleError: Unable to import module")
