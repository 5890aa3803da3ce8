"""Where the data lies in the lake bucket, in one place: the raw prefix the Firehose stream delivers to, the
curated prefix the Glue job writes and its tables.

The layout is the stack's (infra/aws/aircast.yaml: the delivery stream's prefix, the job's ``--source_uri`` and
``--target_uri``, the crawlers' targets). Everything in aircast that names a lake location builds it here, as an
S3 URI for either backend, or, on the local backend only, as the folder that plays that prefix.
"""

from __future__ import annotations

from pathlib import Path

from aircast.settings import Settings

#: the delivery stream's prefix: one JSON line per reading, in Firehose's yyyy/MM/dd/HH folders
RAW_TELEMETRY_PREFIX = "raw/telemetry/"
#: the Glue job's target: one folder per table, partitioned by day (dt=YYYY-MM-DD)
CURATED_PREFIX = "curated/"
CURATED_TABLES = ("readings", "hourly", "quarantine")


def _key_prefix(prefix: str, table: str | None) -> str:
    if table is None:
        return prefix
    if table not in CURATED_TABLES:
        raise ValueError(f"unknown curated table {table!r}: expected one of {', '.join(CURATED_TABLES)}")
    return f"{prefix}{table}/"


def raw_telemetry_uri(settings: Settings) -> str:
    """``s3://<lake>/raw/telemetry/``: the raw readings the Glue job reads."""
    return f"{settings.lake_uri}/{RAW_TELEMETRY_PREFIX}"


def curated_uri(settings: Settings, table: str | None = None) -> str:
    """``s3://<lake>/curated/`` or, with ``table``, that table's prefix (``s3://<lake>/curated/hourly/``)."""
    return f"{settings.lake_uri}/{_key_prefix(CURATED_PREFIX, table)}"


def local_raw_telemetry_dir(settings: Settings) -> Path:
    """The folder that plays ``raw/telemetry/`` on the local backend."""
    return settings.s3_root / settings.lake_bucket / RAW_TELEMETRY_PREFIX


def local_curated_dir(settings: Settings, table: str | None = None) -> Path:
    """The folder that plays ``curated/`` (or one table's prefix) on the local backend, for readers that query
    the files in place (DuckDB over the parquet)."""
    return settings.s3_root / settings.lake_bucket / _key_prefix(CURATED_PREFIX, table)
