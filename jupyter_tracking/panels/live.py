"""The live panel: training curves under a tracked cell, redrawn while the cell runs.

``attach_live_panel(recorder, options)`` is all the cell runner calls. The panel is a recorder observer:
at ``on_run_start`` it starts one polling thread (<= 10 Hz) that reads new points from
``recorder.series`` (never touching ``jt.log``'s path), reduces them with ``SeriesDecimator`` and hands
a ``PanelState`` to one *view*, chosen once per run by ``live_mode()``:

- ``widget``   JupyterLab, Notebook 7, VS Code, Colab with its custom widget manager: the picture below,
               redrawn in place twice a second, until the run has lasted ``WIDGET_AFTER`` seconds and plotly
               (imported in a background thread) is ready; then one plotly ``FigureWidget`` takes the picture's
               place, updated with at most 10 comm messages a second. Short cells never create a widget (its
               ~5 MB of JavaScript costs the browser seconds);
- ``image``    front ends without widgets (or ``JUPYTER_TRACKING_LIVE=image``): an SVG image updated in
               place through a display handle about once a second;
- ``text``     kernels nobody watches live (nbconvert, nbval, papermill): a progress line on stderr now
               and then;
- ``terminal`` terminal IPython: a progress line rewritten in place on stderr.

Where a front end draws outputs (widget and image views), ``announce()`` shows a light placeholder (the run's
name, "waiting for the first step") the moment the cell starts, before MLflow or plotly are needed; the
first curve replaces it in place (one display id) within a poll interval of the first ``jt.log``.
At ``on_run_end`` every view leaves the same thing behind: a static bundle (``image/svg+xml`` of the
final curves, the same SVG as an ``<img>`` in ``text/html`` for untrusted notebooks, and a ``text/plain``
summary), which the saved notebook keeps for nbconvert and GitHub. It is drawn by the cell's own thread before
the cell returns: the panel sends nothing after the kernel reports idle, and the cell never waits for a widget.
plotly and ipywidgets are imported in a background thread, never on the cell's path.
"""

from __future__ import annotations

import contextvars
import html
import math
import os
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ._decimate import DEFAULT_CAPACITY, POINT_BUDGET, MetricGroup, SeriesDecimator, group_metrics, reduce_points
from ._static import Curve, Subplot, color_for, picture_bundle

MODES = ("widget", "image", "text", "terminal", "off")
MODE_ENV = "JUPYTER_TRACKING_LIVE"
POLL_INTERVAL = 0.1  # seconds between looks at series.version (<= 10 Hz)
MAX_MESSAGES_PER_SECOND = 10  # front-end messages of a widget panel in any one-second window
FINAL_MESSAGES = 2  # the closing picture and the widget's comm_close, sent whatever the rate
IMAGE_INTERVAL = 1.0  # seconds between image updates (fallback front ends)
PICTURE_INTERVAL = 0.5  # seconds between pictures of a widget panel before its widget takes over
WIDGET_AFTER = 2.0  # a run lasting this long gets its widget's model sent (if plotly is imported by then)
WIDGET_SHOW_AFTER = 3.0  # ... and shown in place of the picture from then (the browser has loaded its code)
WIDGET_SETTLE = 0.8  # at least this long between sending the model and showing it
IMPORT_AFTER = 1.0  # plotly's background import waits until every tracked run has lasted this long
TERMINAL_INTERVAL = 1.0
TEXT_FIRST_LINE_AFTER = 10.0  # headless kernels: first progress line after this many seconds
TEXT_INTERVAL = 30.0
CLOCK_REFRESH = 1.0  # redraw at least this often for the elapsed time even without new points


@dataclass
class LiveOptions:
    """What ``%%track`` asked for: ``--no-live`` (live=False), ``--system``, ``--steps N``."""

    live: bool = True
    system: bool = False
    steps: int | None = None
    mode: str | None = None  # force a view (tests); else JUPYTER_TRACKING_LIVE, else detected
    capacity: int = DEFAULT_CAPACITY
    system_interval: float = 1.0


