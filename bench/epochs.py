"""How the starting ``epochs`` was chosen: DeepAR at 15 and 30 epochs on the suite's validation weeks.

For each suite dataset that is **not held out** (``bench.forecast.HELD_OUT`` is refused), cut to
its last ``--months`` (2, 4 and 12 by default), Preprocess builds the pipeline's channels with
its defaults; one DeepAR training job per (epochs, seed) trains on the training period with the
starting values read from the data, and its forecasts of the **validation** windows are scored
by the Evaluate step's own metrics (mean wQL; the evaluation windows are never touched). DeepAR's
result depends a lot on its seed with so little training, so each setting runs with
``--seeds`` and the mean is compared.

Per history length the bench prints each dataset's mean validation wQL per epochs setting and
the ratio of the last setting to the first; the last line is one JSON object:
``{"median_ratio": {months: ...}, "geomean_ratio": {months: ...}, "ratios": {months: {dataset: ...}},
"epochs": [...], "seeds": [...]}``. The pipeline starts from 30 epochs where the median dataset
gained (a year of history) and from 15 where it did not (2 and 4 months), see
``processing.data_profile.starting_epochs``. The geometric mean is printed too: one dataset's
large ratio can carry it (the smooth Seattle temperature at 2 and 4 months).

    python -m bench.epochs [--months 2 4 12] [--epochs 15 30] [--seeds 0 1] [--datasets electricity ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.forecast import HELD_OUT, SUITE, geomean, load_dataset, stage


def prepare(name: str, months: int, root: Path) -> tuple[Path, dict, dict]:
    """Preprocess's output for the dataset's last ``months``: its folder, metadata and starting values."""
    from processing.preprocess import build_dataset, normalise_hourly, write_dataset

    data = build_dataset(normalise_hourly(load_dataset(name, months)), 24, 0, 7, "H", 7)
    folder = root / f"{name}-{months}"
    write_dataset(data, folder)
    return folder, data.metadata, data.hyperparameters["start"]


def validation_wql(folder: Path, metadata: dict, start: dict, epochs: int, seed: int) -> tuple[float, float]:
    """Train on the training period; (mean wQL of the validation windows, training seconds)."""
    import torch

    from evaluation.evaluate import evaluate, read_jsonl
    from evaluation.metrics import QUANTILES
    from infra.local.sagemaker.deepar import DeepARPredictor, train

    hyperparameters = {**start, "epochs": str(epochs), "prediction_length": "24", "time_freq": "H",
                       "cardinality": "auto", "early_stopping_patience": "10", "_seed": str(seed)}
    with tempfile.TemporaryDirectory(prefix="bench-epochs-") as model:
        started = time.perf_counter()
        # no test channel: the validation windows are scored once, below, as the Evaluate step scores them
        train(hyperparameters, {"train": folder / "train"}, Path(model), progress=False)
        seconds = time.perf_counter() - started
        predictor = DeepARPredictor.load(Path(model))
        torch.manual_seed(0)
        windows = read_jsonl(folder / "validation" / "windows.jsonl")
        actuals = read_jsonl(folder / "validation" / "actuals.jsonl")
        predictions = predictor.predict(windows, {"num_samples": 100, "output_types": ["mean", "quantiles"],
                                                  "quantiles": [str(q) for q in QUANTILES]})
    report, _ = evaluate(windows, actuals, predictions, metadata, fitted_baseline=False)
    return float(report["forecast_metrics"]["mean_wQuantileLoss"]["value"]), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="DeepAR epochs settings on the suite's validation weeks")
    parser.add_argument("--datasets", nargs="+", choices=[s for s in SUITE if s not in HELD_OUT],
                        default=[s for s in SUITE if s not in HELD_OUT],
                        help="suite datasets (the held-out ones are refused)")
    parser.add_argument("--months", nargs="+", type=int, default=[2, 4, 12], help="history lengths to compare")
    parser.add_argument("--epochs", nargs="+", type=int, default=[15, 30], help="settings; the first is the base")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    args = parser.parse_args(argv)
    if min(args.months) < 1 or min(args.epochs) < 1 or min(args.seeds) < 0 or len(args.epochs) < 2:
        parser.error("months and epochs must be >= 1, seeds >= 0, and at least two epochs settings to compare")
    base, last = args.epochs[0], args.epochs[-1]
    ratios: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-epochs-data-") as tmp:
        for months in args.months:
            ratios[str(months)] = {}
            for name in args.datasets:
                folder, metadata, start = prepare(name, months, Path(tmp))
                train_hours = metadata["profile"]["training_hours_median"]
                means = {}
                for epochs in args.epochs:
                    runs = [validation_wql(folder, metadata, start, epochs, seed) for seed in args.seeds]
                    means[epochs] = float(np.mean([wql for wql, _ in runs]))
                    stage(f"{name} {months} months ({train_hours} training hours): {epochs} epochs: validation "
                          f"wQL {' / '.join(f'{wql:.4f}' for wql, _ in runs)} (seeds {args.seeds}), mean "
                          f"{means[epochs]:.4f}, {np.mean([s for _, s in runs]):.0f} s per job")
                ratios[str(months)][name] = round(means[last] / means[base], 4)
                print(f"{months:>3} months  {name:<22} " + "  ".join(f"{e} epochs {means[e]:.4f}" for e in args.epochs)
                      + f"  {last}/{base}: {ratios[str(months)][name]:.3f}", flush=True)
    summary: dict[str, Any] = {"median_ratio": {m: round(float(np.median(list(r.values()))), 4) for m, r in ratios.items()},
                               "geomean_ratio": {m: geomean(list(r.values())) for m, r in ratios.items()},
                               "ratios": ratios, "epochs": args.epochs, "seeds": args.seeds}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
