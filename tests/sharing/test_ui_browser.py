"""``%tracking_ui`` in real JupyterLab in real Chromium: the inline frame really renders MLflow's UI.

The notebook page (one port) frames the MLflow server (another port): MLflow's default X-Frame-Options
SAMEORIGIN would leave a blank frame, so this checks what the user sees, not just a header.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.kernels import make_project, write_notebook
from tests.browser import save_screenshot, wait_for_kernel_idle
from tests.sharing.conftest import processes_with, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.server]


def make_notebook_project(root: Path) -> Path:
    return write_notebook(make_project(root, "ui-browser") / "notebooks" / "ui.ipynb", [
        "%load_ext jupyter_tracking\n%track config --experiment framed-demo",
        "%%track framed-run --no-live\nlr = 0.3\nscore = max(0.7, lr)",
        "%tracking_ui --height 520",
    ])


def test_the_inline_ui_renders_in_jupyterlab(tmp_path, jupyter_app, chromium_page):
    make_notebook_project(tmp_path / "proj")
    server = jupyter_app(tmp_path / "proj", app="lab")
    page = chromium_page()
    page.goto(server.url("lab/tree/notebooks/ui.ipynb"))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    wait_for_kernel_idle(page, timeout=90_000)
    page.wait_for_timeout(1000)
    page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputArea-editor").click()
    for _ in range(3):
        page.keyboard.press("Shift+Enter")
    frame_element = page.wait_for_selector('.jp-Notebook iframe[title="MLflow UI"]', timeout=180_000)
    src = frame_element.get_attribute("src")
    assert src.startswith("http://127.0.0.1:") and src != server.url("")
    # Opened through the server's own page (MLflow's UI preferences first), on the experiment's runs.
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/jupyter-tracking-open#/experiments/\d+/runs"
                        r"\?workflowType=machine_learning", src), src
    frame = page.frame_locator('.jp-Notebook iframe[title="MLflow UI"]')
    # MLflow's own page, drawn inside the notebook, in its training view: the run of the experiment, and the
    # assistant column not opened over it (it opens by itself on a new origin's first load otherwise).
    frame.get_by_text("framed-run").first.wait_for(timeout=90_000)
    frame.get_by_text("Model training").first.wait_for()
    page.wait_for_timeout(1500)
    assert frame.locator("text=Ask questions about your experiments").count() == 0
    frame_element.scroll_into_view_if_needed()
    save_screenshot(page, "tracking-ui-in-jupyterlab")
    port = str(urlsplit(src).port)  # the frame deep-links into the experiment's runs: the port alone
    assert processes_with("mlflow", "--port", port)
    server.stop()  # the Jupyter server shuts its kernel down: the UI server goes with it
    assert wait_until(lambda: not processes_with("--port", port), timeout=30)


def test_a_visitor_opens_the_shared_ui_in_a_browser(tmp_path, monkeypatch, chromium_browser):
    """Chromium opens the public URL (``*.localhost`` is loopback to it): login refused, then the UI with it."""
    import contextlib
    import io

    from jupyter_tracking import sharing
    from tests.sharing.lt_server import LoopbackTunnelServer

    from jupyter_tracking.store import client_for, experiment_id_for, resolve_store

    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    location = resolve_store(tmp_path)
    experiment_id = experiment_id_for(location, "shared-demo")
    run = client_for(location).create_run(experiment_id, run_name="visible-to-the-team")
    client_for(location).set_terminated(run.info.run_id)
    with LoopbackTunnelServer(max_conn=10) as service:  # a browser opens ~6 connections per host
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                sharing.ui(share=True, tunnel_host=service.url)
            state = sharing.current()
            url = state.public_url

            from playwright.sync_api import Error as PlaywrightError

            stranger = chromium_browser.new_context()
            with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
                stranger.new_page().goto(url)  # the browser is asked for a login it does not have
            stranger.close()

            login = {"username": state.server.username, "password": state.server.password}
            visitor = chromium_browser.new_context(http_credentials=login, viewport={"width": 1300, "height": 800})
            page = visitor.new_page()
            page.set_default_timeout(90_000)
            assert page.goto(url).status == 200
            page.get_by_text("Welcome to MLflow").first.wait_for()
            page.goto(url.rstrip("/") + "/#/experiments")
            page.get_by_text("shared-demo").first.wait_for()
            # The runs table is fetched with POST requests: MLflow's origin check must let them through.
            page.goto(url.rstrip("/") + f"/#/experiments/{experiment_id}/runs")
            page.get_by_text("visible-to-the-team").first.wait_for()
            save_screenshot(page, "shared-ui-visitor")
            visitor.close()
            assert service.proxied_requests > 5  # the page and its assets all came through the tunnel
        finally:
            with contextlib.redirect_stdout(io.StringIO()):
                sharing.ui(stop=True)
