"""Helper processes (MLflow UI servers, localtunnel clients): start them guarded, stop them as a group.

Every process is started under ``_guard`` as the leader of its own process group, with its output in log
files of a private state folder. ``stop()`` ends the whole group; an ``atexit`` handler stops whatever this
kernel still runs, and the guard ends its group by itself if the kernel dies without running ``atexit``.
Also here: free ports on 127.0.0.1 and the "is this port taken" check.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    """True when 127.0.0.1:port cannot be bound (another server has it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers do: connections of a just-stopped server in TIME_WAIT do not make the port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


@dataclass
class GuardedProcess:
    """One helper command running under its guard; ``stop()`` ends it and every process it started."""

    name: str
    command: list[str]
    popen: subprocess.Popen
    stdout_path: Path
    stderr_path: Path
    started_at: float = field(default_factory=time.monotonic)
    owned_dir: Path | None = None  # a private state folder removed with the process

    @property
    def pid(self) -> int:
        """The guard's pid, which is also the process group id."""
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def stderr_tail(self, lines: int = 15) -> str:
        """The last lines the process wrote to stderr (empty if none)."""
        return _tail(self.stderr_path, lines)

    def stdout_text(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace")
        except OSError:
            return ""

    def request_stop(self) -> None:
        """Ask the guard to end its group (returns at once; ``stop()`` waits)."""
        if self.popen.poll() is None:
            try:
                os.kill(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 10.0) -> None:
        """End the process group: ask the guard (it stops its group), then SIGKILL the group if needed."""
        _registry.discard(self)
        if self.popen.poll() is None:
            self.request_stop()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the group (the guard may have been killed before it could clean up).
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(2)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            pass
        if self.owned_dir is not None:
            shutil.rmtree(self.owned_dir, ignore_errors=True)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def start_guarded(
    name: str,
    command: list[str],
    *,
    log_dir: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    remove_on_orphan: bool = False,
) -> GuardedProcess:
    """Start ``command`` under a guard in a new process group; stdout/stderr go to ``log_dir/NAME.*.log``.

    ``remove_on_orphan``: ``log_dir`` is a private state folder, deleted by ``stop()`` (at exit too) or by the
    guard if this process dies first.

    Raises ``FileNotFoundError`` when the command's executable does not exist.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout_path = log_dir / f"{name}.out.log"
    stderr_path = log_dir / f"{name}.err.log"
    # The guard is run by path: it needs only the standard library, not this package on sys.path.
    guard = [sys.executable, str(Path(__file__).with_name("_guard.py")), str(os.getpid())]
    guard += ["--remove", str(log_dir), "--", *command] if remove_on_orphan else ["--", *command]
    child_env = dict(os.environ if env is None else env)
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        popen = subprocess.Popen(
            guard,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=child_env,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
        )
    process = GuardedProcess(
        name, command, popen, stdout_path, stderr_path, owned_dir=log_dir if remove_on_orphan else None
    )
    _registry.add(process)
    return process


class _Registry:
    """Every guarded process this kernel started and has not stopped: stopped at interpreter exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: list[GuardedProcess] = []
        self._hooks: list = []

    def add(self, process: GuardedProcess) -> None:
        with self._lock:
            self._processes.append(process)

    def discard(self, process: GuardedProcess) -> None:
        with self._lock:
            if process in self._processes:
                self._processes.remove(process)

    def on_exit(self, hook) -> None:
        """Run ``hook()`` at exit before the remaining processes are stopped (supervisors stop restarting)."""
        with self._lock:
            self._hooks.append(hook)

    def stop_all(self) -> None:
        with self._lock:
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:  # noqa: BLE001 - exit path: never raise
                pass
        # All at once: Jupyter gives a kernel a few seconds to exit before it kills it.
        with self._lock:
            processes = list(reversed(self._processes))
        for process in processes:
            process.request_stop()
        for process in processes:
            process.stop(timeout=5.0)


_registry = _Registry()
atexit.register(_registry.stop_all)


def on_exit(hook) -> None:
    """Register ``hook`` to run at interpreter exit, before helper processes are stopped."""
    _registry.on_exit(hook)


def running_processes() -> list[GuardedProcess]:
    """The guarded processes this interpreter started that have not been stopped."""
    with _registry._lock:
        return list(_registry._processes)
