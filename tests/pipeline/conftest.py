"""Shared helpers of the pipeline tests: the built definition and tiny curated data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROLE = "arn:aws:iam::123456789012:role/aircast-sagemaker-execution"


@pytest.fixture(scope="session")
def definition() -> dict:
    """The aircast pipeline definition, built once (the SDK import takes seconds)."""
    from pipelines.aircast.pipeline import get_pipeline

    return json.loads(get_pipeline(region="eu-west-1", role=ROLE).definition())


def write_curated_hourly(s3_root: Path, things: tuple[str, ...] = ("station-a", "station-b"),
                         pollutants: tuple[str, ...] = ("pm2_5",), days: int = 12, seed: int = 0) -> int:
    """Curated hourly parquet (daily seasonal signal + noise, a few missing hours) under the local lake."""
    root = s3_root / "aircast-lake" / "curated" / "hourly"
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2024-01-01", periods=24 * days, freq="h")
    rows = []
    for t, thing in enumerate(things):
        for p, pollutant in enumerate(pollutants):
            level = 40 + 10 * t + 5 * p + 20 * np.sin(2 * np.pi * np.arange(len(hours)) / 24)
            values = level + rng.normal(0, 4, len(hours))
            keep = rng.random(len(hours)) > 0.03
            for hour, value in zip(hours[keep], values[keep], strict=True):
                rows.append({"thing_name": thing, "pollutant": pollutant, "hour": hour, "mean": float(value),
                             "count": 4, "min": float(value) - 1, "max": float(value) + 1})
    frame = pd.DataFrame(rows)
    for day, group in frame.groupby(frame["hour"].dt.date):
        folder = root / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        group.to_parquet(folder / "part-0.parquet", index=False)
    return len(frame)
