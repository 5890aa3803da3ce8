"""Local stand-in for the IoT rule's Firehose action and Kinesis Data Firehose.

:mod:`.delivery` is the process (``python -m infra.local.firehose.delivery``);
:func:`flush` asks it to write what it holds and waits until it has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.local.firehose.config import DeliveryConfig


class FlushTimeout(TimeoutError):
    """The delivery stream did not answer a flush in time (probably not running)."""


def flush(config: DeliveryConfig, timeout: float = 30.0) -> dict[str, Any]:
    """Make the delivery stream write every record the broker accepted so far; return its counters.

    Imported lazily so ``python -m infra.local.firehose.delivery`` does not import itself twice.
    """
    from infra.local.firehose.control import flush as _flush

    return _flush(config, timeout)


__all__ = ["FlushTimeout", "flush"]
