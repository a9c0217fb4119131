"""What one kernel knows about tracking, in one object: the ``Session``.

Settings made with ``%track config``, the MLflow clients and experiment ids per store, the tracked execution
that is running now (``jt.log`` writes to its recorder), the last run's summary (for ``%track``), the card's
comparison cache, the id of the cell being run, the run ends still being written and the running cells whose
kernel status is held busy. Modules receive the session (``current_session()`` at the
edges: magics, ``jt.*`` functions) instead of keeping module globals; a test makes a fresh one with
``use_session(Session())``. Nothing here imports MLflow.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .internals import BusyCells
from .run_ends import RunEnds


@dataclass
class Settings:
    """Made with ``%track config`` / ``configure()``; None means "not set"."""

    uri: str | None = None
    experiment: str | None = None
    notebook: str | None = None  # `%track config --notebook PATH`: the notebook this kernel runs


@dataclass
class CardHistory:
    """What the card compares with, cached per session: previous run per cell, best value per metric (and
    goal), the experiments' goal overrides (``%track config --goal``)."""

    previous: dict[tuple[str, str], tuple[str, dict[str, str], dict[str, float]]] = field(default_factory=dict)
    best: dict[tuple[str, str, str, str], tuple[float, str] | None] = field(default_factory=dict)
    goals: Any = field(default_factory=lambda: _overrides_cache())


def _overrides_cache() -> Any:
    from .goals import OverridesCache

    return OverridesCache()


class Session:
    """The tracking state of one kernel (see the module docstring)."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.clients: dict[str, Any] = {}
        self.clients_lock = threading.Lock()
        self.experiment_ids: dict[tuple[str, str], str] = {}
        self.card_history = CardHistory()
        self.last_summary: Any = None  # RunSummary of the most recent tracked run
        self.cell_id: str | None = None  # the id of the cell being run, as the front end sent it
        # The recorder ``jt.log`` writes to, and the thread that runs the tracked code (usually the main one).
        self.active_recorder: Any = None
        self.active_thread: int | None = None
        self.warned: set[str] = set()
        self.run_ends = RunEnds()  # run ends written after their cell returned (run_ends.py)
        self.busy_cells = BusyCells()  # running tracked cells whose kernel status is held busy (internals.py)
        self._withheld_values: Any = None

    @property
    def withheld_values(self) -> Any:
        """Values withheld as credentials in this session (``secret_filter``): never written later either."""
        if self._withheld_values is None:
            from .secret_filter import RememberedSecrets

            self._withheld_values = RememberedSecrets()
        return self._withheld_values

    def forget_store_state(self) -> None:
        """After the store changes: experiment ids and card comparisons belong to the old one."""
        self.experiment_ids.clear()
        self.card_history = CardHistory()

    def warn_once(self, key: str, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            import sys

            print(f"jupyter_tracking: {message}", file=sys.stderr)


class _Current:
    """Holds the session of this kernel; kept across ``%reload_ext`` (the module is re-run, the object stays)."""

    session = Session()


_current: _Current = globals().get("_current") or _Current()


def current_session() -> Session:
    """The session of this kernel."""
    return _current.session


def use_session(session: Session) -> Session:
    """Make ``session`` the current one (tests start each case from a fresh one); returns it."""
    _current.session = session
    return session
