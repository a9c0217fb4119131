"""Every private part of MLflow and plotly this package relies on, in one place, each with the reason.

MLflow's public API costs a request (and on SQLite an fsync) per call; a run's end would be a dozen of them.
On SQL stores we write through MLflow's own tables and models instead (the schema is what MLflow's migrations
made; we only insert rows MLflow itself would insert). If MLflow changes any of this, the callers fall back to
the public API (``MlflowSink`` catches the failure and repeats the write through ``MlflowClient``).
plotly's ``FigureWidget`` sends 2-4 comm messages per update; the live panel's figure sends one (its private
message methods, overridden in ``live_figure_class``). ipykernel's status messages: see ``hold_busy_status``.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from typing import Any

_MAX_DOUBLE = sys.float_info.max
SQL_STORE_CLASSES = ("SqlAlchemyStore", "WorkspaceAwareSqlAlchemyStore")


def store_of(client: Any) -> Any:
    """The store object behind an ``MlflowClient`` (creating it: for a SQL store, this creates or migrates the
    database). Private: ``MlflowClient._tracking_client.store`` is how MLflow's client reaches its store."""
    return client._tracking_client.store


def sql_store_of(client: Any) -> Any:
    """The ``SqlAlchemyStore`` behind an ``MlflowClient``, or None for other stores.

    Private: ``MlflowClient._tracking_client.store`` is how MLflow's client reaches its store.
    """
    store = store_of(client) if hasattr(client, "_tracking_client") else None
    if store is not None and type(store).__name__ in SQL_STORE_CLASSES:
        return store
    return None


def _metric_records(run_id: str, rows: list[tuple[str, float, int, int]]) -> tuple[list[dict], dict[str, dict]]:
    """Rows as MLflow's ``metrics`` table records (NaN kept as is_nan, infinities clamped as MLflow does),
    duplicates dropped, and the latest record per key."""
    records: list[dict] = []
    seen = set()
    latest: dict[str, tuple] = {}
    for key, value, timestamp, step in rows:
        is_nan = math.isnan(value)
        stored = 0.0 if is_nan else max(-_MAX_DOUBLE, min(_MAX_DOUBLE, value))
        identity = (key, timestamp, step, stored, is_nan)
        if identity in seen:
            continue
        seen.add(identity)
        record = {"run_uuid": run_id, "key": key, "value": stored, "timestamp": timestamp, "step": step,
                  "is_nan": is_nan}
        records.append(record)
        order = (step, timestamp, stored)
        if key not in latest or order > latest[key][0]:
            latest[key] = (order, record)
    return records, {key: record for key, (_, record) in latest.items()}


def _insert_metrics(store: Any, session: Any, run_id: str, rows: list[tuple[str, float, int, int]]) -> None:
    """Private: ``SqlMetric.__table__`` insert and ``store._update_latest_metrics_if_necessary`` (MLflow's own
    bookkeeping of the latest value per key, which its search and UI read)."""
    from mlflow.store.tracking.dbmodels.models import SqlMetric

    records, latest = _metric_records(run_id, rows)
    if not records:
        return
    session.execute(SqlMetric.__table__.insert(), records)
    store._update_latest_metrics_if_necessary([SqlMetric(**record) for record in latest.values()], session)


def _write_session(store: Any) -> Any:
    """A write transaction on the store. Private: ``ManagedSessionMaker`` (``read_only=False`` since MLflow 3.x
    sends reads to a replica where one is configured)."""
    try:
        return store.ManagedSessionMaker(read_only=False)
    except TypeError:  # older MLflow: every session may write
        return store.ManagedSessionMaker()


