"""Runs of dead kernels are closed: owner tags, leases, and ending runs whose owner is provably gone.

Every run records its owner in tags (``owner_tags()``): host, process id, the process's start time (so a
reused pid is recognised), the pid namespace on Linux (two containers can share a host name) and the kernel id.
While a run is open, a ``Lease`` keeps a small file ``<spool dir>/leases/<run_id>.json`` fresh (its mtime is
touched every 30 s by one daemon thread) and sets the tag ``jupyter_tracking.heartbeat`` at most once a minute.
Neither costs a write per step. The lease works while the store is unreachable and gives the end time of a run
on this machine to within 30 s; the heartbeat tag is what another machine can see.

``recover()`` looks at the store's RUNNING runs that carry an owner (one search): a run owned by a process of
this host that is gone (or whose pid now belongs to a younger process) is ended KILLED, with its last sign of
life as end time and ``jupyter_tracking.ended_by`` saying why. A run owned by another host whose last sign of
life is older than ``STALE_AFTER`` is reported as stale and never touched: nothing here can prove it dead.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OWNER_HOST = "jupyter_tracking.owner.host"
OWNER_PID = "jupyter_tracking.owner.pid"
OWNER_PID_START = "jupyter_tracking.owner.pid_start"
OWNER_PID_NAMESPACE = "jupyter_tracking.owner.pid_namespace"
OWNER_KERNEL_ID = "jupyter_tracking.owner.kernel_id"
HEARTBEAT = "jupyter_tracking.heartbeat"
ENDED_BY = "jupyter_tracking.ended_by"

LEASE_INTERVAL = 30.0  # seconds between touches of a lease file
HEARTBEAT_INTERVAL = 60.0  # seconds between heartbeat tags
STALE_AFTER = 600.0  # seconds without a sign of life before another host's run is called stale
START_TIME_TOLERANCE = 1.0  # seconds: the kernel's boot time as Linux reports it may move by that much
MAX_RUNS_PER_PAGE = 1000


# ---------------------------------------------------------------------- who owns a run
_owner_tags_cache: dict[int, dict[str, str]] = {}


def owner_tags() -> dict[str, str]:
    """The tags that say which process owns a run started now (added by the recorder at run start)."""
    pid = os.getpid()
    if pid not in _owner_tags_cache:  # keyed by pid: a forked child is another owner
        _owner_tags_cache[pid] = _read_owner_tags(pid)
    return dict(_owner_tags_cache[pid])


def _read_owner_tags(pid: int) -> dict[str, str]:
    tags = {OWNER_HOST: socket.gethostname(), OWNER_PID: str(pid)}
    started = process_start_time(pid)
    if started is not None:
        tags[OWNER_PID_START] = f"{started:.2f}"
    namespace = pid_namespace()
    if namespace:
        tags[OWNER_PID_NAMESPACE] = namespace
    kernel = kernel_id()
    if kernel:
        tags[OWNER_KERNEL_ID] = kernel
    return tags


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), or None if there is no such process (or no way to tell).

    Linux: ``/proc/PID/stat`` field 22 (clock ticks after boot) plus the boot time from ``/proc/stat``;
    elsewhere psutil if it is installed.
    """
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                text = handle.read()
        except (FileNotFoundError, ProcessLookupError):
            return None
        except OSError:
            return None
        fields = text[text.rfind(")") + 2 :].split()  # the command name may hold spaces and parentheses
        try:
            ticks = int(fields[19])  # field 22 of the whole line; fields[0] is field 3 (state)
        except (IndexError, ValueError):
            return None
        boot = _boot_time()
        if boot is None:
            return None
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    try:
        import psutil
    except ImportError:
        return None
    try:
        return float(psutil.Process(pid).create_time())
    except Exception:  # noqa: BLE001 - NoSuchProcess, AccessDenied
        return None


_boot_time_cache: list[float] = []


