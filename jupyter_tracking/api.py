"""The Python API behind the magics: ``track``, ``configure``, ``status``, ``sync`` (and re-exports).

``with jt.track(...) as run:`` tracks the body of the with-block by the same rules as a ``%%track`` cell:
its source is read back from the notebook cell (or script) that holds it, so params, metrics and step series
are found the same way.
"""

from __future__ import annotations

import ast
import linecache
import sys
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import store as store_module
from .cell import TrackedExecution, TrackOptions
from .recorder import FAILED, FINISHED, KILLED, RunSummary


class track:  # noqa: N801 - used like a function: `with jt.track("name"):`
    """Track the body of a with-block as one MLflow run (the same capture as ``%%track``).

    ``params`` is a list of names to force as params, or a dict of param values to log as given.
    ``metrics``/``exclude`` are lists of names; ``tags`` a dict; ``note`` the run description;
    ``artifacts`` names of variables to pickle into the run. The handle has ``run_id``, ``run_name``,
    ``log(step=None, **metrics)`` and, after the block, ``summary``.
    """

    def __init__(
        self,
        name: str | None = None,
        experiment: str | None = None,
        *,
        params: Iterable[str] | Mapping[str, Any] | None = None,
        metrics: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        tags: Mapping[str, Any] | None = None,
        note: str | None = None,
        artifacts: Iterable[str] | None = None,
        autolog: bool = False,
        live: bool = True,
        steps: int | None = None,
        system: bool = False,
        card: bool = True,
    ) -> None:
        if experiment is not None and not str(experiment).strip():
            raise ValueError("jt.track(experiment=...) needs a name (got an empty one); None uses the default")
        explicit = dict(params) if isinstance(params, Mapping) else {}
        forced = set() if isinstance(params, Mapping) or params is None else set(_names(params))
        self.options = TrackOptions(
            name=name, experiment=experiment, params=forced, metrics=set(_names(metrics)),
            exclude=set(_names(exclude)), tags={str(k): str(v) for k, v in (tags or {}).items()}, note=note,
            artifacts=list(_names(artifacts)), autolog=autolog, live=live, steps=steps, system=system, card=card,
        )
        self._explicit = explicit
        self._execution: TrackedExecution | None = None
        self._frame = None
        self.summary: RunSummary | None = None

    def __enter__(self) -> track:
        frame = sys._getframe(1)
        self._frame = frame
        source = _with_block_source(frame) or ""
        self._execution = TrackedExecution(
            source, self.options, namespace=_namespace(frame), explicit_params=self._explicit,
        )
        self._execution.begin_or_abort()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            status = FINISHED
        elif isinstance(exc, KeyboardInterrupt):
            status = KILLED
        elif isinstance(exc, SystemExit) and exc.code in (None, 0):
            status = FINISHED
        else:
            status = FAILED
        execution = self._execution
        if execution is not None and self._frame is not None:
            execution.namespace = _namespace(self._frame)  # a function's locals are a fresh snapshot
        self._frame = None
        if execution is not None:
            self.summary = execution.end(status, exc)
        return False  # the exception, if any, goes on unchanged

    @property
    def run_id(self) -> str | None:
        recorder = self._execution.recorder if self._execution else None
        return recorder.run_id if recorder else (self.summary.run_id if self.summary else None)

    @property
    def run_name(self) -> str | None:
        recorder = self._execution.recorder if self._execution else None
        return recorder.run_name if recorder else None

    def log(self, step: int | None = None, total: int | None = None, **metrics: Any) -> None:
        """Same as ``jt.log`` for this run."""
        recorder = self._execution.recorder if self._execution else None
        if recorder is not None:
            recorder.log_step(step, metrics, total)


