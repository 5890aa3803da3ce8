"""AWS's JSON protocol over HTTP, for local services that run in their own process.

A local service (the event bus, the Glue service...) answers ``POST /`` requests exactly as
its AWS service does, so ``boto3.client(service, endpoint_url=...)`` works against it
unchanged: the operation in ``X-Amz-Target`` (``AWSEvents.PutEvents``), a JSON body of
``Content-Type: application/x-amz-json-1.x``, answers in the same JSON with timestamps
as epoch seconds, errors as ``{"__type": code, "message": ...}`` with the HTTP status.

Requests are authenticated as AWS authenticates them: Signature Version 4. The local
credentials are the access key ``LOCAL_ACCESS_KEY`` and, as secret, the data dir's token
(``infra.local.auth.local_token``, a 0600 file), so only a process that can read the data
dir can sign; another local user or a web page gets ``403`` with AWS's error codes.
Every request is validated against botocore's model (required members, types, and the
server-side max/pattern/enum constraints) before the backend sees it: a client that is not
boto3 gets the same refusals.

:func:`handle` is transport-free (status, headers, body in; status, headers, body out);
:func:`make_handler` wraps it for ``http.server``; :func:`remote_client` is the matching
boto3 client.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import os
import re
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import boto3
from botocore import xform_name
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ParamValidationError
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

from infra.local.auth import local_token
from infra.local.core.botoclient import STRICT_ENV, LocalShapeError, conform, constraint_violations
from infra.local.core.errors import ServiceError

#: the access key id of local credentials; the secret is the data dir's token
LOCAL_ACCESS_KEY = "AKIAAIRCASTLOCAL0000"
MAX_BODY = 1024 * 1024
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
_AUTH_RE = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
                      r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
                      r"Signature=(?P<signature>[0-9a-f]{64})$")


def service_model(service: str) -> ServiceModel:
    return boto3._get_default_session()._session.get_service_model(service)


def remote_client(service: str, endpoint_url: str, data_dir: Path, region: str, **config: Any) -> BaseClient:
    """A boto3 client for a local service process, signing with the data dir's credentials."""
    return boto3._get_default_session().client(
        service, region_name=region, endpoint_url=endpoint_url, aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=local_token(data_dir),
        config=Config(retries={"max_attempts": 1}, **config),
    )


def handle(service: str, backend: object, data_dir: Path, method: str, path: str, headers: Mapping[str, str],
           body: bytes, *, host: str) -> tuple[int, dict[str, str], bytes]:
    """Answer one HTTP request of AWS's JSON protocol for ``service`` with ``backend``."""
    model = service_model(service)
    headers = {k.lower(): v for k, v in headers.items()}
    try:
        if method != "POST" or path.split("?")[0] not in ("", "/"):
            raise ServiceError("UnknownOperationException", f"{method} {path}: this service answers POST / only", 404)
        authenticate(model, data_dir, method, path, headers, body, host)
        operation = _operation(model, headers)
        content_type = headers.get("content-type", "").split(";")[0].strip()
        expected = f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.0')}"
        if content_type != expected:
            raise ServiceError("SerializationException",
                               f"Content-Type must be {expected}, got {content_type or 'none'}", 400)
        try:
            params = json.loads(body or b"{}")
        except ValueError as exc:
            raise ServiceError("SerializationException", f"the body is not JSON: {exc}", 400) from None
        if not isinstance(params, dict):
            raise ServiceError("SerializationException", "the body must be a JSON object", 400)
        shape = operation.input_shape
        params = from_wire(params, shape) if shape is not None else {}
        if shape is not None:
            _validate(params, shape)
        method_fn = getattr(backend, xform_name(operation.name), None)
        if method_fn is None:
            raise ServiceError("UnknownOperationException",
                               f"aircast's local {service} does not implement {operation.name}", 400)
        result = method_fn(**params) or {}
        strict = os.environ.get(STRICT_ENV, "") not in ("", "0", "false")
        out = to_wire(conform(result, operation.output_shape, f"{service}.{operation.name}", strict),
                      operation.output_shape) if operation.output_shape is not None else {}
        return 200, {"Content-Type": expected}, json.dumps(out).encode()
    except ServiceError as exc:
        return _error(exc.status, exc.code, exc.message)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        return _error(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400),
                      err.get("Code", "ValidationException"), err.get("Message", ""))
    except LocalShapeError as exc:  # the stand-in's bug, not the caller's
        return _error(500, "InternalFailure", str(exc))


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}, json.dumps(
        {"__type": code, "message": message}).encode()


def _operation(model: ServiceModel, headers: Mapping[str, str]) -> OperationModel:
    target = headers.get("x-amz-target", "")
    prefix, _, name = target.rpartition(".")
    if prefix != model.metadata.get("targetPrefix") or name not in model.operation_names:
        raise ServiceError("UnknownOperationException", f"unknown operation {target or '(no X-Amz-Target)'}", 400)
    return model.operation_model(name)


