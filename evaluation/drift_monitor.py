"""The drift monitor job: score the served forecasts, decide drift, emit the drift event.

Runs as a scheduled SageMaker processing job on AWS (inputs downloaded to the container paths
below, the event sent with ``boto3.client("events")``) and locally from ``aircast monitor run``
and the scheduled ``aircast-drift-check`` rule (paths under the data dir, the local bus).
All the metrics are in :mod:`evaluation.drift`; this module is the I/O around them.

Outputs (``--output``): ``drift_report.json`` (the decision, per-series errors, input drift,
the event sent), ``scores.csv`` (one row per scored forecast), ``error_timeline.csv`` and
``error_timeline.png`` (error over time, threshold, drift point and retrain marked).
``--state`` remembers the drift events already sent so one drift is announced once per model
(again only after ``--cooldown-hours`` of data time).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from evaluation.drift import (
    HOUR,
    Baseline,
    baseline_from_evaluation,
    decide,
    error_timeline,
    hourly_errors,
    hourly_matrix,
    identify_series,
    input_drift,
    parse_capture_records,
    score_forecasts,
)

DRIFT_SOURCE = "aircast.monitoring"
DRIFT_DETAIL_TYPE = "Forecast Drift Detected"


@dataclass
class MonitorConfig:
    """Everything one monitor run needs; paths are local folders/files."""

    datacapture: Path
    hourly: Path
    output: Path
    baselines: dict[str, Baseline]
    model_package_group: str
    endpoint_name: str
    error_ratio: float = 1.5
    window_hours: int = 24
    min_degraded_fraction: float = 0.8
    cooldown_hours: float = 168.0
    psi_threshold: float = 0.25
    reference_hours: int = 24 * 14
    state: Path | None = None
    serving_model: str | None = None
    emit: bool = True
    plot: bool = True
    extra_detail: dict[str, Any] = field(default_factory=dict)
    #: endpoint config → model package ARN: which model answered the records each config captured
    packages: dict[str, str] = field(default_factory=dict)


def log(message: str) -> None:
    """Progress on stderr (one line per stage)."""
    print(f"[drift-monitor] {message}", file=sys.stderr, flush=True)


def read_capture(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every Data Capture JSON line under ``folder`` (recursively) with its file's key relative to
    ``folder`` (which tells the endpoint config that wrote it); unreadable lines are skipped with a note."""
    records = []
    for path in sorted(folder.rglob("*.jsonl")) if folder.exists() else []:
        key = path.relative_to(folder).as_posix()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append((key, json.loads(line)))
            except json.JSONDecodeError as exc:
                log(f"skipping {path}:{n}: not JSON ({exc.msg})")
    return records


def read_hourly(folder: Path) -> pd.DataFrame:
    """The curated hourly parquet files under ``folder`` as one dataframe."""
    files = sorted(folder.rglob("*.parquet")) if folder.exists() else []
    if not files:
        return pd.DataFrame(columns=["thing_name", "pollutant", "hour", "mean", "count"])
    return pd.concat([pd.read_parquet(f, columns=["thing_name", "pollutant", "hour", "mean"]) for f in files],
                     ignore_index=True)


