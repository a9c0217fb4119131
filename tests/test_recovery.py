"""Runs of dead kernels are ended KILLED; runs of other hosts are reported stale and never touched."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from jupyter_tracking import recovery
from jupyter_tracking import store as store_module
from tests.kernels import Kernel
from tests.stores import runs_of, store_client

HOST = socket.gethostname()


@pytest.fixture
def location(project) -> store_module.StoreLocation:
    where = store_module.resolve_store(project / "notebooks")
    store_module.client_for(where)  # creates the store
    return where


def _run(location, name: str, tags: dict[str, str], *, started_ago: float = 5.0) -> str:
    client = store_module.client_for(location)
    start = int((time.time() - started_ago) * 1000)
    return client.create_run("0", start_time=start, tags=tags, run_name=name).info.run_id


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_owner_tags_name_this_process():
    tags = recovery.owner_tags()
    assert tags[recovery.OWNER_HOST] == HOST
    assert tags[recovery.OWNER_PID] == str(os.getpid())
    assert abs(float(tags[recovery.OWNER_PID_START]) - recovery.process_start_time(os.getpid())) < 0.02
    assert recovery.owner_state(tags) == "alive"


def test_process_start_time_matches_psutil():
    import psutil

    assert abs(recovery.process_start_time(os.getpid()) - psutil.Process().create_time()) < 1.0
    assert recovery.process_start_time(_dead_pid()) is None


def test_a_gone_or_reused_pid_is_gone_and_another_host_or_container_is_unknown():
    mine = recovery.owner_tags()
    reused = {**mine, recovery.OWNER_PID_START: f"{float(mine[recovery.OWNER_PID_START]) - 3600:.2f}"}
    assert recovery.owner_state(reused) == "gone"  # this pid now belongs to a younger process
    assert recovery.owner_state({**mine, recovery.OWNER_PID: str(_dead_pid())}) == "gone"
    assert recovery.owner_state({**mine, recovery.OWNER_HOST: "elsewhere.example"}) == "unknown"
    other_container = {**mine, recovery.OWNER_PID_NAMESPACE: "pid:[1]", recovery.OWNER_PID: str(_dead_pid())}
    assert recovery.owner_state(other_container) == "unknown"


def test_recover_ends_runs_of_gone_owners_at_their_last_sign_of_life(location, capsys):
    mine = recovery.owner_tags()
    alive = _run(location, "alive", mine)
    reused = _run(location, "reused", {**mine, recovery.OWNER_PID_START: "1000.00"}, started_ago=600)
    gone_pid = _dead_pid()
    gone = _run(location, "gone", {**mine, recovery.OWNER_PID: str(gone_pid)}, started_ago=900)
    untagged = _run(location, "plain-mlflow", {})
    lease = recovery.lease_dir()
    lease.mkdir(parents=True)
    (lease / f"{gone}.json").write_text("{}")
    last_seen = time.time() - 120
    os.utime(lease / f"{gone}.json", (last_seen, last_seen))

    report = recovery.recover_and_report(location)

    assert sorted(run.run_name for run in report.ended) == ["gone", "reused"]
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("jupyter_tracking: ended 2 run(s) left RUNNING by kernel process(es) that are gone")
    assert "gone (" in line and "reused (" in line
    client = store_module.client_for(location)
    assert client.get_run(alive).info.status == "RUNNING"
    assert client.get_run(untagged).info.status == "RUNNING"
    ended = client.get_run(gone)
    assert ended.info.status == "KILLED"
    assert ended.info.end_time == int(last_seen * 1000)
    assert ended.data.tags[recovery.ENDED_BY] == f"recovery: owner process {gone_pid} on {HOST} is gone"
    assert not (lease / f"{gone}.json").exists()
    without_lease = client.get_run(reused)
    assert without_lease.info.status == "KILLED"
    assert without_lease.info.end_time == without_lease.info.start_time  # no lease: its start is all we know
    # A second pass finds nothing more and says nothing.
    assert recovery.recover_and_report(location).ended == []
    assert capsys.readouterr().err == ""


def test_runs_of_another_host_are_stale_after_ten_minutes_and_never_touched(location):
    foreign = {recovery.OWNER_HOST: "elsewhere.example", recovery.OWNER_PID: "4242", recovery.OWNER_PID_START: "1.00"}
    quiet = _run(location, "quiet", foreign, started_ago=3600)
    fresh = _run(location, "fresh", foreign, started_ago=60)
    beating = _run(location, "beating", foreign, started_ago=3600)
    store_module.client_for(location).set_tag(beating, recovery.HEARTBEAT, str(int((time.time() - 90) * 1000)))

    report = recovery.recover(location)

    assert report.ended == []
    assert [run.run_name for run in report.stale] == ["quiet"]
    assert [run.run_name for run in recovery.stale_runs(location)] == ["quiet"]
    assert "stale: quiet" in repr(report) and "elsewhere.example" in repr(report)
    client = store_module.client_for(location)
    assert {client.get_run(run).info.status for run in (quiet, fresh, beating)} == {"RUNNING"}
    # Shown as stale where runs are listed: the %runs frame and the side panel's runs endpoint.
    from jupyter_tracking import queries
    from jupyter_tracking.serverext.queries import _run_summary

    runs = [client.get_run(run) for run in (quiet, fresh, beating)]
    frame = queries.runs_to_frame(runs)
    assert dict(zip(frame["run_name"], frame["status"])) == {
        "quiet": queries.STALE_STATUS, "fresh": "RUNNING", "beating": "RUNNING"}
    assert [_run_summary(run)["stale"] for run in runs] == [True, False, False]


def test_a_lease_file_lives_as_long_as_its_run_and_is_kept_fresh(location, monkeypatch):
    monkeypatch.setattr(recovery._keeper, "interval", 0.2)
    monkeypatch.setattr(recovery, "HEARTBEAT_INTERVAL", 0.0)
    run_id = _run(location, "leased", recovery.owner_tags())
    lease = recovery.Lease(store_module.client_for(location))
    lease.start(run_id)
    path = recovery.lease_dir() / f"{run_id}.json"
    assert json.loads(path.read_text())[recovery.OWNER_PID] == str(os.getpid())
    assert path.stat().st_mode & 0o777 == 0o600
    os.utime(path, (1, 1))
    recovery._keeper.wakeup.set()  # a keeper thread from an earlier test may be in a 30 s wait
    client = store_module.client_for(location)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (
        path.stat().st_mtime < 2 or recovery.HEARTBEAT not in client.get_run(run_id).data.tags
    ):  # the keeper touches the file, then sets the tag
        time.sleep(0.1)
    assert path.stat().st_mtime > time.time() - 20
    heartbeat = client.get_run(run_id).data.tags[recovery.HEARTBEAT]
    assert abs(int(heartbeat) / 1000 - time.time()) < 10
    lease.stop()
    assert not path.exists()
    lease.stop()


def test_a_tracked_run_carries_its_owner_and_a_lease_while_open(shell, project):
    shell.run_cell("%%track owned -e owners\nimport os, jupyter_tracking as jt\n"
                   "leases = sorted(p.name for p in jt.recovery.lease_dir().glob('*.json'))\n")
    [run] = runs_of(project, "owners")
    assert run.data.tags[recovery.OWNER_PID] == str(os.getpid())
    assert run.data.tags[recovery.OWNER_HOST] == HOST
    assert shell.user_ns["leases"] == [f"{run.info.run_id}.json"]
    assert list(recovery.lease_dir().glob("*.json")) == []  # removed when the run ended


def test_recovery_query_on_many_runs_is_one_search(location):
    client = store_module.client_for(location)
    calls = []
    original = client.search_runs

    def counting(*args, **kwargs):
        calls.append(kwargs.get("filter_string"))
        return original(*args, **kwargs)

    client.search_runs = counting
    try:
        recovery.recover(location)
    finally:
        del client.search_runs
    assert len(calls) == 1 and "RUNNING" in calls[0]


def test_a_killed_kernel_s_run_is_ended_by_the_next_kernel_on_the_project(project):
    first = Kernel(project / "notebooks")
    try:
        reply, printed = first.run_text("%load_ext jupyter_tracking\n%track config --experiment crash")
        assert reply["content"]["status"] == "ok", printed
        first.send("%%track doomed\nimport time, jupyter_tracking as jt\nfor step in range(1000):\n"
                   "    jt.log(step=step, loss=1 / (step + 1))\n    time.sleep(0.1)\n")
        deadline = time.monotonic() + 120
        runs = []
        while time.monotonic() < deadline and not runs:
            time.sleep(0.5)
            if (project / "mlflow.db").exists():  # never let this process create the store
                runs = runs_of(project, "crash")
        [run] = runs
        lease = recovery.lease_dir() / f"{run.info.run_id}.json"
        assert lease.exists()
        time.sleep(1.0)
        killed_pid, kernel_id = first.pid, first.kernel_id
        os.kill(killed_pid, signal.SIGKILL)
        killed_at = time.time()
    finally:
        first.close()
    assert store_client(project).get_run(run.info.run_id).info.status == "RUNNING"

    second = Kernel(project / "notebooks")
    try:
        printed = second.load_ext_printing("ended")
        reply, again = second.run_text("%track recover")
    finally:
        second.close()
    lines = [line for line in printed.splitlines() if "ended" in line]
    assert lines == [
        f"jupyter_tracking: ended 1 run(s) left RUNNING by kernel process(es) that are gone ({killed_pid} on "
        f"{HOST}) as KILLED: doomed ({run.info.run_id})"
    ], printed
    assert "no run of a dead kernel to end" in again
    ended = store_client(project).get_run(run.info.run_id)
    assert ended.info.status == "KILLED"
    assert ended.data.tags[recovery.ENDED_BY] == f"recovery: owner process {killed_pid} on {HOST} is gone"
    assert ended.data.tags[recovery.OWNER_KERNEL_ID] == kernel_id
    assert ended.info.start_time <= ended.info.end_time <= killed_at * 1000
    assert not lease.exists()


@pytest.mark.parametrize("command", [("track", ""), ("runs", "Default"), ("track", "recover")])
def test_track_status_runs_and_recover_end_a_dead_kernel_s_run_with_one_line(shell, project, capfd, command):
    where = store_module.resolve_store(project / "notebooks")
    gone_pid = _dead_pid()
    run_id = _run(where, "orphan", {**recovery.owner_tags(), recovery.OWNER_PID: str(gone_pid)})
    capfd.readouterr()
    shell.run_line_magic(*command)
    captured = capfd.readouterr()
    said = [line for line in (captured.out + captured.err).splitlines() if "ended 1 run(s)" in line]
    assert len(said) == 1 and f"orphan ({run_id})" in said[0] and f"({gone_pid} on {HOST})" in said[0]
    assert store_module.client_for(where).get_run(run_id).info.status == "KILLED"
