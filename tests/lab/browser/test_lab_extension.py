"""The JupyterLab extension in a real JupyterLab in real Chromium: run card, Experiments panel, status bar,
the %%track toggle and the MLflow UI tab. One JupyterLab serves the whole module (steps run in order)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.browser import save_screenshot, start_jupyter, wait_for_kernel_idle

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[3]
XSS_NAME = '<img src=x onerror="window.__jtXss = 1">'

EPOCHS = 8
TRAIN_CELL = f"""%%track first-try
lr = 0.1
import time
import jupyter_tracking as jt
losses = []
for epoch in range({EPOCHS}):
    time.sleep(0.8)
    losses.append(1.0 / (epoch + 1 + lr))
    jt.log(step=epoch, train_loss=losses[-1])
val_loss = losses[-1]"""


def notebook(*sources: str) -> str:
    cells = [
        {"cell_type": "code", "id": f"cell-{i}", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
        for i, src in enumerate(sources)
    ]
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    return json.dumps({"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a root holding ``proj/`` (a project with pyproject.toml) and ``proj/train.ipynb``.

    The repository's build of the extension is put first on JUPYTER_PATH (and its server extension switched
    on), so the test runs what this checkout built whatever is installed in the environment.
    """
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    project = root / "proj"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (project / "train.ipynb").write_text(notebook("%load_ext jupyter_tracking", TRAIN_CELL, "x = 1"))
    data = base / "data" / "labextensions"
    data.mkdir(parents=True)
    built = REPO / "jupyter_tracking" / "labextension"
    assert (built / "package.json").exists(), "build the extension first: make labextension"
    (data / "jupyter-tracking").symlink_to(built, target_is_directory=True)
    config = base / "config" / "jupyter_server_config.d"
    config.mkdir(parents=True)
    (config / "jupyter_tracking.json").write_text(
        (REPO / "jupyter-config" / "server-config" / "jupyter_tracking.json").read_text()
    )
    # A run whose name is markup, already in the store: it must show as text, never run.
    from jupyter_tracking.store import client_for, experiment_id_for, resolve_store

    location = resolve_store(project)
    client = client_for(location)
    run = client.create_run(experiment_id_for(location, "train"), run_name=XSS_NAME)
    client.set_terminated(run.info.run_id, "FINISHED")
    server = start_jupyter(
        root,
        "lab",
        extra_env={
            "JUPYTER_PATH": str(base / "data"),
            "JUPYTER_CONFIG_PATH": str(base / "config"),
            # A fresh workspace and default settings: nothing restored from other sessions on this machine.
            "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
            "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        },
    )
    yield server
    from jupyter_tracking.session import current_session

    current_session().clients.pop(location.uri, None)
    server.stop()


@pytest.fixture(scope="module")
def page(lab, chromium_browser):
    context = chromium_browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(lab.url("lab/tree/proj/train.ipynb"))
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    wait_for_kernel_idle(page)
    page.wait_for_function("() => document.querySelector('.jp-mod-idle, .jp-Notebook-ExecutionIndicator[data-status=\"idle\"]') !== null")
    page.js_errors = errors
    yield page
    context.close()


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request, page):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        save_screenshot(page, f"{request.node.name}-failure")


