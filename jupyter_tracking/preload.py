"""MLflow imported off the main thread, from ``%load_ext`` on.

``import mlflow`` costs seconds. ``start()`` (called by ``%load_ext``) imports it, and what the first tracked
cell needs, in a daemon thread, so the user's first tracked cell finds it ready. A thread never receives
KeyboardInterrupt: an interrupt while MLflow is importing lands in the waiting main thread, and the import
finishes anyway (an interrupted ``import mlflow`` on the main thread would leave a half-initialised module
behind for the rest of the session). ``ensure_mlflow()`` is what every user of MLflow calls first: it waits
only for what is still missing, and after a failed or half-finished import it removes the ``mlflow`` modules
from ``sys.modules`` and imports again, in a thread again.

Work to do once MLflow is there (ending the runs of dead kernels at ``%load_ext``) is handed to ``start()``
as ``then``; it runs in the thread with the output context of the cell that started it, so what it prints
appears under that cell.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import sys
import threading
from collections.abc import Callable

# In the order the first tracked cell needs them.
MODULES = (
    "mlflow",
    "mlflow.entities",
    "mlflow.tracking.fluent",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.tracking.dbmodels.models",
    "mlflow.store.artifact.artifact_repository_registry",
    "mlflow.utils.uri",
    "jupyter_tracking.cell",
    "jupyter_tracking.panels.card",
    "jupyter_tracking.panels.live",
)
# Imported by MLflow on first use of a SQLite store and of start_run (names move between MLflow versions, so
# a missing one is skipped); GitPython, which MLflow's run context uses when it is installed.
OPTIONAL_MODULES = (
    "sqlalchemy.dialects.sqlite",
    "mlflow.store.db.utils",
    "mlflow.store.tracking.sqlalchemy_workspace_store",
    "alembic.command",
    "alembic.config",
    "mlflow.tracing.processor.otel",
    "mlflow.tracing.export.utils",
    "opentelemetry.sdk.metrics",
    "email.policy",
    "git",
)


class _Attempt:
    """One try at importing MLflow; ``done`` is set when it has succeeded or failed."""

    def __init__(self) -> None:
        self.done = threading.Event()


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempt: _Attempt | None = None
        self.thread: threading.Thread | None = None  # the thread started last
        self.ready = False  # every module of MODULES imported
        self.error: BaseException | None = None


_state = _State()


def start(then: Callable[[], None] | None = None) -> None:
    """Import MLflow in a daemon thread (unless done or under way), then call ``then`` in a thread.

    Returns at once: the caller never waits for the import.
    """
    with _state.lock:
        attempt = _state.attempt
        importing = attempt is None or (attempt.done.is_set() and not is_ready())
        if importing:
            attempt = _Attempt()
            _state.attempt = attempt
        elif then is None:
            return
        context = contextvars.copy_context()  # print() in the thread goes to the caller's cell
        thread = threading.Thread(
            target=context.run, args=(_work, attempt, importing, then), name="jt-import-mlflow", daemon=True,
        )
        _state.thread = thread
        thread.start()


def ensure_mlflow() -> None:
    """Wait until MLflow (and what a tracked cell needs) is imported; raises the import's error if it failed.

    Waits for the import only, not for work handed to ``start()``. The wait can be interrupted; the import goes
    on in its thread and the next call finds it done.
    """
    if is_ready():
        return
    for _attempt in range(2):  # a failed import is retried once, cleanly
        start()
        attempt = _state.attempt
        if attempt is not None:
            attempt.done.wait()
        if is_ready():
            return
    error = _state.error
    if error is not None:
        raise error
    raise ImportError("MLflow could not be imported")


def wait() -> None:
    """``ensure_mlflow()`` for the start of a tracked cell: waits, never raises (the store write says what failed)."""
    try:
        ensure_mlflow()
    except Exception:  # noqa: BLE001
        pass


def wait_for_import(timeout: float | None = None) -> None:
    """Until the import under way (if any) has succeeded or failed; starts nothing, raises nothing."""
    attempt = _state.attempt
    if attempt is not None:
        attempt.done.wait(timeout)


def is_ready() -> bool:
    return _state.ready and _mlflow_is_complete()


def _work(attempt: _Attempt, importing: bool, then: Callable[[], None] | None) -> None:
    if importing:
        _import_all(attempt)
    else:
        attempt.done.wait()
    if then is not None and is_ready():
        then()


def _import_all(attempt: _Attempt) -> None:
    try:
        _state.ready = False
        problem: BaseException | None = None
        for _try in range(2):
            try:
                for name in MODULES:
                    importlib.import_module(name)
                for name in OPTIONAL_MODULES:
                    with contextlib.suppress(Exception):
                        importlib.import_module(name)
                _warm_up_live_panel()
                problem = None if _mlflow_is_complete() else ImportError("MLflow is only half imported")
            except Exception as error:  # noqa: BLE001 - kept for ensure_mlflow() to raise in the caller
                problem = error
            if problem is None:
                break
            # What an interrupted or failed import left behind: start again from scratch.
            forget_mlflow_modules()
        _state.error = problem
        _state.ready = problem is None
    finally:
        attempt.done.set()


def _warm_up_live_panel() -> None:
    """Where the live panel is a widget, start importing its plotly class (1-3 s) in a thread of its own: the
    first tracked cell waits for MLflow, never for plotly (its panel draws pictures until plotly is ready)."""
    with contextlib.suppress(Exception):
        from .panels import live

        if live.live_mode() == "widget":
            live.warm_up()


def _mlflow_is_complete() -> bool:
    """``mlflow`` is imported and fully initialised (not a module left half-done by an interrupted import).

    Called after an import returned (or with no import under way in our thread): a module still marked as
    initialising then is one whose import was cut short.
    """
    module = sys.modules.get("mlflow")
    if module is None:
        return False
    spec = getattr(module, "__spec__", None)
    if spec is not None and getattr(spec, "_initializing", False):
        return False
    return hasattr(module, "version") and hasattr(module, "MlflowClient")


def forget_mlflow_modules() -> None:
    """Remove ``mlflow`` and its submodules from ``sys.modules`` so the next import starts from scratch."""
    for name in [name for name in sys.modules if name == "mlflow" or name.startswith("mlflow.")]:
        sys.modules.pop(name, None)
