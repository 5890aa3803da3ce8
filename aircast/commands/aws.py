"""`aircast aws ...` subcommands."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `aws` command group (filled in by its issue)."""
