"""Drift metrics: how the served forecasts fared against the actuals that arrived later.

Pure functions over data (records, dataframes); the monitor job (``drift_monitor.py``) does the I/O.

1. :func:`parse_capture_records` turns SageMaker Data Capture records (request instances,
   response quantiles, inference time) into :class:`ServedForecast` objects. A record says nothing of
   the model that answered it (AWS writes only ``eventId``, ``inferenceTime`` and ``inferenceId``);
   the endpoint config that wrote it does: each config captures to its own destination
   (``<base>/<endpoint>/<config>/<endpoint>/<variant>/YYYY/MM/DD/HH/``, see
   ``deployment.deploy.data_capture_destination``), and the config names its model package
   (:func:`capture_origin`, the ``packages`` map). This works on both backends and also while blue
   and green both serve during a deployment.
2. :func:`identify_series` finds which (thing, pollutant) each request instance was for, by
   matching the instance's history against the curated hourly lake (requests carry only
   DeepAR ``cat`` indices, whose meaning belongs to one training run).
3. :func:`score_forecasts` joins each forecast with the hourly actuals and computes its
   weighted quantile loss (wQL, as DeepAR reports it) and MASE (scaled by the seasonal-naive
   error of the history the request carried), with the definitions of :mod:`evaluation.metrics`
   that the Evaluate step's numbers, the drift baselines, use too.
4. :func:`hourly_errors` pools the loss per target hour; :func:`detect_drift` declares drift for
   a series when (nearly) every hour of a trailing ``window_hours`` window is beyond
   ``error_ratio`` × the wQL the model showed at evaluation.
5. :func:`input_drift` compares the distribution of recent readings with the data the model
   learned from (population stability index and the Kolmogorov-Smirnov statistic).

Times are *data* times (the hours of the series), so a replay of old readings behaves like live data.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from evaluation.metrics import quantile_loss, quantile_losses, seasonal_scale

HOUR = pd.Timedelta(hours=1)
#: series-matching key: how many of the history's last observed values must agree with the lake
MATCH_POINTS = 6


@dataclass(frozen=True)
class ServedForecast:
    """One instance of one request the endpoint answered."""

    event_id: str
    instance: int
    inference_time: datetime
    model_package_arn: str  # or ``endpoint-config/<name>`` / ``unknown`` when no package is known
    endpoint_config: str | None
    history_start: pd.Timestamp
    history: tuple[float, ...]
    cat: tuple[int, ...]
    quantiles: Mapping[float, tuple[float, ...]]
    mean: tuple[float, ...] | None

    @property
    def forecast_start(self) -> pd.Timestamp:
        """First hour the forecast is for (the hour after the history ends)."""
        return self.history_start + len(self.history) * HOUR

    @property
    def horizon(self) -> int:
        return max((len(v) for v in self.quantiles.values()), default=len(self.mean or ()))


@dataclass(frozen=True)
class Baseline:
    """The error a model package showed at evaluation (its ``evaluation.json``)."""

    mean_wql: float
    mase: float | None = None


@dataclass
class SeriesDrift:
    """The drift verdict for one (thing, pollutant) under one model package."""

    thing_name: str
    pollutant: str
    model_package_arn: str
    forecasts: int
    rolling_wql: float
    baseline_wql: float
    ratio: float
    rolling_mase: float | None
    drifted: bool
    degraded_since: str | None = None  # first forecast hour of the degraded run that triggered drift
    declared_at: str | None = None  # data hour when the evidence for drift was complete


@dataclass
class DriftDecision:
    """What the monitor concluded, for the report and the drift event."""

    drift: bool
    model_package_arn: str | None
    declared_at: str | None
    series: list[SeriesDrift] = field(default_factory=list)
    input_drift: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"drift": self.drift, "model_package_arn": self.model_package_arn, "declared_at": self.declared_at,
                "reason": self.reason, "series": [asdict(s) for s in self.series], "input_drift": self.input_drift}


# ---------------------------------------------------------------------------- capture parsing

def _payload(part: Mapping[str, Any]) -> Any:
    data = part.get("data", "")
    if part.get("encoding", "JSON").upper() == "BASE64":
        data = base64.b64decode(data).decode("utf-8")
    return json.loads(data)


def _floats(values: Iterable[Any]) -> tuple[float, ...]:
    return tuple(math.nan if v is None or v == "NaN" else float(v) for v in values)


def _parse_time(text: str) -> datetime:
    return pd.Timestamp(text).tz_convert("UTC").to_pydatetime() if pd.Timestamp(text).tzinfo else \
        pd.Timestamp(text).tz_localize("UTC").to_pydatetime()


_HOUR_PARTS = (r"\d{4}", r"\d{2}", r"\d{2}", r"\d{2}")


def capture_origin(key: str) -> tuple[str | None, str | None, str | None]:
    """``(endpoint config, endpoint, variant)`` of a capture file from its key under the endpoint's capture
    root: ``<config>/<endpoint>/<variant>/YYYY/MM/DD/HH/<file>``; ``None`` for what the key does not say
    (a destination shared by every config gives ``<variant>/YYYY/...`` only)."""
    parts = key.strip("/").split("/")
    if len(parts) < 6 or not all(re.fullmatch(p, x) for p, x in zip(_HOUR_PARTS, parts[-5:-1], strict=True)):
        return None, None, None
    prefix = parts[:-5]
    if len(prefix) >= 3:
        return prefix[-3], prefix[-2], prefix[-1]
    return None, None, prefix[-1] if prefix else None


def model_of(config: str | None, packages: Mapping[str, str]) -> str:
    """Who answered: the config's model package ARN, else ``endpoint-config/<name>``, else ``unknown``."""
    if config is None:
        return "unknown"
    return packages.get(config) or f"endpoint-config/{config}"


