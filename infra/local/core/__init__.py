"""What every local AWS stand-in shares: its configuration (:class:`LocalConfig`), AWS-shaped errors
(:class:`ServiceError`), real botocore clients answered in-process (request validation and modeled
exceptions from botocore's own service models), ARN builders (:mod:`.arns`), time helpers
(:mod:`.clock`) and one way to wait (:func:`poll_until`).

The botocore part is imported on first use, so a process that needs only the configuration
(the delivery stream) does not load boto3.
"""

from __future__ import annotations

from typing import Any

from infra.local.core.config import LocalConfig
from infra.local.core.errors import ServiceError
from infra.local.core.poll import PollTimeout, poll_until

__all__ = ["LocalConfig", "PollTimeout", "ServiceError", "local_client", "poll_until", "response_metadata"]


def __getattr__(name: str) -> Any:
    if name in ("local_client", "response_metadata"):
        from infra.local.core import botoclient

        return getattr(botoclient, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
