"""Forecast metrics: hand-computed values, GluonTS's Evaluator, statsforecast's SeasonalNaive."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evaluation.metrics import (
    QuantileForecast,
    forecast_metrics,
    quantile_loss,
    quantile_losses,
    seasonal_error,
    seasonal_naive_forecast,
    seasonal_scale,
)

NAN = math.nan


def hand_case() -> tuple[np.ndarray, QuantileForecast, np.ndarray]:
    y = np.array([1.0, 2.0, NAN, 4.0])
    fc = QuantileForecast(
        mean=np.array([1.0, 1.0, 1.0, 1.0]),
        quantiles={0.1: np.array([0.0, 1.0, 0.0, 2.0]), 0.5: np.array([2.0, 2.0, 5.0, 3.0]),
                   0.9: np.array([3.0, 3.0, 9.0, 3.5])},
    )
    history = np.array([0.0, 1.0, 2.0, 3.0])
    return y, fc, history


def test_quantile_loss_by_hand() -> None:
    y, fc, _ = hand_case()
    # q=0.5: |1-2|*.5 + 0 + |4-3|*.5 = 1 → ×2; the NaN actual is not scored.
    assert quantile_loss(y, fc.quantile(0.5), 0.5) == pytest.approx(2.0)
    assert quantile_loss(y, fc.quantile(0.1), 0.1) == pytest.approx(0.8)
    # q=0.9: 2*.1 + 1*.1 + 0.5*.9 = 0.75 → ×2
    assert quantile_loss(y, fc.quantile(0.9), 0.9) == pytest.approx(1.5)


def test_forecast_metrics_by_hand() -> None:
    y, fc, history = hand_case()
    m = forecast_metrics([y], [fc], [history], seasonality=2)
    assert m["wQuantileLoss[0.1]"] == pytest.approx(0.8 / 7)
    assert m["wQuantileLoss[0.5]"] == pytest.approx(2.0 / 7)
    assert m["wQuantileLoss[0.9]"] == pytest.approx(1.5 / 7)
    assert m["mean_wQuantileLoss"] == pytest.approx(4.3 / 21)
    assert m["RMSE"] == pytest.approx(math.sqrt(10 / 3))  # errors 0, 1, 3 against the mean
    assert m["MASE"] == pytest.approx((2 / 3) / 2)  # median errors 1, 0, 1; seasonal error |2-0|, |3-1|
    assert m["coverage[0.1,0.9]"] == pytest.approx(2 / 3)  # 4 is above 3.5


def test_all_missing_window_is_skipped_and_all_missing_input_is_an_error() -> None:
    y, fc, history = hand_case()
    empty = np.full(4, NAN)
    assert forecast_metrics([y, empty], [fc, fc], [history, history], seasonality=2) == pytest.approx(
        forecast_metrics([y], [fc], [history], seasonality=2), nan_ok=True
    )
    with pytest.raises(ValueError, match="every actual is missing"):
        forecast_metrics([empty], [fc], [history])
    with pytest.raises(ValueError, match="must match"):
        forecast_metrics([y], [], [history])


def test_seasonal_error_masks_gaps() -> None:
    assert seasonal_error(np.array([1.0, NAN, 3.0, 5.0]), 2) == pytest.approx(2.0)  # only (1, 3) is a full pair
    assert math.isnan(seasonal_error(np.array([NAN, NAN, 1.0]), 1))


def test_quantile_loss_and_mase_pieces() -> None:
    """The pieces the drift monitor scores served forecasts with (evaluation.drift)."""
    y = np.array([10.0, 20.0, np.nan])
    assert quantile_loss(y, np.array([10.0, 20.0, 99.0]), 0.5) == 0.0
    # under-forecast by 10 at q=0.9: 2 * 10 * 0.9
    assert quantile_loss(np.array([20.0]), np.array([10.0]), 0.9) == pytest.approx(18.0)
    # over-forecast by 10 at q=0.9: 2 * 10 * 0.1
    assert quantile_loss(np.array([10.0]), np.array([20.0]), 0.9) == pytest.approx(2.0)
    assert seasonal_scale(np.array([1.0, 2.0, 4.0, 7.0]), seasonality=24) == pytest.approx(2.0)  # falls back to lag 1
    assert seasonal_scale(np.array([5.0, 5.0, 5.0])) is None


def test_pointwise_losses_sum_to_the_quantile_loss_and_mark_missing_actuals() -> None:
    y, fc, _ = hand_case()
    for q in (0.1, 0.5, 0.9):
        losses = quantile_losses(y, fc.quantile(q), q)
        assert np.isnan(losses[2]) and not np.isnan(losses[[0, 1, 3]]).any()
        assert float(np.nansum(losses)) == pytest.approx(quantile_loss(y, fc.quantile(q), q))


def test_seasonal_scale_is_the_mase_denominator_of_the_evaluation() -> None:
    """One definition for the Evaluate step and the drift monitor: GluonTS's seasonal error (lag 1 only
    when the history is not longer than the season), None where MASE is undefined."""
    history = np.array([1.0, NAN, 3.0, 5.0])
    assert seasonal_scale(history, 2) == seasonal_error(history, 2) == pytest.approx(2.0)
    assert seasonal_scale(np.array([NAN, NAN, 1.0]), 1) is None
    y, fc, hist = hand_case()
    assert forecast_metrics([y], [fc], [hist], seasonality=2)["MASE"] == pytest.approx(
        np.nanmean(np.abs(y - fc.quantile(0.5))) / seasonal_scale(hist, 2))


def random_forecasts(rng: np.random.Generator, n: int, h: int, past: int):
    items = []
    for _ in range(n):
        series = 50 + 20 * np.sin(np.arange(past + h) * 2 * np.pi / 24) + rng.normal(0, 8, past + h)
        series[rng.random(past + h) < 0.1] = NAN
        noise = rng.normal(0, 5, h)
        mid = series[past:] + noise
        mid = np.where(np.isnan(mid), 50.0, mid)
        quantiles = {0.1: mid - 10 + rng.normal(0, 1, h), 0.5: mid, 0.9: mid + 10 + rng.normal(0, 1, h)}
        items.append((series, QuantileForecast(mean=mid + 1.0, quantiles=quantiles)))
    return items


def test_matches_gluonts_evaluator() -> None:
    from gluonts.evaluation import Evaluator
    from gluonts.model.forecast import QuantileForecast as GluonQuantileForecast

    rng = np.random.default_rng(7)
    h, past = 24, 24 * 10
    items = random_forecasts(rng, 6, h, past)
    start = pd.Period("2021-01-01 00:00", freq="h")
    ts, gl = [], []
    for series, fc in items:
        index = pd.period_range(start, periods=len(series), freq="h")
        ts.append(pd.DataFrame({0: series}, index=index))
        arrays = np.stack([fc.quantile(0.1), fc.quantile(0.5), fc.quantile(0.9), fc.mean])
        gl.append(GluonQuantileForecast(arrays, start_date=index[past], forecast_keys=["0.1", "0.5", "0.9", "mean"]))
    agg, _ = Evaluator(quantiles=[0.1, 0.5, 0.9], seasonality=24, num_workers=0)(iter(ts), iter(gl), num_series=len(ts))
    ours = forecast_metrics([s[past:] for s, _ in items], [f for _, f in items], [s[:past] for s, _ in items])
    for q in ("0.1", "0.5", "0.9"):
        assert ours[f"wQuantileLoss[{q}]"] == pytest.approx(agg[f"wQuantileLoss[{q}]"], rel=1e-9)
    assert ours["mean_wQuantileLoss"] == pytest.approx(agg["mean_wQuantileLoss"], rel=1e-9)
    assert ours["RMSE"] == pytest.approx(agg["RMSE"], rel=1e-9)
    assert ours["MASE"] == pytest.approx(agg["MASE"], rel=1e-9)


def test_coverage_matches_gluonts_when_nothing_is_missing() -> None:
    from gluonts.evaluation import Evaluator
    from gluonts.model.forecast import QuantileForecast as GluonQuantileForecast

    rng = np.random.default_rng(3)
    h, past = 24, 96
    ts, gl, ours_y, ours_fc, hist = [], [], [], [], []
    for _ in range(4):
        series = rng.normal(100, 30, past + h)
        lo = series[past:] + rng.normal(-15, 15, h)
        hi = lo + np.abs(rng.normal(30, 10, h))  # never crosses lo, so the identity below holds
        fc = QuantileForecast(mean=series[past:], quantiles={0.1: lo, 0.5: series[past:] + 1, 0.9: hi})
        index = pd.period_range("2021-01-01 00:00", periods=past + h, freq="h")
        ts.append(pd.DataFrame({0: series}, index=index))
        gl.append(GluonQuantileForecast(np.stack([lo, series[past:] + 1, hi]), start_date=index[past],
                                        forecast_keys=["0.1", "0.5", "0.9"]))
        ours_y.append(series[past:])
        ours_fc.append(fc)
        hist.append(series[:past])
    agg, _ = Evaluator(quantiles=[0.1, 0.5, 0.9], seasonality=24, num_workers=0)(iter(ts), iter(gl), num_series=4)
    ours = forecast_metrics(ours_y, ours_fc, hist)
    # Share inside [q0.1, q0.9] = share below q0.9 minus share below q0.1 (continuous values: no ties).
    assert ours["coverage[0.1,0.9]"] == pytest.approx(agg["Coverage[0.9]"] - agg["Coverage[0.1]"])


def test_seasonal_naive_matches_statsforecast() -> None:
    from statsforecast.models import SeasonalNaive

    rng = np.random.default_rng(11)
    y = 40 + 15 * np.sin(np.arange(24 * 9 + 5) * 2 * np.pi / 24) + rng.normal(0, 4, 24 * 9 + 5)
    ours = seasonal_naive_forecast(y, 48, 24, (0.1, 0.5, 0.9))
    theirs = SeasonalNaive(season_length=24).forecast(y=y, h=48, level=[80])
    np.testing.assert_allclose(ours.mean, theirs["mean"], rtol=1e-9)
    np.testing.assert_allclose(ours.quantile(0.1), theirs["lo-80"], rtol=1e-6)
    np.testing.assert_allclose(ours.quantile(0.9), theirs["hi-80"], rtol=1e-6)
    np.testing.assert_allclose(ours.quantile(0.5), theirs["mean"], rtol=1e-9)
    # The second day of the horizon is wider (sqrt(2) sigma), as a random walk over seasons.
    width = ours.quantile(0.9) - ours.quantile(0.1)
    assert width[30] == pytest.approx(width[5] * math.sqrt(2))


def test_seasonal_naive_fills_missing_last_season_from_earlier_ones() -> None:
    y = np.tile(np.arange(24.0), 3)
    y[-3:] = NAN  # last season's final hours missing: take them from the season before
    fc = seasonal_naive_forecast(y, 24)
    np.testing.assert_allclose(fc.mean, np.arange(24.0))
    assert np.all(fc.quantile(0.1) <= fc.mean) and np.all(fc.quantile(0.9) >= fc.mean)
    with pytest.raises(ValueError, match="at least one observed"):
        seasonal_naive_forecast(np.full(30, NAN), 24)


def test_the_emulated_builtin_reports_the_same_weighted_quantile_loss() -> None:
    """The local DeepAR keeps its own copy of the built-in's ``wQuantileLoss`` (the emulator imports nothing
    of the project); it must be the project's definition: sum of quantile losses over sum |y|, pooled."""
    from infra.local.sagemaker.deepar import _weighted_quantile_loss

    rng = np.random.default_rng(7)
    labels = rng.gamma(2.0, 10.0, size=(5, 24))
    labels[rng.random(labels.shape) < 0.2] = NAN
    forecast = labels * rng.uniform(0.5, 1.5, size=labels.shape) + rng.normal(0, 3, size=labels.shape)
    forecast = np.nan_to_num(forecast, nan=12.0)
    for q in (0.1, 0.5, 0.9):
        pooled = sum(quantile_loss(y, f, q) for y, f in zip(labels, forecast, strict=True)) / np.nansum(np.abs(labels))
        assert _weighted_quantile_loss(labels, forecast, q) == pytest.approx(pooled, rel=1e-12)
    assert math.isnan(_weighted_quantile_loss(np.full((1, 3), NAN), np.ones((1, 3)), 0.5))
