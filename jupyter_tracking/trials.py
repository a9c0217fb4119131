"""One sweep trial run away from the store: in a worker process, on a Dask worker, or inline in the kernel.

``run_trial(spec, names)`` binds the trial's values over the shipped names, runs the cell's code, captures its
params/metrics/step series like a tracked cell does (``capture.py``) and returns a ``TrialRecord``: plain data
(plus the ``--artifacts`` objects) that the kernel writes as the child run through the one write path
(``parallel.write_trial``). Nothing here opens the store. ``jt.log`` inside the trial goes to a ``StepLog``; with
an Optuna trial, the logged objective metric is reported to the study and a pruned trial stops there. While a
trial runs, its latest step values go to the kernel's sweep table through a progress channel (at most every
``PROGRESS_EVERY`` seconds): a file per trial for local worker processes, a Dask event topic on a cluster, a
plain call in the kernel itself.
"""

from __future__ import annotations

import ast
import builtins
import linecache
import math
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

PRUNED = "PRUNED"
PROGRESS_EVERY = 0.5  # seconds between two progress messages of one trial


@dataclass
class OptunaLink:
    """Where a trial reports intermediate values: the study's storage URL, name and the trial's id."""

    storage: str
    study_name: str
    trial_id: int
    metric: str


@dataclass
class TrialSpec:
    """What a worker needs for one trial (the cell's code is IPython-transformed already)."""

    index: int
    bindings: dict[str, Any]
    code: str
    params: set[str] = field(default_factory=set)
    metrics: set[str] = field(default_factory=set)
    exclude: set[str] = field(default_factory=set)
    artifacts: list[str] = field(default_factory=list)
    optuna: OptunaLink | None = None
    progress: Any = None  # where the running trial's latest step values go (a *Progress channel below)


def progress_message(index: int, latest: dict[str, tuple[int, float]]) -> dict[str, Any]:
    """What a running trial reports: its latest step and each key's latest finite value (JSON-safe)."""
    return {"index": index, "step": max(step for step, _ in latest.values()),
            "values": {key: value for key, (_, value) in latest.items() if math.isfinite(value)}}


