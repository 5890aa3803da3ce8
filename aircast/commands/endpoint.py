"""`aircast endpoint ...` subcommands."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `endpoint` command group (filled in by its issue)."""