def attach_live_panel(recorder: Any, options: LiveOptions | None = None, **kwargs: Any) -> LivePanel | None:
    """Give ``recorder`` (before ``start()``) a live panel and, with ``system=True``, a system sampler.

    Returns the panel, or None when ``live`` is off or no view fits. Tracking is the same either way.
    """
    options = options or LiveOptions(**kwargs)
    if options.steps is not None and getattr(recorder, "total_steps", None) is None:
        recorder.total_steps = options.steps
    if options.system:
        from ..system_metrics import SystemSampler

        recorder.add_observer(SystemSampler(interval=options.system_interval))
    if not options.live:
        return None
    mode = options.mode or live_mode()
    if mode == "off":
        return None
    panel = LivePanel(mode=mode, capacity=options.capacity)
    recorder.add_observer(panel)
    return panel


def observer_factory(recorder: Any, options: Any, panel: LivePanel | None = None) -> LivePanel | None:
    """For the cell runner: ``options`` is the cell's ``TrackOptions``; ``panel`` the one ``announce()`` made.

    Adds the ``--system`` sampler to ``recorder`` itself and returns the panel (None with ``--no-live``);
    the cell runner adds the returned panel as an observer.
    """
    if getattr(options, "system", False):
        from ..system_metrics import SystemSampler

        recorder.add_observer(SystemSampler())
    if panel is not None:
        return panel
    if not getattr(options, "live", True):
        return None
    mode = live_mode()
    if mode == "off":
        return None
    if mode == "widget":
        warm_up()
    return LivePanel(mode=mode)


def announce(options: Any) -> LivePanel | None:
    """At the very start of a tracked cell: the panel for it, with its placeholder shown where a front end draws
    outputs (widget and image views). Imports nothing heavy: no MLflow, plotly or ipywidgets."""
    if not getattr(options, "live", True):
        return None
    mode = live_mode()
    if mode == "off":
        return None
    panel = LivePanel(mode=mode)
    if mode == "widget":
        warm_up()
        from ..internals import hold_busy_status

        hold_busy_status(id(panel))  # a widget's subshell must not make the front end read "idle" (internals.py)
    if mode in ("widget", "image") and _shell() is not None:
        panel.show_placeholder(getattr(options, "name", None))
    return panel


def warm_up() -> None:
    """Import plotly's widget in a background thread (once), so a widget can take over when it is ready.

    The thread lets MLflow's import (which the cell waits for) finish first, and stays out of the way of a
    tracked run's first ``IMPORT_AFTER`` seconds: a short cell is not slowed down by an import it will not use.
    """
    global _import_thread
    with _FIGURE_LOCK:
        if _FIGURE_CLASS is not None or (_import_thread is not None and _import_thread.is_alive()):
            return
        _import_thread = threading.Thread(target=_import_when_quiet, name="jt-live-import", daemon=True)
        _import_thread.start()


_import_thread: threading.Thread | None = None
_runs_since: dict[int, float] = {}  # id(panel) -> monotonic start of each run being drawn now


def _import_when_quiet() -> None:
    from .. import preload

    preload.wait_for_import()
    while True:
        now = time.monotonic()
        young = [since for since in list(_runs_since.values()) if now - since < IMPORT_AFTER]
        if not young:
            break
        time.sleep(IMPORT_AFTER - (now - max(young)) + 0.01)
    try:
        _figure_class()
    except Exception:  # noqa: BLE001 - the panel reports it when it needs the class
        pass


def figure_class_ready() -> bool:
    return _FIGURE_CLASS is not None


# ---------------------------------------------------------------------- where are we
def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return None
    return get_ipython()


