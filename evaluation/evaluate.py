"""SageMaker processing job: score the batch forecast of the evaluation windows → ``evaluation.json``.

Inputs (SageMaker container paths are the defaults):

* ``--forecast-dir``: batch transform output of ``windows.jsonl``: ``windows.jsonl.out`` (or the
  single ``*.out`` file there), one DeepAR prediction per line, same order as the windows, with
  ``mean`` and ``quantiles`` 0.1/0.5/0.9 (``DEEPAR_INFERENCE_CONFIG`` =
  ``{"num_samples": 100, "output_types": ["mean", "quantiles"], "quantiles": ["0.1", "0.5", "0.9"]}``);
* ``--evaluation-dir``: preprocess's ``evaluation/`` (``windows.jsonl``, ``actuals.jsonl``);
* ``--validation-dir``: preprocess's ``validation/`` (the validation windows, before the evaluation
  windows): the baselines' own settings (AutoTheta's season and fit length) are chosen there;
* ``--metadata-dir``: preprocess's ``metadata/`` (``metadata.json``: periods, detected seasons).

Outputs in ``--output-dir``: ``evaluation.json`` (the shape in DESIGN.md; the pipeline's
property file), ``evaluation_details.json`` (per-series metrics) and ``forecast.png``.

The baselines (:mod:`evaluation.baselines`: seasonal naive at each detected season, AutoTheta)
are computed here from each window's own history, so every model is scored on exactly the same
windows and actuals; the gate compares the candidate with the best of them.

Needs: Python >= 3.9, numpy, pandas, statsforecast (AutoTheta; ``--no-fitted-baseline`` skips it)
and matplotlib (the plot; skipped when it is missing).

Usage::

    python evaluate.py --forecast-dir /opt/ml/processing/input/forecast \\
        --evaluation-dir /opt/ml/processing/input/evaluation --metadata-dir /opt/ml/processing/input/metadata \\
        --validation-dir /opt/ml/processing/input/validation --output-dir /opt/ml/processing/evaluation \\
        [--candidate NAME] [--seasonality 24]

This script imports ``metrics.py`` and ``plots.py`` from its own folder: ship the whole
``evaluation/`` folder as the job's code.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

try:
    from evaluation.baselines import choose_autotheta, score_baselines
    from evaluation.metrics import QUANTILES, SEASONALITY, QuantileForecast, forecast_metrics
except ImportError:  # in the processing container this folder is the code dir, not a package
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from baselines import choose_autotheta, score_baselines  # type: ignore[no-redef]
    from metrics import QUANTILES, SEASONALITY, QuantileForecast, forecast_metrics  # type: ignore[no-redef]

log = logging.getLogger("evaluate")

MODEL_KEYS = ("mean_wQuantileLoss", "wQuantileLoss[0.1]", "wQuantileLoss[0.5]", "wQuantileLoss[0.9]", "RMSE", "MASE",
              "coverage[0.1,0.9]")
BASELINE_KEYS = ("mean_wQuantileLoss", "RMSE", "MASE", "coverage[0.1,0.9]")


class EvaluationError(ValueError):
    """Inputs that cannot be scored; the message says what is wrong."""


def _floats(values: Any, where: str) -> np.ndarray:
    try:
        return np.array([math.nan if v is None or v == "NaN" else float(v) for v in values], dtype=float)
    except (TypeError, ValueError):
        raise EvaluationError(f"{where}: expected a list of numbers or \"NaN\"") from None


def read_jsonl(path: Path) -> list[dict]:
    """JSON lines (blank lines skipped); errors name the file and line."""
    if not path.is_file():
        raise EvaluationError(f"{path} does not exist")
    rows = []
    with path.open() as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise EvaluationError(f"{path.name} line {number}: not JSON ({exc.msg})") from None
    return rows


def find_forecast_file(forecast_dir: Path) -> Path:
    """``windows.jsonl.out`` in ``forecast_dir`` (or its only ``*.out`` file)."""
    preferred = forecast_dir / "windows.jsonl.out"
    if preferred.is_file():
        return preferred
    candidates = sorted(forecast_dir.rglob("*.out"))
    if len(candidates) != 1:
        raise EvaluationError(
            f"expected windows.jsonl.out (batch transform output) in {forecast_dir}; found {[c.name for c in candidates]}"
        )
    return candidates[0]


def parse_prediction(obj: Any, line: int, quantiles: tuple[float, ...]) -> QuantileForecast:
    """One batch-transform output line → :class:`QuantileForecast`."""
    where = f"forecast line {line}"
    if not isinstance(obj, dict) or "quantiles" not in obj:
        raise EvaluationError(
            f"{where}: no \"quantiles\"; run the batch transform with DEEPAR_INFERENCE_CONFIG output_types "
            "[\"mean\", \"quantiles\"] and quantiles [\"0.1\", \"0.5\", \"0.9\"]"
        )
    levels = {float(k): _floats(v, f"{where} quantile {k}") for k, v in obj["quantiles"].items()}
    for q in quantiles:
        if not any(abs(q - k) < 1e-9 for k in levels):
            raise EvaluationError(f"{where}: lacks quantile {q:g} (has {sorted(levels)}); add it to DEEPAR_INFERENCE_CONFIG")
    mean = _floats(obj["mean"], f"{where} mean") if "mean" in obj else None
    if mean is None:
        # RMSE needs a point forecast; the median is the closest stand-in when the mean was not requested.
        mean = next(v for k, v in levels.items() if abs(k - 0.5) < 1e-9)
    return QuantileForecast(mean=mean, quantiles=levels)


def _windows(windows: list[dict], actuals: list[dict], where: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    histories = [_floats(w["target"], f"{where} windows line {i + 1}") for i, w in enumerate(windows)]
    truth = [_floats(a["target"], f"{where} actuals line {i + 1}") for i, a in enumerate(actuals)]
    return histories, truth


def evaluate(
    windows: list[dict],
    actuals: list[dict],
    predictions: list[dict],
    metadata: dict,
    seasonality: int = SEASONALITY,
    quantiles: tuple[float, ...] = QUANTILES,
    validation: tuple[list[dict], list[dict]] | None = None,
    candidate: str = "DeepAR",
    fitted_baseline: bool = True,
    n_jobs: int = 1,
) -> tuple[dict, dict]:
    """Score the candidate's forecasts and every baseline on the same evaluation windows.

    ``validation`` = (windows, actuals) of the validation period, where the fitted baseline's
    settings are chosen (without it, AutoTheta keeps season 24 and 336 hours). Returns
    ``(evaluation, details)``: ``evaluation`` in DESIGN.md's shape, ``details`` with per-series
    metrics and the plotted panels' data.
    """
    if not (len(windows) == len(actuals) == len(predictions)):
        raise EvaluationError(
            f"{len(windows)} windows, {len(actuals)} actuals and {len(predictions)} forecasts; they must line up "
            "one to one (batch transform with BatchStrategy=SingleRecord/MultiRecord and AssembleWith=Line)"
        )
    if not windows:
        raise EvaluationError("no evaluation windows to score")
    h = int(metadata["prediction_length"])
    histories, truth = _windows(windows, actuals, "evaluation")
    model_fc = []
    for i, (y, prediction) in enumerate(zip(truth, predictions)):  # noqa: B905 - lengths checked above; 3.9
        fc = parse_prediction(prediction, i + 1, quantiles)
        if len(y) != h or len(fc.mean) != h:
            raise EvaluationError(f"window {i}: {len(y)} actuals and {len(fc.mean)} forecast steps; expected {h}")
        model_fc.append(fc)
    seasons = [int(m) for m in (metadata.get("profile") or {}).get("seasons", [seasonality])]
    if seasonality not in seasons:
        seasons.insert(0, seasonality)
    settings: dict[str, Any] = {}
    autotheta = None
    if fitted_baseline:
        if validation is not None and validation[0]:
            v_hist, v_truth = _windows(validation[0], validation[1], "validation")
            autotheta, tried = choose_autotheta(v_hist, v_truth, [int(a["series"]) for a in validation[1]], h,
                                                seasons, n_jobs)
            settings["autotheta"] = {**autotheta, "chosen_on": "validation", "tried": tried}
        else:
            autotheta = {"season_length": seasonality, "fit_hours": 336}
            settings["autotheta"] = {**autotheta, "chosen_on": "default (no validation windows)"}
    model = forecast_metrics(truth, model_fc, histories, quantiles, seasonality)
    baselines, baseline_fc = score_baselines(histories, truth, h, seasons, autotheta, n_jobs, quantiles, seasonality)

    def leaf(value: float) -> dict:
        return {"value": None if value is None or not math.isfinite(value) else float(value)}

    ranked = sorted((m["mean_wQuantileLoss"], name) for name, m in baselines.items()
                    if math.isfinite(m["mean_wQuantileLoss"]))
    best_wql, best_name = ranked[0] if ranked else (math.nan, "seasonal_naive")
    relative = model["mean_wQuantileLoss"] / best_wql if best_wql else math.nan
    series_ids = sorted({int(a["series"]) for a in actuals})
    evaluation = {
        "forecast_metrics": {k: leaf(model[k]) for k in MODEL_KEYS},
        "baseline_metrics": {name: {k: leaf(m[k]) for k in BASELINE_KEYS} for name, m in baselines.items()},
        "best_baseline": {"name": best_name, "mean_wQuantileLoss": leaf(best_wql)},
        "candidate": {"name": candidate},
        "relative_mean_wQuantileLoss": leaf(relative),
        "evaluation": {
            "series": len(series_ids),
            "windows": len({int(a["window"]) for a in actuals}),
            "prediction_length": h,
            "quantiles": list(quantiles),
        },
        "periods": metadata.get("periods", {}),
        "baseline_settings": settings,
    }
    per_series = []
    by_series: dict[int, list[int]] = {}
    for i, a in enumerate(actuals):
        by_series.setdefault(int(a["series"]), []).append(i)
    info = {int(s["series"]): s for s in metadata.get("series", [])}
    for sid, idx in sorted(by_series.items()):
        row: dict[str, Any] = {"series": sid, **{k: info.get(sid, {}).get(k) for k in ("thing_name", "pollutant")}}
        try:
            m = forecast_metrics([truth[i] for i in idx], [model_fc[i] for i in idx], [histories[i] for i in idx],
                                 quantiles, seasonality)
            row["model"] = {k: leaf(m[k])["value"] for k in MODEL_KEYS}
            for name, fcs in baseline_fc.items():
                b = forecast_metrics([truth[i] for i in idx], [fcs[i] for i in idx], [histories[i] for i in idx],
                                     quantiles, seasonality)
                row[name] = {k: leaf(b[k])["value"] for k in BASELINE_KEYS}
        except ValueError as exc:  # every actual of this series missing
            row["note"] = str(exc)
        per_series.append(row)
    details = {"per_series": per_series, "model": model, **baselines}
    panels = []
    for sid, idx in sorted(by_series.items())[:6]:
        i = idx[-1]
        name = "/".join(str(info.get(sid, {}).get(k, "?")) for k in ("thing_name", "pollutant"))
        panels.append(
            {
                "history_start": windows[i]["start"],
                "history": histories[i].tolist(),
                "forecast_start": actuals[i]["start"],
                "mean": model_fc[i].mean.tolist(),
                "lower": model_fc[i].quantile(quantiles[0]).tolist(),
                "upper": model_fc[i].quantile(quantiles[-1]).tolist(),
                "actuals": truth[i].tolist(),
                "title": f"{name} — last window",
            }
        )
    details["panels"] = panels
    return evaluation, details


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--forecast-dir", default="/opt/ml/processing/input/forecast")
    parser.add_argument("--evaluation-dir", default="/opt/ml/processing/input/evaluation")
    parser.add_argument("--validation-dir", default="/opt/ml/processing/input/validation",
                        help="validation windows (baselines' settings are chosen there); a missing folder = none")
    parser.add_argument("--metadata-dir", default="/opt/ml/processing/input/metadata")
    parser.add_argument("--candidate", default="DeepAR", help="what the forecasts came from (named by the gate)")
    parser.add_argument("--no-fitted-baseline", action="store_true", help="skip AutoTheta (no statsforecast)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes for AutoTheta fits")
    parser.add_argument("--output-dir", default="/opt/ml/processing/evaluation")
    parser.add_argument("--seasonality", type=int, default=SEASONALITY)
    return parser.parse_args(argv)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    """Entry point of the processing job."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    try:
        eval_dir, out_dir = Path(args.evaluation_dir), Path(args.output_dir)
        metadata_path = Path(args.metadata_dir) / "metadata.json"
        if not metadata_path.is_file():
            raise EvaluationError(f"{metadata_path} does not exist (preprocess writes it)")
        metadata = json.loads(metadata_path.read_text())
        forecast_file = find_forecast_file(Path(args.forecast_dir))
        log.info("scoring %s against %s", forecast_file, eval_dir)
        val_dir = Path(args.validation_dir)
        validation = None
        if (val_dir / "windows.jsonl").is_file():
            validation = (read_jsonl(val_dir / "windows.jsonl"), read_jsonl(val_dir / "actuals.jsonl"))
        evaluation, details = evaluate(
            read_jsonl(eval_dir / "windows.jsonl"),
            read_jsonl(eval_dir / "actuals.jsonl"),
            read_jsonl(forecast_file),
            metadata,
            args.seasonality,
            validation=validation,
            candidate=args.candidate,
            fitted_baseline=not args.no_fitted_baseline,
            n_jobs=max(1, args.jobs),
        )
    except EvaluationError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
    panels = details.pop("panels")
    (out_dir / "evaluation_details.json").write_text(json.dumps(_json_safe(details), indent=2))
    if panels:
        try:
            from evaluation.plots import save_forecast_grid
        except ImportError:
            try:
                from plots import save_forecast_grid  # type: ignore[no-redef]
            except ImportError:  # no matplotlib in this image: the report is complete without the plot
                save_forecast_grid = None
        if save_forecast_grid is not None:
            save_forecast_grid(panels, out_dir / "forecast.png")
    fm, best = evaluation["forecast_metrics"], evaluation["best_baseline"]
    log.info(
        "%s mean wQL %s vs best baseline %s %s (relative %s) over %d series x %d windows; wrote %s",
        evaluation["candidate"]["name"], fm["mean_wQuantileLoss"]["value"], best["name"],
        best["mean_wQuantileLoss"]["value"],
        evaluation["relative_mean_wQuantileLoss"]["value"], evaluation["evaluation"]["series"],
        evaluation["evaluation"]["windows"], out_dir / "evaluation.json",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
