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

__version__ = "0.1.0"

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

    Costs about a microsecond: points are queued and a background writer batches them into MLflow.
    ``total`` (optional) is how many steps to expect, for the progress line. Outside a tracked cell it
    warns once and does nothing.
    """
    recorder = _active.recorder
    if recorder is None:
        _active.warn_inactive()
        return
    recorder.log_step(step, metrics, total)


class _ActiveRecorder:
    """Holds the recorder of the tracked cell that is running now (None between cells)."""

    recorder = None
    _warned = False

    def warn_inactive(self) -> None:
        if not self._warned:
            self._warned = True
            import sys

            print(
                "jupyter_tracking: jt.log() outside a tracked cell is ignored; add %%track to the cell "
                "or use `with jt.track():`.",
                file=sys.stderr,
            )


# Kept across `%reload_ext` (which re-runs this file): other modules hold a reference to this object.
_active = globals().get("_active") or _ActiveRecorder()


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