def _boot_time() -> float | None:
    if not _boot_time_cache:
        try:
            with open("/proc/stat", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("btime "):
                        _boot_time_cache.append(float(line.split()[1]))
                        break
        except OSError:
            return None
    return _boot_time_cache[0] if _boot_time_cache else None


def pid_namespace() -> str | None:
    """This process's pid namespace on Linux (``pid:[4026531836]``): pids of another namespace are not ours to see."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def kernel_id() -> str | None:
    """The Jupyter kernel id, from the kernel's connection file name (``kernel-<id>.json``), if in a kernel."""
    connection_file = None
    if "ipykernel" in sys.modules:
        try:
            from ipykernel.kernelapp import IPKernelApp

            if IPKernelApp.initialized():
                connection_file = IPKernelApp.instance().connection_file
        except Exception:  # noqa: BLE001
            connection_file = None
    if not connection_file:
        argv = sys.argv
        for index, argument in enumerate(argv[:-1]):
            if argument == "-f":
                connection_file = argv[index + 1]
    if not connection_file:
        return None
    name = Path(connection_file).name
    if name.startswith("kernel-") and name.endswith(".json"):
        return name[len("kernel-") : -len(".json")]
    return None


def owner_state(tags: dict[str, str]) -> str:
    """``"alive"``, ``"gone"`` (provably: same host, process gone or pid reused) or ``"unknown"`` (another host)."""
    if tags.get(OWNER_HOST) != socket.gethostname():
        return "unknown"
    namespace = tags.get(OWNER_PID_NAMESPACE)
    if namespace and namespace != pid_namespace():
        return "unknown"  # another container on this host: its pids are not visible from here
    try:
        pid = int(tags.get(OWNER_PID, ""))
    except ValueError:
        return "unknown"
    started = process_start_time(pid)
    if started is None:
        if _pid_exists(pid):
            return "alive"  # no way to read its start time here: cannot prove anything
        return "gone"
    recorded = tags.get(OWNER_PID_START)
    if recorded is None:
        return "alive"
    try:
        recorded_start = float(recorded)
    except ValueError:
        return "alive"
    return "alive" if abs(started - recorded_start) <= START_TIME_TOLERANCE else "gone"


def _pid_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


# ---------------------------------------------------------------------- leases
def lease_dir() -> Path:
    from .spool import spool_dir

    return spool_dir() / "leases"


class Lease:
    """The sign of life of one open run: a lease file kept fresh and a heartbeat tag, until ``stop()``."""

    def __init__(self, client: Any = None, location: Any = None) -> None:
        self.client = client  # for the heartbeat tag (None: lease file only)
        self.location = location  # a server store is checked quickly first: MLflow's retries take minutes
        self.run_id: str | None = None
        self.path: Path | None = None
        self.last_heartbeat = time.monotonic()

    def start(self, run_id: str) -> None:
        """Write the lease file and have the keeper thread refresh it; never raises (a lease is best effort)."""
        self.run_id = run_id
        try:
            folder = lease_dir()
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.path = folder / f"{run_id}.json"
            record = {"run_id": run_id, "started": time.time(), **owner_tags()}
            temporary = folder / f".{run_id}.{os.getpid()}.tmp"
            handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(json.dumps(record))
            os.replace(temporary, self.path)
        except OSError:
            self.path = None
        _keeper.add(self)

    def stop(self) -> None:
        """The run ended: forget the lease and remove its file. Safe to call twice."""
        _keeper.remove(self)
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.path = None

    def refresh(self, now: float) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.utime(self.path)
        if self.client is not None and self.run_id and now - self.last_heartbeat >= HEARTBEAT_INTERVAL:
            self.last_heartbeat = now
            with contextlib.suppress(Exception):  # an unreachable store: the lease file still counts here
                if self.location is not None and self.location.is_remote:
                    from .store import is_reachable

                    if not is_reachable(self.location, timeout=2.0):
                        return
                self.client.set_tag(self.run_id, HEARTBEAT, str(int(time.time() * 1000)))


class _LeaseKeeper:
    """One daemon thread for every open lease of this process."""

    def __init__(self) -> None:
        self.leases: list[Lease] = []
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.interval = LEASE_INTERVAL
        self.wakeup = threading.Event()  # set: refresh now (tests, or a changed interval)

    def add(self, lease: Lease) -> None:
        with self.lock:
            if lease not in self.leases:
                self.leases.append(lease)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="jt-leases", daemon=True)
                self.thread.start()

    def remove(self, lease: Lease) -> None:
        with self.lock:
            if lease in self.leases:
                self.leases.remove(lease)

    def _loop(self) -> None:
        while True:
            self.wakeup.wait(self.interval)
            self.wakeup.clear()
            with self.lock:
                leases = list(self.leases)
            now = time.monotonic()
            for lease in leases:
                lease.refresh(now)


