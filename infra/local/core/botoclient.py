"""Real botocore clients answered in-process by a local stand-in.

``local_client("sagemaker", backend, region=...)`` returns an ordinary
``boto3.client("sagemaker")`` — same methods, paginators, waiters, ``client.exceptions``
— whose requests never leave the process: a ``before-call`` handler hands each call
to ``backend.<snake_case_operation>(**params)`` and returns its answer as the parsed
response. Because the call goes through botocore first, every request is validated
against the service's own model (missing or unknown parameters, types, ranges,
patterns, S3 bucket names...) and refused with botocore's ``ParamValidationError``
exactly where boto3 would refuse it. Errors the backend raises as
:class:`~infra.local.core.errors.ServiceError` reach the caller as the service's
modeled exception class, as on AWS (the same pattern moto uses, one layer up).

botocore checks only minimums on the client side; the services check the rest on the
server, and so do local clients of JSON-protocol services (SageMaker, EventBridge, Glue,
Firehose): maximum lengths and values, patterns and enum values of every member, refused
as ``ValidationException`` in AWS's own words ("1 validation error detected: Value 'x' at
'endpointName' failed to satisfy constraint: Member must satisfy regular expression
pattern: ...").

The backend's answer is conformed to the operation's output shape: timestamps become
timezone-aware ``datetime`` as botocore's parsers make them, and a member the model
does not declare is an error under ``AIRCAST_STRICT_RESPONSES=1`` (the test suite sets
it), because code that reads a field AWS never returns breaks on its first AWS run.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Mapping
from functools import cache, partial
from typing import Any

import boto3
import regex
from botocore import xform_name
from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import Shape
from botocore.response import StreamingBody

from infra.local.core.errors import ServiceError

_PARAMS_KEY = "aircast_local_params"
STRICT_ENV = "AIRCAST_STRICT_RESPONSES"


class LocalShapeError(AssertionError):
    """A stand-in answered in a shape the AWS service never returns (a bug in the stand-in)."""


def response_metadata(status: int = 200) -> dict[str, Any]:
    return {"RequestId": str(uuid.uuid4()), "HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0}


def local_client(service: str, backend: object, *, region: str) -> BaseClient:
    """A boto3 client for ``service`` whose calls ``backend`` answers in this process."""
    session = boto3._get_default_session()  # boto3's own session: the same exception classes as boto3.client()
    client = session.client(
        service, region_name=region, aws_access_key_id="local", aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 0}, parameter_validation=True),
    )
    service_id = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-parameter-build.{service_id}", _keep_params)
    client.meta.events.register(f"before-call.{service_id}", partial(_answer, backend, service))
    return client


def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    # The call's own keyword arguments, before botocore serializes them for the wire.
    context[_PARAMS_KEY] = dict(params)


def _answer(backend: object, service: str, model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict]:
    operation = model.name
    params = context.pop(_PARAMS_KEY, {})
    method = getattr(backend, _snake(operation), None)
    try:
        if model.input_shape is not None and model.service_model.protocol in SERVER_VALIDATED_PROTOCOLS:
            problems = constraint_violations(params, model.input_shape)
            if problems:
                count = len(problems)
                raise ServiceError("ValidationException", f"{count} validation error{'s' if count > 1 else ''} "
                                   f"detected: " + "; ".join(problems[:10]))
        if method is None:
            raise ServiceError("NotImplemented", f"aircast's local {service} does not implement {operation}", 501)
        result = method(**params) or {}
    except ServiceError as exc:
        return _http(exc.status), exc.error_response()
    except ClientError as exc:  # a stand-in's older error helper: same wire shape
        error = dict(exc.response.get("Error", {}))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
        return _http(status), {"Error": error, "ResponseMetadata": response_metadata(status)}
    strict = os.environ.get(STRICT_ENV, "") not in ("", "0", "false")
    parsed = conform(result, model.output_shape, f"{service}.{operation}", strict) if model.output_shape else {}
    parsed["ResponseMetadata"] = response_metadata()
    return _http(200), parsed


#: protocols whose services answer constraint violations with Coral's ValidationException (Lambda is rest-json)
SERVER_VALIDATED_PROTOCOLS = ("json", "rest-json")


def constraint_violations(value: Any, shape: Shape, path: str = "") -> list[str]:
    """What the service's server-side validation says of ``value``: max, pattern, enum (AWS's words)."""
    if value is None:
        return []
    kind, meta = shape.type_name, shape.metadata
    where = f"Value {_coral(value)} at '{path}' failed to satisfy constraint: Member must"
    out: list[str] = []
    if kind == "structure" and isinstance(value, Mapping):
        for name, member in shape.members.items():
            if name in value:
                key = name[:1].lower() + name[1:]
                out += constraint_violations(value[name], member, f"{path}.{key}" if path else key)
    elif kind == "list" and isinstance(value, (list, tuple)):
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"{where} have length less than or equal to {meta['max']}")
        for i, item in enumerate(value, 1):
            out += constraint_violations(item, shape.member, f"{path}.{i}.member")
    elif kind == "map" and isinstance(value, Mapping):
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"{where} have length less than or equal to {meta['max']}")
        for key, item in value.items():
            out += constraint_violations(key, shape.key, f"{path}.{key}.key")
            out += constraint_violations(item, shape.value, f"{path}.{key}.value")
    elif kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            out.append(f"{where} have length less than or equal to {meta['max']}")
        pattern = meta.get("pattern")
        if pattern and not _compiled(pattern).fullmatch(value):
            out.append(f"{where} satisfy regular expression pattern: {pattern}")
        if shape.enum and value not in shape.enum:
            out.append(f"{where} satisfy enum value set: [{', '.join(shape.enum)}]")
    elif kind in ("integer", "long", "float", "double") and isinstance(value, (int, float)):
        if "max" in meta and value > meta["max"]:
            out.append(f"{where} have value less than or equal to {meta['max']}")
    return out


def _coral(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "'[" + ", ".join(str(v) for v in value) + "]'"
    return f"'{value}'"


@cache
def _compiled(pattern: str) -> regex.Pattern:
    # Java's surrogate-pair range for supplementary characters, as Python spells it
    return regex.compile(pattern.replace(r"\uD800\uDC00-\uDBFF\uDFFF", r"\U00010000-\U0010FFFF"))


def _http(status: int) -> AWSResponse:
    return AWSResponse("local://", status, {}, None)


def _snake(operation: str) -> str:
    return xform_name(operation)


def conform(value: Any, shape: Shape, where: str, strict: bool) -> Any:
    """``value`` as botocore's parser would hand it back for ``shape``; raise on foreign members when strict."""
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, Mapping):
            raise LocalShapeError(f"{where}: expected a structure ({shape.name}), got {type(value).__name__}")
        out: dict[str, Any] = {}
        members = shape.members
        for key, item in value.items():
            if key == "ResponseMetadata":
                continue
            if key not in members:
                if strict:
                    raise LocalShapeError(f"{where}: {shape.name} has no member {key!r} on AWS "
                                          f"(members: {', '.join(sorted(members))})")
                out[key] = item
                continue
            out[key] = conform(item, members[key], f"{where}.{key}", strict)
        return out
    if kind == "list":
        if not isinstance(value, (list, tuple)):
            raise LocalShapeError(f"{where}: expected a list, got {type(value).__name__}")
        return [conform(v, shape.member, f"{where}[{i}]", strict) for i, v in enumerate(value)]
    if kind == "map":
        if not isinstance(value, Mapping):
            raise LocalShapeError(f"{where}: expected a map, got {type(value).__name__}")
        return {k: conform(v, shape.value, f"{where}[{k!r}]", strict) for k, v in value.items()}
    if kind == "timestamp":
        return _timestamp(value, where)
    if kind == "blob":
        if isinstance(value, (bytes, bytearray, StreamingBody)) or hasattr(value, "read"):
            return value
        raise LocalShapeError(f"{where}: expected bytes or a stream, got {type(value).__name__}")
    if strict:
        expected = {"string": str, "boolean": bool, "integer": int, "long": int, "float": (int, float),
                    "double": (int, float)}.get(kind)
        if expected is not None and (not isinstance(value, expected)
                                     or (kind in ("integer", "long") and isinstance(value, bool))):
            raise LocalShapeError(f"{where}: expected {kind}, got {type(value).__name__} {value!r}")
        if kind == "string" and shape.enum and value not in shape.enum:
            raise LocalShapeError(f"{where}: {value!r} is not one of {shape.name}'s values {shape.enum}")
    return value


def _timestamp(value: Any, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise LocalShapeError(f"{where}: {value!r} is not a timestamp") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise LocalShapeError(f"{where}: expected a timestamp, got {type(value).__name__}")
