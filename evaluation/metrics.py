"""Probabilistic forecast metrics and the seasonal-naive baseline (pure NumPy).

Definitions follow GluonTS's ``Evaluator`` so numbers line up with what DeepAR reports:

* quantile loss ``QL_q = 2 * sum(|(y - f_q) * (1[y <= f_q] - q)|)``; weighted quantile loss
  ``wQL_q = sum over all forecasts of QL_q / sum |y|``; ``mean_wQuantileLoss`` is their mean;
* ``RMSE = sqrt(mean over forecasts of the per-forecast mean squared error of the mean)``;
* ``MASE = mean over forecasts of mean|y - median| / seasonal_error(history, m)``,
  ``seasonal_error = mean |y_t - y_{t-m}|`` over the forecast's own history;
* ``coverage[lo,hi]`` = share of observed points with ``f_lo <= y <= f_hi`` (pooled).

Missing actuals (NaN) are masked everywhere: they are neither scored nor counted in ``sum |y|``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = [
    "QUANTILES",
    "SEASONALITY",
    "QuantileForecast",
    "coverage",
    "forecast_metrics",
    "mean_squared_error",
    "quantile_loss",
    "quantile_losses",
    "seasonal_error",
    "seasonal_scale",
    "seasonal_naive_forecast",
]

QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)
#: Hourly data: a day.
SEASONALITY = 24


@dataclass(frozen=True)
class QuantileForecast:
    """One forecast: the mean path and one path per quantile level, each of length h."""

    mean: np.ndarray
    quantiles: Mapping[float, np.ndarray]

    def quantile(self, q: float) -> np.ndarray:
        """The path at level ``q`` (levels compared to 1e-9)."""
        for level, values in self.quantiles.items():
            if abs(float(level) - q) < 1e-9:
                return np.asarray(values, dtype=float)
        raise KeyError(f"the forecast has no quantile {q}; it has {sorted(float(k) for k in self.quantiles)}")


def quantile_losses(actual: np.ndarray, forecast: np.ndarray, q: float) -> np.ndarray:
    """``2 * |(y - f) * (1[y <= f] - q)|`` point by point; NaN where the actual is missing (NaN)."""
    y = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    return 2.0 * np.abs((y - f) * ((y <= f).astype(float) - q))


def quantile_loss(actual: np.ndarray, forecast: np.ndarray, q: float) -> float:
    """``2 * sum |(y - f) * (1[y <= f] - q)|`` over the observed (non-NaN) points (the wQL numerator)."""
    losses = quantile_losses(actual, forecast, q)
    return float(np.sum(losses[~np.isnan(np.asarray(actual, dtype=float))]))


def mean_squared_error(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean squared error over observed points (NaN when none is observed)."""
    y = np.asarray(actual, dtype=float)
    mask = ~np.isnan(y)
    if not mask.any():
        return math.nan
    return float(np.mean((y[mask] - np.asarray(forecast, dtype=float)[mask]) ** 2))


def seasonal_error(history: np.ndarray, seasonality: int = SEASONALITY) -> float:
    """``mean |y_t - y_{t-m}|`` over pairs where both are observed (GluonTS falls back to m = 1
    when the history is not longer than m). NaN when no pair is observed."""
    x = np.asarray(history, dtype=float)
    m = seasonality if seasonality < len(x) else 1
    if len(x) <= m:
        return math.nan
    diff = np.abs(x[m:] - x[:-m])
    diff = diff[~np.isnan(diff)]
    return float(diff.mean()) if diff.size else math.nan


def seasonal_scale(history: np.ndarray, seasonality: int = SEASONALITY) -> float | None:
    """The MASE denominator: :func:`seasonal_error` of the history, or None where it cannot scale an
    error (no observed pair, or 0: a constant history)."""
    scale = seasonal_error(history, seasonality)
    return scale if math.isfinite(scale) and scale > 0 else None


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[int, int]:
    """(points inside ``[lower, upper]``, observed points)."""
    y = np.asarray(actual, dtype=float)
    mask = ~np.isnan(y)
    inside = (np.asarray(lower, dtype=float)[mask] <= y[mask]) & (y[mask] <= np.asarray(upper, dtype=float)[mask])
    return int(inside.sum()), int(mask.sum())


