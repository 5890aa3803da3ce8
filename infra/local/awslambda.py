"""Local AWS Lambda: functions registered by name → handler, invoked through Lambda's ``Invoke`` API.

A function here is what Lambda's ``CreateFunction`` makes of a Python function, without the code
package: a name, its handler in Lambda's own notation (``"deployment.handler.lambda_handler"``: the
module path, then the function), a timeout and a memory size. Whoever owns the code registers its
functions (:func:`register_function`); the registry is ``<data_dir>/lambda/functions.json``, so every
local process (a CLI, the event bus, a pipeline execution) invokes the same functions by name, as
every AWS service does. This module knows names and handlers only, nothing of the project.

:class:`LocalLambdaBackend` answers ``Invoke`` as Lambda does; through
``infra.local.core.local_client("lambda", backend, ...)`` callers get a real boto3 client:

- ``InvocationType`` ``RequestResponse`` (the default: status 200 with the function's result, or
  ``FunctionError: Unhandled`` with the runtime's error document ``{"errorMessage", "errorType",
  "requestId", "stackTrace"}``), ``Event`` (202, no payload; the outcome is in the function's log),
  ``DryRun`` (204).
- Payload limits (Lambda's ``Invoke`` reference): 6 MB (6,291,456 bytes) for a synchronous request
  and its response, 1 MB (1,048,576 bytes) for an asynchronous request. An oversized request is
  ``RequestEntityTooLargeException`` (413, "Request must be smaller than N bytes for the
  InvokeFunction operation"); an oversized response is the function error
  ``Function.ResponseSizeTooLarge``; a request payload that is not JSON is
  ``InvalidRequestContentException``; an unknown function or qualifier ``ResourceNotFoundException``
  ("Function not found: ARN").
- The handler gets the payload decoded from JSON and a context object with the attributes of the
  Python runtime's (``aws_request_id``, ``function_name``, ``function_version``,
  ``invoked_function_arn``, ``memory_limit_in_mb``, ``log_group_name``, ``log_stream_name``,
  ``get_remaining_time_in_millis()``). A result that is not JSON is ``Runtime.MarshalError``; a
  handler that cannot be imported ``Runtime.ImportModuleError`` / ``Runtime.HandlerNotFound``.
- A handler that runs past its timeout is reported as Lambda reports it (``Sandbox.Timedout``,
  "Task timed out after N seconds") and its result is discarded.
- Each invocation writes Lambda's ``START`` / ``END`` / ``REPORT`` lines (and an unhandled error) to
  CloudWatch Logs ``/aws/lambda/<name>``; ``LogType=Tail`` returns their last 4 KB.

Local differences: a handler runs in the calling process and thread (no sandbox, cold start or
concurrency limit; it cannot be stopped at its timeout, only reported); an ``Event`` invocation
runs at once and is not retried; the region and account of a function ARN are not checked (the
local stack is one account).
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from botocore.response import StreamingBody

from infra.local.core.arns import lambda_function_arn
from infra.local.core.errors import ServiceError
from infra.local.logs import LogStream

#: the registry of functions, relative to the data dir
FUNCTIONS_PATH = Path("lambda") / "functions.json"
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024  # 6,291,456 bytes, request and response
MAX_ASYNC_PAYLOAD = 1024 * 1024  # 1,048,576 bytes
MAX_RESPONSE = 6_291_556  # the limit Lambda names when a response is too large
LOG_TAIL_BYTES = 4096
DEFAULT_TIMEOUT_S = 3  # Lambda's defaults for a new function
DEFAULT_MEMORY_MB = 128
MAX_TIMEOUT_S = 900
_NAME = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
_HANDLER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@dataclass(frozen=True)
class FunctionConfig:
    """A registered function: name, ``module.function`` handler, timeout and memory."""

    name: str
    handler: str
    timeout_s: int = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB


@dataclass
class Invocation:
    """What one invocation did: Lambda's status code and function error, the payload, the log tail."""

    request_id: str
    function_name: str
    status_code: int
    payload: bytes
    function_error: str | None = None
    log_tail: str = ""
    duration_ms: float = 0.0

    def result(self) -> Any:
        """The function's result (or the runtime's error document), decoded from JSON."""
        return json.loads(self.payload) if self.payload else None

    def error(self) -> str | None:
        """``"errorType: errorMessage"`` of a failed invocation, else None."""
        if self.function_error is None:
            return None
        doc = self.result() or {}
        return f"{doc.get('errorType', self.function_error)}: {doc.get('errorMessage', '')}"


