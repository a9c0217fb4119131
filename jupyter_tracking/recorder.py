"""One run: its lifecycle, a background writer that batches step metrics, and the spool when the store fails.

``RunRecorder.start()`` creates the MLflow run (and makes it MLflow's active run, so ``mlflow.log_metric``
calls in the cell land in it); ``log_step()`` is the ~1 us path behind ``jt.log``; ``finish(status)`` writes
params, metrics, tags and artifacts in as few requests as possible and always closes the run.
If the store cannot be reached, everything goes to a spool file (``spool.py``) and nothing is lost.
Panels read ``recorder.series`` (filled by the writer thread); they never write.
"""

from __future__ import annotations

import collections
import math
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import store as store_module
from .limits import MAX_PARAM_LENGTH, MAX_TAG_LENGTH, clean_key, clean_mapping
from .recovery import Lease, owner_tags
from .spool import SpoolFile

WRITE_INTERVAL = 0.15  # seconds between background writes while the cell runs
FINISHED, FAILED, KILLED, RUNNING = "FINISHED", "FAILED", "KILLED", "RUNNING"


def _now_ms() -> int:
    return int(time.time() * 1000)


class StepSeries:
    """Step metrics of the running run, per key: (steps, values, wall times). Filled by the writer thread."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[list[int], list[float], list[float]]] = {}
        self.version = 0
        self.lock = threading.Lock()

    def extend(self, rows: list[tuple[str, float, int, int]]) -> None:
        """Add ``(key, value, timestamp_ms, step)`` rows."""
        if not rows:
            return
        with self.lock:
            for key, value, timestamp, step in rows:
                steps, values, times = self.data.setdefault(key, ([], [], []))
                steps.append(step)
                values.append(value)
                times.append(timestamp / 1000.0)
            self.version += 1

    def snapshot(self) -> dict[str, tuple[list[int], list[float], list[float]]]:
        with self.lock:
            return {key: (list(s), list(v), list(t)) for key, (s, v, t) in self.data.items()}

    def keys(self) -> set[str]:
        with self.lock:
            return set(self.data)


@dataclass
class RunSummary:
    """What a finished run recorded, for the run card."""

    run_id: str | None
    run_name: str | None
    experiment_id: str | None
    experiment_name: str
    status: str
    start_time: float
    end_time: float
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    step_counts: dict[str, int] = field(default_factory=dict)
    last_step_values: dict[str, float] = field(default_factory=dict)
    withheld: list[str] = field(default_factory=list)
    spooled: bool = False
    tracking_uri: str = ""
    cell_key: str | None = None


class RunRecorder:
    """One MLflow run, from ``start()`` to ``finish(status)``; see the module docstring."""

    def __init__(
        self,
        location: store_module.StoreLocation,
        experiment_name: str,
        *,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        parent_run_id: str | None = None,
        total_steps: int | None = None,
        make_active: bool = True,
        notify: Any = None,
    ) -> None:
        self.location = location
        self.experiment_name = experiment_name
        self.experiment_id: str | None = None
        self.run_name = run_name
        self.run_id: str | None = None
        self.artifact_uri: str | None = None
        self.parent_run_id = parent_run_id
        self.description = description
        self.total_steps = total_steps
        self.make_active = make_active
        self.status = RUNNING
        self.start_time = time.time()
        self.series = StepSeries()
        self.observers: list[Any] = []
        self._tags = dict(tags or {})
        # Kept apart: start() hands the start tags to MLflow and empties self._tags.
        self.cell_key: str | None = self._tags.get("jupyter_tracking.cell_key")
        self._params: dict[str, str] = {}
        self._metrics: dict[str, float] = {}
        self._points: collections.deque = collections.deque()
        self._next_step: dict[str, int] = {}
        self._key_cache: dict[str, str] = {}
        self._pending_rows: list[tuple[str, float, int, int]] = []
        self._inflight: list[tuple[str, float, int, int]] | None = None  # the batch being written now
        self._last_seen_alive = float("-inf")  # monotonic time the (server) store last answered a check
        self._artifacts: list[tuple[str, str | None]] = []
        self._datasets: list[Any] = []
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self._spool: SpoolFile | None = None
        self._client = None
        self._fluent_active = False
        self._writer: threading.Thread | None = None
        self._stop = threading.Event()
        self._write_lock = threading.Lock()  # held while a batch is written
        self._drain_lock = threading.Lock()  # held while queued points become rows (never during a request)
        self._notify = notify or (lambda message: print(f"jupyter_tracking: {message}", file=sys.stderr))
        self._notified: set[str] = set()
        self._lease: Lease | None = None  # the run's sign of life while it is open (recovery.py)
        self.logged_keys: set[str] = set()  # step-series keys (jt.log and mlflow.log_metric)
        self.withheld: set[str] = set()  # names not logged because they look like credentials

    # ------------------------------------------------------------------ notices
    def notice(self, message: str, *, key: str | None = None) -> None:
        """Tell the user once (per ``key``)."""
        key = key or message
        if key not in self._notified:
            self._notified.add(key)
            self._notify(message)

    # ------------------------------------------------------------------ start
    def add_observer(self, observer: Any) -> None:
        self.observers.append(observer)

    def start(self) -> None:
        """Create the run (or its spool file when the store is unreachable) and start the writer thread."""
        self._tags.setdefault("mlflow.user", _user())
        self._tags.update(owner_tags())
        if self.parent_run_id:
            self._tags["mlflow.parentRunId"] = self.parent_run_id
        if self.description:
            self._tags["mlflow.note.content"] = self.description
        tags, _ = clean_mapping(self._tags, MAX_TAG_LENGTH)
        self._tags = {}
        try:
            if not store_module.is_reachable(self.location):
                raise ConnectionError(f"cannot reach {store_module.redact_uri(self.location.uri)}")
            try:
                self._connect_and_create(tags)
            except Exception as error:  # noqa: BLE001
                if _interrupt_in(error) is not None or self.run_id is not None:
                    raise
                # A new SQLite store being created by another process at this moment: try once more.
                time.sleep(0.5)
                self._connect_and_create(tags)
        except KeyboardInterrupt:
            self.abort(KILLED)
            raise
        except Exception as error:  # noqa: BLE001 - any store failure: keep the cell running, spool
            interrupt = _interrupt_in(error)
            if interrupt is not None:  # MLflow/SQLAlchemy wrapped the user's interrupt: honour it
                self.abort(KILLED)
                raise interrupt from None
            self._start_spool(error, tags)
        if self.run_id is not None:
            self._lease = Lease(self._client, self.location)
            self._lease.start(self.run_id)
        self._writer = threading.Thread(target=self._write_loop, name="jt-writer", daemon=True)
        self._writer.start()
        for observer in list(self.observers):
            self._call_observer(observer, "on_run_start", self)

    def _connect_and_create(self, tags: dict[str, str]) -> None:
        self._client = store_module.client_for(self.location)
        self.experiment_id = _experiment_id(self.location, self.experiment_name)
        self._create_run(tags)

    def abort(self, status: str) -> None:
        """Close a run whose start was interrupted (no capture, no card); never raises."""
        self.status = status
        self._stop.set()
        if self._lease is not None:
            self._lease.stop()
        if self.run_id is None:
            return
        try:
            if self._fluent_active:
                self._end_fluent_run(status)
            elif self._client is not None:
                self._client.set_terminated(self.run_id, status)
        except BaseException:  # noqa: BLE001 - a second interrupt: the run stays as it is
            pass

    def _create_run(self, tags: dict[str, str]) -> None:
        import mlflow

        if self.make_active:
            _point_mlflow_at(self.location.uri)
            active = mlflow.active_run()
            if active is not None and active.info.run_id != self.parent_run_id:
                # A run left open by code outside tracking would swallow ours: close it as MLflow would.
                self.notice(f"closed the MLflow run {active.info.run_id} that was left active before this cell")
                mlflow.end_run()
            run = mlflow.start_run(
                experiment_id=self.experiment_id, run_name=self.run_name, tags=tags,
                nested=self.parent_run_id is not None and mlflow.active_run() is not None,
            )
            self._fluent_active = True
        else:
            run = self._client.create_run(self.experiment_id, run_name=self.run_name, tags=tags)
        self.run_id = run.info.run_id
        self.artifact_uri = run.info.artifact_uri
        self.run_name = run.info.run_name
        self.start_time = run.info.start_time / 1000.0

    def _start_spool(self, error: BaseException, tags: dict[str, str] | None = None) -> None:
        if self._spool is not None:
            return
        info = {
            "run_name": self.run_name, "start_time": int(self.start_time * 1000),
            "tags": tags if tags is not None else {},
        }
        self._spool = SpoolFile(self.location.uri, self.experiment_name, self.run_id, info)
        self.notice(
            f"{store_module.describe_store_error(error, self.location)}. This run is kept in "
            f"{self._spool.path.parent} and delivered by `%track sync` (or the next successful run).",
            key="spool",
        )

    # ------------------------------------------------------------------ logging (any thread)
    def log_step(self, step: int | None, metrics: dict[str, Any], total: int | None = None) -> None:
        """Queue step metrics; the hot path behind ``jt.log`` (no validation here, the writer does it)."""
        if total is not None:
            self.total_steps = total
        self._points.append((time.time(), step, metrics))

    def mirror_logged_metric(self, key: str, value: Any, step: int | None, timestamp: int | None) -> None:
        """A metric the cell logged itself through MLflow: shown live, never logged again by us."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            return
        key = clean_key(key)
        self.logged_keys.add(key)
        if step is None:
            step = self._next_step.get(key, 0)
        self._next_step[key] = max(self._next_step.get(key, 0), step + 1)
        self.series.extend([(key, number, timestamp or _now_ms(), step)])

    def add_params(self, params: dict[str, str]) -> None:
        cleaned, changed = clean_mapping(params, MAX_PARAM_LENGTH)
        if changed:
            self.notice(f"shortened or renamed params MLflow would reject: {', '.join(sorted(changed)[:5])}", key="params")
        self._params.update(cleaned)

    def add_metrics(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._metrics[self._clean_metric_key(key)] = value

    def add_series(self, series: dict[str, list[float]]) -> None:
        now = _now_ms()
        rows = [
            (self._clean_metric_key(key), value, now, step)
            for key, values in series.items()
            for step, value in enumerate(values)
        ]
        self.logged_keys.update(self._clean_metric_key(key) for key in series)
        self.series.extend(rows)
        self._pending_rows.extend(rows)

    def set_tags(self, tags: dict[str, str]) -> None:
        self._tags.update({k: str(v) for k, v in tags.items()})

    def add_text_artifact(self, text: str, artifact_path: str, filename: str) -> None:
        path = self._tmp_path(artifact_path, filename)
        path.write_text(text, encoding="utf-8")
        self._artifacts.append((str(path), artifact_path))

    def add_file_artifact(self, path: str, artifact_path: str | None) -> None:
        self._artifacts.append((path, artifact_path))

    def tmp_path(self, artifact_path: str, filename: str) -> Path:
        """A fresh local path for an artifact file, removed after the run is written."""
        return self._tmp_path(artifact_path, filename)

    def _tmp_path(self, artifact_path: str, filename: str) -> Path:
        if self._tmpdir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="jt-artifacts-")
        folder = Path(self._tmpdir.name) / artifact_path
        folder.mkdir(parents=True, exist_ok=True)
        return folder / filename

    def add_dataset(self, entity: Any) -> None:
        self._datasets.append(entity)

    # ------------------------------------------------------------------ writer
    def _clean_metric_key(self, key: str) -> str:
        cleaned = self._key_cache.get(key)
        if cleaned is None:
            cleaned = clean_key(key)
            if cleaned != key:
                self.notice(f"metric key {key!r} renamed to {cleaned!r} for MLflow", key=f"key:{key}")
            self._key_cache[key] = cleaned
        return cleaned

    def _drain(self) -> list[tuple[str, float, int, int]]:
        """Turn queued ``jt.log`` points into metric rows ``(key, value, timestamp_ms, step)``."""
        rows: list[tuple[str, float, int, int]] = []
        points = self._points
        next_step = self._next_step
        while True:
            try:
                wall, step, metrics = points.popleft()
            except IndexError:
                break
            timestamp = int(wall * 1000)
            for key, value in metrics.items():
                try:
                    number = float(value.item() if hasattr(value, "item") else value)
                except (TypeError, ValueError, AttributeError):
                    self.notice(f"jt.log({key}=...) is not a number: skipped", key=f"nan:{key}")
                    continue
                key = self._clean_metric_key(key)
                this_step = step if step is not None else next_step.get(key, 0)
                try:
                    this_step = int(this_step)
                except (TypeError, ValueError):
                    this_step = next_step.get(key, 0)
                next_step[key] = this_step + 1
                rows.append((key, number, timestamp, this_step))
        if rows:
            self.logged_keys.update(row[0] for row in rows)
            self.series.extend(rows)
        return rows

    def drain_now(self) -> set[str]:
        """Move queued points to the pending write (so their keys are known); returns the step-series keys.

        Takes only the drain lock: the writer may be stuck in a request to a dying server with the write lock.
        """
        with self._drain_lock:
            self._pending_rows.extend(self._drain())
        return set(self.logged_keys)

    def _write_loop(self) -> None:
        while not self._stop.wait(WRITE_INTERVAL):
            with self._drain_lock:
                rows = self._drain()
            if rows:
                with self._write_lock:
                    self._write_rows(rows)

    def _write_rows(self, rows: list[tuple[str, float, int, int]]) -> None:
        if not rows:
            return
        if self._spool is None and self.run_id is not None:
            if self._store_gone():
                self._start_spool(ConnectionError("the store stopped answering"))
            else:
                self._inflight = rows
                try:
                    _write_metric_rows(self._client, self.run_id, rows)
                    return
                except Exception as error:  # noqa: BLE001
                    self._start_spool(error)
                finally:
                    self._inflight = None
        self._spool.batch({}, rows, {})

    def _store_gone(self, fresh: bool = False) -> bool:
        """For server stores, a quick check first: MLflow's own retries take minutes against a dead server.

        An answer counts for 2 s (unless ``fresh``), so a busy writer does not ask before every batch.
        """
        if not self.location.is_remote:
            return False
        now = time.monotonic()
        if not fresh and now - self._last_seen_alive < 2.0:
            return False
        if store_module.is_reachable(self.location, timeout=3.0):
            self._last_seen_alive = now
            return False
        return True

    def _wait_for_writer(self) -> bool:
        """Wait for the writer's last batch; give up at once (False) if a server store stopped answering."""
        if self._writer is None:
            return True
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self._writer.join(timeout=1.0)
            if not self._writer.is_alive():
                return True
            if self._store_gone(fresh=True):
                return False
        return False

    # ------------------------------------------------------------------ finish
    def finish(self, status: str) -> RunSummary:
        """Write everything still pending and close the run with ``status``; never raises."""
        self.status = status
        self._stop.set()
        writer_done = self._wait_for_writer()
        # A writer stuck in MLflow's HTTP retries keeps its lock: do not wait for it, spool its batch too.
        locked = self._write_lock.acquire(timeout=-1 if writer_done else 0)
        try:
            with self._drain_lock:
                rows = self._pending_rows + self._drain()
                self._pending_rows = []
            if not writer_done:
                rows = list(self._inflight or []) + rows
                self._start_spool(ConnectionError("the store stopped answering"))
            metrics_now = _now_ms()
            single = [
                (key, value, metrics_now, 0) for key, value in self._metrics.items() if key not in self.logged_keys
            ]
            tags, _ = clean_mapping(self._tags, MAX_TAG_LENGTH)
            end_time = _now_ms()
            if self._spool is None and self.run_id is not None and self._store_gone(fresh=True):
                self._start_spool(ConnectionError("the store stopped answering"))
            if self._spool is None and self.run_id is not None:
                try:
                    self._write_final(rows, single, tags, status, end_time)
                except Exception as error:  # noqa: BLE001
                    self._start_spool(error)
                    self._spool_final(rows, single, tags, status, end_time)
            else:
                self._spool_final(rows, single, tags, status, end_time)
            self._end_fluent_run(status)
        finally:
            if locked:
                self._write_lock.release()
            if self._lease is not None:
                self._lease.stop()
        snapshot = self.series.snapshot()
        summary = RunSummary(
            run_id=self.run_id, run_name=self.run_name, experiment_id=self.experiment_id,
            experiment_name=self.experiment_name, status=status, start_time=self.start_time,
            end_time=end_time / 1000.0, params=dict(self._params),
            metrics={key: value for key, value, _, _ in single},
            step_counts={key: len(values) for key, (_, values, _) in snapshot.items()},
            last_step_values={key: values[-1] for key, (_, values, _) in snapshot.items() if values},
            withheld=sorted(self.withheld),
            spooled=self._spool is not None, tracking_uri=store_module.redact_uri(self.location.uri),
            cell_key=self.cell_key,
        )
        for observer in list(self.observers):
            self._call_observer(observer, "on_run_end", self, status)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
        return summary

    def _write_final(self, rows, single, tags, status, end_time) -> None:
        from mlflow.entities import Metric, Param, RunTag

        client = self._client
        _write_metric_rows(client, self.run_id, rows)
        client.log_batch(
            self.run_id,
            metrics=[Metric(key, value, timestamp, step) for key, value, timestamp, step in single],
            params=[Param(key, value) for key, value in self._params.items()],
            tags=[RunTag(key, value) for key, value in tags.items()],
        )
        self._log_artifacts(client)
        if self._datasets:
            from mlflow.entities import Dataset, DatasetInput, InputTag

            client.log_inputs(
                self.run_id,
                [DatasetInput(Dataset(**entity), [InputTag("mlflow.data.context", "notebook")]) for entity in self._datasets],
            )
        if not self._fluent_active:
            client.set_terminated(self.run_id, status, end_time=end_time)

    def _log_artifacts(self, client: Any) -> None:
        """Write the artifact files straight to the run's artifact store (no extra request for the run)."""
        if not self._artifacts:
            return
        repository = None
        if self.artifact_uri:
            try:
                from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

                repository = get_artifact_repository(self.artifact_uri, tracking_uri=self.location.uri)
            except Exception:  # noqa: BLE001 - MLflow's own path below finds the repository itself
                repository = None
        for path, artifact_path in self._artifacts:
            if repository is not None:
                repository.log_artifact(path, artifact_path or None)
            else:
                client.log_artifact(self.run_id, path, artifact_path or None)

    def _spool_final(self, rows, single, tags, status, end_time) -> None:
        spool = self._spool
        spool.batch({}, rows, {})
        spool.batch(self._params, single, tags)
        for path, artifact_path in self._artifacts:
            spool.artifact(path, artifact_path)
        for entity in self._datasets:
            spool.dataset(entity)
        spool.end(status, end_time)

    def _end_fluent_run(self, status: str) -> None:
        if not self._fluent_active:
            return
        import mlflow

        self._fluent_active = False
        try:
            if self._spool is None:
                mlflow.end_run(status=status)
            else:
                # The store is gone: drop the run from MLflow's stack without a request (sync closes it).
                _pop_fluent_run()
        except Exception as error:  # noqa: BLE001
            self._start_spool(error)
            self._spool.end(status, _now_ms())
            _pop_fluent_run()

    def _call_observer(self, observer: Any, method: str, *args: Any) -> None:
        handler = getattr(observer, method, None)
        if handler is None:
            return
        try:
            handler(*args)
        except Exception as error:  # noqa: BLE001 - a panel must never break the cell or the run
            self.notice(f"{type(observer).__name__}.{method} failed: {_short_error(error)}", key=f"obs:{method}")