_keeper = _LeaseKeeper()


# ---------------------------------------------------------------------- recovery
@dataclass
class OwnedRun:
    """A RUNNING run with an owner, as the recovery sees it."""

    run_id: str
    run_name: str
    experiment_id: str
    host: str
    pid: str
    last_sign_of_life: float  # epoch seconds

    def label(self) -> str:
        return f"{self.run_name} ({self.run_id})"


@dataclass
class RecoveryReport:
    """What ``recover()`` did: the runs it ended, and runs of other hosts that look stale."""

    ended: list[OwnedRun] = field(default_factory=list)
    stale: list[OwnedRun] = field(default_factory=list)

    def message(self) -> str | None:
        """One line naming the ended runs (None if none)."""
        if not self.ended:
            return None
        owners = sorted({f"{run.pid} on {run.host}" for run in self.ended})
        names = ", ".join(run.label() for run in self.ended)
        return (
            f"ended {len(self.ended)} run(s) left RUNNING by kernel process(es) that are gone "
            f"({', '.join(owners)}) as KILLED: {names}"
        )

    def __repr__(self) -> str:
        lines = [self.message() or "no run of a dead kernel to end"]
        for run in self.stale:
            age = (time.time() - run.last_sign_of_life) / 60
            lines.append(f"stale: {run.label()} on {run.host}, no sign of life for {age:.0f} min")
        return "\n".join(lines)


def running_owned_runs(client: Any) -> list[Any]:
    """The store's RUNNING runs that carry an owner host tag: one search (paged past 1,000 runs).

    The search filters on the status only: on 10,000 runs that takes half the time of also filtering on the tag
    (a join), and RUNNING runs are few.
    """
    from mlflow.entities import ViewType

    experiment_ids = [experiment.experiment_id for experiment in _all_experiments(client)]
    if not experiment_ids:
        return []
    found: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            experiment_ids, filter_string="attributes.status = 'RUNNING'",
            run_view_type=ViewType.ACTIVE_ONLY, max_results=MAX_RUNS_PER_PAGE, page_token=token,
        )
        found.extend(run for run in page if OWNER_HOST in run.data.tags)
        token = page.token
        if not token:
            return found


def _all_experiments(client: Any) -> list[Any]:
    experiments: list[Any] = []
    token = None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        experiments.extend(page)
        token = page.token
        if not token:
            return experiments


def last_sign_of_life(run: Any) -> float:
    """Epoch seconds: the newest of the run's start, its heartbeat tag and (on this machine) its lease file."""
    times = [run.info.start_time / 1000.0]
    heartbeat = run.data.tags.get(HEARTBEAT)
    if heartbeat:
        with contextlib.suppress(ValueError):
            times.append(int(heartbeat) / 1000.0)
    with contextlib.suppress(OSError):
        times.append((lease_dir() / f"{run.info.run_id}.json").stat().st_mtime)
    return max(times)


def _owned(run: Any) -> OwnedRun:
    tags = run.data.tags
    return OwnedRun(
        run_id=run.info.run_id, run_name=run.info.run_name or run.info.run_id, experiment_id=run.info.experiment_id,
        host=tags.get(OWNER_HOST, "?"), pid=tags.get(OWNER_PID, "?"), last_sign_of_life=last_sign_of_life(run),
    )


