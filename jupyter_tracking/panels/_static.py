"""Static pictures of a run's curves: an SVG drawn here (no kaleido, no browser) and a plain-text summary.

Used for the image the saved notebook keeps (nbconvert, GitHub, reopened notebooks), for the image-only
fallback front ends, and for terminals. Every text that comes from the run (metric names, run name) is
escaped. The output is deterministic for the same data: no random ids, no clock readings.

The SVG has no background and draws its text and frames in ``currentColor``: the root's colour is
JupyterLab's ``--jp-ui-font-color1`` where the SVG sits in the page, and a grey that reads on light and dark
pages (4.4:1 on white and on JupyterLab's dark background) where it is an image (JupyterLab draws
``image/svg+xml`` as an ``<img>``, which sees no page styles). ``picture_bundle`` also wraps it in an
``<img>`` in ``text/html``, which front ends show whether or not the notebook is trusted (an untrusted
``image/svg+xml`` is not shown). The image scales with its cell (viewBox, width 100 %).
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field

import numpy as np

from .numbers import format_number

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)
SPARK = "▁▂▃▄▅▆▇█"
LEGEND_CHAR_WIDTH = 6.2  # px per character of 11 px text: sizes the legend box
TEXT_FALLBACK = "#787878"  # contrast 4.4:1 on white and on #111 (JupyterLab's dark theme)
IMAGE_MAX_WIDTH = 1200  # px: the picture fills its cell up to this width


@dataclass
class Curve:
    """One metric as drawn: its key, colour, x and y arrays (already decimated) and its latest value."""

    key: str
    color: str
    x: np.ndarray
    y: np.ndarray
    last: float | None = None
    count: int = 0
    min_value: float | None = None
    max_value: float | None = None


@dataclass
class Subplot:
    title: str
    x_label: str
    curves: list[Curve] = field(default_factory=list)
    rising: bool = False  # values that climb (accuracy): the legend goes bottom right, as in the live widget


def color_for(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (about ``count`` of them)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * power
        if step >= raw:
            break
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9 and len(ticks) < 50:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value += step
    return ticks


def _range(arrays: list[np.ndarray], pad: float) -> tuple[float, float]:
    finite = [a[np.isfinite(a)] for a in arrays]
    finite = [a for a in finite if a.size]
    if not finite:
        return 0.0, 1.0
    lo = float(min(a.min() for a in finite))
    hi = float(max(a.max() for a in finite))
    if hi == lo:
        spread = abs(lo) * 0.1 or 1.0
        return lo - spread, hi + spread
    margin = (hi - lo) * pad
    return lo - margin, hi + margin


def render_svg(subplots: list[Subplot], heading: str | None = None, width: int = 880) -> str:
    """An SVG document with one framed plot per subplot (two per row), legends with the latest values."""
    columns = 1 if len(subplots) <= 1 else 2
    gap = 16
    cell_w = (width - gap * (columns + 1)) / columns
    plot_h = 200 if columns == 2 else 240
    margin_l, margin_r, margin_t, margin_b = 58, 12, 24, 36
    legend_row_h = 16
    top = 30 if heading else 8

    # The legends sit inside the plots, as in the live widget: every row has the same height.
    rows = [subplots[i: i + columns] for i in range(0, len(subplots), columns)]
    row_heights = [margin_t + plot_h + margin_b + 6 for _ in rows]
    height = int(top + sum(row_heights) + gap * len(rows))

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="11" '
        f'color="{TEXT_FALLBACK}" style="color:var(--jp-ui-font-color1,{TEXT_FALLBACK})" fill="currentColor">',
    ]
    if heading:
        out.append(f'<text x="{gap}" y="20" font-size="13">{html.escape(heading)}</text>')

    y0 = top
    for row, row_h in zip(rows, row_heights):
        for column, subplot in enumerate(row):
            x0 = gap + column * (cell_w + gap)
            out.extend(_subplot_svg(subplot, x0, y0, cell_w, plot_h, margin_l, margin_r, margin_t, margin_b,
                                    legend_row_h))
        y0 += row_h + gap
    out.append("</svg>")
    return "\n".join(out)


def _subplot_svg(subplot, x0, y0, cell_w, plot_h, ml, mr, mt, mb, legend_row_h) -> list[str]:
    out = []
    px0, py0 = x0 + ml, y0 + mt
    pw, ph = cell_w - ml - mr, plot_h
    out.append(f'<text x="{px0:.1f}" y="{y0 + 15:.1f}" font-size="12" font-weight="bold">'
               f"{html.escape(subplot.title)}</text>")
    out.append(f'<rect x="{px0:.1f}" y="{py0:.1f}" width="{pw:.1f}" height="{ph:.1f}" fill="none" '
               'stroke="currentColor" stroke-opacity="0.35" stroke-width="1"/>')
    xlo, xhi = _range([c.x for c in subplot.curves], 0.0)
    ylo, yhi = _range([c.y for c in subplot.curves], 0.05)

    def sx(v):
        return px0 + (v - xlo) / (xhi - xlo) * pw

    def sy(v):
        return py0 + ph - (v - ylo) / (yhi - ylo) * ph

    for tick in nice_ticks(ylo, yhi):
        y = sy(tick)
        out.append(f'<line x1="{px0:.1f}" y1="{y:.1f}" x2="{px0 + pw:.1f}" y2="{y:.1f}" stroke="currentColor" '
                   'stroke-opacity="0.15"/>')
        out.append(f'<text x="{px0 - 5:.1f}" y="{y + 4:.1f}" text-anchor="end">'
                   f"{format_number(tick, trim=True)}</text>")
    for tick in nice_ticks(xlo, xhi):
        x = sx(tick)
        out.append(f'<line x1="{x:.1f}" y1="{py0 + ph:.1f}" x2="{x:.1f}" y2="{py0 + ph + 4:.1f}" '
                   'stroke="currentColor" stroke-opacity="0.5"/>')
        out.append(f'<text x="{x:.1f}" y="{py0 + ph + 16:.1f}" text-anchor="middle">'
                   f"{format_number(tick, trim=True)}</text>")
    out.append(f'<text x="{px0 + pw / 2:.1f}" y="{py0 + ph + 30:.1f}" text-anchor="middle">'
               f"{html.escape(subplot.x_label)}</text>")

    for curve in subplot.curves:
        for segment in _segments(curve.x, curve.y):
            xs, ys = segment
            if len(xs) == 1:
                out.append(f'<circle cx="{sx(xs[0]):.1f}" cy="{sy(ys[0]):.1f}" r="2.5" fill="{curve.color}"/>')
                continue
            points = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(xs, ys))
            out.append(f'<polyline fill="none" stroke="{curve.color}" stroke-width="1.8" '
                       f'stroke-linejoin="round" points="{points}"><title>{html.escape(curve.key)}</title></polyline>')

    # The legend inside the plot, top right (bottom right for rising values), on a faint box: where the live
    # widget has it, so the final picture does not move what the user was watching.
    labels = [f"{curve.key} = {format_number(curve.last)}" for curve in subplot.curves]
    if labels:
        box_w = min(pw - 8, 26 + max(len(label) for label in labels) * LEGEND_CHAR_WIDTH)
        box_h = 6 + legend_row_h * len(labels)
        bx = px0 + pw - box_w - 4
        by = py0 + ph - box_h - 4 if subplot.rising else py0 + 4
        out.append(f'<rect x="{bx:.1f}" y="{by:.1f}" width="{box_w:.1f}" height="{box_h:.1f}" rx="2" '
                   'fill="currentColor" fill-opacity="0.08"/>')
        for index, (curve, label) in enumerate(zip(subplot.curves, labels)):
            ry = by + 3 + legend_row_h * (index + 1)
            out.append(f'<rect x="{bx + 6:.1f}" y="{ry - 8:.1f}" width="12" height="3" fill="{curve.color}"/>')
            out.append(f'<text x="{bx + 22:.1f}" y="{ry - 4:.1f}">{html.escape(label)}</text>')
    return out


def _segments(x: np.ndarray, y: np.ndarray):
    """Runs of consecutive finite points (a NaN or inf breaks the line)."""
    ok = np.isfinite(x) & np.isfinite(y)
    start = None
    for i, good in enumerate(ok.tolist()):
        if good and start is None:
            start = i
        elif not good and start is not None:
            yield x[start:i].tolist(), y[start:i].tolist()
            start = None
    if start is not None:
        yield x[start:].tolist(), y[start:].tolist()


def sparkline(values: np.ndarray, width: int = 24) -> str:
    """A unicode sparkline of ``values`` (resampled to ``width`` characters; blanks for non-finite)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return ""
    if values.size > width:
        edges = np.linspace(0, values.size, width + 1).astype(int)
        values = np.array([np.nanmean(values[a:b]) if np.isfinite(values[a:b]).any() else np.nan
                           for a, b in zip(edges[:-1], edges[1:])])
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return " " * values.size
    lo, hi = float(finite.min()), float(finite.max())
    chars = []
    for v in values.tolist():
        if not math.isfinite(v):
            chars.append(" ")
        elif hi == lo:
            chars.append(SPARK[3])
        else:
            chars.append(SPARK[min(7, int((v - lo) / (hi - lo) * 7.999))])
    return "".join(chars)


