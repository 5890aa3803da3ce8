"""The Evaluate job: batch-transform output + preprocess outputs → evaluation.json (DESIGN.md shape)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.evaluate import EvaluationError, evaluate, main
from evaluation.metrics import seasonal_naive_forecast
from processing.preprocess import build_dataset, normalise_hourly, write_dataset
from tests.conftest import REPO_ROOT

PL, CTX, K = 24, 48, 3


def make_inputs(root: Path, forecast: str = "good") -> Path:
    """Preprocess outputs for two synthetic series plus a fake batch-transform output."""
    rng = np.random.default_rng(5)
    frames = []
    for thing, level in (("a", 40.0), ("b", 80.0)):
        hours = 24 * 12
        y = level + 20 * np.sin(np.arange(hours) * 2 * np.pi / 24) + rng.normal(0, 3, hours)
        frames.append(pd.DataFrame({"thing_name": thing, "pollutant": "pm2_5",
                                    "hour": pd.date_range("2021-05-01", periods=hours, freq="h"), "mean": y}))
    data = build_dataset(normalise_hourly(pd.concat(frames)), PL, CTX, K)
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
            "--metadata-dir", str(root / "pre" / "metadata"), "--output-dir", str(root / "eval")]


def test_evaluation_json_has_the_design_shape(tmp_path: Path) -> None:
    root = make_inputs(tmp_path)
    assert main(args(root)) == 0
    ev = json.loads((root / "eval" / "evaluation.json").read_text())
    assert set(ev) == {"forecast_metrics", "baseline_metrics", "relative_mean_wQuantileLoss", "evaluation"}
    assert set(ev["forecast_metrics"]) == {"mean_wQuantileLoss", "wQuantileLoss[0.1]", "wQuantileLoss[0.5]",
                                           "wQuantileLoss[0.9]", "RMSE", "MASE", "coverage[0.1,0.9]"}
    assert set(ev["baseline_metrics"]) == {"seasonal_naive"}
    assert set(ev["baseline_metrics"]["seasonal_naive"]) == {"mean_wQuantileLoss", "RMSE", "MASE", "coverage[0.1,0.9]"}
    for leaf in [*ev["forecast_metrics"].values(), *ev["baseline_metrics"]["seasonal_naive"].values()]:
        assert set(leaf) == {"value"} and isinstance(leaf["value"], float)
    assert ev["evaluation"] == {"series": 2, "windows": K, "prediction_length": PL, "quantiles": [0.1, 0.5, 0.9]}
    model = ev["forecast_metrics"]["mean_wQuantileLoss"]["value"]
    naive = ev["baseline_metrics"]["seasonal_naive"]["mean_wQuantileLoss"]["value"]
    assert ev["relative_mean_wQuantileLoss"]["value"] == pytest.approx(model / naive)
    assert model < naive  # the near-perfect forecaster beats the baseline
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
    ev, _ = evaluate(windows, actuals, preds, meta)
    assert ev["relative_mean_wQuantileLoss"]["value"] == pytest.approx(1.0)
    assert ev["forecast_metrics"]["RMSE"] == ev["baseline_metrics"]["seasonal_naive"]["RMSE"]


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
    for name in ("evaluate.py", "metrics.py", "plots.py"):
        (code / name).write_text((REPO_ROOT / "evaluation" / name).read_text())
    proc = subprocess.run([sys.executable, str(code / "evaluate.py"), *args(root)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((root / "eval" / "evaluation.json").read_text())["evaluation"]["windows"] == K
