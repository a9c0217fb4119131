"""One run: its step-metric buffers, a background writer, and the sink it writes through.

``RunRecorder.start()`` creates the run through an ``MlflowSink`` (making it MLflow's active run, so the cell's
own ``mlflow.log_*`` calls land in it); ``log_step()`` is the sub-microsecond path behind ``jt.log``: it queues
the point and packs queued points into typed arrays every few hundred (32 bytes a point, nothing for the garbage
collector to walk); a writer thread turns them into rows every 0.15 s and writes them; ``finish(status)`` writes the rest and closes the run in one go.
When the store is unreachable the recorder swaps to a ``SpoolSink`` once, and nothing is lost; what the store
refuses is recorded in the run (``sinks.py``). Panels read ``recorder.series``; they never write.
"""

from __future__ import annotations

import collections
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import internals
from . import store as store_module
from .limits import MAX_PARAM_LENGTH, MAX_TAG_LENGTH, KeyCleaner, clean_mapping
from .recovery import Lease, owner_tags
from .secret_filter import redact_params, redact_source, redact_tags, redact_text
from .sinks import OUTAGE, FinalRecord, MlflowSink, SpoolSink, classify, now_ms

WRITE_INTERVAL = 0.15  # seconds between background writes while the cell runs
PACK_AT = 512  # queued jt.log points packed into typed arrays at once (bounds what the GC sees)
FINISHED, FAILED, KILLED, RUNNING = "FINISHED", "FAILED", "KILLED", "RUNNING"
AUTO_STEP = -(2**63)  # in the step buffer: "the next step of this key"
_INT64 = 2**63
_time = time.time


class StepSeries:
    """Step metrics of the running run, per key: typed arrays of steps, values and wall times (seconds).

    Filled by the writer thread; the live panel reads slices under ``lock`` and watches ``version``.
    """

    def __init__(self) -> None:
        self.data: dict[str, tuple[array, array, array]] = {}
        self.version = 0
        self.lock = threading.Lock()

    def extend(self, rows: list[tuple[str, float, int, int]]) -> None:
        """Add ``(key, value, timestamp_ms, step)`` rows."""
        if not rows:
            return
        with self.lock:
            data = self.data
            for key, value, timestamp, step in rows:
                arrays = data.get(key)
                if arrays is None:
                    arrays = data[key] = (array("q"), array("d"), array("d"))
                arrays[0].append(step)
                arrays[1].append(value)
                arrays[2].append(timestamp / 1000.0)
            self.version += 1

    def snapshot(self) -> dict[str, tuple[list[int], list[float], list[float]]]:
        with self.lock:
            return {key: (s.tolist(), v.tolist(), t.tolist()) for key, (s, v, t) in self.data.items()}

    def counts_and_last(self) -> tuple[dict[str, int], dict[str, float]]:
        with self.lock:
            counts = {key: len(values) for key, (_, values, _) in self.data.items()}
            last = {key: values[-1] for key, (_, values, _) in self.data.items() if len(values)}
        return counts, last

    def latest(self) -> dict[str, tuple[int, float]]:
        """Each key's latest ``(step, value)``: what a sweep's table shows of a running combination."""
        with self.lock:
            return {key: (steps[-1], values[-1]) for key, (steps, values, _) in self.data.items() if values}

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
    child_runs: list[tuple[str, str]] = field(default_factory=list)  # (run id, name) of runs the cell started
    renamed_params: dict[str, str] = field(default_factory=dict)  # captured param -> derived key
    refused: list[str] = field(default_factory=list)  # what the store refused
    cell_logged: bool = False  # the cell (its MLflow calls, autolog) wrote into the run itself
    note: str | None = None  # --note (the run's description)


