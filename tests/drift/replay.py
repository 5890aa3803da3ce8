"""Replays for the drift tests: a curated hourly lake with an optional regime change, a model
fitted on the first weeks (a per-hour-of-day profile with residual quantiles, which goes stale
when a sensor's level shifts, as a trained model does), and the Data Capture lines SageMaker (and
the endpoint host) writes when that model serves forecasts: AWS's members only, under the serving
endpoint config's capture destination."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from aircast.settings import Settings

T0 = pd.Timestamp("2026-01-01 00:00:00")
QUANTILES = ("0.1", "0.5", "0.9")
HORIZON = 24


@dataclass(frozen=True)
class Scenario:
    days: int = 24
    train_days: int = 12
    things: tuple[str, ...] = ("sensor-a", "sensor-b")
    shift_thing: str | None = None
    shift_day: float = 17.0
    shift_factor: float = 2.5
    issue_every_h: int = 3
    seed: int = 7

    @property
    def shift_hour(self) -> pd.Timestamp:
        return T0 + pd.Timedelta(hours=int(self.shift_day * 24))


def hourly_frame(sc: Scenario) -> pd.DataFrame:
    """Curated hourly rows (pm2_5) for every thing; the shifted thing's level changes at ``shift_hour``."""
    rng = np.random.default_rng(sc.seed)
    hours = pd.date_range(T0, periods=sc.days * 24, freq="h")
    rows = []
    for k, thing in enumerate(sc.things):
        level = 60.0 + 15 * k
        values = level + 25 * np.sin(2 * np.pi * (hours.hour.to_numpy() + 3 * k) / 24) + rng.normal(0, 4, len(hours))
        if thing == sc.shift_thing:
            values = np.where(hours >= sc.shift_hour, values * sc.shift_factor, values)
        for h, v in zip(hours, values, strict=True):
            rows.append({"thing_name": thing, "pollutant": "pm2_5", "hour": h, "mean": round(float(v), 3),
                         "count": 60, "min": float(v) - 1, "max": float(v) + 1})
    return pd.DataFrame(rows)


def write_lake(settings: Settings, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as ``curated/hourly/dt=YYYY-MM-DD/part-0.parquet`` in the local lake."""
    root = settings.s3_root / settings.lake_bucket / "curated" / "hourly"
    for day, grp in frame.groupby(frame["hour"].dt.strftime("%Y-%m-%d")):
        folder = root / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        grp.to_parquet(folder / "part-0.parquet", index=False)
    return root


class ProfileModel:
    """What the trained model knows: each series' hour-of-day mean and residual quantiles on the training days."""

    def __init__(self, frame: pd.DataFrame, train_until: pd.Timestamp) -> None:
        train = frame[frame["hour"] < train_until]
        self.profile: dict[str, np.ndarray] = {}
        self.spread: dict[str, dict[str, float]] = {}
        for thing, grp in train.groupby("thing_name"):
            by_hour = grp.groupby(grp["hour"].dt.hour)["mean"].mean().to_numpy()
            resid = grp["mean"].to_numpy() - by_hour[grp["hour"].dt.hour.to_numpy()]
            self.profile[thing] = by_hour
            self.spread[thing] = {q: float(np.quantile(resid, float(q))) for q in QUANTILES}

    def predict(self, thing: str, start: pd.Timestamp) -> dict[str, object]:
        hours = pd.date_range(start, periods=HORIZON, freq="h").hour.to_numpy()
        base = self.profile[thing][hours]
        return {"mean": [round(float(v), 3) for v in base],
                "quantiles": {q: [round(float(v + self.spread[thing][q]), 3) for v in base] for q in QUANTILES}}


def serving_config(settings: Settings, model_package_arn: str, name: str) -> str:
    """The endpoint config that serves a package, made in the local control plane as ``deploy_model_package``
    makes it (model from the package, one variant); returns its name."""
    from aircast.clients import get_client

    sm = get_client("sagemaker", settings)
    sm.create_model(ModelName=name, PrimaryContainer={"ModelPackageName": model_package_arn},
                    ExecutionRoleArn=settings.role_arn)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    return name


def placeholder_model(settings: Settings, name: str) -> str:
    """A model data URL whose object exists (CreateModel checks it; no host loads it in these tests)."""
    path = settings.s3_root / settings.artifacts_bucket / "models" / name / "model.tar.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"placeholder")
    return f"s3://{settings.artifacts_bucket}/models/{name}/model.tar.gz"


def write_capture(settings: Settings, frame: pd.DataFrame, model: ProfileModel, endpoint_config: str,
                  issue_from: pd.Timestamp, issue_until: pd.Timestamp, every_h: int, context_h: int = 72) -> int:
    """Data Capture lines for forecasts issued from ``issue_from`` to ``issue_until`` by the fleet of
    ``endpoint_config``: under its destination ``datacapture/<endpoint>/<config>`` (as
    ``deployment.deploy.data_capture_destination`` sets it), then SageMaker's ``<endpoint>/<variant>/YYYY/MM/DD/HH``."""
    series = {t: g.set_index("hour")["mean"] for t, g in frame.groupby("thing_name")}
    endpoint = settings.endpoint_name
    base = settings.s3_root / settings.artifacts_bucket / "datacapture" / endpoint / endpoint_config / endpoint / "AllTraffic"
    n = 0
    issue = issue_from
    while issue <= issue_until:
        start = issue - pd.Timedelta(hours=context_h)
        instances, predictions = [], []
        for k, (thing, s) in enumerate(sorted(series.items())):
            history = s.reindex(pd.date_range(start, periods=context_h, freq="h"))
            instances.append({"start": start.strftime("%Y-%m-%d %H:%M:%S"), "cat": [0, k],
                              "target": ["NaN" if np.isnan(v) else float(v) for v in history]})
            predictions.append(model.predict(thing, issue))
        request = {"instances": instances, "configuration": {"num_samples": 50, "output_types": ["mean", "quantiles"],
                                                             "quantiles": list(QUANTILES)}}
        served = datetime(2026, 6, 1, tzinfo=UTC) + timedelta(minutes=n)
        path = base / served.strftime("%Y/%m/%d/%H") / f"{served:%M}-replay.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "captureData": {
                "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                  "data": json.dumps(request), "encoding": "JSON"},
                "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                   "data": json.dumps({"predictions": predictions}), "encoding": "JSON"}},
            "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": served.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "eventVersion": "0"}
        with open(path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        n += 1
        issue += pd.Timedelta(hours=every_h)
    return n


def evaluation_json(mean_wql: float, mase: float = 1.0) -> dict[str, object]:
    """An ``evaluation.json`` in the Evaluate step's shape."""
    return {"forecast_metrics": {"mean_wQuantileLoss": {"value": mean_wql}, "MASE": {"value": mase}},
            "baseline_metrics": {}, "evaluation": {"prediction_length": HORIZON}}
