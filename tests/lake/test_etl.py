"""The Glue ETL job on real local Spark: seed + aircast payloads + every kind of bad record,
with exact counts in readings / hourly / quarantine, the catalog, and SQL over the result."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from aircast.cli import main
from aircast.clients import get_client
from aircast.commands.lake import run_query
from aircast.glue import run_etl_job, run_summary
from aircast.settings import Settings
from processing.glue_etl import REASONS, parse_epoch_or_iso, table_schemas
from tests.lake.raw import BAD_RECORDS, T0, aircast, seed, write_object

UTC = dt.UTC
M = dt.timedelta(minutes=1)

SEED_1 = seed(T0, 10, 20, 1, 4, 5)
SEED_2 = seed(T0 + 20 * M, 30, 40, 3, 6, 7)
SEED_3 = seed(T0 + 65 * M, 50, 60, 5, 8, 9)
# Four timestamp spellings for the same device: ISO with offset, ISO without zone, epoch s, epoch ms.
AIR_1 = aircast(1, "2021-02-05T15:30:00+02:00", 10, 20, T0 + 31 * M)  # 13:30Z
AIR_2 = aircast(2, "2021-02-05 13:45:00", 14, 30, T0 + 46 * M)
AIR_3 = aircast(3, 1612533600, 20, 40, T0 + 61 * M)  # 14:00Z
AIR_4 = aircast(4, 1612533900000, 30, 50, T0 + 66 * M)  # 14:05Z


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, spark: Any) -> tuple[Settings, dict[str, Any]]:
    """A lake with two Firehose objects, processed once by the job."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("lake"))
    write_object(settings, [SEED_1, SEED_2, AIR_1, AIR_2, AIR_2, "", *[line for line, _, _ in BAD_RECORDS]],
                 T0 + 59 * M)
    write_object(settings, [SEED_3, AIR_3, AIR_4, SEED_1], T0 + 70 * M)  # SEED_1 again: a redelivery
    counts = run_etl_job(settings)
    return settings, counts


def rows(settings: Settings, sql: str) -> list[dict[str, Any]]:
    columns, data = run_query(settings, sql)
    return [dict(zip(columns, r, strict=False)) for r in data]


def test_first_run_counts(lake: tuple[Settings, dict[str, Any]]) -> None:
    _, counts = lake
    assert {k: counts[k] for k in ("objects_total", "objects_new", "read", "written", "duplicate", "quarantined",
                                   "hourly_rows")} == {
        "objects_total": 2, "objects_new": 2, "read": 7 + 2 + len(BAD_RECORDS), "written": 7, "duplicate": 2,
        "quarantined": len(BAD_RECORDS), "hourly_rows": 14,
    }
    assert counts["days"] == ["2021-02-05"]


def test_readings_are_typed_canonical_and_utc(lake: tuple[Settings, dict[str, Any]]) -> None:
    settings, _ = lake
    got = rows(settings, "SELECT thing_name, seq, timestamp, particulate_matter, sulfur_dioxide, pm2_5, "
                         "temperature, dt FROM readings ORDER BY thing_name, timestamp")
    stamps = [(r["thing_name"], r["seq"], r["timestamp"].astimezone(UTC)) for r in got]
    assert stamps == [
        ("aircast-001", 1, T0 + 30 * M), ("aircast-001", 2, T0 + 45 * M),
        ("aircast-001", 3, T0 + 60 * M), ("aircast-001", 4, T0 + 65 * M),
        ("seed-device", None, T0), ("seed-device", None, T0 + 20 * M), ("seed-device", None, T0 + 65 * M),
    ]
    seeds = [r for r in got if r["thing_name"] == "seed-device"]
    assert [(r["particulate_matter"], r["sulfur_dioxide"], r["pm2_5"]) for r in seeds] == [
        (20.0, 4.0, None), (40.0, 6.0, None), (60.0, 8.0, None)]
    assert {r["temperature"] for r in got if r["thing_name"] == "aircast-001"} == {3.5}
    assert {r["dt"] for r in got} == {"2021-02-05"}
    columns, _ = run_query(settings, "SELECT * FROM readings LIMIT 0")
    assert "particullate_matter" not in columns and "sulfure_dioxide" not in columns