class LambdaContext:
    """The context object the Python runtime passes to a handler (the same attribute names)."""

    def __init__(self, function: FunctionConfig, request_id: str, invoked_arn: str, deadline: float,
                 log_stream_name: str, client_context: Any = None) -> None:
        self.aws_request_id = request_id
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = invoked_arn
        self.memory_limit_in_mb = str(function.memory_mb)
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = log_stream_name
        self.identity = None
        self.client_context = client_context
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout (0 once past it)."""
        return max(0, int((self._deadline - time.time()) * 1000))


# ---- the registry ------------------------------------------------------------------------------
def functions_file(data_dir: Path) -> Path:
    return Path(data_dir) / FUNCTIONS_PATH


def registered_functions(data_dir: Path) -> dict[str, FunctionConfig]:
    """The functions registered in this data dir, by name."""
    try:
        raw = json.loads(functions_file(data_dir).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ServiceError("ServiceException", f"the local function registry {functions_file(data_dir)} is "
                           f"unreadable: {exc}", 500) from exc
    return {name: FunctionConfig(**spec) for name, spec in raw.items()}


def handler_name(handler: str | Callable[..., Any]) -> str:
    """Lambda's ``module.function`` notation for a handler given as text or as a module-level function."""
    if callable(handler):
        text = f"{handler.__module__}.{handler.__qualname__}"
        if "<" in text or resolve_handler(text) is not handler:
            raise ValueError(f"{text} is not a module-level function; Lambda names a handler 'module.function'")
        return text
    if not isinstance(handler, str) or not _HANDLER.match(handler):
        raise ValueError(f"handler {handler!r} is not Lambda's 'module.function' notation")
    return handler


def register_function(data_dir: Path, name: str, handler: str | Callable[..., Any], *,
                      timeout_s: int = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB) -> FunctionConfig:
    """Create or update the function ``name`` (what ``CreateFunction`` / ``UpdateFunctionConfiguration``
    record, minus the code: the handler's module is imported from this machine's path when invoked)."""
    if not _NAME.match(name or ""):
        raise ValueError(f"function name {name!r}: 1-64 characters from a-z A-Z 0-9 - _")
    if not 1 <= timeout_s <= MAX_TIMEOUT_S:
        raise ValueError(f"timeout {timeout_s} s: Lambda allows 1-{MAX_TIMEOUT_S} seconds")
    if not 128 <= memory_mb <= 10240:
        raise ValueError(f"memory {memory_mb} MB: Lambda allows 128-10240 MB")
    config = FunctionConfig(name, handler_name(handler), int(timeout_s), int(memory_mb))
    functions = registered_functions(data_dir)
    if functions.get(name) == config:
        return config
    functions[name] = config
    path = functions_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # written whole and renamed: a process reading it never sees half a file
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".functions-")
    with os.fdopen(fd, "w") as fh:
        json.dump({n: asdict(f) for n, f in sorted(functions.items())}, fh, indent=1)
    os.replace(tmp, path)
    return config


def resolve_handler(handler: str) -> Callable[..., Any]:
    """The function a ``module.function`` handler names (imported now; ImportError / AttributeError if absent)."""
    module, _, attr = handler.rpartition(".")
    return getattr(importlib.import_module(module), attr)