def live_mode(shell: Any = None) -> str:
    """The view for this session: forced by ``JUPYTER_TRACKING_LIVE``, else guessed from the front end.

    Kernels started by a Jupyter server (JupyterLab, Notebook 7, Voila: ``JPY_SESSION_NAME`` is set), by
    VS Code or on Colab get widgets; other kernels (nbconvert, nbval, papermill, qtconsole) get text;
    a terminal IPython gets the terminal line.
    """
    forced = os.environ.get(MODE_ENV, "").strip().lower()
    if forced in MODES:
        return forced
    shell = shell if shell is not None else _shell()
    if shell is None or getattr(shell, "kernel", None) is None:
        return "terminal"
    if "google.colab" in sys.modules:
        return "widget" if _enable_colab_widgets() else "image"
    if "VSCODE_PID" in os.environ or "__vsc_ipynb_file__" in getattr(shell, "user_ns", {}):
        return "widget"
    if os.environ.get("JPY_SESSION_NAME"):
        return "widget"
    return "text"


_colab_widgets: bool | None = None


def _enable_colab_widgets() -> bool:
    """Switch on Colab's custom widget manager once (third-party widgets need it); False if it fails."""
    global _colab_widgets
    if _colab_widgets is None:
        try:
            from google.colab import output  # type: ignore[import-not-found]

            output.enable_custom_widget_manager()
            _colab_widgets = True
        except Exception:  # noqa: BLE001 - any failure means: use the image fallback
            _colab_widgets = False
    return _colab_widgets


# ---------------------------------------------------------------------- state handed to views
@dataclass
class CurveData:
    key: str
    steps: Any  # np.ndarray (decimated)
    values: Any
    elapsed: Any  # seconds since the run started
    last: float | None
    count: int
    min_value: float | None
    max_value: float | None


@dataclass
class PanelState:
    """What a view draws: subplots (groups), decimated curves, the progress line, the run status."""

    groups: list[MetricGroup]
    curves: dict[str, CurveData]
    progress: str
    status: str
    points: int = 0
    colors: dict[str, str] = field(default_factory=dict)

    def subplots(self, time_x: bool = False) -> list[Subplot]:
        """The curves as ``_static.Subplot``s (x = step, or elapsed seconds for clock-sampled groups)."""
        result = []
        for group in self.groups:
            use_time = time_x or group.time_only
            subplot = Subplot(group.title, "elapsed s" if use_time else "step", rising=group.rising)
            for key in group.keys:
                data = self.curves[key]
                subplot.curves.append(Curve(
                    key, self.colors.get(key, color_for(0)), data.elapsed if use_time else data.steps,
                    data.values, data.last, data.count, data.min_value, data.max_value,
                ))
            result.append(subplot)
        return result


def static_bundle(state: PanelState) -> dict[str, str]:
    """The picture kept in the saved notebook: an SVG of the curves and a text summary (deterministic)."""
    return picture_bundle(state.subplots(), f"Training curves ({state.status.lower()})")


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_line(name: str | None, step: float | None, first_step: float | None, total: int | None,
                  elapsed: float, status: str = "RUNNING") -> str:
    """``name · step 40/100 (40%) · 0:12 elapsed · ETA 0:18`` (no ETA without a total)."""
    parts = [name] if name else []
    if step is not None:
        done = int(step) + (1 if first_step == 0 else 0)
        if total:
            done = min(done, total)
            parts.append(f"step {done}/{total} ({100 * done // total}%)")
        else:
            parts.append(f"step {int(step)}")
    else:
        done = 0
    parts.append(f"{format_duration(elapsed)} elapsed")
    if status == "RUNNING":
        if total and done > 0 and done < total:
            parts.append(f"ETA {format_duration(elapsed / done * (total - done))}")
    else:
        parts.append(status.lower())
    return " · ".join(parts)


