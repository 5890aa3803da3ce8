"""Time as the AWS services write it: aware UTC datetimes, epoch seconds and milliseconds, and the
ISO 8601 forms the services answer in."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

#: EventBridge's event ``time`` and other whole-second UTC stamps: ``2024-05-01T03:00:00Z``
ISO_SECONDS_Z = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> dt.datetime:
    """Now, as an aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


def now_ms() -> int:
    """Now, in epoch milliseconds (CloudWatch Logs' and IoT's ``timestamp()`` unit)."""
    return time.time_ns() // 1_000_000


def aware(moment: dt.datetime) -> dt.datetime:
    """``moment`` with a time zone; a naive datetime is taken as UTC (as botocore takes it)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def from_epoch(seconds: float) -> dt.datetime:
    """Epoch seconds → aware UTC datetime."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def from_epoch_ms(ms: int | float) -> dt.datetime:
    """Epoch milliseconds → aware UTC datetime."""
    return from_epoch(ms / 1000.0)


def parse_iso(text: str) -> dt.datetime:
    """An ISO 8601 timestamp (``Z`` or an offset; none means UTC) → aware datetime; ValueError if it is none."""
    return aware(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


def to_epoch(value: Any) -> float:
    """Epoch seconds of a datetime (naive = UTC), a number (already epoch seconds) or an ISO 8601 string;
    ``None`` is now. Raises ValueError or TypeError for anything else."""
    if value is None:
        return time.time()
    if isinstance(value, dt.datetime):
        return aware(value).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return parse_iso(str(value)).timestamp()


def iso_seconds_z(moment: float | dt.datetime) -> str:
    """Whole-second UTC ISO 8601 with ``Z`` (``2024-05-01T03:00:00Z``) of epoch seconds or a datetime."""
    when = from_epoch(moment) if isinstance(moment, (int, float)) else aware(moment).astimezone(dt.UTC)
    return when.strftime(ISO_SECONDS_Z)
