"""Printing helpers shared by the CLI commands: JSON, CSV and aligned tables."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO


class CommandError(Exception):
    """A command that could not do its work (a service refused, a job failed, a prerequisite is not
    running); the CLI prints its message on one line and exits 1."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(CommandError):
    """The command cannot run as given (an argument, option, setting, path or credential is wrong);
    the CLI prints what was wrong on one line and exits 2, as for argparse's own usage errors."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)


def check_output_file(path: str | os.PathLike[str], option: str, suffix: str | None = None) -> Path:
    """``path`` as a file a command may write (its folders are created later); a UsageError naming
    ``option`` when it is a folder, lies under a file, has the wrong suffix or cannot be written."""
    out = Path(path)
    if not str(path).strip():
        raise UsageError(f"{option}: give a file path")
    if out.is_dir():
        raise UsageError(f"{option} {out} is a folder; give the path of a file to write")
    if suffix and out.suffix.lower() != suffix:
        raise UsageError(f"{option} {out}: give a {suffix} file")
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{option} {out}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK):
                raise UsageError(f"{option} {out}: cannot write in {parent} (permission denied)")
            break
    return out


def parse_assignments(pairs: Iterable[str], option: str, example: str, form: str = "NAME=VALUE") -> dict[str, str]:
    """``["Name=value", ...]`` from a repeated CLI option → dict (the value may contain ``=``);
    a malformed pair is a user error naming the option and an example."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{option} {pair!r} is not {form} (e.g. {example})")
        out[name.strip()] = value
    return out


def _default(obj: Any) -> Any:
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if hasattr(obj, "__fspath__"):
        return str(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return str(obj)


def print_json(obj: Any, out: TextIO | None = None) -> None:
    """Print ``obj`` as indented JSON (datetimes, paths and numpy scalars allowed)."""
    out = out or sys.stdout
    out.write(json.dumps(obj, indent=2, default=_default, sort_keys=False) + "\n")


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                out: TextIO | None = None, empty: str = "(none)") -> None:
    """Print rows as an aligned text table with a header line."""
    out = out or sys.stdout
    if not rows:
        out.write(empty + "\n")
        return
    cols = list(columns or rows[0].keys())
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    out.write("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=False)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip() + "\n")


def print_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], out: TextIO | None = None) -> None:
    writer = csv.writer(out or sys.stdout)
    writer.writerow(columns)
    for r in rows:
        writer.writerow([r.get(c) for c in columns])


def print_kv(mapping: Mapping[str, Any], out: TextIO | None = None) -> None:
    """Print ``key: value`` lines, keys aligned."""
    out = out or sys.stdout
    width = max((len(k) for k in mapping), default=0)
    for k, v in mapping.items():
        out.write(f"{k.ljust(width)}  {_fmt(v)}\n")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=_default)
    return str(v)
