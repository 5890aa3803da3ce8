"""Glue crawlers over the local S3: JSON-lines and parquet targets into the local Data Catalog.

A crawl runs on a thread; the crawler is ``RUNNING`` meanwhile and ``READY`` after, with
its ``LastCrawl`` (``SUCCEEDED``/``FAILED``, ``/aws-glue/crawlers`` log stream named after the
crawler, the crawl's id as message prefix). Starting a running crawler is refused with
``CrawlerRunningException``. Per S3 target (its last folder is the table name, after
``TablePrefix``):

- **parquet** (the curated tables): columns from the files' parquet schemas (one file per
  partition), Hive ``key=value`` folders as string partition keys;
- **JSON lines** (the raw Firehose objects): :mod:`infra.local.glue.inference` infers columns from the
  first MiB of each object, the ``YYYY/MM/DD/HH/`` folders are ``partition_0..3``.

The crawler's ``SchemaChangePolicy`` holds as on Glue: ``UPDATE_IN_DATABASE`` writes a changed
schema to the table, ``LOG`` only logs it (new partitions are still added). With
``RecrawlPolicy`` ``CRAWL_NEW_FOLDERS_ONLY`` only folders the table has no partition for yet
are read.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.local.core.errors import ServiceError
from infra.local.glue.catalog import Catalog
from infra.local.glue.config import CrawlerDefinition, GlueConfig
from infra.local.glue.store import GlueStore
from infra.local.logs import LogStream
from infra.local.s3 import uri_to_path

LOG_GROUP = "/aws-glue/crawlers"
PARQUET_IN = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
_HIVE_PART = re.compile(r"^([^=/]+)=([^/]*)$")


class CrawlerRunner:
    """Starts crawls of the configured crawlers and answers for their state."""

    def __init__(self, config: GlueConfig, store: GlueStore, catalog: Catalog,
                 on_finished: Callable[[str, str], None] | None = None) -> None:
        self.config, self.store, self.catalog = config, store, catalog
        self.on_finished = on_finished
        self._threads: dict[str, threading.Thread] = {}

    def definition(self, name: str, operation: str) -> CrawlerDefinition:
        crawler = self.config.crawler(name)
        if crawler is None:
            raise ServiceError("EntityNotFoundException", f"Crawler with name {name} does not exist", 400, operation)
        return crawler

    def start(self, name: str) -> str:
        crawler = self.definition(name, "StartCrawler")
        crawl_id = str(uuid.uuid4())
        with self.store.transaction() as db:
            self.store.sweep(db)
            latest = self.store.crawls(db, name, limit=1)
            if latest and latest[0]["state"] in ("RUNNING", "STOPPING"):
                raise ServiceError("CrawlerRunningException", f"Crawler with name {name} has already started", 400,
                                   "StartCrawler")
            self.store.insert_crawl(db, crawl_id, name, time.time())
        thread = threading.Thread(target=self._crawl, args=(crawler, crawl_id), name=f"glue-crawl-{name}", daemon=True)
        self._threads[name] = thread
        thread.start()
        return crawl_id

    def wait(self, name: str, timeout_s: float | None = None) -> None:
        """Local only: block until this process's crawl of ``name`` ends."""
        thread = self._threads.get(name)
        if thread is not None:
            thread.join(timeout_s)

    def _crawl(self, crawler: CrawlerDefinition, crawl_id: str) -> None:
        log = LogStream(self.config.data_dir, LOG_GROUP, crawler.name)

        def say(message: str) -> None:
            log.put(f"[{crawl_id}] {message}")

        say(f"BENCHMARK : Running Start Crawl for Crawler {crawler.name}")
        created = updated = 0
        try:
            self.catalog.ensure_database(crawler.database)
            for target in crawler.s3_targets:
                c, u = crawl_target(target, crawler, self.catalog, self.config, say)
                created, updated = created + c, updated + u
        except Exception as exc:  # noqa: BLE001 - a failed crawl is recorded, as Glue does
            say(f"ERROR : {type(exc).__name__}: {exc}")
            self.store.finish_crawl(crawl_id, "FAILED", time.time(), f"{type(exc).__name__}: {exc}", created, updated)
            state = "FAILED"
        else:
            say("BENCHMARK : Finished writing to Catalog")
            self.store.finish_crawl(crawl_id, "SUCCEEDED", time.time(), None, created, updated)
            state = "SUCCEEDED"
        say("BENCHMARK : Crawler has finished running and is in state READY")
        self._threads.pop(crawler.name, None)
        if self.on_finished is not None:
            self.on_finished(crawler.name, state)

    # ---- reads --------------------------------------------------------------------------
    def get(self, name: str) -> dict[str, Any]:
        """``GetCrawler``'s ``Crawler``."""
        crawler = self.definition(name, "GetCrawler")
        with self.store.transaction() as db:
            self.store.sweep(db)
            crawls = self.store.crawls(db, name, limit=2)
        created = dt.datetime.fromtimestamp(self.store.path.stat().st_ctime, dt.UTC).isoformat()
        out: dict[str, Any] = {
            "Name": crawler.name, "Role": crawler.role, "DatabaseName": crawler.database,
            "Targets": {"S3Targets": [{"Path": p, "Exclusions": []} for p in crawler.s3_targets],
                        "JdbcTargets": [], "MongoDBTargets": [], "DynamoDBTargets": [], "CatalogTargets": [],
                        "DeltaTargets": []},
            "Classifiers": [], "RecrawlPolicy": {"RecrawlBehavior": crawler.recrawl_behavior},
            "SchemaChangePolicy": {"UpdateBehavior": crawler.update_behavior,
                                   "DeleteBehavior": crawler.delete_behavior},
            "LineageConfiguration": {"CrawlerLineageSettings": "DISABLE"},
            "State": "READY", "TablePrefix": crawler.table_prefix, "CrawlElapsedTime": 0,
            "CreationTime": created, "LastUpdated": created, "Version": 1,
        }
        if crawler.description:
            out["Description"] = crawler.description
        if crawler.configuration:
            out["Configuration"] = crawler.configuration
        if crawls and crawls[0]["state"] in ("RUNNING", "STOPPING"):
            out["State"] = crawls[0]["state"]
            out["CrawlElapsedTime"] = int((time.time() - crawls[0]["started"]) * 1000)
            crawls = crawls[1:]
        if crawls:
            last = crawls[0]
            out["LastCrawl"] = {
                "Status": "SUCCEEDED" if last["state"] == "SUCCEEDED" else
                          "CANCELLED" if last["state"] == "CANCELLED" else "FAILED",
                "LogGroup": LOG_GROUP, "LogStream": crawler.name, "MessagePrefix": last["id"],
                "StartTime": dt.datetime.fromtimestamp(last["started"], dt.UTC).isoformat(),
            }
            if last["error"]:
                out["LastCrawl"]["ErrorMessage"] = last["error"]
        return out

    def metrics(self, names: list[str]) -> list[dict[str, Any]]:
        """``GetCrawlerMetrics``' list for ``names`` (all crawlers when empty; unknown names are skipped)."""
        out = []
        with self.store.transaction() as db:
            self.store.sweep(db)
            for crawler in self.config.crawlers:
                if names and crawler.name not in names:
                    continue
                crawls = self.store.crawls(db, crawler.name, limit=50)
                running = bool(crawls) and crawls[0]["state"] in ("RUNNING", "STOPPING")
                done = [c for c in crawls if c["ended"] is not None and c["state"] not in ("RUNNING", "STOPPING")]
                runtimes = [c["ended"] - c["started"] for c in done]
                last = done[0] if done else None
                out.append({
                    "CrawlerName": crawler.name,
                    "TimeLeftSeconds": round(max(statistics.median(runtimes) - (time.time() - crawls[0]["started"]),
                                                 0.0), 3) if running and runtimes else 0.0,
                    "StillEstimating": running and not runtimes,
                    "LastRuntimeSeconds": round(runtimes[0], 3) if runtimes else 0.0,
                    "MedianRuntimeSeconds": round(statistics.median(runtimes), 3) if runtimes else 0.0,
                    "TablesCreated": last["tables_created"] if last else 0,
                    "TablesUpdated": last["tables_updated"] if last else 0,
                    "TablesDeleted": last["tables_deleted"] if last else 0,
                })
        return out


