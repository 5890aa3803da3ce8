"""SageMaker processing job: curated hourly parquet → DeepAR JSON lines in three disjoint periods.

Input: ``curated/hourly/dt=YYYY-MM-DD/*.parquet`` (``thing_name, pollutant, hour, mean, count, ...``).
Output, under ``--output-dir``::

    train/train.json                DeepAR JSON lines: each series up to the validation period
    test/test.json                  DeepAR's test channel = the validation windows: each series cut at the
                                    end of each validation window (DeepAR scores its last prediction_length
                                    points, so tuning's objective is measured on the validation period)
    validation/windows.jsonl        one DeepAR instance per (series, validation window): the history before it
    validation/actuals.jsonl        same order: {"series", "window", "start", "target"}
    evaluation/windows.jsonl        the same for the evaluation windows the quality gate scores
    evaluation/actuals.jsonl
    metadata/metadata.json          cat maps, cardinality, periods, windows, the data profile, skipped series
    metadata/hyperparameters.json   starting hyperparameters and tuning ranges (the pipeline's property file)

One series per (thing_name, pollutant), hourly, from its first observed hour to the last hour in
the input (a common end, so every series shares the same windows); hours without a reading are
``"NaN"`` — never dropped or zero-filled. ``cat = [pollutant_index, thing_index]``.

Three disjoint periods, oldest first (the choice this script makes):

* **train**: everything before the validation period; the model trains on it, and the data
  profile (:mod:`processing.data_profile`: seasons, context, likelihood, regular gaps) reads only it;
* **validation**: ``V * prediction_length`` hours; tuning's objective (DeepAR's test channel) and the
  baselines' own settings are measured here;
* **evaluation**: the last ``K * prediction_length`` hours; the quality gate scores them and
  nothing is chosen on them.

Windows condition on all history before their start (including earlier periods' actuals, as a
rolling forecast would), but never on their own hours.

Usage (SageMaker container paths are the defaults)::

    python preprocess.py --input-dir /opt/ml/processing/input/hourly --output-dir /opt/ml/processing/output \\
        --prediction-length 24 --num-windows 7 --validation-windows 7 [--context-length 0] [--likelihood auto]

Needs: Python >= 3.9, numpy, pandas, pyarrow (the scikit-learn 1.2-1 processing image).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

try:
    from processing.data_profile import BASE_DEFAULTS, profile_series, tuning_ranges
except ImportError:  # run from its own folder
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from data_profile import BASE_DEFAULTS, profile_series, tuning_ranges  # type: ignore[no-redef]

log = logging.getLogger("preprocess")

REQUIRED_COLUMNS = ("thing_name", "pollutant", "hour", "mean")
SUPPORTED_FREQ = {"H": "h", "1H": "h", "h": "h", "1h": "h"}


class PreprocessError(ValueError):
    """Input the job cannot turn into a dataset; the message says what and what to do."""


@dataclass
class DeepARDataset:
    """Everything the job writes, as plain JSON-ready objects."""

    train: list[dict] = field(default_factory=list)
    test: list[dict] = field(default_factory=list)
    validation_windows: list[dict] = field(default_factory=list)
    validation_actuals: list[dict] = field(default_factory=list)
    windows: list[dict] = field(default_factory=list)
    actuals: list[dict] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: {"start": starting hyperparameters, "ranges": tuning ranges}: the pipeline's property file
    hyperparameters: dict[str, Any] = field(default_factory=dict)


def read_hourly(input_dir: Path) -> pd.DataFrame:
    """Read every parquet file under ``input_dir`` (``dt=`` partition folders included)."""
    files = sorted(p for p in Path(input_dir).rglob("*.parquet") if p.is_file())
    if not files:
        raise PreprocessError(f"no parquet files under {input_dir}; run the Glue job to fill curated/hourly first")
    frames = [pd.read_parquet(f) for f in files]
    return pd.concat(frames, ignore_index=True)


def normalise_hourly(frame: pd.DataFrame, pollutants: list[str] | None = None) -> pd.DataFrame:
    """Typed, UTC-naive, one row per (thing_name, pollutant, hour).

    Duplicate hours (e.g. two ETL outputs for one hour) are merged into a count-weighted mean.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise PreprocessError(f"input lacks column(s) {missing}; expected {list(REQUIRED_COLUMNS)} (curated hourly)")
    df = frame[[c for c in (*REQUIRED_COLUMNS, "count") if c in frame.columns]].copy()
    df["thing_name"] = df["thing_name"].astype(str)
    df["pollutant"] = df["pollutant"].astype(str)
    hour = pd.to_datetime(df["hour"], utc=True)
    df["hour"] = hour.dt.tz_convert("UTC").dt.tz_localize(None).dt.floor("h")
    df["mean"] = pd.to_numeric(df["mean"], errors="coerce").astype(float)
    if pollutants:
        df = df[df["pollutant"].isin(pollutants)]
    df = df[np.isfinite(df["mean"])]
    if "count" in df.columns:
        weight = pd.to_numeric(df["count"], errors="coerce").fillna(0).clip(lower=0).astype(float)
    else:
        weight = pd.Series(1.0, index=df.index)
    weight = weight.where(weight > 0, 1.0)
    df = df.assign(_w=weight, _wx=weight * df["mean"])
    grouped = df.groupby(["thing_name", "pollutant", "hour"], as_index=False)[["_w", "_wx"]].sum()
    grouped["mean"] = grouped["_wx"] / grouped["_w"]
    return grouped[["thing_name", "pollutant", "hour", "mean"]].sort_values(["thing_name", "pollutant", "hour"])


