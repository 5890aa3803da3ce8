"""Starting hyperparameters and tuning ranges from what the training period shows (pure NumPy).

Preprocess calls :func:`profile_series` on the **training period only** (never on the
validation or evaluation hours), so no choice made here can see an hour it is judged on:

* **seasons**: the candidate seasonalities of hourly data (24 h, and 168 h once three weeks
  of history exist), each with its strength (the NaN-aware autocorrelation at that lag); the
  dominant one is the season whose naive repeat errs least in training (mean ``|x_t - x_{t-m}|``
  relative to the series' level, median over series), and sets the context.
* **context_length**: covers the dominant season (a day, or a week when the weekly
  autocorrelation beats the daily one), capped at DeepAR's recommended 200.
* **likelihood**: non-negative counts or skewed non-negative readings → negative-binomial;
  readings far from zero (a small coefficient of variation) or negative → student-T; values
  strictly inside (0, 1) → beta.
* **regular gaps**: hours of the week a sensor (almost) never reports in training, e.g. every
  night or every weekend. They stay missing (``"NaN"``) — never zero-filled — are not scored,
  and are reported so a reader knows the series is an "opening hours" one.
* **scaling**: DeepAR scales each series by its mean absolute value (the built-in always does;
  there is no switch), so the profile reports the spread of series levels instead.
* **epochs**: from the training history (median hours per series): 30 from half a year on, 15
  below it, where most validation weeks did not gain from more (see :data:`LONG_HISTORY_HOURS`).

:func:`tuning_ranges` turns the starting values into ranges whose centre (geometric for
``Logarithmic`` scaling) is the starting value, so a budget of one trial trains exactly the
starting values locally. Python 3.9 compatible (runs in the processing image).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

HOURS_PER_WEEK = 168
#: an hour-of-week observed in fewer than this share of the training weeks is a regular gap
REGULAR_GAP_SHARE = 0.1
#: DeepAR's recommended context_length range tops out here (deepar-tuning)
MAX_CONTEXT = 200

#: the built-in DeepAR's tunable hyperparameters (deepar-tuning), with how each range is scaled
TUNED: dict[str, str] = {
    "context_length": "Logarithmic",
    "epochs": "Logarithmic",
    "learning_rate": "Logarithmic",
    "num_cells": "Logarithmic",
    "num_layers": "Linear",
    "mini_batch_size": "Logarithmic",
    "dropout_rate": "Linear",
    "embedding_dimension": "Logarithmic",
}
INTEGER = ("context_length", "epochs", "num_cells", "num_layers", "mini_batch_size", "embedding_dimension")

#: starting values that do not depend on the data (chosen on the suite's validation periods, see bench/forecast.py;
#: the pipeline's parameters ``NumCells`` ... ``DropoutRate`` default to them)
BASE_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.003,
    "num_cells": 40,
    "num_layers": 2,
    "mini_batch_size": 32,
    "dropout_rate": 0.1,
}
#: starting epochs by training history (median hours per series), chosen on the validation weeks of the five
#: suite datasets not held out, cut to their last 2, 4 and 12 months, two seeds each (``bench/epochs.py``; the
#: table is in bench/data/README.md). 30 epochs against 15, the ratio of mean validation wQL per dataset: with a
#: year, 0.57-1.00 (median 0.88; 40 epochs were no better than 30); with 4 months 0.43-1.20 (median 1.05), with 2
#: months 0.39-1.09 (median 1.04): the majority gained only with a long history, and 30 epochs cost twice the
#: training time. (By geometric mean 30 would win at every length, carried by the smooth Seattle temperature:
#: 0.39 and 0.43 at 2 and 4 months.) The threshold sits between 4 and 12 months, at half a year.
LONG_HISTORY_HOURS = 26 * HOURS_PER_WEEK
LONG_HISTORY_EPOCHS = 30
SHORT_HISTORY_EPOCHS = 15


def starting_epochs(training_hours: float) -> int:
    """The starting ``epochs`` for series with ``training_hours`` of history (median over series)."""
    return LONG_HISTORY_EPOCHS if training_hours >= LONG_HISTORY_HOURS else SHORT_HISTORY_EPOCHS


def autocorrelation(values: np.ndarray, lag: int) -> float:
    """Pearson correlation of ``x_t`` and ``x_{t-lag}`` over pairs where both are observed (NaN if < 10 pairs)."""
    x = np.asarray(values, dtype=float)
    if len(x) <= lag:
        return math.nan
    a, b = x[lag:], x[:-lag]
    keep = ~(np.isnan(a) | np.isnan(b))
    if keep.sum() < 10:
        return math.nan
    a, b = a[keep], b[keep]
    if a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def relative_seasonal_error(values: np.ndarray, lag: int) -> float:
    """Mean ``|x_t - x_{t-lag}|`` over observed pairs, divided by the mean ``|x|`` (NaN if no pair)."""
    x = np.asarray(values, dtype=float)
    if len(x) <= lag:
        return math.nan
    diff = np.abs(x[lag:] - x[:-lag])
    diff = diff[~np.isnan(diff)]
    level = float(np.nanmean(np.abs(x))) if np.isfinite(x).any() else math.nan
    if diff.size == 0 or not level:
        return math.nan
    return float(diff.mean()) / level


def regular_gap_hours(values: np.ndarray, start_hour_of_week: int) -> list[int]:
    """Hours of the week (0 = Monday 00:00) observed in < 10% of the weeks the series covers."""
    x = np.asarray(values, dtype=float)
    weeks = len(x) / HOURS_PER_WEEK
    if weeks < 2:
        return []
    phase = (start_hour_of_week + np.arange(len(x))) % HOURS_PER_WEEK
    seen = np.bincount(phase[~np.isnan(x)], minlength=HOURS_PER_WEEK)
    slots = np.bincount(phase, minlength=HOURS_PER_WEEK)
    return [int(h) for h in range(HOURS_PER_WEEK) if slots[h] and seen[h] < REGULAR_GAP_SHARE * slots[h]]


def choose_likelihood(values: np.ndarray) -> str:
    """The DeepAR likelihood that fits the observed values' domain and shape."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return "student-T"
    if x.min() > 0 and x.max() < 1:
        return "beta"
    if x.min() < 0:
        return "student-T"
    integers = bool(np.all(np.abs(x - np.round(x)) < 1e-9))
    mean = float(x.mean())
    cv = float(x.std() / mean) if mean > 0 else math.inf
    # counts, or non-negative readings that sit close to zero and spread widely (concentrations)
    return "negative-binomial" if integers or cv > 0.5 else "student-T"


