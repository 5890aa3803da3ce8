"""Bookmarks on real Spark: incremental runs, late data, redelivery after a delivery crash,
and reruns that change nothing (a job crash before the bookmark commit: test_crash.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from aircast.cli import main
from aircast.clients import get_client
from aircast.commands.lake import run_query
from aircast.glue import run_etl_job
from aircast.settings import Settings
from tests.lake.raw import T0, aircast, seed, write_object

UTC = dt.UTC
M = dt.timedelta(minutes=1)
KEYS = ("objects_new", "read", "written", "duplicate", "quarantined")


def hourly(settings: Settings) -> dict[tuple[str, str, str], tuple[float, int, float, float]]:
    _, data = run_query(settings, "SELECT thing_name, pollutant, hour, mean, count, min, max FROM hourly")
    return {(r[0], r[1], r[2].astimezone(UTC).strftime("%Y-%m-%d %H")): (r[3], r[4], r[5], r[6]) for r in data}


def readings_keys(settings: Settings) -> list[tuple[str, int | None]]:
    _, data = run_query(settings, "SELECT thing_name, seq FROM readings ORDER BY thing_name, seq")
    return [tuple(r) for r in data]


def curated_files(settings: Settings) -> dict[str, tuple[int, int]]:
    root = settings.s3_root / settings.lake_bucket / "curated"
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*.parquet")}


@pytest.mark.slow
def test_incremental_late_and_redelivered_runs(tmp_path: Path, spark: Any,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    seed_1 = seed(T0, 10, 20, 1, 4, 5)
    air_1 = aircast(1, "2021-02-05T13:30:00Z", 10, 20, T0 + 30 * M)

    # Run 1: the first object.
    write_object(settings, [seed_1, air_1], T0 + 50 * M)
    first = run_etl_job(settings)
    assert [first[k] for k in KEYS] == [1, 2, 2, 0, 0]
    hour_13 = {k: v for k, v in hourly(settings).items() if k[2] == "2021-02-05 13"}
    assert hour_13[("aircast-001", "pm2_5", "2021-02-05 13")] == (10.0, 1, 10.0, 10.0)

    # Run 2: only the new object is read; old hours keep their aggregates.
    write_object(settings, [aircast(5, "2021-02-05T15:10:00Z", 50, 60, T0 + 130 * M)], T0 + 140 * M)
    second = run_etl_job(settings)
    assert [second[k] for k in KEYS] == [1, 1, 1, 0, 0]
    after_2 = hourly(settings)
    assert {k: v for k, v in after_2.items() if k[2] == "2021-02-05 13"} == hour_13
    assert after_2[("aircast-001", "pm2_5", "2021-02-05 15")] == (50.0, 1, 50.0, 50.0)

    # Run 3: a late object (readings for 13:00 and for the day before) and a delivery that
    # crashed and was retried: it repeats the first object's records and adds one new one.
    write_object(settings, [aircast(3, "2021-02-05T13:50:00Z", 30, 40, T0 + 51 * M),
                            aircast(0, "2021-02-04T23:30:00Z", 7, 8, T0 - 90 * M)], T0 + 185 * M)
    write_object(settings, [seed_1, air_1, aircast(6, "2021-02-05T15:40:00Z", 70, 80, T0 + 160 * M)],
                 T0 + 186 * M)
    third = run_etl_job(settings)
    assert [third[k] for k in KEYS] == [2, 5, 3, 2, 0]
    assert third["days"] == ["2021-02-04", "2021-02-05"]
    after_3 = hourly(settings)
    assert after_3[("aircast-001", "pm2_5", "2021-02-05 13")] == (20.0, 2, 10.0, 30.0)
    assert after_3[("aircast-001", "pm10", "2021-02-05 13")] == (30.0, 2, 20.0, 40.0)
    assert after_3[("aircast-001", "pm2_5", "2021-02-05 15")] == (60.0, 2, 50.0, 70.0)
    assert after_3[("aircast-001", "pm2_5", "2021-02-04 23")] == (7.0, 1, 7.0, 7.0)
    assert after_3[("seed-device", "ozone", "2021-02-05 13")] == (10.0, 1, 10.0, 10.0)  # not doubled
    assert len(after_3) == 5 + 3 * 2  # seed: 5 pollutants; aircast: 3 hours × (pm2_5, pm10)
    assert readings_keys(settings) == [("aircast-001", s) for s in (0, 1, 3, 5, 6)] + [("seed-device", None)]

    # Run 4 (through the CLI): nothing new, nothing written, nothing rewritten.
    files = curated_files(settings)
    assert main(["--data-dir", str(settings.data_dir), "lake", "etl", "--json"]) == 0
    fourth = json.loads(capsys.readouterr().out)
    assert [fourth[k] for k in KEYS] == [0, 0, 0, 0, 0]
    assert curated_files(settings) == files

    assert main(["--data-dir", str(settings.data_dir), "lake", "runs", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["JobRunState"] for r in runs] == ["SUCCEEDED"] * 4
    assert [r["Counts"]["written"] for r in runs] == [0, 3, 1, 2]  # newest first, from the job's own summaries
    parts = get_client("glue", settings).get_partitions(DatabaseName="aircast", TableName="hourly")["Partitions"]
    assert [p["Values"] for p in parts] == [["2021-02-04"], ["2021-02-05"]]
    assert main(["--data-dir", str(settings.data_dir), "lake", "runs"]) == 0
    assert capsys.readouterr().out.count("SUCCEEDED") == 4
