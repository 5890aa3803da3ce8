"""Benchmarks: each runs its baseline in the same run and prints one JSON line last."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """matplotlib's pyplot on the headless Agg backend: benches write PNGs, never open windows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
