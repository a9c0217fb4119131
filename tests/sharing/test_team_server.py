"""Team servers: %%track, jt.log, %runs, load/restore in a real kernel against a real ``mlflow server`` over
HTTP with MLflow's login on; PostgreSQL as the backend; a server that dies mid-run (spool, then sync)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.sharing.conftest import http_get
from tests.sharing.team import Kernel, Postgres, TeamServer

pytestmark = pytest.mark.server

PASSWORD = "team-admin-password-9f2c"


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    server = TeamServer("sqlite:///" + str(tmp_path_factory.mktemp("team") / "mlflow.db"),
                        tmp_path_factory.mktemp("teamfiles"), password=PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def notebook_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("teamproj")
    (root / "pyproject.toml").write_text("")
    (root / "notebooks").mkdir()
    return root / "notebooks"


@pytest.fixture(scope="module")
def kernel(team, notebook_dir, tmp_path_factory):
    k = Kernel(
        notebook_dir,
        {
            "MLFLOW_TRACKING_URI": team.url,
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": PASSWORD,
            "JUPYTER_TRACKING_SPOOL_DIR": str(tmp_path_factory.mktemp("kspool")),
            # No MLFLOW_HTTP_REQUEST_* tuning: the recorder itself must notice a dead server in seconds.
        },
    )
    yield k
    k.shutdown()


@pytest.fixture
def client(team, monkeypatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    return MlflowClient(team.url)


def _runs(client: MlflowClient, experiment: str, name: str | None = None):
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} on the server"
    runs = client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])
    return [r for r in runs if name is None or r.info.run_name == name]


def test_the_team_server_requires_a_login(team):
    assert http_get(team.port, "/api/2.0/mlflow/experiments/search?max_results=1")[0] == 401
    ok = http_get(team.port, "/api/2.0/mlflow/experiments/search?max_results=1", auth=("admin", PASSWORD))
    assert ok[0] == 200
    assert http_get(team.port, "/api/2.0/mlflow/experiments/search?max_results=1", auth=("admin", "nope"))[0] == 401


def test_load_ext_names_the_server_without_credentials(kernel, team):
    out = kernel.run_ok("%load_ext jupyter_tracking\n%track")["stdout"]
    assert team.url in out and PASSWORD not in out


def test_tracked_cell_over_http_with_login(kernel, client):
    kernel.run_ok("%track config --experiment team-http")
    result = kernel.run_ok(
        "%%track http-run --artifacts model\n"
        "import jupyter_tracking as jt\n"
        "lr = 0.05\nlayers = [32, 16]\nmodel = {'weights': [3, 1, 4]}\n"
        "for step in range(6):\n    jt.log(step=step, loss=1.0 / (step + 1))\n"
        "accuracy = max(0.91, lr)\n"  # computed, so a metric (a literal would be a param)
    )
    assert "spool" not in result["stderr"] + result["stdout"], result
    [run] = _runs(client, "team-http", "http-run")
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.05" and run.data.params["layers"] == "[32, 16]"
    assert run.data.metrics["accuracy"] == 0.91
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == list(range(6))
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # uploaded through the server, not a local path
    with open(client.download_artifacts(run.info.run_id, "artifacts/model.json")) as fh:  # plain data: JSON
        assert json.load(fh) == {"weights": [3, 1, 4]}


def test_runs_best_load_restore_over_http(kernel, client):
    kernel.run_ok("%%track second\nlr = 0.5\naccuracy = max(0.97, lr)\n")
    [best] = _runs(client, "team-http", "second")
    panel = kernel.run_ok("%runs team-http")
    shown = str(panel["data"]) + panel["stdout"]
    assert "http-run" in shown and "second" in shown
    out = kernel.run_ok("%track best accuracy --max")
    assert best.info.run_id in str(out["data"]) + out["stdout"]
    [first] = _runs(client, "team-http", "http-run")
    kernel.run_ok(f"%track load {first.info.run_id} model")
    kernel.run_ok(f"%track restore {first.info.run_id}")
    values = kernel.run_ok("print(model, lr, layers)")["stdout"]
    assert values.strip() == "{'weights': [3, 1, 4]} 0.05 [32, 16]"


def test_server_dying_mid_run_spools_and_sync_delivers(kernel, team, client, tmp_path):
    """The server is killed while a tracked cell runs; the run is spooled, then delivered after a restart."""
    go = tmp_path / "go"
    kernel.client.execute(
        "%%track crash-run\n"
        "import jupyter_tracking as jt, time, pathlib\n"
        "lr = 0.2\n"
        "for step in range(4):\n    jt.log(step=step, loss=1.0 / (step + 1))\n"
        "time.sleep(1.5)\n"  # let the writer deliver the first points
        f"pathlib.Path({str(tmp_path / 'ready')!r}).write_text('1')\n"
        f"while not pathlib.Path({str(go)!r}).exists():\n    time.sleep(0.1)\n"
        "for step in range(4, 10):\n    jt.log(step=step, loss=1.0 / (step + 1))\n"
        "accuracy = min(0.5, lr * 10)\n"
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "ready").exists():
        assert time.monotonic() < deadline, "the cell never got going"
        time.sleep(0.1)
    [live] = _runs(client, "team-http", "crash-run")
    assert live.info.status == "RUNNING"
    team.kill()
    go.write_text("1")
    killed_at = time.monotonic()
    outputs = _collect_until_idle(kernel, timeout=240)
    assert "spool" in outputs, outputs
    # The cell ends in seconds, not after MLflow's minutes of HTTP retries against the dead server.
    assert time.monotonic() - killed_at < 30, outputs
    status = kernel.run_ok("%track")["stdout"]
    assert "spooled" in status and "1 run" in status
    assert "still unreachable" in kernel.run_ok("%track sync")["stderr"]
    team.start()
    synced = kernel.run_ok("%track sync")["stdout"]
    assert "delivered 1" in synced
    [run] = _runs(client, "team-http", "crash-run")
    assert run.info.run_id == live.info.run_id  # the same run, completed, not a second one
    assert run.info.status == "FINISHED"
    assert run.data.metrics["accuracy"] == 0.5 and run.data.params["lr"] == "0.2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == list(range(10))


def test_wrong_credentials_are_one_clear_line_and_nothing_is_lost(team, notebook_dir, tmp_path, client):
    wrong = Kernel(notebook_dir, {
        "MLFLOW_TRACKING_URI": team.url, "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": "not-the-password", "JUPYTER_TRACKING_SPOOL_DIR": str(tmp_path / "spool"),
    })
    try:
        wrong.run_ok("%load_ext jupyter_tracking\n%track config --experiment team-creds")
        result = wrong.run_ok("%%track refused\nlr = 0.3\nscore = lr * 2\n")
        assert "refused the credentials" in result["stderr"] and "MLFLOW_TRACKING_PASSWORD" in result["stderr"]
        assert "not-the-password" not in result["stderr"] + result["stdout"]
        sync = wrong.run("%track sync")
        assert sync["error"] is None and "refused the credentials" in sync["stderr"]
        assert "Traceback" not in sync["stderr"]
        runs = wrong.run("%runs team-creds")
        # IPython prints a UsageError as one line on stderr (no traceback).
        assert runs["stderr"].strip().splitlines() == [runs["stderr"].strip()], runs
        assert runs["stderr"].startswith("UsageError: ") and "refused the credentials" in runs["stderr"], runs
        assert len(list((tmp_path / "spool").glob("*.jsonl"))) == 1  # kept for a sync with the right password
    finally:
        wrong.shutdown()


def _collect_until_idle(kernel: Kernel, timeout: float) -> str:
    """Text of every output of the cell executing now, until the kernel is idle again."""
    texts = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = kernel.client.get_iopub_msg(timeout=max(1, deadline - time.monotonic()))
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            texts.append(content["text"])
        elif kind in ("display_data", "execute_result"):
            texts.append(str(content["data"].get("text/plain", "")))
        elif kind == "error":
            texts.append("ERROR " + content["ename"])
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(texts)
    raise AssertionError(f"cell still running after {timeout} s: {''.join(texts)}")


def test_a_run_on_a_postgresql_backed_server(kernel, tmp_path_factory, monkeypatch):
    pg = Postgres().start()
    server = None
    try:
        server = TeamServer(pg.uri, tmp_path_factory.mktemp("pgfiles")).start()
        kernel.run_ok(f"%track config --uri {server.url} --experiment on-postgres")
        kernel.run_ok("%%track pg-run\nimport jupyter_tracking as jt\nbatch = 64\n"
                      "for s in range(3):\n    jt.log(step=s, loss=3.0 - s)\nscore = max(0.75, batch / 1000)\n")
        [run] = _runs(MlflowClient(server.url), "on-postgres", "pg-run")
        assert run.info.status == "FINISHED" and run.data.metrics["score"] == 0.75
        assert run.data.params["batch"] == "64"
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=pg.port, user=pg.user, password=pg.password, dbname="mlflow") as conn:
            with conn.cursor() as cur:
                cur.execute("select name, status from runs where run_uuid = %s", (run.info.run_id,))
                assert cur.fetchone() == ("pg-run", "FINISHED")
                cur.execute("select count(*) from metrics where run_uuid = %s and key = 'loss'", (run.info.run_id,))
                assert cur.fetchone()[0] == 3
    finally:
        kernel.run("%track config --uri ''")
        if server is not None:
            server.stop()
        pg.stop()
