"""The comparison panel shown by ``%runs`` / ``jt.runs()``: a paged runs table and one plotly figure.

The kernel holds one page of runs (the store filters, sorts and counts: ``paging``) and builds the pandas frame of
every matching run (``RunsPanel.df``) only when asked; the browser only ever holds the page it shows.
The table is an anywidget (``_compare.js``: filter box, sortable headers, checkboxes, pager, diff view); the
figure is one plotly ``FigureWidget`` that overlays the selected runs' step curves of the chosen metric above a
parallel-coordinates view of params against that metric. Where no widget front end exists the panel renders as
an escaped HTML table of its first page. Nothing here writes runs.
"""

from __future__ import annotations

import html
import math
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .. import paging, queries
from .text import visible

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..store import StoreLocation

PAGE_SIZE = 20
COUNT_ATTEMPTS = 3  # the background count's tries (a store locked by a run's end answers a moment later)
MAX_CURVES = 20
FIXED_COLUMNS = [("run_name", "run"), ("status", "status"), ("start_time", "started"), ("duration_s", "duration")]
_HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def _table_widget_class():
    """The anywidget class for the table, defined on first use (anywidget and traitlets load only then)."""
    import anywidget
    import traitlets as t

    class RunsTable(anywidget.AnyWidget):
        _esm = (_HERE / "_compare.js").read_text(encoding="utf-8")
        _css = (_HERE / "_compare.css").read_text(encoding="utf-8")
        title = t.Unicode("").tag(sync=True)
        columns = t.List().tag(sync=True)
        rows = t.List().tag(sync=True)
        total = t.Int(0).tag(sync=True)
        total_known = t.Bool(True).tag(sync=True)
        counting = t.Bool(False).tag(sync=True)
        page = t.Int(0).tag(sync=True)
        pages = t.Int(0).tag(sync=True)
        sort = t.Dict().tag(sync=True)
        selected = t.List().tag(sync=True)
        filter_text = t.Unicode("").tag(sync=True)
        filter_request = t.Dict().tag(sync=True)
        filter_error = t.Unicode("").tag(sync=True)
        filter_hint = t.Unicode("").tag(sync=True)
        show_all = t.Bool(False).tag(sync=True)
        hidden = t.Int(0).tag(sync=True)
        metrics = t.List().tag(sync=True)
        metric = t.Unicode("").tag(sync=True)
        diff = t.Dict().tag(sync=True)

    return RunsTable