class RunRecorder:
    """One MLflow run, from ``start()`` to ``finish(status)``; see the module docstring."""

    def __init__(
        self,
        location: store_module.StoreLocation,
        experiment_name: str,
        *,
        session: Any = None,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        parent_run_id: str | None = None,
        total_steps: int | None = None,
        make_active: bool = True,
        notify: Any = None,
    ) -> None:
        from .session import current_session

        self.session = session or current_session()
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
        # True: the run's end may be written after the cell returns (run_ends.py); set by the %%track cell.
        self.end_later = False
        self.cell_logged = False  # the cell wrote to the run itself (MLflow calls, autolog): its end is written now
        self.status = RUNNING
        self.start_time = time.time()
        self.series = StepSeries()
        self.observers: list[Any] = []
        self.child_runs: list[tuple[str, str]] = []
        self._tags = dict(tags or {})
        self.cell_key: str | None = self._tags.get("jupyter_tracking.cell_key")
        self._params: dict[str, str] = {}
        self._metrics: dict[str, float] = {}
        # jt.log's points: queued as given, packed (under the drain lock) into one entry per point in each of
        # the typed buffers (value, step, wall time, key id): 32 bytes a point.
        self._queue: collections.deque = collections.deque()
        self._values, self._steps, self._times, self._kids = array("d"), array("q"), array("d"), array("q")
        self._key_ids: dict[str, int] = {}
        self._clean_keys: list[str] = []  # key id -> the key as stored
        self._next_step: dict[str, int] = {}
        self._metric_keys = KeyCleaner()  # distinct keys stay distinct after cleaning
        self._pending_rows: list[tuple[str, float, int, int]] = []
        self._inflight: list[tuple[str, float, int, int]] | None = None  # the batch being written now
        self._last_seen_alive = float("-inf")
        self._artifacts: list[tuple[str, str | None]] = []
        self._datasets: list[Any] = []
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self._sink: Any = None
        self._spool_file: Any = None
        self._fluent = False
        self._writer: threading.Thread | None = None
        self._stop = threading.Event()
        self._write_lock = threading.Lock()  # held while a batch is written
        self._drain_lock = threading.Lock()  # held while points are packed or taken from the buffers (short)
        self._convert_lock = threading.Lock()  # held while taken points become rows (never during a request)
        self._notify = notify or (lambda message: print(f"jupyter_tracking: {message}", file=sys.stderr))
        self._notified: set[str] = set()
        self._lease: Lease | None = None  # the run's sign of life while it is open (recovery.py)
        self.logged_keys: set[str] = set()  # step-series keys (jt.log and mlflow.log_metric)
        self.withheld: set[str] = set()  # names not logged because they look like credentials
        self.refused: list[str] = []

    @property
    def spooled(self) -> bool:
        return self._spool_file is not None

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
        self.run_name = redact_text(self.run_name) if self.run_name else self.run_name
        tags, dropped = redact_tags(self._tags)
        self.withheld.update(dropped)  # `-t api_token=...`: named in the withheld tag like a param would be
        tags, _ = clean_mapping(tags, MAX_TAG_LENGTH)
        self._tags = {}
        sink = MlflowSink(self.location, self.session)
        try:
            if not store_module.is_reachable(self.location):
                raise ConnectionError(f"cannot reach {store_module.redact_uri(self.location.uri)}")
            created = sink.create_run(
                self.experiment_name, run_name=self.run_name, tags=tags, start_time=int(self.start_time * 1000),
                fluent_parent=self.parent_run_id, make_active=self.make_active,
            )
        except KeyboardInterrupt:
            self.abort(KILLED)
            raise
        except Exception as error:  # noqa: BLE001 - any store failure: keep the cell running, spool
            interrupt = _interrupt_in(error)
            if interrupt is not None:  # MLflow/SQLAlchemy wrapped the user's interrupt: honour it
                self.abort(KILLED)
                raise interrupt from None
            self._swap_to_spool(error, tags)
        else:
            self._sink = sink
            self._fluent = self.make_active
            self.run_id, self.experiment_id = created.run_id, created.experiment_id
            self.artifact_uri, self.run_name, self.start_time = created.artifact_uri, created.run_name, created.start_time
        if self.run_id is not None:
            self._lease = Lease(sink.client, self.location)
            self._lease.start(self.run_id)
        self._writer = threading.Thread(target=self._write_loop, name="jt-writer", daemon=True)
        self._writer.start()
        for observer in list(self.observers):
            self._call_observer(observer, "on_run_start", self)

    def abort(self, status: str) -> None:
        """Close a run whose start was interrupted (no capture, no card); never raises."""
        self.status = status
        self._stop.set()
        if self._lease is not None:
            self._lease.stop()
        if self.run_id is None or self._sink is None:
            return
        try:
            self._sink.finish(self.run_id, FinalRecord([], {}, {}, status, now_ms()), fluent=self._fluent)
            self._fluent = False
        except BaseException:  # noqa: BLE001 - a second interrupt: the run is ended by recovery later
            pass

    def _swap_to_spool(self, error: BaseException, tags: dict[str, str] | None = None) -> None:
        """The store is unreachable: from now on this run goes to a spool file (once)."""
        if self._spool_file is not None:
            return
        from .spool import RUN_KEY_TAG, SpoolFile

        header = {
            "uri": self.location.uri, "experiment": self.experiment_name, "run_id": self.run_id,
            "run_name": self.run_name, "start_time": int(self.start_time * 1000),
        }
        if self.run_id is None:
            run_key = uuid.uuid4().hex
            header["run_key"] = run_key
            header["tags"] = {**(tags or {}), RUN_KEY_TAG: run_key}
        self._spool_file = SpoolFile(header)
        self._sink = SpoolSink(self._spool_file)
        where = self._spool_file.path.parent
        self.notice(
            f"{store_module.describe_store_error(error, self.location)}. This run is kept in {where} and "
            "delivered by `%track sync` (or the next successful run).",
            key="spool",
        )

    # ------------------------------------------------------------------ logging (any thread)
    def log_step(self, step: int | None, metrics: dict[str, Any], total: int | None = None) -> None:
        """Queue step metrics; the hot path behind ``jt.log`` (~0.1 us over the call itself). Every
        ``PACK_AT`` points they are packed into typed arrays, so a long loop holds 32 bytes a point and leaves the
        garbage collector nothing to walk. Steps the store cannot hold (beyond 64 bits, not finite) and values
        that are not numbers are refused when packed, with one warning, and never sent."""
        if total is not None:
            self.total_steps = total
        queue = self._queue
        queue.append((_time(), step, metrics))
        if len(queue) >= PACK_AT:
            with self._drain_lock:
                self._pack()

    def _pack(self) -> None:
        """Move queued points into the typed buffers (the caller holds the drain lock)."""
        queue = self._queue
        ids = self._key_ids
        values, steps, times, kids = self._values, self._steps, self._times, self._kids
        for _ in range(len(queue)):
            wall, step, metrics = queue.popleft()
            if step is None:
                step = AUTO_STEP
            elif type(step) is not int or not AUTO_STEP < step < _INT64:
                step = self._checked_step(step, metrics)
                if step is None:
                    continue
            for key, value in metrics.items():
                try:
                    number = float(value)
                except (TypeError, ValueError, OverflowError):
                    number = self._converted(key, value)
                    if number is None:
                        continue
                kid = ids.get(key)
                if kid is None:
                    kid = self._new_key(key)
                values.append(number)
                steps.append(step)
                times.append(wall)
                kids.append(kid)

    def _checked_step(self, step: Any, metrics: dict[str, Any]) -> int | None:
        """A step that is not a plain int in MLflow's 64-bit range: converted, or refused once (None)."""
        keys = ", ".join(sorted(map(str, metrics))) or "no metric"
        try:
            as_float = float(step)
            if not math.isfinite(as_float):
                raise ValueError
            whole = int(step)
        except (TypeError, ValueError, OverflowError):
            self.notice(f"jt.log(step={_short(step)}) is not a whole number: point of {keys} not logged",
                        key="step:nan")
            return None
        if not AUTO_STEP < whole < _INT64:
            self.notice(f"jt.log(step={_short(step)}) is beyond the 64-bit steps MLflow stores: point of {keys} "
                        "not logged", key="step:big")
            return None
        return whole

    def _converted(self, key: str, value: Any) -> float | None:
        """A value ``float()`` did not take (a 0-d array, a string): converted, or refused once (None)."""
        try:
            return float(value.item() if hasattr(value, "item") else value)
        except (TypeError, ValueError, AttributeError, OverflowError):
            self.notice(f"jt.log({key}=...) is not a number: skipped", key=f"nan:{key}")
            return None

    def _new_key(self, key: str) -> int:
        kid = len(self._clean_keys)
        self._clean_keys.append(self._clean_metric_key(key))
        self._key_ids[key] = kid
        return kid

    def mirror_logged_metric(self, key: str, value: Any, step: int | None, timestamp: int | None) -> None:
        """A metric the cell logged itself through MLflow: shown live, never logged again by us."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            return
        key = self._clean_metric_key(key)
        self.logged_keys.add(key)
        if step is None:
            step = self._next_step.get(key, 0)
        self._next_step[key] = max(self._next_step.get(key, 0), step + 1)
        self.series.extend([(key, number, timestamp or now_ms(), step)])

    def add_params(self, params: dict[str, str]) -> None:
        params, withheld = redact_params(params)
        self.withheld.update(withheld)
        cleaned, changed = clean_mapping(params, MAX_PARAM_LENGTH, taken=self._params)
        if changed:
            self.notice(f"shortened or renamed params MLflow would reject: {', '.join(sorted(changed)[:5])}", key="params")
        self._params.update(cleaned)

    def add_metrics(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._metrics[self._clean_metric_key(key)] = value

    def add_series(self, series: dict[str, list[float]]) -> None:
        now = now_ms()
        rows = [
            (self._clean_metric_key(key), value, now, step)
            for key, values in series.items()
            for step, value in enumerate(values)
        ]
        self.logged_keys.update(self._clean_metric_key(key) for key in series)
        self.series.extend(rows)
        self._pending_rows.extend(rows)

    def add_logged_points(self, rows: list[tuple[str, float, int, int]]) -> None:
        """Step points logged elsewhere (a sweep trial in a worker): ``(key, value, timestamp_ms, step)`` rows
        kept with their own times and steps, written with the run's end."""
        rows = [(self._clean_metric_key(key), float(value), int(at), int(step)) for key, value, at, step in rows]
        with self._convert_lock:
            self.logged_keys.update(key for key, _, _, _ in rows)
            self.series.extend(rows)
            self._pending_rows.extend(rows)

    def set_tags(self, tags: dict[str, str]) -> None:
        self._tags.update(redact_tags(tags)[0])

    def add_text_artifact(self, text: str, artifact_path: str, filename: str) -> None:
        path = self.tmp_path(artifact_path, filename)
        redact = redact_source if filename.endswith(".py") else redact_text  # source stays valid Python
        path.write_text(redact(text), encoding="utf-8")
        self._artifacts.append((str(path), artifact_path))

    def add_file_artifact(self, path: str, artifact_path: str | None) -> None:
        self._artifacts.append((path, artifact_path))

    def tmp_path(self, artifact_path: str, filename: str) -> Path:
        """A fresh local path for an artifact file, removed after the run is written."""
        if self._tmpdir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="jt-artifacts-")
        folder = Path(self._tmpdir.name) / artifact_path
        folder.mkdir(parents=True, exist_ok=True)
        return folder / filename

    def add_dataset(self, entity: Any) -> None:
        self._datasets.append(entity)

    # ------------------------------------------------------------------ writer
    def _clean_metric_key(self, key: str) -> str:
        cleaned = self._metric_keys.clean(key)
        if cleaned != key:
            self.notice(f"metric key {key!r} renamed to {cleaned!r} for MLflow", key=f"key:{key}")
        return cleaned

    def _drain(self) -> list[tuple[str, float, int, int]]:
        """Turn buffered ``jt.log`` points into metric rows ``(key, value, timestamp_ms, step)`` (the caller
        holds the convert lock). The drain lock, which ``jt.log`` may wait for, is held only to take the buffers."""
        with self._drain_lock:
            self._pack()
            count = len(self._kids)
            if not count:
                return []
            buffers = (self._values, self._steps, self._times, self._kids)
            values, steps, times, kids = (buffer[:count] for buffer in buffers)
            for buffer in buffers:
                del buffer[:count]
            keys = list(self._clean_keys)
        next_step = self._next_step
        rows = []
        for value, step, wall, kid in zip(values, steps, times, kids):
            key = keys[kid]
            if step == AUTO_STEP:
                step = next_step.get(key, 0)
            next_step[key] = step + 1
            rows.append((key, value, int(wall * 1000), step))
        self.logged_keys.update(keys[kid] for kid in set(kids))
        self.series.extend(rows)
        return rows

    def drain_now(self) -> set[str]:
        """Move buffered points to the pending write (so their keys are known); returns the step-series keys.

        Takes only the convert lock: the writer may be stuck in a request to a dying server with the write lock.
        """
        with self._convert_lock:
            self._pending_rows.extend(self._drain())
        return set(self.logged_keys)

    def _write_loop(self) -> None:
        while not self._stop.wait(WRITE_INTERVAL):
            with self._convert_lock:
                rows = self._drain()
            if rows:
                with self._write_lock:
                    self._write_rows(rows)

    def _write_rows(self, rows: list[tuple[str, float, int, int]]) -> None:
        if self._sink.kind == "mlflow" and self._store_gone():
            self._swap_to_spool(ConnectionError("the store stopped answering"))
        self._inflight = rows
        try:
            self._sink.write_metrics(self.run_id, rows)
        except Exception as error:  # noqa: BLE001
            if classify(error) == OUTAGE:
                self._swap_to_spool(error)
                self._sink.write_metrics(self.run_id, rows)
            else:  # written again at the end, point by point if need be: one bad point costs only itself
                self._pending_rows.extend(rows)
        finally:
            self._inflight = None

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
        renamed: dict[str, str] = {}
        kept: dict[str, str] = {}
        end_time, single = now_ms(), []
        journal = None
        try:
            with self._convert_lock:
                rows = self._pending_rows + self._drain()
                self._pending_rows = []
            if not writer_done:
                rows = list(self._inflight or []) + rows
                self._swap_to_spool(ConnectionError("the store stopped answering"))
            end_time = now_ms()
            single = [(key, value, end_time, 0) for key, value in self._metrics.items() if key not in self.logged_keys]
            tags, _ = clean_mapping(self._tags, MAX_TAG_LENGTH)
            final = FinalRecord(rows + single, dict(self._params), tags, status, end_time,
                                list(self._artifacts), list(self._datasets))
            if self._sink.kind == "mlflow" and self._store_gone(fresh=True):
                self._swap_to_spool(ConnectionError("the store stopped answering"))
            journal = self._journal(final) if self._may_end_later() else None
            if journal is not None:
                if self._fluent:  # MLflow's fluent stack belongs to this thread: the run leaves it now
                    internals.pop_fluent_run(self.run_id)
                    self._fluent = False
                self.session.run_ends.submit(lambda: self._end_later(final, journal))
            else:
                try:
                    renamed, kept = self._finish_through_sink(final)
                except Exception as error:  # noqa: BLE001 - never break the cell; say what happened
                    self.notice(f"this run could not be completely written ({_short_error(error)})", key="finish")
        finally:
            if locked:
                self._write_lock.release()
            if self._lease is not None and journal is None:
                self._lease.stop()
        counts, last = self.series.counts_and_last()
        params = dict(self._params)
        for key, derived in renamed.items():
            params[derived] = params.pop(key)
            params[key] = kept.get(key, params[derived])  # the card shows both: the run's value, and ours
        summary = RunSummary(
            run_id=self.run_id, run_name=self.run_name, experiment_id=self.experiment_id,
            experiment_name=self.experiment_name, status=status, start_time=self.start_time,
            end_time=end_time / 1000.0, params=params, metrics={key: value for key, value, _, _ in single},
            step_counts=counts, last_step_values=last, withheld=sorted(self.withheld), spooled=self.spooled,
            tracking_uri=store_module.redact_uri(self.location.uri), cell_key=self.cell_key,
            child_runs=list(self.child_runs), renamed_params=renamed, refused=list(self.refused),
            cell_logged=self.cell_logged or bool(self.child_runs),
            note=redact_text(self.description) if self.description else None,  # shown on the card: redacted
        )
        for observer in list(self.observers):
            self._call_observer(observer, "on_run_end", self, status)
        if self._tmpdir is not None and journal is None:
            self._tmpdir.cleanup()
        return summary

    def _may_end_later(self) -> bool:
        """The one rule for writing a run's end after its cell (run_ends.py): a ``%%track`` cell's run going to
        a store on this machine, which the cell did not write to itself (its own MLflow calls or autolog may
        conflict with ours, and the card must say so now). Anything else is written before the cell returns."""
        return (self.end_later and not self.cell_logged and not self.child_runs and self._sink is not None
                and self._sink.kind == "mlflow" and not self.location.is_remote and self.run_id is not None)

    def _journal(self, final: FinalRecord) -> Any:
        """The run's end in a journal entry (spool.write_journal), or None (then it is written now)."""
        from . import spool

        header = {"uri": self.location.uri, "experiment": self.experiment_name, "run_id": self.run_id,
                  "run_name": self.run_name, "start_time": int(self.start_time * 1000)}
        try:
            return spool.write_journal(header, final)
        except (OSError, TypeError, ValueError):
            return None

    def _end_later(self, final: FinalRecord, journal: Any) -> None:
        """In the run-ends thread: the run's end through the sink, then its journal entry, lease and files go.
        Notices are kept for the next cell, naming the run."""
        from . import spool

        name = self.run_name or self.run_id
        self._notify = lambda message: self.session.run_ends.defer(f"run {name!r}: {message}")
        try:
            self._finish_through_sink(final)
        except Exception as error:  # noqa: BLE001 - the journal entry (and the files it names) stay for delivery
            self.notice(f"this run could not be completely written ({_short_error(error)}); it is kept in "
                        f"{journal.parent} and delivered by `%track sync`", key="finish")
        else:
            spool.remove_journal(journal)
            if self._tmpdir is not None:
                self._tmpdir.cleanup()
        finally:
            if self._lease is not None:
                self._lease.stop()

    def _finish_through_sink(self, final: FinalRecord) -> tuple[dict[str, str], dict[str, str]]:
        """The run's end through the current sink; an outage swaps to the spool and writes it there."""
        try:
            outcome = self._sink.finish(self.run_id, final, fluent=self._fluent)
        except Exception as error:  # noqa: BLE001
            if classify(error) != OUTAGE:
                error = ConnectionError(f"the run's end could not be written ({type(error).__name__}: {error})")
            self._swap_to_spool(error)
            outcome = self._sink.finish(self.run_id, final, fluent=self._fluent)
        self._fluent = False
        if self._spool_file is not None and self._spool_file.unsaved:
            self.notice(f"the spool folder {self._spool_file.folder} cannot be written either (disk full or "
                        "read-only?): this run is not kept. The cell itself ran normally.", key="unsaved")
        if outcome.renamed:
            pairs = ", ".join(f"{key} (kept as {derived})" for key, derived in list(outcome.renamed.items())[:5])
            self.notice(f"params already logged in this run with another value keep their first value; "
                        f"the captured ones are kept under a derived key: {pairs}", key="renamed")
        if outcome.refused:
            self.refused = [f"{item['item']}: {item['error']}" for item in outcome.refused]
            names = ", ".join(item["item"] for item in outcome.refused[:4])
            more = f" and {len(outcome.refused) - 4} more" if len(outcome.refused) > 4 else ""
            self.notice(f"the store refused part of this run ({names}{more}); the rest is recorded, and what was "
                        f"refused is named in the run (tag jupyter_tracking.refused, artifact refused.json)",
                        key="refused")
        return outcome.renamed, outcome.kept

    def _call_observer(self, observer: Any, method: str, *args: Any) -> None:
        handler = getattr(observer, method, None)
        if handler is None:
            return
        try:
            handler(*args)
        except Exception as error:  # noqa: BLE001 - a panel must never break the cell or the run
            self.notice(f"{type(observer).__name__}.{method} failed: {_short_error(error)}", key=f"obs:{method}")


# ---------------------------------------------------------------------- helpers
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


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "\u2026"


def _short_error(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first[:200]}" if first else type(error).__name__