def profile_series(series: Sequence[np.ndarray], start_hours_of_week: Sequence[int], num_series_cats: Sequence[int],
                   prediction_length: int) -> dict[str, Any]:
    """Starting hyperparameters and what they were read from, for the training-period ``series``.

    ``start_hours_of_week``: each series' first hour as an hour of the week (0 = Monday 00:00);
    ``num_series_cats``: the cardinality of each ``cat`` field (sets the embedding size).
    """
    pooled = np.concatenate([np.asarray(s, dtype=float) for s in series])
    longest = max(len(s) for s in series)
    seasons = [24] + ([HOURS_PER_WEEK] if longest >= 3 * HOURS_PER_WEEK else [])
    strength, naive_error = {}, {}
    for m in seasons:
        values = [autocorrelation(s, m) for s in series]
        values = [v for v in values if math.isfinite(v)]
        strength[m] = float(np.median(values)) if values else math.nan
        errors = [relative_seasonal_error(s, m) for s in series]
        errors = [e for e in errors if math.isfinite(e)]
        naive_error[m] = float(np.median(errors)) if errors else math.inf
    dominant = min(seasons, key=lambda m: (naive_error[m], m))
    # the context covers the dominant season (a week is capped at the recommended maximum, and the
    # model's lag inputs reach 721 hours back anyway) and at least three days for a daily one
    context = min(MAX_CONTEXT, max(dominant, 3 * prediction_length, 72))
    gaps = [regular_gap_hours(s, h) for s, h in zip(series, start_hours_of_week)]  # noqa: B905 - Python 3.9
    levels = [float(np.nanmean(np.abs(s))) for s in series if np.isfinite(s).any()]
    embedding = int(min(10, max(2, math.ceil(math.sqrt(max(num_series_cats or [1]))))))
    training_hours = float(np.median([len(s) for s in series]))
    hyperparameters = dict(BASE_DEFAULTS)
    hyperparameters.update({"context_length": context, "likelihood": choose_likelihood(pooled),
                            "embedding_dimension": embedding, "epochs": starting_epochs(training_hours)})
    return {
        "hyperparameters": hyperparameters,
        "seasons": seasons,
        "season_strength": {str(k): (None if not math.isfinite(v) else round(v, 3)) for k, v in strength.items()},
        "seasonal_naive_error": {str(k): (None if not math.isfinite(v) else round(v, 4))
                                 for k, v in naive_error.items()},
        "dominant_season": dominant,
        "regular_gaps": {
            "series_with_regular_gaps": sum(1 for g in gaps if g),
            "median_silent_hours_per_week": int(np.median([len(g) for g in gaps])) if gaps else 0,
            "treatment": "kept missing (NaN): not zero-filled, not scored",
        },
        "scaling": {
            "method": "DeepAR's per-series mean scaling",
            "level_ratio_max_min": round(max(levels) / min(levels), 2) if levels and min(levels) > 0 else None,
        },
        "training_hours_median": int(training_hours),
        "observed_share": round(float(np.isfinite(pooled).mean()), 3) if pooled.size else 0.0,
    }


def _centre_range(value: float, factor: float, integer: bool) -> list[float]:
    """``[value / factor, value * factor]``; for integers ``hi = round(value**2 / lo)`` keeps the
    geometric centre on ``value``."""
    if not integer:
        return [float(f"{value / factor:.6g}"), float(f"{value * factor:.6g}")]
    lo = max(1, int(math.floor(value / factor)))
    return [lo, max(lo, int(round(value * value / lo)))]


def tuning_ranges(start: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{name: {"MinValue", "MaxValue", "ScalingType"}}`` around the starting values.

    Logarithmic ranges have the start as their geometric centre, linear ones as their midpoint,
    so the local tuner's first trial (the centre) is the data-driven starting point.
    """
    ranges: dict[str, dict[str, Any]] = {}
    factors = {"context_length": 1.5, "epochs": 1.5, "learning_rate": 3.0, "num_cells": 1.5,
               "mini_batch_size": 2.0, "embedding_dimension": 2.0}
    for name, factor in factors.items():
        lo, hi = _centre_range(float(start[name]), factor, name in INTEGER)
        ranges[name] = {"MinValue": lo, "MaxValue": hi, "ScalingType": TUNED[name]}
    layers = int(start["num_layers"])
    ranges["num_layers"] = {"MinValue": max(1, layers - 1), "MaxValue": layers + 1, "ScalingType": "Linear"}
    dropout = float(start["dropout_rate"])
    ranges["dropout_rate"] = {"MinValue": 0.0, "MaxValue": round(2 * dropout, 6), "ScalingType": "Linear"}
    return ranges