# ---------------------------------------------------------------------- the panel
class LivePanel:
    """A recorder observer that draws the run's step series live through one view (see module doc)."""

    def __init__(self, mode: str = "widget", capacity: int = DEFAULT_CAPACITY) -> None:
        if mode not in MODES or mode == "off":
            raise ValueError(f"unknown live panel mode {mode!r}")
        self.mode = mode
        self.capacity = capacity
        self.recorder: Any = None
        self.view: Any = _VIEWS[mode]()
        self.redraws = 0  # views drawn (show + updates), for tests and benchmarks
        self._decimators: dict[str, SeriesDecimator] = {}
        self._seen: dict[str, int] = {}
        self._colors: dict[str, str] = {}
        self._version = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one draw at a time (thread vs. on_run_end); never held while plotly works
        self._dirty = False
        self._shown = False
        self._last_draw = 0.0
        self._started = False
        self._run_started = 0.0
        self._code_done = False
        self._finished = False
        self._placeholder_name: str | None = None

    # ------------------------------------------------------------------ placeholder
    def show_placeholder(self, name: str | None) -> None:
        """The light placeholder, shown where the curves will be (from the cell's own thread)."""
        self._placeholder_name = name
        _display(placeholder_bundle(name), self.view.display_id)
        self.view.placeholder = True
        self.view.messages += 1

    def _withdraw_placeholder(self) -> None:
        """No curves after all: the placeholder becomes an empty output."""
        if self.view.placeholder:
            _display({"text/plain": ""}, self.view.display_id, update=True)
            self.view.placeholder = False

    # ------------------------------------------------------------------ observer protocol
    def on_run_start(self, recorder: Any) -> None:
        self.recorder = recorder
        self._started = True
        if self.view.placeholder and recorder.run_name and recorder.run_name != self._placeholder_name:
            self._placeholder_name = recorder.run_name  # MLflow named the run: say which run is waiting
            _display(placeholder_bundle(recorder.run_name), self.view.display_id, update=True)
        if self.mode == "widget":
            _runs_since[id(self)] = time.monotonic()
            warm_up()
        # The thread runs in a copy of the cell's context: its outputs carry the cell's parent header.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._loop,), name="jt-live-panel", daemon=True)
        self._thread.start()

    def on_run_end(self, recorder: Any, status: str) -> None:
        """The final picture, drawn now by the cell's thread; the panel thread stops without being waited for
        (a widget it is still building is closed by the thread itself)."""
        _runs_since.pop(id(self), None)
        self._stop.set()
        with self._lock:
            if self._finished:  # abandoned already
                return
            self._finished = True
            if not self._started:  # the run never started
                self._withdraw_placeholder()
                return
            self._ingest()
            if not self._curve_keys(final=True):
                self._withdraw_placeholder()
                self.view.close()
                return
            state = self.state(status)
            self.view.finish(state, static_bundle(state))

    def abandon(self) -> None:
        """The cell stopped before its code ran (an interrupt, an error of ours while opening the run; the run is
        closed without ``on_run_end``): the thread stops, a placeholder with nothing to show goes."""
        _runs_since.pop(id(self), None)
        self._stop.set()
        with self._lock:
            if not self._finished:
                self._finished = True
                if not self._shown:
                    self._withdraw_placeholder()
                self.view.close()
        from ..internals import release_busy_status

        release_busy_status(id(self))

    # ------------------------------------------------------------------ polling thread
    def _loop(self) -> None:
        while not self._stop.wait(POLL_INTERVAL):
            try:
                with self._lock:
                    if self._finished:
                        return
                    self._tick()
                    build = self._shown and self._running() and self.view.wants_figure(self._elapsed())
                    state = self.state() if build else None
                if state is not None:
                    self._build_figure(state)
            except Exception as error:  # noqa: BLE001 - a panel must never break the cell
                _warn(f"live panel stopped: {type(error).__name__}: {error}")
                return

    def code_finished(self) -> None:
        """The cell's code has returned (the run is being recorded and closed, which can take seconds with many
        points): a widget would come too late to matter now."""
        self._code_done = True

    def _running(self) -> bool:
        return not self._code_done and getattr(self.recorder, "status", "RUNNING") == "RUNNING"

    def _elapsed(self) -> float:
        """Seconds since the first curve was drawn: the widget's turn counts from the training's start, not
        from the cell's (creating the run may take a while)."""
        return time.monotonic() - self._run_started if self._shown else 0.0

    def _build_figure(self, state: PanelState) -> None:
        """Make the widget (slow: plotly checks every property) outside the lock, then hand it to the view."""
        try:
            figure, layout = self.view.build(state)
        except Exception as error:  # noqa: BLE001 - no plotly/anywidget: the pictures go on
            self.view.widget_failed = True
            _warn(f"live curves shown as pictures ({type(error).__name__}: {error}); "
                  'pip install "plotly>=6" anywidget for the interactive panel')
            return
        with self._lock:
            if self._finished:  # the cell ended meanwhile: its picture is up; free the model in the browser
                figure.close()
                return
            self.view.adopt(figure, layout)

    def _tick(self) -> None:
        if self._ingest():
            self._dirty = True
        if not self._curve_keys():
            return
        now = time.monotonic()
        if not self._shown:
            self.view.show(self.state())
            self._shown = True
            self._run_started = now
            self._dirty = False
            self._last_draw = now
            self.redraws += 1
            return
        running = self._running()
        if running and self.view.switch_due(self._elapsed()):
            self.view.switch(self.state())
            self.redraws += 1
            self._dirty = False
            self._last_draw = now
            return
        if (self._dirty or (running and now - self._last_draw >= CLOCK_REFRESH)) and self.view.ready(now):
            if self.view.update(self.state()):
                self.redraws += 1
            self._dirty = False
            self._last_draw = now

    def _ingest(self) -> bool:
        """Move new points from ``recorder.series`` into the decimators; True if there were any."""
        series = self.recorder.series
        version = series.version
        if version == self._version:
            return False
        chunks = []
        with series.lock:
            self._version = series.version
            for key, (steps, values, times) in series.data.items():
                start = self._seen.get(key, 0)
                end = len(values)
                if end > start:
                    chunks.append((key, steps[start:end], values[start:end], times[start:end]))
                    self._seen[key] = end
        for key, steps, values, times in chunks:
            decimator = self._decimators.get(key)
            if decimator is None:
                decimator = self._decimators[key] = SeriesDecimator(self.capacity)
                self._colors[key] = color_for(len(self._colors))
            decimator.extend(steps, values, times)
        return bool(chunks)

    def state(self, status: str | None = None) -> PanelState:
        """The current picture: groups, decimated curves, progress line."""
        recorder = self.recorder
        status = status or getattr(recorder, "status", "RUNNING") or "RUNNING"
        start = float(getattr(recorder, "start_time", time.time()))
        curves: dict[str, CurveData] = {}
        last_step = first_step = None
        last_time = start
        points = 0
        budget = max(200, POINT_BUDGET // max(1, len(self._decimators)))
        for key, decimator in self._decimators.items():
            steps, values, times = reduce_points(*decimator.points(), budget)
            last = decimator.last
            curves[key] = CurveData(
                key, steps, values, times - start, last[1] if last else None, decimator.count,
                decimator.min_value if math.isfinite(decimator.min_value) else None,
                decimator.max_value if math.isfinite(decimator.max_value) else None,
            )
            points += decimator.count
            if last is not None:
                last_time = max(last_time, last[2])
                if not key.startswith("system/"):
                    last_step = last[0] if last_step is None else max(last_step, last[0])
                    first = float(steps[0]) if len(steps) else None
                    if first is not None:
                        first_step = first if first_step is None else min(first_step, first)
        elapsed = (time.time() if status == "RUNNING" else max(last_time, time.time())) - start
        progress = progress_line(getattr(recorder, "run_name", None), last_step, first_step,
                                 getattr(recorder, "total_steps", None), elapsed, status)
        keys = self._curve_keys(final=status != "RUNNING")
        return PanelState(group_metrics(keys), {key: curves[key] for key in keys}, progress, status, points,
                          dict(self._colors))

    def _curve_keys(self, final: bool = False) -> list[str]:
        """Keys drawn: while the run goes on, any key with a point (the first point is drawn as a dot, at once);
        in the final picture only keys with at least two points: a single point (`mlflow.log_metric("x", 1.5)`)
        is a value on the card, never a curve."""
        least = 2 if final else 1
        return [key for key, decimator in self._decimators.items() if decimator.count >= least]


def _warn(message: str) -> None:
    print(f"jupyter_tracking: {message}", file=sys.stderr)  # the panel thread writes under its cell


# ---------------------------------------------------------------------- views
class _View:
    """Base view: ``show`` once, ``update`` when ``ready``, ``finish`` with the static bundle.

    ``placeholder`` is True while the panel's placeholder holds the view's display (``show`` then replaces it).
    Only the widget view ever builds a figure (``wants_figure``/``build``/``adopt``/``switch``).
    """

    def __init__(self) -> None:
        self.display_id = f"jt-live-{uuid.uuid4().hex}"
        self.messages = 0
        self.placeholder = False
        self.widget_failed = False

    def ready(self, now: float) -> bool:
        return True

    def wants_figure(self, elapsed: float) -> bool:
        return False

    def switch_due(self, elapsed: float) -> bool:
        return False

    def show(self, state: PanelState) -> None:
        raise NotImplementedError

    def update(self, state: PanelState) -> bool:
        raise NotImplementedError

    def finish(self, state: PanelState, bundle: dict[str, str]) -> None:
        if _shell() is None:  # plain Python (jt.track in a script): the text picture
            print(bundle["text/plain"])
            return
        if self.placeholder:
            _display(bundle, self.display_id, update=True)
            return
        from IPython.display import display

        display(bundle, raw=True)

    def close(self) -> None:
        pass


def _display(bundle: dict, display_id: str, update: bool = False) -> None:
    if _shell() is None:  # plain Python: nothing to draw in; the text picture comes at the end
        return
    from IPython.display import display

    display(bundle, raw=True, display_id=display_id, update=update)


def placeholder_bundle(name: str | None) -> dict[str, str]:
    """What stands where the curves will be until the first step arrives: the run's name and a line saying so,
    in the front end's theme (``--jp-*`` variables, light fallbacks for pages without them)."""
    label = html.escape(name) if name else "new run"
    text = f"{name or 'new run'} · waiting for the first step"
    return {
        "text/html": (
            '<div class="jt-live-placeholder" style="box-sizing:border-box;max-width:100%;padding:10px 14px;'
            "border:1px dashed var(--jp-border-color1,#bdbdbd);border-radius:4px;"
            "background:var(--jp-layout-color1,transparent);color:var(--jp-ui-font-color2,#616161);"
            "font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:var(--jp-ui-font-size1,13px);"
            'line-height:1.5"><span style="color:var(--jp-ui-font-color1,#212121);font-weight:600">'
            f'{label}</span> · waiting for the first step…</div>'
        ),
        "text/plain": text,
    }


class PictureView(_View):
    """Pictures of the curves (SVG, an ``<img>`` and text) redrawn in place through the display id."""

    interval = IMAGE_INTERVAL

    def __init__(self) -> None:
        super().__init__()
        self._last = 0.0

    def ready(self, now: float) -> bool:
        return now - self._last >= self.interval

    def _picture(self, state: PanelState, update: bool) -> None:
        _display(picture_bundle(state.subplots(), state.progress), self.display_id, update=update)
        self._last = time.monotonic()
        self.messages += 1

    def show(self, state: PanelState) -> None:
        self._picture(state, update=self.placeholder)
        self.placeholder = True  # the display exists from now on: everything else updates it

    def update(self, state: PanelState) -> bool:
        self._picture(state, update=True)
        return True

    def finish(self, state: PanelState, bundle: dict[str, str]) -> None:
        if _shell() is None or not self.placeholder:
            return super().finish(state, bundle)
        _display(bundle, self.display_id, update=True)


class ImageView(PictureView):
    """Front ends without widgets: an SVG image updated through a display handle about once a second."""


class WidgetView(PictureView):
    """Pictures twice a second while the run is young, then one plotly FigureWidget in their place, updated with
    one comm message per redraw, <= 10 a second. The widget's model is sent at ``WIDGET_AFTER`` seconds (when
    plotly is imported by then) and shown from ``WIDGET_SHOW_AFTER``, so the browser has its code by then."""

    interval = PICTURE_INTERVAL

    def __init__(self) -> None:
        super().__init__()
        self.figure: Any = None  # the widget on screen
        self.layout: Any = None
        self._model: Any = None  # the widget built and sent, not shown yet
        self._model_sent = 0.0
        self._sent: deque[float] = deque()

    # ------------------------------------------------------------------ the widget's turn
    def wants_figure(self, elapsed: float) -> bool:
        if self.widget_failed or self.figure is not None or self._model is not None or elapsed < WIDGET_AFTER:
            return False
        if figure_class_ready():
            return True
        # the background import ended without the class: build() says why (once)
        return _import_thread is not None and not _import_thread.is_alive()

    def build(self, state: PanelState) -> tuple[Any, Any]:
        from ._figure import FigureLayout

        layout = FigureLayout()
        layout.structure(state.groups)
        traces = [t for key in layout.keys for t in (layout.trace(key, False), layout.trace(key, True))]
        _fill(traces, layout.keys, state)
        figure = _figure_class()(data=traces, layout=layout.layout(state.progress))
        figure.add_class("jt-plotly")  # themed text where the page has the panels' CSS
        return figure, layout

    def adopt(self, figure: Any, layout: Any) -> None:
        self._model, self.layout = figure, layout
        self._model_sent = time.monotonic()
        self._count(4)  # comm_open with the whole figure, then plotly's 3 initial state messages

    def switch_due(self, elapsed: float) -> bool:
        return (self._model is not None and elapsed >= WIDGET_SHOW_AFTER
                and time.monotonic() - self._model_sent >= WIDGET_SETTLE)

    def switch(self, state: PanelState) -> None:
        """The widget, brought up to date, replaces the picture in the same display."""
        self.figure, self._model = self._model, None
        self._widget_update(state)
        bundle = {
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2, "version_minor": 0, "model_id": self.figure.model_id,
            },
            "text/plain": f"Live training curves ({', '.join(self.layout.keys)}): needs a front end with Jupyter widgets.",
        }
        _display(bundle, self.display_id, update=self.placeholder)
        self.placeholder = True
        self._count(1)

    # ------------------------------------------------------------------ redraws
    def ready(self, now: float) -> bool:
        while self._sent and now - self._sent[0] >= 1.0:
            self._sent.popleft()
        # room for a structural redraw (2 messages) plus the closing messages, in any one-second window
        room = len(self._sent) + 2 + FINAL_MESSAGES <= MAX_MESSAGES_PER_SECOND
        return room and (self.figure is not None or super().ready(now))

    def _picture(self, state: PanelState, update: bool) -> None:
        super()._picture(state, update)
        self._sent.append(time.monotonic())  # pictures share the front end's message budget with the widget

    def _count(self, messages: int) -> None:
        now = time.monotonic()
        for _ in range(messages):
            self._sent.append(now)
        self.messages += messages

    def update(self, state: PanelState) -> bool:
        if self.figure is None:
            return super().update(state)
        self._widget_update(state)
        return True

    def _widget_update(self, state: PanelState) -> None:
        from ._figure import axis_suffix

        figure, layout = self.figure, self.layout
        new_keys, changed = layout.structure(state.groups)
        if new_keys:
            figure.add_traces([t for key in new_keys for t in (layout.trace(key, False), layout.trace(key, True))])
            self._count(1)
        group_of = layout.group_for_key()
        with figure.batch_update():  # one Plotly.update message for everything below
            if changed or new_keys:
                full = layout.layout(state.progress)
                full.pop("template", None)
                figure.layout.update(full)
            else:
                figure.layout.title.text = _esc(state.progress)
            for index, key in enumerate(layout.keys):
                data = state.curves[key]
                group = group_of[key]
                suffix = axis_suffix(layout.axis_of[group.id])
                for offset, time_axis in ((0, False), (1, True)):
                    trace = figure.data[2 * index + offset]
                    use_time = time_axis or group.time_only
                    trace.x = _f32(data.elapsed if use_time else data.steps)
                    trace.y = _f32(data.values)
                    trace.name = _legend_name(key, data.last)
                    if changed or new_keys:
                        trace.xaxis, trace.yaxis, trace.legend = "x" + suffix, "y" + suffix, "legend" + suffix
        self._count(1)

    def finish(self, state: PanelState, bundle: dict[str, str]) -> None:
        super().finish(state, bundle)
        self.close()

    def close(self) -> None:
        for figure in (self.figure, self._model):
            if figure is not None:
                figure.close()  # frees the model (and its plotly bundle) in the browser
        self.figure = self._model = None


