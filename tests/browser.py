"""Shared helpers for browser tests: a real Jupyter server (JupyterLab or Notebook 7) and real Chromium.

Usage in a test module::

    from tests.browser import jupyter_app, chromium_page  # noqa: F401  (pytest fixtures)

    def test_x(jupyter_app, chromium_page):
        server = jupyter_app(root_dir, app="lab")
        page = chromium_page()
        page.goto(server.url("lab/tree/demo.ipynb"))

The server runs as its own process group on 127.0.0.1 with a random token, without MLFLOW_TRACKING_URI
in its environment (so kernels use the embedded store of the notebook's project), and is stopped with
everything it started at the end of the test.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "test-artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class JupyterServer:
    """A running Jupyter server process: its base URL, token, root folder and log file."""

    process: subprocess.Popen
    port: int
    token: str
    root_dir: Path
    log_path: Path
    env: dict = field(default_factory=dict)

    def url(self, path: str = "") -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def start_jupyter(root_dir: Path, app: str = "lab", timeout: float = 90.0, extra_env: dict | None = None) -> JupyterServer:
    """Start ``jupyter lab`` or ``jupyter notebook`` (Notebook 7) on a free port; wait until it answers."""
    root_dir = Path(root_dir)
    port = free_port()
    token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["JUPYTER_TOKEN"] = token
    env.update(extra_env or {})
    log_path = root_dir.parent / f"jupyter-{app}-{port}.log"
    command = [
        sys.executable, "-m", "jupyter", app,
        "--no-browser", "--allow-root",
        f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.port_retries=0",
        "--LabApp.news_url=''" if app == "lab" else "--ServerApp.open_browser=False",
        "--LabServerApp.announcements_url=''" if app == "lab" else "--ServerApp.allow_remote_access=False",
    ]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command, cwd=root_dir, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    server = JupyterServer(process, port, token, root_dir, log_path, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter {app} exited early:\n{server.log()[-3000:]}")
        try:
            with urllib.request.urlopen(server.api(f"api/status?token={token}"), timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"jupyter {app} did not answer within {timeout:.0f} s:\n{server.log()[-3000:]}")


@pytest.fixture
def jupyter_app():
    """Factory fixture: ``jupyter_app(root_dir, app="lab"|"notebook")`` -> a running JupyterServer."""
    servers: list[JupyterServer] = []

    def start(root_dir: Path, app: str = "lab", **kwargs) -> JupyterServer:
        server = start_jupyter(root_dir, app, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def chromium_browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def chromium_page(chromium_browser, request):
    """Factory fixture: ``chromium_page()`` -> a fresh Playwright page (1400x1000); screenshot kept on failure."""
    contexts = []

    def new_page(width: int = 1400, height: int = 1000):
        context = chromium_browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(60_000)
        return page

    yield new_page
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for index, context in enumerate(contexts):
        if failed:
            ARTIFACTS_DIR.mkdir(exist_ok=True)
            for page_index, page in enumerate(context.pages):
                try:
                    page.screenshot(path=str(ARTIFACTS_DIR / f"{request.node.name}-{index}-{page_index}-failure.png"))
                except Exception:  # noqa: BLE001 - best effort on a failing test
                    pass
        context.close()


def save_screenshot(page, name: str) -> Path:
    """Keep a screenshot as a test artefact under test-artifacts/."""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    path = ARTIFACTS_DIR / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def project_server(jupyter_app, tmp_path: Path, name: str, cells: list[str], app: str):
    """A project whose ``notebooks/NAME.ipynb`` holds ``cells``, served by JupyterLab or Notebook 7 with settings
    and workspaces of its own (a theme chosen in one test stays in that test's folder)."""
    from tests.kernels import make_project, write_notebook

    root = tmp_path / "proj"
    write_notebook(make_project(root, name) / "notebooks" / f"{name}.ipynb", cells)
    return jupyter_app(root, app=app, extra_env={"JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
                                                 "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces")})


def open_notebook(page, server, path: str) -> None:
    """Open a notebook and wait until its kernel is idle, taking the kernel JupyterLab proposes if it asks;
    then the first cell's editor has the focus."""
    page.goto(server.url(path))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count() and accept.first.is_visible():
            accept.first.click()
        if page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle'], "
                        ".jp-StatusBar-TextItem:has-text('Idle')").count():
            break
        page.wait_for_timeout(300)
    wait_for_kernel_idle(page, timeout=90_000)
    page.wait_for_timeout(1000)
    page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputArea-editor").click()


def wait_for_kernel_idle(page, timeout: float = 60_000) -> None:
    """Wait until the notebook's kernel status says idle (JupyterLab and Notebook 7)."""
    page.wait_for_function(
        """() => {
            const el = document.querySelector('.jp-Notebook');
            if (!el) return false;
            const busy = document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="busy"]');
            return !busy;
        }""",
        timeout=timeout,
    )
