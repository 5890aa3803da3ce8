"""Glue crawler logic: infer a table from Firehose JSON-lines objects.

Pure functions over records and keys; the runner (``infra.local.glue.crawlers``)
does the listing and reading. The result has the shape of Glue's ``GetTable``
``Table``: JSON SerDe, hour partitions ``partition_0..3`` from the
``YYYY/MM/DD/HH/`` key layout, and the classifier's statistics in
``Parameters``. A re-crawl merges into the existing table the way a crawler
with "update the table definition" does: existing columns keep their place,
new fields are appended, conflicting types widen (bigint → double → string);
it never fails on a new or odd field.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Glue reads at most the first MiB of each object to classify it.
SAMPLE_BYTES = 1024 * 1024
PARTITION_RE = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")
PARTITION_KEYS: tuple[str, ...] = ("partition_0", "partition_1", "partition_2", "partition_3")
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"

_ORDER = {"boolean": 0, "bigint": 1, "double": 2}


def infer_type(value: Any) -> str | None:
    """Hive/Glue type of one JSON value; None for null (it says nothing about the type)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        inner = None
        for item in value:
            inner = merge_types(inner, infer_type(item))
        return f"array<{inner or 'string'}>"
    if isinstance(value, dict):
        cols = infer_columns([value])
        return "struct<" + ",".join(f"{k}:{t}" for k, t in cols.items()) + ">"
    return "string"


def merge_types(a: str | None, b: str | None) -> str | None:
    """The narrowest type holding both: equal stays, bigint+double → double, else string."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    if a in _ORDER and b in _ORDER and "boolean" not in (a, b):
        return max(a, b, key=_ORDER.__getitem__)
    if a.startswith("struct<") and b.startswith("struct<"):
        merged = _merge_columns(_parse_struct(a), _parse_struct(b))
        return "struct<" + ",".join(f"{k}:{t}" for k, t in merged.items()) + ">"
    return "string"


def infer_columns(records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Column name → type over records, in first-seen order (all-null columns become string)."""
    cols: dict[str, str | None] = {}
    for record in records:
        for key, value in record.items():
            cols[key] = merge_types(cols.get(key), infer_type(value))
    return {k: (t or "string") for k, t in cols.items()}


def _merge_columns(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, str]:
    merged = dict(old)
    for name, typ in new.items():
        merged[name] = merge_types(merged.get(name), typ) or "string"
    return merged


def _parse_struct(typ: str) -> dict[str, str]:
    body, depth, parts, cur = typ[len("struct<"):-1], 0, [], ""
    for ch in body:
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return dict(p.split(":", 1) for p in parts)


def partition_values(key: str) -> list[str] | None:
    """``["YYYY", "MM", "DD", "HH"]`` of a Firehose key, None when the key has no hour folders."""
    m = PARTITION_RE.search(key)
    return list(m.groups()) if m else None


@dataclass
class CrawlSample:
    """What the crawler saw in the objects it read."""

    columns: dict[str, str] = field(default_factory=dict)
    partitions: dict[tuple[str, ...], int] = field(default_factory=dict)  # values → object count
    objects: int = 0
    records: int = 0
    bytes: int = 0
    unparsable: int = 0

    def add_object(self, key: str, data: bytes) -> None:
        """Classify one object from its first ``SAMPLE_BYTES`` (a cut last line is not counted)."""
        self.objects += 1
        self.bytes += len(data)
        values = partition_values(key)
        if values:
            self.partitions[tuple(values)] = self.partitions.get(tuple(values), 0) + 1
        sample = data[:SAMPLE_BYTES]
        lines = sample.split(b"\n")
        if len(data) > SAMPLE_BYTES:
            lines = lines[:-1]
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                self.unparsable += 1
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                self.unparsable += 1
        self.records += len(records)
        self.columns = _merge_columns(self.columns, infer_columns(records))


def build_table(name: str, database: str, location: str, sample: CrawlSample,
                existing: Mapping[str, Any] | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """The Glue ``Table`` for ``sample``, merged into ``existing`` when the table was crawled before."""
    now = now or dt.datetime.now(dt.UTC)
    old_cols: dict[str, str] = {}
    if existing:
        old_cols = {c["Name"]: c["Type"] for c in existing["StorageDescriptor"]["Columns"]}
    merged = _merge_columns(old_cols, sample.columns)
    records = max(sample.records, 1)
    version = int(existing.get("VersionId", "0")) + 1 if existing else 1
    return {
        "Name": name,
        "DatabaseName": database,
        "Owner": "owner",
        "CreateTime": existing["CreateTime"] if existing else now.isoformat(),
        "UpdateTime": now.isoformat(),
        "LastAccessTime": now.isoformat(),
        "Retention": 0,
        "StorageDescriptor": {
            "Columns": [{"Name": k, "Type": t} for k, t in merged.items()],
            "Location": location,
            "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
            "Compressed": False,
            "NumberOfBuckets": -1,
            "SerdeInfo": {"SerializationLibrary": JSON_SERDE, "Parameters": {"paths": ",".join(sorted(merged))}},
            "BucketColumns": [],
            "SortColumns": [],
            "Parameters": _stats(sample, records),
            "StoredAsSubDirectories": False,
        },
        "PartitionKeys": [{"Name": k, "Type": "string"} for k in PARTITION_KEYS],
        "TableType": "EXTERNAL_TABLE",
        "Parameters": _stats(sample, records),
        "CreatedBy": "aircast-crawler",
        "IsRegisteredWithLakeFormation": False,
        "CatalogId": existing.get("CatalogId", "000000000000") if existing else "000000000000",
        "VersionId": str(version),
    }


def _stats(sample: CrawlSample, records: int) -> dict[str, str]:
    return {
        "classification": "json",
        "compressionType": "none",
        "typeOfData": "file",
        "recordCount": str(sample.records),
        "objectCount": str(sample.objects),
        "averageRecordSize": str(sample.bytes // records),
        "sizeKey": str(sample.bytes),
        "UPDATED_BY_CRAWLER": "aircast-crawler",
        "CrawlerSchemaSerializerVersion": "1.0",
        "CrawlerSchemaDeserializerVersion": "1.0",
    }


def build_partitions(table: Mapping[str, Any], sample: CrawlSample,
                     now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Glue ``Partition`` objects, one per hour folder seen, sorted by their values."""
    now = now or dt.datetime.now(dt.UTC)
    location = table["StorageDescriptor"]["Location"].rstrip("/")
    out = []
    for values in sorted(sample.partitions):
        sd = dict(table["StorageDescriptor"], Location=f"{location}/{'/'.join(values)}/")
        sd["Parameters"] = dict(sd["Parameters"], objectCount=str(sample.partitions[values]))
        out.append({
            "Values": list(values),
            "DatabaseName": table["DatabaseName"],
            "TableName": table["Name"],
            "CreationTime": now.isoformat(),
            "StorageDescriptor": sd,
        })
    return out


def column_changes(before: Sequence[Mapping[str, str]], after: Sequence[Mapping[str, str]]) -> dict[str, list[str]]:
    """Columns added and columns whose type changed between two crawls."""
    old = {c["Name"]: c["Type"] for c in before}
    return {
        "added": [c["Name"] for c in after if c["Name"] not in old],
        "changed": [f"{c['Name']}: {old[c['Name']]} -> {c['Type']}" for c in after
                    if c["Name"] in old and old[c["Name"]] != c["Type"]],
    }