def _require_run(session: Any, run_id: str) -> None:
    """Refuse, as MLflow would, to write into a run that does not exist (SQLite does not check the key)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
    from mlflow.store.tracking.dbmodels.models import SqlRun

    if session.query(SqlRun.run_uuid).filter(SqlRun.run_uuid == run_id).first() is None:
        raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)


def sql_insert_metrics(store: Any, run_id: str, rows: list[tuple[str, float, int, int]]) -> None:
    """Insert step-metric rows in one transaction: ~0.006 s per 1,000 points (MLflow's ORM path: ~0.1 s)."""
    if rows:
        with _write_session(store) as session:
            _require_run(session, run_id)
            _insert_metrics(store, session, run_id, rows)


def sql_create_run(store: Any, experiment_id: str, *, run_name: str | None, tags: dict[str, str],
                   start_time: int, user_id: str | None) -> Any:
    """A new RUNNING run and its tags as ONE transaction; returns MLflow's ``Run`` entity for it.

    MLflow's ``create_run`` opens a second session for the experiment, then lazily loads the new run's
    metrics, params, tags and inputs back (~6 queries); this inserts the two kinds of rows MLflow inserts and
    builds the entity from what it wrote. Refuses, as MLflow does, an experiment that is missing or deleted.
    Private: MLflow's ``SqlExperiment``/``SqlRun``/``SqlTag`` models, ``ManagedSessionMaker`` and
    ``_generate_random_name`` (the names MLflow gives unnamed runs).
    """
    import uuid

    from mlflow.entities import Run, RunData, RunInfo, RunInputs, RunTag
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
    from mlflow.store.tracking.dbmodels.models import SqlExperiment, SqlRun, SqlTag
    from mlflow.utils.name_utils import _generate_random_name
    from mlflow.utils.uri import append_to_uri_path

    run_name = run_name or tags.get("mlflow.runName") or _generate_random_name()
    tags = {**tags, "mlflow.runName": run_name}
    run_id = uuid.uuid4().hex
    with _write_session(store) as session:
        found = (session.query(SqlExperiment.artifact_location, SqlExperiment.lifecycle_stage)
                 .filter(SqlExperiment.experiment_id == int(experiment_id)).first())
        if found is None:
            raise MlflowException(f"No Experiment with id={experiment_id} exists", RESOURCE_DOES_NOT_EXIST)
        if found.lifecycle_stage != "active":
            raise MlflowException(f"The experiment {experiment_id} must be in the 'active' state. "
                                  f"Current state is {found.lifecycle_stage}.", INVALID_PARAMETER_VALUE)
        artifact_uri = append_to_uri_path(found.artifact_location, run_id, "artifacts")
        session.execute(SqlRun.__table__.insert(), [{
            "run_uuid": run_id, "name": run_name, "source_type": "UNKNOWN", "source_name": "",
            "entry_point_name": "", "user_id": user_id, "status": "RUNNING", "start_time": start_time,
            "end_time": None, "deleted_time": None, "source_version": "", "lifecycle_stage": "active",
            "artifact_uri": artifact_uri, "experiment_id": int(experiment_id),
        }])
        session.execute(SqlTag.__table__.insert(),
                        [{"run_uuid": run_id, "key": key, "value": value} for key, value in tags.items()])
    info = RunInfo(run_id=run_id, experiment_id=str(experiment_id), user_id=user_id, status="RUNNING",
                   start_time=start_time, end_time=None, lifecycle_stage="active", artifact_uri=artifact_uri,
                   run_name=run_name)
    return Run(info, RunData(tags=[RunTag(key, value) for key, value in tags.items()]), RunInputs([]))


def sql_finish_run(
    store: Any,
    run_id: str,
    *,
    rows: list[tuple[str, float, int, int]],
    params: dict[str, str],
    tags: dict[str, str],
    status: str,
    end_time: int,
    derive_key: Any,
    kept: dict[str, str] | None = None,
) -> dict[str, str]:
    """The end of a run as ONE transaction: metrics, params, tags, status and end time.

    A param the run already holds with another value (the cell or autolog logged it) keeps its value (noted in
    ``kept``); ours is written under ``derive_key(key)``. Returns ``{original key: derived key}`` for those.
    Private: MLflow's ``SqlParam``/``SqlTag``/``SqlRun`` models and ``ManagedSessionMaker``.
    """
    from mlflow.store.tracking.dbmodels.models import SqlParam, SqlRun, SqlTag

    renamed: dict[str, str] = {}
    with _write_session(store) as session:
        _require_run(session, run_id)
        existing = dict(session.query(SqlParam.key, SqlParam.value).filter(SqlParam.run_uuid == run_id).all())
        new_params = []
        for key, value in params.items():
            if key in existing:
                if existing[key] == value:
                    continue
                derived = derive_key(key)
                renamed[key] = derived
                if kept is not None:
                    kept[key] = existing[key]
                if existing.get(derived) == value:
                    continue
                key = derived
            new_params.append({"run_uuid": run_id, "key": key, "value": value})
        if new_params:
            session.execute(SqlParam.__table__.insert(), new_params)
        _insert_metrics(store, session, run_id, rows)
        if tags:
            session.query(SqlTag).filter(SqlTag.run_uuid == run_id, SqlTag.key.in_(list(tags))).delete(
                synchronize_session=False)
            session.execute(SqlTag.__table__.insert(),
                            [{"run_uuid": run_id, "key": key, "value": value} for key, value in tags.items()])
        session.query(SqlRun).filter(SqlRun.run_uuid == run_id).update(
            {"status": status, "end_time": end_time}, synchronize_session=False)
    return renamed


def dataset_entity(name: str, frame: Any, digest: str) -> dict[str, Any]:
    """An MLflow dataset record for a DataFrame, with our digest over every row and a schema from a sample.

    Private: ``PandasDataset._to_mlflow_entity`` gives the source and schema exactly as MLflow writes them.
    """
    import mlflow.data

    sample = mlflow.data.from_pandas(frame.head(1000), name=name, digest=digest)
    entity = sample._to_mlflow_entity()
    return {
        "name": name, "digest": digest, "source_type": entity.source_type, "source": entity.source,
        "schema": entity.schema,
        "profile": json.dumps({"num_rows": int(len(frame)), "num_elements": int(frame.size)}),
    }


def fluent_run_stack() -> list:
    """MLflow's stack of active fluent runs (``mlflow.start_run`` pushes, ``end_run`` pops).

    Private: ``mlflow.tracking.fluent._active_run_stack`` (a ContextVar holding a list).
    """
    from mlflow.tracking import fluent

    return fluent._active_run_stack.get()


def push_fluent_run(run: Any) -> None:
    """Make ``run`` MLflow's active fluent run, as the end of ``mlflow.start_run`` does (the run exists already).

    Private: ``mlflow.tracking.fluent._active_run_stack`` and ``ActiveRun``.
    """
    from mlflow.tracking.fluent import ActiveRun

    fluent_run_stack().append(ActiveRun(run))


def pop_fluent_run(run_id: str) -> None:
    """Take ``run_id`` off MLflow's fluent stack without a request (its status is already written), doing
    what ``end_run`` does besides: async logging flushed, ``MLFLOW_RUN_ID`` cleared, ``last_active_run()``
    pointing at it, its system-metrics monitor stopped. Private: ``_last_active_run_id`` and
    ``run_id_to_system_metrics_monitor`` in ``mlflow.tracking.fluent``."""
    import mlflow
    from mlflow.tracking import fluent

    try:
        mlflow.flush_async_logging()
    except Exception:  # noqa: BLE001 - nothing was queued, or async logging is off
        pass
    stack = fluent_run_stack()
    if stack and stack[-1].info.run_id == run_id:
        stack.pop()
        fluent.MLFLOW_RUN_ID.unset()
    fluent._last_active_run_id.set(run_id)
    monitor = fluent.run_id_to_system_metrics_monitor.pop(run_id, None)
    if monitor is not None:
        monitor.finish()


def live_figure_class() -> Any:
    """A plotly ``FigureWidget`` that sends each update as ONE comm message (plotly sends 2-4 per update).

    Private: plotly's ``_send_*_msg`` methods, ``_py2js_*`` traits, edit ids and ``_lock_property``.
    """
    import plotly.graph_objects as go

    class LiveFigure(go.FigureWidget):
        def _jt_send(self, trait: str, message: dict, layout_edit: bool, trace_edit: bool) -> None:
            with self.hold_sync():
                if layout_edit:
                    message["layout_edit_id"] = self._last_layout_edit_id = self._last_layout_edit_id + 1
                    self._layout_edit_in_process = True
                if trace_edit:
                    message["trace_edit_id"] = self._last_trace_edit_id = self._last_trace_edit_id + 1
                    self._trace_edit_in_process = True
                setattr(self, trait, message)
            with self._lock_property(**{trait: None}):
                setattr(self, trait, None)  # reset without another message

        def _send_update_msg(self, restyle_data, relayout_data, trace_indexes=None, source_view_id=None):
            self._jt_send("_py2js_update", {
                "style_data": restyle_data, "layout_data": relayout_data,
                "style_traces": self._normalize_trace_indexes(trace_indexes), "source_view_id": source_view_id,
            }, True, True)

        def _send_restyle_msg(self, restyle_data, trace_indexes=None, source_view_id=None):
            self._jt_send("_py2js_restyle", {
                "restyle_data": restyle_data, "restyle_traces": self._normalize_trace_indexes(trace_indexes),
                "source_view_id": source_view_id,
            }, True, True)

        def _send_relayout_msg(self, layout_data, source_view_id=None):
            self._jt_send("_py2js_relayout", {"relayout_data": layout_data, "source_view_id": source_view_id},
                          True, False)

        def _send_addTraces_msg(self, new_traces_data):
            self._jt_send("_py2js_addTraces", {"trace_data": new_traces_data}, True, True)

    return LiveFigure


# ---------------------------------------------------------------------------------------- the MLflow UI server

# What ``mlflow server`` hands its uvicorn worker (its private names, read from the installed MLflow's source).
_SERVER_NAMES = {
    "backend_store": ("server/constants.py", "BACKEND_STORE_URI_ENV_VAR"),
    "registry_store": ("server/constants.py", "REGISTRY_STORE_URI_ENV_VAR"),
    "artifact_root": ("server/constants.py", "ARTIFACT_ROOT_ENV_VAR"),
    "artifacts_destination": ("server/constants.py", "ARTIFACTS_DESTINATION_ENV_VAR"),
    "serve_artifacts": ("server/constants.py", "SERVE_ARTIFACTS_ENV_VAR"),
    "static_prefix": ("server/handlers.py", "STATIC_PREFIX_ENV_VAR"),
    "sgi_name": ("environment_variables.py", "_MLFLOW_SGI_NAME"),
}


def mlflow_server_worker_env() -> dict[str, str] | None:
    """The private environment names ``mlflow server`` sets for its uvicorn worker, or None if unknown.

    ``mlflow server`` is a process that imports MLflow's whole server only to start a second process (uvicorn)
    that imports it again: starting uvicorn on ``mlflow.server.fastapi_app:app`` ourselves, with the variables
    the CLI would set, halves the time to a healthy server. Private: the names are read from the installed
    MLflow's source (no import); if any is missing, None, and the caller uses ``mlflow server`` itself.
    """
    import importlib.util
    import re
    from pathlib import Path

    spec = importlib.util.find_spec("mlflow")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(list(spec.submodule_search_locations)[0])
    if not (package / "server" / "fastapi_app.py").is_file() or not (package / "server" / LOG_CONFIG).is_file():
        return None
    names: dict[str, str] = {}
    texts: dict[str, str] = {}
    for role, (file, constant) in _SERVER_NAMES.items():
        try:
            text = texts.setdefault(file, (package / file).read_text())
        except OSError:
            return None
        found = re.search(rf'(?m)^{constant}\s*=\s*(?:\w+\(\s*)?"([A-Za-z_]+)"', text)
        if found is None:
            return None
        names[role] = found.group(1)
    return names


LOG_CONFIG = "uvicorn_log_config.yaml"


def mlflow_server_log_config() -> str:
    """MLflow's own uvicorn log configuration (what ``mlflow server`` passes to uvicorn)."""
    import importlib.util
    from pathlib import Path

    return str(Path(list(importlib.util.find_spec("mlflow").submodule_search_locations)[0]) / "server" / LOG_CONFIG)


# ---------------------------------------------------------------------- the kernel's busy status
# JupyterLab 4.4+ and Notebook 7 open a kernel subshell for each widget comm (create_subshell_request on the
# control channel, delete_subshell_request when it closes). ipykernel 7 answers with a busy and an idle status
# for that request, and front ends show the kernel as idle from then on although the cell still runs. While a
# tracked cell whose panel may open a widget runs, an idle status of any other request is followed by a busy
# one for the cell. Private: ipykernel's ``Kernel._publish_status(status, channel, parent)`` and
# ``get_parent(channel)``.


class BusyCells:
    """The running tracked cells whose kernel status is held busy: one per kernel, on its session
    (``Session.busy_cells``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[int, dict] = {}  # token -> the execute request of a running tracked cell

    def hold(self, token: int, request: dict) -> None:
        with self._lock:
            self._cells[token] = request

    def release(self, token: int | None = None) -> None:
        with self._lock:
            if token is None:
                self._cells.clear()
            else:
                self._cells.pop(token, None)

    def latest(self) -> dict | None:
        """The execute request of the newest held cell, or None."""
        with self._lock:
            return next(reversed(self._cells.values()), None)


def hold_busy_status(token: int) -> None:
    """From the cell's own thread: until ``release_busy_status(token)`` (or the cell's end), keep the front end's
    kernel status busy for this cell."""
    from .session import current_session

    try:
        from IPython import get_ipython

        shell = get_ipython()
        kernel = getattr(shell, "kernel", None)
        parent = kernel.get_parent("shell") if kernel is not None else None
        if not parent or not callable(getattr(kernel, "_publish_status", None)):
            return
        _patch_status(kernel, shell)
    except Exception:  # noqa: BLE001 - another kernel: nothing to do
        return
    current_session().busy_cells.hold(token, parent)


def release_busy_status(token: int | None = None) -> None:
    from .session import current_session

    current_session().busy_cells.release(token)


def _patch_status(kernel: Any, shell: Any) -> None:
    if getattr(kernel, "_jt_status_patched", False):
        return
    original = kernel._publish_status

    def publish_status(status, channel, parent=None):
        original(status, channel, parent)
        if status != "idle":
            return
        try:
            from .session import current_session

            cell = current_session().busy_cells.latest()
            if cell is None:
                return
            ended = parent or kernel.get_parent(channel) or {}
            if ended.get("header", {}).get("msg_id") == cell.get("header", {}).get("msg_id"):
                return  # the cell's own end
            original("busy", "shell", cell)
        except Exception:  # noqa: BLE001 - never in the way of the kernel's own messages
            return

    kernel._publish_status = publish_status
    kernel._jt_status_patched = True
    shell.events.register("post_execute", release_busy_status)  # never past a cell's end, whatever happened
