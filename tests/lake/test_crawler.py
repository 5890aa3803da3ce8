"""The crawler: schema inference in Glue's GetTable shape, hour partitions, schema evolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aircast.cli import main
from aircast.settings import Settings
from infra.local.glue import run_crawler
from infra.local.glue.catalog import LocalGlueClient
from processing.crawler import CrawlSample, build_table, infer_columns, merge_types, partition_values
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


def test_recrawl_adds_new_columns_and_never_fails(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    write_object(settings, [seed(T0, 1, 2, 3, 4, 5), aircast(1, "2021-02-05T13:30:00Z", 10, 20, T0)], T0)
    first = run_crawler(settings)
    cols = {c["Name"]: c["Type"] for c in first["table"]["StorageDescriptor"]["Columns"]}
    assert cols["pm2_5"] == "bigint" and cols["received_at"] == "bigint" and "co2" not in cols
    assert (first["objects"], first["records"], first["partitions"]) == (1, 2, 1)

    # Devices start sending a new field, a float where an int was, odd values and bad lines.
    later = T0.replace(hour=15)
    write_object(settings, [aircast(2, "2021-02-05T15:00:00Z", 10.5, 20, later, co2=412.0, firmware={"v": "2"}),
                            *[line for line, _, _ in BAD_RECORDS]], later)
    second = run_crawler(settings)
    table = LocalGlueClient(settings).get_table(DatabaseName="aircast", Name="raw_telemetry")["Table"]
    after = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert list(after)[: len(cols)] == list(cols)  # existing columns keep their place
    assert after["co2"] == "double" and after["firmware"] == "struct<v:string>" and after["pm2_5"] == "string"
    assert "co2" in second["added"] and "pm2_5: bigint -> string" in second["changed"]
    assert second["partitions"] == 2 and table["VersionId"] == "2"
    assert second["unparsable"] == 3  # a non-JSON line, a cut-short line, a JSON array

    assert main(["lake", "crawl"]) == 0
    out = capsys.readouterr().out
    assert "aircast.raw_telemetry" in out and "co2" in out and "partition_0" in out
    assert main(["lake", "crawl", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["table"]["Name"] == "raw_telemetry"


@pytest.mark.parametrize("command", [["lake", "crawl"], ["lake", "etl"], ["lake", "query", "SELECT 1"]])
def test_an_empty_lake_says_so(settings: Settings, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(command) != 0
    err = capsys.readouterr().err
    assert "no raw data under s3://aircast-lake/raw/telemetry/" in err
    assert str(Path(settings.data_dir)) in err and "Traceback" not in err
