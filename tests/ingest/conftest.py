"""Fixtures of the ingestion tests: a real mosquitto + delivery stream on free ports
in a tmp data dir, started and stopped by the tests that use them."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aircast import local_wiring
from aircast.settings import Settings
from infra.local import stack
from infra.local.core.poll import PollTimeout
from infra.local.iot_core import pki
from tests.helpers import make_settings, wait_until

__all__ = ["INGEST_SERVICES", "IngestStack", "make_settings"]

INGEST_SERVICES = ("iot_core", "firehose")


class IngestStack:
    """The local IoT Core and delivery stream of one test data dir."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = settings.local_config()
        self.iot_core, self.firehose = local_wiring.stack_services(settings, INGEST_SERVICES)

    def up(self) -> IngestStack:
        stack.up(self.config, [self.iot_core, self.firehose])
        return self

    def down(self) -> None:
        stack.down(self.config, [self.iot_core, self.firehose])

    def pid(self, name: str) -> int | None:
        return stack.read_pid(self.config, name)

    def kill9(self, name: str) -> None:
        """``kill -9`` a service and wait until it is gone."""
        pid = self.pid(name)
        assert pid is not None, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        assert self.wait_dead(name, pid, 5), f"{name} survived SIGKILL"

    def wait_dead(self, name: str, pid: int, timeout: float) -> bool:
        """Wait until the service's process ``pid`` has exited (and reap it); False on timeout."""

        def gone() -> bool:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            return stack.read_pid(self.config, name) != pid

        try:
            return wait_until(gone, timeout, 0.02, f"{name} (pid {pid}) to exit")
        except PollTimeout:
            return False

    def stats(self) -> dict[str, Any]:
        """The delivery stream's counters file (refreshed as records arrive and on each flush)."""
        try:
            return json.loads((self.settings.run_dir / "firehose.stats.json").read_text())
        except (OSError, ValueError):
            return {}

    def start(self, name: str) -> None:
        stack.start_service(self.iot_core if name == "iot_core" else self.firehose, self.config)

    def stop(self, name: str) -> None:
        stack.stop_service(self.iot_core if name == "iot_core" else self.firehose, self.config)

    def thing(self, name: str) -> pki.ThingCredentials:
        return pki.register_thing(self.settings.pki_dir, name)

    def flush(self, timeout: float = 30.0) -> dict[str, Any]:
        return local_wiring.flush(self.settings, timeout)

    def objects(self, prefix: str) -> list[Path]:
        root = self.settings.s3_root / self.settings.lake_bucket / prefix
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []

    def records(self, prefix: str = "raw/telemetry") -> list[dict[str, Any]]:
        out = []
        for path in self.objects(prefix):
            out.extend(json.loads(line) for line in path.read_text().splitlines() if line)
        return out


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestStack]:
    """One broker + delivery stream for a module's fast tests (small buffer hints)."""
    s = make_settings(tmp_path_factory.mktemp("ingest"), firehose_buffer_mib=0.25, firehose_buffer_seconds=1.0)
    st = IngestStack(s).up()
    try:
        yield st
    finally:
        st.down()


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[IngestStack]:
    """A broker + delivery stream for one test that kills or restarts them."""
    s = make_settings(tmp_path / "data", firehose_buffer_mib=0.05, firehose_buffer_seconds=0.5)
    st = IngestStack(s).up()
    try:
        yield st
    finally:
        st.down()
