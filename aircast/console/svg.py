"""Inline SVG for the console's pictures: the pipeline's step graph and time-series charts.

Server-side and dependency-free, so a page needs nothing from the internet and renders in
milliseconds. Every text that reaches the SVG goes through :func:`html.escape`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape

STATUS_COLOURS = {"Succeeded": "#2e7d32", "Failed": "#c62828", "Executing": "#1565c0", "Stopped": "#757575",
                  "Starting": "#1565c0", "Stopping": "#757575"}
NOT_RUN = "#bdbdbd"
_CLIP_IDS = itertools.count(1)  # unique clip-path ids within a page
PALETTE = ("#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#558b2f", "#4e342e", "#283593")


def step_graph_svg(nodes: Sequence[Mapping[str, str]], edges: Sequence[tuple[str, str, str]],
                   ranks: Mapping[str, int], status: Mapping[str, str],
                   link: Callable[[str], str] = lambda name: f"#step-{name}") -> str:
    """Steps as boxes in columns by rank, coloured by status (grey dashed: not run), edges as arrows."""
    width, height, gap_x, gap_y, pad = 120, 46, 28, 22, 12
    columns: dict[int, list[str]] = {}
    for node in nodes:
        columns.setdefault(ranks.get(node["name"], 0), []).append(node["name"])
    pos: dict[str, tuple[float, float]] = {}
    tallest = max((len(c) for c in columns.values()), default=1)
    for rank, names in columns.items():
        offset = (tallest - len(names)) * (height + gap_y) / 2
        for i, name in enumerate(names):
            pos[name] = (pad + rank * (width + gap_x), pad + offset + i * (height + gap_y))
    total_w = pad * 2 + (max(columns, default=0) + 1) * (width + gap_x) - gap_x
    total_h = pad * 2 + tallest * (height + gap_y) - gap_y
    out = [f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {total_w:.0f} {total_h:.0f}" '
           f'width="{total_w:.0f}" height="{total_h:.0f}" role="img" aria-label="pipeline step graph">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#616161"/></marker></defs>']
    for src, dst, label in edges:
        if src not in pos or dst not in pos:
            continue
        (x1, y1), (x2, y2) = pos[src], pos[dst]
        x1, y1, x2, y2 = x1 + width, y1 + height / 2, x2, y2 + height / 2
        mid = (x1 + x2) / 2
        out.append(f'<path d="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2 - 2:.0f},{y2:.0f}" '
                   'fill="none" stroke="#616161" stroke-width="1.4" marker-end="url(#arrow)"/>')
        if label:
            out.append(f'<text x="{x1 + 4:.0f}" y="{y1 + (-5 if y2 <= y1 else 12):.0f}" class="edge-label">'
                       f'{escape(label)}</text>')
    for node in nodes:
        name = node["name"]
        x, y = pos[name]
        state = status.get(name)
        colour = STATUS_COLOURS.get(state or "", NOT_RUN)
        dash = ' stroke-dasharray="4 3"' if state is None else ""
        fill = colour if state else "#fafafa"
        text_colour = "#fff" if state else "#616161"
        href = escape(link(name), quote=True)
        out.append(f'<a href="{href}"><g class="node" data-step="{escape(name, quote=True)}" '
                   f'data-status="{escape(state or "not run", quote=True)}">'
                   f'<rect x="{x:.0f}" y="{y:.0f}" width="{width}" height="{height}" rx="6" fill="{fill}" '
                   f'stroke="{colour}" stroke-width="1.5"{dash}/>'
                   f'<text x="{x + width / 2:.0f}" y="{y + 19:.0f}" text-anchor="middle" fill="{text_colour}" '
                   f'class="node-name">{escape(name)}</text>'
                   f'<text x="{x + width / 2:.0f}" y="{y + 35:.0f}" text-anchor="middle" fill="{text_colour}" '
                   f'class="node-status">{escape(state or "not run")}</text>'
                   f'<title>{escape(name)} ({escape(node.get("type", ""))}): {escape(state or "not run")}</title>'
                   '</g></a>')
    out.append("</svg>")
    return "".join(out)


@dataclass
class Line:
    label: str
    points: Sequence[tuple[dt.datetime | float, float]]
    colour: str = ""
    dashed: bool = False
    markers: bool = False


@dataclass
class Chart:
    """A time-series chart: lines, an optional band, vertical and horizontal marks."""

    lines: list[Line] = field(default_factory=list)
    #: (x, low, high) points of a shaded band
    band: Sequence[tuple[dt.datetime | float, float, float]] = ()
    band_label: str = ""
    #: vertical marks: (x, label, colour)
    vmarks: list[tuple[dt.datetime | float, str, str]] = field(default_factory=list)
    #: horizontal marks: (y, label, colour)
    hmarks: list[tuple[float, str, str]] = field(default_factory=list)
    y_label: str = ""
    title: str = ""
    width: int = 760
    height: int = 240
    bars: bool = False  #: draw lines as bars (counts per interval)
    #: the x axis' span (default: the data's)
    x_range: tuple[dt.datetime | float, dt.datetime | float] | None = None


def _x(value: dt.datetime | float) -> float:
    return value.timestamp() if isinstance(value, dt.datetime) else float(value)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _fmt_y(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _fmt_time(ts: float, span: float) -> str:
    when = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    if span <= 2 * 86400:
        return when.strftime("%H:%M")
    if span <= 8 * 86400:
        return when.strftime("%m-%d %Hh")
    if span <= 120 * 86400:
        return when.strftime("%m-%d")
    return when.strftime("%Y-%m")


def chart_svg(chart: Chart) -> str:
    """The chart as one ``<svg>`` element (an empty chart says "no data")."""
    left, right, top, bottom = 56, 28, 22 if chart.title else 10, 38
    w, h = chart.width, chart.height
    pw, ph = w - left - right, h - top - bottom
    xs = [_x(x) for line in chart.lines for x, _ in line.points] + [_x(x) for x, _, _ in chart.band]
    ys = [y for line in chart.lines for _, y in line.points if math.isfinite(y)]
    ys += [v for _, lo, hi in chart.band for v in (lo, hi) if math.isfinite(v)]
    ys += [y for y, _, _ in chart.hmarks if math.isfinite(y)]
    xs += [_x(x) for x, _, _ in chart.vmarks]
    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
           f'role="img" aria-label="{escape(chart.title or chart.y_label, quote=True)}">']
    if chart.title:
        out.append(f'<text x="{left}" y="14" class="chart-title">{escape(chart.title)}</text>')
    if chart.x_range and not ys and chart.bars:
        ys = [0.0, 1.0]  # an empty window still shows its axes
        xs = [_x(chart.x_range[0])]
    if not xs or not ys:
        out.append(f'<text x="{w / 2:.0f}" y="{h / 2:.0f}" text-anchor="middle" class="muted">no data</text></svg>')
        return "".join(out)
    x0, x1 = (_x(chart.x_range[0]), _x(chart.x_range[1])) if chart.x_range else (min(xs), max(xs))
    if x1 <= x0:
        x0, x1 = x0 - 1800, x1 + 1800
    y_ticks = nice_ticks(min(0.0, min(ys)) if chart.bars else min(ys), max(ys))
    y0, y1 = y_ticks[0], y_ticks[-1]
    if y1 <= y0:
        y1 = y0 + 1

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    for tick in y_ticks:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(tick):.1f}" y2="{py(tick):.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{py(tick) + 4:.1f}" text-anchor="end" class="tick">{_fmt_y(tick)}</text>')
    is_time = any(isinstance(x, dt.datetime) for line in chart.lines for x, _ in line.points) or \
        any(isinstance(x, dt.datetime) for x, _, _ in chart.band) or \
        (chart.x_range is not None and isinstance(chart.x_range[0], dt.datetime))
    for i in range(6):
        tx = x0 + (x1 - x0) * i / 5
        label = _fmt_time(tx, x1 - x0) if is_time else _fmt_y(tx)
        out.append(f'<text x="{px(tx):.1f}" y="{top + ph + 16}" text-anchor="middle" class="tick">{label}</text>')
    if chart.y_label:
        out.append(f'<text x="12" y="{top + ph / 2:.0f}" transform="rotate(-90 12 {top + ph / 2:.0f})" '
                   f'text-anchor="middle" class="axis-label">{escape(chart.y_label)}</text>')
    clip = f"clip{next(_CLIP_IDS)}"
    out.append(f'<clipPath id="{clip}"><rect x="{left}" y="{top}" width="{pw}" height="{ph}"/></clipPath>'
               f'<g clip-path="url(#{clip})">')
    if chart.band:
        upper = " ".join(f"{px(_x(x)):.1f},{py(hi):.1f}" for x, _, hi in chart.band)
        lower = " ".join(f"{px(_x(x)):.1f},{py(lo):.1f}" for x, lo, _ in reversed(chart.band))
        out.append(f'<polygon points="{upper} {lower}" class="band"/>')
    legend = []
    for i, line in enumerate(chart.lines):
        colour = line.colour or PALETTE[i % len(PALETTE)]
        pts = [(px(_x(x)), py(y)) for x, y in line.points if math.isfinite(y)]
        if chart.bars:
            n = max(1, len(chart.lines))
            slot = max(2.0, pw / max(1, (x1 - x0) / 60) / (n + 1))
            for bx, by in pts:
                out.append(f'<rect x="{bx + i * slot - slot * n / 2:.1f}" y="{by:.1f}" width="{slot:.1f}" '
                           f'height="{max(0.0, py(0) - by):.1f}" fill="{colour}"/>')
        elif pts:
            dash = ' stroke-dasharray="5 3"' if line.dashed else ""
            path = " ".join(f"{'M' if j == 0 else 'L'}{x:.1f},{y:.1f}" for j, (x, y) in enumerate(pts))
            out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}/>')
            if line.markers or len(pts) == 1:
                out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{colour}"/>' for x, y in pts]
        legend.append((line.label, colour))
    out.append("</g>")
    for y, label, colour in chart.hmarks:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="{colour}" '
                   f'stroke-dasharray="6 4" stroke-width="1.2"/>')
        if label:
            legend.append((label, colour))
    for x, label, colour in chart.vmarks:
        out.append(f'<line x1="{px(_x(x)):.1f}" x2="{px(_x(x)):.1f}" y1="{top}" y2="{top + ph}" stroke="{colour}" '
                   f'stroke-width="1.6"/><text x="{px(_x(x)) + 3:.1f}" y="{top + 12}" class="mark" '
                   f'fill="{colour}">{escape(label)}</text>')
    if chart.band_label:
        legend.append((chart.band_label, "#90caf9"))
    lx = left
    for label, colour in legend:
        out.append(f'<rect x="{lx}" y="{h - 12}" width="10" height="4" fill="{colour}"/>'
                   f'<text x="{lx + 14}" y="{h - 8}" class="legend">{escape(label)}</text>')
        lx += 24 + 6.2 * len(label)
    out.append("</svg>")
    return "".join(out)
