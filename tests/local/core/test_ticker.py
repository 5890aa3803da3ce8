"""The local services' timer thread: ticks at once and then every tick_s, survives a failing tick, stops."""

from __future__ import annotations

import logging
import time

import pytest

from infra.local.core.ticker import Ticker
from tests.helpers import wait_until


def test_ticks_go_on_after_one_fails_and_stop_stops_them(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[float] = []

    def tick() -> None:
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise RuntimeError("database is locked")

    ticker = Ticker("test-ticker", tick, tick_s=0.05, log=logging.getLogger("test-ticker"))
    with caplog.at_level(logging.ERROR, logger="test-ticker"):
        ticker.start()
        wait_until(lambda: len(calls) >= 4, timeout_s=10, what="four ticks")
        ticker.stop()
    stopped_at = len(calls)
    assert "test-ticker: tick failed" in caplog.text and "database is locked" in caplog.text
    time.sleep(0.2)
    assert len(calls) == stopped_at  # no tick after stop
    assert all(b - a >= 0.04 for a, b in zip(calls, calls[1:], strict=False))
