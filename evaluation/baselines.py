"""Baselines the quality gate compares a candidate with, each scored on the same windows.

* ``seasonal_naive`` (24 h) and ``seasonal_naive_<m>`` for every other detected season (168 h
  for hourly data with three weeks of history): :func:`evaluation.metrics.seasonal_naive_forecast`.
* ``autotheta``: statsforecast's ``AutoTheta`` refitted per window, quantiles 0.1/0.9 from its
  80% interval, 0.5 = the point forecast. Its own settings (season length, hours of history it
  fits on) are chosen on the **validation** windows, never on the windows it is scored on.

statsforecast is imported only inside the functions that fit it (the evaluation image must
provide it; the seasonal naive needs numpy alone). Python 3.9 compatible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    from evaluation.metrics import QUANTILES, QuantileForecast, forecast_metrics, seasonal_naive_forecast
except ImportError:  # in the processing container this folder is the code dir, not a package
    from metrics import QUANTILES, QuantileForecast, forecast_metrics, seasonal_naive_forecast  # type: ignore[no-redef]

#: hours of history AutoTheta may fit on (the longest is capped by what each window has)
FIT_HOURS = (336, 672)
#: series sampled (evenly) to choose AutoTheta's settings on the validation windows: bounds its cost
MAX_CHOICE_SERIES = 8


def baseline_name(season: int) -> str:
    """``seasonal_naive`` for the daily season (the name the gate always had), else ``seasonal_naive_<m>``."""
    return "seasonal_naive" if season == 24 else f"seasonal_naive_{season}"


def seasonal_naive_forecasts(histories: Sequence[np.ndarray], h: int, season: int,
                             quantiles: Sequence[float] = QUANTILES) -> list[QuantileForecast]:
    """One probabilistic seasonal-naive forecast per window."""
    return [seasonal_naive_forecast(hist, h, season, quantiles) for hist in histories]


def autotheta_forecasts(histories: Sequence[np.ndarray], h: int, season: int, fit_hours: int,
                        n_jobs: int = 1) -> list[QuantileForecast]:
    """AutoTheta per window on the last ``fit_hours`` of its history (gaps interpolated: statsforecast
    needs gap-free input); 80% interval → quantiles 0.1/0.9."""
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoTheta

    frames = []
    for i, hist in enumerate(histories):
        y = pd.Series(np.asarray(hist, dtype=float)[-fit_hours:]).interpolate(limit_direction="both")
        y = y.fillna(0.0).to_numpy()
        frames.append(pd.DataFrame({"unique_id": i, "ds": np.arange(len(y)), "y": y}))
    sf = StatsForecast(models=[AutoTheta(season_length=season)], freq=1, n_jobs=n_jobs)
    out = sf.forecast(df=pd.concat(frames, ignore_index=True), h=h, level=[80])
    out = out.reset_index() if "unique_id" not in out.columns else out
    result = []
    for i in range(len(histories)):
        rows = out[out["unique_id"] == i].sort_values("ds")
        point = rows["AutoTheta"].to_numpy(dtype=float)
        lo, hi = rows["AutoTheta-lo-80"].to_numpy(float), rows["AutoTheta-hi-80"].to_numpy(float)
        result.append(QuantileForecast(mean=point, quantiles={0.1: lo, 0.5: point, 0.9: hi}))
    return result


def _subset(n_series: int, limit: int) -> list[int]:
    if n_series <= limit:
        return list(range(n_series))
    return sorted({int(round(i)) for i in np.linspace(0, n_series - 1, limit)})


def choose_autotheta(histories: Sequence[np.ndarray], truth: Sequence[np.ndarray], series: Sequence[int], h: int,
                     seasons: Sequence[int], n_jobs: int = 1) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """AutoTheta's (season, fit hours) with the lowest mean wQL on the validation windows.

    ``series`` gives each window's series id (windows of at most :data:`MAX_CHOICE_SERIES`
    series are used). Returns ``(chosen, tried)``.
    """
    ids = sorted(set(series))
    keep_ids = {ids[i] for i in _subset(len(ids), MAX_CHOICE_SERIES)}
    idx = [i for i, s in enumerate(series) if s in keep_ids]
    hist = [histories[i] for i in idx]
    y = [truth[i] for i in idx]
    longest = max(len(x) for x in hist)
    tried = []
    for season in seasons:
        for fit in FIT_HOURS:
            if fit < 2 * season or (fit > longest and fit != FIT_HOURS[0]):
                continue
            try:
                fcs = autotheta_forecasts(hist, h, season, fit, n_jobs)
                wql = forecast_metrics(y, fcs, hist)["mean_wQuantileLoss"]
            except (ValueError, KeyError) as exc:  # a setting statsforecast cannot fit here
                tried.append({"season_length": season, "fit_hours": fit, "error": str(exc)[:200]})
                continue
            tried.append({"season_length": season, "fit_hours": fit, "validation_mean_wQuantileLoss": wql})
    scored = [t for t in tried if math.isfinite(t.get("validation_mean_wQuantileLoss", math.nan))]
    if not scored:
        return {"season_length": 24, "fit_hours": FIT_HOURS[0], "validation_mean_wQuantileLoss": None}, tried
    return min(scored, key=lambda t: t["validation_mean_wQuantileLoss"]), tried


def score_baselines(histories: Sequence[np.ndarray], truth: Sequence[np.ndarray], h: int, seasons: Sequence[int],
                    autotheta: dict[str, Any] | None = None, n_jobs: int = 1,
                    quantiles: Sequence[float] = QUANTILES, seasonality: int = 24
                    ) -> tuple[dict[str, dict[str, float]], dict[str, list[QuantileForecast]]]:
    """Every baseline's metrics (and forecasts) on the given windows; ``autotheta`` = its chosen settings
    (None: no fitted baseline)."""
    forecasts: dict[str, list[QuantileForecast]] = {}
    for season in seasons:
        forecasts[baseline_name(season)] = seasonal_naive_forecasts(histories, h, season, quantiles)
    if autotheta is not None:
        forecasts["autotheta"] = autotheta_forecasts(histories, h, int(autotheta["season_length"]),
                                                     int(autotheta["fit_hours"]), n_jobs)
    metrics = {name: forecast_metrics(truth, fcs, histories, quantiles, seasonality) for name, fcs in forecasts.items()}
    return metrics, forecasts
