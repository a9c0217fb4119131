"""Sweep trials outside the kernel: ``--jobs N`` (loky worker processes) and ``--cluster`` (Dask), or inline.

The kernel ships the names the cell reads once per worker (cloudpickle; a name that cannot be shipped is named
in one line before anything starts), keeps as many trials in flight as there are workers, and writes each
``TrialRecord`` that comes back as the child run through the one write path (``RunRecorder`` -> sinks): workers
never see the store. An interrupt cancels what is queued, stops the worker processes this sweep started, marks
the running trials KILLED (a KILLED child run with their values) and keeps the finished ones.
"""

from __future__ import annotations

import ast
import concurrent.futures
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from .trials import PRUNED, CallProgress, DaskProgress, FileProgress, TrialRecord, TrialSpec, init_worker, run_trial

IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
PRUNED_TAG = "jupyter_tracking.pruned"
WORKER_TAG = "jupyter_tracking.worker"
TRIAL_SECONDS_TAG = "jupyter_tracking.trial_seconds"
ENGINE_TAG = "jupyter_tracking.sweep_engine"  # on the parent: where the trials ran (EngineChoice.to_tag)
# Dask settings of the LocalCluster that ``--cluster local`` makes. A worker runs its task in a thread beside its
# event loop, which by default wakes 50 times a second (tick), samples the task's stack 100 times a second
# (profile), reads the process's memory 10 times a second and its system figures twice: each wake takes the GIL
# from the task. Measured on a 16-trial grid of a 1 s CPU-bound cell (2 workers, 4 interleaved rounds): 8.2-9.3 s
# with these settings against 8.6-9.9 s with Dask's defaults. Nothing else changes: the cluster has no dashboard.
SWEEP_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
}

def first_done(futures: list[Any], timeout: float) -> list[Any]:
    """The futures done within ``timeout`` seconds (waiting for the first; none if none is): concurrent.futures
    futures (the kernel's, loky's), blocking rather than looking again and again."""
    done, _ = concurrent.futures.wait(futures, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED)
    return list(done)


class SweepSetupError(ValueError):
    """The sweep cannot start (a name cannot be shipped, an optional package is missing, no cluster); one line."""


def require(module: str, extra: str = "sweep") -> Any:
    """Import an optional dependency, or one clear line naming the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise SweepSetupError(f"{package} is not installed: pip install 'jupyter_tracking[{extra}]'") from None


# ---------------------------------------------------------------------------------------------- names


def names_read(code: str, namespace: dict[str, Any], exclude: set[str]) -> list[str]:
    """The notebook names the cell's code reads anywhere (functions and comprehensions too)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    found = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return sorted(n for n in found if n in namespace and n not in exclude and n not in IPYTHON_NAMES
                  and not n.startswith("_"))


def pickle_names(namespace: dict[str, Any], names: list[str], where: str) -> dict[str, bytes]:
    """cloudpickle each name; SweepSetupError naming every name that cannot be shipped."""
    import cloudpickle

    pickled, bad = {}, []
    for name in names:
        try:
            pickled[name] = cloudpickle.dumps(namespace[name])
        except Exception as error:  # noqa: BLE001 - any pickling failure is the user's object's
            bad.append(f"`{name}` ({type(namespace[name]).__name__}: {type(error).__name__})")
    if bad:
        raise SweepSetupError(
            f"{where}: cannot send {', '.join(bad)} to the workers; create it inside the cell, or run the sweep "
            "without --jobs/--cluster")
    return pickled


# ---------------------------------------------------------------------------------------------- engines


class InlineEngine:
    """Trials one at a time in the kernel itself (an Optuna search without --jobs/--cluster)."""

    label = "kernel"
    workers = 1
    in_background = False  # submit() runs the trial: the next one is asked for after this one is told

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace
        self.on_progress: Any = None  # called in the kernel with each running trial's message
        self.channel = CallProgress(self._received)

    def _received(self, message: dict[str, Any]) -> None:
        if self.on_progress is not None:
            self.on_progress({message["index"]: message})

    def progress(self, indexes: list[int]) -> dict[int, dict[str, Any]]:
        return {}  # told as it comes (on_progress): the trial runs in this thread

    def submit(self, spec: TrialSpec) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(run_trial(spec, self.namespace))  # the trial binds its values in a namespace of its own
        return future

    def wait(self, futures: list[Any], timeout: float) -> list[Any]:
        return first_done(futures, timeout)

    def result(self, future: Any) -> TrialRecord:
        return future.result()

    def cancel(self, futures: list[Any]) -> None:
        pass

    def close(self, kill: bool = False) -> None:
        pass