# ---------------------------------------------------------------------- helpers
_experiment_ids: dict[tuple[str, str], str] = {}


def _experiment_id(location: store_module.StoreLocation, name: str) -> str:
    key = (location.uri, name)
    if key not in _experiment_ids:
        _experiment_ids[key] = store_module.experiment_id_for(location, name)
    return _experiment_ids[key]


def forget_experiment_ids() -> None:
    _experiment_ids.clear()


def _point_mlflow_at(uri: str) -> None:
    """Make MLflow's fluent API use ``uri`` (so the cell's own mlflow calls land in our store).

    ``mlflow.set_tracking_uri`` also writes MLFLOW_TRACKING_URI into the environment, which would then
    override our own store resolution for the rest of the session: put the environment back.
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return os.environ.get("USER", "unknown")


def _interrupt_in(error: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt behind ``error`` (libraries sometimes wrap it), if any."""
    seen = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _short_error(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first[:200]}" if first else type(error).__name__


def _pop_fluent_run() -> None:
    """Remove the active run from MLflow's run stack without contacting the store."""
    try:
        from mlflow.tracking import fluent

        stack = fluent._active_run_stack.get()
        if stack:
            stack.pop()
    except Exception:  # noqa: BLE001 - older/newer MLflow: end_run would have raised the same way
        pass


