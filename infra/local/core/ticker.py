"""A timer thread of a local service process: calls a function every ``tick_s`` until stopped.

The event bus fires its scheduled rules with one, the Glue service its scheduled triggers. A tick
that raises (a locked database, a bad row) is logged and the timer goes on: one bad tick must never
stop a schedule.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class Ticker:
    """Runs ``tick`` now and then every ``tick_s`` seconds on a daemon thread, until :meth:`stop`."""

    def __init__(self, name: str, tick: Callable[[], object], tick_s: float = 1.0,
                 log: logging.Logger | None = None) -> None:
        self.name, self.tick_s = name, tick_s
        self._tick = tick
        self._log = log or logging.getLogger(f"infra.local.{name}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - one bad tick must not stop the schedule
                self._log.exception("%s: tick failed", self.name)
            self._stop.wait(self.tick_s)