def test_hourly_exact(lake: tuple[Settings, dict[str, Any]]) -> None:
    settings, _ = lake
    got = rows(settings, "SELECT thing_name, pollutant, hour, mean, count, min, max FROM hourly "
                         "ORDER BY thing_name, hour, pollutant")
    table = {(r["thing_name"], r["pollutant"], r["hour"].astimezone(UTC).hour):
             (r["mean"], r["count"], r["min"], r["max"]) for r in got}
    assert len(got) == len(table) == 14
    assert table == {
        ("seed-device", "ozone", 13): (20.0, 2, 10.0, 30.0),
        ("seed-device", "particulate_matter", 13): (30.0, 2, 20.0, 40.0),
        ("seed-device", "carbon_monoxide", 13): (2.0, 2, 1.0, 3.0),
        ("seed-device", "sulfur_dioxide", 13): (5.0, 2, 4.0, 6.0),
        ("seed-device", "nitrogen_dioxide", 13): (6.0, 2, 5.0, 7.0),
        ("seed-device", "ozone", 14): (50.0, 1, 50.0, 50.0),
        ("seed-device", "particulate_matter", 14): (60.0, 1, 60.0, 60.0),
        ("seed-device", "carbon_monoxide", 14): (5.0, 1, 5.0, 5.0),
        ("seed-device", "sulfur_dioxide", 14): (8.0, 1, 8.0, 8.0),
        ("seed-device", "nitrogen_dioxide", 14): (9.0, 1, 9.0, 9.0),
        ("aircast-001", "pm2_5", 13): (12.0, 2, 10.0, 14.0),
        ("aircast-001", "pm10", 13): (25.0, 2, 20.0, 30.0),
        ("aircast-001", "pm2_5", 14): (25.0, 2, 20.0, 30.0),
        ("aircast-001", "pm10", 14): (45.0, 2, 40.0, 50.0),
    }


def test_every_bad_record_is_quarantined_with_its_reason(lake: tuple[Settings, dict[str, Any]]) -> None:
    settings, _ = lake
    got = rows(settings, "SELECT raw, reason, field, dt, source_object, job_run_id FROM quarantine")
    assert len(got) == len(BAD_RECORDS)
    assert sorted((r["raw"], r["reason"], r["field"]) for r in got) == sorted(BAD_RECORDS)
    reasons = Counter(r["reason"] for r in got)
    assert len(reasons) >= 20 and set(reasons) == set(REASONS)
    assert {r["dt"] for r in got} == {"2021-02-05"}  # filed under the day they arrived
    assert all(r["source_object"].startswith("2021/02/05/13/aircast-telemetry-1-") for r in got)
    assert len({r["job_run_id"] for r in got}) == 1