# ---- one target ---------------------------------------------------------------------------

def crawl_target(uri: str, crawler: CrawlerDefinition, catalog: Catalog, config: GlueConfig,
                 say: Callable[[str], None]) -> tuple[int, int]:
    """Crawl one S3 target into its table; returns (tables created, tables updated)."""
    folder = uri_to_path(uri, config.s3_root)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p.relative_to(folder))) \
        if folder.is_dir() else []
    if not files:
        say(f"INFO : No objects under {uri}; nothing to catalog")
        return 0, 0
    name = _table_name(crawler.table_prefix + folder.name)
    existing = catalog.find_table(crawler.database, name)
    if _is_parquet(files[0]):
        table, partitions = parquet_table(name, crawler, uri, folder, files, existing, config.account_id)
    else:
        table, partitions = json_table(name, crawler, uri, files, existing, catalog, config, say)
    created = updated = 0
    if existing is None:
        catalog.put_table(crawler.database, table)
        created = 1
        say(f"INFO : Created table {name} in database {crawler.database}")
    else:
        changes = _changes(existing, table)
        if changes and crawler.update_behavior == "UPDATE_IN_DATABASE":
            catalog.put_table(crawler.database, table)
            updated = 1
            say(f"INFO : Updated table {name}: {'; '.join(changes)}")
        elif changes:
            say(f"INFO : Table {name} has schema changes, not applied (UpdateBehavior {crawler.update_behavior}): "
                f"{'; '.join(changes)}")
    if partitions:
        result = catalog.batch_create_partition(DatabaseName=crawler.database, TableName=name,
                                                PartitionInputList=partitions)
        added = len(partitions) - len(result.get("Errors", []))
        if added:
            say(f"INFO : Added {added} partition(s) to table {name}")
    return created, updated


