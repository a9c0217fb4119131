"""``%tracking_ui`` in a real Jupyter kernel: the inline view, reuse, status, bad arguments, and that neither
``--stop``, a kernel shutdown nor a killed kernel leaves a process behind."""

from __future__ import annotations

import html
import re
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.sharing.conftest import http_get, processes_with, wait_until
from tests.sharing.team import Kernel

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def odd_project(tmp_path_factory):
    """A project whose folder name would break HTML if it were not escaped."""
    root = tmp_path_factory.mktemp("ui") / "proj<i>&co"
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    return root


@pytest.fixture(scope="module")
def kernel(odd_project, tmp_path_factory):
    k = Kernel(odd_project / "notebooks", {"JUPYTER_TRACKING_SPOOL_DIR": str(tmp_path_factory.mktemp("sp"))})
    yield k
    k.shutdown()


def _html(result: dict) -> str:
    return "".join(bundle.get("text/html", "") for bundle in result["data"])


def test_tracking_ui_shows_the_store_inline(kernel, odd_project):
    began = time.monotonic()
    result = kernel.run_ok("%tracking_ui --height 500")
    elapsed = time.monotonic() - began
    # While the server started: a progress line (elapsed time and stage), which the frame then replaced.
    first, last = result["data"][0], result["data"][-1]
    assert first["text/plain"].startswith(f"Starting the MLflow UI for {odd_project / 'mlflow.db'}")
    assert "<progress" in first["text/html"] and "proj<i>" not in first["text/html"]
    page = last["text/html"]
    # Opened on this kernel's experiment (Default: no notebook name, nothing configured), in the training view,
    # through the server's open page (it sets the UI's preferences first).
    match = re.search(
        r'<iframe src="http://127\.0\.0\.1:(\d+)/jupyter-tracking-open#/experiments/0/runs'
        r'\?workflowType=machine_learning" title="MLflow UI" width="100%" height="500"',
        page,
    )
    assert match, page
    port = int(match.group(1))
    status, headers, body = http_get(port, "/")
    assert status == 200 and b"<html" in body.lower() and "x-frame-options" not in headers
    status, headers, body = http_get(port, "/jupyter-tracking-open")
    assert status == 200 and b"location.replace" in body and "x-frame-options" not in headers
    assert html.escape(str(odd_project)) in page and "proj<i>" not in page  # escaped, never raw
    plain = last["text/plain"]
    assert f"http://127.0.0.1:{port}/#/experiments/0/runs" in plain and str(odd_project / "mlflow.db") in plain
    assert processes_with("mlflow_server", "--port", str(port), str(odd_project))
    print(f"\n%tracking_ui in a kernel: shown after {elapsed:.1f} s")


def test_a_second_call_reuses_the_server(kernel):
    first = re.search(r":(\d+)/", _html(kernel.run_ok("%tracking_ui"))).group(1)
    began = time.monotonic()
    second = re.search(r":(\d+)/", _html(kernel.run_ok("%tracking_ui"))).group(1)
    assert first == second and time.monotonic() - began < 3
    assert len(processes_with("mlflow", "--port", first)) == 2  # one server: its guard and its one process


def test_status(kernel):
    out = kernel.run_ok("%tracking_ui --status")["stdout"]
    assert out.startswith("MLflow UI running at http://127.0.0.1:")


@pytest.mark.parametrize(
    "line, expected",
    [
        ("--port abc", "argument --port: invalid int value: 'abc'"),
        ("--stop --share", "%tracking_ui: --stop takes no other option"),
        ("--no-auth", "%tracking_ui: --no-auth and --tunnel-host only apply together with --share"),
        ("--height 0", "argument --height"),
    ],
)
def test_bad_arguments_are_one_usage_line(kernel, line, expected):
    result = kernel.run(f"%tracking_ui {line}")
    assert result["stderr"].startswith("UsageError: ") and result["stderr"].count("\n") == 1, result
    assert expected in result["stderr"] and not result["data"]


def test_stop_ends_everything(kernel):
    port = re.search(r":(\d+)/", _html(kernel.run_ok("%tracking_ui"))).group(1)
    out = kernel.run_ok("%tracking_ui --stop")["stdout"]
    assert out.strip() == "Stopped the MLflow UI server."
    assert wait_until(lambda: not processes_with("--port", port), timeout=10)
    assert "No MLflow UI is running" in kernel.run_ok("%tracking_ui --status")["stdout"]


def test_kernel_shutdown_ends_the_share_and_the_server(tmp_path, lt_server):
    (tmp_path / "pyproject.toml").write_text("")
    k = Kernel(tmp_path, {"JUPYTER_TRACKING_SPOOL_DIR": str(tmp_path / "spool")})
    try:
        result = k.run_ok(f"%tracking_ui --share --tunnel-host {lt_server.url}")
        text = result["data"][0]["text/plain"]
        url = re.search(r"Shared MLflow UI: (\S+)", text).group(1)
        port = re.search(r"local: http://127\.0\.0\.1:(\d+)/", text).group(1)
        login = _html(result)
        assert "Login for the shared UI" in login and "Login" not in text  # the password: HTML only, once
        assert processes_with("--port", port)
        kernel_pid = k.pid
        helpers = [p.pid for p in psutil.Process(kernel_pid).children(recursive=True)]
        assert len(helpers) >= 5
        state_dirs = {Path(p.cwd()) for p in processes_with("_guard.py", str(kernel_pid))}
        assert len(state_dirs) == 2 and all(d.name.startswith(("jt-ui-", "jt-lt-")) for d in state_dirs)
    finally:
        k.shutdown()
    assert wait_until(lambda: not psutil.pid_exists(kernel_pid) or
                      psutil.Process(kernel_pid).status() == psutil.STATUS_ZOMBIE, timeout=30)
    assert wait_until(lambda: not processes_with("--port", port), timeout=15)
    assert wait_until(lambda: not [p for p in helpers if psutil.pid_exists(p)
                                   and psutil.Process(p).status() != psutil.STATUS_ZOMBIE], timeout=15)
    assert wait_until(lambda: lt_server.connected(url.split("//")[1].split(".")[0]) == 0, timeout=10)
    assert wait_until(lambda: not [d for d in state_dirs if d.exists()], timeout=10)  # their folders too


def test_a_killed_kernel_leaves_no_orphans(tmp_path):
    """SIGKILL runs no atexit handler: the guards notice their kernel is gone and end their groups."""
    (tmp_path / "pyproject.toml").write_text("")
    k = Kernel(tmp_path, {"JUPYTER_TRACKING_SPOOL_DIR": str(tmp_path / "spool")})
    try:
        port = re.search(r":(\d+)/", _html(k.run_ok("%tracking_ui"))).group(1)
        helpers = processes_with("--port", port)
        assert len(helpers) == 2  # guard, and MLflow's app in one process (sharing/mlflow_server.py)
        state_dir = Path(helpers[-1].cwd())
        assert state_dir.name.startswith("jt-ui-") and (state_dir / "mlflow-server.err.log").exists()
        k.manager.provisioner.process.send_signal(signal.SIGKILL)
        began = time.monotonic()
        assert wait_until(lambda: not processes_with("--port", port), timeout=20)
        assert wait_until(lambda: not state_dir.exists(), timeout=5)  # its private folder is gone too
        print(f"\nkilled kernel: its UI server gone {time.monotonic() - began:.1f} s later")
    finally:
        k.client.stop_channels()
        k.manager.cleanup_resources()