def cell(page, index: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def run_cell(page, index: int) -> None:
    cell(page, index).locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")


def open_experiments(page):
    panel = page.locator("#jupyter-tracking-experiments")
    if not panel.is_visible():  # the side-bar tab toggles the panel
        page.locator('.jp-SideBar .lm-TabBar-tab[data-id="jupyter-tracking-experiments"]').click()
    panel.wait_for(state="visible")
    return panel


def test_the_server_extension_answers_for_the_notebooks_store(lab):
    import urllib.request

    with urllib.request.urlopen(lab.url("jupyter-tracking/api/store") + "&path=proj/train.ipynb", timeout=30) as response:
        store = json.loads(response.read())
    assert store["ready"] is True and store["uri"].endswith("/root/proj/mlflow.db")


def test_tracked_cell_shows_status_then_card(page, lab):
    run_cell(page, 0)
    wait_for_kernel_idle(page)
    run_cell(page, 1)
    status = page.locator(".jp-TrackingStatus")
    status.wait_for(state="visible", timeout=20_000)
    assert status.inner_text().startswith("tracking")
    # While the cell runs: the run's name, the elapsed time, and the latest train_loss read from the store.
    page.wait_for_function(
        "() => /^tracking first-try · [0-9.]+ s · train_loss 0\\.[0-9]+$/"
        ".test(document.querySelector('.jp-TrackingStatus')?.textContent || '')",
        timeout=30_000,
    )
    card = cell(page, 1).locator(".jp-TrackingCard")
    card.wait_for(timeout=120_000)
    page.wait_for_function("() => document.querySelector('.jp-TrackingCard')?.dataset.status === 'FINISHED'")
    assert card.locator(".jp-TrackingCard-name").inner_text() == "first-try"
    assert card.locator(".jp-TrackingCard-status").inner_text() == "finished"
    assert card.locator('[data-param="lr"] .jp-TrackingCard-value').inner_text() == "0.1"
    assert card.locator('tr[data-metric="val_loss"] .jp-TrackingCard-value').inner_text() == f"{1 / (EPOCHS + 0.1):.4f}"
    steps = card.locator('tr[data-metric="losses"] .jp-TrackingCard-steps').inner_text()
    assert steps == f"{EPOCHS} steps"
    assert card.locator('tr[data-metric="train_loss"] .jp-TrackingCard-steps').inner_text() == f"{EPOCHS} steps"
    status.wait_for(state="hidden")
    save_screenshot(page, "lab-extension-card")


def test_the_run_appears_in_the_experiments_panel(page):
    panel = open_experiments(page)
    rows = panel.locator("tr.jp-TrackingPanel-run")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#jupyter-tracking-experiments tr.jp-TrackingPanel-run')]"
        ".some(r => r.textContent.includes('first-try'))"
    )
    assert panel.locator(".jp-TrackingPanel-experiment option:checked").inner_text() == "train"
    names = rows.locator("td:nth-child(2)").all_inner_texts()
    assert names == ["first-try", XSS_NAME]  # newest first; the markup name is plain text
    assert page.evaluate("() => window.__jtXss") is None
    assert panel.locator("img").count() == 0
    rows.filter(has_text="first-try").click()
    details = panel.locator(".jp-TrackingPanel-details")
    details.locator(".jp-TrackingPanel-runName").filter(has_text="first-try").wait_for()
    params = details.locator(".jp-mod-params tr").all_inner_texts()
    assert any(re.match(r"lr\s+0\.1$", p.strip()) for p in params), params
    chart = details.locator('figure.jp-TrackingChart[data-metric="losses"]')
    chart.wait_for()
    assert chart.locator("path.jp-TrackingChart-line").get_attribute("d").count("L") == EPOCHS - 1
    save_screenshot(page, "lab-extension-panel")


def test_panel_refreshes_when_a_tracked_cell_finishes_and_compares_runs(page):
    panel = open_experiments(page)
    run_cell(page, 1)
    page.wait_for_function(
        "() => document.querySelectorAll('#jupyter-tracking-experiments tr.jp-TrackingPanel-run').length === 3",
        timeout=60_000,
    )
    rows = panel.locator("tr.jp-TrackingPanel-run")
    assert rows.locator("td:nth-child(2)").all_inner_texts()[:2] == ["first-try", "first-try"]
    rows.nth(0).locator("input[type=checkbox]").check()
    rows.nth(1).locator("input[type=checkbox]").check()
    compare = panel.locator(".jp-TrackingPanel-compare")
    compare.locator(".jp-TrackingChart").wait_for()
    panel.locator(".jp-TrackingPanel-compareKey").select_option("losses")
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-TrackingPanel-compare .jp-TrackingChart[data-metric=\"losses\"] path.jp-TrackingChart-line').length === 2"
    )
    assert compare.locator(".jp-TrackingChart-key").all_inner_texts() == ["first-try", "first-try"]
    # The second run of the cell is compared with the first on its card.
    second_card = cell(page, 1).locator(".jp-TrackingCard")
    assert second_card.locator('tr[data-metric="val_loss"] .jp-TrackingCard-delta').inner_text() == "±0"
    save_screenshot(page, "lab-extension-compare")