class LokyEngine:
    """``--jobs N``: N loky worker processes made for this sweep, each given the names once (initializer)."""

    in_background = True

    def __init__(self, jobs: int, pickled: dict[str, bytes]) -> None:
        loky = require("loky")

        self.workers = max(1, os.cpu_count() or 1) if jobs < 0 else max(1, jobs)
        self.label = f"{self.workers} local worker process{'es' if self.workers > 1 else ''}"
        self.executor = loky.ProcessPoolExecutor(max_workers=self.workers, initializer=_init_from_parts,
                                                 initargs=(pickled,))
        import tempfile

        self.channel = FileProgress(tempfile.mkdtemp(prefix="jt-sweep-progress-"))

    def progress(self, indexes: list[int]) -> dict[int, dict[str, Any]]:
        """The latest messages of these trials (those in flight)."""
        return self.channel.read(indexes)

    def submit(self, spec: TrialSpec) -> Any:
        return self.executor.submit(run_trial, spec)

    def wait(self, futures: list[Any], timeout: float) -> list[Any]:
        return first_done(futures, timeout)

    def result(self, future: Any) -> TrialRecord:
        return future.result()

    def cancel(self, futures: list[Any]) -> None:
        for future in futures:
            future.cancel()

    def close(self, kill: bool = False) -> None:
        import shutil

        try:
            self.executor.shutdown(wait=True, kill_workers=kill)
        finally:
            shutil.rmtree(self.channel.folder, ignore_errors=True)


def _init_from_parts(pickled: dict[str, bytes]) -> None:
    """Loky initializer: the names arrive pickled one by one (as checked in the kernel); unpickled once here."""
    init_worker(pickled)


class DaskEngine:
    """``--cluster ADDRESS`` / a ``Client`` in the notebook (kept open), or a LocalCluster this sweep makes."""

    in_background = True

    def __init__(self, namespace: dict[str, Any], pickled: dict[str, bytes], *, client: Any = None,
                 address: str | None = None, local_workers: int | None = None) -> None:
        distributed = require("distributed")
        import logging

        from .trials import _Names

        self._own_client = client is None
        self.cluster = None
        if client is None and address is None:
            import dask

            with dask.config.set(SWEEP_CLUSTER_CONFIG):  # the workers take the settings as they start
                self.cluster = distributed.LocalCluster(
                    n_workers=local_workers or 2, threads_per_worker=1, processes=True, dashboard_address=None,
                    silence_logs=logging.ERROR)
            client = distributed.Client(self.cluster)
        elif client is None:
            try:
                client = distributed.Client(address, timeout="10s")
            except Exception as error:  # noqa: BLE001 - unreachable scheduler
                raise SweepSetupError(f"--cluster {address}: cannot reach the Dask scheduler "
                                      f"({type(error).__name__}: {error})") from None
        self.client = client
        threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
        self.workers = max(1, threads)
        where = "a local Dask cluster" if self.cluster is not None else f"Dask at {client.scheduler.address}"
        self.label = f"{where} ({self.workers} worker thread{'s' if self.workers > 1 else ''})"
        values = {name: namespace[name] for name in pickled}
        self.names = client.scatter(_Names(values), broadcast=True, hash=False)
        self._keys = f"jt-trial-{os.getpid()}-{time.time_ns()}"
        self.channel = DaskProgress(f"{self._keys}-progress")
        self._progress: dict[int, dict[str, Any]] = {}
        client.subscribe_topic(self.channel.topic, self._received)

    def _received(self, event: tuple[float, Any]) -> None:  # on the client's event loop thread
        message = event[1]
        if isinstance(message, dict) and isinstance(message.get("index"), int):
            self._progress[message["index"]] = message

    def progress(self, indexes: list[int]) -> dict[int, dict[str, Any]]:
        latest = self._progress  # filled on the client's thread: each lookup is one atomic dict read
        return {index: latest[index] for index in indexes if index in latest}

    def submit(self, spec: TrialSpec) -> Any:
        return self.client.submit(run_trial, spec, self.names, pure=False, key=f"{self._keys}-{spec.index}")

    def wait(self, futures: list[Any], timeout: float) -> list[Any]:
        """Dask's futures: ``distributed.wait`` for the first one done, within ``timeout`` seconds."""
        from distributed import wait

        try:
            wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:  # distributed.TimeoutError is the builtin one
            pass
        return [future for future in futures if future.done()]

    def result(self, future: Any) -> TrialRecord:
        return future.result()

    def cancel(self, futures: list[Any]) -> None:
        if futures:
            self.client.cancel(futures, force=True)

    def close(self, kill: bool = False) -> None:
        try:
            self.client.unsubscribe_topic(self.channel.topic)
            self.client.cancel([self.names], force=True)
        except Exception:  # noqa: BLE001 - the client may be closed already
            pass
        if self._own_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


