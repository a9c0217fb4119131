"""The MLflow UI server manager against real ``mlflow server`` processes on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time

import psutil
import pytest

from jupyter_tracking.sharing.processes import free_port
from jupyter_tracking.sharing.ui_server import (
    NotServable,
    PortInUse,
    Reused,
    StartFailed,
    Started,
    StartTimedOut,
    start_ui_server,
)
from jupyter_tracking.store import StoreLocation, client_for, experiment_id_for, resolve_store
from tests.sharing.conftest import group_members, group_rss_mb, http_get, processes_with, wait_until

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> StoreLocation:
    root = tmp_path_factory.mktemp("uiproj")
    (root / "pyproject.toml").write_text("[project]\nname='ui'\n")
    return resolve_store(root)


PROGRESS: list[tuple[float, str]] = []


@pytest.fixture(scope="module")
def started(embedded):
    began = time.monotonic()
    outcome = start_ui_server(embedded, progress=lambda elapsed, stage: PROGRESS.append((elapsed, stage)))
    elapsed = time.monotonic() - began
    assert isinstance(outcome, Started), outcome.message
    yield outcome, elapsed
    outcome.server.stop()


def test_server_is_lean_bound_to_loopback_and_healthy(started, embedded):
    outcome, elapsed = started
    server = outcome.server
    assert server.url == f"http://127.0.0.1:{server.port}/"
    status, _, body = http_get(server.port, "/health")
    assert (status, body) == (200, b"OK")
    members = group_members(server.pid)
    # the guard and one process serving MLflow's app (no `mlflow server` in front of it, no job runners)
    assert len(members) == 2, [m.cmdline() for m in members]
    worker = next(m for m in members if m.cmdline()[1:3] == ["-m", "jupyter_tracking.sharing.mlflow_server"])
    assert worker.cmdline()[worker.cmdline().index("--backend-store-uri") + 1] == embedded.uri
    environ = worker.environ()
    assert environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION") == "false"
    assert (environ.get("MLFLOW_DISABLE_TELEMETRY"), environ.get("DO_NOT_TRACK")) == ("true", "true")
    # MLflow's UI is told telemetry is off.
    status, _, body = http_get(server.port, "/ajax-api/3.0/mlflow/ui-telemetry")
    assert status == 200 and json.loads(body)["disable_ui_telemetry"] is True
    # While it started, the caller heard how long it had been and what it was doing.
    assert PROGRESS and {stage for _, stage in PROGRESS} <= {"loading MLflow", "answering"}
    assert [e for e, _ in PROGRESS] == sorted(e for e, _ in PROGRESS)
    listening = [
        c for m in members for c in m.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
    ]
    assert listening and {c.laddr.ip for c in listening} == {"127.0.0.1"}
    assert {c.laddr.port for c in listening} == {server.port}
    print(f"\nUI server: healthy after {elapsed:.1f} s, {len(members)} processes, {group_rss_mb(server.pid):.0f} MB RSS")


def test_page_can_be_framed_by_the_notebook(started):
    server = started[0].server
    status, headers, body = http_get(server.port, "/")
    assert status == 200 and b"<html" in body.lower()
    assert "x-frame-options" not in headers  # SAMEORIGIN would blank the notebook's iframe (other port)


def test_the_open_page_sets_mlflow_ui_preferences_then_opens_the_route(started):
    """The inline frame opens the UI through the server's own page, which sets MLflow's UI preferences (its
    assistant column closed) where the user has not chosen, then loads the route after ``#`` on this server."""
    from jupyter_tracking.sharing.display import ui_route
    from jupyter_tracking.sharing.mlflow_server import OPEN_PATH, UI_DEFAULTS

    server = started[0].server
    status, headers, body = http_get(server.port, "/" + OPEN_PATH)
    assert status == 200 and headers["content-type"].startswith("text/html") and "x-frame-options" not in headers
    page = body.decode()
    assert json.dumps(UI_DEFAULTS) in page and "localStorage.getItem(key) === null" in page
    assert "location.replace('./' + location.hash)" in page  # only this server's page: the hash is a route
    assert http_get(server.port, "/" + OPEN_PATH + "/x")[0] == 404  # MLflow's own answer for anything else
    route = ui_route("3", "abc")
    assert server.page_url(route) == f"{server.url}{OPEN_PATH}{route}"


def test_the_open_page_has_the_lab_extension_s_preferences():
    """The JupyterLab tab sets MLflow's UI preferences itself (mlflowPrefs.ts): the same entries."""
    import re
    from pathlib import Path

    from jupyter_tracking.sharing.mlflow_server import UI_DEFAULTS

    source = (Path(__file__).parents[2] / "labextension" / "src" / "mlflowPrefs.ts").read_text()
    block = re.search(r"MLFLOW_UI_DEFAULTS[^=]*=\s*\{(.*?)\};", source, re.S).group(1)
    assert dict(re.findall(r"'([^']+)':\s*'([^']*)'", block)) == UI_DEFAULTS


