"""The ``aircast`` command. Each group of subcommands lives in ``aircast/commands/<group>.py``
and exposes ``register(subparsers)``; a handler is ``func(args, settings) -> int | None``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Sequence

from aircast import __version__
from aircast.output import CommandError
from aircast.settings import load_settings

COMMAND_GROUPS = ("local", "device", "lake", "pipeline", "models", "endpoint", "events", "monitor", "console", "aws", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aircast", description="IoT air-quality forecasting, on AWS or on this machine.")
    parser.add_argument("--version", action="version", version=f"aircast {__version__}")
    parser.add_argument("--data-dir", help="local state folder (env AIRCAST_DATA_DIR, default ./.aircast)")
    parser.add_argument("--backend", choices=("local", "aws"), help="which services to use (env AIRCAST_BACKEND, default local)")
    parser.add_argument("--config", help="TOML config file (env AIRCAST_CONFIG, default ./aircast.toml if present)")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        importlib.import_module(f"aircast.commands.{group}").register(sub)
    return parser


def quiet_libraries() -> None:
    """Keep the SageMaker SDK's and Spark's chatter out of the CLI's output (our own progress stays)."""
    for name in ("sagemaker", "sagemaker.config", "botocore", "py4j", "lightning", "lightning.pytorch",
                 "pytorch_lightning", "gluonts"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"sagemaker\..*")
    warnings.filterwarnings("ignore", category=FutureWarning)


def main(argv: Sequence[str] | None = None) -> int:
    quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # a group without a subcommand: show that group's help
        sub_parser = getattr(args, "group_parser", parser)
        sub_parser.print_help()
        return 2
    try:
        settings = load_settings(args.config, data_dir=args.data_dir, backend=args.backend)
        rc = func(args, settings)
    except CommandError as exc:
        print(f"aircast: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (ValueError, FileNotFoundError) as exc:
        print(f"aircast: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aircast: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


def add_group(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """Create a command group ``aircast NAME ...`` and return its subparsers."""
    group = sub.add_parser(name, help=help, description=help)
    group.set_defaults(group_parser=group)
    return group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")


if __name__ == "__main__":
    sys.exit(main())
