"""Device payloads and reading sources (replay of the Beijing CSV, simulated sensors)."""

from __future__ import annotations

import datetime as dt
import json
import statistics
from pathlib import Path

from device.publisher import make_payload
from device.readings import Reading, iso_timestamp, replay_beijing, simulate
from tests.conftest import BEIJING_CSV


def test_payload_has_device_id_seq_measurements_and_a_js_timestamp() -> None:
    r = Reading("t1", dt.datetime(2021, 2, 5, 13, tzinfo=dt.UTC), {"pm2_5": 12.5, "temperature": -3})
    body = json.loads(make_payload("t1", 7, r))
    assert list(body) == ["device_id", "seq", "pm2_5", "temperature", "timestamp"]
    assert body == {"device_id": "t1", "seq": 7, "pm2_5": 12.5, "temperature": -3,
                    "timestamp": "2021-02-05T13:00:00.000Z"}


def test_iso_timestamp_is_utc_with_milliseconds() -> None:
    t = dt.datetime(2024, 1, 1, 8, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert iso_timestamp(t) == "2024-01-01T00:00:00.123Z"


def test_replay_converts_beijing_time_to_utc_and_omits_na_fields() -> None:
    rows = list(replay_beijing(BEIJING_CSV, "bj", hours=30))
    assert len(rows) == 30
    first = rows[0]
    assert first.timestamp == dt.datetime(2009, 12, 31, 16, tzinfo=dt.UTC)  # 2010-01-01 00:00 UTC+8
    assert "pm2_5" not in first.measurements  # NA in the CSV
    assert first.measurements["temperature"] == -11 and first.measurements["wind_direction"] == "NW"
    assert any("pm2_5" in r.measurements for r in rows)
    gaps = {(b.timestamp - a.timestamp) for a, b in zip(rows, rows[1:], strict=False)}
    assert gaps == {dt.timedelta(hours=1)}


def test_replay_start_and_shift_to() -> None:
    start = dt.datetime(2012, 6, 1, tzinfo=dt.UTC)
    target = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    rows = list(replay_beijing(BEIJING_CSV, "bj", start=start, hours=5, shift_to=target))
    assert [r.timestamp for r in rows] == [target + dt.timedelta(hours=h) for h in range(5)]


def test_replay_refuses_a_file_that_is_not_the_beijing_csv(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    try:
        list(replay_beijing(bad, "t"))
    except ValueError as exc:
        assert "missing column" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_simulation_is_realistic_and_deterministic() -> None:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # a Monday
    hours = 24 * 28
    readings = list(simulate(4, start, hours, seed=3))
    assert readings == list(simulate(4, start, hours, seed=3))
    by_thing: dict[str, list[Reading]] = {}
    for r in readings:
        by_thing.setdefault(r.thing_name, []).append(r)
    assert sorted(by_thing) == ["sim-sensor-001", "sim-sensor-002", "sim-sensor-003", "sim-sensor-004"]
    for rs in by_thing.values():
        assert 0.8 * hours < len(rs) < hours  # some missing hours, most present
    # per-sensor levels differ
    medians = [statistics.median(r.measurements["pm2_5"] for r in rs) for rs in by_thing.values()]
    assert max(medians) / min(medians) > 1.1
    pm = [(r.timestamp, r.measurements["pm2_5"]) for r in readings]
    evening = statistics.mean(v for t, v in pm if t.hour == 20)
    afternoon = statistics.mean(v for t, v in pm if t.hour == 15)
    weekday = statistics.mean(v for t, v in pm if t.weekday() < 5)
    sunday = statistics.mean(v for t, v in pm if t.weekday() == 6)
    assert evening > 1.2 * afternoon  # daily cycle
    assert weekday > sunday  # weekly cycle
    values = [v for _, v in pm]
    assert max(values) > 3 * statistics.median(values)  # spikes
    assert all(v > 0 for v in values)