def parse_capture_records(records: Iterable[tuple[str, Mapping[str, Any]]],
                          packages: Mapping[str, str] | None = None) -> tuple[list[ServedForecast], list[str]]:
    """Data Capture records (``(key under the endpoint's capture root, record)``) → forecasts attributed
    by :func:`capture_origin` and ``packages`` (endpoint config → model package ARN), plus a reason for
    every record that could not be used."""
    forecasts: list[ServedForecast] = []
    problems: list[str] = []
    for n, (key, rec) in enumerate(records):
        config, _, _ = capture_origin(key)
        meta = rec.get("eventMetadata", {})
        event_id = str(meta.get("eventId", f"record-{n}"))
        try:
            capture = rec["captureData"]
            request = _payload(capture["endpointInput"])
            response = _payload(capture["endpointOutput"])
            instances = request["instances"]
            predictions = response["predictions"]
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"{event_id}: not a DeepAR request/response capture ({type(exc).__name__}: {exc})")
            continue
        if len(instances) != len(predictions):
            problems.append(f"{event_id}: {len(instances)} instances but {len(predictions)} predictions")
            continue
        when = _parse_time(meta.get("inferenceTime", "1970-01-01T00:00:00Z"))
        model = model_of(config, packages or {})
        for i, (inst, pred) in enumerate(zip(instances, predictions, strict=True)):
            quantiles = {float(q): _floats(v) for q, v in (pred.get("quantiles") or {}).items()}
            if not quantiles:
                problems.append(f"{event_id}[{i}]: the response has no quantiles; request output_types with "
                                "\"quantiles\" so the monitor can score it")
                continue
            forecasts.append(ServedForecast(
                event_id=event_id, instance=i, inference_time=when, model_package_arn=model,
                endpoint_config=config, history_start=pd.Timestamp(inst["start"]),
                history=_floats(inst["target"]), cat=tuple(int(c) for c in inst.get("cat") or ()),
                quantiles=quantiles, mean=_floats(pred["mean"]) if "mean" in pred else None))
    return forecasts, problems


# ---------------------------------------------------------------------------- lake

def hourly_matrix(hourly: pd.DataFrame) -> dict[tuple[str, str], pd.Series]:
    """Curated hourly rows → one hourly ``mean`` series per (thing_name, pollutant), indexed by naive UTC hour."""
    frame = hourly[["thing_name", "pollutant", "hour", "mean"]].copy()
    hours = pd.to_datetime(frame["hour"], utc=True).dt.tz_localize(None)
    frame["hour"] = hours.dt.floor("h")
    out = {}
    for (thing, pollutant), grp in frame.groupby(["thing_name", "pollutant"], sort=True):
        series = grp.groupby("hour")["mean"].mean().sort_index()
        out[(str(thing), str(pollutant))] = series
    return out


