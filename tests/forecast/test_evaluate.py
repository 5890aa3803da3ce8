"""The Evaluate job: batch-transform output + preprocess outputs → evaluation.json (DESIGN.md shape)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from evaluation.evaluate import EvaluationError, evaluate, main
from evaluation.metrics import seasonal_naive_forecast
from processing.preprocess import build_dataset, normalise_hourly, write_dataset
from tests.conftest import REPO_ROOT

PL, CTX, K, V = 24, 48, 3, 2


def make_inputs(root: Path, forecast: str = "good") -> Path:
    """Preprocess outputs for two synthetic series plus a fake batch-transform output."""
    rng = np.random.default_rng(5)
    frames = []
    for thing, level in (("a", 40.0), ("b", 80.0)):
        hours = 24 * 12
        y = level + 20 * np.sin(np.arange(hours) * 2 * np.pi / 24) + rng.normal(0, 3, hours)
        frames.append(pd.DataFrame({"thing_name": thing, "pollutant": "pm2_5",
                                    "hour": pd.date_range("2021-05-01", periods=hours, freq="h"), "mean": y}))
    data = build_dataset(normalise_hourly(pd.concat(frames)), PL, CTX, K, num_validation_windows=V)
    data.actuals[1]["target"][3] = "NaN"  # a missing actual is masked, not scored
    write_dataset(data, root / "pre")
    out = root / "forecast"
    out.mkdir()
    with (out / "windows.jsonl.out").open("w") as fh:
        for actual in data.actuals:
            truth = np.array([np.nan if v == "NaN" else v for v in actual["target"]], dtype=float)
            center = np.where(np.isnan(truth), 50.0, truth) + rng.normal(0, 2, PL)  # a good forecaster
            pred = {"mean": center.tolist(),
                    "quantiles": {"0.1": (center - 5).tolist(), "0.5": center.tolist(), "0.9": (center + 5).tolist()}}
            if forecast == "no-0.9":
                del pred["quantiles"]["0.9"]
            fh.write(json.dumps(pred) + "\n")
    return root


def args(root: Path) -> list[str]:
    return ["--forecast-dir", str(root / "forecast"), "--evaluation-dir", str(root / "pre" / "evaluation"),
            "--validation-dir", str(root / "pre" / "validation"), "--metadata-dir", str(root / "pre" / "metadata"),
            "--output-dir", str(root / "eval"), "--candidate", "DeepAR training job t-001", "--jobs", "1"]


def test_evaluation_json_has_the_design_shape(tmp_path: Path) -> None:
    root = make_inputs(tmp_path)
    assert main(args(root)) == 0
    ev = json.loads((root / "eval" / "evaluation.json").read_text())
    assert set(ev) == {"forecast_metrics", "baseline_metrics", "best_baseline", "candidate",
                       "relative_mean_wQuantileLoss", "evaluation", "periods", "baseline_settings"}
    assert set(ev["forecast_metrics"]) == {"mean_wQuantileLoss", "wQuantileLoss[0.1]", "wQuantileLoss[0.5]",
                                           "wQuantileLoss[0.9]", "RMSE", "MASE", "coverage[0.1,0.9]"}
    # 12 days: only the daily season is detected; the fitted baseline is there too
    assert set(ev["baseline_metrics"]) == {"seasonal_naive", "autotheta"}
    for metrics in ev["baseline_metrics"].values():
        assert set(metrics) == {"mean_wQuantileLoss", "RMSE", "MASE", "coverage[0.1,0.9]"}
        for leaf in [*ev["forecast_metrics"].values(), *metrics.values()]:
            assert set(leaf) == {"value"} and isinstance(leaf["value"], float)
    assert ev["evaluation"] == {"series": 2, "windows": K, "prediction_length": PL, "quantiles": [0.1, 0.5, 0.9]}
    model = ev["forecast_metrics"]["mean_wQuantileLoss"]["value"]
    best = min(m["mean_wQuantileLoss"]["value"] for m in ev["baseline_metrics"].values())
    assert ev["best_baseline"]["mean_wQuantileLoss"]["value"] == best
    assert ev["baseline_metrics"][ev["best_baseline"]["name"]]["mean_wQuantileLoss"]["value"] == best
    assert ev["relative_mean_wQuantileLoss"]["value"] == pytest.approx(model / best)
    assert model < best  # the near-perfect forecaster beats every baseline
    assert ev["candidate"] == {"name": "DeepAR training job t-001"}
    # which hours each period covered: disjoint, in order, the evaluation last
    periods = ev["periods"]
    assert [periods[p]["hours"] for p in ("validation", "evaluation")] == [V * PL, K * PL]
    assert periods["train"]["end"] < periods["validation"]["start"] <= periods["validation"]["end"] \
        < periods["evaluation"]["start"] <= periods["evaluation"]["end"]
    details = json.loads((root / "eval" / "evaluation_details.json").read_text())
    assert [row["thing_name"] for row in details["per_series"]] == ["a", "b"]
    assert (root / "eval" / "forecast.png").stat().st_size > 1000


def test_baseline_is_scored_on_the_same_windows(tmp_path: Path) -> None:
    root = make_inputs(tmp_path)
    read = [[json.loads(line) for line in (root / "pre" / "evaluation" / name).read_text().splitlines()]
            for name in ("windows.jsonl", "actuals.jsonl")]
    windows, actuals = read
    meta = json.loads((root / "pre" / "metadata" / "metadata.json").read_text())
    # Feed the seasonal naive itself as "the model": relative must be exactly 1.
    preds = []
    for w in windows:
        fc = seasonal_naive_forecast(np.array([np.nan if v == "NaN" else v for v in w["target"]], float), PL)
        preds.append({"mean": fc.mean.tolist(), "quantiles": {str(q): v.tolist() for q, v in fc.quantiles.items()}})
    ev, _ = evaluate(windows, actuals, preds, meta, fitted_baseline=False)
    assert ev["best_baseline"]["name"] == "seasonal_naive"
    assert ev["relative_mean_wQuantileLoss"]["value"] == pytest.approx(1.0)
    assert ev["forecast_metrics"]["RMSE"] == ev["baseline_metrics"]["seasonal_naive"]["RMSE"]


def weekly_inputs(weeks: int = 6) -> Any:
    """Two sensors open 08:00-17:00 on weekdays only (silent otherwise), busier on Mondays."""
    rng = np.random.default_rng(3)
    hour = pd.date_range("2024-01-01", periods=24 * 7 * weeks, freq="h")  # a Monday
    open_hours = (hour.dayofweek < 5) & (hour.hour >= 8) & (hour.hour < 17)
    frames = []
    for thing, level in (("a", 50.0), ("b", 90.0)):
        y = level * (1 + 0.6 * (hour.dayofweek == 0)) + 10 * np.sin((hour.hour - 8) / 9 * np.pi) \
            + rng.normal(0, 2, len(hour))
        frames.append(pd.DataFrame({"thing_name": thing, "pollutant": "occupancy", "hour": hour[open_hours],
                                    "mean": y[open_hours]}))
    data = build_dataset(normalise_hourly(pd.concat(frames)), PL, 0, 7, num_validation_windows=7)
    return data


def _naive_preds(windows: list[dict], season: int) -> list[dict]:
    preds = []
    for w in windows:
        fc = seasonal_naive_forecast(np.array([np.nan if v == "NaN" else v for v in w["target"]], float), PL, season)
        preds.append({"mean": fc.mean.tolist(), "quantiles": {str(q): v.tolist() for q, v in fc.quantiles.items()}})
    return preds


def test_gate_compares_with_the_best_of_several_baselines() -> None:
    data = weekly_inputs()
    profile = data.metadata["profile"]
    assert profile["seasons"] == [24, 168] and profile["dominant_season"] == 168
    assert profile["regular_gaps"]["series_with_regular_gaps"] == 2  # nights and weekends: not data to impute
    # a candidate that is the daily naive: the weekly naive beats it, so it must not pass a ratio <= 1
    ev, details = evaluate(data.windows, data.actuals, _naive_preds(data.windows, 24), data.metadata,
                           validation=(data.validation_windows, data.validation_actuals), n_jobs=1)
    assert set(ev["baseline_metrics"]) == {"seasonal_naive", "seasonal_naive_168", "autotheta"}
    wql = {k: v["mean_wQuantileLoss"]["value"] for k, v in ev["baseline_metrics"].items()}
    assert ev["best_baseline"]["name"] == min(wql, key=wql.get)
    assert wql["seasonal_naive_168"] < wql["seasonal_naive"]
    assert ev["relative_mean_wQuantileLoss"]["value"] == pytest.approx(
        ev["forecast_metrics"]["mean_wQuantileLoss"]["value"] / min(wql.values()))
    assert ev["relative_mean_wQuantileLoss"]["value"] > 1.0
    assert {"seasonal_naive", "seasonal_naive_168", "autotheta", "model"} <= set(details["per_series"][0])


def test_baseline_settings_are_chosen_on_validation_never_on_evaluation() -> None:
    data = weekly_inputs()
    validation = (data.validation_windows, data.validation_actuals)
    preds = _naive_preds(data.windows, 168)
    ev, _ = evaluate(data.windows, data.actuals, preds, data.metadata, validation=validation, n_jobs=1)
    chosen = ev["baseline_settings"]["autotheta"]
    assert chosen["chosen_on"] == "validation"
    assert {(t["season_length"], t["fit_hours"]) for t in chosen["tried"]} >= {(24, 336), (168, 336)}
    # wreck the evaluation actuals: the scores change, the settings chosen do not
    wrecked = [{**a, "target": [v * 10 if v != "NaN" else v for v in a["target"]]} for a in data.actuals]
    ev2, _ = evaluate(data.windows, wrecked, preds, data.metadata, validation=validation, n_jobs=1)
    assert ev2["baseline_settings"] == ev["baseline_settings"]
    assert ev2["baseline_metrics"]["autotheta"] != ev["baseline_metrics"]["autotheta"]


def test_bad_inputs_fail_with_a_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_inputs(tmp_path, forecast="no-0.9")
    assert main(args(root)) == 2
    assert "lacks quantile 0.9" in capsys.readouterr().err
    with pytest.raises(EvaluationError, match="must line up"):
        evaluate([{"target": [1]}], [], [], {"prediction_length": PL})
    (root / "forecast" / "windows.jsonl.out").unlink()
    assert main(args(root)) == 2
    assert "expected windows.jsonl.out" in capsys.readouterr().err


def test_runs_as_a_standalone_script_from_its_own_folder(tmp_path: Path) -> None:
    """In the processing container only the evaluation/ folder is there: no package imports."""
    root = make_inputs(tmp_path)
    code = tmp_path / "code"
    code.mkdir()
    for name in ("evaluate.py", "metrics.py", "plots.py", "baselines.py"):
        (code / name).write_text((REPO_ROOT / "evaluation" / name).read_text())
    proc = subprocess.run([sys.executable, str(code / "evaluate.py"), *args(root), "--no-fitted-baseline"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((root / "eval" / "evaluation.json").read_text())["evaluation"]["windows"] == K
