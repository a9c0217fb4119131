"""Where a run's data is written: the MLflow store (``MlflowSink``) or the local spool (``SpoolSink``).

Both have one interface: ``create_run``, ``write_metrics``, ``finish``. The recorder writes through one sink
and, when the store is unreachable, swaps to the spool once; delivering a spool file replays it through an
``MlflowSink`` (``spool.deliver``), so a run reaches MLflow through the same code either way.

Unreachable and refused are different things (``classify``): an outage (connection refused, timeout, database
locked, disk full, read-only file, refused credentials) spools; a refusal (MLflow's INVALID_PARAMETER_VALUE,
RESOURCE_ALREADY_EXISTS, a changed param) is recorded in the run itself (tag ``jupyter_tracking.refused`` and the
artifact ``refused.json``) and the rest of the run is still written.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import artifact_upload, internals
from . import store as store_module

OUTAGE, REFUSAL = "outage", "refusal"
REFUSED_TAG = "jupyter_tracking.refused"
REFUSED_ARTIFACT = "refused.json"
CAPTURED_SUFFIX = ".captured"  # a captured param the run already holds with another value: "max_depth.captured"

_REFUSAL_CODES = {
    "INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST", "INVALID_STATE",
    "RESOURCE_DOES_NOT_EXIST", "MALFORMED_REQUEST",
}
_OUTAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EDQUOT, errno.ENOENT}
_OUTAGE_TEXT = (
    "database is locked", "disk i/o error", "database or disk is full", "readonly database",
    "read-only file system",
    "unable to open database", "no space left", "connection refused", "max retries exceeded",
    "failed to establish", "timed out", "temporarily unavailable", "connection reset", "connection aborted",
    "remote end closed", "bad gateway", "service unavailable", "gateway timeout", "stopped answering",
    "unauthorized", "unauthenticated", "permission_denied", "401", "403",
)


def classify(error: BaseException) -> str:
    """OUTAGE (keep the data, deliver later) or REFUSAL (the store will never take this write)."""
    chain = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for item in chain:
        if isinstance(getattr(item, "outage", None), bool):  # an error that knows (artifact_upload)
            return OUTAGE if item.outage else REFUSAL
        if isinstance(item, (ConnectionError, TimeoutError)):
            return OUTAGE
        if isinstance(item, OSError) and item.errno in _OUTAGE_ERRNOS:
            return OUTAGE
        module = type(item).__module__ or ""
        if module.startswith(("requests", "urllib3")):
            return OUTAGE
    code = str(getattr(error, "error_code", "") or "")
    text = " ".join(str(item) for item in chain).lower()
    if code in _REFUSAL_CODES and not any(marker in text for marker in ("database is locked", "disk i/o error")):
        return REFUSAL
    if any(marker in text for marker in _OUTAGE_TEXT):
        return OUTAGE
    if code in ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "UNAUTHENTICATED", "PERMISSION_DENIED"):
        return OUTAGE
    if code == "INTERNAL_ERROR" or any(type(item).__module__.startswith("sqlalchemy") for item in chain):
        return OUTAGE  # a server's 500 or a database error that is not about the data: try again later
    return REFUSAL


@dataclass
class FinalRecord:
    """Everything written when a run ends."""

    rows: list[tuple[str, float, int, int]]  # step rows still unwritten, plus the single metrics
    params: dict[str, str]
    tags: dict[str, str]
    status: str
    end_time: int
    artifacts: list[tuple[str, str | None]] = field(default_factory=list)  # (local file, artifact folder)
    datasets: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FinishOutcome:
    """What ``finish`` could not write as asked: params renamed, items refused."""

    renamed: dict[str, str] = field(default_factory=dict)  # captured key -> the derived key it went under
    kept: dict[str, str] = field(default_factory=dict)  # those keys -> the value the run already held
    refused: list[dict[str, str]] = field(default_factory=list)


@dataclass
class CreatedRun:
    run_id: str
    experiment_id: str | None
    artifact_uri: str | None
    run_name: str | None
    start_time: float


def derived_key(key: str) -> str:
    return (key + CAPTURED_SUFFIX)[-250:]


class quiet_store_logging:  # noqa: N801 - used like a function
    """Silence MLflow's and SQLAlchemy's error logging during a write: on failure it prints the statement with
    every logged value, hundreds of lines; the user gets our one line instead.

    Blocks nest, in one thread or several: the first to enter silences, the last to leave restores. Each
    ``Logger.setLevel`` empties the level cache of every logger of the process (~0.2 ms in a kernel that has
    imported MLflow, 8 times a block before): the levels are set as attributes and the cache emptied once.
    """

    LOGGERS = ("mlflow", "sqlalchemy", "alembic", "urllib3")
    _lock = threading.Lock()
    _depth = 0
    _saved: dict[str, int] = {}

    def __enter__(self) -> None:
        cls = type(self)
        with cls._lock:
            cls._depth += 1
            if cls._depth == 1:
                cls._saved = {name: logging.getLogger(name).level for name in cls.LOGGERS}
                _set_levels(dict.fromkeys(cls.LOGGERS, logging.CRITICAL))

    def __exit__(self, *exc_info: object) -> None:
        cls = type(self)
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0:
                _set_levels(cls._saved)


def _set_levels(levels: dict[str, int]) -> None:
    """Set several loggers' levels, emptying the loggers' level cache once (by the last ``setLevel``)."""
    loggers = [(logging.getLogger(name), level) for name, level in levels.items()]
    for logger, level in loggers[:-1]:
        logger.level = level
    last, level = loggers[-1]
    last.setLevel(level)


class MlflowSink:
    """Writes a run into the MLflow store at ``location`` (SQL stores: bulk, in one transaction at the end)."""

    kind = "mlflow"

    def __init__(self, location: store_module.StoreLocation, session: Any) -> None:
        self.location = location
        self.session = session
        self._client = None
        self._artifact_uris: dict[str, str] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            with quiet_store_logging():
                self._client = store_module.client_for(self.location, self.session)
        return self._client

    def create_run(self, experiment_name: str, *, run_name: str | None, tags: dict[str, str],
                   start_time: int, fluent_parent: str | None = None, make_active: bool = False) -> CreatedRun:
        """Create the run; with ``make_active`` it becomes MLflow's active (fluent) run, so the cell's own
        ``mlflow.log_*`` calls land in it (``fluent_parent``: the active run it nests under, if any)."""
        with quiet_store_logging():
            client = self.client
            experiment_id = store_module.experiment_id_for(self.location, experiment_name, session=self.session)
            if make_active:
                import mlflow

                store_module.point_mlflow_at(self.location.uri)
                active = mlflow.active_run()
                if active is not None and active.info.run_id != fluent_parent:
                    # A run left open by code outside tracking would swallow ours: close it as MLflow would.
                    mlflow.end_run()
                nested = fluent_parent is not None and mlflow.active_run() is not None
                run = self._create_sql_run(experiment_id, run_name, tags, start_time, nested)
                if run is None:
                    run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags, nested=nested)
            else:  # a run that is not MLflow's active run (a sweep's trial, a delivered spool file)
                run = self._insert_run(experiment_id, run_name, tags, start_time)
                if run is None:
                    run = client.create_run(experiment_id, start_time=start_time, run_name=run_name, tags=tags)
        info = run.info
        self._artifact_uris[info.run_id] = info.artifact_uri
        return CreatedRun(info.run_id, experiment_id, info.artifact_uri, info.run_name, info.start_time / 1000.0)

    def _create_sql_run(self, experiment_id: str, run_name: str | None, tags: dict[str, str], start_time: int,
                        nested: bool) -> Any:
        """On a SQL store, the active run made in one transaction and pushed as ``mlflow.start_run`` would push
        it (a third of its cost); None where MLflow's own ``start_run`` must do it (another store, or MLflow's
        system-metrics monitor switched on by its environment variable)."""
        if os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "").lower() in ("1", "true"):
            return None
        import mlflow

        tags = dict(tags)
        if nested:
            tags["mlflow.parentRunId"] = mlflow.active_run().info.run_id
        run = self._insert_run(experiment_id, run_name, tags, start_time)
        if run is not None:
            internals.push_fluent_run(run)
        return run

    def _insert_run(self, experiment_id: str, run_name: str | None, tags: dict[str, str], start_time: int) -> Any:
        """On a SQL store, the run and its tags inserted in one transaction; None for other stores."""
        store = internals.sql_store_of(self.client)
        if store is None:
            return None
        return internals.sql_create_run(store, experiment_id, run_name=run_name, tags=tags, start_time=start_time,
                                        user_id=tags.get("mlflow.user", "unknown"))  # as MlflowClient does

    def find_run(self, experiment_name: str, tag_key: str, tag_value: str) -> CreatedRun | None:
        """A run created earlier for the same spooled run (its key tag), so delivery never creates it twice."""
        with quiet_store_logging():
            experiment_id = store_module.experiment_id_for(self.location, experiment_name, session=self.session)
            found = self.client.search_runs(
                [experiment_id], filter_string=f"tags.`{tag_key}` = '{tag_value}'", max_results=1)
        if not found:
            return None
        info = found[0].info
        return CreatedRun(info.run_id, experiment_id, info.artifact_uri, info.run_name, info.start_time / 1000.0)

    def write_metrics(self, run_id: str, rows: list[tuple[str, float, int, int]]) -> None:
        if not rows:
            return
        with quiet_store_logging():
            store = internals.sql_store_of(self.client)
            if store is not None:
                try:
                    internals.sql_insert_metrics(store, run_id, rows)
                    return
                except Exception as error:  # noqa: BLE001 - an outage raises again below; else MLflow's path
                    if classify(error) == OUTAGE:
                        raise
            self._log_batches(run_id, rows)

    def _log_batches(self, run_id: str, rows: list[tuple[str, float, int, int]]) -> None:
        from mlflow.entities import Metric

        metrics = [Metric(key, value, timestamp, step) for key, value, timestamp, step in rows]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])

    def finish(self, run_id: str, final: FinalRecord, *, fluent: bool = False) -> FinishOutcome:
        """Write the run's end and close it with ``final.status``. Raises only for an outage; what the store
        refuses is named in the outcome and in the run (tag and ``refused.json``)."""
        outcome = FinishOutcome()
        with quiet_store_logging():
            self._write_files(run_id, final, outcome)  # first: the run is closed only once its files are in
            try:
                self._finish_at_once(run_id, final, outcome)
            except Exception as error:  # noqa: BLE001
                if classify(error) == OUTAGE or getattr(error, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                    raise  # an outage, or no such run: nothing of it can be written
                self._finish_piece_by_piece(run_id, final, outcome, error)
            if outcome.refused:
                self._record_refusals(run_id, outcome)
        if fluent:
            internals.pop_fluent_run(run_id)
        return outcome

    def _finish_at_once(self, run_id: str, final: FinalRecord, outcome: FinishOutcome) -> None:
        store = internals.sql_store_of(self.client)
        if store is not None:
            try:
                outcome.renamed = internals.sql_finish_run(
                    store, run_id, rows=final.rows, params=final.params, tags=final.tags, status=final.status,
                    end_time=final.end_time, derive_key=derived_key, kept=outcome.kept,
                )
                return
            except Exception as error:  # noqa: BLE001 - MLflow's own path below (or an outage)
                if classify(error) == OUTAGE:
                    raise
        from mlflow.entities import Param, RunTag

        params = self._params_without_conflicts(run_id, final.params, outcome)
        self.write_metrics(run_id, final.rows)
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()],
                              tags=[RunTag(k, v) for k, v in final.tags.items()])
        self.client.set_terminated(run_id, final.status, end_time=final.end_time)

    def _params_without_conflicts(self, run_id: str, params: dict[str, str], outcome: FinishOutcome) -> dict[str, str]:
        """Params as they can be logged: one the run already holds with another value goes under a derived key."""
        existing = self.client.get_run(run_id).data.params
        result: dict[str, str] = {}
        for key, value in params.items():
            if key in existing and existing[key] != value:
                outcome.renamed[key] = derived_key(key)
                outcome.kept[key] = existing[key]
                key = derived_key(key)
            if existing.get(key) != value:
                result[key] = value
        return result

    def _finish_piece_by_piece(self, run_id: str, final: FinalRecord, outcome: FinishOutcome,
                               first_error: BaseException) -> None:
        """The store refused the run's end as a whole: write each part alone, so one bad value costs only itself."""
        from mlflow.entities import Metric, Param, RunTag

        def attempt(what: str, write: Any) -> None:
            try:
                write()
            except Exception as error:  # noqa: BLE001
                if classify(error) == OUTAGE:
                    raise
                outcome.refused.append({"item": what, "error": _one_line(error)})

        params = {}
        try:
            params = self._params_without_conflicts(run_id, final.params, outcome)
        except Exception as error:  # noqa: BLE001
            if classify(error) == OUTAGE:
                raise
            params = dict(final.params)
        for key, value in params.items():
            attempt(f"param {key}", lambda k=key, v=value: self.client.log_batch(run_id, params=[Param(k, v)]))
        for start in range(0, len(final.rows), 1000):
            chunk = final.rows[start : start + 1000]
            try:
                self._log_batches(run_id, chunk)
            except Exception as error:  # noqa: BLE001
                if classify(error) == OUTAGE:
                    raise
                for key, value, timestamp, step in chunk:
                    attempt(f"metric {key} step {step}",
                            lambda r=(key, value, timestamp, step): self.client.log_batch(run_id, metrics=[Metric(*r)]))
        for key, value in final.tags.items():
            attempt(f"tag {key}", lambda k=key, v=value: self.client.log_batch(run_id, tags=[RunTag(k, v)]))
        attempt("status", lambda: self.client.set_terminated(run_id, final.status, end_time=final.end_time))
        if not outcome.refused:
            outcome.refused.append({"item": "the run's end in one request", "error": _one_line(first_error)})

    def _write_files(self, run_id: str, final: FinalRecord, outcome: FinishOutcome) -> None:
        """Artifacts straight into the run's artifact store, then dataset inputs."""
        repository = None
        for path, artifact_path in final.artifacts:
            try:
                if repository is None:
                    repository = self._artifact_repository(run_id)
                artifact_upload.log_artifact(repository, path, artifact_path or None)
            except Exception as error:  # noqa: BLE001
                if classify(error) == OUTAGE:
                    raise
                outcome.refused.append({"item": f"artifact {Path(path).name}", "error": _one_line(error)})
        if final.datasets:
            from mlflow.entities import Dataset, DatasetInput, InputTag

            inputs = [DatasetInput(Dataset(**entity), [InputTag("mlflow.data.context", "notebook")])
                      for entity in final.datasets]
            try:
                self.client.log_inputs(run_id, inputs)
            except Exception as error:  # noqa: BLE001
                if classify(error) == OUTAGE:
                    raise
                outcome.refused.append({"item": "dataset inputs", "error": _one_line(error)})

    def _artifact_repository(self, run_id: str) -> Any:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        uri = self._artifact_uris.get(run_id) or self.client.get_run(run_id).info.artifact_uri
        return get_artifact_repository(uri, tracking_uri=self.location.uri)

    def _record_refusals(self, run_id: str, outcome: FinishOutcome) -> None:
        """Name what was refused in the run itself: a short tag and the whole list as ``refused.json``."""
        import tempfile

        from mlflow.entities import RunTag

        summary = "; ".join(item["item"] for item in outcome.refused)[:500]
        try:
            self.client.log_batch(run_id, tags=[RunTag(REFUSED_TAG, summary)])
            with tempfile.TemporaryDirectory(prefix="jt-refused-") as folder:
                path = Path(folder) / REFUSED_ARTIFACT
                path.write_text(json.dumps(outcome.refused, indent=1), encoding="utf-8")
                self.client.log_artifact(run_id, str(path))
        except Exception as error:  # noqa: BLE001 - the refusal is still named to the user
            if classify(error) == OUTAGE:
                raise


class SpoolSink:
    """Writes a run into a spool file (``spool.SpoolFile``) while the store is unreachable."""

    kind = "spool"

    def __init__(self, spool_file: Any) -> None:
        self.file = spool_file

    def write_metrics(self, run_id: str | None, rows: list[tuple[str, float, int, int]]) -> None:
        self.file.metrics(rows)

    def finish(self, run_id: str | None, final: FinalRecord, *, fluent: bool = False) -> FinishOutcome:
        self.file.finish(final)
        if fluent and run_id is not None:
            try:
                internals.pop_fluent_run(run_id)
            except Exception:  # noqa: BLE001 - MLflow is not even importable: nothing to pop
                pass
        return FinishOutcome()


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


def now_ms() -> int:
    return int(time.time() * 1000)
