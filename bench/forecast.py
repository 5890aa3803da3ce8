"""Forecast accuracy and cost: the local pipeline's DeepAR against its baselines, on data it never chose on.

Every number comes from running the **local pipeline itself** (``run_local_pipeline``: Preprocess →
TuneDeepAR → CreateModel → BatchForecast → Evaluate → QualityGate) on a throw-away data dir
holding the dataset as curated hourly parquet, with the pipeline's default parameters unless
said otherwise. Preprocess cuts three disjoint periods: tuning (and AutoTheta's own season and
fit length) is chosen on the validation windows; the figures below are the **test** windows
(the gate's evaluation windows), which no choice has seen.

Two modes:

* default — Beijing PM2.5 2010-2014 (``data/beijing_pm25_hourly.csv``), 30 validation windows then
  30 test windows of 24 h at the end. Prints every model's metrics; the last line is one JSON
  object: ``wql_deepar, wql_seasonal_naive, wql_autoets, wql_autotheta, ratio_vs_naive, train_s,
  peak_rss_mib, validation_windows, test_windows, ...``. AutoETS (season 24, fit on 4 weeks) is
  scored here on the same test windows as an extra baseline.
* ``--suite`` — the generalization suite (``bench/data/``, sources and licences in its README):
  the latest year of hourly data per dataset (``--months``; less where the source has less),
  defaults throughout.
  Per dataset: the candidate's mean wQL, each baseline's, the ratio to the best baseline, tuning
  and training seconds and peak memory (the pipeline's process tree, sampled). The datasets in
  ``HELD_OUT`` were kept out of every choice of defaults and are reported apart. The last line is
  one JSON object with the per-dataset ratios and their geometric mean.

    python -m bench.forecast [--param MaxTuningJobs=6] [--plot bench/out/forecast.png]
    python -m bench.forecast --suite [--datasets electricity water_flow] [--param Name=Value ...]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
BEIJING_CSV = REPO_ROOT / "data" / "beijing_pm25_hourly.csv"
SUITE_DIR = REPO_ROOT / "bench" / "data"
#: datasets kept out of every choice of the pipeline's defaults (reported apart)
HELD_OUT = ("birmingham_parking", "water_flow")
SUITE = ("beijing_pm25", "electricity", "metro_traffic", "auckland_pedestrians", "seattle_temperature", *HELD_OUT)


def stage(message: str) -> None:
    """A progress line on stderr."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def beijing_hourly(csv: Path) -> pd.DataFrame:
    """The Beijing CSV as curated-hourly rows (one thing, pollutant pm2_5; NA rows dropped = gaps)."""
    from processing.preprocess import normalise_hourly

    raw = pd.read_csv(csv)
    hour = pd.to_datetime(raw[["year", "month", "day", "hour"]])
    frame = pd.DataFrame({"thing_name": "beijing-us-embassy", "pollutant": "pm2_5", "hour": hour, "mean": raw["pm2.5"]})
    return normalise_hourly(frame.dropna(subset=["mean"]))


def load_dataset(name: str, months: int = 12) -> pd.DataFrame:
    """One suite dataset as curated hourly rows (``thing_name, pollutant, hour, mean``), its last ``months``."""
    if name == "beijing_pm25":
        frame = beijing_hourly(BEIJING_CSV)
    else:
        path = SUITE_DIR / f"{name}.csv.gz"
        if not path.is_file():
            raise SystemExit(f"bench.forecast: unknown dataset {name!r}; known: {', '.join(SUITE)}")
        frame = pd.read_csv(path, parse_dates=["hour"])
    return frame[frame["hour"] > frame["hour"].max() - pd.DateOffset(months=months)]


