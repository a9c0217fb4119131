"""The live figure as plain plotly dicts: subplot grid, traces, per-subplot legends, the step/time toggle.

Kept free of plotly imports so it can be unit-tested and reused: ``live.py`` feeds these dicts to one
``FigureWidget`` per panel. Every metric has two traces: x = step (shown) and x = seconds since the run
started (hidden); the buttons in the figure swap them in the browser, so the toggle works while the cell
is still running (browser-to-kernel events would wait until it ends). Subplots whose metrics are sampled
by wall clock (``system/*``) use elapsed time in both traces. Backgrounds are transparent and text a neutral grey
(plotly cannot read JupyterLab's CSS variables), so the figure sits on light and dark themes alike; its width
follows the cell (autosize).
"""

from __future__ import annotations

import html
import math

from ._decimate import MetricGroup
from ._static import color_for

ROW_HEIGHT = 270
TITLE_HEIGHT = 70
NEUTRAL_TEXT = "#787878"  # plotly cannot read CSS variables: a grey that reads on light and dark pages
GRID = "rgba(128,128,128,0.25)"


def escape(text: str) -> str:
    """Escape for plotly's pseudo-HTML text (names, titles): &, <, > and quotes."""
    return html.escape(str(text), quote=True)


def escape_hover(text: str) -> str:
    """Escape for a hovertemplate: also neutralise plotly's %{...} placeholders."""
    return escape(text).replace("%", "%%").replace("%%{", "% {")


def axis_suffix(number: int) -> str:
    return "" if number == 1 else str(number)


def grid_domains(count: int) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """(x domain, y domain) of each subplot, two per row (one when there is a single subplot)."""
    columns = 1 if count <= 1 else 2
    rows = max(1, math.ceil(count / columns))
    gap_x, gap_y = 0.07, 0.12 / rows + 0.03
    cells = []
    for index in range(count):
        row, column = divmod(index, columns)
        x0 = column / columns + (gap_x / 2 if column else 0)
        x1 = (column + 1) / columns - (gap_x / 2 if column < columns - 1 else 0)
        y1 = 1 - row / rows - (gap_y / 2 if row else 0)
        y0 = 1 - (row + 1) / rows + (gap_y / 2 if row < rows - 1 else 0)
        cells.append(((round(x0, 4), round(x1, 4)), (round(y0, 4), round(y1, 4))))
    return cells


def figure_height(count: int) -> int:
    columns = 1 if count <= 1 else 2
    rows = max(1, math.ceil(count / columns))
    return ROW_HEIGHT * rows + TITLE_HEIGHT


