"""Forecast accuracy and training cost: DeepAR (the demo's hyperparameters) against baselines.

Beijing PM2.5 (``data/beijing_pm25_hourly.csv``), hourly, prediction length 24, 30 rolling
windows over the last 720 hours. The data goes through the pipeline's own preprocess
(``processing.preprocess.build_dataset``), so DeepAR trains only on the hours before the first
window — it never sees an hour it is scored on — and every model is scored by
``evaluation.metrics.forecast_metrics`` on the same windows and actuals:

* DeepAR: ``infra.local.sagemaker.deepar.train`` with ``DEMO_HYPERPARAMETERS`` (override with
  ``--hp name=value``), one run per ``--seeds`` value;
* seasonal naive (24 h) with statsforecast-style normal intervals from in-sample seasonal residuals;
* statsforecast ``AutoETS`` and ``AutoTheta`` (season 24), fitted per window on the last
  ``--stat-history`` hours (gaps interpolated: statsforecast needs gap-free input), quantiles
  0.1/0.9 from their 80% intervals, 0.5 = the point forecast.

The last line printed is one JSON object:
``wql_deepar, wql_seasonal_naive, wql_autoets, wql_autotheta, ratio_vs_naive, train_s, peak_rss_mib``.

    python -m bench.forecast [--seeds 1 2 3] [--hp epochs=30] [--skip-stats] [--plot bench/out/forecast.png]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.metrics import QUANTILES, QuantileForecast, forecast_metrics, seasonal_naive_forecast
from processing.preprocess import build_dataset, normalise_hourly

REPO_ROOT = Path(__file__).resolve().parents[1]
BEIJING_CSV = REPO_ROOT / "data" / "beijing_pm25_hourly.csv"


def stage(message: str) -> None:
    """A progress line on stderr."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def beijing_hourly(csv: Path) -> pd.DataFrame:
    """The Beijing CSV as curated-hourly rows (one thing, pollutant pm2_5; NA rows dropped = gaps)."""
    raw = pd.read_csv(csv)
    hour = pd.to_datetime(raw[["year", "month", "day", "hour"]])
    frame = pd.DataFrame({"thing_name": "beijing-us-embassy", "pollutant": "pm2_5", "hour": hour, "mean": raw["pm2.5"]})
    return normalise_hourly(frame.dropna(subset=["mean"]))


def _floats(values: list) -> np.ndarray:
    return np.array([np.nan if v == "NaN" else float(v) for v in values], dtype=float)


