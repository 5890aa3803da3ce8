"""A job run that crashes after any of its writes but before its bookmark commits, then runs again,
leaves the lake exactly as one clean run does: no reading, no quarantined record and no hourly
row twice. The crash is a fault hook in the job (``run_job(..., fault=...)``), raised right after
the write it names."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from processing.glue_etl import WRITES, JobConfig, run_job
from tests.lake.raw import BAD_RECORDS, T0, aircast, seed, write_object

pytestmark = pytest.mark.slow

M = dt.timedelta(minutes=1)
NOW = dt.datetime(2021, 2, 6, tzinfo=dt.UTC)


class Crash(RuntimeError):
    pass


def _lake(root: Path) -> JobConfig:
    """Two Firehose objects: readings (one redelivered), every kind of bad record, a bad line twice."""
    from aircast.settings import Settings

    settings = Settings(data_dir=root)
    bad = [line for line, _, _ in BAD_RECORDS]
    write_object(settings, [seed(T0, 1, 2, 3, 4, 5), aircast(1, "2021-02-05T13:30:00Z", 10, 20, T0 + 30 * M),
                            *bad[:12]], T0 + 50 * M)
    write_object(settings, [aircast(2, "2021-02-05T14:10:00Z", 30, 40, T0 + 70 * M), seed(T0, 1, 2, 3, 4, 5),
                            *bad[12:], bad[0]], T0 + 80 * M)
    base = (root / "s3" / "aircast-lake").resolve()
    return JobConfig(job_name="aircast-etl", source_uri=(base / "raw" / "telemetry").as_uri() + "/",
                     target_uri=(base / "curated").as_uri() + "/", run_id="")


def _contents(config: JobConfig) -> dict[str, list[tuple[Any, ...]]]:
    curated = config.target_uri[len("file://"):]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    out = {}
    for table, columns in {"readings": "thing_name, seq, timestamp, pm2_5, particulate_matter, dt",
                           "quarantine": "raw, reason, field, dt",
                           "hourly": "thing_name, pollutant, hour, mean, count, min, max, dt"}.items():
        out[table] = con.execute(f"SELECT {columns} FROM read_parquet('{curated}{table}/*/*.parquet', "
                                 f"hive_partitioning = true) ORDER BY ALL").fetchall()
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, spark: Any) -> tuple[Path, dict[str, Any], dict[str, list]]:
    """The lake after one uninterrupted run (the reference), and its raw folder to copy."""
    root = tmp_path_factory.mktemp("clean")
    config = _lake(root)
    counts = run_job(spark, config, now=NOW)
    return root, counts, _contents(config)


@pytest.mark.parametrize("crash_after", WRITES)
def test_a_crash_before_the_bookmark_then_a_rerun_writes_nothing_twice(
        clean: tuple[Path, dict[str, Any], dict[str, list]], tmp_path: Path, spark: Any, crash_after: str) -> None:
    root, counts, reference = clean
    assert counts["quarantined"] == len(BAD_RECORDS)  # the line sent twice is quarantined once
    assert counts["written"] == 3 and counts["duplicate"] == 2
    assert len(reference["quarantine"]) == len(BAD_RECORDS) and len(reference["readings"]) == 3

    shutil.copytree(root / "s3" / "aircast-lake" / "raw", tmp_path / "s3" / "aircast-lake" / "raw")
    base = (tmp_path / "s3" / "aircast-lake").resolve()
    config = JobConfig(job_name="aircast-etl", source_uri=(base / "raw" / "telemetry").as_uri() + "/",
                       target_uri=(base / "curated").as_uri() + "/")

    def fault(write: str) -> None:
        if write == crash_after:
            raise Crash(f"crashed after the {write} write")

    with pytest.raises(Crash):
        run_job(spark, config, now=NOW, fault=fault)
    assert not list((base / "curated" / "_bookmarks").rglob("*.json"))  # nothing committed

    rerun = run_job(spark, config, now=NOW)
    assert rerun["objects_new"] == 2 and rerun["read"] == counts["read"]
    assert _contents(config) == reference
    # what the crashed run had written is counted as duplicates now, not written again
    done_before = WRITES[: WRITES.index(crash_after) + 1]
    assert rerun["quarantined"] == (0 if "quarantine" in done_before else counts["quarantined"])
    assert rerun["written"] == (0 if "readings" in done_before else counts["written"])
    assert rerun["read"] == rerun["written"] + rerun["duplicate"] + rerun["quarantined"]
