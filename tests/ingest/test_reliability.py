"""No loss when the delivery process is killed (-9) or the broker restarts mid-stream."""

from __future__ import annotations

import collections
import datetime as dt
import threading
import time

import pytest

from device.publisher import DeviceCredentials, PublishReport, publish_fleet
from device.readings import Reading, simulate
from tests.ingest.conftest import IngestStack

pytestmark = pytest.mark.slow


def _stream_in_background(st: IngestStack, readings: list[Reading], speed: float) -> tuple[threading.Thread, list]:
    out: list[PublishReport | BaseException] = []

    def creds(thing: str) -> DeviceCredentials:
        c = st.thing(thing)
        return DeviceCredentials(c.cert_path, c.key_path, c.ca_path)

    def work() -> None:
        try:
            out.append(publish_fleet(readings, creds, st.settings.mqtt_host, st.settings.mqtt_port,
                                     max_in_flight=50, speed=speed, ack_timeout_s=60))
        except BaseException as exc:  # surfaced by the test
            out.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, out


def _expected(readings: list[Reading]) -> set[tuple[str, int]]:
    counters: collections.Counter[str] = collections.Counter()
    keys = set()
    for r in readings:
        counters[r.thing_name] += 1
        keys.add((r.thing_name, counters[r.thing_name]))
    return keys


def _wait_for_records(st: IngestStack, at_least: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n = len(st.records())
        if n >= at_least:
            return n
        time.sleep(0.05)
    return n


def test_kill_9_of_the_delivery_stream_mid_stream_loses_nothing(own_stack: IngestStack) -> None:
    st = own_stack
    readings = list(simulate(2, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), 1500, prefix="crash", seed=2))
    # 1500 hours at 750 000x: about 7 s of publishing
    thread, out = _stream_in_background(st, readings, speed=3600 * 200)
    assert _wait_for_records(st, 200) >= 200  # objects are being written: we are mid-stream
    st.kill9_firehose()
    killed_at = len(st.records())
    time.sleep(0.5)  # messages keep arriving at the broker while the stream is dead
    st.start("firehose")
    thread.join(60)
    assert out and isinstance(out[0], PublishReport), out
    report = out[0]
    assert report.failed == 0 and report.acknowledged == len(readings)
    assert killed_at < len(readings)
    st.flush()
    delivered = collections.Counter((r["thing_name"], r["seq"]) for r in st.records())
    assert set(delivered) == _expected(readings)  # nothing lost
    duplicates = sum(n - 1 for n in delivered.values())
    print(f"kill -9: {len(readings)} published, {len(delivered)} delivered, {duplicates} duplicate(s)")


def test_broker_restart_mid_stream_device_reconnects_and_nothing_acknowledged_is_lost(own_stack: IngestStack) -> None:
    st = own_stack
    readings = list(simulate(2, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), 1500, prefix="restart", seed=4))
    thread, out = _stream_in_background(st, readings, speed=3600 * 200)
    assert _wait_for_records(st, 200) >= 200
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
    assert set(delivered) == _expected(readings)
    # in order: each reading first reached the lake no earlier than the one before it
    first_seen: dict[tuple[str, int], int] = {}
    for r in st.records():
        key = (r["thing_name"], r["seq"])
        first_seen[key] = min(first_seen.get(key, r["received_at"]), r["received_at"])
    for thing in {t for t, _ in first_seen}:
        times = [first_seen[(thing, s)] for s in range(1, 1 + sum(1 for t, _ in first_seen if t == thing))]
        assert times == sorted(times), f"{thing} readings reached the lake out of order"