def text_summary(subplots: list[Subplot], heading: str | None = None) -> str:
    """Plain-text picture for terminals and text-only front ends: one line per metric with a sparkline."""
    curves = [c for s in subplots for c in s.curves]
    if not curves:
        return heading or ""
    name_w = min(32, max(len(c.key) for c in curves))
    lines = [heading] if heading else []
    for curve in curves:
        lines.append(
            f"{curve.key[:name_w]:<{name_w}}  {sparkline(curve.y)}  last {format_number(curve.last)}"
            f"  min {format_number(curve.min_value)}  max {format_number(curve.max_value)}  ({curve.count} points)"
        )
    return "\n".join(lines)


def picture_html(svg: str, alt: str) -> str:
    """``svg`` as an ``<img>`` (a data URI) that fills its cell: shown in trusted and untrusted notebooks."""
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return (f'<img alt="{html.escape(alt)}" src="data:image/svg+xml;base64,{data}" '
            f'style="width:100%;max-width:{IMAGE_MAX_WIDTH}px;height:auto">')


def picture_bundle(subplots: list[Subplot], heading: str | None = None) -> dict[str, str]:
    """The MIME bundle of a picture: the SVG, the same SVG as an ``<img>`` with alt text, and the text summary."""
    svg = render_svg(subplots, heading=heading)
    text = text_summary(subplots, heading)
    return {"image/svg+xml": svg, "text/html": picture_html(svg, alt_text(subplots, heading)), "text/plain": text}


def alt_text(subplots: list[Subplot], heading: str | None = None) -> str:
    """One line describing the picture for screen readers: the heading and each curve's last value."""
    curves = [f"{c.key} last {format_number(c.last)} ({c.count} points)" for s in subplots for c in s.curves]
    return "; ".join(([heading] if heading else []) + curves) or "no curves"
