"""`aircast monitor ...`: is the served model still as good as at evaluation? Drift checks and their plot."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from aircast.cli import add_group
from aircast.output import CommandError, check_output_file, print_json, print_kv, print_table
from aircast.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `monitor` command group."""
    group = add_group(sub, "monitor", "forecast drift: served forecasts vs actuals, drift events, retraining")

    p = group.add_parser("status", help="score served forecasts against actuals and show the drift verdict "
                                        "(sends no event; `monitor plot` draws the timeline)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_status)

    p = group.add_parser("run", help="run the drift check now; on new drift send the drift event (→ retraining)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_run)

    p = group.add_parser("plot", help="plot error over time with the drift point and the retrain marked")
    p.add_argument("--output", help="PNG path (default: the monitor's report folder)")
    p.set_defaults(func=cmd_plot)


def _run(settings: Settings, emit: bool, plot: bool = True) -> dict[str, Any]:
    from aircast.monitoring import run_monitor_for

    try:
        return run_monitor_for(settings, emit=emit, plot=plot)
    except RuntimeError as exc:
        raise CommandError(str(exc)) from exc


def _retraining(settings: Settings) -> list[dict[str, Any]]:
    """Recent executions of the training pipeline (who started them is in the event history)."""
    from aircast.clients import get_client

    try:
        resp = get_client("sagemaker", settings).list_pipeline_executions(
            PipelineName=settings.pipeline_name, SortBy="CreationTime", SortOrder="Descending", MaxResults=5)
    except Exception:  # noqa: BLE001 - no pipeline yet is a normal state for status
        return []
    return [{"execution": s.get("PipelineExecutionArn", "").rsplit("/", 1)[-1],
             "status": s.get("PipelineExecutionStatus"), "started": s.get("StartTime")}
            for s in resp.get("PipelineExecutionSummaries", [])]


def _print_report(report: dict[str, Any], settings: Settings) -> None:
    decision = report["decision"]
    from aircast.monitoring import report_dir

    print_kv({
        "endpoint": report["endpoint_name"],
        "serving model": report["serving_model"],
        "verdict": "DRIFT" if decision["drift"] else "no drift",
        "reason": decision["reason"],
        "declared at": decision["declared_at"],
        "served forecasts": report["served_forecasts"],
        "scored (actuals known)": report["scored_forecasts"],
        "latest actual hour": report["latest_actual_hour"],
        "threshold": f"{report['thresholds']['error_ratio']}× evaluation wQL over {report['thresholds']['window_hours']} h",
        "event sent": (report["event_sent"] or {}).get("event_id"),
    })
    print()
    print_table([{
        "thing": s["thing_name"], "pollutant": s["pollutant"], "forecasts": s["forecasts"],
        "rolling_wql": s["rolling_wql"], "eval_wql": s["baseline_wql"], "ratio": s["ratio"],
        "mase": s["rolling_mase"], "drift": "YES" if s["drifted"] else "no", "since": s["degraded_since"],
    } for s in decision["series"]], empty="(no scored series yet)")
    if decision["input_drift"]:
        print()
        print_table([{k: d[k] for k in ("thing_name", "pollutant", "psi", "ks", "reference_mean", "recent_mean",
                                        "drifted")} for d in decision["input_drift"]])
    for note in report.get("baseline_notes", []):
        print(f"note: {note}")
    runs = _retraining(settings)
    if runs:
        print()
        print_table(runs)
    png = report_dir(settings) / "error_timeline.png"
    if png.is_file():
        print(f"\nplot: {png}")


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    report = _run(settings, emit=False, plot=False)
    if args.json:
        from aircast.monitoring import report_dir

        png = report_dir(settings) / "error_timeline.png"
        report["plot"] = str(png) if png.is_file() else None
        report["retraining"] = _retraining(settings)
        print_json(report)
    else:
        _print_report(report, settings)
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    report = _run(settings, emit=True)
    if args.json:
        print_json(report)
    else:
        _print_report(report, settings)
    return 0


def cmd_plot(args: argparse.Namespace, settings: Settings) -> int:
    from aircast.monitoring import report_dir

    if args.output is not None:
        check_output_file(args.output, "--output", ".png")
    _run(settings, emit=False)
    png = report_dir(settings) / "error_timeline.png"
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, out)
        png = out
    print(png)
    return 0
