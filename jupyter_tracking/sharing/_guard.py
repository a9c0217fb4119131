"""A tiny process-group leader that ties a helper server to the kernel that started it.

Run as ``python _guard.py PARENT_PID [--remove DIR] -- COMMAND...``. It starts COMMAND in its own
process group (the guard is the group leader), then waits. When it is asked to stop (SIGTERM/SIGINT/SIGHUP) or
when PARENT_PID goes away (a kernel killed with SIGKILL runs no atexit handler), it ends the whole group:
SIGTERM, a grace period, then SIGKILL. So ``mlflow server`` and its uvicorn worker, or ``lt`` under node, never
outlive the notebook; DIR (the helper's private state folder) is removed when it stops the group. It exits with
COMMAND's exit code.

Imports only the standard library: it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

GRACE_SECONDS = 5.0
POLL_SECONDS = 0.25


def _end_group(child: subprocess.Popen) -> None:
    """SIGTERM everything in our process group but us, wait for the child, then SIGKILL what is left."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.killpg(0, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    # Grand-children (uvicorn workers) may still be exiting: give them what is left of the grace period.
    while time.monotonic() < deadline and _group_has_others():
        time.sleep(0.05)
    if child.poll() is None or _group_has_others():
        try:
            os.killpg(0, signal.SIGKILL)  # also ends the guard itself
        except ProcessLookupError:
            pass


def _group_has_others() -> bool:
    """True while another process of our group is alive (Linux /proc; elsewhere assume none)."""
    pgid = os.getpgid(0)
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # fields after the command: state ppid pgrp ...; zombies are already gone for our purpose.
        if int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def main(argv: list[str]) -> int:
    remove = None
    if len(argv) > 2 and argv[1] == "--remove":  # PARENT_PID --remove DIR -- COMMAND...
        remove, argv = argv[2], [argv[0], *argv[3:]]
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python _guard.py PARENT_PID [--remove DIR] -- COMMAND...", file=sys.stderr)
        return 2
    parent_pid = int(argv[0])
    command = argv[2:]
    stop_requested = False

    def request_stop(signum, frame):  # noqa: ARG001
        nonlocal stop_requested
        stop_requested = True

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, request_stop)
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(f"cannot start {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    while True:
        code = child.poll()
        if code is not None:
            if _group_has_others():  # the child left helpers behind (workers): end them too
                _end_group(child)
            return code
        if stop_requested or os.getppid() != parent_pid:
            _end_group(child)
            if remove:  # stopped or orphaned: nobody reads the logs now (the kernel may be exiting itself)
                shutil.rmtree(remove, ignore_errors=True)
            return child.poll() if child.poll() is not None else -signal.SIGTERM
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
