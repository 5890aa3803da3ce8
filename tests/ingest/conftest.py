"""Fixtures of the ingestion tests: a real mosquitto + delivery stream on free ports
in a tmp data dir, started and stopped by the tests that use them."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aircast.settings import Settings, load_settings
from infra.local import stack
from infra.local.firehose import flush
from infra.local.iot_core import pki
from tests.conftest import free_port

INGEST_SERVICES = ("infra.local.iot_core.service", "infra.local.firehose.service")


class IngestStack:
    """The local IoT Core and delivery stream of one test data dir."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.iot_core, self.firehose = stack.load_services(INGEST_SERVICES)

    def up(self) -> IngestStack:
        stack.up(self.settings, INGEST_SERVICES)
        return self

    def down(self) -> None:
        stack.down(self.settings, INGEST_SERVICES)

    def pid(self, name: str) -> int | None:
        return stack.read_pid(self.settings, name)

    def kill9(self, name: str) -> None:
        """``kill -9`` a service and wait until it is gone."""
        pid = self.pid(name)
        assert pid is not None, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        assert self.wait_dead(name, pid, 5), f"{name} survived SIGKILL"

    def wait_dead(self, name: str, pid: int, timeout: float) -> bool:
        """Wait until the service's process ``pid`` has exited (and reap it); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if stack.read_pid(self.settings, name) != pid:
                return True
            time.sleep(0.02)
        return False

    def stats(self) -> dict[str, Any]:
        """The delivery stream's counters file (refreshed as records arrive and on each flush)."""
        try:
            return json.loads((self.settings.run_dir / "firehose.stats.json").read_text())
        except (OSError, ValueError):
            return {}

    def start(self, name: str) -> None:
        stack.start_service(self.iot_core if name == "iot_core" else self.firehose, self.settings)

    def stop(self, name: str) -> None:
        stack.stop_service(self.iot_core if name == "iot_core" else self.firehose, self.settings)

    def thing(self, name: str) -> pki.ThingCredentials:
        return pki.register_thing(self.settings.pki_dir, name)

    def flush(self, timeout: float = 30.0) -> dict[str, Any]:
        return flush(self.settings, timeout)

    def objects(self, prefix: str) -> list[Path]:
        root = self.settings.s3_root / self.settings.lake_bucket / prefix
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []

    def records(self, prefix: str = "raw/telemetry") -> list[dict[str, Any]]:
        out = []
        for path in self.objects(prefix):
            out.extend(json.loads(line) for line in path.read_text().splitlines() if line)
        return out


def make_settings(root: Path, **overrides: Any) -> Settings:
    return load_settings(data_dir=root, mqtt_port=free_port(), endpoint_port=free_port(),
                         eventbus_port=free_port(), **overrides)


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
