"""The lake's layout in one place (aircast.lake_paths): every part of aircast that names a lake location
gets the same one, the local folders are where the local S3 keeps those keys, and the layout is the stack's."""

from __future__ import annotations

import re

import pytest

from aircast.clients import get_client
from aircast.event_rules import retrain_parameters
from aircast.lake_paths import (
    CURATED_TABLES,
    RAW_TELEMETRY_PREFIX,
    curated_uri,
    local_curated_dir,
    local_raw_telemetry_dir,
    raw_telemetry_uri,
)
from pipelines.definition import pipeline_kwargs
from tests.conftest import REPO_ROOT


def test_the_training_data_uri_is_the_curated_hourly_table_everywhere(settings) -> None:
    hourly = curated_uri(settings, "hourly")
    assert hourly == f"s3://{settings.lake_bucket}/curated/hourly/"
    assert pipeline_kwargs(settings)["input_data_uri"] == hourly  # a pipeline started by hand
    assert {"Name": "InputDataUri", "Value": hourly} in retrain_parameters(settings)  # a retraining rule
    assert curated_uri(settings) == f"s3://{settings.lake_bucket}/curated/"
    assert raw_telemetry_uri(settings) == f"s3://{settings.lake_bucket}/raw/telemetry/"


def test_the_local_folders_are_where_the_local_s3_keeps_those_keys(settings) -> None:
    s3 = get_client("s3", settings)
    for table in CURATED_TABLES:
        s3.put_object(Bucket=settings.lake_bucket, Key=f"curated/{table}/dt=2024-01-01/part-0.parquet", Body=b"x")
        assert (local_curated_dir(settings, table) / "dt=2024-01-01" / "part-0.parquet").read_bytes() == b"x"
    s3.put_object(Bucket=settings.lake_bucket, Key=f"{RAW_TELEMETRY_PREFIX}2024/01/01/00/obj", Body=b"{}\n")
    assert (local_raw_telemetry_dir(settings) / "2024" / "01" / "01" / "00" / "obj").is_file()
    assert local_curated_dir(settings) == local_curated_dir(settings, "hourly").parent


def test_an_unknown_table_is_refused(settings) -> None:
    with pytest.raises(ValueError, match="unknown curated table 'hourlies'"):
        curated_uri(settings, "hourlies")


def test_the_layout_is_the_stacks() -> None:
    """The delivery stream writes under the raw prefix; the stack's rules pass the curated hourly table."""
    template = (REPO_ROOT / "infra" / "aws" / "aircast.yaml").read_text()
    assert re.search(rf'^\s+Prefix: "{re.escape(RAW_TELEMETRY_PREFIX)}!\{{timestamp', template, re.M)
    assert "/curated/hourly/" in template