class FileProgress:
    """Local worker processes: each trial's latest message in its own small file, replaced whole each time."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def publish(self, message: dict[str, Any]) -> None:
        import json

        if not os.path.isdir(self.folder):  # a worker on another machine: nothing to report to
            return
        path = os.path.join(self.folder, f"trial-{message['index']}.json")
        partial = f"{path}.{os.getpid()}.tmp"
        with open(partial, "w", encoding="utf-8") as handle:
            json.dump(message, handle)
        os.replace(partial, path)

    def read(self, indexes: list[int]) -> dict[int, dict[str, Any]]:
        """The latest message of each of these trials that sent one (the kernel's side: the trials in flight,
        so a long sweep's finished trials are never read again)."""
        import json

        found: dict[int, dict[str, Any]] = {}
        for index in indexes:
            try:
                with open(os.path.join(self.folder, f"trial-{index}.json"), encoding="utf-8") as handle:
                    message = json.load(handle)
            except (OSError, ValueError):
                continue  # none yet, or replaced while read: the next look gets it
            if isinstance(message, dict) and message.get("index") == index:
                found[index] = message
        return found


class DaskProgress:
    """A Dask cluster: messages as events on a topic of the scheduler, which the kernel's client subscribes to."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    def publish(self, message: dict[str, Any]) -> None:
        from distributed import get_worker

        get_worker().log_event(self.topic, message)


class CallProgress:
    """Trials in the kernel itself: the message is handed to a function there (it redraws the table)."""

    def __init__(self, receive: Any) -> None:
        self.receive = receive

    def publish(self, message: dict[str, Any]) -> None:
        self.receive(message)


@dataclass
class TrialRecord:
    """What one trial produced; the kernel writes it as a child run."""

    index: int
    status: str  # FINISHED / FAILED / PRUNED
    started: float  # epoch seconds
    ended: float
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)
    points: list[tuple[str, float, int, int]] = field(default_factory=list)  # jt.log: (key, value, ms, step)
    datasets: list[str] = field(default_factory=list)  # names of DataFrames the cell read (the kernel has them)
    withheld: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    artifacts: dict[str, Any] = field(default_factory=dict)
    traceback: str = ""
    error: str = ""
    worker: str = ""

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def last_values(self) -> dict[str, float]:
        last: dict[str, float] = {}
        for key, value, _, _ in self.points:
            last[key] = value
        return last


class TrialPruned(Exception):
    """Raised inside the trial's code when Optuna's pruner stops it (not a failure)."""


class StepLog:
    """Stands in for the run recorder while a trial runs: keeps ``jt.log`` points; reports the objective to
    Optuna and stops the trial when its pruner says so."""

    status = "RUNNING"

    def __init__(self, link: OptunaLink | None = None, progress: Any = None, index: int = 0) -> None:
        self.points: list[tuple[str, float, int, int]] = []
        self.keys: set[str] = set()
        self.notes: list[str] = []
        self._next: dict[str, int] = {}
        self._link = link
        self._trial: Any = None
        self._progress, self._index = progress, index
        self._latest: dict[str, tuple[int, float]] = {}
        self._sent = 0.0  # time.monotonic() of the last progress message

    def log_step(self, step: int | None, metrics: dict[str, Any], total: int | None = None) -> None:
        wall = int(time.time() * 1000)
        for key, value in metrics.items():
            try:
                number = float(value.item() if hasattr(value, "item") else value)
            except (TypeError, ValueError, AttributeError, OverflowError):
                self.notes.append(f"jt.log({key}=...) is not a number: skipped")
                continue
            at = self._next.get(key, 0) if step is None else int(step)
            self._next[key] = at + 1
            self.points.append((key, number, wall, at))
            self.keys.add(key)
            self._latest[key] = (at, number)
            if self._link is not None and key == self._link.metric and math.isfinite(number):
                self._report(number, at)
        now = time.monotonic()
        if self._progress is not None and self._latest and now - self._sent >= PROGRESS_EVERY:
            self._sent = now
            try:
                self._progress.publish(progress_message(self._index, self._latest))
            except Exception:  # noqa: BLE001 - progress is a view: the trial goes on without it
                self._progress = None

    def _report(self, value: float, step: int) -> None:
        if self._trial is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.load_study(study_name=self._link.study_name, storage=self._link.storage)
            self._trial = optuna.trial.Trial(study, self._link.trial_id)
        self._trial.report(value, step)
        if self._trial.should_prune():
            raise TrialPruned(f"pruned at step {step} ({self._link.metric} = {value:.5g})")


class _Names:
    """The names a sweep's cell reads, shipped once per worker (Dask keeps one copy on each)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values


_shipped: dict[str, Any] = {}  # a loky worker's copy, set once by ``init_worker``


def init_worker(pickled: dict[str, bytes]) -> None:
    """Loky worker initializer: unpickle the shipped names once for all trials this worker runs."""
    import cloudpickle

    _shipped.clear()
    _shipped.update({name: cloudpickle.loads(data) for name, data in pickled.items()})


def run_trial(spec: TrialSpec, names: Any = None) -> TrialRecord:
    """Run one trial over ``names`` (a dict or ``_Names``; None: this worker's shipped copy). Never raises for
    the trial's own errors: they are the record's FAILED status and traceback."""
    from .bound_names import as_names
    from .capture import Capture, CaptureRules, analyze, is_dataframe
    from .session import current_session

    if isinstance(names, _Names):
        names = names.values
    base = _shipped if names is None else names
    namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": "__main__", **as_names(base),
                                 **as_names(spec.bindings)}  # unpickled keys: interned, as in the cell's code
    started = time.time()
    record = TrialRecord(spec.index, "FINISHED", started, started,
                         worker=f"{socket.gethostname()}:{os.getpid()}")
    analysis = analyze(spec.code)
    analysis.read_first |= set(spec.bindings)
    capture = Capture(analysis, CaptureRules(set(spec.params), set(spec.metrics), set(spec.exclude)))
    capture.remember_bound_values(namespace)
    capture.before(namespace)
    log = StepLog(spec.optuna, spec.progress, spec.index)
    session = current_session()
    previous = (session.active_recorder, session.active_thread)
    session.active_recorder, session.active_thread = log, threading.get_ident()
    last_value = None
    failure: BaseException | None = None
    try:
        body, last = _compile(spec.code, spec.index)
        exec(body, namespace)  # noqa: S102 - running the user's cell is the point
        if last is not None:
            last_value = eval(last, namespace)  # noqa: S307
    except TrialPruned as pruned:
        record.status, record.error = PRUNED, str(pruned)
    except Exception as error:  # noqa: BLE001 - the trial's own failure is its record
        failure = error
        record.status = "FAILED"
        record.error = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        frames = error.__traceback__.tb_next if error.__traceback__ is not None else None  # from the cell on
        record.traceback = "".join(traceback.format_exception(type(error), error, frames))
    finally:
        session.active_recorder, session.active_thread = previous
    stale = capture.stale_names(namespace) if failure is not None else set()
    skip = stale | set(spec.artifacts)  # objects shipped as --artifacts are not captured again as metrics
    capture.after(namespace, last_value if failure is None else None, logged_keys=log.keys, skip=skip)
    result = capture.result
    record.ended = time.time()
    record.params, record.metrics, record.series = result.params, result.metrics, result.series
    record.points, record.notes = log.points, [*result.notes, *log.notes]
    record.withheld = set(result.withheld)
    record.datasets = [name for name, value in result.datasets.items() if is_dataframe(value)]
    for name in spec.artifacts:
        if name in namespace:
            try:
                import cloudpickle

                cloudpickle.dumps(namespace[name])
            except Exception as error:  # noqa: BLE001 - it could not come back to the kernel
                record.notes.append(f"--artifacts: `{name}` cannot be sent back from the worker "
                                    f"({type(error).__name__}); not logged")
                continue
            record.artifacts[name] = namespace[name]
    return record


def _compile(code: str, index: int) -> tuple[Any, Any]:
    """Compile the cell, its last expression apart (its value can be a metric); tracebacks show its lines."""
    filename = f"<sweep cell, trial {index + 1}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    tree = ast.parse(code, filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    body = compile(tree, filename, "exec", dont_inherit=True)
    return body, compile(last, filename, "eval", dont_inherit=True) if last is not None else None