@dataclass
class EngineChoice:
    """What the magic asked for: ``--jobs N`` and/or ``--cluster ADDRESS|NAME``."""

    jobs: int | None = None
    cluster: str | None = None

    @property
    def parallel(self) -> bool:
        return bool(self.cluster) or (self.jobs is not None and self.jobs != 1)

    def to_tag(self) -> str:
        """As the magic's options (``--jobs 2``, ``--cluster tcp://h:8786``): kept on a sweep's parent run, so
        ``%track rerun`` runs the sweep where it ran."""
        words = [f"--cluster {self.cluster}"] if self.cluster else []
        return " ".join(words + ([f"--jobs {self.jobs}"] if self.jobs is not None else []))

    @classmethod
    def from_tag(cls, text: str | None) -> EngineChoice | None:
        """The choice a parent's tag recorded; None for none (or a tag this version cannot read)."""
        words = (text or "").split()
        if len(words) % 2:
            return None
        options = dict(zip(words[::2], words[1::2]))
        if not options or set(options) - {"--jobs", "--cluster"}:
            return None
        try:
            jobs = int(options["--jobs"]) if "--jobs" in options else None
        except ValueError:
            return None
        return cls(jobs, options.get("--cluster"))


def make_engine(choice: EngineChoice | None, namespace: dict[str, Any], code: str, bindings: set[str]) -> Any:
    """The engine for a sweep; the names the cell reads are checked (and pickled) before anything starts."""
    if choice is None or not choice.parallel:
        return InlineEngine(namespace)
    if choice.jobs is not None and choice.jobs == 0:
        raise SweepSetupError("--jobs 0: give a number of worker processes (or -1 for all cores)")
    where = f"--cluster {choice.cluster}" if choice.cluster else f"--jobs {choice.jobs}"
    if choice.cluster:
        require("distributed")
    else:
        require("loky")
    pickled = pickle_names(namespace, names_read(code, namespace, bindings), where)
    if choice.cluster:
        client = namespace.get(choice.cluster) if choice.cluster.isidentifier() else None
        if client is not None:
            if type(client).__name__ != "Client" or not hasattr(client, "scatter"):
                raise SweepSetupError(f"--cluster {choice.cluster}: not a dask.distributed.Client "
                                      f"(a {type(client).__name__})")
            return DaskEngine(namespace, pickled, client=client)
        if choice.cluster == "local":
            return DaskEngine(namespace, pickled, local_workers=choice.jobs if choice.jobs and choice.jobs > 0
                              else 2)
        if choice.cluster.isidentifier():
            raise SweepSetupError(f"--cluster {choice.cluster}: no such name in the notebook, and not an address "
                                  "(tcp://HOST:PORT)")
        return DaskEngine(namespace, pickled, address=choice.cluster)
    return LokyEngine(choice.jobs, pickled)


# ---------------------------------------------------------------------------------------------- writing


