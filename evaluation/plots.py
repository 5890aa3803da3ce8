"""Forecast plots (matplotlib, Agg backend): history, mean, 10–90% band, actuals."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: jobs and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["plot_forecast", "save_forecast_grid"]


def plot_forecast(
    ax: plt.Axes,
    history_start: str | pd.Timestamp,
    history: Sequence[float],
    forecast_start: str | pd.Timestamp,
    mean: Sequence[float],
    lower: Sequence[float] | None = None,
    upper: Sequence[float] | None = None,
    actuals: Sequence[float] | None = None,
    title: str = "",
    freq: str = "h",
    history_points: int = 24 * 7,
    band_label: str = "10–90%",
) -> plt.Axes:
    """Draw one forecast on ``ax``: the last ``history_points`` of history, the mean, the band, actuals.

    Missing values (NaN or "NaN") show as gaps.
    """
    hist = np.asarray(pd.to_numeric(pd.Series(list(history), dtype=object), errors="coerce"), dtype=float)
    hist_index = pd.date_range(pd.Timestamp(history_start), periods=len(hist), freq=freq)
    if history_points and len(hist) > history_points:
        hist, hist_index = hist[-history_points:], hist_index[-history_points:]
    fc_index = pd.date_range(pd.Timestamp(forecast_start), periods=len(mean), freq=freq)
    ax.plot(hist_index, hist, color="0.35", lw=1, label="history")
    if lower is not None and upper is not None:
        ax.fill_between(fc_index, np.asarray(lower, float), np.asarray(upper, float), color="tab:blue", alpha=0.25,
                        label=band_label)
    ax.plot(fc_index, np.asarray(mean, float), color="tab:blue", lw=1.5, label="forecast mean")
    if actuals is not None:
        act = np.asarray(pd.to_numeric(pd.Series(list(actuals), dtype=object), errors="coerce"), dtype=float)
        ax.plot(fc_index[: len(act)], act, color="black", lw=1, ls="--", marker=".", ms=3, label="actual")
    if title:
        ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=7, rotation=30)
    ax.legend(fontsize=7, loc="upper left")
    return ax


def save_forecast_grid(panels: Sequence[dict], path: Path, columns: int = 2) -> Path:
    """Save several :func:`plot_forecast` panels (dicts of its keyword arguments) to one PNG."""
    rows = max(1, -(-len(panels) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.2 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        plot_forecast(ax, **panel)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
