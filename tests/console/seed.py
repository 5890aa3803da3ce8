"""Data for the console tests: curated lake tables, a real local stack, served forecasts for the monitor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aircast.settings import Settings

#: tiny and fast pipeline runs (as tests/pipeline/test_local_e2e.py)
FAST = {"Epochs": 1, "NumEvalWindows": 2, "NumValidationWindows": 2, "ContextLength": 24, "NumCells": 8,
        "NumLayers": 1, "MiniBatchSize": 8, "DropoutRate": 0.0, "MaxTuningJobs": 1, "MaxParallelTuningJobs": 1}
PASSING_GATE = {"MaxRelativeWQL": 100.0, "MaxMeanWQL": 100.0}
FAILING_GATE = {"MaxMeanWQL": 1e-9}


def write_readings_and_quarantine(s3_root: Path, things: dict[str, int], days: int = 5,
                                  quarantine: dict[str, int] | None = None) -> None:
    """Curated ``readings`` (``things``: readings per day each) and ``quarantine`` rows (reason → count)."""
    root = s3_root / "aircast-lake" / "curated"
    start = pd.Timestamp("2024-01-01", tz="UTC")
    for d in range(days):
        day = (start + pd.Timedelta(days=d)).date()
        rows = [{"thing_name": thing, "timestamp": start + pd.Timedelta(days=d, minutes=10 * i), "pm2_5": 10.0 + i}
                for thing, per_day in things.items() for i in range(per_day)]
        folder = root / "readings" / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_parquet(folder / "part-0.parquet", index=False)
    if quarantine:
        rows = [{"raw": f"record {i}", "reason": reason} for reason, n in quarantine.items() for i in range(n)]
        folder = root / "quarantine" / f"dt={start.date()}"
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_parquet(folder / "part-0.parquet", index=False)


def lake_series(settings: Settings, thing: str, pollutant: str) -> pd.Series:
    """One hourly series of the curated lake, indexed by hour (UTC)."""
    frame = pd.concat(pd.read_parquet(p) for p in sorted((settings.s3_root / settings.lake_bucket / "curated" /
                                                          "hourly").rglob("*.parquet")))
    frame = frame[(frame["thing_name"] == thing) & (frame["pollutant"] == pollutant)]
    hours = pd.to_datetime(frame["hour"], utc=True)
    series = pd.Series(frame["mean"].to_numpy(), index=hours).sort_index()
    return series.reindex(pd.date_range(series.index.min(), series.index.max(), freq="h"))


def serve_forecasts_inside_the_lake(settings: Settings, thing: str, pollutant: str, cat: list[int] | None,
                                    windows: int = 4, history_hours: int = 72, horizon: int = 24) -> int:
    """Invoke the endpoint with histories that end ``horizon``·k hours before the lake's end, so the
    drift monitor finds actuals for the forecasts (Data Capture records them); returns the count."""
    from aircast.clients import get_client

    runtime = get_client("sagemaker-runtime", settings)
    series = lake_series(settings, thing, pollutant)
    served = 0
    for k in range(windows, 0, -1):
        end = len(series) - horizon * k
        hist = series.iloc[end - history_hours:end]
        instance: dict[str, Any] = {"start": hist.index[0].strftime("%Y-%m-%d %H:%M:%S"),
                                    "target": [None if np.isnan(v) else round(float(v), 6) for v in hist]}
        instance["target"] = ["NaN" if v is None else v for v in instance["target"]]
        if cat is not None:
            instance["cat"] = cat
        body = {"instances": [instance], "configuration": {"num_samples": 50, "output_types": ["mean", "quantiles"],
                                                           "quantiles": ["0.1", "0.5", "0.9"]}}
        resp = runtime.invoke_endpoint(EndpointName=settings.endpoint_name, ContentType="application/json",
                                       Body=json.dumps(body).encode())
        resp["Body"].read()
        served += 1
    return served