class RunsPanel:
    """Runs of an experiment, to look at (display it) and to compute with (``.df``, a pandas DataFrame).

    The panel holds one page of runs: the store filters, sorts and counts (``paging``), so opening it costs the
    same for ten runs or a hundred thousand. ``.df`` builds the frame of every matching run on first use.
    State changes (filter, sort, page, selection, metric) are plain methods, so the panel works and is tested
    without a browser; the widget calls them when the user clicks.
    """

    def __init__(
        self,
        experiment: str | None = None,
        *,
        filter: str | None = None,  # noqa: A002
        sort: str | None = None,
        max_results: int | None = None,
        location: StoreLocation | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.location = queries.location_or_default(location)
        self.experiment = experiment
        self.max_results = max_results
        self.page_size = max(1, int(page_size))
        self._experiment_ids = queries.experiment_ids(experiment, self.location)
        self.filter = (filter or "").strip()
        self.filter_error = ""
        self.sort_key = queries.parse_sort(sort) if sort else queries.SortKey("start_time", True)
        self.page = 0
        self.selected: list[str] = []
        self.show_all = False
        self.metric = ""
        self._table = None
        self._figure = None
        self._box = None
        self._figure_thread: threading.Thread | None = None
        self._syncing = False
        self._sync_lock = threading.RLock()  # the background count syncs from its thread
        # In a widget front end the first page shows before the runs are counted (with a filter on params or
        # metrics, counting costs O(matching runs)); the count follows from a thread. Static outputs count first.
        self._count_later = False
        self._frame = None  # .df, built on first use
        self._page_state = None  # (runs, frame, columns) of the page shown
        try:
            self._pager = self._open(self.filter, self.sort_key)
        except queries.QueryError as exc:
            sample = queries.runs_to_frame(queries.search(max_results=200, location=self.location,
                                                          experiment_ids_=self._experiment_ids))
            raise queries.QueryError(_with_suggestion(f"Filter not applied: {exc}", self.filter, sample)) from None
        if sort and self._pager.sort_column:
            self.sort_key = queries.SortKey(self._pager.sort_column, self.sort_key.descending)
        self.metric = self._default_metric()

    # ------------------------------------------------------------------------------------------ data

    @property
    def df(self) -> pd.DataFrame:
        """All runs of the current query (filtered and sorted as shown), as a pandas DataFrame.

        Built on first use (the panel itself holds only the page it shows); says how long it will take when
        that is more than a couple of seconds.
        """
        if self._frame is None:
            self._frame = paging.timed_frame(self._pager)
        return self._frame

    def _total_now(self) -> int | None:
        """The total, counted now unless the count is left to the background (see ``_count_later``)."""
        return self._pager.known_total if self._count_later else self._pager.total

    @property
    def total(self) -> int:
        """Runs matching the query (for a tracking server, or while they are being counted: those known so far,
        see ``total_known``)."""
        total = self._total_now()
        if total is not None:
            return total
        return self.page * self.page_size + len(self._page()[0])

    @property
    def total_known(self) -> bool:
        return self._total_now() is not None

    @property
    def counting(self) -> bool:
        """True while the background count of an SQL store's matching runs is under way."""
        return (self._count_later and isinstance(self._pager, paging.SqlPager) and self._pager.known_total is None
                and not self._pager.count_failed)

    @property
    def title(self) -> str:
        if isinstance(self.experiment, str):
            return self.experiment
        from ..store import default_experiment_name

        return default_experiment_name() if self.experiment is None else ", ".join(self.experiment)

    def _open(self, filter_text: str, sort_key: queries.SortKey | None) -> paging.Pager:
        return paging.open_pager(self.location, self._experiment_ids, filter_text, sort_key, self.max_results,
                                 self.page_size)

    def _replace_pager(self, pager: paging.Pager) -> None:
        self._pager, self._frame, self._page_state = pager, None, None
        self._count_in_background()

    def _count_in_background(self) -> None:
        """Count the matching runs in a thread, then show the total (if the query is still the one shown)."""
        if self.counting and self._table is not None:
            threading.Thread(target=self._count, args=(self._pager,), name="jt-runs-count", daemon=True).start()

    def _count(self, pager: paging.Pager) -> None:
        """Count (a locked store gets two more tries); the table then shows the total, or "N+" if it failed."""
        for attempt in range(COUNT_ATTEMPTS):
            try:
                pager.total  # noqa: B018 - counts, and keeps the count
                break
            except Exception:  # noqa: BLE001 - a refresh counts again
                if attempt == COUNT_ATTEMPTS - 1:
                    pager.count_failed = True
                else:
                    time.sleep(0.5)
        if pager is self._pager:
            self._sync()

    def _page(self) -> tuple[list, pd.DataFrame, Any]:
        """The page shown: its runs, their frame, and the columns (from a bounded sample plus this page)."""
        if self._page_state is None:
            runs = self._pager.page(self.page * self.page_size, self.page_size)
            frame = queries.runs_to_frame(runs)
            self._page_state = (runs, frame, self._pager.columns(runs))
        return self._page_state

    def _columns(self):
        return self._page()[2]

    def shown_columns(self) -> list[str]:
        """Columns of the table: the fixed ones, then params and metrics (only those that vary, unless show_all).

        Which vary is judged on the newest runs of the query (a bounded sample) plus the page shown.
        """
        info = self._columns()
        data = info.params + info.metrics
        if not self.show_all:
            data = [c for c in data if c in info.varying]
        return [key for key, _ in FIXED_COLUMNS] + data

    def hidden_count(self) -> int:
        info = self._columns()
        return len(info.params) + len(info.metrics) - (len(self.shown_columns()) - len(FIXED_COLUMNS))

    @property
    def pages(self) -> int:
        total = self._total_now()
        if total is not None:
            return max(1, math.ceil(total / self.page_size)) if total else 0
        more = self._pager.has_more((self.page + 1) * self.page_size)
        return self.page + (2 if more else 1)

    def page_frame(self) -> pd.DataFrame:
        return self._page()[1]

    def page_rows(self) -> list[dict]:
        """The visible page as plain strings: ``[{"id": run_id, "cells": [...]}]`` in ``shown_columns`` order."""
        columns = self.shown_columns()
        frame = self.page_frame()
        rows = []
        for _, record in frame.iterrows():
            rows.append({"id": record["run_id"], "cells": [format_cell(c, record.get(c)) for c in columns]})
        return rows

    def selected_frame(self) -> pd.DataFrame:
        """The selected runs as a frame (they may be on other pages)."""
        return queries.runs_to_frame(self._pager.runs(self.selected))

    def _default_metric(self) -> str:
        info = self._columns()
        varying = [c for c in info.metrics if c in info.varying]
        guess = queries.guess_objective(varying or info.metrics)
        return f"metrics.{guess[0]}" if guess else ""

    # ------------------------------------------------------------------------------------------ actions

    def set_filter(self, text: str) -> bool:
        """Apply an MLflow filter; on a bad one keep the last good table and set ``filter_error``. True if applied.

        Applying the same filter again refreshes the table (runs added since show up).
        """
        text = (text or "").strip()
        try:
            pager = self._open(text, self.sort_key)
        except queries.QueryError as exc:
            self.filter_error = _with_suggestion(f"Filter not applied: {_plain(queries.one_line(exc))}", text,
                                                 self.page_frame())
            self._sync()
            return False
        self.filter, self.filter_error, self.page = text, "", 0
        self._replace_pager(pager)
        self.selected = pager.matching(self.selected)
        if not self.metric or self.metric not in self._columns().metrics:
            self.metric = self._default_metric()
        self._sync(figure=True)
        return True

    def refresh(self) -> None:
        """Ask the store again (same filter, sort and page): runs logged since the panel opened show up."""
        self._replace_pager(self._open(self.filter, self.sort_key))
        self.page = min(self.page, max(0, self.pages - 1))
        self.selected = self._pager.matching(self.selected)
        self._sync(figure=True)

    def set_sort(self, column: str, descending: bool = False) -> None:
        key = queries.SortKey(column, bool(descending))
        self._replace_pager(self._open(self.filter, key))
        self.sort_key, self.page = key, 0
        self._sync()

    def set_page(self, page: int) -> None:
        page = max(0, int(page))
        if self._total_now() is not None:
            page = min(page, max(0, self.pages - 1))
        else:
            while page > 0 and not self._pager.has_more(page * self.page_size):
                page -= 1  # a tracking server: as far as there are runs
        if page != self.page:
            self.page, self._page_state = page, None
        self._sync(figure=not self.selected)

    def set_selected(self, run_ids: Iterable[str]) -> None:
        self.selected = self._pager.matching(list(dict.fromkeys(run_ids)))
        self._sync(figure=True)

    def set_show_all(self, value: bool) -> None:
        self.show_all = bool(value)
        self._sync()

    def set_metric(self, metric: str) -> None:
        if metric and metric in self._columns().metrics:
            self.metric = metric
            self._sync(figure=True)

    def diff(self):
        """The RunDiff of the two selected runs, or None unless exactly two are selected."""
        if len(self.selected) != 2:
            return None
        return queries.diff(*self.selected, location=self.location)

    # ------------------------------------------------------------------------------------------ widget

    @property
    def widget(self):
        """The ipywidgets view (built on first use): the table widget, then one plotly FigureWidget below it.

        The table shows at once; the figure (plotly's import takes a second or more in a fresh kernel) is made in
        a thread and joins the box when it is ready. While it has nothing to draw the box hides it
        (``_compare.css``): no empty area."""
        if self._box is None:
            import ipywidgets

            # The first state goes with the widget's creation (not as updates racing its model in the browser).
            self._table = _table_widget_class()(**self._table_state(figure=True))
            self._box = ipywidgets.VBox([self._table], layout={"width": "100%"})
            self._box.add_class("jt-figure-empty")
            self._table.observe(self._on_widget_change,
                                names=["filter_request", "sort", "page", "selected", "show_all", "metric"])
            # One thread (starting one costs the main thread a few ms): the count, then the figure.
            self._figure_thread = threading.Thread(target=self._complete, name="jt-runs-panel", daemon=True)
            self._figure_thread.start()
        return self._box

    def _complete(self) -> None:
        """What the panel shows after its table: the total (when it is still being counted), then the figure."""
        if self.counting:
            self._count(self._pager)
        self._add_figure()

    def _add_figure(self) -> None:
        try:
            figure = _new_figure()
        except Exception as exc:  # noqa: BLE001 - the table works without it; say why there is no figure
            with self._sync_lock:
                self.filter_error = f"No figure: {queries.one_line(exc)}"
            self._sync()
            return
        with self._sync_lock:
            self._figure = figure
            self._box.children = (self._table, figure)
            self._draw_figure()

    @property
    def table(self):
        self.widget  # noqa: B018 - builds it
        return self._table

    @property
    def figure(self):
        """The plotly FigureWidget (waits for it the first time: it is made in a thread)."""
        self.widget  # noqa: B018
        self._figure_thread.join()
        return self._figure

    def _on_widget_change(self, change: dict) -> None:
        if self._syncing:
            return
        name, value = change["name"], change["new"]
        try:
            if name == "filter_request":
                self.set_filter((value or {}).get("text", ""))
            elif name == "sort":
                if value.get("column"):
                    self.set_sort(value["column"], value.get("descending", False))
            elif name == "page":
                self.set_page(value)
            elif name == "selected":
                self.set_selected(value)
            elif name == "show_all":
                self.set_show_all(value)
            elif name == "metric":
                self.set_metric(value)
        except Exception as exc:  # noqa: BLE001 - a click must never leave a traceback in the output
            self.filter_error = f"Could not update the panel: {queries.one_line(exc)}"
            self._sync()

    def _table_state(self, figure: bool = False) -> dict:
        """What the table widget shows: its synced traits."""
        state = {
            "title": self.title, "counting": self.counting,
            "columns": [{"key": c, "label": column_label(c), "group": column_group(c)} for c in self.shown_columns()],
            "rows": self.page_rows(), "total": self.total, "total_known": self.total_known, "pages": self.pages,
            "page": self.page, "sort": {"column": self.sort_key.name, "descending": self.sort_key.descending},
            "selected": list(self.selected), "filter_text": self.filter, "filter_error": self.filter_error,
            "filter_hint": filter_example(self.page_frame()), "show_all": self.show_all,
            "hidden": self.hidden_count(), "metrics": list(self._columns().metrics), "metric": self.metric,
        }
        if figure:
            result = self.diff()
            state["diff"] = result.to_dict() if result is not None else {}
        return state

    def _sync(self, figure: bool = False) -> None:
        """Push the current state to the widgets (no-op until the widget exists). Also called from the threads
        that count the runs and make the figure, hence the lock."""
        if self._table is None:
            return
        with self._sync_lock:
            state = self._table_state(figure)
            self._syncing = True
            try:
                with self._table.hold_sync():
                    for name, value in state.items():
                        setattr(self._table, name, value)
            finally:
                self._syncing = False
            if figure:
                self._draw_figure()

    def _draw_figure(self) -> None:
        """Redraw the figure (once it exists); the box shows it only when it has something to draw."""
        if self._figure is None:
            return  # the thread making it draws the state of the moment when it is done
        draw_figure(self._figure, self)
        if self._figure.data:
            self._box.remove_class("jt-figure-empty")
        else:
            self._box.add_class("jt-figure-empty")

    # ------------------------------------------------------------------------------------------ display

    def __repr__(self) -> str:
        return f"<RunsPanel {self.title!r}: {self.total_text()} runs; .df for the DataFrame>"

    def total_text(self) -> str:
        return f"{self.total}" if self.total_known else f"{self.total}+"

    def to_text(self) -> str:
        columns = self.shown_columns()
        frame = self.page_frame()
        lines = [f"{self.title}: {self.total_text()} runs (page {self.page + 1}/{max(1, self.pages)})"]
        if self.filter:
            lines[0] += f"  filter: {self.filter}"
        if len(frame):
            shown = frame[columns].copy()
            for c in columns:
                shown[c] = [format_cell(c, v) for v in frame[c]]
            shown.columns = [column_label(c) for c in columns]
            lines.append(shown.to_string(index=False))
        return visible("\n".join(lines))

    def to_html(self) -> str:
        """The first page as a static, escaped HTML table (nbconvert, GitHub, no widget front end)."""
        e = html.escape
        columns = self.shown_columns()
        head = "".join(f"<th>{e(column_label(c))}</th>" for c in columns)
        body = []
        for row in self.page_rows():
            body.append("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row["cells"]) + "</tr>")
        caption = f"{e(self.title)}: {e(self.total_text())} runs"
        if self.filter:
            caption += f" &middot; filter: <code>{e(self.filter)}</code>"
        if self.pages > 1:
            caption += f" &middot; first {self.page_size} shown"
        return (f'<div class="jt-runs-static"><div>{caption}</div>'
                f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        from .live import live_mode

        # A widget front end shows the table before the runs are counted; elsewhere the static table is all
        # there is, so it waits for the count.
        self._count_later = live_mode() == "widget"
        bundle = {"text/plain": self.to_text(), "text/html": self.to_html()}
        widget_bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude) or {}
        view = widget_bundle.get("application/vnd.jupyter.widget-view+json")
        if view is not None:
            bundle["application/vnd.jupyter.widget-view+json"] = view
        return bundle


def _with_suggestion(message: str, text: str, frame: pd.DataFrame) -> str:
    """The one-line error, plus the MLflow spelling of a filter written with bare names, when there is one."""
    names = [c.split(".", 1)[1] for c in queries.param_columns(frame)]
    metrics = [c.split(".", 1)[1] for c in queries.metric_columns(frame)]
    suggestion = queries.suggest_filter(text or "", names, metrics)
    return f"{message.rstrip('.')}. Did you mean: {suggestion}" if suggestion else message


def column_label(column: str) -> str:
    for key, label in FIXED_COLUMNS:
        if column == key:
            return label
    return column.split(".", 1)[1] if column.startswith(("params.", "metrics.", "tags.")) else column


def column_group(column: str) -> str:
    if column.startswith("params."):
        return "param"
    if column.startswith("metrics."):
        return "metric"
    return "info"


def format_cell(column: str, value: Any) -> str:
    """One table cell as text (the front end escapes it): numbers as on the card (4 digits), times short."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if column == "start_time":
        try:
            return value.strftime("%Y-%m-%d %H:%M:%S")
        except (AttributeError, ValueError):
            return ""
    if column == "duration_s":
        return format_duration(float(value))
    if column.startswith("metrics.") and isinstance(value, (int, float)):
        from .numbers import format_number

        return format_number(value)
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "\u2026"


def format_duration(seconds: float) -> str:
    if math.isnan(seconds):
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


NEUTRAL_TEXT = "#787878"  # reads on light and dark pages; _compare.css turns it into the theme's text colour
GRID = "rgba(128,128,128,0.25)"


def _new_figure():
    """The panel's one FigureWidget: curves on top (x/y axes), parallel coordinates below (a domain).
    Transparent, as wide as its cell (plotly's autosize and responsive config), themed by ``_compare.css``."""
    import plotly.graph_objects as go

    figure = go.FigureWidget(layout={
        "height": 560, "autosize": True, "margin": {"l": 60, "r": 30, "t": 40, "b": 20},
        "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"color": NEUTRAL_TEXT},
        "xaxis": {"domain": [0, 1], "anchor": "y", "gridcolor": GRID, "zerolinecolor": GRID, "automargin": True},
        "yaxis": {"domain": [0.56, 1], "anchor": "x", "gridcolor": GRID, "zerolinecolor": GRID, "automargin": True},
        "legend": {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "bgcolor": "rgba(0,0,0,0)"},
        "title": {"x": 0.01, "xanchor": "left"},
    })
    figure._config = {**(figure._config or {}), "responsive": True, "displaylogo": False}
    figure.add_class("jt-plotly")
    return figure


PARCOORDS_DOMAIN = {"x": [0.02, 0.92], "y": [0, 0.38]}


def _plot_text(value: Any) -> str:
    """Text for plotly, which interprets a few HTML-like tags: escape them so the text shows as typed."""
    return html.escape(str(value), quote=False)


def draw_figure(figure, panel: RunsPanel) -> None:
    """Redraw the one figure: selected runs' curves of the panel's metric, and parallel coordinates."""
    import plotly.graph_objects as go

    metric = panel.metric
    key = metric.removeprefix("metrics.")
    frame = panel.selected_frame() if panel.selected else panel.page_frame()
    by_id = frame.set_index("run_id", drop=False) if len(frame) else frame
    curves = []
    if metric and panel.selected:
        ids = panel.selected[:MAX_CURVES]
        histories = queries.metric_history(ids, key, panel.location)
        for run_id in ids:
            steps, values = histories.get(run_id, ([], []))
            if len(steps) < 2:
                continue  # a single value is no curve: the table and parallel coordinates show it
            name = by_id.loc[run_id, "run_name"] if run_id in by_id.index else ""
            curves.append(go.Scatter(x=steps, y=values, mode="lines+markers" if len(steps) < 30 else "lines",
                                     name=_plot_text(run_label(name, run_id)), meta=run_id,
                                     hovertemplate="step %{x}<br>%{y:.4~g}<extra>%{fullData.name}</extra>"))
    parcoords = parcoords_trace(frame, metric, panel.show_all)
    traces = curves + ([parcoords] if parcoords is not None else [])
    figure.data = []
    if traces:
        figure.add_traces(traces)
    values = [v for c in curves for v in c.y if v is not None and math.isfinite(v)]
    with figure.batch_update():
        figure.layout.title = {"text": _plot_text(f"{key}: curves of the selected runs") if curves else "",
                               "font": {"size": 13}, "x": 0.01, "xanchor": "left"}
        figure.layout.height = (300 if curves else 0) + (260 if parcoords is not None else 0) + 40
        figure.layout.yaxis.domain = [0.5, 1] if parcoords is not None else [0, 1]
        figure.layout.xaxis.visible = figure.layout.yaxis.visible = bool(curves)
        figure.layout.xaxis.title = "step"
        figure.layout.yaxis.title = _plot_text(key)
        figure.layout.yaxis.type = "log" if spans_decades(values) else "linear"
        figure.layout.showlegend = bool(curves)


def parcoords_trace(rows: pd.DataFrame, metric: str, show_all: bool = False):
    """A parallel-coordinates trace: one axis per param (varying ones unless show_all), the metric last."""
    import pandas as pd
    import plotly.graph_objects as go

    if rows is None or len(rows) < 2:
        return None
    params = queries.param_columns(rows)
    if not show_all:
        params = queries.varying_columns(rows, params)
        if len(params) < 2:
            return None  # one varying param against a metric is a scatter, not parallel coordinates
    dimensions = []
    for column in params[:12]:
        series = rows[column]
        numeric = pd.to_numeric(series, errors="coerce")
        if numeric.notna().sum() == series.notna().sum() and numeric.notna().any():
            dimensions.append({"label": _plot_text(column_label(column)), "values": numeric.tolist()})
        else:
            labels = sorted({str(v) for v in series if v is not None})
            codes = {label: i for i, label in enumerate(labels)}
            dimensions.append({
                "label": _plot_text(column_label(column)),
                "values": [codes.get(str(v), -1) if v is not None else -1 for v in series],
                # Tick texts are drawn with textContent by plotly (no markup, no entities): pass them as they are.
                "tickvals": list(codes.values()), "ticktext": labels,
            })
    line = {}
    if metric and metric in rows.columns:
        values = rows[metric].astype(float)
        dimensions.append({"label": _plot_text(column_label(metric)), "values": values.tolist()})
        if values.notna().any():
            line = {"color": values.fillna(values.min()).tolist(), "colorscale": "Viridis", "showscale": True,
                    "colorbar": {"len": 0.45, "y": 0.22, "title": {"text": _plot_text(column_label(metric)),
                                                                 "side": "right"},
                                 "tickformat": ".3~g", "outlinewidth": 0}}
    if not dimensions:
        return None
    return go.Parcoords(dimensions=dimensions, line=line, name="params", domain=PARCOORDS_DOMAIN)


def run_label(name: str | None, run_id: str) -> str:
    """A run in legends: "name · 1a2b3c4d" (runs often share a name), or the short id alone."""
    return f"{name} · {run_id[:8]}" if name else run_id[:8]


def spans_decades(values: list[float]) -> bool:
    """Whether positive ``values`` span two decades or more (drawn on a log axis then)."""
    return bool(values) and min(values) > 0 and max(values) / min(values) >= 100


def filter_example(frame: pd.DataFrame) -> str:
    """A filter written with this experiment's own params and metrics (the filter box's placeholder)."""
    from .numbers import format_number

    parts = []
    params = queries.param_columns(frame) if len(frame) else []
    metrics = queries.metric_columns(frame) if len(frame) else []
    for column in params[:1]:
        value = frame[column].dropna()
        if len(value):
            parts.append(f"{column} = '{value.iloc[0]}'")
    for column in metrics[:1]:
        value = frame[column].dropna()
        if len(value):
            parts.append(f"{column} > {format_number(float(value.median()), trim=True)}")
    return " and ".join(parts) or "attributes.status = 'FINISHED'"


def _plain(message: str) -> str:
    """A message with Python's list/set reprs (``{'a', 'b'}``) written as plain lists (a, b)."""
    import re

    return re.sub(r"[\[{]((?:'[^']*'(?:, )?)+)[\]}]",
                  lambda m: ", ".join(sorted(re.findall(r"'([^']*)'", m.group(1)))), message)


def runs(
    experiment: str | None = None,
    *,
    filter: str | None = None,  # noqa: A002
    sort: str | None = None,
    max_results: int | None = None,
    location: StoreLocation | None = None,
) -> RunsPanel:
    """``jt.runs()``: the comparison panel for an experiment's runs (display it; ``.df`` is the DataFrame).

    A bad filter or unknown experiment raises ``QueryError`` with one line.
    """
    return RunsPanel(experiment, filter=filter, sort=sort, max_results=max_results, location=location)