def test_filter_and_sort_runs(page):
    panel = open_experiments(page)
    box = panel.locator(".jp-TrackingPanel-filter")
    box.fill("metrics.val_loss < 1")
    box.press("Enter")
    page.wait_for_function(
        "() => document.querySelectorAll('#jupyter-tracking-experiments tr.jp-TrackingPanel-run').length === 2"
    )
    assert panel.locator(".jp-TrackingPanel-count").inner_text() == "2 runs"  # the total the store counted
    box.fill("metrics.val_loss <<< 1")
    box.press("Enter")
    error = panel.locator(".jp-TrackingPanel-error").first
    error.wait_for(state="visible")
    assert error.inner_text().strip() != ""
    box.fill("")
    box.press("Enter")
    page.wait_for_function(
        "() => document.querySelectorAll('#jupyter-tracking-experiments tr.jp-TrackingPanel-run').length === 3"
    )
    assert panel.locator(".jp-TrackingPanel-count").inner_text() == "3 runs"
    header = panel.locator('th[data-column="attr:run_name"]')
    header.click()
    page.wait_for_function(
        "() => document.querySelector('#jupyter-tracking-experiments th[data-column=\"attr:run_name\"]')"
        "?.getAttribute('aria-sort') === 'ascending'"
    )
    page.wait_for_function(
        "() => document.querySelector('#jupyter-tracking-experiments tr.jp-TrackingPanel-run td:nth-child(2)')"
        "?.textContent === '" + XSS_NAME.replace("'", "\\'") + "'"
    )
    panel.locator('th[data-column="attr:run_name"]').click()
    page.wait_for_function(
        "() => document.querySelector('#jupyter-tracking-experiments tr.jp-TrackingPanel-run td:nth-child(2)')"
        "?.textContent === 'first-try'"
    )
    # A metric sorts best first by the goal its cards carried (the kernel's rule): a loss lowest first.
    loss_header = panel.locator('th[data-column="metric:val_loss"]')
    assert "lower is better" in loss_header.get_attribute("title")
    loss_header.click()
    page.wait_for_function(
        "() => document.querySelector('#jupyter-tracking-experiments th[data-column=\"metric:val_loss\"]')"
        "?.getAttribute('aria-sort') === 'ascending'"
    )


def test_the_cards_open_run_link_shows_that_run_in_the_panel(page):
    first_card = cell(page, 1).locator(".jp-TrackingCard")
    run_id = first_card.get_attribute("data-run-id")
    assert re.fullmatch(r"[0-9a-f]{32}", run_id)
    panel = open_experiments(page)
    # Show another run first, so the link has to change what the panel shows.
    panel.locator("tr.jp-TrackingPanel-run").last.click()
    page.wait_for_function(
        "id => { const d = document.querySelector('#jupyter-tracking-experiments .jp-TrackingPanel-details');"
        " return d && d.dataset.runId && d.dataset.runId !== id; }",
        arg=run_id,
    )
    first_card.locator("button.jp-TrackingCard-link", has_text="Open run").click()
    page.wait_for_function(
        "id => document.querySelector('#jupyter-tracking-experiments .jp-TrackingPanel-details')?.dataset.runId === id",
        arg=run_id,
    )
    assert panel.locator(f'tr.jp-TrackingPanel-run.jp-mod-active[data-run-id="{run_id}"]').count() == 1


def test_toggle_track_with_shortcut_command_and_toolbar(page):
    target = cell(page, 2)
    target.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("t")
    editor = target.locator(".jp-InputArea-editor")
    page.wait_for_function("() => document.querySelectorAll('.jp-Cell')[2].querySelector('.cm-content').innerText.startsWith('%%track')")
    assert editor.locator(".cm-line").first.inner_text() == "%%track"
    page.keyboard.press("t")
    page.wait_for_function("() => document.querySelectorAll('.jp-Cell')[2].querySelector('.cm-content').innerText.trim() === 'x = 1'")
    # The same through the command palette.
    page.keyboard.press("Control+Shift+c")
    palette = page.locator(".lm-CommandPalette-input")
    palette.fill("Toggle %%track")
    page.locator(".lm-CommandPalette-item", has_text="Toggle %%track on the Active Cell").first.click()
    page.wait_for_function("() => document.querySelectorAll('.jp-Cell')[2].querySelector('.cm-content').innerText.startsWith('%%track')")
    # And through the cell toolbar button.
    target.locator(".jp-InputPrompt").click()
    button = target.locator('.jp-cell-toolbar [data-command="jupyter-tracking:toggle-track"]')
    button.click()
    page.wait_for_function("() => document.querySelectorAll('.jp-Cell')[2].querySelector('.cm-content').innerText.trim() === 'x = 1'")


def test_open_mlflow_ui_in_a_tab(page):
    panel = open_experiments(page)
    panel.locator(".jp-TrackingPanel-open-ui").click()
    frame_el = page.locator("iframe.jp-TrackingMlflow-frame")
    frame_el.wait_for(state="visible", timeout=120_000)
    src = frame_el.get_attribute("src")
    assert re.fullmatch(r"/jupyter-tracking/mlflow/[0-9a-f]{16}/#/experiments/[0-9]+/runs", src), src
    frame = page.frame_locator("iframe.jp-TrackingMlflow-frame")
    frame.get_by_text("first-try").first.wait_for(timeout=120_000)
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="MLflow UI")
    assert tab.count() == 1
    save_screenshot(page, "lab-extension-mlflow-ui")
    assert not [e for e in page.js_errors if "jupyter-tracking" in e or "Tracking" in e], page.js_errors