def test_the_curated_crawl_catalogues_the_tables_and_the_run_is_recorded(
        lake: tuple[Settings, dict[str, Any]]) -> None:
    settings, counts = lake
    glue = get_client("glue", settings)
    # the curated crawler (started by the trigger on SUCCEEDED) owns the tables: exactly the job's schemas
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName="aircast")["TableList"]}
    assert {"readings", "hourly", "quarantine"} <= set(tables)
    for name, columns in table_schemas().items():
        assert tables[name]["StorageDescriptor"]["Columns"] == columns, name
        assert tables[name]["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
        assert tables[name]["StorageDescriptor"]["Location"] == f"s3://aircast-lake/curated/{name}/"
        assert tables[name]["Parameters"]["classification"] == "parquet"
    parts = glue.get_partitions(DatabaseName="aircast", TableName="readings")["Partitions"]
    assert [p["Values"] for p in parts] == [["2021-02-05"]]
    assert glue.get_crawler(Name="aircast-curated")["Crawler"]["LastCrawl"]["Status"] == "SUCCEEDED"
    run = glue.get_job_run(JobName=settings.glue_job_name, RunId=counts["job_run_id"])["JobRun"]
    assert run["JobRunState"] == "SUCCEEDED" and run["GlueVersion"] == "5.0"
    assert run_summary(settings, run)["written"] == 7  # the counts the job wrote beside its bookmarks


def _snapshot(settings: Settings) -> dict[str, tuple[int, int]]:
    root = settings.s3_root / settings.lake_bucket / "curated"
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*.parquet")}


def test_rerun_with_nothing_new_changes_nothing(lake: tuple[Settings, dict[str, Any]]) -> None:
    settings, _ = lake
    before = _snapshot(settings)
    again = run_etl_job(settings)
    assert (again["objects_new"], again["read"], again["written"], again["quarantined"]) == (0, 0, 0, 0)
    assert _snapshot(settings) == before


def test_query_cli_formats_and_errors(lake: tuple[Settings, dict[str, Any]],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    settings, _ = lake
    base = ["--data-dir", str(settings.data_dir), "lake", "query"]
    sql = "SELECT pollutant, sum(count) AS n FROM hourly GROUP BY pollutant ORDER BY pollutant"
    assert main([*base, sql, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {r["pollutant"]: r["n"] for r in out} == {
        "carbon_monoxide": 3, "nitrogen_dioxide": 3, "ozone": 3, "particulate_matter": 3, "pm10": 4, "pm2_5": 4,
        "sulfur_dioxide": 3}
    assert main([*base, "SELECT count(*) AS n FROM quarantine", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", str(len(BAD_RECORDS))]
    assert main([*base, "SELECT reason FROM quarantine WHERE reason = 'bad_seq'"]) == 0
    assert "bad_seq" in capsys.readouterr().out
    assert main([*base, "SELEC nonsense FROM readings"]) != 0
    err = capsys.readouterr().err
    assert "syntax error" in err.lower() and "Traceback" not in err
    assert main([*base, "SELECT * FROM no_such_table"]) != 0
    assert "no_such_table" in capsys.readouterr().err


def test_timestamp_forms_all_become_utc(spark: Any) -> None:
    cases = {
        "2021-02-05T13:00:00.000Z": dt.datetime(2021, 2, 5, 13, 0),
        " 2021-02-05T13:00:00Z ": dt.datetime(2021, 2, 5, 13, 0),
        "2021-02-05T13:00:00.123456Z": dt.datetime(2021, 2, 5, 13, 0, 0, 123456),
        "2021-02-05T14:00:00+01:00": dt.datetime(2021, 2, 5, 13, 0),
        "2021-02-05T08:00:00-05:00": dt.datetime(2021, 2, 5, 13, 0),
        "2021-02-05T13:00:00": dt.datetime(2021, 2, 5, 13, 0),
        "2021-02-05 13:00:00.250": dt.datetime(2021, 2, 5, 13, 0, 0, 250000),
        "1612530000": dt.datetime(2021, 2, 5, 13, 0),
        "1612530000.5": dt.datetime(2021, 2, 5, 13, 0, 0, 500000),
        "1612530000123": dt.datetime(2021, 2, 5, 13, 0, 0, 123000),
        "yesterday": None,
        "99999999999999999999": None,
    }
    from pyspark.sql import functions as F

    df = spark.createDataFrame([(k,) for k in cases], "t string")
    got = {r["t"]: r["ts"] for r in df.select("t", F.date_format(parse_epoch_or_iso(F.col("t")),
                                                                 "yyyy-MM-dd HH:mm:ss.SSSSSS").alias("ts")).collect()}
    want = {k: (v.strftime("%Y-%m-%d %H:%M:%S.%f") if v else None) for k, v in cases.items()}
    assert got == want


def test_job_script_imports_only_spark_and_stdlib() -> None:
    import ast

    script = Path(__file__).resolve().parents[2] / "processing" / "glue_etl.py"
    tree = ast.parse(script.read_text())
    roots = {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    roots |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert roots <= {"__future__", "argparse", "datetime", "json", "re", "sys", "time", "uuid", "collections",
                     "dataclasses", "typing", "pyspark", "awsglue"}