# ---- Invoke ------------------------------------------------------------------------------------
def function_name_of(name_or_arn: str) -> str:
    """``arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]``, ``ACCOUNT:function:NAME`` or ``NAME`` → ``NAME``."""
    return _parse_function(name_or_arn)[0]


def _parse_function(name_or_arn: str) -> tuple[str, str | None]:
    parts = str(name_or_arn).split(":")
    if "function" in parts:
        i = parts.index("function")
        name = parts[i + 1] if len(parts) > i + 1 else ""
        qualifier = parts[i + 2] if len(parts) > i + 2 else None
        return name, qualifier
    if len(parts) == 2:  # NAME:QUALIFIER
        return parts[0], parts[1]
    return parts[0], None


class LocalLambdaBackend:
    """``boto3.client("lambda")``'s ``Invoke`` for the functions registered in ``data_dir``."""

    def __init__(self, data_dir: Path, region: str, account_id: str) -> None:
        self.data_dir = Path(data_dir)
        self.region, self.account_id = region, account_id

    def function_arn(self, name: str, qualifier: str | None = None) -> str:
        """The ARN of function ``name`` (and ``qualifier``) in this Lambda's region and account."""
        return lambda_function_arn(self.region, self.account_id, name, qualifier)

    def invoke(self, *, FunctionName: str, InvocationType: str = "RequestResponse", LogType: str = "None",
               ClientContext: str | None = None, Payload: bytes | Any = b"", Qualifier: str | None = None,
               **_: Any) -> dict[str, Any]:
        """Lambda's ``Invoke``: run the function, answer in ``Invoke``'s output shape."""
        body = _payload_bytes(Payload)
        name, arn_qualifier = _parse_function(FunctionName)
        qualifier = Qualifier or arn_qualifier
        if InvocationType == "DryRun":
            self._function(name, qualifier)
            return {"StatusCode": 204}
        record = self.run(FunctionName, body, invocation_type=InvocationType, qualifier=qualifier,
                          client_context=_client_context(ClientContext))
        out: dict[str, Any] = {"StatusCode": record.status_code, "ExecutedVersion": "$LATEST"}
        if InvocationType == "Event":
            out["Payload"] = _stream(b"")
            return out
        out["Payload"] = _stream(record.payload)
        if record.function_error:
            out["FunctionError"] = record.function_error
        if LogType == "Tail":
            out["LogResult"] = base64.b64encode(record.log_tail.encode()[-LOG_TAIL_BYTES:]).decode()
        return out

    def run(self, function: str, payload: bytes, *, invocation_type: str = "RequestResponse",
            qualifier: str | None = None, client_context: Any = None) -> Invocation:
        """Invoke ``function`` (name or ARN) and return the whole outcome, whatever the invocation type.

        This is what the Lambda service itself does with an invocation; AWS services that invoke a
        function (EventBridge targets, a pipeline's Lambda step) call it directly, and local-only
        callers read the result of an ``Event`` invocation here (Lambda's API does not return it).
        """
        name, arn_qualifier = _parse_function(function)
        config = self._function(name, qualifier or arn_qualifier)
        limit = MAX_ASYNC_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
        if len(payload) > limit:
            raise ServiceError("RequestEntityTooLargeException",
                               f"Request must be smaller than {limit} bytes for the InvokeFunction operation", 413)
        try:
            event = json.loads(payload) if payload.strip() else {}
        except ValueError as exc:
            raise ServiceError("InvalidRequestContentException", "Could not parse request body into json: Could "
                               f"not parse payload into json: {exc}", 400) from None
        return self._execute(config, event, self.function_arn(name, qualifier or arn_qualifier),
                             202 if invocation_type == "Event" else 200, client_context)

    def _function(self, name: str, qualifier: str | None) -> FunctionConfig:
        config = registered_functions(self.data_dir).get(name)
        if config is None or qualifier not in (None, "$LATEST"):
            raise ServiceError("ResourceNotFoundException",
                               f"Function not found: {self.function_arn(name, qualifier)}", 404)
        return config

    def _execute(self, config: FunctionConfig, event: Any, invoked_arn: str, status: int,
                 client_context: Any) -> Invocation:
        request_id = str(uuid.uuid4())
        stream_name = time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()) + uuid.uuid4().hex
        log = LogStream(self.data_dir, f"/aws/lambda/{config.name}", stream_name)
        lines = [f"START RequestId: {request_id} Version: $LATEST"]
        log.put(lines[0])
        started = time.time()
        context = LambdaContext(config, request_id, invoked_arn, started + config.timeout_s, stream_name,
                                client_context)
        error: dict[str, Any] | None = None
        payload = b""
        try:
            handler = resolve_handler(config.handler)
        except ModuleNotFoundError as exc:
            error = {"errorMessage": f"Unable to import module '{config.handler.rpartition('.')[0]}': {exc}",
                     "errorType": "Runtime.ImportModuleError", "requestId": request_id, "stackTrace": []}
        except AttributeError:
            module, _, attr = config.handler.rpartition(".")
            error = {"errorMessage": f"Handler '{attr}' missing on module '{module}'",
                     "errorType": "Runtime.HandlerNotFound", "requestId": request_id, "stackTrace": []}
        else:
            try:
                result = handler(event, context)
            except Exception as exc:  # noqa: BLE001 - an unhandled error is the function's outcome, not ours
                error = {"errorMessage": str(exc), "errorType": type(exc).__name__, "requestId": request_id,
                         "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])}
            else:
                try:
                    payload = json.dumps(result).encode()
                except (TypeError, ValueError) as exc:
                    error = {"errorMessage": f"Unable to marshal response: {exc}", "errorType": "Runtime.MarshalError",
                             "requestId": request_id, "stackTrace": []}
        elapsed = time.time() - started
        if elapsed > config.timeout_s:
            # Lambda would have stopped it here; what it did after does not count
            error = {"errorMessage": f"RequestId: {request_id} Error: Task timed out after "
                                     f"{config.timeout_s:.2f} seconds", "errorType": "Sandbox.Timedout"}
        elif error is None and len(payload) > MAX_RESPONSE:
            error = {"errorMessage": f"Response payload size exceeded maximum allowed payload size "
                                     f"({MAX_RESPONSE} bytes).", "errorType": "Function.ResponseSizeTooLarge"}
        if error is not None:
            payload = json.dumps(error).encode()
            message = f"[ERROR] {error['errorType']}: {error['errorMessage']}"
            lines.append(message)
            log.put(message + "".join(f"\n{frame.rstrip()}" for frame in error.get("stackTrace", [])))
        duration_ms = elapsed * 1000
        for line in (f"END RequestId: {request_id}",
                     f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: "
                     f"{max(1, round(duration_ms))} ms\tMemory Size: {config.memory_mb} MB"):
            lines.append(line)
            log.put(line)
        return Invocation(request_id, config.name, status, payload, "Unhandled" if error else None,
                          "\n".join(lines) + "\n", duration_ms)


def _payload_bytes(payload: Any) -> bytes:
    if payload is None:
        return b""
    if hasattr(payload, "read"):
        payload = payload.read()
    if isinstance(payload, str):
        return payload.encode()
    return bytes(payload)


def _stream(data: bytes) -> StreamingBody:
    import io

    return StreamingBody(io.BytesIO(data), len(data))


def _client_context(text: str | None) -> Any:
    """``ClientContext`` is base64-encoded JSON on the wire; the handler gets it decoded."""
    if not text:
        return None
    try:
        return json.loads(base64.b64decode(text))
    except ValueError:
        raise ServiceError("InvalidRequestContentException", "Client context must be a valid Base64-encoded "
                           "JSON object.", 400) from None