class FigureLayout:
    """Assigns stable axes to subplots and stable trace slots to metric keys, and builds plotly dicts.

    ``axis_of[group id]`` never changes once given (traces keep their axes when subplots are added);
    ``keys`` lists metrics in the order their traces were added: trace ``2 i`` (x = step) and ``2 i + 1``
    (x = elapsed seconds) belong to ``keys[i]``.
    """

    def __init__(self) -> None:
        self.axis_of: dict[str, int] = {}
        self.keys: list[str] = []
        self.groups: list[MetricGroup] = []

    def structure(self, groups: list[MetricGroup]) -> tuple[list[str], bool]:
        """Take the current grouping; return (new keys needing traces, whether the layout changed)."""
        changed = [(g.id, g.keys) for g in groups] != [(g.id, g.keys) for g in self.groups]
        self.groups = list(groups)
        for group in groups:
            if group.id not in self.axis_of:
                self.axis_of[group.id] = len(self.axis_of) + 1
        new_keys = [k for g in groups for k in g.keys if k not in self.keys]
        self.keys.extend(new_keys)
        return new_keys, changed

    def group_for_key(self) -> dict[str, MetricGroup]:
        return {key: group for group in self.groups for key in group.keys}

    def trace(self, key: str, time_axis: bool) -> dict:
        """A new trace dict for ``key`` (no data yet)."""
        group = self.group_for_key()[key]
        number = self.axis_of[group.id]
        suffix = axis_suffix(number)
        index = self.keys.index(key)
        x_label = "elapsed s" if (time_axis or group.time_only) else "step"
        return {
            "type": "scatter",
            "mode": "lines",
            "name": escape(key),
            "x": [],
            "y": [],
            "xaxis": "x" + suffix,
            "yaxis": "y" + suffix,
            "legend": "legend" + suffix,
            "visible": not time_axis,
            "line": {"color": color_for(index), "width": 2},
            "hovertemplate": f"{escape_hover(key)}: %{{y:.4~g}}<br>{x_label} %{{x:.4~g}}<extra></extra>",
            "uid": f"{'t' if time_axis else 's'}{index}",
        }

    def layout(self, title: str) -> dict:
        """The full layout for the current groups: axes, subplot titles, legends, toggle buttons."""
        layout: dict = {
            "title": {"text": escape(title), "x": 0.01, "xanchor": "left", "font": {"size": 13}},
            "height": figure_height(len(self.groups)),
            "margin": {"l": 60, "r": 20, "t": 80, "b": 40},
            "hovermode": "x unified",
            "template": "none",
            "autosize": True,
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "font": {"color": NEUTRAL_TEXT, "family": "system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"},
            "showlegend": True,
            "uirevision": "jt-live",
            "annotations": [],
        }
        for (x_domain, y_domain), group in zip(grid_domains(len(self.groups)), self.groups):
            number = self.axis_of[group.id]
            suffix = axis_suffix(number)
            layout["xaxis" + suffix] = {
                "domain": list(x_domain), "anchor": "y" + suffix,
                "title": {"text": "elapsed s" if group.time_only else "step", "standoff": 4},
                "automargin": True, "gridcolor": GRID, "zerolinecolor": GRID, "linecolor": GRID,
            }
            layout["yaxis" + suffix] = {"domain": list(y_domain), "anchor": "x" + suffix, "automargin": True,
                                        "gridcolor": GRID, "zerolinecolor": GRID, "linecolor": GRID}
            rising = group.rising
            layout["legend" + suffix] = {
                "x": x_domain[1], "y": y_domain[0] if rising else y_domain[1],
                "xanchor": "right", "yanchor": "bottom" if rising else "top",
                "xref": "paper", "yref": "paper", "bgcolor": "rgba(128,128,128,0.12)", "font": {"size": 11},
            }
            layout["annotations"].append({
                "text": f"<b>{escape(group.title)}</b>", "x": x_domain[0], "y": y_domain[1],
                "xref": "paper", "yref": "paper", "xanchor": "left", "yanchor": "bottom",
                "showarrow": False, "font": {"size": 12},
            })
        layout["updatemenus"] = [self._toggle()]
        return layout

    def _toggle(self) -> dict:
        count = 2 * len(self.keys)
        by_step = [i % 2 == 0 for i in range(count)]
        by_time = [i % 2 == 1 for i in range(count)]
        step_titles, time_titles = {}, {}
        for group in self.groups:
            if group.time_only:
                continue
            suffix = axis_suffix(self.axis_of[group.id])
            step_titles[f"xaxis{suffix}.title.text"] = "step"
            time_titles[f"xaxis{suffix}.title.text"] = "elapsed s"
        return {
            "type": "buttons", "direction": "left", "showactive": True, "active": 0,
            "bgcolor": "rgba(128,128,128,0.15)", "bordercolor": GRID, "font": {"color": NEUTRAL_TEXT},
            "x": 1.0, "xanchor": "right", "y": 1.0, "yanchor": "bottom", "pad": {"b": 16},
            "buttons": [
                {"label": "x: step", "method": "update", "args": [{"visible": by_step}, step_titles]},
                {"label": "x: time", "method": "update", "args": [{"visible": by_time}, time_titles]},
            ],
        }
