"""jupyter_tracking: experiment tracking inside Jupyter notebooks, on top of MLflow.

Public API (the magics are a thin skin over it)::

    %load_ext jupyter_tracking
    import jupyter_tracking as jt
    with jt.track("baseline", experiment="iris"):
        ...
        jt.log(step=epoch, train_loss=loss)

Importing this package is cheap: MLflow, pandas and plotly are imported on first use only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:  # written by the build from labextension/package.json: one version for the Python and the JS package
    from ._version import __version__
except ImportError:  # a source tree that was never built or installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "best",
    "configure",
    "diff",
    "load",
    "log",
    "recover",
    "restore",
    "runs",
    "status",
    "sync",
    "track",
    "ui",
]

if TYPE_CHECKING:  # pragma: no cover
    from .api import best, configure, diff, load, recover, restore, runs, status, sync, track, ui


def log(step: int | None = None, total: int | None = None, **metrics: Any) -> None:
    """Log step metrics (``jt.log(step=epoch, train_loss=0.3)``) to the tracked cell's run; drawn live.

    Costs well under a microsecond: points go into typed buffers that a background writer batches into
    MLflow. ``total`` (optional) is how many steps to expect, for the progress line. From another thread,
    points belong to the run of the cell that started that thread (dropped, with one warning, once that run
    has ended). Outside a tracked cell it warns once and does nothing.
    """
    session = _current.session
    if _get_ident() == session.active_thread:
        recorder = session.active_recorder
    else:
        recorder = _thread_recorder(session)
    if recorder is None:
        session.warn_once(
            "inactive", "jt.log() outside a tracked cell is ignored; add %%track to the cell or use `with jt.track():`."
        )
        return
    recorder.log_step(step, metrics, total)


def _thread_recorder(session: Any) -> Any:
    """The recorder for ``jt.log`` from a thread other than the tracked code's: the run of the cell that
    started the thread (``threads.py`` marks threads as they start), or the active run for older threads."""
    from .threads import owner_of_current_thread

    owned, recorder = owner_of_current_thread()
    if not owned:
        return session.active_recorder
    if recorder is None or recorder.status != "RUNNING":
        session.warn_once(
            "thread-after-run",
            "jt.log() from a thread whose tracked cell has ended: the points are dropped "
            "(they belong to that cell's run, which is closed).",
        )
        return None
    return recorder


from threading import get_ident as _get_ident  # noqa: E402

from .session import _current  # noqa: E402


def __getattr__(name: str) -> Any:
    # The rest of the API lives in .api, imported on first use to keep `import jupyter_tracking` light.
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'jupyter_tracking' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_tracking``: register the magics and say in one line where runs will go."""
    from .magics import register

    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unregister

    unregister(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-tracking"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyter_tracking.serverext"}]