def hourly_series(df: pd.DataFrame, end: pd.Timestamp) -> dict[tuple[str, str], pd.Series]:
    """One hourly series per (thing_name, pollutant) from its first reading to ``end``; gaps are NaN."""
    out: dict[tuple[str, str], pd.Series] = {}
    for (thing, pollutant), group in df.groupby(["thing_name", "pollutant"], sort=True):
        values = group.set_index("hour")["mean"]
        index = pd.date_range(values.index.min(), end, freq="h")
        out[(str(thing), str(pollutant))] = values.reindex(index)
    return out


def _fmt(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S")


def _target(values: np.ndarray) -> list[float | str]:
    return ["NaN" if math.isnan(v) else float(v) for v in values]


def _period(first: pd.Timestamp, hours: int) -> dict[str, Any]:
    return {"start": _fmt(first), "end": _fmt(first + pd.Timedelta(hours=hours - 1)), "hours": hours}


def build_dataset(
    df: pd.DataFrame,
    prediction_length: int,
    context_length: int,
    num_windows: int,
    freq: str = "H",
    num_validation_windows: int = 7,
    start: dict[str, Any] | None = None,
    likelihood: str = "auto",
) -> DeepARDataset:
    """Turn normalised hourly rows into the DeepAR channels, the validation and evaluation windows,
    the starting hyperparameters and metadata.

    ``context_length`` 0, ``likelihood`` "auto" and ``start["epochs"]`` 0 or absent are read from the
    training period (see :mod:`processing.data_profile`); ``start`` overrides other starting values.
    Raises :class:`PreprocessError` when no series is long enough.
    """
    if freq not in SUPPORTED_FREQ:
        raise PreprocessError(f"--freq {freq!r}: only hourly data is supported (use H)")
    if prediction_length < 1 or context_length < 0 or num_windows < 1 or num_validation_windows < 1:
        raise PreprocessError("prediction length, number of evaluation windows and number of validation windows "
                              "must all be >= 1 (context length >= 0, 0 = from the data)")
    if (start or {}).get("epochs") is not None and start["epochs"] < 0:
        raise PreprocessError(f"epochs {start['epochs']}: must be >= 1 (0 = from the training history)")
    if df.empty:
        raise PreprocessError("the input has no pollutant readings (after filtering); nothing to train on")
    end = pd.Timestamp(df["hour"].max())
    horizon = num_windows * prediction_length
    validation = num_validation_windows * prediction_length
    first_window = end - pd.Timedelta(hours=horizon - 1)
    first_validation = first_window - pd.Timedelta(hours=validation)
    # the context is not known yet when it comes from the data: require the longest it can be
    needed = (context_length or 2 * prediction_length) + prediction_length

    usable: list[tuple[str, str, pd.Series]] = []
    skipped: list[dict[str, Any]] = []
    for (thing, pollutant), series in hourly_series(df, end).items():
        train_len = len(series) - horizon - validation
        reason = None
        if train_len < needed:
            reason = (
                f"too short: {len(series)} hours from first reading to the end; needs {needed} hours of training "
                f"before the {num_validation_windows} validation and {num_windows} evaluation window(s) of "
                f"{prediction_length} hours ({needed + validation + horizon} in all)"
            )
        elif not np.isfinite(series.to_numpy()[:train_len]).any():
            reason = "no readings before the validation period"
        if reason:
            log.warning("skipping series thing=%s pollutant=%s: %s", thing, pollutant, reason)
            skipped.append({"thing_name": thing, "pollutant": pollutant, "reason": reason})
        else:
            usable.append((thing, pollutant, series))
    if not usable:
        detail = "; ".join(f"{s['thing_name']}/{s['pollutant']}: {s['reason']}" for s in skipped[:5])
        raise PreprocessError(
            f"no usable series ({len(skipped)} skipped: {detail}). Collect more hours of data or lower "
            "--context-length/--prediction-length/--num-windows/--validation-windows."
        )

    pollutant_index = {p: i for i, p in enumerate(sorted({p for _, p, _ in usable}))}
    thing_index = {t: i for i, t in enumerate(sorted({t for t, _, _ in usable}))}
    data = DeepARDataset()
    series_meta = []
    train_parts, start_hours = [], []
    for i, (thing, pollutant, series) in enumerate(usable):
        cat = [pollutant_index[pollutant], thing_index[thing]]
        values = series.to_numpy(dtype=float)
        first = _fmt(series.index[0])
        train_len = len(values) - horizon - validation
        eval_start = train_len + validation
        train_parts.append(values[:train_len])
        start_hours.append(int(series.index[0].dayofweek) * 24 + int(series.index[0].hour))
        data.train.append({"start": first, "target": _target(values[:train_len]), "cat": cat})
        for k in range(num_validation_windows):
            cut = train_len + k * prediction_length
            # DeepAR scores the last prediction_length points of each test series: window k of the validation
            data.test.append({"start": first, "target": _target(values[: cut + prediction_length]), "cat": cat})
            data.validation_windows.append({"start": first, "target": _target(values[:cut]), "cat": cat})
            data.validation_actuals.append({"series": i, "window": k, "start": _fmt(series.index[cut]),
                                            "target": _target(values[cut: cut + prediction_length])})
        for k in range(num_windows):
            cut = eval_start + k * prediction_length
            data.windows.append({"start": first, "target": _target(values[:cut]), "cat": cat})
            data.actuals.append({"series": i, "window": k, "start": _fmt(series.index[cut]),
                                 "target": _target(values[cut: cut + prediction_length])})
        series_meta.append(
            {
                "series": i,
                "thing_name": thing,
                "pollutant": pollutant,
                "cat": cat,
                "start": first,
                "length": len(values),
                "train_length": train_len,
                "observed": int(np.isfinite(values).sum()),
            }
        )
    profile = profile_series(train_parts, start_hours, [len(pollutant_index), len(thing_index)], prediction_length)
    hyperparameters = dict(profile["hyperparameters"])
    # None, and epochs 0 (the pipeline's default), keep the value read from the data
    hyperparameters.update({k: v for k, v in (start or {}).items() if v is not None and not (k == "epochs" and v == 0)})
    if context_length:
        hyperparameters["context_length"] = context_length
    if likelihood and likelihood != "auto":
        hyperparameters["likelihood"] = likelihood
    profile["hyperparameters"] = hyperparameters
    train_start = min(s.index[0] for _, _, s in usable)
    data.hyperparameters = {"start": {k: str(v) for k, v in hyperparameters.items()},
                            "ranges": tuning_ranges(hyperparameters)}
    data.metadata = {
        "freq": "H",
        "prediction_length": prediction_length,
        "context_length": int(hyperparameters["context_length"]),
        "num_windows": num_windows,
        "num_validation_windows": num_validation_windows,
        "end": _fmt(end),
        "first_window_start": _fmt(first_window),
        "train_end_exclusive": _fmt(first_validation),
        "periods": {
            "train": _period(train_start, int((first_validation - train_start) / pd.Timedelta(hours=1))),
            "validation": _period(first_validation, validation),
            "evaluation": _period(first_window, horizon),
        },
        "validation_windows": [
            {"window": k, "start": _fmt(first_validation + pd.Timedelta(hours=k * prediction_length))}
            for k in range(num_validation_windows)
        ],
        "windows": [
            {"window": k, "start": _fmt(first_window + pd.Timedelta(hours=k * prediction_length))}
            for k in range(num_windows)
        ],
        "profile": profile,
        "cat": ["pollutant", "thing_name"],
        "cat_maps": {"pollutant": pollutant_index, "thing_name": thing_index},
        "cardinality": [len(pollutant_index), len(thing_index)],
        "series": series_meta,
        "skipped": skipped,
    }
    return data


def _write_lines(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, allow_nan=False))
            fh.write("\n")