class TextView(_View):
    """Kernels nobody watches live (nbconvert, nbval): a progress line on stderr now and then, then the image.

    Short cells print nothing but the final picture, so their saved outputs stay the same from run to run.
    """

    def __init__(self) -> None:
        super().__init__()
        self._started = time.monotonic()
        self._next = self._started + TEXT_FIRST_LINE_AFTER

    def ready(self, now: float) -> bool:
        return now >= self._next

    def show(self, state: PanelState) -> None:
        pass

    def update(self, state: PanelState) -> bool:
        print(f"[live] {state.progress}", file=sys.stderr, flush=True)
        self._next = time.monotonic() + TEXT_INTERVAL
        self.messages += 1
        return True


class TerminalView(_View):
    """Terminal IPython: a progress line rewritten in place on stderr (when it is a terminal)."""

    def __init__(self) -> None:
        super().__init__()
        self._last = 0.0
        self._width = 0
        stream = sys.__stderr__
        self._tty = bool(stream and hasattr(stream, "isatty") and stream.isatty())

    def ready(self, now: float) -> bool:
        return self._tty and now - self._last >= TERMINAL_INTERVAL

    def _write(self, text: str) -> None:
        stream = sys.__stderr__
        padded = text.ljust(self._width)
        self._width = len(text)
        stream.write("\r" + padded)
        stream.flush()
        self._last = time.monotonic()
        self.messages += 1

    def show(self, state: PanelState) -> None:
        if self._tty:
            self._write(state.progress)

    def update(self, state: PanelState) -> bool:
        self._write(state.progress)
        return True

    def finish(self, state: PanelState, bundle: dict[str, str]) -> None:
        if self._tty and self._width:
            sys.__stderr__.write("\r" + " " * self._width + "\r")
            sys.__stderr__.flush()
        super().finish(state, bundle)