def _write_metric_rows(client: Any, run_id: str, rows: list[tuple[str, float, int, int]]) -> None:
    """Write metric rows; one bulk insert on SQL stores, ``log_batch`` (1,000 per request) elsewhere."""
    if not rows:
        return
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    if store is not None and type(store).__name__ in ("SqlAlchemyStore", "WorkspaceAwareSqlAlchemyStore"):
        try:
            _bulk_insert_metrics(store, run_id, rows)
            return
        except Exception:  # noqa: BLE001 - fall back to MLflow's own path (handles duplicates etc.)
            pass
    from mlflow.entities import Metric

    metrics = [Metric(key, value, timestamp, step) for key, value, timestamp, step in rows]
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])


_MAX_DOUBLE = sys.float_info.max


def _bulk_insert_metrics(store: Any, run_id: str, rows: list[tuple[str, float, int, int]]) -> None:
    """Insert metric rows with one executemany on MLflow's own tables, updating its latest-metric table.

    MLflow's ORM path costs ~0.1 s per 1,000 points on SQLite; this costs ~0.006 s. Values are sanitised
    as MLflow does (NaN stored with is_nan, infinities clamped).
    """
    from mlflow.store.tracking.dbmodels.models import SqlMetric

    records = []
    seen = set()
    latest: dict[str, tuple] = {}
    for key, value, timestamp, step in rows:
        is_nan = math.isnan(value)
        stored = 0.0 if is_nan else max(-_MAX_DOUBLE, min(_MAX_DOUBLE, value))
        identity = (key, timestamp, step, stored, is_nan)
        if identity in seen:
            continue
        seen.add(identity)
        records.append(
            {"run_uuid": run_id, "key": key, "value": stored, "timestamp": timestamp, "step": step, "is_nan": is_nan}
        )
        order = (step, timestamp, stored)
        if key not in latest or order > latest[key][0]:
            latest[key] = (order, records[-1])
    with store.ManagedSessionMaker() as session:
        session.execute(SqlMetric.__table__.insert(), records)
        store._update_latest_metrics_if_necessary([SqlMetric(**record) for _, record in latest.values()], session)
