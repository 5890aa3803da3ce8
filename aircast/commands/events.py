"""`aircast events ...` subcommands."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `events` command group (filled in by its issue)."""
