"""The ``aircast`` command. Each group of subcommands lives in ``aircast/commands/<group>.py``
and exposes ``register(subparsers)``; a handler is ``func(args, settings) -> int | None``.

A user never sees a traceback for a mistake: every failure is one line on stderr,
``aircast: error: <what was wrong>``, with exit code 2 when the command cannot run as given (an
argument, option, setting, path or credential is wrong: :class:`~aircast.output.UsageError`,
argparse's own errors, botocore's parameter validation, missing AWS credentials) and 1 when it ran
and failed (a service refused, a job failed, something it needs is not running). Anything else is a
bug: one line saying so, the traceback saved under the data dir (``AIRCAST_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from aircast import __version__
from aircast.output import CommandError, UsageError
from aircast.settings import Settings, load_settings, number_in_range

COMMAND_GROUPS = ("local", "device", "lake", "pipeline", "models", "endpoint", "events", "monitor", "console", "aws", "demo")
DEBUG_ENV = "AIRCAST_DEBUG"


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): ``aircast demo: error: ... (see aircast demo --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="aircast", description="IoT air-quality forecasting, on AWS or on this machine.")
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version (0) or a usage error argparse has printed (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    func = getattr(args, "func", None)
    if func is None:
        group = getattr(args, "group_parser", parser)
        choices = ", ".join(_subcommands(group))
        _say(f"{group.prog}: error: choose a command: {choices} (see {group.prog} --help)")
        return 2
    settings: Settings | None = None
    try:
        # a command may fix settings of its own (the demo: its deployment policy), exported with the rest
        overrides = args.settings_overrides(args) if hasattr(args, "settings_overrides") else {}
        settings = load_settings(args.config, data_dir=args.data_dir, backend=args.backend, **overrides)
        check_data_dir(settings)
        with exported_settings(settings):
            rc = func(args, settings)
    except CommandError as exc:
        _say(f"aircast: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _say("aircast: interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns any failure into one line
        known = describe_failure(exc)
        if known is not None:
            message, code = known
            _say(f"aircast: error: {message}")
            return code
        if os.environ.get(DEBUG_ENV):
            raise
        saved = _save_traceback(settings)
        _say(f"aircast: internal error (a bug, not your input): {type(exc).__name__}: {exc} "
             f"(traceback in {saved}; {DEBUG_ENV}=1 shows it)")
        return 1
    return int(rc or 0)


def describe_failure(exc: BaseException) -> tuple[str, int] | None:
    """(one-line message, exit code) for the failures a user can cause or meet; None for a bug."""
    import tomllib

    from botocore import exceptions as boto

    if isinstance(exc, (boto.NoCredentialsError, boto.PartialCredentialsError)):
        return ("no AWS credentials found: run `aws configure`, or set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or use --backend local)", 2)
    if isinstance(exc, boto.NoRegionError):
        return "no AWS region: set AIRCAST_REGION or AWS_DEFAULT_REGION", 2
    if isinstance(exc, boto.ParamValidationError):
        return f"invalid value for AWS: {exc.kwargs.get('report', exc)}", 2
    if isinstance(exc, (boto.EndpointConnectionError, boto.ConnectTimeoutError, boto.ReadTimeoutError)):
        return f"cannot reach {exc.kwargs.get('endpoint_url', 'the service')}: {exc}", 1
    if isinstance(exc, boto.ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', exc)}", 1
    if isinstance(exc, boto.BotoCoreError):
        return str(exc), 1
    if isinstance(exc, tomllib.TOMLDecodeError):
        return f"the config file is not valid TOML: {exc}", 2
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or exc}{where}", 2
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), 1
    if isinstance(exc, ValueError):
        return str(exc), 2
    from infra.local.auth import TokenFileError

    if isinstance(exc, TokenFileError):
        return str(exc), 2
    return None


def check_data_dir(settings: Settings) -> None:
    """Refuse a data dir that cannot hold aircast's state, before any command writes into it."""
    path = settings.data_dir
    if path.exists() and not path.is_dir():
        raise UsageError(f"data dir {path} is a file, not a folder; give --data-dir (or AIRCAST_DATA_DIR) a folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"data dir {path}: {parent} is a file, not a folder")
            break


@contextlib.contextmanager
def exported_settings(settings: Settings) -> Iterator[None]:
    """These settings in ``AIRCAST_*`` for the command's duration: Lambda handlers invoked in-process (the
    deploy Lambda on an approval) read their settings from the environment, as on AWS; then restore it."""
    from aircast.settings import settings_env

    saved = dict(os.environ)
    os.environ.update(settings_env(settings))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _say(line: str) -> None:
    # one line: a message that spans lines (a log tail, a service's report) is joined with " | "
    print(" | ".join(part.strip() for part in str(line).splitlines() if part.strip()), file=sys.stderr)


def _subcommands(group: argparse.ArgumentParser) -> list[str]:
    for action in group._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


def _save_traceback(settings: Settings | None) -> Path:
    folder = settings.run_dir if settings is not None and settings.data_dir.is_dir() else Path(tempfile.gettempdir())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "aircast-error.log"
        path.write_text(traceback.format_exc())
    except OSError:
        path = Path(tempfile.gettempdir()) / "aircast-error.log"
        path.write_text(traceback.format_exc())
    return path


def add_group(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """Create a command group ``aircast NAME ...`` and return its subparsers."""
    group = sub.add_parser(name, help=help, description=help)
    group.set_defaults(group_parser=group)
    return group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")


# ---- argument types: a bad value is refused by argparse (exit 2) before any work starts ----------
def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]."""
    return number_in_range(int, low, high)


def bounded_float(low: float, high: float | None = None, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (or (low, high] with ``low_open``)."""
    return number_in_range(float, low, high, low_open=low_open)


PORT = bounded_int(1, 65535)


if __name__ == "__main__":
    sys.exit(main())
