"""The cell's own MLflow calls while it is tracked: they work as they would without ``%%track``.

- ``mlflow.log_metric(s)`` land in the tracked run (it is MLflow's active run) and are also shown live.
- ``mlflow.start_run()`` opens a child run of the tracked run (``mlflow.parentRunId``) instead of failing
  with "Run ... is already active"; its logging lands in the child, and a child the cell leaves open is closed
  when the cell ends (with the cell's status). The card lists the children.
- ``mlflow.active_run()`` in the cell is the tracked run (outside child blocks).
- A cell that logs into the run itself has its run's end written before the cell returns (run_ends.py).
"""

from __future__ import annotations

import inspect
from typing import Any

from .internals import fluent_run_stack


class CellMlflowHooks:
    """Installed for one tracked execution (``install``), removed when it ends (``uninstall``)."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self._originals: dict[str, Any] = {}

    def install(self) -> None:
        import mlflow

        recorder = self.recorder

        def points_of_log_metric(values: dict[str, Any]):
            yield values["key"], values["value"]

        def points_of_log_metrics(values: dict[str, Any]):
            yield from (values.get("metrics") or {}).items()

        self._originals = {"log_metric": mlflow.log_metric, "log_metrics": mlflow.log_metrics,
                           "start_run": mlflow.start_run}
        self._originals.update({name: getattr(mlflow, name) for name in WRITES if hasattr(mlflow, name)})
        for name in WRITES:
            if hasattr(mlflow, name):
                setattr(mlflow, name, _noted(getattr(mlflow, name), recorder))
        mlflow.log_metric = _mirrored(mlflow.log_metric, points_of_log_metric, recorder)
        mlflow.log_metrics = _mirrored(mlflow.log_metrics, points_of_log_metrics, recorder)
        mlflow.start_run = _nesting(mlflow.start_run, recorder)

    def uninstall(self, status: str) -> None:
        """Close the children the cell left open (innermost first), then put MLflow's functions back."""
        import mlflow

        run_id = self.recorder.run_id
        try:
            stack = fluent_run_stack()
            while stack and run_id is not None and any(run.info.run_id == run_id for run in stack[:-1]):
                mlflow.end_run(status=status)
        except Exception:  # noqa: BLE001 - a child that cannot be closed is ended by recovery later
            pass
        for name, original in self._originals.items():
            setattr(mlflow, name, original)
        self._originals = {}


# The cell's own writes into the run besides metrics: the run's end is then written before the cell returns,
# so that a value the cell logged first and ours are reconciled and shown on the card (recorder.cell_logged).
WRITES = ("log_param", "log_params", "set_tag", "set_tags", "log_input", "log_inputs", "log_text", "log_dict",
          "log_artifact", "log_artifacts", "log_figure", "log_image", "log_table")


def _noted(original: Any, recorder: Any) -> Any:
    def writing_function(*args: Any, **kwargs: Any) -> Any:
        recorder.cell_logged = True
        return original(*args, **kwargs)

    writing_function.__wrapped__ = original
    return writing_function


def _mirrored(original: Any, points_of: Any, recorder: Any) -> Any:
    """``original`` (an MLflow fluent logging function) that also shows what it logged to our run live."""
    signature = inspect.signature(original)

    def logging_function(*args: Any, **kwargs: Any) -> Any:
        recorder.cell_logged = True
        result = original(*args, **kwargs)
        try:
            values = signature.bind(*args, **kwargs).arguments
            if values.get("run_id") in (None, recorder.run_id) and _is_active(recorder.run_id):
                for key, value in points_of(values):
                    recorder.mirror_logged_metric(key, value, values.get("step"), values.get("timestamp"))
        except Exception:  # noqa: BLE001 - mirroring is for display only
            pass
        return result

    logging_function.__wrapped__ = original
    return logging_function


def _is_active(run_id: str | None) -> bool:
    """True when ``run_id`` is MLflow's active run (not a child the cell opened on top of it)."""
    stack = fluent_run_stack()
    return bool(stack) and stack[-1].info.run_id == run_id


def _nesting(original: Any, recorder: Any) -> Any:
    """``mlflow.start_run`` that nests under the tracked run when the cell opens a run of its own."""
    signature = inspect.signature(original)

    def start_run(*args: Any, **kwargs: Any) -> Any:
        try:
            values = signature.bind_partial(*args, **kwargs).arguments
        except TypeError:
            return original(*args, **kwargs)  # MLflow says what is wrong, as it would without tracking
        nests = (
            recorder.run_id is not None and values.get("run_id") is None and not values.get("nested")
            and any(run.info.run_id == recorder.run_id for run in fluent_run_stack())
        )
        if nests:
            kwargs = {**kwargs, "nested": True}
            if values.get("experiment_id") is None and recorder.experiment_id is not None:
                kwargs["experiment_id"] = recorder.experiment_id  # the child lives beside its parent
            if "nested" in values and len(args) > list(signature.parameters).index("nested"):
                args = args[: list(signature.parameters).index("nested")]
        run = original(*args, **kwargs)
        if nests:
            recorder.child_runs.append((run.info.run_id, run.info.run_name or run.info.run_id))
        return run

    start_run.__wrapped__ = original
    return start_run