class PeakMemory:
    """Peak resident memory of this process and all its descendants together, sampled every second."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self._proc, *self._proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(1.0)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def write_curated(frame: pd.DataFrame, s3_root: Path) -> None:
    """Curated hourly parquet, one ``dt=`` partition per day, as the Glue job writes it."""
    root = s3_root / "aircast-lake" / "curated" / "hourly"
    frame = frame.assign(hour=pd.to_datetime(frame["hour"]), count=1)
    for day, part in frame.groupby(frame["hour"].dt.strftime("%Y-%m-%d")):
        folder = root / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        part.to_parquet(folder / "part-00000.parquet", index=False)


def run_pipeline(frame: pd.DataFrame, params: dict[str, Any], keep: Path | None = None) -> dict[str, Any]:
    """The local pipeline on ``frame`` in a fresh data dir; its evaluation, steps, trials and peak memory."""
    from aircast.cli import exported_settings
    from aircast.local_wiring import run_local_pipeline
    from aircast.settings import load_settings
    from infra.local.sagemaker.client import LocalSageMakerClient

    data_dir = Path(tempfile.mkdtemp(prefix="bench-forecast-"))
    try:
        settings = load_settings(None, data_dir=str(data_dir))
        write_curated(frame, Path(settings.s3_root))
        started = time.perf_counter()
        # the pipeline's Deploy step runs the deploy Lambda in this process: it reads its settings from
        # the environment, as on AWS (without them it looked in the default data dir and refused)
        with PeakMemory() as memory, exported_settings(settings):
            summary = run_local_pipeline(settings, {"MaxRelativeWQL": 1e9, "MaxMeanWQL": 1e9, **params},
                                         progress=True)
        seconds = time.perf_counter() - started
        if summary["status"] != "Succeeded":
            raise RuntimeError(f"pipeline {summary['status']}: {summary['failure_reason']}")
        report = next(data_dir.rglob("evaluation/evaluation/evaluation.json"), None) or next(
            p for p in data_dir.rglob("evaluation.json") if "Evaluate" in p.parts)
        evaluation = json.loads(report.read_text())
        client = LocalSageMakerClient(settings.local_config())
        with client._tuning_db() as db:
            trials = [dict(r) for r in db.execute("SELECT * FROM tuning_training_jobs ORDER BY number")]
        work = next(data_dir.rglob("Evaluate/opt/ml/processing/input"), None)
        windows = {}
        if work is not None:
            for part in ("evaluation", "validation"):
                windows[part] = (_jsonl(work / part / "windows.jsonl"), _jsonl(work / part / "actuals.jsonl"))
            windows["forecast"] = _jsonl(next((work / "forecast").rglob("*.out")))
        if keep is not None:
            shutil.copytree(data_dir, keep, dirs_exist_ok=True)
        return {"evaluation": evaluation, "steps": {s["step"]: s["seconds"] for s in summary["steps"]},
                "trials": trials, "seconds": seconds, "peak_mib": memory.peak_bytes / 2**20, "windows": windows}
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _floats(values: list) -> np.ndarray:
    return np.array([np.nan if v in ("NaN", None) else float(v) for v in values], dtype=float)


def _wql(metrics: dict, name: str) -> float | None:
    value = metrics.get(name, {}).get("mean_wQuantileLoss", {}).get("value")
    return None if value is None else float(value)


def geomean(values: list[float | None]) -> float | None:
    """Geometric mean of the positive values, to 4 decimals (None when there is none)."""
    values = [v for v in values if v is not None and v > 0]
    return round(math.exp(float(np.mean(np.log(values)))), 4) if values else None


def trial_seconds(trials: list[dict]) -> float:
    """Mean wall time of the tuning job's training jobs."""
    done = [t["ended"] - t["started"] for t in trials if t["ended"] and t["started"]]
    return float(np.mean(done)) if done else math.nan


def print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]], out: Callable = print) -> None:
    """A fixed-width table: ``columns`` = (key, header, format)."""
    out("".join(f"{h:>{max(len(h), 9) + 1}}" if i else f"{h:<22}" for i, (_, h, _) in enumerate(columns)))
    for row in rows:
        cells = []
        for i, (key, header, fmt) in enumerate(columns):
            value = row.get(key)
            text = "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else \
                format(value, fmt)
            cells.append(f"{text:>{max(len(header), 9) + 1}}" if i else f"{text:<22}")
        out("".join(cells))


def parse_params(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"bench.forecast: --param wants NAME=VALUE, got {item!r}")
        params[name.strip()] = value.strip()
    return params