def test_same_arguments_reuse_the_running_server(started, embedded):
    server = started[0].server
    again = start_ui_server(embedded)
    assert isinstance(again, Reused) and again.server is server
    on_port = start_ui_server(embedded, port=server.port)
    assert isinstance(on_port, Reused) and on_port.server.pid == server.pid
    assert "reused" in again.message


def test_artifacts_of_the_embedded_store_are_served(started, embedded):
    client = client_for(embedded)
    experiment_id = experiment_id_for(embedded, "ui-artifacts")
    run = client.create_run(experiment_id, run_name="with-artifact")
    client.log_text(run.info.run_id, "hello from the notebook", "notes/hello.txt")
    client.set_terminated(run.info.run_id)
    assert run.info.artifact_uri.startswith(embedded.artifact_root)
    port = started[0].server.port
    status, _, body = http_get(port, f"/ajax-api/2.0/mlflow/artifacts/list?run_id={run.info.run_id}&path=notes")
    assert status == 200, body
    assert [f["path"] for f in json.loads(body)["files"]] == ["notes/hello.txt"]
    status, _, body = http_get(port, f"/get-artifact?path=notes/hello.txt&run_uuid={run.info.run_id}")
    assert (status, body) == (200, b"hello from the notebook")


def test_port_in_use_is_one_line_and_starts_nothing(embedded, no_leftovers):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        no_leftovers.append(("mlflow", "--port", str(port)))
        outcome = start_ui_server(embedded, port=port)
    assert isinstance(outcome, PortInUse)
    assert outcome.message.count("\n") == 0 and str(port) in outcome.message and "--port" in outcome.message
    assert not processes_with("mlflow", str(port))


def test_server_that_fails_to_start_reports_its_stderr(tmp_path, no_leftovers):
    (tmp_path / "not-a-folder").write_text("a file where the store's folder should be")
    bad = StoreLocation(f"sqlite:///{tmp_path}/not-a-folder/mlflow.db", "config")
    no_leftovers.append(("mlflow", str(tmp_path)))
    outcome = start_ui_server(bad)
    assert isinstance(outcome, StartFailed), outcome
    assert outcome.exit_code not in (None, 0)
    assert outcome.stderr.strip(), "the server's stderr is kept for the user"
    assert "\n" not in outcome.message and outcome.message.startswith("The MLflow UI server exited")


def test_server_that_is_not_ready_in_time_is_stopped(tmp_path, no_leftovers):
    (tmp_path / "pyproject.toml").write_text("")
    location = resolve_store(tmp_path)
    no_leftovers.append(("mlflow", str(tmp_path)))
    outcome = start_ui_server(location, timeout=1.0)
    assert isinstance(outcome, StartTimedOut)
    assert "did not answer /health within 1 s" in outcome.message


def test_remote_stores_are_not_served_again():
    outcome = start_ui_server(StoreLocation("https://bob:hunter2@mlflow.example.org", "env"))
    assert isinstance(outcome, NotServable)
    assert "hunter2" not in outcome.message and "mlflow.example.org" in outcome.message


def test_stop_ends_the_whole_process_group(embedded):
    outcome = start_ui_server(embedded, port=free_port(), frame_options="DENY")
    assert isinstance(outcome, Started), outcome.message
    server = outcome.server
    assert http_get(server.port, "/")[1].get("x-frame-options") == "DENY"
    pids = [p.pid for p in group_members(server.pid)]
    assert len(pids) == 2
    server.stop()
    assert wait_until(lambda: not group_members(server.pid), timeout=10)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    assert not server.state_dir.exists()


def test_an_unknown_mlflow_server_setup_falls_back_to_mlflow_server(embedded, monkeypatch, no_leftovers):
    """When the installed MLflow's private names are not the known ones, ``mlflow server`` itself is started."""
    from jupyter_tracking import internals

    monkeypatch.setattr(internals, "mlflow_server_worker_env", lambda: None)
    outcome = start_ui_server(embedded, port=free_port(), frame_options="SAMEORIGIN")
    assert isinstance(outcome, Started), outcome.message
    server = outcome.server
    no_leftovers.append(("--port", str(server.port)))
    try:
        assert http_get(server.port, "/health")[:3:2] == (200, b"OK")
        members = group_members(server.pid)
        cli = next(m for m in members if m.cmdline()[1:4] == ["-m", "mlflow", "server"])
        assert cli.environ().get("MLFLOW_DISABLE_TELEMETRY") == "true"
        assert len(members) == 3  # the guard, `mlflow server`, its one uvicorn worker
        assert server.page_url("#/experiments") == server.url + "#/experiments"  # no open page of ours there
    finally:
        server.stop()
