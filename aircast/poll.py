"""Waiting on AWS (or the local stand-ins) from aircast's side: poll a describe call until it says done.

The emulator has its own (``infra.local.core.poll``); aircast, deployment and pipelines keep theirs here,
because the code that runs on AWS must not import the emulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """What was awaited did not happen in time; the message says what and for how long."""


def poll_until(condition: Callable[[], T | None], timeout_s: float, interval_s: float, what: str) -> T:
    """Call ``condition`` every ``interval_s`` seconds until it returns something other than None; return it.

    It is called at least once, and once more at the deadline. Raises :class:`WaitTimeout` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while (value := condition()) is None:
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not within {timeout_s:g} s")
        time.sleep(max(0.0, min(interval_s, deadline - time.monotonic())))
    return value
