"""`aircast device ...` subcommands."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `device` command group (filled in by its issue)."""