def recover(location: Any = None, *, stale_after: float = STALE_AFTER) -> RecoveryReport:
    """End the RUNNING runs of this store whose owner process is provably gone; report other hosts' stale ones.

    ``location`` is a ``StoreLocation`` (default: where runs go now). Raises the store's error if it cannot
    be searched.
    """
    from . import store as store_module

    if location is None:
        location = store_module.resolve_store()
    report = RecoveryReport()
    if location.not_created_yet:
        return report  # no store yet: nothing ran here
    from .spool import pending_run_ids

    client = store_module.client_for(location)
    waiting = pending_run_ids(location.uri)  # their end is in the spool: delivery completes them
    candidates = [run for run in running_owned_runs(client) if run.info.run_id not in waiting]
    if not candidates:
        return report
    now = time.time()
    dead = []
    for run in candidates:
        state = owner_state(run.data.tags)
        if state == "gone":
            dead.append(run)
        elif state == "unknown":
            owned = _owned(run)
            if now - owned.last_sign_of_life > stale_after:
                report.stale.append(owned)
    if dead:
        report.ended = _end_dead_runs(client, dead)
    return report


def is_stale(run: Any, *, now: float | None = None, stale_after: float = STALE_AFTER) -> bool:
    """The one rule for "stale": RUNNING, owned by another host (nothing can be proved from here), and no sign of
    life for ``stale_after`` seconds. Panels show such runs as stale; nothing ends them."""
    if run.info.status != "RUNNING" or OWNER_HOST not in (run.data.tags or {}):
        return False
    if owner_state(run.data.tags) != "unknown":
        return False
    return (now or time.time()) - last_sign_of_life(run) > stale_after


def stale_runs(location: Any = None, *, stale_after: float = STALE_AFTER) -> list[OwnedRun]:
    """Runs of other hosts with no sign of life for ``stale_after`` seconds (for panels and cards); read only."""
    from . import store as store_module

    if location is None:
        location = store_module.resolve_store()
    if location.not_created_yet:
        return []
    now = time.time()
    return [_owned(run) for run in running_owned_runs(store_module.client_for(location))
            if is_stale(run, now=now, stale_after=stale_after)]


def _end_dead_runs(client: Any, runs: list[Any]) -> list[OwnedRun]:
    """End each run KILLED at its last sign of life, one process at a time (two kernels never end one run twice)."""
    from filelock import FileLock

    folder = lease_dir()
    folder.mkdir(parents=True, exist_ok=True)
    ended = []
    with FileLock(str(folder / ".recovery.lock"), timeout=60):
        for run in runs:
            current = client.get_run(run.info.run_id)
            if current.info.status != "RUNNING":
                continue  # ended meanwhile (by its kernel's last write, or by another kernel's recovery)
            owned = _owned(current)
            reason = f"recovery: owner process {owned.pid} on {owned.host} is gone"
            client.set_tag(owned.run_id, ENDED_BY, reason)
            client.set_terminated(owned.run_id, "KILLED", end_time=int(owned.last_sign_of_life * 1000))
            with contextlib.suppress(OSError):
                (folder / f"{owned.run_id}.json").unlink()
            ended.append(owned)
    return ended


def recover_and_report(location: Any = None, notify: Any = None) -> RecoveryReport | None:
    """``recover()`` for ``%load_ext``, ``%track`` and ``%runs``: one line if runs were ended; never raises."""
    from . import store as store_module

    try:
        if location is None:
            location = store_module.resolve_store()
        if not store_module.is_reachable(location):
            return None  # MLflow's client would retry for minutes; the next command says it is unreachable
        _deliver_journals(location, notify)
        report = recover(location)
    except Exception:  # noqa: BLE001 - an unreachable store is reported by whatever the user does next
        return None
    message = report.message()
    if message:
        (notify or _print_notice)(message)
    return report


def _deliver_journals(location: Any, notify: Any) -> None:
    """Run ends that dead kernels left in their journal (run_ends.py) complete their runs first."""
    from . import spool

    delivery = spool.deliver_pending(location, journals_only=True)  # returns at once when there is none
    if delivery.delivered:
        (notify or _print_notice)(f"completed {len(delivery.delivered)} run(s) whose kernel ended before their "
                                  f"end was written: {', '.join(delivery.delivered)}")
    for item in delivery.set_aside:
        (notify or _print_notice)(f"the store refuses the run end {item}; it is set aside and will not be retried")


def _print_notice(message: str) -> None:
    print(f"jupyter_tracking: {message}", file=sys.stderr)
