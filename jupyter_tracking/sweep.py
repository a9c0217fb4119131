"""Many tracked executions of one cell: ``%%track --grid EXPR`` sweeps and ``%track rerun RUN_ID``.

A sweep is one parent run (it records the grid and, as a tag, its best child) and one child run per
combination, each a normal tracked execution (``cell.run_tracked_cell``) with the combination's names bound.
A table under the cell fills in as combinations finish, with progress and ETA. A failing combination is
marked FAILED and the sweep goes on (unless ``stop_on_error``); an interrupt marks the running child and the
parent KILLED, keeps the finished children and re-raises. The parent never copies the children's metrics.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from . import queries
from .panels.card import BAD, MUTED, STATUS_COLOURS
from .secret_filter import redact_source

GRID_TAG = queries.GRID_TAG
BEST_CHILD_TAG = queries.BEST_CHILD_TAG
BEST_METRIC_TAG = "jupyter_tracking.best_metric"
SWEEP_TAG = "jupyter_tracking.sweep"
COMBINATION_TAG = "jupyter_tracking.grid_index"
MAX_COMBINATIONS = 10_000


class GridError(ValueError):
    """The grid expression is not a dict of non-empty lists keyed by variable names; one line."""


def parse_grid(value: Any) -> dict[str, list]:
    """Check and normalise a grid: ``{"max_depth": [2, 4], "min_leaf": range(1, 4)}`` -> dict of lists."""
    if not isinstance(value, Mapping):
        raise GridError(f"--grid must evaluate to a dict of lists, got {type(value).__name__}")
    if not value:
        raise GridError("--grid is an empty dict: nothing to run")
    grid: dict[str, list] = {}
    for key, values in value.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise GridError(f"--grid key {key!r} is not a variable name")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise GridError(f"--grid value for {key!r} must be a list of values, got {type(values).__name__}")
        values = list(values)
        if not values:
            raise GridError(f"--grid value for {key!r} is empty: nothing to run")
        grid[key] = values
    count = math.prod(len(v) for v in grid.values())
    if count > MAX_COMBINATIONS:
        raise GridError(f"--grid has {count} combinations (more than {MAX_COMBINATIONS}); narrow it down")
    return grid


def combinations(grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination, in ``itertools.product`` order (the last key varies fastest)."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def parse_best_by(text: str | None, experiment: str | None = None) -> tuple[str, str] | None:
    """``val_loss`` / ``test_acc:max`` -> (metric, "min"|"max"). Without ``:min``/``:max`` the metric's goal
    decides (``goals.metric_goal`` with the overrides of ``experiment``, default the session's); GridError
    (one line) when it is unknown.
    """
    if not text:
        return None
    from .goals import describe_unknown, metric_goal

    metric, _, mode = text.rpartition(":") if ":" in text else (text, "", "")
    metric, mode = metric.strip().removeprefix("metrics."), mode.strip().lower()
    if not metric or mode not in ("", "min", "max"):
        raise GridError(f"--best-by expects METRIC or METRIC:min / METRIC:max, got {text!r}")
    if not mode:
        from .store import default_experiment_name, resolve_store

        mode = metric_goal(metric, goal_overrides(resolve_store(), experiment or default_experiment_name()))
        if mode is None:
            raise GridError(describe_unknown(metric, f"write --best-by {metric}:max or {metric}:min"))
    return metric, mode


def goal_overrides(location: Any, experiment: str) -> dict[str, str]:
    """The experiment's goal overrides (``%track config --goal``); {} when the store cannot say."""
    from .goals import overrides_for

    try:
        return overrides_for(location, experiment)
    except Exception:  # noqa: BLE001 - a store that fails here fails (and spools) the sweep itself next
        return {}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    try:
        return value.item()  # numpy scalars
    except Exception:  # noqa: BLE001
        return repr(value)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# ---------------------------------------------------------------------------------------------- table


@dataclass
class Row:
    index: int
    bindings: dict[str, Any]
    status: str = "QUEUED"
    run_id: str | None = None
    seconds: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    started: float | None = None  # time.monotonic() when sent to a worker
    overhead: float | None = None  # seconds around the trial's own time: shipping, polling, recording
    recorded: float | None = None  # seconds the kernel took to write the trial's child run
    step: int | None = None  # while it runs on an engine that streams: its latest jt.log step
    live: dict[str, float] = field(default_factory=dict)  # ... and each key's latest value


@dataclass
class SweepState:
    """Everything the live table shows; ``to_html``/``to_text`` render it (every value escaped)."""

    grid: dict[str, list]
    rows: list[Row]
    started: float = field(default_factory=time.monotonic)
    parent_run_id: str | None = None
    objective: tuple[str, str | None] | None = None  # (metric, goal); goal None: unknown, no best row
    best_index: int | None = None
    status: str = "RUNNING"
    finished_at: float | None = None
    workers: int = 1  # trials run at once
    planned: int | None = None  # an Optuna search adds rows as it asks for trials: how many it will ask
    kind: str = "grid"
    where: str = ""  # where the trials run ("2 local worker processes"), shown in the progress line

    @property
    def done(self) -> list[Row]:
        return [r for r in self.rows if r.status in ("FINISHED", "FAILED", "KILLED", "PRUNED")]

    @property
    def total(self) -> int:
        return max(self.planned or 0, len(self.rows))

    def eta_seconds(self) -> float | None:
        timed = [r.seconds for r in self.rows if r.seconds is not None and r.status != "KILLED"]
        remaining = self.total - len(self.done)
        if not timed or not remaining or self.status != "RUNNING":
            return None
        return sum(timed) / len(timed) * math.ceil(remaining / max(1, self.workers))

    def progress_line(self) -> str:
        total = self.total
        done = len(self.done)
        failed = sum(1 for r in self.rows if r.status == "FAILED")
        pruned = sum(1 for r in self.rows if r.status == "PRUNED")
        elapsed = (self.finished_at or time.monotonic()) - self.started
        parts = [f"{done}/{total} done"]
        if failed:
            parts.append(f"{failed} failed")
        if pruned:
            parts.append(f"{pruned} pruned")
        if self.where:
            parts.append(self.where)
        parts.append(f"elapsed {_duration(elapsed)}")
        eta = self.eta_seconds()
        if eta is not None:
            parts.append(f"ETA {_duration(eta)}")
        if self.status != "RUNNING":
            parts.append(f"sweep {self.status}")
        if self.best_index is not None and self.objective:
            best = self.rows[self.best_index]
            value = best.metrics.get(self.objective[0])
            parts.append(f"best #{best.index + 1}: {self.objective[0]} = {value:.5g}")
        return " \u00b7 ".join(parts)

    def metric_keys(self) -> list[str]:
        keys: list[str] = []
        if self.objective:
            keys.append(self.objective[0])
        for row in self.rows:
            for key in [*row.metrics, *row.live]:
                if key not in keys:
                    keys.append(key)
        return keys[:6]

    def shown(self, row: Row) -> tuple[str, dict[str, float]]:
        """A row's time cell and metric values: a running trial's latest step and values while it streams them."""
        if row.status == "RUNNING" and row.step is not None:
            return f"step {row.step}", row.live
        return (_duration(row.seconds) if row.seconds is not None else ""), row.metrics

    def apply_progress(self, messages: dict[int, dict[str, Any]]) -> bool:
        """Running trials' latest messages onto their rows; True when something changed."""
        changed = False
        for row in self.rows:
            message = messages.get(row.index)
            if row.status != "RUNNING" or not message:
                continue
            try:
                step = int(message["step"])
                live = {str(k): float(v) for k, v in message["values"].items()}
            except (KeyError, TypeError, ValueError):
                continue
            if (step, live) != (row.step, row.live):
                row.step, row.live, changed = step, live, True
        return changed

    def to_text(self) -> str:
        keys = list(self.grid)
        metrics = self.metric_keys()
        lines = [f"{self.kind} sweep: {self.progress_line()}"]
        errors = any(row.error for row in self.rows)
        header = ["#", *keys, "status", "time", *metrics, *(["error"] if errors else [])]
        table = [header]
        for row in self.rows:
            when, values = self.shown(row)
            table.append([str(row.index + 1), *(_short(row.bindings[k]) for k in keys), row.status, when,
                          *(f"{values[m]:.5g}" if m in values else "" for m in metrics),
                          *([row.error] if errors else [])])
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        lines.extend("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table)
        return "\n".join(lines)

    def to_html(self) -> str:
        e = html.escape
        keys = list(self.grid)
        metrics = self.metric_keys()
        total = self.total
        done = len(self.done)
        errors = any(row.error for row in self.rows)
        head = "".join(f"<th>{e(h)}</th>" for h in ["#", *keys, "status", "time", *metrics, *(["error"] if errors else [])])
        body = []
        # The run card's theme colours (``--jp-*`` variables with light fallbacks for nbconvert and GitHub).
        colors = {**STATUS_COLOURS, "FINISHED": "inherit", "QUEUED": MUTED, "PRUNED": MUTED}
        for i, row in enumerate(self.rows):
            best = ' style="background:rgba(46,160,67,0.15);font-weight:600"' if i == self.best_index else ""
            color = colors.get(row.status, "inherit")
            cells = [str(row.index + 1), *(_short(row.bindings[k]) for k in keys)]
            html_cells = "".join(f"<td>{e(c)}</td>" for c in cells)
            html_cells += f'<td style="color:{color}">{e(row.status)}</td>'
            when, values = self.shown(row)
            live = ";opacity:0.75" if values is row.live else ""  # a running trial's values so far
            html_cells += f"<td>{e(when)}</td>"
            html_cells += "".join(
                f'<td style="text-align:right{live}">{e(f"{values[m]:.5g}") if m in values else ""}</td>'
                for m in metrics)
            if errors:
                html_cells += f'<td style="color:{BAD}">{e(row.error)}</td>'
            run = f' data-run-id="{e(row.run_id)}"' if row.run_id else ""
            body.append(f'<tr class="jt-sweep-row" data-status="{e(row.status)}"{run}{best}>{html_cells}</tr>')
        parent = f" parent run {e(self.parent_run_id)}" if self.parent_run_id else ""
        return (
            f'<div class="jt-sweep" data-done="{done}" data-total="{total}" data-status="{e(self.status)}" '
            f'style="font-size:12px">'
            f'<div class="jt-sweep-progress"><progress max="{total}" value="{done}"></progress> '
            f'{e(self.progress_line())}<span style="color:{MUTED}">{parent}</span></div>'
            f'<table class="jt-sweep-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
        )

    def bundle(self) -> dict[str, str]:
        return {"text/plain": self.to_text(), "text/html": self.to_html()}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class _LiveTable:
    """The table under the cell. Where a notebook front end shows it, one display updated in place; in a
    terminal (or with no front end), one progress line per finished combination and the table at the end.
    """

    def __init__(self, state: SweepState, enabled: bool) -> None:
        from .context import frontend

        self.state = state
        self.handle = None
        self.enabled = enabled
        self.in_place = frontend() in ("jupyter", "vscode", "colab")
        self._reported: set[int] = set()
        self._lock = threading.Lock()
        if enabled and self.in_place:
            from IPython.display import display

            self.handle = display(state.bundle(), raw=True, display_id=True)

    def update(self, force: bool = False) -> None:
        if not self.enabled:
            return
        if self.handle is not None:
            try:
                with self._lock:  # the sequential grid's step watcher updates from its thread
                    self.handle.update(self.state.bundle(), raw=True)
            except Exception:  # noqa: BLE001 - the table is a view; the sweep goes on
                pass
            return
        for row in self.state.done:
            if row.index not in self._reported:
                self._reported.add(row.index)
                values = ", ".join(f"{k}={_short(v, 20)}" for k, v in row.bindings.items())
                print(f"[{len(self._reported)}/{len(self.state.rows)}] {values}: {row.status}", file=sys.stderr)

    def close(self) -> None:
        """Final state: the in-place display is already up to date; elsewhere print the whole table once."""
        if self.enabled and self.handle is None:
            print(self.state.to_text())


class _StepWatcher:
    """The sequential grid's running combination streams like a parallel trial: a thread looks at its run's step
    series (``recorder.series``, which the live panel reads too) every ``PROGRESS_EVERY`` seconds and puts the
    latest step and values on its row. Only where the table updates in place."""

    def __init__(self, state: SweepState, table: _LiveTable) -> None:
        from .trials import PROGRESS_EVERY

        self.state, self.table, self.every = state, table, PROGRESS_EVERY
        self._current: tuple[Row, Any] | None = None
        self._stop = threading.Event()
        self._thread = None
        if table.handle is not None:
            self._thread = threading.Thread(target=self._loop, name="jt-sweep-steps", daemon=True)
            self._thread.start()

    def watch(self, row: Row | None, tracked: Any = None) -> None:
        self._current = (row, tracked) if row is not None else None

    def _loop(self) -> None:
        from .trials import progress_message

        while not self._stop.wait(self.every):
            current = self._current
            execution = getattr(current[1], "execution", None) if current else None  # TrackedCell's run
            series = getattr(getattr(execution, "recorder", None), "series", None)
            if series is None:
                continue
            latest = series.latest()
            if latest and self.state.apply_progress({current[0].index: progress_message(current[0].index, latest)}):
                self.table.update(force=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)


# ---------------------------------------------------------------------------------------------- the sweep


def _objective_value(row: Row, objective: tuple[str, str | None] | None) -> float | None:
    if not objective or objective[1] is None or row.status != "FINISHED":
        return None
    value = row.metrics.get(objective[0])
    if value is None or not math.isfinite(value):
        return None
    return value


def _best_index(state: SweepState) -> int | None:
    objective = state.objective
    best, best_value = None, None
    for i, row in enumerate(state.rows):
        value = _objective_value(row, objective)
        if value is None:
            continue
        if best_value is None or (value < best_value if objective[1] == "min" else value > best_value):
            best, best_value = i, value
    return best


@dataclass
class _Parent:
    """A sweep's parent run and what its children share."""

    recorder: Any
    location: Any
    experiment: str
    git: Any
    notebook: Any
    overrides: dict[str, str]


def _open_parent(source: str, options: Any, session: Any, tags: dict[str, str], best_by: Any) -> _Parent:
    from pathlib import Path

    from . import context as context_module
    from . import store as store_module
    from .cell import context_tags
    from .recorder import RunRecorder

    location = store_module.resolve_store(session=session)
    experiment = options.experiment or store_module.default_experiment_name(session)
    notebook = context_module.notebook_path()
    git = context_module.GitProbe(notebook.parent if notebook else Path.cwd())
    overrides = goal_overrides(location, experiment) if best_by is None else {}
    parent_tags = {**context_tags(source, options.name, location, notebook, session),
                   **options.tags, **tags}  # the recorder withholds credential-like tags
    parent = RunRecorder(location, experiment, session=session, run_name=options.name, tags=parent_tags,
                         description=options.note, make_active=False)
    parent.start()
    parent.add_text_artifact(redact_source(source), "cell", "cell.py")
    return _Parent(parent, location, experiment, git, notebook, overrides)


def _not_run(state: SweepState, table: _LiveTable) -> None:
    """The table's last word when the sweep could not start (no parent run): nothing ran."""
    state.status, state.finished_at = "NOT RUN", time.monotonic()
    for row in state.rows:
        if row.status in ("QUEUED", "RUNNING"):
            row.status = "NOT RUN"
    table.update(force=True)


def _close_table(table: Any) -> None:
    """The sweep table's last state, then it stops updating."""
    table.update(force=True)
    table.close()


def _outcome(state: SweepState, interrupted: BaseException | None, stop_error: BaseException | None) -> SweepState:
    """What a finished sweep gives the cell: the interrupt or the stopping error raised again, else its state."""
    if interrupted is not None:
        raise interrupted
    if stop_error is not None:
        raise stop_error
    return state


def _close_parent(parent: _Parent, state: SweepState, interrupted: BaseException | None,
                  stop_error: BaseException | None, tags: dict[str, str] | None = None) -> None:
    """Mark what did not finish, pick the best child, tag and close the parent run. Never raises."""
    from .cell import git_tags
    from .recorder import FAILED, FINISHED, KILLED

    for row in state.rows:
        if row.status in ("QUEUED", "RUNNING"):
            row.status = "NOT RUN" if row.status == "QUEUED" else "KILLED"
    state.best_index = _best_index(state)
    finished = [r for r in state.rows if r.status in ("FINISHED", "PRUNED")]
    if interrupted is not None:
        state.status = KILLED
    elif stop_error is not None or not finished:
        state.status = FAILED
    else:
        state.status = FINISHED
    tags = dict(tags or {})
    if state.best_index is not None and state.objective:
        best = state.rows[state.best_index]
        tags[BEST_CHILD_TAG] = best.run_id or ""
        tags[BEST_METRIC_TAG] = f"{state.objective[0]}:{state.objective[1]}"
    elif state.objective and state.objective[1] is None:
        from .goals import describe_unknown

        metric = state.objective[0]
        print(f"jupyter_tracking: no best child picked: "
              f"{describe_unknown(metric, f'use --best-by {metric}:max or {metric}:min')}", file=sys.stderr)
    failed = sum(1 for r in state.rows if r.status == "FAILED")
    pruned = sum(1 for r in state.rows if r.status == "PRUNED")
    done = len([r for r in state.rows if r.status == "FINISHED"])
    summary = f"{done} finished, {failed} failed, {state.total - done - failed - pruned} not finished"
    tags["jupyter_tracking.grid_summary"] = summary + (f", {pruned} pruned" if pruned else "")
    try:
        parent.recorder.set_tags({**tags, **git_tags(parent.git.result())})
    finally:
        parent.recorder.finish(state.status)
        state.finished_at = time.monotonic()


def run_grid(
    shell: Any,
    source: str,
    options: Any,
    grid: dict[str, list],
    *,
    stop_on_error: bool = False,
    best_by: tuple[str, str] | None = None,
    show: bool = True,
    child_tags_exclude: set[str] | None = None,
    engine: Any = None,
) -> SweepState:
    """Run ``source`` once per combination of ``grid`` as child runs of one parent run; returns the final state.

    ``options`` are the cell's ``TrackOptions``: the parent takes its name, experiment, tags and note; each
    child runs with the same options (no card or live panel of its own: the table is the view). ``engine``
    (``parallel.EngineChoice``): the trials run in worker processes or on a Dask cluster (``run_trials``).
    """
    from .cell import TrackedCell
    from .session import current_session

    session = current_session()
    grid = parse_grid(grid)
    state = SweepState(grid, [Row(i, combo) for i, combo in enumerate(combinations(grid))], objective=best_by)
    grid_tags = {SWEEP_TAG: "grid", GRID_TAG: json.dumps(_jsonable(grid), separators=(",", ":"))}
    if engine is not None and engine.parallel:
        return run_trials(shell, source, options, state, GridTrials(state), engine, parent_tags=grid_tags,
                          stop_on_error=stop_on_error, show=show, child_tags_exclude=child_tags_exclude)
    table = _LiveTable(state, show)  # on screen before the parent run is created (the store may be slow)
    try:
        parent = _open_parent(source, options, session, grid_tags, best_by)
    except BaseException:
        _not_run(state, table)
        raise
    state.parent_run_id = parent.recorder.run_id
    watcher = _StepWatcher(state, table)
    child_options = replace(options, card=False, live=False, note=None,
                            tags={k: v for k, v in options.tags.items() if k not in (child_tags_exclude or ())})
    interrupted: BaseException | None = None
    stop_error: BaseException | None = None
    outputs = _outputs_of(shell, source, grid)
    try:
        for row in state.rows:
            if row.index:
                # Names the cell binds (without reading them first) are the previous combination's results:
                # drop them, so a combination that fails before binding them does not record stale values.
                for name in outputs:
                    shell.user_ns.pop(name, None)
            row.status = "RUNNING"
            table.update(force=True)
            started = time.monotonic()
            name = _trial_name(row.bindings)
            child = replace(child_options, name=f"{options.name} [{name}]" if options.name else name)
            tracked = TrackedCell(
                shell, source, child, bindings=dict(row.bindings), parent_run_id=parent.recorder.run_id,
                extra_tags={COMBINATION_TAG: str(row.index), SWEEP_TAG: "child"}, session=session,
                end_later=False,  # the sweep reads its children back before the cell returns
            )
            watcher.watch(row, tracked)
            try:
                summary = tracked.run()
            except KeyboardInterrupt as error:
                row.status, row.seconds = "KILLED", time.monotonic() - started
                row.run_id = tracked.run_id
                interrupted = error
                break
            except Exception as error:  # noqa: BLE001 - a failing combination is recorded, the sweep goes on
                row.status, row.seconds = "FAILED", time.monotonic() - started
                row.error = f"{type(error).__name__}: {queries.one_line(error)}"[:200]
                row.run_id = tracked.run_id
                print(f"jupyter_tracking: combination {row.index + 1} ({name}) failed: {row.error}",
                      file=sys.stderr)
                if stop_on_error:
                    stop_error = error
                    break
                table.update(force=True)
                continue
            row.seconds = time.monotonic() - started
            row.status = summary.status if summary is not None else "FINISHED"
            if summary is not None:
                row.run_id = summary.run_id
                row.metrics = {**summary.last_step_values, **summary.metrics}
            if state.objective is None and row.metrics:
                state.objective = queries.guess_objective(sorted(row.metrics), parent.overrides)
            state.best_index = _best_index(state)
            table.update(force=True)
    except KeyboardInterrupt as error:  # between two combinations
        interrupted = error
    finally:
        watcher.close()
        _close_parent(parent, state, interrupted, stop_error)
        _close_table(table)
    return _outcome(state, interrupted, stop_error)


def _trial_name(bindings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v, 20)}" for k, v in bindings.items())


class GridTrials:
    """The combinations of a grid, handed out in order to free workers."""

    ask_ahead = True  # the next combination does not depend on results: it may wait in a worker's queue

    def __init__(self, state: SweepState) -> None:
        self._rows = iter(state.rows)

    def next_row(self) -> Row | None:
        return next(self._rows, None)

    def link(self, row: Row) -> Any:
        return None

    def child_tags(self, row: Row) -> dict[str, str]:
        return {}

    def finished(self, row: Row, record: Any) -> None:
        pass

    def close(self, state: SweepState) -> dict[str, str]:
        return {}


def run_trials(shell: Any, source: str, options: Any, state: SweepState, trials: Any, choice: Any, *,
               parent_tags: dict[str, str], stop_on_error: bool = False, show: bool = True,
               child_tags_exclude: set[str] | None = None) -> SweepState:
    """The trials of a grid or a search on an engine (``parallel.make_engine``): as many in flight as there are
    workers; each record that comes back is written as a child run, in the order they finish."""
    from .cell import context_tags
    from .parallel import ENGINE_TAG, TrialWriter, lost_record, make_engine
    from .session import current_session
    from .trials import PROGRESS_EVERY, TrialSpec

    session = current_session()
    code = shell.transform_cell(source)
    bound_names = set(state.grid)
    engine = make_engine(choice, shell.user_ns, code, bound_names)  # before anything starts: names checked
    state.workers, state.where = engine.workers, engine.label
    if choice is not None and choice.parallel:
        parent_tags = {**parent_tags, ENGINE_TAG: choice.to_tag()}
    in_flight: dict[Any, Row] = {}
    interrupted: BaseException | None = None
    stop_error: BaseException | None = None
    stopping = False
    # A grid's next trials wait in the workers' queue (one more per worker), so a worker that finishes starts
    # its next trial at once rather than after the kernel has seen the result and sent another: a round trip
    # per trial. A search asks Optuna only when a worker is free (its next values depend on the results).
    ahead = engine.workers if engine.in_background and getattr(trials, "ask_ahead", False) else 0

    def fill() -> None:
        while not stopping and len(in_flight) < engine.workers + ahead:
            row = trials.next_row()
            if row is None:
                return
            spec = TrialSpec(row.index, dict(row.bindings), code, set(options.params), set(options.metrics),
                             set(options.exclude), list(options.artifacts), optuna=trials.link(row),
                             progress=engine.channel)
            running = sum(1 for r in in_flight.values() if r.status == "RUNNING")
            row.status = "RUNNING" if running < engine.workers else "QUEUED"
            row.started = time.monotonic() if row.status == "RUNNING" else None
            in_flight[engine.submit(spec)] = row

    def promote() -> None:
        """Queued trials take the places of finished ones, first sent first (the workers' queue is in order)."""
        free = engine.workers - sum(1 for r in in_flight.values() if r.status == "RUNNING")
        for row in sorted((r for r in in_flight.values() if r.status == "QUEUED"), key=lambda r: r.index)[:free]:
            row.status, row.started = "RUNNING", time.monotonic()

    table = _LiveTable(state, show)  # on screen before the workers and the parent run are started
    try:
        if engine.in_background:
            fill()  # the workers start (and run the first trials) while the parent run is opened
        parent = _open_parent(source, options, session, parent_tags, state.objective)
    except BaseException:
        try:
            engine.cancel(list(in_flight))
        finally:
            engine.close(kill=True)
            for row in in_flight.values():
                row.status = "NOT RUN"
                trials.finished(row, None)
            _not_run(state, table)
        raise
    state.parent_run_id = parent.recorder.run_id
    try:  # as after a sequential grid (its children are MLflow's active runs in turn): plain mlflow finds the sweep
        from .store import point_mlflow_at

        point_mlflow_at(parent.location.uri)
    except Exception:  # noqa: BLE001 - a convenience; the sweep does not need it
        pass
    child_tags = {k: v for k, v in options.tags.items() if k not in (child_tags_exclude or ())}
    base_tags = {**context_tags(source, options.name, parent.location, parent.notebook, session), **child_tags,
                 SWEEP_TAG: "child"}
    writer = TrialWriter(source, options, parent.recorder.run_id, shell.user_ns, session, parent.location,
                         parent.experiment, base_tags)

    def child_name(row: Row) -> str:
        name = _trial_name(row.bindings)
        return f"{options.name} [{name}]" if options.name else name

    def tags_of(row: Row) -> dict[str, str]:
        return {COMBINATION_TAG: str(row.index), **trials.child_tags(row)}

    def streamed(messages: dict[int, dict[str, Any]]) -> None:
        if state.apply_progress(messages):
            table.update(force=True)

    if not engine.in_background:
        engine.on_progress = streamed  # a trial in the kernel tells as it logs; the others are looked at below
    looked = time.monotonic()
    try:
        fill()
        table.update(force=True)
        while in_flight:
            # Blocks until a trial is done or it is time to look at the running ones' progress (the kernel takes
            # no CPU from the workers meanwhile).
            done = engine.wait(list(in_flight), max(0.0, PROGRESS_EVERY - (time.monotonic() - looked)))
            if not done:
                looked = time.monotonic()
                streamed(engine.progress([row.index for row in in_flight.values()]))
                continue
            finished = set(done)
            done = [future for future in in_flight if future in finished]  # in the order they were sent
            records = []
            for future in done:
                row = in_flight.pop(future)
                try:
                    records.append((row, engine.result(future)))
                except Exception as error:  # noqa: BLE001 - the worker died or the result could not come back
                    began = row.started if row.started is not None else time.monotonic()
                    records.append((row, lost_record(row.index, time.time() - (time.monotonic() - began), error)))
            promote()
            if engine.in_background and not (stop_on_error and any(r.status == "FAILED" for _, r in records)):
                fill()  # the free workers start their next trials before the finished ones are written
            for row, record in records:
                began = time.monotonic()
                summary = writer.write(record, child_name(row), tags_of(row))
                row.recorded = time.monotonic() - began
                row.seconds, row.error = record.seconds, record.error[:200]
                row.status = record.status
                if row.started is not None:  # shipping, waiting to be seen, recording
                    row.overhead = max(0.0, time.monotonic() - row.started - record.seconds)
                if summary is not None:
                    row.run_id = summary.run_id
                    row.metrics = {**summary.last_step_values, **summary.metrics}
                trials.finished(row, record)
                if record.status == "FAILED":
                    print(f"jupyter_tracking: trial {row.index + 1} ({_trial_name(row.bindings)}) failed: "
                          f"{row.error}", file=sys.stderr)
                    if stop_on_error and stop_error is None:
                        stop_error, stopping = RuntimeError(f"trial {row.index + 1} failed: {row.error}"), True
                if state.objective is None and row.metrics:
                    state.objective = queries.guess_objective(sorted(row.metrics), parent.overrides)
                state.best_index = _best_index(state)
            if stopping:
                break  # --stop-on-error: the trials still running are cancelled (KILLED) below
            fill()
            table.update(force=True)
    except KeyboardInterrupt as error:
        interrupted = error
    finally:
        killed = [row for row in state.rows if row.status == "RUNNING"]
        try:
            engine.cancel(list(in_flight))
        finally:
            engine.close(kill=bool(in_flight) or interrupted is not None)
        for row in killed:
            row.status = "KILLED"
            row.seconds = time.monotonic() - row.started if row.started else None
            started = time.time() - (row.seconds or 0.0)
            summary = writer.write_killed(row.bindings, child_name(row), tags_of(row), started)
            row.run_id = summary.run_id if summary is not None else None
            trials.finished(row, None)
        _close_parent(parent, state, interrupted, stop_error, trials.close(state))
        _close_table(table)
    return _outcome(state, interrupted, stop_error)


def _outputs_of(shell: Any, source: str, grid: dict[str, list]) -> set[str]:
    """Names the cell binds at top level without reading them first (its results), minus the grid's names."""
    from .capture import analyze

    try:
        analysis = analyze(shell.transform_cell(source))
    except Exception:  # noqa: BLE001 - a syntax error shows when the cell runs
        return set()
    return {n for n in analysis.bound - analysis.read_first - set(grid) if not n.startswith("__")}


# ---------------------------------------------------------------------------------------------- rerun


def rerun(shell: Any, run_id: str, *, show: bool = True):
    """Run a logged cell again with its params bound: a new run tagged ``rerun_of``; a sweep's parent reruns
    the whole grid, a search's parent a new search over its space. Returns the new run's summary (or the sweep state). QueryError if the code was not logged.
    """
    from .cell import TrackOptions, run_tracked_cell
    from .store import client_for

    run = queries.get_run(run_id)
    source = queries.cell_source(run.info.run_id)
    if source is None:
        raise queries.QueryError(f"Run {run.info.run_id} has no logged cell code (cell/cell.py); cannot rerun it.")
    location = queries.location_or_default()
    experiment = client_for(location).get_experiment(run.info.experiment_id).name
    name = f"{run.info.run_name}-rerun" if run.info.run_name else None
    options = TrackOptions(name=name, experiment=experiment, artifacts=queries.artifact_names(run.info.run_id))
    from .parallel import ENGINE_TAG, EngineChoice

    engine = EngineChoice.from_tag(run.data.tags.get(ENGINE_TAG))  # where its trials ran: there again
    if run.data.tags.get(SWEEP_TAG) == "search":
        from .search import rerun_search

        options.tags = {queries.RERUN_TAG: run.info.run_id}
        return rerun_search(shell, source, options, run, show=show, engine=engine)
    grid = queries.grid_of(run)
    if grid is not None:
        best_by = run.data.tags.get(BEST_METRIC_TAG)
        options.tags = {queries.RERUN_TAG: run.info.run_id}
        return run_grid(shell, source, options, grid, best_by=parse_best_by(best_by) if best_by else None,
                        show=show, child_tags_exclude={queries.RERUN_TAG}, engine=engine)
    from .reuse import bindable

    bindings = bindable(queries.restore(run.info.run_id), shell.user_ns)[0]  # never shadows builtins or code
    return run_tracked_cell(shell, source, options, bindings=bindings,
                            extra_tags={queries.RERUN_TAG: run.info.run_id})


def grid_from_expression(shell: Any, expression: str) -> dict[str, list]:
    """Evaluate ``--grid EXPR`` in the user namespace and check it; GridError (one line) on any problem."""
    try:
        value = shell.ev(expression)
    except Exception as error:  # noqa: BLE001 - the user's expression
        raise GridError(f"--grid {expression!r} could not be evaluated: {type(error).__name__}: {error}") from None
    return parse_grid(value)
