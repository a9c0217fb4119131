"""Which run a thread's ``jt.log`` points belong to: the run of the cell that started the thread.

A data-loader or callback thread started inside a tracked cell may still log after its cell ended, while the
next cell's run is active. ``mark_threads()`` wraps ``threading.Thread.start`` once per process so
that each thread started while a tracked cell runs remembers that cell's recorder (weakly); ``jt.log`` from such
a thread goes to that recorder, or is dropped once it has closed. Threads started outside tracked cells log to
whatever run is active, as before.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

_ATTRIBUTE = "_jupyter_tracking_run"


def mark_threads() -> None:
    """Make ``Thread.start`` record the session's active recorder on the thread (once per process)."""
    from .session import current_session

    start = threading.Thread.start
    if getattr(start, "_jupyter_tracking", False):
        return

    def start_and_remember_run(thread: threading.Thread, *args: Any, **kwargs: Any) -> Any:
        recorder = current_session().active_recorder
        if recorder is not None and not hasattr(thread, _ATTRIBUTE):
            try:
                setattr(thread, _ATTRIBUTE, weakref.ref(recorder))
            except (AttributeError, TypeError):  # a Thread subclass with __slots__: it logs as an old thread
                pass
        return start(thread, *args, **kwargs)

    start_and_remember_run._jupyter_tracking = True  # type: ignore[attr-defined]
    start_and_remember_run.__wrapped__ = start  # type: ignore[attr-defined]
    threading.Thread.start = start_and_remember_run  # type: ignore[method-assign]


def owner_of_current_thread() -> tuple[bool, Any]:
    """(True, recorder or None if it is gone) for a thread started in a tracked cell, else (False, None)."""
    reference = getattr(threading.current_thread(), _ATTRIBUTE, None)
    if reference is None:
        return False, None
    return True, reference()
