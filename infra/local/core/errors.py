"""AWS-shaped errors of the local stand-ins.

A stand-in raises :class:`ServiceError` with the AWS service's own error code, HTTP
status and message wording. Through a client from :func:`infra.local.core.local_client`
it reaches the caller as that service's modeled exception class (what
``client.exceptions.ResourceNotFound`` catches) or, for codes the service model does not
declare (SageMaker's ``ValidationException``), as a plain ``ClientError`` with that code —
exactly as boto3 raises them. Code that calls a stand-in's backend directly still
catches it as ``ClientError``.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class ServiceError(ClientError):
    """An error response of an AWS service: code, message, HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400, operation: str = "",
                 extra: dict[str, Any] | None = None) -> None:
        self.code, self.message, self.status = code, message, status
        self.extra = dict(extra or {})
        super().__init__(self.error_response(), operation or "local")

    def error_response(self) -> dict[str, Any]:
        """The parsed error response botocore builds from the wire (``Error`` + ``ResponseMetadata``)."""
        return {"Error": {"Code": self.code, "Message": self.message, **self.extra},
                "ResponseMetadata": {"HTTPStatusCode": self.status, "HTTPHeaders": {}, "RetryAttempts": 0}}

    @classmethod
    def validation(cls, message: str, operation: str = "") -> ServiceError:
        """``ValidationException`` (400), the JSON-protocol services' error for a bad request value."""
        return cls("ValidationException", message, 400, operation)

    @classmethod
    def not_found(cls, code: str, message: str, operation: str = "", status: int = 400) -> ServiceError:
        """A missing resource under the service's own code (``ResourceNotFoundException``,
        ``ResourceNotFound``, ``EntityNotFoundException``...); 400 unless the service says otherwise."""
        return cls(code, message, status, operation)