def read_state(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {"emitted": []}
    return json.loads(path.read_text())


def serving_model_of(forecasts: Sequence[Any]) -> str | None:
    """The model package that answered the most recent request."""
    return max(forecasts, key=lambda f: f.inference_time).model_package_arn if forecasts else None


def model_switches(forecasts: Sequence[Any]) -> list[dict[str, Any]]:
    """When each model started serving: first inference time and first forecast hour per model."""
    firsts: dict[str, Any] = {}
    for f in sorted(forecasts, key=lambda f: f.inference_time):
        if f.model_package_arn not in firsts:
            firsts[f.model_package_arn] = f
    return [{"model_package_arn": arn, "first_served_at": f.inference_time.isoformat(),
             "first_forecast_hour": f.forecast_start.isoformat()} for arn, f in firsts.items()]


def already_announced(state: Mapping[str, Any], model: str, declared_at: str, cooldown_hours: float) -> bool:
    """True when a drift event for ``model`` went out less than ``cooldown_hours`` (data time) earlier."""
    for sent in state.get("emitted", []):
        if sent.get("model_package_arn") != model:
            continue
        gap = (pd.Timestamp(declared_at) - pd.Timestamp(sent["declared_at"])) / HOUR
        if gap < cooldown_hours:
            return True
    return False


def drift_event(config: MonitorConfig, decision: Any) -> dict[str, Any]:
    """The PutEvents entry announcing drift (the rule ``aircast-drift-retrain`` matches it)."""
    arn = decision.model_package_arn or ""
    version = arn.rsplit("/", 1)[-1] if "model-package/" in arn else None
    detail = {
        "ModelPackageGroupName": config.model_package_group,
        "ModelPackageArn": arn,
        "ModelPackageVersion": int(version) if version and version.isdigit() else None,
        "EndpointName": config.endpoint_name,
        "DeclaredAt": decision.declared_at,
        "DetectedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ErrorRatioThreshold": config.error_ratio,
        "WindowHours": config.window_hours,
        "Reason": decision.reason,
        "DriftedSeries": [{"thing_name": s.thing_name, "pollutant": s.pollutant, "ratio": round(s.ratio, 3),
                           "rolling_wql": round(s.rolling_wql, 4), "baseline_wql": round(s.baseline_wql, 4),
                           "degraded_since": s.degraded_since}
                          for s in decision.series if s.drifted],
        "InputDrift": [d for d in decision.input_drift if d["drifted"]],
        **config.extra_detail,
    }
    return {"Source": DRIFT_SOURCE, "DetailType": DRIFT_DETAIL_TYPE, "Detail": json.dumps(detail),
            "Resources": [arn] if arn else []}


def run_monitor(config: MonitorConfig, events_client: Any | None = None) -> dict[str, Any]:
    """Score, decide, write the outputs and (when drift is new and ``config.emit``) put the drift event.

    ``events_client`` is any boto3-shaped EventBridge client; without one nothing is emitted.
    Returns the report written to ``drift_report.json``.
    """
    log(f"reading data capture from {config.datacapture}")
    forecasts, problems = parse_capture_records(read_capture(config.datacapture), config.packages)
    log(f"{len(forecasts)} served forecasts ({len(problems)} unusable records); reading hourly lake {config.hourly}")
    series = hourly_matrix(read_hourly(config.hourly))
    names = identify_series(forecasts, series)
    unmatched = sum(n is None for n in names)
    scores = score_forecasts(forecasts, names, series)
    log(f"{len(scores)} forecasts scored against actuals ({unmatched} not matched to a lake series)")
    serving = config.serving_model or serving_model_of(forecasts)
    hourly = hourly_errors(forecasts, names, series)
    decision = decide(hourly, scores, config.baselines, serving, config.error_ratio, config.window_hours,
                      config.min_degraded_fraction)
    mine = [f for f in forecasts if f.model_package_arn == serving]
    if mine and series:
        reference_end = min(f.forecast_start for f in mine)
        recent_end = max(s.index.max() for s in series.values() if len(s))
        # at least three days of recent readings: one day is too few points for a distribution
        decision.input_drift = input_drift(series, reference_end, recent_end, config.reference_hours,
                                           max(config.window_hours, 72), config.psi_threshold)
    log(f"decision: {'DRIFT' if decision.drift else 'no drift'} — {decision.reason}")

    state = read_state(config.state)
    event: dict[str, Any] | None = None
    sent: dict[str, Any] | None = None
    if decision.drift and decision.model_package_arn and decision.declared_at:
        if already_announced(state, decision.model_package_arn, decision.declared_at, config.cooldown_hours):
            log("drift already announced for this model within the cooldown; not emitting again")
        elif config.emit and events_client is not None:
            event = drift_event(config, decision)
            response = events_client.put_events(Entries=[event])
            entry = response["Entries"][0]
            if response.get("FailedEntryCount"):
                raise RuntimeError(f"the drift event was rejected: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
            sent = {"model_package_arn": decision.model_package_arn, "declared_at": decision.declared_at,
                    "event_id": entry.get("EventId"), "emitted_at": datetime.now(UTC).isoformat()}
            state.setdefault("emitted", []).append(sent)
            log(f"drift event {sent['event_id']} sent ({DRIFT_SOURCE} / {DRIFT_DETAIL_TYPE})")

    timeline = error_timeline(scores)
    switches = model_switches(forecasts)
    report = {
        "generated_at": datetime.now(UTC).isoformat(),
        "endpoint_name": config.endpoint_name,
        "model_package_group": config.model_package_group,
        "serving_model": serving,
        "thresholds": {"error_ratio": config.error_ratio, "window_hours": config.window_hours,
                       "min_degraded_fraction": config.min_degraded_fraction, "psi": config.psi_threshold},
        "baselines": {arn: {"mean_wql": b.mean_wql, "mase": b.mase} for arn, b in config.baselines.items()},
        "served_forecasts": len(forecasts),
        "scored_forecasts": int(len(scores)),
        "unmatched_forecasts": unmatched,
        "unusable_records": problems[:20],
        "latest_actual_hour": max((s.index.max() for s in series.values() if len(s)), default=None),
        "decision": decision.to_dict(),
        "event_sent": sent,
        "drift_events": state.get("emitted", []),
        "model_switches": switches,
    }
    config.output.mkdir(parents=True, exist_ok=True)
    (config.output / "drift_report.json").write_text(json.dumps(report, indent=2, default=str))
    scores.to_csv(config.output / "scores.csv", index=False)
    timeline.to_csv(config.output / "error_timeline.csv", index=False)
    if config.plot:
        plot_error_timeline(timeline, report, config.output / "error_timeline.png")
    if config.state is not None:
        config.state.parent.mkdir(parents=True, exist_ok=True)
        config.state.write_text(json.dumps(state, indent=2))
    log(f"report written to {config.output / 'drift_report.json'}")
    return report


def plot_error_timeline(timeline: pd.DataFrame, report: Mapping[str, Any], path: Path) -> Path:
    """Error over time per model with each model's drift threshold, the drift point(s) and the retrain(s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    ratio = report["thresholds"]["error_ratio"]
    for arn, grp in timeline.groupby("model_package_arn", sort=False):
        label = _short(str(arn))
        line = ax.plot(pd.to_datetime(grp["forecast_start"]), grp["wql"], marker=".", lw=1, label=f"wQL {label}")[0]
        base = report["baselines"].get(arn)
        if base:
            ax.hlines(base["mean_wql"] * ratio, pd.to_datetime(grp["forecast_start"]).min(),
                      pd.to_datetime(grp["forecast_start"]).max(), colors=line.get_color(), linestyles="--",
                      label=f"threshold {ratio}× eval wQL ({label})")
    for sent in report.get("drift_events", []):
        ax.axvline(pd.Timestamp(sent["declared_at"]), color="red", lw=1.5)
        ax.annotate(f"drift declared ({_short(sent['model_package_arn'])})", (pd.Timestamp(sent["declared_at"]), 0.02),
                    xycoords=("data", "axes fraction"), color="red", rotation=90, va="bottom", ha="right", fontsize=8)
    for switch in report.get("model_switches", [])[1:]:
        ax.axvline(pd.Timestamp(switch["first_forecast_hour"]), color="green", lw=1.5)
        ax.annotate(f"retrained model serves ({_short(switch['model_package_arn'])})",
                    (pd.Timestamp(switch["first_forecast_hour"]), 0.02), xycoords=("data", "axes fraction"),
                    color="green", rotation=90, va="bottom", ha="right", fontsize=8)
    ax.set_xlabel("forecast start / data hour (UTC)")
    ax.set_ylabel("weighted quantile loss")
    ax.set_title(f"{report['endpoint_name']}: served forecast error vs evaluation")
    if not timeline.empty:
        ax.legend(fontsize=7, loc="upper left", framealpha=0.9)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _short(arn: str) -> str:
    return "v" + arn.rsplit("/", 1)[-1] if "model-package/" in arn else arn


def parse_baselines(values: Sequence[str], serving: str | None) -> dict[str, Baseline]:
    """``--evaluation`` values: ``ARN=PATH`` pairs, or one bare PATH for ``--model-package-arn``."""
    out: dict[str, Baseline] = {}
    for value in values:
        arn, sep, path_text = value.rpartition("=") if "=" in value else ("", "", value)
        arn = arn if sep else (serving or "")
        if not arn:
            raise ValueError(f"--evaluation {value!r}: give ARN=PATH, or a bare PATH together with --model-package-arn")
        path = Path(path_text)
        if path.is_dir():
            path = path / "evaluation.json"
        if not path.is_file():
            raise ValueError(f"--evaluation {value!r}: {path} does not exist")
        out[arn] = baseline_from_evaluation(json.loads(path.read_text()))
    return out


def parse_packages(values: Sequence[str]) -> dict[str, str]:
    """``--endpoint-config`` values ``CONFIG=ARN`` → ``{config: arn}``."""
    out = {}
    for value in values:
        config, sep, arn = value.partition("=")
        if not sep or not config or not arn:
            raise ValueError(f"--endpoint-config {value!r}: give ENDPOINT_CONFIG=MODEL_PACKAGE_ARN")
        out[config] = arn
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="aircast drift monitor: served forecast error vs actuals")
    p.add_argument("--datacapture", default="/opt/ml/processing/input/datacapture")
    p.add_argument("--hourly", default="/opt/ml/processing/input/hourly")
    p.add_argument("--evaluation", action="append", default=[],
                   help="evaluation.json of a model package: ARN=PATH (repeatable) or PATH with --model-package-arn "
                        "(default /opt/ml/processing/input/evaluation)")
    p.add_argument("--model-package-arn", help="the model to judge (default: the one that served last)")
    p.add_argument("--endpoint-config", action="append", default=[], metavar="CONFIG=ARN",
                   help="the model package an endpoint config serves (repeatable): Data Capture records name "
                        "no model, the config that captured them does")
    p.add_argument("--output", default="/opt/ml/processing/output/drift")
    p.add_argument("--state", default="/opt/ml/processing/input/state/state.json")
    p.add_argument("--model-package-group", default="aircast-deepar")
    p.add_argument("--endpoint-name", default="aircast-forecast")
    p.add_argument("--error-ratio", type=float, default=1.5)
    p.add_argument("--window-hours", type=int, default=24)
    p.add_argument("--min-degraded-fraction", type=float, default=0.8,
                   help="share of the window's hours that must be beyond the threshold")
    p.add_argument("--cooldown-hours", type=float, default=168.0)
    p.add_argument("--psi-threshold", type=float, default=0.25)
    p.add_argument("--no-emit", action="store_true", help="decide and report, but send no event")
    p.add_argument("--no-plot", action="store_true", help="skip the error timeline PNG")
    return p


def main(argv: Sequence[str] | None = None, events_client: Any | None = None) -> int:
    """Container entry point. ``events_client``: a boto3-shaped EventBridge client; on AWS (none given)
    ``boto3.client("events")`` is created here, at the edge, only when an event must be sent."""
    args = build_parser().parse_args(argv)
    evaluations = args.evaluation or ["/opt/ml/processing/input/evaluation"]
    config = MonitorConfig(
        datacapture=Path(args.datacapture), hourly=Path(args.hourly), output=Path(args.output),
        baselines=parse_baselines(evaluations, args.model_package_arn),
        model_package_group=args.model_package_group, endpoint_name=args.endpoint_name,
        error_ratio=args.error_ratio, window_hours=args.window_hours, min_degraded_fraction=args.min_degraded_fraction,
        cooldown_hours=args.cooldown_hours, psi_threshold=args.psi_threshold,
        state=Path(args.state) if args.state else None, serving_model=args.model_package_arn,
        emit=not args.no_emit, plot=not args.no_plot, packages=parse_packages(args.endpoint_config))
    if events_client is None and config.emit:
        events_client = _LazyBoto3Events()
    report = run_monitor(config, events_client)
    print(json.dumps({"drift": report["decision"]["drift"], "event_sent": report["event_sent"],
                      "scored_forecasts": report["scored_forecasts"]}, default=str))
    return 0


class _LazyBoto3Events:
    """Creates ``boto3.client("events")`` only when an event is actually sent (the processing container on AWS)."""

    def put_events(self, **kwargs: Any) -> Any:
        import boto3

        return boto3.client("events").put_events(**kwargs)


if __name__ == "__main__":
    sys.exit(main())
