"""The IoT rule and Firehose's object layout, as pure functions.

Rule (DESIGN.md): ``SELECT *, topic(2) AS thing_name, timestamp() AS received_at
FROM 'sensors/+/telemetry'`` with a Firehose action, separator ``\\n``. A payload
the rule cannot handle becomes an error record (reason + base64 raw bytes).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from dataclasses import dataclass

#: AWS IoT Core's message size limit
MAX_PAYLOAD_BYTES = 128 * 1024
TELEMETRY_PREFIX = "raw/telemetry/"
ERRORS_PREFIX = "raw/errors/"


@dataclass(frozen=True)
class RuleResult:
    """One message after the rule: either a record line or an error reason."""

    line: bytes | None
    reason: str | None = None


def thing_from_topic(topic: str) -> str | None:
    """``topic(2)`` of ``sensors/<thing>/telemetry``, or None for any other topic."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == "sensors" and parts[2] == "telemetry" and parts[1]:
        return parts[1]
    return None


def _reject_constant(name: str) -> float:
    # NaN / Infinity are not JSON (AWS IoT's parser rejects them too)
    raise ValueError(f"{name} is not valid JSON")


# One decoder/encoder for the process: json.loads/dumps with options build new ones per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def apply_rule(topic: str, payload: bytes, received_at_ms: int) -> RuleResult:
    """Apply the IoT rule to one MQTT message.

    Returns the newline-terminated JSON record (payload fields unchanged, plus
    ``thing_name`` and ``received_at``) or a reason code with detail.
    """
    thing = thing_from_topic(topic)
    if thing is None:
        return RuleResult(None, f"unexpected_topic: {topic!r} is not sensors/<thing>/telemetry")
    if len(payload) > MAX_PAYLOAD_BYTES:
        return RuleResult(None, f"payload_too_large: {len(payload)} bytes > {MAX_PAYLOAD_BYTES} (IoT Core limit)")
    try:
        record = _DECODER.decode(payload.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return RuleResult(None, f"invalid_json: {exc}")
    if not isinstance(record, dict):
        return RuleResult(None, f"not_an_object: payload is a JSON {type(record).__name__}, not an object")
    record["thing_name"] = thing
    record["received_at"] = received_at_ms
    line = _ENCODER.encode(record)
    return RuleResult(line.encode("utf-8") + b"\n")


def error_line(topic: str, payload: bytes, reason: str, received_at_ms: int) -> bytes:
    """An error record (JSON line) for a payload the rule could not deliver."""
    thing = thing_from_topic(topic)
    code = reason.split(":", 1)[0]
    return (json.dumps({
        "reason": code,
        "detail": reason,
        "topic": topic,
        "thing_name": thing,
        "received_at": received_at_ms,
        "size": len(payload),
        "raw_base64": base64.b64encode(payload).decode("ascii"),
    }, separators=(",", ":")) + "\n").encode("utf-8")


def object_key(prefix: str, stream: str, arrival: dt.datetime, object_id: str | None = None) -> str:
    """Firehose's S3 key: ``<prefix>YYYY/MM/DD/HH/<stream>-1-YYYY-MM-DD-HH-MM-SS-<uuid>`` (UTC)."""
    t = arrival.astimezone(dt.UTC)
    return (f"{prefix}{t:%Y/%m/%d/%H}/{stream}-1-{t:%Y-%m-%d-%H-%M-%S}-{object_id or uuid.uuid4()}")