def write_dataset(data: DeepARDataset, output_dir: Path) -> None:
    """Write the layout described in the module docstring."""
    out = Path(output_dir)
    _write_lines(out / "train" / "train.json", data.train)
    _write_lines(out / "test" / "test.json", data.test)
    _write_lines(out / "validation" / "windows.jsonl", data.validation_windows)
    _write_lines(out / "validation" / "actuals.jsonl", data.validation_actuals)
    _write_lines(out / "evaluation" / "windows.jsonl", data.windows)
    _write_lines(out / "evaluation" / "actuals.jsonl", data.actuals)
    (out / "metadata").mkdir(parents=True, exist_ok=True)
    (out / "metadata" / "metadata.json").write_text(json.dumps(data.metadata, indent=2))
    (out / "metadata" / "hyperparameters.json").write_text(json.dumps(data.hyperparameters, indent=2))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input-dir", default="/opt/ml/processing/input/hourly", help="curated hourly parquet root")
    parser.add_argument("--output-dir", default="/opt/ml/processing/output", help="root of train/ test/ evaluation/ metadata/")
    parser.add_argument("--prediction-length", type=int, default=24)
    parser.add_argument("--context-length", type=int, default=0, help="starting context length; 0 = from the data")
    parser.add_argument("--num-windows", type=int, default=7, help="rolling evaluation windows at the end of the data")
    parser.add_argument("--validation-windows", type=int, default=7,
                        help="rolling validation windows before the evaluation windows (tuning is measured there)")
    parser.add_argument("--likelihood", default="auto", help="DeepAR likelihood; auto = from the data")
    parser.add_argument("--epochs", type=int, default=0,
                        help="starting value of DeepAR's epochs (tuning searches around it); 0 = from the training "
                             "history")
    for name, kind in (("learning-rate", float), ("num-cells", int), ("num-layers", int),
                       ("mini-batch-size", int), ("dropout-rate", float)):
        parser.add_argument(f"--{name}", type=kind, default=BASE_DEFAULTS[name.replace("-", "_")],
                            help="starting value of the DeepAR hyperparameter (tuning searches around it)")
    parser.add_argument("--freq", default="H", help="DeepAR time_freq; only H (hourly) is supported")
    parser.add_argument("--pollutants", default="", help="comma-separated pollutants to keep (default: all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the processing job."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    pollutants = [p.strip() for p in args.pollutants.split(",") if p.strip()] or None
    try:
        log.info("reading curated hourly parquet from %s", args.input_dir)
        df = normalise_hourly(read_hourly(Path(args.input_dir)), pollutants)
        log.info("%d hourly rows, %d things, %d pollutants", len(df), df["thing_name"].nunique(), df["pollutant"].nunique())
        start = {k: getattr(args, k) for k in ("epochs", "learning_rate", "num_cells", "num_layers",
                                                "mini_batch_size", "dropout_rate")}
        data = build_dataset(df, args.prediction_length, args.context_length, args.num_windows, args.freq,
                             args.validation_windows, start, args.likelihood)
        write_dataset(data, Path(args.output_dir))
    except PreprocessError as exc:
        print(f"preprocess: error: {exc}", file=sys.stderr)
        return 2
    meta = data.metadata
    log.info(
        "wrote %d series (%d skipped), %d validation windows from %s, %d evaluation windows from %s, cardinality %s, "
        "starting hyperparameters %s to %s",
        len(data.train), len(meta["skipped"]), len(data.validation_windows), meta["periods"]["validation"]["start"],
        len(data.windows), meta["first_window_start"], meta["cardinality"], data.hyperparameters["start"],
        args.output_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
