"""SageMaker Runtime's ``InvokeEndpoint`` as the host receives it: the request's members, checked as the
service checks them, and the errors it answers with (status, ``x-amzn-ErrorType`` code, JSON body)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.local.core.botoclient import constraint_violations
from infra.local.core.errors import ServiceError


class InvocationError(ServiceError):
    """An InvokeEndpoint failure, shaped as the SageMaker Runtime error it stands for."""

    def __init__(self, status: int, code: str, message: str, original_status: int | None = None,
                 outcome: str | None = None) -> None:
        extra: dict[str, Any] = {}
        if original_status is not None:
            extra = {"ErrorCode": "CLIENT_ERROR_FROM_MODEL" if original_status < 500 else "SERVER_ERROR_FROM_MODEL",
                     "OriginalStatusCode": original_status, "OriginalMessage": message}
        super().__init__(code, message, status, "InvokeEndpoint", extra)
        self.original_status = original_status
        # which error metric it counts as on the variant (None: not a variant's invocation)
        self.outcome = outcome

    def body(self) -> dict[str, Any]:
        """The rest-json error body (``message``, and the model's status for a ``ModelError``)."""
        return {"message": self.message, "Message": self.message, **self.extra}

    @classmethod
    def validation(cls, message: str, operation: str = "") -> InvocationError:
        """``ValidationError`` (400): the Runtime's answer to a request it refuses."""
        return cls(400, "ValidationError", message)


def endpoint_not_found(name: str, account: str) -> InvocationError:
    return InvocationError.validation(f"Endpoint {name} of account {account} not found.")


def body_too_large(size: int | str, limit: int, more: bool = False) -> InvocationError:
    """A body over the payload limit (``more``: the exact size is not known, only that it passed the limit)."""
    return InvocationError.validation(f"Request body of {'more than ' if more else ''}{size} bytes exceeds the "
                                      f"maximum payload size of {limit} bytes; send fewer instances per request")


def model_error(variant: str, original_status: int, message: str) -> InvocationError:
    """The model container answered ``original_status``: ``ModelError`` (424) naming it."""
    kind = "client" if original_status < 500 else "server"
    return InvocationError(424, "ModelError",
                           f"Received {kind} error ({original_status}) from primary with message \"{message}\". "
                           f"See the endpoint host log for variant {variant}.",
                           original_status, outcome="4xx" if original_status < 500 else "5xx")


@functools.cache
def _invoke_endpoint_shape() -> Any:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    return model.operation_model("InvokeEndpoint").input_shape


def request_problems(params: Mapping[str, Any]) -> list[str]:
    """What SageMaker Runtime's own validation says of an ``InvokeEndpoint`` request (string members:
    minimum and maximum length, pattern), in its words."""
    shape = _invoke_endpoint_shape()
    problems = []
    for name, value in params.items():
        member = shape.members[name]
        low = member.metadata.get("min")
        if isinstance(value, str) and low is not None and len(value) < low:
            key = name[:1].lower() + name[1:]
            problems.append(f"Value '{value}' at '{key}' failed to satisfy constraint: Member must have length "
                            f"greater than or equal to {low}")
    problems += constraint_violations(dict(params), shape)
    return problems


def request_validation_error(problems: list[str]) -> InvocationError:
    count = len(problems)
    return InvocationError.validation(f"{count} validation error{'s' if count > 1 else ''} detected: "
                                      + "; ".join(problems[:10]))


@functools.cache
def _header_members() -> dict[str, str]:
    """InvokeEndpoint's header members → the (lower-case) HTTP header that carries each."""
    return {name: member.serialization["name"].lower() for name, member in _invoke_endpoint_shape().members.items()
            if member.serialization.get("location") == "header"}


@dataclass(frozen=True)
class Invocation:
    """An ``InvokeEndpoint`` request as the host received it: the endpoint, the body, the header members sent."""

    endpoint: str
    body: bytes
    params: Mapping[str, str]


def parse_invocation(endpoint: str, headers: Mapping[str, str], body: bytes) -> Invocation:
    """The request's members, checked as SageMaker Runtime checks them (raises ``ValidationError``)."""
    params = {name: headers[header] for name, header in _header_members().items() if header in headers}
    problems = request_problems({"EndpointName": endpoint, **params})
    if problems:
        raise request_validation_error(problems)
    return Invocation(endpoint, body, params)


def unsupported_member(endpoint: str, params: Mapping[str, str]) -> str | None:
    """Why a valid member cannot apply to a DeepAR endpoint (each is a ``ValidationError`` on AWS too)."""
    if "TargetModel" in params:
        return f"Endpoint {endpoint} is not a multi-model endpoint and does not support target model header."
    if "TargetContainerHostname" in params:
        return (f"Endpoint {endpoint} is not a multi-container endpoint with direct invocation and does not support "
                "the target container hostname header.")
    if "InferenceComponentName" in params:
        return f"Endpoint {endpoint} does not host inference components; omit the inference component header."
    if "SessionId" in params:
        return f"Endpoint {endpoint} does not support stateful sessions; omit the session id header."
    if "EnableExplanations" in params:
        return f"Endpoint {endpoint} has no explainer configuration; omit the enable explanations header."
    return None
