"""``aircast demo``: the whole chain on the local default (see ``aircast.demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aircast.cli import bounded_int
from aircast.output import UsageError, check_output_file, print_json
from aircast.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole chain locally: devices → lake → pipeline → endpoint → forecast",
                       description="Run the whole aircast chain on this machine (no AWS, no Docker). "
                                   "A rerun sends the next days of data and deploys the new model blue/green.")
    p.add_argument("--days", type=bounded_int(1), default=120, help="days of history on the first run (default 120)")
    p.add_argument("--fresh-days", type=bounded_int(1), default=7, help="days of new data on each rerun (default 7)")
    p.add_argument("--sim-sensors", type=bounded_int(0), default=3, help="simulated sensors besides the Beijing replay")
    p.add_argument("--epochs", type=bounded_int(1), help="DeepAR epochs (default: the pipeline's Epochs parameter)")
    p.add_argument("--plot", type=Path, help="where to write the forecast plot (default <data-dir>/forecast.png)")
    p.add_argument("--keep-running", action="store_true", help="leave the local stack running at the end")
    p.add_argument("--json", action="store_true", help="print the run's report as JSON at the end")
    p.set_defaults(func=run, settings_overrides=demo_settings)


def demo_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The demo's own settings (``DemoOptions.settings_overrides``), loaded and exported by the CLI for the
    whole command: the deploy Lambda the approval invokes in this process reads them from the environment."""
    from aircast.demo import DemoOptions

    return DemoOptions().settings_overrides()


def run(args: argparse.Namespace, settings: Settings) -> int:
    from aircast.demo import Demo, DemoOptions

    if settings.backend != "local":
        raise UsageError("the demo runs on the local stand-ins; run it without --backend aws")
    if args.plot is not None:
        check_output_file(args.plot, "--plot", ".png")
    try:
        options = DemoOptions(days=args.days, fresh_days=args.fresh_days, sim_sensors=args.sim_sensors,
                              epochs=args.epochs, plot_path=args.plot, stop_stack=not args.keep_running)
    except ValueError as exc:  # checked before anything starts, not minutes later in the pipeline
        raise UsageError(str(exc)) from None
    report = Demo(settings, options).run()
    if args.json:
        print_json(report.as_dict())
    return 0