class TrialWriter:
    """Writes trial records as child runs of the sweep's parent, through ``RunRecorder`` (the one write path)."""

    def __init__(self, source: str, options: Any, parent_run_id: str, namespace: dict[str, Any],
                 session: Any, location: Any, experiment: str, base_tags: dict[str, str]) -> None:
        self.source = source
        self.options = options
        self.parent_run_id = parent_run_id
        self.namespace = namespace
        self.session = session
        self.location = location
        self.experiment = experiment
        self.base_tags = base_tags
        self._datasets: dict[str, Any] = {}

    def write(self, record: TrialRecord, run_name: str, extra_tags: dict[str, str]) -> Any:
        from .sinks import quiet_store_logging

        with quiet_store_logging():  # one silencing for the whole run (blocks nest)
            return self._write(record, run_name, extra_tags)

    def _write(self, record: TrialRecord, run_name: str, extra_tags: dict[str, str]) -> Any:
        from .recorder import FINISHED, RunRecorder
        from .secret_filter import redact_source, redact_text

        tags = {**self.base_tags, **extra_tags, WORKER_TAG: record.worker,
                TRIAL_SECONDS_TAG: f"{record.seconds:.3f}"}
        if record.status == PRUNED:
            tags[PRUNED_TAG] = record.error or "true"
        recorder = RunRecorder(self.location, self.experiment, session=self.session, run_name=run_name, tags=tags,
                               parent_run_id=self.parent_run_id, make_active=False, notify=_notify)
        recorder.start_time = record.started
        recorder.start()
        recorder.add_params(record.params)
        recorder.add_metrics(record.metrics)
        recorder.add_series(record.series)
        recorder.add_logged_points(record.points)
        for note in record.notes:
            recorder.notice(note)
        for name in record.datasets:
            entity = self._dataset(name)
            if entity is not None:
                recorder.add_dataset(entity)
        recorder.withheld |= record.withheld
        for name, value in record.artifacts.items():
            self._artifact(recorder, name, value)
        if recorder.withheld:
            recorder.set_tags({"jupyter_tracking.withheld": ", ".join(sorted(recorder.withheld))})
        recorder.add_text_artifact(redact_source(self.source), "cell", "cell.py")
        if record.traceback:
            recorder.add_text_artifact(redact_text(record.traceback), "", "traceback.txt")
            recorder.set_tags({"jupyter_tracking.error": redact_text(record.error)[:500]})
        return recorder.finish(FINISHED if record.status == PRUNED else record.status)

    def write_killed(self, bindings: dict[str, Any], run_name: str, extra_tags: dict[str, str], started: float) -> Any:
        """A trial that was running when the sweep was interrupted: a KILLED child run with its values."""
        from .capture import param_text
        from .recorder import KILLED, RunRecorder

        recorder = RunRecorder(self.location, self.experiment, session=self.session, run_name=run_name,
                               tags={**self.base_tags, **extra_tags}, parent_run_id=self.parent_run_id,
                               make_active=False, notify=_notify)
        recorder.start_time = started
        recorder.start()
        recorder.add_params({k: param_text(v) for k, v in bindings.items()})
        return recorder.finish(KILLED)

    def _dataset(self, name: str) -> Any:
        if name not in self._datasets:
            frame = self.namespace.get(name)
            try:
                from .capture import dataframe_digest
                from .internals import dataset_entity

                self._datasets[name] = dataset_entity(name, frame, dataframe_digest(frame))
            except Exception as failure:  # noqa: BLE001
                _notify(f"dataset `{name}` not recorded ({type(failure).__name__}: {failure})")
                self._datasets[name] = None
        return self._datasets[name]

    def _artifact(self, recorder: Any, name: str, value: Any) -> None:
        from . import object_artifacts
        from .secret_filter import is_secret_name

        if is_secret_name(name):
            recorder.withheld.add(name)
            return
        try:
            files = object_artifacts.save(value, recorder.tmp_path("artifacts", ""), name)
        except object_artifacts.NotSaved as error:
            recorder.notice(f"--artifacts: `{name}` {error}; not logged")
            return
        for path in files:
            recorder.add_file_artifact(str(path), "artifacts")


def lost_record(index: int, started: float, error: BaseException) -> TrialRecord:
    """A trial whose worker died or whose result could not come back: FAILED with what the engine said."""
    import traceback

    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return TrialRecord(index, "FAILED", started, time.time(), traceback=text,
                       error=f"worker lost: {type(error).__name__}: {str(error).strip()[:200]}")


def _notify(message: str) -> None:
    print(f"jupyter_tracking: {message}", file=sys.stderr)