def forecast_metrics(
    actuals: Sequence[np.ndarray],
    forecasts: Sequence[QuantileForecast],
    histories: Sequence[np.ndarray],
    quantiles: Sequence[float] = QUANTILES,
    seasonality: int = SEASONALITY,
) -> dict[str, float]:
    """Aggregate metrics over many forecasts (one per series and window).

    Returns ``mean_wQuantileLoss``, ``wQuantileLoss[q]`` per level, ``RMSE``, ``MASE`` and
    ``coverage[lo,hi]`` for the lowest and highest levels. A forecast with no observed actual
    contributes nothing.
    """
    if not (len(actuals) == len(forecasts) == len(histories)):
        raise ValueError(
            f"got {len(actuals)} actuals, {len(forecasts)} forecasts and {len(histories)} histories; they must match"
        )
    if not actuals:
        raise ValueError("no forecasts to score")
    qs = sorted(float(q) for q in quantiles)
    abs_sum = 0.0
    losses = dict.fromkeys(qs, 0.0)
    mses: list[float] = []
    mases: list[float] = []
    inside = observed = 0
    for y, fc, hist in zip(actuals, forecasts, histories):  # noqa: B905 - lengths checked above; 3.9 has no strict=
        y = np.asarray(y, dtype=float)
        mask = ~np.isnan(y)
        if not mask.any():
            continue
        abs_sum += float(np.abs(y[mask]).sum())
        for q in qs:
            losses[q] += quantile_loss(y, fc.quantile(q), q)
        mses.append(mean_squared_error(y, fc.mean))
        scale = seasonal_scale(hist, seasonality)
        if scale is not None:
            mases.append(float(np.mean(np.abs(y[mask] - fc.quantile(0.5)[mask]))) / scale)
        a, b = coverage(y, fc.quantile(qs[0]), fc.quantile(qs[-1]))
        inside += a
        observed += b
    if observed == 0:
        raise ValueError("every actual is missing (NaN); nothing to score")
    out: dict[str, float] = {}
    for q in qs:
        out[f"wQuantileLoss[{q:g}]"] = losses[q] / abs_sum if abs_sum > 0 else math.nan
    out["mean_wQuantileLoss"] = float(np.mean([out[f"wQuantileLoss[{q:g}]"] for q in qs]))
    out["RMSE"] = math.sqrt(float(np.mean(mses)))
    out["MASE"] = float(np.mean(mases)) if mases else math.nan
    out[f"coverage[{qs[0]:g},{qs[-1]:g}]"] = inside / observed
    return out


def seasonal_naive_forecast(
    history: np.ndarray,
    prediction_length: int,
    season_length: int = SEASONALITY,
    quantiles: Sequence[float] = QUANTILES,
) -> QuantileForecast:
    """Probabilistic seasonal naive, as statsforecast's ``SeasonalNaive`` with intervals.

    Point forecast: the last season repeated. Spread: ``sigma = sqrt(sum r^2 / n)`` of the
    in-sample seasonal residuals ``r_t = y_t - y_{t-m}`` (n = observed residuals), widened by
    ``sqrt(floor(h / m) + 1)`` per step, normal quantiles around the point. Missing values in
    the last season are taken from the latest earlier season that has them (else the history
    mean), because statsforecast requires a gap-free series.
    """
    y = np.asarray(history, dtype=float)
    m = season_length
    if len(y) == 0 or np.isnan(y).all():
        raise ValueError("seasonal naive needs at least one observed value in the history")
    fallback = float(np.nanmean(y))
    # Pad to whole seasons so phase lines up with the end of the history.
    pad = (-len(y)) % m
    seasons = np.concatenate([np.full(pad, np.nan), y]).reshape(-1, m)
    last = seasons[-1].copy()
    for earlier in seasons[-2::-1]:
        if not np.isnan(last).any():
            break
        last = np.where(np.isnan(last), earlier, last)
    last = np.where(np.isnan(last), fallback, last)
    steps = np.arange(prediction_length)
    point = last[steps % m]
    residuals = y[m:] - y[:-m] if len(y) > m else np.array([])
    residuals = residuals[~np.isnan(residuals)]
    sigma = math.sqrt(float(np.sum(residuals**2)) / residuals.size) if residuals.size else 0.0
    sigma_h = sigma * np.sqrt(np.floor(steps / m) + 1)
    normal = NormalDist()
    paths = {float(q): point + normal.inv_cdf(float(q)) * sigma_h for q in quantiles}
    return QuantileForecast(mean=point, quantiles=paths)
