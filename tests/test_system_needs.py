"""`make test` on a machine that lacks a system package stops at once with one line naming the install command
(tools/system-needs, run by the Makefile when it starts); with everything there it goes ahead; `make deps` asks
apt-get for exactly what is missing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _env(**changes: str) -> dict[str, str]:
    """This environment without the make variables of a `make test` that may be running us."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    env.pop("CHROMIUM_PATH", None)
    env.update(changes)
    return env


def _bin(folder: Path, *tools: str) -> str:
    """A PATH of one folder holding only these tools (links to the real ones)."""
    folder.mkdir()
    for tool in tools:
        (folder / tool).symlink_to(shutil.which(tool))
    return str(folder)


def _run(command: list[str], env: dict[str, str], limit: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    """Run with a hard limit: should the check let `make test` through, the suite it starts is stopped, not nested."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(f"{' '.join(command)} still running after {limit} s: the check did not stop it") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), time.monotonic() - started


def test_make_test_without_chromium_stops_within_seconds_with_one_line(tmp_path):
    # CHROMIUM_PATH is where the browser tests (tests/browser.py) take Chromium from when it is set.
    done, took = _run(["make", "test"], _env(CHROMIUM_PATH=str(tmp_path / "no-chromium")))
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode != 0 and took < 10, (done, took)
    assert len(lines) == 1, lines
    assert "Missing on this machine: Chromium." in lines[0]
    assert "apt-get install -y chromium (or: " in lines[0] and "make deps)" in lines[0]
    assert "postgresql" not in lines[0] and "nodejs" not in lines[0]  # those are here


def test_node_missing_from_path_is_named_with_its_debian_packages(tmp_path):
    path = _bin(tmp_path / "bin", "id")  # Chromium and PostgreSQL stay where this machine has them, outside PATH
    done, took = _run(["/bin/sh", "tools/system-needs", "chromium", "postgresql", "node"], _env(PATH=path))
    assert done.returncode == 1 and took < 10, done
    sudo = "" if os.geteuid() == 0 else "sudo "
    assert done.stdout == (f"Missing on this machine: Node.js >= 20.19 and npm. Install with: {sudo}apt-get install -y "
                           f"nodejs npm (or: {sudo}make deps)\n")  # fmt: skip
    assert done.stderr == ""


def test_with_everything_here_make_test_goes_ahead():
    checked, _ = _run(["/bin/sh", "tools/system-needs", "chromium", "postgresql", "node", "venv"], _env())
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")
    planned, took = _run(["make", "-n", "test"], _env())  # -n: what make would run, after the check passed
    assert planned.returncode == 0 and took < 10, planned
    assert "pytest tests" in planned.stdout and "Missing" not in planned.stdout + planned.stderr


def test_make_deps_asks_apt_get_for_what_is_missing_only(tmp_path):
    # apt-get cannot really install in a test: a stand-in on PATH records what it was asked for.
    path = _bin(tmp_path / "bin", "id", "sh", "make", "env")
    asked = tmp_path / "apt-get.calls"
    stand_in = tmp_path / "bin" / "apt-get"
    stand_in.write_text(f'#!/bin/sh\necho "$*" >> {asked}\n')
    stand_in.chmod(0o755)
    sudo = tmp_path / "bin" / "sudo"  # not root: the stand-in is reached through sudo, which runs it as is
    sudo.write_text('#!/bin/sh\nexec "$@"\n')
    sudo.chmod(0o755)
    done, took = _run(["make", "deps"], _env(PATH=path, PYTHON=sys.executable))  # a Python with venv
    calls = asked.read_text().splitlines()
    assert calls[0] == "update -qq"
    assert calls[1] == "install -y -qq --no-install-recommends nodejs npm", calls
    assert len(calls) == 2
    # The stand-in installed nothing, so the check after it still misses Node, and says so.
    assert took < 10
    assert done.returncode != 0 and "Still missing after apt-get: Node.js >= 20.19 and npm" in done.stdout, done
