"""The device never reuses a ``seq``, however a run ends: the ETL would drop the new
reading as a duplicate of the old one with the same ``(thing_name, seq)``."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aircast.settings import settings_env
from device.publisher import DEFAULT_MAX_IN_FLIGHT, SEQ_RESERVE, SeqStore, seq_state_dir
from infra.local.core.poll import PollTimeout
from tests.helpers import wait_until
from tests.ingest.conftest import IngestStack

THING = "seq-sensor"


def _device(st: IngestStack, start: str, hours: int, speed: float) -> subprocess.Popen[bytes]:
    """``iot-device`` as its own process, the way a user runs it."""
    cmd = [sys.executable, "-m", "device.publisher", "--data-dir", str(st.settings.data_dir), "--simulate", "1",
           "--thing", THING, "--start", start, "--hours", str(hours), "--speed", str(speed), "--json"]
    return subprocess.Popen(cmd, env={**os.environ, **settings_env(st.settings)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_a_run_that_ends_early_leaves_no_seq_for_the_next_run_to_reuse(own_stack: IngestStack,
                                                                       stop: signal.Signals) -> None:
    st = own_stack
    st.thing(THING)
    # 5000 hours at 100 hours per second: still publishing when it is stopped
    first = _device(st, "2024-01-01T00:00:00Z", 5000, 3600 * 100)
    with contextlib.suppress(PollTimeout):  # a device that exited early is reported just below
        wait_until(lambda: st.stats().get("received", 0) >= 50 or first.poll() is not None, 30)
    assert first.poll() is None, first.communicate()
    first.send_signal(stop)
    first_out, first_err = first.communicate(timeout=30)
    assert first.returncode == (130 if stop == signal.SIGINT else -signal.SIGKILL), first_err.decode()[-2000:]
    if stop == signal.SIGINT:  # a clean stop: the report of what went out, then the exit code of Ctrl-C
        first_report = json.loads(first_out)
        assert first_report["stopped"] and first_report["published"] > 0, first_report
    saved = int((seq_state_dir(st.settings) / f"{THING}.seq").read_text())
    second = _device(st, "2025-01-01T00:00:00Z", 24, 0)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err.decode()
    st.flush()
    timestamps: dict[int, set[str]] = collections.defaultdict(set)
    for r in st.records():
        if r["thing_name"] == THING:
            timestamps[r["seq"]].add(r["timestamp"])
    reused = sorted(seq for seq, ts in timestamps.items() if len(ts) > 1)
    assert not reused, f"seq reused by the second run: {reused[:10]}"
    second_run = sorted(seq for seq, ts in timestamps.items() if min(ts) >= "2025")
    assert len(second_run) == json.loads(out)["published"] > 0
    first_run = [seq for seq in timestamps if seq not in second_run]
    assert second_run[0] == saved + 1  # the next run starts right above what the first one saved
    # Ctrl-C sends nothing more, waits for what is in flight and saves the exact last seq used: the lake
    # lacks below it at most what was never acknowledged (counted failed); kill -9 loses what was in
    # flight and skips at most the unused part of a reservation besides
    gap = second_run[0] - max(first_run) - 1
    if stop == signal.SIGINT:
        assert 0 <= gap <= first_report["failed"], (gap, first_report)
        assert first_report["acknowledged"] <= len(first_run) <= first_report["published"]
    else:
        assert 0 <= gap < SEQ_RESERVE + DEFAULT_MAX_IN_FLIGHT


def test_the_reservation_is_on_disk_before_a_seq_is_used(tmp_path: Path) -> None:
    store = SeqStore(tmp_path, reserve=10)
    assert store.next_seq("t") == 1
    store.claim("t", 1)
    assert int(store.path("t").read_text()) == 10  # a crash now resumes at 11, above every used seq
    for seq in range(2, 12):
        store.claim("t", seq)
    assert int(store.path("t").read_text()) == 20
    store.close()
    assert int(store.path("t").read_text()) == 11  # a clean end gives the unused numbers back
    assert SeqStore(tmp_path).next_seq("t") == 12
