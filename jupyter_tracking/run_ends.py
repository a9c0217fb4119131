"""The end of a tracked cell's run is written after the cell returns: off its critical path, never lost.

When a ``%%track`` cell's code has run, what is left to write (final metrics, params, tags, files, the status)
is a few milliseconds of store work the user need not wait for. ``RunEnds`` (one per session) writes it in one
thread, in order, while the front end already shows the cell finished. Nothing is lost by it:

- before the work is handed over, the run's end is put in a journal entry in the spool folder
  (``spool.write_journal``: no fsync, so it survives the kernel being killed; only a crash of the machine is not
  covered). A kernel that dies before its write is done leaves the entry, and the next delivery (any kernel's
  next tracked cell, ``%track sync``, ``%load_ext``) completes the run exactly once;
- ``wait()`` is the barrier: before the next cell of this kernel runs (IPython's ``pre_run_cell``), so that
  every later cell, ``%runs``, ``%track`` and the user's own MLflow calls see the run closed; and at the
  interpreter's exit. A process reading the store from outside sees the run RUNNING for those milliseconds,
  with its journal entry in the spool folder.

What a background write has to say (a refusal, an outage) is kept and printed before the next cell runs.
Where waiting is worth more than the milliseconds, the recorder writes the end at once instead (see
``RunRecorder.finish``): a server store, a cell that logged to MLflow itself or used autolog, ``jt.track()``
blocks and sweeps (the code after them runs at once).
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
from collections import deque
from typing import Any, Callable

EXIT_WAIT = 120.0  # seconds the interpreter's exit waits for run ends still being written


class RunEnds:
    """One thread that writes run ends in the order they were handed over; ``wait()`` until all are written."""

    def __init__(self) -> None:
        self._jobs: deque[Callable[[], None]] = deque()
        self._condition = threading.Condition()
        self._busy = 0  # jobs handed over and not yet done
        self._thread: threading.Thread | None = None
        self._notices: list[str] = []
        self._exit_hook = False
        self.last_seconds: float | None = None  # how long the last run end took to write (benchmarks read it)

    @property
    def pending(self) -> int:
        with self._condition:
            return self._busy

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` in the writer thread (started on first use); ``job`` must not raise."""
        with self._condition:
            self._jobs.append(job)
            self._busy += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="jt-run-ends", daemon=True)
                self._thread.start()
            if not self._exit_hook:
                atexit.register(self.wait, EXIT_WAIT)
                self._exit_hook = True
            self._condition.notify_all()

    def _loop(self) -> None:
        while True:
            with self._condition:
                while not self._jobs:
                    if not self._condition.wait(timeout=30.0) and not self._jobs:
                        self._thread = None  # idle: the next submit starts a new thread
                        return
                job = self._jobs.popleft()
            started = time.perf_counter()
            try:
                job()
            except BaseException as error:  # noqa: BLE001 - the thread must go on with the next run
                self.defer(f"a run's end could not be written ({type(error).__name__}: {error})")
            finally:
                self.last_seconds = time.perf_counter() - started
                with self._condition:
                    self._busy -= 1
                    self._condition.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Until every run end handed over is written; False if ``timeout`` seconds passed first."""
        with self._condition:
            return self._condition.wait_for(lambda: self._busy == 0, timeout=timeout)

    def defer(self, message: str) -> None:
        """A notice from the writer thread, printed before the next cell (``take_notices``)."""
        with self._condition:
            self._notices.append(message)

    def take_notices(self) -> list[str]:
        with self._condition:
            notices, self._notices = self._notices, []
        return notices


def settle(session: Any, say: Callable[[str], None] | None = None) -> None:
    """The barrier: wait for the session's run ends, then print what they had to say (one line each)."""
    run_ends = getattr(session, "run_ends", None)
    if run_ends is None:
        return
    if run_ends.pending:
        run_ends.wait()
    for message in run_ends.take_notices():
        (say or _print)(message)


def _print(message: str) -> None:
    print(f"jupyter_tracking: {message}", file=sys.stderr)
