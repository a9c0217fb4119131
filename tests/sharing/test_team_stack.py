"""The team stack (``jupyter_tracking.team``) from nothing: PostgreSQL, SeaweedFS S3 and ``mlflow server`` with its
login, a real kernel tracking a model of tens of MB into it, the objects read back from S3 with boto3 and through
``jt.load``, the object store killed mid-upload (spool, then ``%track sync``), and the command line's up/down."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from mlflow import MlflowClient

from jupyter_tracking.team import ARTIFACT_PREFIX, BUCKET, TeamStack
from tests.sharing.conftest import group_members, http_get, wait_until
from tests.sharing.team import REPO, Kernel

pytestmark = pytest.mark.server

MODEL_CELL = (
    "import numpy as np, hashlib, pickle\n"
    "lr = 0.05\n"
    "model = {{'kind': 'linear', 'coef': np.random.default_rng({seed}).random({size})}}\n"
    "digest = hashlib.sha256(pickle.dumps(model['coef'])).hexdigest()\n"
    "accuracy = max({accuracy}, lr)\n"
)


def _stack_folder() -> Path:
    # Not pytest's tmp (0700 root): as root the postgres user must reach the data folder inside.
    return Path(tempfile.mkdtemp(prefix="jt-team-"))


@pytest.fixture(scope="module")
def stack():
    team = TeamStack(_stack_folder()).start()
    yield team
    team.stop()
    team.remove_data()
    shutil.rmtree(team.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def kernel(stack, tmp_path_factory):
    root = tmp_path_factory.mktemp("teamstackproj")
    (root / "pyproject.toml").write_text("")
    (root / "notebooks").mkdir()
    env = dict(stack.notebook_env(), JUPYTER_TRACKING_SPOOL_DIR=str(tmp_path_factory.mktemp("stackspool")))
    k = Kernel(root / "notebooks", env)
    yield k
    k.shutdown()


@pytest.fixture
def client(stack, monkeypatch) -> MlflowClient:
    for key, value in stack.notebook_env().items():
        monkeypatch.setenv(key, value)
    return MlflowClient(stack.url)


def _run(client: MlflowClient, experiment: str, name: str):
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} on the server"
    [run] = [r for r in client.search_runs([found.experiment_id]) if r.info.run_name == name]
    return run


def _s3_key(run, name: str) -> str:
    return f"{ARTIFACT_PREFIX}/{run.info.experiment_id}/{run.info.run_id}/artifacts/artifacts/{name}"


def _digest_of_s3_model(stack: TeamStack, run) -> tuple[int, str]:
    """Size of the pickled model object in the bucket and the digest of its array, read with boto3 (not MLflow)."""
    body = stack.objects.client().get_object(Bucket=BUCKET, Key=_s3_key(run, "model.pkl"))["Body"].read()
    model = pickle.loads(body)
    return len(body), hashlib.sha256(pickle.dumps(model["coef"])).hexdigest()


def test_every_server_of_the_stack_listens_on_loopback_only(stack):
    ports = set()
    for pgid in stack.pids().values():
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(proc.pid) != pgid:
                    continue
                for conn in proc.net_connections(kind="inet"):
                    if conn.status == psutil.CONN_LISTEN:
                        assert conn.laddr.ip == "127.0.0.1", (proc.pid, conn)
                        ports.add(conn.laddr.port)
            except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
                continue
    assert {stack.mlflow.port, stack.postgres.port, stack.objects.ports["s3"]} <= ports


def test_requests_without_the_login_are_refused(stack):
    path = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert http_get(stack.mlflow.port, path)[0] == 401
    assert http_get(stack.mlflow.port, path, auth=(stack.user, "wrong-password"))[0] == 401
    assert http_get(stack.mlflow.port, path, auth=(stack.user, stack.secrets["user_password"]))[0] == 200
    # The object store refuses anonymous requests too (S3 answers 403 to an unsigned listing).
    assert http_get(stack.objects.ports["s3"], f"/{BUCKET}?list-type=2")[0] == 403


def test_secrets_stay_in_the_private_file(stack):
    assert (stack.folder / "secrets.json").stat().st_mode & 0o777 == 0o600
    logs = "".join(p.read_text(errors="replace") for p in (stack.folder / "logs").glob("*.log"))
    for key, value in stack.secrets.items():
        if key != "user":
            assert value not in logs, f"{key} appears in a log"
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or ())
        assert stack.secrets["database_password"] not in line and stack.secrets["s3_secret_key"] not in line


def test_a_tracked_model_goes_through_the_server_to_s3_and_back(stack, kernel, client):
    kernel.run_ok("%track config --experiment team-stack")
    result = kernel.run_ok("%%track big-model --artifacts model\n"
                           + MODEL_CELL.format(seed=1, size=4_000_000, accuracy=0.8))  # 32 MB of floats
    output = result["stderr"] + result["stdout"]
    assert "spool" not in output, output
    assert "uploading model.pkl" in result["stderr"] and "uploaded model.pkl (30.5 MB)" in result["stderr"], output
    digest = kernel.run_ok("print(digest)")["stdout"].strip()
    run = _run(client, "team-stack", "big-model")
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith("mlflow-artifacts:")
    # The object itself, read with the object store's own client: it is in the bucket, complete.
    size, s3_digest = _digest_of_s3_model(stack, run)
    assert size > 30 * 2**20 and s3_digest == digest
    # ... and back through the server: jt.load in the notebook, and %track load.
    loaded = kernel.run_ok(
        f"import jupyter_tracking as jt\nm = jt.load({run.info.run_id!r}, 'model')\n"
        "print(hashlib.sha256(pickle.dumps(m['coef'])).hexdigest(), m['kind'])"
    )["stdout"].split()
    assert loaded == [digest, "linear"]
    kernel.run_ok(f"del model\n%track load {run.info.run_id} model")
    assert kernel.run_ok("print(model['coef'].shape)")["stdout"].strip() == "(4000000,)"


def test_best_runs_diff_restore_and_the_ui_link(stack, kernel, client):
    kernel.run_ok("%%track better\nlr = 0.5\nlayers = [8, 4]\naccuracy = max(0.9, lr)\n")
    better = _run(client, "team-stack", "better")
    first = _run(client, "team-stack", "big-model")
    best = kernel.run_ok("%track best accuracy --max")
    assert better.info.run_id in str(best["data"]) + best["stdout"]
    panel = kernel.run_ok("%runs team-stack")
    assert "big-model" in str(panel["data"]) + panel["stdout"]
    diff = kernel.run_ok(f"%track diff {first.info.run_id} {better.info.run_id}")
    assert "0.05" in str(diff["data"]) + diff["stdout"] and "0.5" in str(diff["data"]) + diff["stdout"]
    kernel.run_ok(f"%track restore {better.info.run_id}")
    assert kernel.run_ok("print(lr, layers)")["stdout"].strip() == "0.5 [8, 4]"
    # rerun reads the cell's source back from S3 through the server and runs it again as a new run.
    kernel.run_ok(f"%track rerun {better.info.run_id}")
    found = client.get_experiment_by_name("team-stack")
    [again] = [r for r in client.search_runs([found.experiment_id])
               if r.data.tags.get("rerun_of") == better.info.run_id]
    assert again.info.status == "FINISHED" and again.data.params["lr"] == "0.5"
    ui = kernel.run_ok("%tracking_ui")
    shown = str(ui["data"]) + ui["stdout"]
    assert stack.url in shown and stack.secrets["user_password"] not in shown
    # The link leads to the server's own UI, behind its login.
    assert http_get(stack.mlflow.port, "/")[0] == 401
    status, _, page = http_get(stack.mlflow.port, "/", auth=(stack.user, stack.secrets["user_password"]))
    assert status == 200 and b"<html" in page.lower()


def test_object_store_killed_mid_upload_spools_the_run_and_sync_delivers_it(stack, kernel, client):
    kernel.client.execute("%%track upload-cut --artifacts model\n"
                          + MODEL_CELL.format(seed=2, size=10_000_000, accuracy=0.7))  # 80 MB
    texts: list[str] = []
    killed_at = None
    deadline = time.monotonic() + 300
    while True:
        assert time.monotonic() < deadline, "".join(texts)
        msg = kernel.client.get_iopub_msg(timeout=max(1, deadline - time.monotonic()))
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            texts.append(content["text"])
            if killed_at is None and "uploading model.pkl" in content["text"]:
                stack.objects.kill()  # the notebook's upload to the server has begun
                killed_at = time.monotonic()
        elif kind == "error":
            texts.append("ERROR " + content["ename"])
        elif kind == "status" and content["execution_state"] == "idle":
            break
    output = "".join(texts)
    assert killed_at is not None, output
    assert "upload of model.pkl failed" in output and "ERROR" not in output, output
    assert "uploading model.pkl failed: the server answered HTTP 500" in output and "%track sync" in output, output
    assert time.monotonic() - killed_at < 90, output  # not MLflow's minutes of retries
    digest = kernel.run_ok("print(digest)")["stdout"].strip()
    # With the object store still down, an ordinary tracked cell (only its source to upload) spools in seconds too.
    began = time.monotonic()
    small = kernel.run_ok("%%track while-s3-down\nbatch = 32\nscore = batch / 64\n")
    assert "spool" in small["stderr"] and time.monotonic() - began < 60, small
    status = kernel.run_ok("%track")["stdout"]
    assert "spooled" in status and "2 run" in status, status
    stack.objects.start(stack.log_dir)  # the object store is back, with its data
    synced = kernel.run_ok("%track sync", timeout=300)
    assert "delivered 2" in synced["stdout"], synced
    small_run = _run(client, "team-stack", "while-s3-down")
    assert small_run.info.status == "FINISHED" and small_run.data.metrics["score"] == 0.5
    assert client.list_artifacts(small_run.info.run_id, "cell")[0].path == "cell/cell.py"
    run = _run(client, "team-stack", "upload-cut")
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.05" and run.data.metrics["accuracy"] == 0.7
    size, s3_digest = _digest_of_s3_model(stack, run)
    assert size > 76 * 2**20 and s3_digest == digest
    loaded = kernel.run_ok(
        f"m = jt.load({run.info.run_id!r}, 'model')\n"
        "print(hashlib.sha256(pickle.dumps(m['coef'])).hexdigest())"
    )["stdout"].strip()
    assert loaded == digest
    # The first model, stored before the cut, is intact.
    first = _run(client, "team-stack", "big-model")
    assert _digest_of_s3_model(stack, first)[0] > 30 * 2**20


def _team(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    return subprocess.run([sys.executable, "-m", "jupyter_tracking.team", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def _processes_under(folder: Path) -> list[int]:
    """Processes started by this stack: the supervisor and the servers name the folder on their command line."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and str(folder) in " ".join(proc.info["cmdline"] or ()):
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_command_line_up_status_down_keeps_data_until_reset():
    folder = _stack_folder()
    try:
        up = _team("up", "--dir", str(folder))
        assert up.returncode == 0, up.stdout + up.stderr
        lines = dict(line.removeprefix("export ").split("=", 1) for line in up.stdout.splitlines()
                     if line.startswith("export "))
        assert set(lines) == {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
        assert lines["MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:")
        status = _team("status", "--dir", str(folder))
        assert status.returncode == 0 and status.stdout.count(" ok") == 3, status.stdout
        env = _team("env", "--dir", str(folder)).stdout
        assert f"export MLFLOW_TRACKING_PASSWORD={lines['MLFLOW_TRACKING_PASSWORD']}" in env
        port = int(lines["MLFLOW_TRACKING_URI"].rsplit(":", 1)[1])
        auth = (lines["MLFLOW_TRACKING_USERNAME"], lines["MLFLOW_TRACKING_PASSWORD"])
        client_env = {**os.environ, **lines}
        create = "import mlflow; print(mlflow.MlflowClient().create_experiment('kept'))"
        made = subprocess.run([sys.executable, "-c", create], env=client_env, capture_output=True, text=True,
                              timeout=120)
        assert made.returncode == 0, made.stderr

        running = json.loads((folder / "running.json").read_text())
        groups = [running["pid"], *running["groups"].values()]
        assert len(groups) == 4
        down = _team("down", "--dir", str(folder))
        assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
        assert wait_until(lambda: not _processes_under(folder), timeout=20), _processes_under(folder)
        assert wait_until(lambda: not any(group_members(g) for g in groups), timeout=20)
        with pytest.raises(OSError):
            http_get(port, "/health", timeout=2)
        assert _team("status", "--dir", str(folder)).returncode == 1

        again = _team("up", "--dir", str(folder))
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"MLFLOW_TRACKING_URI=http://127.0.0.1:{port}" in again.stdout  # same address for the notebooks
        status, _, body = http_get(port, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=kept", auth=auth)
        assert status == 200 and b"kept" in body

        gone = _team("down", "--dir", str(folder), "--reset")
        assert gone.returncode == 0 and "data removed" in gone.stdout
        assert wait_until(lambda: not _processes_under(folder), timeout=20), _processes_under(folder)
        assert not (folder / "secrets.json").exists() and not (folder / "seaweedfs").exists()
    finally:
        _team("down", "--dir", str(folder), "--reset", timeout=120)
        shutil.rmtree(folder, ignore_errors=True)