def _hidden(relative: Path) -> bool:
    # Hadoop's _SUCCESS / _temporary / .crc files and temp files of atomic writes
    return any(part.startswith((".", "_")) for part in relative.parts)


def _table_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    old = {c["Name"]: c["Type"] for c in before["StorageDescriptor"]["Columns"]}
    new = {c["Name"]: c["Type"] for c in after["StorageDescriptor"]["Columns"]}
    out = [f"new column {n} ({t})" for n, t in new.items() if n not in old]
    out += [f"{n}: {old[n]} -> {t}" for n, t in new.items() if n in old and old[n] != t]
    out += [f"column {n} no longer seen" for n in old if n not in new]
    return out


def _hive_values(folder: Path, path: Path) -> list[tuple[str, str]] | None:
    parts = path.relative_to(folder).parts[:-1]
    pairs = [_HIVE_PART.match(p) for p in parts]
    if not all(pairs):
        return None
    return [(m.group(1), m.group(2)) for m in pairs if m]


def parquet_table(name: str, crawler: CrawlerDefinition, uri: str, folder: Path, files: list[Path],
                  existing: dict[str, Any] | None, account_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A parquet table from the files' schemas and their Hive partition folders."""
    import pyarrow.parquet as pq

    by_partition: dict[tuple[str, ...], Path] = {}
    keys: list[str] = []
    for path in files:
        pairs = _hive_values(folder, path)
        if pairs is None:
            continue
        keys = keys or [k for k, _ in pairs]
        by_partition.setdefault(tuple(v for _, v in pairs), path)
    columns: dict[str, str] = {}
    for path in by_partition.values():
        for arrow_field in pq.read_schema(path):
            if arrow_field.name not in keys:
                columns.setdefault(arrow_field.name, hive_type(arrow_field.type))
    now = dt.datetime.now(dt.UTC).isoformat()
    size = sum(p.stat().st_size for p in files)
    params = {"classification": "parquet", "compressionType": "none", "typeOfData": "file",
              "objectCount": str(len(files)), "sizeKey": str(size), "UPDATED_BY_CRAWLER": crawler.name,
              "CrawlerSchemaSerializerVersion": "1.0", "CrawlerSchemaDeserializerVersion": "1.0"}
    location = uri if uri.endswith("/") else uri + "/"
    sd = {"Columns": [{"Name": k, "Type": t} for k, t in columns.items()], "Location": location,
          "InputFormat": PARQUET_IN, "OutputFormat": PARQUET_OUT, "Compressed": False, "NumberOfBuckets": -1,
          "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
          "BucketColumns": [], "SortColumns": [], "Parameters": params, "StoredAsSubDirectories": False}
    table = {
        "Name": name, "DatabaseName": crawler.database, "Owner": "owner",
        "CreateTime": existing["CreateTime"] if existing else now, "UpdateTime": now, "Retention": 0,
        "StorageDescriptor": sd, "PartitionKeys": [{"Name": k, "Type": "string"} for k in keys],
        "TableType": "EXTERNAL_TABLE", "Parameters": params, "CreatedBy": crawler.role,
        "IsRegisteredWithLakeFormation": False, "CatalogId": account_id,
    }
    partitions = []
    for values in sorted(by_partition):
        part_sd = dict(sd, Location=location + "/".join(f"{k}={v}" for k, v in zip(keys, values, strict=True)) + "/")
        partitions.append({"Values": list(values), "StorageDescriptor": part_sd})
    return table, partitions


def json_table(name: str, crawler: CrawlerDefinition, uri: str, files: list[Path], existing: dict[str, Any] | None,
               catalog: Catalog, config: GlueConfig,
               say: Callable[[str], None]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A JSON-lines table (the raw Firehose objects) from a sample of each object."""
    from infra.local.glue.inference import SAMPLE_BYTES, CrawlSample, build_partitions, build_table, partition_values

    seen: set[tuple[str, ...]] = set()
    if existing is not None and crawler.recrawl_behavior == "CRAWL_NEW_FOLDERS_ONLY":
        parts = catalog.get_partitions(DatabaseName=crawler.database, TableName=name)["Partitions"]
        seen = {tuple(p["Values"]) for p in parts}
    sample = CrawlSample()
    bucket_root = config.s3_root / uri[len("s3://"):].split("/")[0]
    for path in files:
        key = str(path.relative_to(bucket_root))
        values = partition_values(key)
        if values is not None and tuple(values) in seen:
            continue
        with open(path, "rb") as fh:
            sample.add_object(key, fh.read(SAMPLE_BYTES + 1))
    say(f"INFO : Read {sample.objects} object(s) under {uri}: {sample.records} records sampled, "
        f"{sample.unparsable} unparsable line(s)")
    location = uri if uri.endswith("/") else uri + "/"
    table = build_table(name, crawler.database, location, sample, existing)
    if existing is not None and not sample.objects:
        table = existing
    table["CatalogId"] = config.account_id
    kept = table if existing is None or crawler.update_behavior == "UPDATE_IN_DATABASE" else existing
    partitions = [{k: v for k, v in p.items() if k not in ("DatabaseName", "TableName")}
                  for p in build_partitions(kept, sample)]
    return table, partitions


def hive_type(arrow_type: Any) -> str:
    """The Hive/Glue type of a parquet column's arrow type."""
    import pyarrow as pa

    t = pa.types
    if t.is_string(arrow_type) or t.is_large_string(arrow_type):
        return "string"
    if t.is_int64(arrow_type) or t.is_uint32(arrow_type):
        return "bigint"
    if t.is_int32(arrow_type) or t.is_uint16(arrow_type):
        return "int"
    if t.is_int16(arrow_type) or t.is_uint8(arrow_type):
        return "smallint"
    if t.is_int8(arrow_type):
        return "tinyint"
    if t.is_float64(arrow_type):
        return "double"
    if t.is_float32(arrow_type):
        return "float"
    if t.is_boolean(arrow_type):
        return "boolean"
    if t.is_timestamp(arrow_type):
        return "timestamp"
    if t.is_date(arrow_type):
        return "date"
    if t.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    if t.is_binary(arrow_type) or t.is_large_binary(arrow_type):
        return "binary"
    if t.is_list(arrow_type) or t.is_large_list(arrow_type):
        return f"array<{hive_type(arrow_type.value_type)}>"
    if t.is_struct(arrow_type):
        return "struct<" + ",".join(f"{f.name}:{hive_type(f.type)}" for f in arrow_type) + ">"
    if t.is_map(arrow_type):
        return f"map<{hive_type(arrow_type.key_type)},{hive_type(arrow_type.item_type)}>"
    return "string"
