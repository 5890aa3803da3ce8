"""`aircast demo ...` subcommands."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `demo` command group (filled in by its issue)."""
