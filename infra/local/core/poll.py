"""One way to wait for a condition: poll it until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class PollTimeout(TimeoutError):
    """The condition did not hold in time; the message says what was awaited and for how long."""


def poll_until(condition: Callable[[], T], timeout_s: float, interval_s: float = 0.1, what: str = "condition") -> T:
    """Call ``condition`` every ``interval_s`` seconds until it returns a truthy value, and return that value.

    The condition is always called at least once, and once more at the deadline (a wait that ends just
    as the thing happens still sees it). An exception the condition raises ends the wait at once (it
    is how a condition says "this will never hold", e.g. the process died). Raises :class:`PollTimeout`
    naming ``what`` after ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise PollTimeout(f"{what}: not within {timeout_s:g} s")
        time.sleep(min(interval_s, left))