def _validate(params: dict[str, Any], shape: Shape) -> None:
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        raise ServiceError("ValidationException", ParamValidationError(report=report.generate_report()).kwargs[
            "report"], 400)
    problems = constraint_violations(params, shape)
    if problems:
        count = len(problems)
        raise ServiceError("ValidationException", f"{count} validation error{'s' if count > 1 else ''} detected: "
                           + "; ".join(problems[:10]), 400)


def authenticate(model: ServiceModel, data_dir: Path, method: str, path: str, headers: Mapping[str, str],
                 body: bytes, host: str) -> None:
    """Check the request's Signature Version 4 against the data dir's credentials (AWS's error codes)."""
    auth = headers.get("authorization", "")
    if not auth:
        raise ServiceError("MissingAuthenticationTokenException", "Missing Authentication Token", 403)
    match = _AUTH_RE.match(auth)
    if not match:
        raise ServiceError("IncompleteSignatureException", "Authorization header requires 'Credential', "
                           "'SignedHeaders' and 'Signature' parameters of AWS4-HMAC-SHA256.", 403)
    if match["key"] != LOCAL_ACCESS_KEY:
        raise ServiceError("UnrecognizedClientException", "The security token included in the request is invalid.",
                           403)
    stamp = headers.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise ServiceError("IncompleteSignatureException", "X-Amz-Date is missing or malformed.", 403) from None
    if abs(dt.datetime.now(dt.UTC) - when) > MAX_CLOCK_SKEW:
        raise ServiceError("InvalidSignatureException", f"Signature expired: {stamp} is more than 15 minutes from "
                           f"now.", 403)
    signed = match["signed"].split(";")
    if "host" not in signed or headers.get("host", host) != host:
        raise ServiceError("InvalidSignatureException", "The Host header must be signed and name this service.", 403)
    request = AWSRequest(method=method, url=f"http://{host}{path or '/'}", data=body,
                         headers={name: headers[name] for name in signed if name in headers and name != "host"})
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(LOCAL_ACCESS_KEY, local_token(data_dir)), match["service"], match["region"])
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise ServiceError("InvalidSignatureException", "The request signature we calculated does not match the "
                           "signature you provided. Check your AWS Secret Access Key and signing method.", 403)


def from_wire(value: Any, shape: Shape) -> Any:
    """JSON-protocol request values → the Python values boto3's callers pass (datetime, bytes)."""
    kind = shape.type_name
    if value is None:
        return None
    if kind == "structure" and isinstance(value, dict):
        return {k: from_wire(v, shape.members[k]) if k in shape.members else v for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [from_wire(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: from_wire(v, shape.value) for k, v in value.items()}
    if kind == "timestamp" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise ServiceError("SerializationException", "a blob member is not base64", 400) from None
    return value


def to_wire(value: Any, shape: Shape) -> Any:
    """Response values → JSON-protocol values (timestamps as epoch seconds, blobs as base64)."""
    kind = shape.type_name
    if value is None:
        return None
    if kind == "structure":
        return {k: to_wire(v, shape.members[k]) if k in shape.members else v for k, v in value.items()}
    if kind == "list":
        return [to_wire(v, shape.member) for v in value]
    if kind == "map":
        return {k: to_wire(v, shape.value) for k, v in value.items()}
    if kind == "timestamp" and isinstance(value, dt.datetime):
        return value.timestamp()
    if kind == "blob" and isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value


def make_handler(service: str, backend: object, data_dir: Path, port: int,
                 extra_get: Mapping[str, Any] | None = None) -> type[BaseHTTPRequestHandler]:
    """An ``http.server`` handler answering ``service``'s JSON protocol on 127.0.0.1:``port``.

    ``extra_get``: unauthenticated read-only ``GET`` paths (e.g. ``/health``) → callables returning JSON.
    """
    hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}

    class Handler(BaseHTTPRequestHandler):
        server_version = f"aircast-{service}"
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY: the status line and headers, then the body, go out at once (with Nagle's algorithm
        # the body waits for the client's delayed ACK, ~40 ms on every call of a kept-alive connection)
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            fn = (extra_get or {}).get(self.path.rstrip("/") or "/")
            if fn is None or self.headers.get("Host") not in hosts:
                self._send(*_error(404, "UnknownOperationException", f"GET {self.path}: not found"))
                return
            self._send(200, {"Content-Type": "application/json"}, json.dumps(fn(), default=str).encode())

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            raw = self.headers.get("Content-Length")
            if raw is None or not raw.isdigit():
                self.close_connection = True
                self._send(*_error(411 if raw is None else 400, "SerializationException",
                                   "Content-Length must be a non-negative integer"))
                return
            if int(raw) > MAX_BODY:
                self.close_connection = True
                self._send(*_error(413, "SerializationException", f"the body is over {MAX_BODY} bytes"))
                return
            body = self.rfile.read(int(raw))
            host = self.headers.get("Host", "")
            if host not in hosts:  # a DNS-rebinding page names its own host
                self._send(*_error(403, "InvalidSignatureException", f"Host {host!r} is not this service"))
                return
            self._send(*handle(service, backend, data_dir, "POST", self.path, dict(self.headers.items()), body,
                               host=host))

    return Handler