def _key(points: Sequence[tuple[pd.Timestamp, float]]) -> tuple[Any, ...]:
    return tuple((ts, round(v, 3)) for ts, v in points)


def identify_series(forecasts: Sequence[ServedForecast],
                    series: Mapping[tuple[str, str], pd.Series]) -> list[tuple[str, str] | None]:
    """Which (thing, pollutant) each forecast's history came from (None when no lake series matches).

    The key is the last :data:`MATCH_POINTS` observed (hour, value) pairs of the history, which a
    client builds from the lake; values are compared to 3 decimals.
    """
    index: dict[tuple[Any, ...], tuple[str, str]] = {}
    wanted = {f.forecast_start for f in forecasts}
    for name, s in series.items():
        s = s.dropna()
        if len(s) < MATCH_POINTS:
            continue
        hours = s.index
        values = s.to_numpy()
        # only the positions that end right before some forecast start can match
        for end in hours.searchsorted(sorted(wanted)):
            if end < MATCH_POINTS:
                continue
            pts = list(zip(hours[end - MATCH_POINTS:end], values[end - MATCH_POINTS:end], strict=True))
            index.setdefault(_key(pts), name)
    out: list[tuple[str, str] | None] = []
    for f in forecasts:
        pts = [(f.history_start + i * HOUR, v) for i, v in enumerate(f.history) if not math.isnan(v)]
        out.append(index.get(_key(pts[-MATCH_POINTS:])) if len(pts) >= MATCH_POINTS else None)
    return out


