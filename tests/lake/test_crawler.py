"""The crawler: schema inference in Glue's GetTable shape, hour partitions, schema evolution."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from aircast.cli import main
from aircast.clients import get_client
from aircast.glue import RAW_CRAWLER, glue_config, run_crawler
from aircast.settings import Settings
from infra.local.glue.catalog import Catalog
from infra.local.glue.crawlers import crawl_target
from infra.local.glue.inference import CrawlSample, build_table, infer_columns, merge_types, partition_values
from tests.lake.raw import BAD_RECORDS, T0, aircast, seed, write_object


@pytest.mark.parametrize(("a", "b", "want"), [
    ("bigint", "double", "double"), ("double", "bigint", "double"), ("bigint", "bigint", "bigint"),
    (None, "string", "string"), ("bigint", None, "bigint"), ("bigint", "string", "string"),
    ("boolean", "bigint", "string"), ("struct<a:bigint>", "struct<b:string>", "struct<a:bigint,b:string>"),
    ("array<bigint>", "bigint", "string"),
])
def test_merge_types_widens(a: str | None, b: str | None, want: str) -> None:
    assert merge_types(a, b) == want


def test_infer_columns_keeps_first_seen_order_and_types() -> None:
    cols = infer_columns([
        {"thing_name": "a", "seq": 1, "pm2_5": 3, "ok": True, "tags": ["x"], "pos": {"lat": 1.5}, "note": None},
        {"pm2_5": 3.5, "extra": "new"},
    ])
    assert cols == {"thing_name": "string", "seq": "bigint", "pm2_5": "double", "ok": "boolean",
                    "tags": "array<string>", "pos": "struct<lat:double>", "note": "string", "extra": "string"}


def test_partition_values_from_the_firehose_key() -> None:
    assert partition_values("raw/telemetry/2021/02/05/13/aircast-telemetry-1-2021-02-05-13-00-00-x") == [
        "2021", "02", "05", "13"]
    assert partition_values("raw/telemetry/loose-object") is None


def test_table_has_the_glue_get_table_shape() -> None:
    sample = CrawlSample()
    sample.add_object("raw/telemetry/2021/02/05/13/s-1-x", (json.dumps(seed(T0, 1, 2, 3, 4, 5)) + "\nnot json\n").encode())
    table = build_table("raw_telemetry", "aircast", "s3://aircast-lake/raw/telemetry/", sample)
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert table["PartitionKeys"] == [{"Name": f"partition_{i}", "Type": "string"} for i in range(4)]
    assert table["Parameters"]["classification"] == "json" and table["Parameters"]["recordCount"] == "1"
    assert {"Name": "particullate_matter", "Type": "bigint"} in table["StorageDescriptor"]["Columns"]
    assert {"Name": "timestamp", "Type": "string"} in table["StorageDescriptor"]["Columns"]
    assert sample.unparsable == 1


def test_recrawl_reads_new_folders_only_and_logs_schema_changes(settings: Settings,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    write_object(settings, [seed(T0, 1, 2, 3, 4, 5), aircast(1, "2021-02-05T13:30:00Z", 10, 20, T0)], T0)
    first = run_crawler(settings)
    glue = get_client("glue", settings)
    table = glue.get_table(DatabaseName="aircast", Name="raw_telemetry")["Table"]
    cols = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert cols["pm2_5"] == "bigint" and cols["received_at"] == "bigint" and "co2" not in cols
    assert first["metrics"]["TablesCreated"] == 1 and first["crawler"]["LastCrawl"]["Status"] == "SUCCEEDED"
    assert "Read 1 object(s) under s3://aircast-lake/raw/telemetry/: 2 records sampled" in "\n".join(first["log"])

    # Devices start sending a new field, a float where an int was, odd values and bad lines.
    later = T0.replace(hour=15)
    write_object(settings, [aircast(2, "2021-02-05T15:00:00Z", 10.5, 20, later, co2=412.0, firmware={"v": "2"}),
                            *[line for line, _, _ in BAD_RECORDS]], later)
    second = run_crawler(settings)
    log = "\n".join(second["log"])
    # the stack's raw crawler: CRAWL_NEW_FOLDERS_ONLY (only the new hour folder is read) with UpdateBehavior LOG,
    # which that recrawl policy requires on AWS: the schema change is logged, the table keeps its columns
    assert "Read 1 object(s)" in log and "3 unparsable line(s)" in log  # non-JSON, cut short, a JSON array
    assert "new column co2 (double)" in log and "new column firmware (struct<v:string>)" in log
    assert "pm2_5: bigint -> string" in log and "not applied (UpdateBehavior LOG)" in log
    again = glue.get_table(DatabaseName="aircast", Name="raw_telemetry")["Table"]
    assert again["StorageDescriptor"]["Columns"] == table["StorageDescriptor"]["Columns"]
    parts = glue.get_partitions(DatabaseName="aircast", TableName="raw_telemetry")["Partitions"]
    assert [p["Values"] for p in parts] == [["2021", "02", "05", "13"], ["2021", "02", "05", "15"]]
    assert second["metrics"]["TablesUpdated"] == 0

    assert main(["lake", "crawl"]) == 0
    captured = capsys.readouterr()
    assert "aircast.raw_telemetry" in captured.out and "partition_0" in captured.out
    assert "Read 0 object(s)" in captured.err  # nothing new since the last crawl
    assert main(["lake", "crawl", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["table"]["Name"] == "raw_telemetry"


def test_a_crawler_that_updates_the_database_applies_schema_changes(settings: Settings) -> None:
    write_object(settings, [aircast(1, "2021-02-05T13:30:00Z", 10, 20, T0)], T0)
    write_object(settings, [aircast(2, "2021-02-05T15:00:00Z", 10.5, 20, T0.replace(hour=15), co2=412.0)],
                 T0.replace(hour=15))
    config = glue_config(settings)
    crawler = dataclasses.replace(config.crawler(RAW_CRAWLER), update_behavior="UPDATE_IN_DATABASE",
                                  recrawl_behavior="CRAWL_EVERYTHING")
    catalog = Catalog(config.root / "catalog", config.account_id)
    catalog.ensure_database("aircast")
    lines: list[str] = []
    uri = "s3://aircast-lake/raw/telemetry/"
    assert crawl_target(uri, crawler, catalog, config, lines.append) == (1, 0)
    write_object(settings, [aircast(3, "2021-02-05T16:00:00Z", 1.5, 2, T0.replace(hour=16), no2="high")],
                 T0.replace(hour=16))
    assert crawl_target(uri, crawler, catalog, config, lines.append) == (0, 1)
    cols = {c["Name"]: c["Type"] for c in catalog.get_table(DatabaseName="aircast", Name="raw_telemetry")["Table"][
        "StorageDescriptor"]["Columns"]}
    assert cols["co2"] == "double" and cols["pm2_5"] == "double" and cols["no2"] == "string"


@pytest.mark.parametrize("command", [["lake", "crawl"], ["lake", "etl"], ["lake", "query", "SELECT 1"]])
def test_an_empty_lake_says_so(settings: Settings, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(command) != 0
    err = capsys.readouterr().err
    assert "no raw data under s3://aircast-lake/raw/telemetry/" in err
    assert str(Path(settings.data_dir)) in err and "Traceback" not in err