_VIEWS = {"widget": WidgetView, "image": ImageView, "text": TextView, "terminal": TerminalView}


# ---------------------------------------------------------------------- plotly helpers (lazy)
def _esc(text: str) -> str:
    from ._figure import escape

    return escape(text)


def _legend_name(key: str, last: float | None) -> str:
    from ._figure import escape
    from .numbers import format_number

    return f"{escape(key)} {format_number(last)}"


def _f32(array: Any) -> Any:
    import numpy as np

    return np.ascontiguousarray(array, dtype=np.float32)


def _fill(traces: list[dict], keys: list[str], state: PanelState) -> None:
    groups = {k: g for g in state.groups for k in g.keys}
    for index, key in enumerate(keys):
        data = state.curves[key]
        for offset, time_axis in ((0, False), (1, True)):
            use_time = time_axis or groups[key].time_only
            trace = traces[2 * index + offset]
            trace["x"] = _f32(data.elapsed if use_time else data.steps)
            trace["y"] = _f32(data.values)
            trace["name"] = _legend_name(key, data.last)


_FIGURE_CLASS = None


def _figure_class():
    """A FigureWidget that sends each update as one comm message (plotly sends 2-4 per update)."""
    global _FIGURE_CLASS
    with _FIGURE_LOCK:
        if _FIGURE_CLASS is None:
            _FIGURE_CLASS = _make_figure_class()
        return _FIGURE_CLASS


_FIGURE_LOCK = threading.Lock()


def _make_figure_class():
    from ..internals import live_figure_class

    return live_figure_class()
