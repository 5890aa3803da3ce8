"""Lambda handlers for the event bus tests, registered on the local Lambda by their ``module.function`` name:
one records what it got, one fails, one puts an event that triggers its own rule again."""

from __future__ import annotations

import json
from typing import Any

RECEIVED: list[dict[str, Any]] = []
CONTEXTS: list[dict[str, Any]] = []


def entry(source: str = "aircast.test", detail_type: str = "Thing Happened", **detail: Any) -> dict[str, Any]:
    """A ``PutEvents`` entry."""
    return {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail)}


def recording_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A Lambda handler for the bus mechanics tests: records what it got."""
    RECEIVED.append(event)
    CONTEXTS.append({"aws_request_id": context.aws_request_id, "function_name": context.function_name,
                     "remaining_ms": context.get_remaining_time_in_millis(),
                     "invoked_function_arn": context.invoked_function_arn})
    return {"status": "recorded", "function": context.function_name}


def failing_handler(event: dict[str, Any], context: Any) -> None:
    raise RuntimeError("handler exploded on purpose")


def echo_handler(event: dict[str, Any], context: Any) -> None:
    from aircast.settings import load_settings
    from infra.local.eventbridge.client import LocalEventsClient

    LocalEventsClient(load_settings().local_config()).put_events(Entries=[entry(source="aircast.loop")])