def _names(values: Iterable[str] | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = values.split(",")
    return [value.strip() for value in values if value and value.strip()]


def _namespace(frame) -> dict[str, Any]:
    if frame.f_code.co_name == "<module>" or frame.f_globals is frame.f_locals:
        return frame.f_globals
    return dict(frame.f_locals)


def _with_block_source(frame) -> str | None:
    """The source of the with-block's body that called ``track()``, from the cell or file holding it."""
    filename = frame.f_code.co_filename
    lines = linecache.getlines(filename, frame.f_globals)
    if not lines:
        return None
    text = "".join(lines)
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    line = frame.f_lineno
    candidates = [
        node for node in ast.walk(tree)
        if isinstance(node, (ast.With, ast.AsyncWith)) and node.lineno <= line <= (node.end_lineno or node.lineno)
        and any(_calls_track(item.context_expr) for item in node.items)
    ]
    if not candidates:
        return None
    node = max(candidates, key=lambda n: n.lineno)  # the innermost
    body_lines = lines[node.body[0].lineno - 1 : node.body[-1].end_lineno]
    return textwrap.dedent("".join(body_lines))


def _calls_track(expression: ast.AST) -> bool:
    if not isinstance(expression, ast.Call):
        return False
    func = expression.func
    return (isinstance(func, ast.Name) and func.id == "track") or (
        isinstance(func, ast.Attribute) and func.attr == "track"
    )


def configure(
    uri: str | None = None, experiment: str | None = None, goals: Mapping[str, str | None] | None = None,
    notebook: str | None = None,
) -> store_module.StoreLocation:
    """Set where runs go (any MLflow URI) and the default experiment for this session.

    ``notebook`` names the notebook file this kernel runs, where the kernel cannot learn it (a papermill run from
    Python, a remote kernel): runs record it and the default experiment is its name. ``""`` forgets it.

    ``goals={"reward": "max", "latency": "min"}`` says which way metrics improve (``"auto"`` or None: back to
    the naming rule of ``jupyter_tracking.goals``); kept as tags of the default experiment, so the card,
    ``best``, ``--grid`` and the JupyterLab side panel of every kernel use them.
    """
    checked = None
    if goals is not None:
        from .goals import check_overrides

        checked = check_overrides(goals)  # a bad value fails before anything changes
    location = store_module.configure(uri=uri, experiment=experiment, notebook=notebook)
    if checked:
        from .goals import store_overrides
        from .session import current_session

        store_overrides(location, store_module.default_experiment_name(), checked)
        current_session().card_history.goals.clear()  # this session's next card reads them at once
    return location


@dataclass
class Status:
    """Where runs go now, the default experiment, the last tracked run and runs waiting in the spool."""

    location: store_module.StoreLocation
    experiment: str
    last_run: RunSummary | None
    spooled: int

    def __repr__(self) -> str:
        lines = [f"store:      {self.location.describe()}", f"experiment: {self.experiment}"]
        if self.last_run is not None:
            run = self.last_run
            ident = run.run_id or "spooled"
            lines.append(f"last run:   {run.run_name} ({ident}) {run.status} in experiment {run.experiment_name}")
        else:
            lines.append("last run:   none in this session")
        if self.spooled:
            lines.append(f"spooled:    {self.spooled} run(s) waiting; `%track sync` delivers them")
        return "\n".join(lines)


def status() -> Status:
    """The tracking status of this session."""
    from . import spool
    from .session import current_session

    session = current_session()
    location = store_module.resolve_store(session=session)
    return Status(location, store_module.default_experiment_name(session), session.last_summary,
                  len(spool.pending(location.uri)))


def sync() -> list[str]:
    """Deliver runs spooled while the store was unreachable, each exactly once; returns the delivered run ids.

    Files the store refuses for good are set aside (named on stderr); ConnectionError if the store is still
    unreachable and nothing could be delivered.
    """
    from . import spool
    from .cell import delivery_lines
    from .session import current_session

    session = current_session()
    location = store_module.resolve_store(session=session)
    delivery = spool.deliver_pending(location, session)
    if delivery.outage is not None and not delivery.delivered and not delivery.set_aside:
        outage = delivery.outage
        raise ConnectionError(str(outage) if isinstance(outage, ConnectionError) and str(outage)
                              else store_module.describe_store_error(outage, location))
    for line in delivery_lines(delivery, location)[1:] if delivery.delivered else delivery_lines(delivery, location):
        print(f"jupyter_tracking: {line}", file=sys.stderr)
    return delivery.delivered


def recover(location: store_module.StoreLocation | None = None):
    """End the runs of this store left RUNNING by kernels that are gone (KILLED, with a tag saying why).

    Returns a ``RecoveryReport``: ``ended`` (the runs ended now) and ``stale`` (RUNNING runs of other hosts with
    no sign of life for 10 minutes, which are left alone).
    """
    from .recovery import recover as recover_runs

    return recover_runs(location)


# ---------------------------------------------------------------------- comparing and reusing runs
# Implemented in queries.py and panels/compare.py (neither imports anything heavy at import time).
from .panels.compare import runs  # noqa: E402
from .queries import best, diff, restore  # noqa: E402
from .queries import load_values as load  # noqa: E402
from .sharing import ui  # noqa: E402