def suite(args: argparse.Namespace) -> int:
    """Run the pipeline on each dataset; per-dataset figures, then the JSON line."""
    params = parse_params(args.param)
    rows = []
    for name in args.datasets or SUITE:
        frame = load_dataset(name, args.months)
        stage(f"{name}: {frame['thing_name'].nunique()} series, {len(frame)} hourly rows, "
              f"{frame['hour'].min()} .. {frame['hour'].max()}")
        run = run_pipeline(frame, params)
        ev = run["evaluation"]
        row: dict[str, Any] = {
            "dataset": name + (" (held out)" if name in HELD_OUT else ""), "name": name,
            "series": ev["evaluation"]["series"], "deepar": ev["forecast_metrics"]["mean_wQuantileLoss"]["value"],
            "best": ev["best_baseline"]["name"], "ratio": ev["relative_mean_wQuantileLoss"]["value"],
            "tune_s": run["steps"].get("TuneDeepAR"), "train_s": trial_seconds(run["trials"]),
            "pipeline_s": run["seconds"], "peak_mib": run["peak_mib"],
        }
        for baseline in ev["baseline_metrics"]:
            row[baseline] = _wql(ev["baseline_metrics"], baseline)
        rows.append(row)
        stage(f"{name}: DeepAR {row['deepar']:.4f} vs best baseline {row['best']} "
              f"{ev['best_baseline']['mean_wQuantileLoss']['value']:.4f}: ratio {row['ratio']:.3f}; "
              f"pipeline {row['pipeline_s']:.0f} s, peak {row['peak_mib']:.0f} MiB")
    columns = [("dataset", "dataset", ""), ("series", "series", "d"), ("deepar", "DeepAR", ".4f"),
               ("seasonal_naive", "naive 24h", ".4f"), ("seasonal_naive_168", "naive 168h", ".4f"),
               ("autotheta", "AutoTheta", ".4f"), ("ratio", "ratio", ".3f"), ("tune_s", "tune s", ".0f"),
               ("train_s", "train s/job", ".0f"), ("pipeline_s", "pipeline s", ".0f"), ("peak_mib", "peak MiB", ".0f")]
    print_table(rows, columns)

    suite_rows = [r for r in rows if r["name"] not in HELD_OUT]
    held_rows = [r for r in rows if r["name"] in HELD_OUT]
    summary = {
        "ratios": {r["name"]: round(r["ratio"], 4) for r in suite_rows},
        "geomean_ratio": geomean([r["ratio"] for r in suite_rows]),
        "held_out_ratios": {r["name"]: round(r["ratio"], 4) for r in held_rows},
        "held_out_geomean_ratio": geomean([r["ratio"] for r in held_rows]),
        "max_pipeline_s": round(max(r["pipeline_s"] for r in rows), 1),
        "max_peak_mib": round(max(r["peak_mib"] for r in rows), 1),
        "months": args.months,
        "parameters": params,
    }
    print(json.dumps(summary))
    return 0


