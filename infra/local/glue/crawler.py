"""The local Glue crawler: reads the raw objects through the S3 stand-in, infers the
``raw_telemetry`` table with ``processing.crawler`` and stores it in the local catalog."""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ClientError

from aircast.settings import Settings
from infra.local.glue.catalog import LocalGlueClient
from processing.crawler import SAMPLE_BYTES, CrawlSample, build_partitions, build_table, column_changes

RAW_PREFIX = "raw/telemetry/"
RAW_TABLE = "raw_telemetry"


class NoRawDataError(ValueError):
    """There is no raw object to crawl or process."""


def raw_uri(settings: Settings) -> str:
    return f"{settings.lake_uri}/{RAW_PREFIX}"


def list_raw_keys(s3: Any, bucket: str, prefix: str = RAW_PREFIX) -> list[str]:
    """Every object key under ``prefix`` (paginated, as boto3 returns them)."""
    keys: list[str] = []
    token = None
    while True:
        page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, **({"ContinuationToken": token} if token else {}))
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return keys
        token = page["NextContinuationToken"]


def require_raw_data(settings: Settings) -> list[str]:
    """Raw object keys; raise ``NoRawDataError`` naming the prefix (and its folder) when there are none."""
    from aircast.clients import get_client

    keys = list_raw_keys(get_client("s3", settings), settings.lake_bucket)
    if not keys:
        folder = settings.s3_root / settings.lake_bucket / RAW_PREFIX
        raise NoRawDataError(
            f"no raw data under {raw_uri(settings)} ({folder}): start the local stack and a device "
            "(`aircast local up`, `aircast device ...`) or copy Firehose objects there"
        )
    return keys


def run_crawler(settings: Settings, now: dt.datetime | None = None) -> dict[str, Any]:
    """Crawl ``raw/telemetry/`` into table ``raw_telemetry``; return the table and what changed."""
    from aircast.clients import get_client

    keys = require_raw_data(settings)
    s3 = get_client("s3", settings)
    sample = CrawlSample()
    for key in keys:
        body = s3.get_object(Bucket=settings.lake_bucket, Key=key)["Body"]
        sample.add_object(key, body.read(SAMPLE_BYTES + 1))
    glue = LocalGlueClient(settings)
    glue.ensure_database(settings.glue_database)
    try:
        existing = glue.get_table(DatabaseName=settings.glue_database, Name=RAW_TABLE)["Table"]
    except ClientError:
        existing = None
    table = build_table(RAW_TABLE, settings.glue_database, raw_uri(settings), sample, existing, now)
    glue.put_table(settings.glue_database, table)
    partitions = build_partitions(table, sample, now)
    if partitions:
        glue.batch_create_partition(DatabaseName=settings.glue_database, TableName=RAW_TABLE,
                                    PartitionInputList=partitions)
    stored = glue.get_table(DatabaseName=settings.glue_database, Name=RAW_TABLE)["Table"]
    before = existing["StorageDescriptor"]["Columns"] if existing else []
    return {
        "table": stored,
        "partitions": len(glue.get_partitions(DatabaseName=settings.glue_database, TableName=RAW_TABLE)["Partitions"]),
        "objects": sample.objects,
        "records": sample.records,
        "unparsable": sample.unparsable,
        **column_changes(before, stored["StorageDescriptor"]["Columns"]),
    }
