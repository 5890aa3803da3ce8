"""`aircast local ...` subcommands."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `local` command group (filled in by its issue)."""