def beijing(args: argparse.Namespace) -> int:
    """Beijing 2010-2014: 30 validation windows then 30 test windows; every model on the test windows."""
    from evaluation.metrics import QuantileForecast, forecast_metrics

    params = {"NumEvalWindows": args.windows, "NumValidationWindows": args.windows, **parse_params(args.param)}
    frame = beijing_hourly(args.csv)
    stage(f"Beijing: the local pipeline with {params}")
    runs = [run_pipeline(frame, params)]
    first = runs[0]
    ev = first["evaluation"]
    (windows, actuals), forecasts = first["windows"]["evaluation"], first["windows"]["forecast"]
    histories = [_floats(w["target"]) for w in windows]
    truth = [_floats(a["target"]) for a in actuals]
    results: dict[str, dict[str, float]] = {}
    deepar = [r["evaluation"]["forecast_metrics"] for r in runs]
    results["deepar"] = {k: float(np.mean([d[k]["value"] for d in deepar])) for k in deepar[0]}
    for name, metrics in ev["baseline_metrics"].items():
        results[name] = {k: v["value"] for k, v in metrics.items()}
    if not args.skip_ets:
        stage("AutoETS (season 24, 4 weeks of history) on the test windows")
        from statsforecast import StatsForecast
        from statsforecast.models import AutoETS

        parts = [pd.DataFrame({"unique_id": i, "ds": np.arange(672),
                               "y": pd.Series(h[-672:]).interpolate(limit_direction="both").to_numpy()})
                 for i, h in enumerate(histories)]
        out = StatsForecast(models=[AutoETS(season_length=24)], freq=1, n_jobs=1).forecast(
            df=pd.concat(parts, ignore_index=True), h=len(truth[0]), level=[80])
        out = out.reset_index() if "unique_id" not in out.columns else out
        fcs = []
        for i in range(len(histories)):
            rows = out[out["unique_id"] == i].sort_values("ds")
            point = rows["AutoETS"].to_numpy(float)
            fcs.append(QuantileForecast(mean=point, quantiles={0.1: rows["AutoETS-lo-80"].to_numpy(float), 0.5: point,
                                                               0.9: rows["AutoETS-hi-80"].to_numpy(float)}))
        results["autoets"] = forecast_metrics(truth, fcs, histories)
    print(f"{'model':<20}{'mean wQL':>10}{'RMSE':>9}{'MASE':>7}{'cov80':>7}")
    for name, m in results.items():
        print(f"{name:<20}{m['mean_wQuantileLoss']:>10.4f}{m['RMSE']:>9.1f}{m['MASE']:>7.2f}"
              f"{m['coverage[0.1,0.9]']:>7.2f}")
    if args.plot:
        from evaluation.plots import save_forecast_grid

        panels = []
        for i in (0, len(windows) // 2, len(windows) - 1):
            q = forecasts[i]["quantiles"]
            panels.append({
                "history_start": windows[i]["start"], "history": histories[i].tolist(),
                "forecast_start": actuals[i]["start"], "mean": forecasts[i]["mean"], "lower": q["0.1"],
                "upper": q["0.9"], "actuals": truth[i].tolist(), "history_points": 72,
                "title": f"DeepAR test window {i} ({actuals[i]['start']})",
            })
        stage(f"plot: {save_forecast_grid(panels, Path(args.plot), columns=3)}")
    periods = ev["periods"]
    best_trial = [min((t for t in r["trials"] if t["metrics"]),
                      key=lambda t: json.loads(t["metrics"])["test:mean_wQuantileLoss"]) for r in runs]
    summary = {
        "wql_deepar": round(results["deepar"]["mean_wQuantileLoss"], 4),
        "wql_seasonal_naive": round(results["seasonal_naive"]["mean_wQuantileLoss"], 4),
        "wql_autoets": round(results["autoets"]["mean_wQuantileLoss"], 4) if "autoets" in results else None,
        "wql_autotheta": round(results["autotheta"]["mean_wQuantileLoss"], 4) if "autotheta" in results else None,
        "ratio_vs_naive": round(results["deepar"]["mean_wQuantileLoss"] / results["seasonal_naive"]["mean_wQuantileLoss"],
                                4),
        "ratio_vs_best_baseline": round(float(np.mean([r["evaluation"]["relative_mean_wQuantileLoss"]["value"]
                                                       for r in runs])), 4),
        "train_s": round(float(np.mean([trial_seconds(r["trials"]) for r in runs])), 1),
        "tune_s": round(float(np.mean([r["steps"]["TuneDeepAR"] for r in runs])), 1),
        "peak_rss_mib": round(max(r["peak_mib"] for r in runs), 1),
        "validation_windows": f"{periods['validation']['start']} .. {periods['validation']['end']} "
                              f"({periods['validation']['hours'] // 24} x 24 h)",
        "test_windows": f"{periods['evaluation']['start']} .. {periods['evaluation']['end']} "
                        f"({periods['evaluation']['hours'] // 24} x 24 h)",
        # one run: DeepAR's seed is fixed (0) in the stand-in and the tuner's search is seeded too
        "wql_deepar_seeds": {"0": round(results["deepar"]["mean_wQuantileLoss"], 4)},
        "hyperparameters": {k: v for k, v in json.loads(best_trial[0]["hyperparameters"]).items()},
        "autotheta_settings": {k: v for k, v in ev["baseline_settings"].get("autotheta", {}).items() if k != "tried"},
    }
    print(json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the local pipeline's DeepAR vs its baselines on held-out windows")
    parser.add_argument("--suite", action="store_true", help="run the generalization suite (bench/data)")
    parser.add_argument("--datasets", nargs="+", choices=SUITE, help="suite datasets to run (default: all)")
    parser.add_argument("--months", type=int, default=12, help="suite: the last N months of each dataset")
    parser.add_argument("--csv", type=Path, default=BEIJING_CSV)
    parser.add_argument("--windows", type=int, default=30, help="Beijing: validation windows = test windows = this")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a pipeline parameter (e.g. MaxTuningJobs=1)")
    parser.add_argument("--skip-ets", action="store_true", help="Beijing: skip the AutoETS extra baseline")
    parser.add_argument("--plot", default=str(REPO_ROOT / "bench" / "out" / "forecast.png"), help="PNG; '' for none")
    args = parser.parse_args(argv)
    return suite(args) if args.suite else beijing(args)


if __name__ == "__main__":
    sys.exit(main())