def statsforecast_forecasts(histories: list[np.ndarray], h: int, history_hours: int) -> dict[str, list[QuantileForecast]]:
    """AutoETS and AutoTheta forecasts per window, with 80% intervals as the 0.1/0.9 quantiles."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta

    frames = []
    for i, hist in enumerate(histories):
        y = pd.Series(hist[-history_hours:]).interpolate(limit_direction="both").to_numpy()
        frames.append(pd.DataFrame({"unique_id": i, "ds": np.arange(len(y)), "y": y}))
    sf = StatsForecast(models=[AutoETS(season_length=24), AutoTheta(season_length=24)], freq=1, n_jobs=1)
    out = sf.forecast(df=pd.concat(frames, ignore_index=True), h=h, level=[80]).reset_index()
    result: dict[str, list[QuantileForecast]] = {"AutoETS": [], "AutoTheta": []}
    for i in range(len(histories)):
        rows = out[out["unique_id"] == i].sort_values("ds")
        for name in result:
            point = rows[name].to_numpy(dtype=float)
            result[name].append(
                QuantileForecast(
                    mean=point,
                    quantiles={0.1: rows[f"{name}-lo-80"].to_numpy(float), 0.5: point, 0.9: rows[f"{name}-hi-80"].to_numpy(float)},
                )
            )
    return result


def deepar_run(hyperparameters: dict[str, str], train_rows: list[dict], windows: list[dict], seed: int) -> tuple[list[QuantileForecast], float]:
    """Train DeepAR (timed) and forecast every window."""
    import torch

    from infra.local.sagemaker.deepar import DeepARPredictor, train

    hp = {**hyperparameters, "_seed": str(seed)}
    with tempfile.TemporaryDirectory(prefix="bench-deepar-") as tmp:
        channel = Path(tmp) / "train"
        channel.mkdir()
        (channel / "train.json").write_text("".join(json.dumps(r) + "\n" for r in train_rows))
        started = time.perf_counter()
        train(hp, {"train": channel}, Path(tmp) / "model", progress=False)
        train_s = time.perf_counter() - started
        predictor = DeepARPredictor.load(Path(tmp) / "model")
        torch.manual_seed(seed)
        instances = [{**w, "target": _floats(w["target"]).tolist()} for w in windows]
        predictions = predictor.predict(
            instances, {"num_samples": 200, "output_types": ["mean", "quantiles"], "quantiles": ["0.1", "0.5", "0.9"]}
        )
    forecasts = [
        QuantileForecast(mean=np.array(p["mean"]), quantiles={float(q): np.array(v) for q, v in p["quantiles"].items()})
        for p in predictions
    ]
    return forecasts, train_s


def main(argv: list[str] | None = None) -> int:
    from infra.local.sagemaker.deepar import DEMO_HYPERPARAMETERS

    parser = argparse.ArgumentParser(description="DeepAR vs baselines on Beijing PM2.5")
    parser.add_argument("--csv", type=Path, default=BEIJING_CSV)
    parser.add_argument("--windows", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="DeepAR seeds; results are averaged")
    parser.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE", help="override a DeepAR hyperparameter")
    parser.add_argument("--stat-history", type=int, default=24 * 28, help="hours of history for AutoETS/AutoTheta")
    parser.add_argument("--skip-stats", action="store_true", help="skip AutoETS/AutoTheta (faster sweeps)")
    parser.add_argument("--plot", default=str(REPO_ROOT / "bench" / "out" / "forecast.png"), help="PNG path; '' for none")
    args = parser.parse_args(argv)

    hp = {k: v for k, v in DEMO_HYPERPARAMETERS.items() if k != "_seed"}  # seeds come from --seeds
    for item in args.hp:
        name, _, value = item.partition("=")
        hp[name.strip()] = value.strip()
    h = int(hp["prediction_length"])
    stage(f"loading {args.csv.name}")
    data = build_dataset(beijing_hourly(args.csv), h, int(hp["context_length"]), args.windows)
    windows, actuals = data.windows, data.actuals
    histories = [_floats(w["target"]) for w in windows]
    truth = [_floats(a["target"]) for a in actuals]
    stage(f"{len(data.train[0]['target'])} training hours, {len(windows)} windows from {data.metadata['first_window_start']}")

    results: dict[str, dict[str, float]] = {}
    naive = [seasonal_naive_forecast(hist, h, 24, QUANTILES) for hist in histories]
    results["seasonal_naive"] = forecast_metrics(truth, naive, histories)
    if not args.skip_stats:
        stage("fitting AutoETS and AutoTheta per window")
        started = time.perf_counter()
        for name, fcs in statsforecast_forecasts(histories, h, args.stat_history).items():
            results[name.lower()] = forecast_metrics(truth, fcs, histories)
        stage(f"statsforecast took {time.perf_counter() - started:.1f} s")

    runs = []
    first_forecasts = None
    for seed in args.seeds:
        stage(f"training DeepAR seed {seed}: {hp}")  # _seed is set per run
        forecasts, train_s = deepar_run(hp, data.train, windows, seed)
        metrics = forecast_metrics(truth, forecasts, histories)
        runs.append((seed, train_s, metrics))
        first_forecasts = first_forecasts or forecasts
        stage(f"seed {seed}: mean wQL {metrics['mean_wQuantileLoss']:.3f}, trained in {train_s:.1f} s")
    wqls = [m["mean_wQuantileLoss"] for _, _, m in runs]
    results["deepar"] = {k: float(np.mean([m[k] for _, _, m in runs])) for k in runs[0][2]}

    print(f"{'model':<16}{'mean wQL':>10}{'wQL 0.1':>9}{'wQL 0.5':>9}{'wQL 0.9':>9}{'RMSE':>9}{'MASE':>7}{'cov80':>7}")
    for name, m in results.items():
        print(
            f"{name:<16}{m['mean_wQuantileLoss']:>10.3f}{m['wQuantileLoss[0.1]']:>9.3f}{m['wQuantileLoss[0.5]']:>9.3f}"
            f"{m['wQuantileLoss[0.9]']:>9.3f}{m['RMSE']:>9.1f}{m['MASE']:>7.2f}{m['coverage[0.1,0.9]']:>7.2f}"
        )
    if args.plot and first_forecasts is not None:
        from evaluation.plots import save_forecast_grid

        panels = []
        for i in (0, len(windows) // 2, len(windows) - 1):
            fc = first_forecasts[i]
            panels.append({
                "history_start": windows[i]["start"], "history": histories[i].tolist(),
                "forecast_start": actuals[i]["start"], "mean": fc.mean.tolist(), "lower": fc.quantile(0.1).tolist(),
                "upper": fc.quantile(0.9).tolist(), "actuals": truth[i].tolist(),
                "title": f"DeepAR window {i} ({actuals[i]['start']})", "history_points": 72,
            })
        stage(f"plot: {save_forecast_grid(panels, Path(args.plot), columns=3)}")

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = {
        "wql_deepar": round(results["deepar"]["mean_wQuantileLoss"], 4),
        "wql_seasonal_naive": round(results["seasonal_naive"]["mean_wQuantileLoss"], 4),
        "wql_autoets": round(results["autoets"]["mean_wQuantileLoss"], 4) if "autoets" in results else None,
        "wql_autotheta": round(results["autotheta"]["mean_wQuantileLoss"], 4) if "autotheta" in results else None,
        "ratio_vs_naive": round(results["deepar"]["mean_wQuantileLoss"] / results["seasonal_naive"]["mean_wQuantileLoss"], 4),
        "train_s": round(float(np.mean([t for _, t, _ in runs])), 1),
        "peak_rss_mib": round(peak_mib, 1),
        "wql_deepar_seeds": {str(s): round(w, 4) for (s, _, _), w in zip(runs, wqls, strict=True)},
        "hyperparameters": hp,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