def _hour_number(ts: pd.Timestamp) -> int:
    return int(pd.Timestamp(ts).value // 3_600_000_000_000)


class _DenseSeries:
    """Hourly values as one array from the first hour (fast slicing for many forecasts)."""

    def __init__(self, s: pd.Series) -> None:
        self.first = _hour_number(s.index.min()) if len(s) else 0
        values = np.full((_hour_number(s.index.max()) - self.first + 1) if len(s) else 0, np.nan)
        if len(s):
            values[[_hour_number(h) - self.first for h in s.index]] = s.to_numpy(dtype=float)
        self.values = values

    def window(self, start: pd.Timestamp, length: int) -> np.ndarray:
        out = np.full(length, np.nan)
        a = _hour_number(start) - self.first
        lo, hi = max(a, 0), min(a + length, len(self.values))
        if lo < hi:
            out[lo - a:hi - a] = self.values[lo:hi]
        return out


def _dense(series: Mapping[tuple[str, str], pd.Series]) -> dict[tuple[str, str], _DenseSeries]:
    return {k: _DenseSeries(v) for k, v in series.items()}


# ---------------------------------------------------------------------------- metrics

def score_forecasts(forecasts: Sequence[ServedForecast], names: Sequence[tuple[str, str] | None],
                    series: Mapping[tuple[str, str], pd.Series], min_coverage: float = 0.5) -> pd.DataFrame:
    """One row per forecast whose actuals are (mostly) known: wQL, MASE and their ingredients.

    Columns: thing_name, pollutant, model_package_arn, forecast_start, inference_time, horizon,
    n_actuals, qloss (Σ over quantiles of the wQL numerator / number of quantiles), abs_actual,
    wql (qloss / abs_actual), abs_error (Σ |y − median|), scale, mase, last_actual_hour.
    """
    rows = []
    dense = _dense(series)
    for f, name in zip(forecasts, names, strict=True):
        if name is None or name not in dense:
            continue
        actual = dense[name].window(f.forecast_start, f.horizon)
        known = int((~np.isnan(actual)).sum())
        if known == 0 or known < min_coverage * f.horizon:
            continue
        qs = sorted(f.quantiles)
        qloss = float(np.mean([quantile_loss(actual, np.asarray(f.quantiles[q]), q) for q in qs]))
        abs_actual = float(np.nansum(np.abs(actual)))
        median_q = min(qs, key=lambda q: abs(q - 0.5))
        median = np.asarray(f.mean if f.mean is not None and abs(median_q - 0.5) > 1e-9 else f.quantiles[median_q])
        abs_error = float(np.nansum(np.abs(actual - median)))
        scale = seasonal_scale(np.asarray(f.history))
        mask = ~np.isnan(actual)
        rows.append({
            "thing_name": name[0], "pollutant": name[1], "model_package_arn": f.model_package_arn,
            "forecast_start": f.forecast_start, "inference_time": pd.Timestamp(f.inference_time),
            "horizon": f.horizon, "n_actuals": known, "qloss": qloss, "abs_actual": abs_actual,
            "wql": qloss / abs_actual if abs_actual > 0 else math.nan,
            "abs_error": abs_error, "scale": scale,
            "mase": abs_error / known / scale if scale else math.nan,
            "last_actual_hour": f.forecast_start + int(np.flatnonzero(mask)[-1]) * HOUR,
        })
    columns = ["thing_name", "pollutant", "model_package_arn", "forecast_start", "inference_time", "horizon",
               "n_actuals", "qloss", "abs_actual", "wql", "abs_error", "scale", "mase", "last_actual_hour"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["thing_name", "pollutant", "forecast_start"]).reset_index(drop=True)


def baseline_from_evaluation(evaluation: Mapping[str, Any]) -> Baseline:
    """The model's evaluation error from its ``evaluation.json`` (``forecast_metrics`` section)."""
    try:
        metrics = evaluation["forecast_metrics"]
        wql = float(metrics["mean_wQuantileLoss"]["value"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("evaluation.json has no forecast_metrics.mean_wQuantileLoss.value; "
                         "it must be the Evaluate step's output") from exc
    mase = metrics.get("MASE", {}).get("value")
    return Baseline(mean_wql=wql, mase=float(mase) if mase is not None else None)


def error_timeline(scores: pd.DataFrame) -> pd.DataFrame:
    """Error over time across all series: per (model, forecast hour) pooled wQL and mean MASE."""
    if scores.empty:
        return pd.DataFrame(columns=["model_package_arn", "forecast_start", "wql", "mase", "series"])
    grouped = scores.groupby(["model_package_arn", "forecast_start"])
    out = grouped.agg(qloss=("qloss", "sum"), abs_actual=("abs_actual", "sum"), mase=("mase", "mean"),
                      series=("thing_name", "count")).reset_index()
    out["wql"] = out["qloss"] / out["abs_actual"]
    return out[["model_package_arn", "forecast_start", "wql", "mase", "series"]].sort_values("forecast_start")


# ---------------------------------------------------------------------------- drift decision

def hourly_errors(forecasts: Sequence[ServedForecast], names: Sequence[tuple[str, str] | None],
                  series: Mapping[tuple[str, str], pd.Series]) -> pd.DataFrame:
    """The error per *target hour*: for each (series, model, hour with an actual), the wQL numerator
    pooled over every served forecast that covered that hour, and the matching Σ|y|.

    Columns: thing_name, pollutant, model_package_arn, hour, qloss, abs_actual, forecasts.
    """
    parts: dict[str, list[Any]] = {c: [] for c in ("thing_name", "pollutant", "model_package_arn", "hour",
                                                     "qloss", "abs_actual")}
    dense = _dense(series)
    for f, name in zip(forecasts, names, strict=True):
        if name is None or name not in dense:
            continue
        actual = dense[name].window(f.forecast_start, f.horizon)
        mask = ~np.isnan(actual)
        if not mask.any():
            continue
        qs = sorted(f.quantiles)
        y = actual[mask]
        loss = np.zeros(int(mask.sum()))
        for q in qs:
            loss += quantile_losses(actual, np.asarray(f.quantiles[q], dtype=float)[: len(actual)], q)[mask]
        n = len(y)
        parts["thing_name"].extend([name[0]] * n)
        parts["pollutant"].extend([name[1]] * n)
        parts["model_package_arn"].extend([f.model_package_arn] * n)
        parts["hour"].extend(f.forecast_start + int(i) * HOUR for i in np.flatnonzero(mask))
        parts["qloss"].extend(loss / len(qs))
        parts["abs_actual"].extend(np.abs(y))
    columns = ["thing_name", "pollutant", "model_package_arn", "hour", "qloss", "abs_actual", "forecasts"]
    if not parts["hour"]:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(parts)
    frame["forecasts"] = 1
    out = frame.groupby(["thing_name", "pollutant", "model_package_arn", "hour"], as_index=False).sum()
    return out[columns].sort_values(["thing_name", "pollutant", "hour"]).reset_index(drop=True)


def detect_drift(hourly: pd.DataFrame, scores: pd.DataFrame, baselines: Mapping[str, Baseline],
                 model_package_arn: str, error_ratio: float, window_hours: int,
                 min_degraded_fraction: float = 0.8) -> list[SeriesDrift]:
    """Per-series verdicts for the hours forecast by ``model_package_arn``.

    An hour is degraded when the pooled wQL of the forecasts covering it exceeds ``error_ratio`` ×
    the model's evaluation wQL. A series drifts at the first hour whose trailing ``window_hours``
    are (nearly) all known and at least ``min_degraded_fraction`` degraded: the error *stayed* high,
    a few bad hours (a spike, a storm) are not enough. ``scores`` (per forecast) supplies the
    recent rolling wQL and MASE shown next to the verdict.
    """
    if error_ratio <= 0 or window_hours <= 0:
        raise ValueError(f"error_ratio and window_hours must be positive, got {error_ratio} and {window_hours}")
    if not 0 < min_degraded_fraction <= 1:
        raise ValueError(f"min_degraded_fraction must be in (0, 1], got {min_degraded_fraction}")
    baseline = baselines.get(model_package_arn)
    if baseline is None:
        raise ValueError(f"no evaluation baseline for {model_package_arn}; pass its evaluation.json")
    threshold = error_ratio * baseline.mean_wql
    mine = hourly[hourly["model_package_arn"] == model_package_arn]
    mine_scores = scores[scores["model_package_arn"] == model_package_arn]
    verdicts = []
    for (thing, pollutant), grp in mine.groupby(["thing_name", "pollutant"], sort=True):
        per_hour = grp.set_index("hour").sort_index()
        full = pd.date_range(per_hour.index.min(), per_hour.index.max(), freq="h")
        wql = (per_hour["qloss"] / per_hour["abs_actual"].where(per_hour["abs_actual"] > 0)).reindex(full)
        known = wql.notna().astype(float)
        degraded = (wql > threshold).astype(float)
        known_in_window = known.rolling(window_hours, min_periods=1).sum()
        degraded_in_window = degraded.rolling(window_hours, min_periods=1).sum()
        # a window counts once 3/4 of its hours have actuals; the degraded share is over the known hours
        ok = (known_in_window >= 0.75 * window_hours) & \
            (degraded_in_window >= min_degraded_fraction * known_in_window)
        since = declared = None
        if ok.any():
            declared = ok.idxmax()
            window = degraded[declared - (window_hours - 1) * HOUR: declared]
            # where the dense degraded block starts (noise-degraded hours before it are not "since")
            share_to_end = window[::-1].cumsum()[::-1] / np.arange(len(window), 0, -1)
            dense = window[(window > 0) & (share_to_end >= 0.9)]
            since = dense.index.min() if len(dense) else window[window > 0].index.min()
        s = mine_scores[(mine_scores["thing_name"] == thing) & (mine_scores["pollutant"] == pollutant)]
        recent = s[s["forecast_start"] > s["forecast_start"].max() - window_hours * HOUR] if len(s) else s
        total = float(recent["abs_actual"].sum()) if len(recent) else 0.0
        if total > 0:
            rolling = float(recent["qloss"].sum()) / total
        else:  # no whole forecasts scored yet: the recent hours still say something
            tail = per_hour[per_hour.index > per_hour.index.max() - window_hours * HOUR]
            rolling = float(tail["qloss"].sum() / tail["abs_actual"].sum()) if tail["abs_actual"].sum() else math.nan
        mase = float(recent["mase"].mean()) if len(recent) and recent["mase"].notna().any() else None
        verdicts.append(SeriesDrift(
            thing_name=str(thing), pollutant=str(pollutant), model_package_arn=model_package_arn,
            forecasts=int(len(s)), rolling_wql=rolling, baseline_wql=baseline.mean_wql,
            ratio=rolling / baseline.mean_wql if baseline.mean_wql > 0 else math.inf, rolling_mase=mase,
            drifted=declared is not None,
            degraded_since=since.isoformat() if since is not None else None,
            declared_at=declared.isoformat() if declared is not None else None))
    return verdicts


# ---------------------------------------------------------------------------- input drift

def population_stability_index(reference: np.ndarray, recent: np.ndarray, bins: int = 10) -> float:
    """PSI of ``recent`` against ``reference`` over the reference's quantile bins (> 0.25: a big shift)."""
    reference = reference[~np.isnan(reference)]
    recent = recent[~np.isnan(recent)]
    if len(reference) == 0 or len(recent) == 0:
        raise ValueError("PSI needs values in both the reference and the recent sample")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    if len(edges) < 3:  # a constant reference: split at its value
        value = float(np.median(reference))
        edges = np.array([-np.inf, value, np.inf])
    ref = np.histogram(reference, edges)[0] / len(reference)
    cur = np.histogram(recent, edges)[0] / len(recent)
    eps = 1e-4  # empty bins would make the log infinite
    ref, cur = np.clip(ref, eps, None), np.clip(cur, eps, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def ks_statistic(reference: np.ndarray, recent: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    a = np.sort(reference[~np.isnan(reference)])
    b = np.sort(recent[~np.isnan(recent)])
    if len(a) == 0 or len(b) == 0:
        raise ValueError("KS needs values in both samples")
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def input_drift(series: Mapping[tuple[str, str], pd.Series], reference_end: pd.Timestamp, recent_end: pd.Timestamp,
                reference_hours: int, recent_hours: int, psi_threshold: float = 0.25) -> list[dict[str, Any]]:
    """Recent readings (``recent_hours`` up to ``recent_end``) vs the readings the model learned from
    (``reference_hours`` before ``reference_end``), per series."""
    out = []
    for (thing, pollutant), s in series.items():
        ref = s[(s.index < reference_end) & (s.index >= reference_end - reference_hours * HOUR)].to_numpy(float)
        cur = s[(s.index <= recent_end) & (s.index > recent_end - recent_hours * HOUR)].to_numpy(float)
        ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
        if len(ref) < 24 or len(cur) < 12:
            continue  # too little data to say anything
        # few recent points in many bins inflate PSI by about (bins - 1) / n: keep ~10 points per bin
        psi = population_stability_index(ref, cur, bins=int(min(10, max(3, len(cur) // 10))))
        out.append({"thing_name": thing, "pollutant": pollutant, "psi": round(psi, 4),
                    "ks": round(ks_statistic(ref, cur), 4), "reference_mean": round(float(ref.mean()), 3),
                    "recent_mean": round(float(cur.mean()), 3), "drifted": psi > psi_threshold})
    return out


def decide(hourly: pd.DataFrame, scores: pd.DataFrame, baselines: Mapping[str, Baseline],
           serving_model: str | None, error_ratio: float, window_hours: int,
           min_degraded_fraction: float = 0.8) -> DriftDecision:
    """The overall verdict for the serving model: drift if any series drifted (earliest declaration)."""
    if serving_model is None:
        return DriftDecision(False, None, None, reason="no served forecasts captured yet")
    if serving_model not in baselines:
        return DriftDecision(False, serving_model, None,
                             reason=f"no evaluation baseline for {serving_model}; cannot judge its error")
    verdicts = detect_drift(hourly, scores, baselines, serving_model, error_ratio, window_hours,
                            min_degraded_fraction)
    if not verdicts:
        return DriftDecision(False, serving_model, None, verdicts,
                             reason="no served forecast of this model has actuals yet")
    drifted = [v for v in verdicts if v.drifted]
    if not drifted:
        worst = max(verdicts, key=lambda v: v.ratio if not math.isnan(v.ratio) else -1)
        return DriftDecision(False, serving_model, None, verdicts,
                             reason=f"no series stayed above {error_ratio}× the evaluation wQL for {window_hours} h "
                                    f"(highest recent: {worst.thing_name}/{worst.pollutant} at {worst.ratio:.2f}×)")
    first = min(drifted, key=lambda v: v.declared_at or "")
    return DriftDecision(True, serving_model, first.declared_at, verdicts,
                         reason=f"{len(drifted)} series stayed above {error_ratio}× the evaluation wQL for "
                                f"{window_hours} h (first: {first.thing_name}/{first.pollutant}, degraded since "
                                f"{first.degraded_since})")

