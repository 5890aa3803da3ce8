"""No loss when the delivery process is killed (-9) between its durable write and its
acknowledgement, or the broker restarts mid-stream; a broker ``kill -9`` loses at most
what it acknowledged since its last save and had not yet passed to the delivery stream."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from device.publisher import DeviceCredentials, PublishReport, publish_fleet, seq_keys
from device.readings import Reading, simulate
from infra.local.core.poll import PollTimeout
from infra.local.firehose.delivery import FAULT_ENV, parse_fault
from infra.local.stack import StackError
from tests.helpers import make_settings, wait_until
from tests.ingest.conftest import IngestStack

pytestmark = pytest.mark.slow


def _creds(st: IngestStack) -> Callable[[str], DeviceCredentials]:
    def creds(thing: str) -> DeviceCredentials:
        c = st.thing(thing)
        return DeviceCredentials(c.cert_path, c.key_path, c.ca_path)

    return creds


def _stream_in_background(st: IngestStack, readings: list[Reading], speed: float) -> tuple[threading.Thread, list]:
    out: list[PublishReport | BaseException] = []
    creds = _creds(st)

    def work() -> None:
        try:
            out.append(publish_fleet(readings, creds, st.settings.mqtt_host, st.settings.mqtt_port,
                                     max_in_flight=50, speed=speed, ack_timeout_s=60))
        except BaseException as exc:  # surfaced by the test
            out.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, out


def _fault_kills(st: IngestStack) -> list[list[str]]:
    """Object keys the delivery stream wrote right before each fault-injected SIGKILL (from its log)."""
    log = (st.settings.run_dir / "firehose.log").read_text()
    kills = []
    for line in log.splitlines():
        if f"fault injection {FAULT_ENV}: killed after writing" in line:
            kills.append(re.findall(r"(raw/\S+) \(\d+ records\)", line))
    return kills


def _keys_of(st: IngestStack, key: str) -> list[tuple[str, int]]:
    path = st.settings.s3_root / st.settings.lake_bucket / key
    return [(r["thing_name"], r["seq"]) for r in map(json.loads, path.read_text().splitlines())
            if "seq" in r]


def test_the_fault_hook_setting_is_read_strictly() -> None:
    assert parse_fault(None) is None and parse_fault("") is None
    assert parse_fault("kill-before-ack") == 1 and parse_fault("kill-before-ack:3") == 3
    for bad in ("kill", "kill-before-ack:0", "kill-before-ack:x", "kill-before-ack:"):
        with pytest.raises(ValueError, match=FAULT_ENV):
            parse_fault(bad)


def test_kill_9_between_durable_write_and_ack_redelivers_and_loses_nothing(own_stack: IngestStack,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    st = own_stack
    rounds = 4
    st.stop("firehose")
    # each run of the stream dies on its first object write, after the fsync and before the PUBACKs
    monkeypatch.setenv(FAULT_ENV, "kill-before-ack")
    readings = list(simulate(2, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), 1500, prefix="crash", seed=2))
    thread, out = _stream_in_background(st, readings, speed=3600 * 200)
    for i in range(rounds):
        try:
            st.start("firehose")
        except StackError as exc:  # the redelivered backlog made it write (and die) before it reported ready
            assert "exited with code -9" in str(exc)
        wait_until(lambda n=i + 1: len(_fault_kills(st)) >= n and st.pid("firehose") is None, 30,
                   what="the fault hook to kill the stream")
    monkeypatch.delenv(FAULT_ENV)
    st.start("firehose")
    thread.join(60)
    assert out and isinstance(out[0], PublishReport), out
    report = out[0]
    assert report.failed == 0 and report.acknowledged == len(readings)
    st.flush()
    delivered = collections.Counter((r["thing_name"], r["seq"]) for r in st.records())
    kills = _fault_kills(st)
    assert len(kills) == rounds
    # every record of an object written but not acknowledged was in flight: the broker redelivered it
    in_flight = [key for keys in kills for obj in keys for key in _keys_of(st, obj)]
    redelivered = sum(delivered[key] >= 2 for key in in_flight)
    lost = len(seq_keys(readings) - set(delivered))
    print(f"kill -9 before ack x{rounds}: {len(readings)} published, {len(in_flight)} in flight at the kills, "
          f"{redelivered} redelivered, {lost} lost, {sum(n - 1 for n in delivered.values())} duplicate(s)")
    assert in_flight and redelivered == len(in_flight)
    assert lost == 0 and set(delivered) == seq_keys(readings)


def test_kill_9_of_the_broker_loses_nothing_the_delivery_stream_had_received(tmp_path: Path) -> None:
    # large buffer hints: the stream holds the records, unacknowledged; no autosave before the kill
    st = IngestStack(make_settings(tmp_path / "data", firehose_buffer_seconds=300.0, mqtt_autosave_seconds=3600))
    st.up()
    try:
        readings = list(simulate(2, dt.datetime(2024, 2, 1, tzinfo=dt.UTC), 100, prefix="held", seed=5))
        thread, out = _stream_in_background(st, readings, speed=0)
        thread.join(30)
        assert out and isinstance(out[0], PublishReport) and out[0].acknowledged == len(readings), out
        with contextlib.suppress(PollTimeout):  # checked below: nothing is in the lake yet either way
            wait_until(lambda: st.stats().get("received", 0) >= len(readings), 5)
        assert not st.records()  # nothing written yet: it is all in the stream's buffer
        st.kill9("iot_core")
        st.start("iot_core")  # restores the last save: none since the start, so not these messages
        st.flush()
        delivered = collections.Counter((r["thing_name"], r["seq"]) for r in st.records())
        assert set(delivered) == seq_keys(readings), f"{len(seq_keys(readings) - set(delivered))} lost"
    finally:
        st.down()


def test_kill_9_of_the_broker_loses_at_most_what_it_acknowledged_since_its_last_save(tmp_path: Path) -> None:
    st = IngestStack(make_settings(tmp_path / "data", firehose_buffer_seconds=0.5, mqtt_autosave_seconds=1))
    st.up()
    try:
        st.stop("firehose")  # clean stop: the broker queues for the stream's session meanwhile
        start = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
        readings = list(simulate(2, start, 200, prefix="saved", seed=6))
        saved = [r for r in readings if r.timestamp < start + dt.timedelta(hours=100)]
        unsaved = readings[len(saved):]
        saved_per_thing = collections.Counter(r.thing_name for r in saved)
        creds = _creds(st)
        first = publish_fleet(saved, creds, st.settings.mqtt_host, st.settings.mqtt_port)
        assert first.acknowledged == len(saved)
        db = st.settings.data_dir / "iot_core" / "persistence" / "mosquitto.db"
        acknowledged_at = time.time_ns()
        wait_until(lambda: db.is_file() and db.stat().st_mtime_ns > acknowledged_at, 10, what="the broker's autosave")
        second = publish_fleet(unsaved, creds, st.settings.mqtt_host, st.settings.mqtt_port,
                               first_seq=lambda thing: saved_per_thing[thing] + 1)
        assert second.acknowledged == len(unsaved)
        st.kill9("iot_core")
        st.start("iot_core")
        st.start("firehose")
        st.flush()
        delivered = {(r["thing_name"], r["seq"]) for r in st.records()}
        expected = seq_keys(readings)
        lost = expected - delivered
        print(f"broker kill -9: {len(saved)} acknowledged before its last save, {len(unsaved)} after; "
              f"lost {len(lost)}, all from after the save")
        assert seq_keys(saved) <= delivered  # everything acknowledged before the last save survives
        assert lost <= expected - seq_keys(saved)
    finally:
        st.down()


def test_broker_restart_mid_stream_device_reconnects_and_nothing_acknowledged_is_lost(own_stack: IngestStack) -> None:
    st = own_stack
    readings = list(simulate(2, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), 1500, prefix="restart", seed=4))
    thread, out = _stream_in_background(st, readings, speed=3600 * 200)
    assert wait_until(lambda: len(st.records()) >= 200, 20, what="200 records in the lake")
    st.stop("iot_core")  # SIGTERM: mosquitto saves its persistent sessions
    time.sleep(0.5)
    st.start("iot_core")
    thread.join(90)
    assert out and isinstance(out[0], PublishReport), out
    report = out[0]
    assert report.interruptions >= 2  # both things saw the broker go away, and came back
    assert report.failed == 0 and report.acknowledged == report.published == len(readings)
    st.flush(timeout=30)
    delivered = collections.Counter((r["thing_name"], r["seq"]) for r in st.records())
    assert set(delivered) == seq_keys(readings)
    # in order: each reading first reached the lake no earlier than the one before it
    first_seen: dict[tuple[str, int], int] = {}
    for r in st.records():
        key = (r["thing_name"], r["seq"])
        first_seen[key] = min(first_seen.get(key, r["received_at"]), r["received_at"])
    for thing in {t for t, _ in first_seen}:
        times = [first_seen[(thing, s)] for s in range(1, 1 + sum(1 for t, _ in first_seen if t == thing))]
        assert times == sorted(times), f"{thing} readings reached the lake out of order"
