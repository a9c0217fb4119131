"""The JupyterLab extension in a real JupyterLab in real Chromium: run card, Experiments panel, status bar,
the %%track toggle and the MLflow UI tab. One JupyterLab serves the whole module (steps run in order).

The notebook's kernel writes to experiment ``tuned`` (``%track config``), while the store also holds a newer
experiment named after the notebook (``train``): the panel must open on the kernel's. Then the panel is checked
at the side bar's default 250 px in the dark theme (nothing wider than the panel, readable colours)."""

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
EXPERIMENT = "tuned"
MANY, MANY_RUNS = "many", 61
SHOTS = REPO / "docs" / "screenshots"

EPOCHS = 8
TRAIN_CELL = f"""%%track first-try
lr = 0.1
import time
import jupyter_tracking as jt
losses = []
for epoch in range({EPOCHS}):
    time.sleep(1.5)  # long enough for the status bar to show a metric on a busy machine
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
    (project / "train.ipynb").write_text(
        notebook(f"%load_ext jupyter_tracking\n%track config --experiment {EXPERIMENT}", TRAIN_CELL, "x = 1")
    )
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
    run = client.create_run(experiment_id_for(location, EXPERIMENT), run_name=XSS_NAME)
    client.set_terminated(run.info.run_id, "FINISHED")
    # More runs than the panel's first page (50): the page shows, then the count asked apart ("run-count").
    many = experiment_id_for(location, MANY)
    for i in range(MANY_RUNS):
        extra = client.create_run(many, run_name=f"many-{i}")
        client.log_param(extra.info.run_id, "i", str(i))
        client.set_terminated(extra.info.run_id, "FINISHED")
    # Named after the notebook and updated last: the guess a panel would make without asking the kernel.
    decoy = client.create_run(experiment_id_for(location, "train"), run_name="not-this-one")
    client.set_terminated(decoy.info.run_id, "FINISHED")
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


def selected_experiment(panel) -> tuple[str, str]:
    select = panel.locator(".jp-TrackingPanel-experiment")
    return select.locator("option:checked").inner_text(), select.get_attribute("data-source")


def test_the_panel_opens_on_the_experiment_the_kernel_writes_to(page):
    panel = open_experiments(page)
    # Before jupyter_tracking is loaded the kernel has nothing to say: the notebook's default experiment.
    page.wait_for_function(
        "() => document.querySelector('#jupyter-tracking-experiments .jp-TrackingPanel-experiment')?.dataset.source"
    )
    assert selected_experiment(panel) == ("train", "notebook")
    run_cell(page, 0)
    wait_for_kernel_idle(page)
    panel.locator(".jp-TrackingPanel-refresh").click()
    page.wait_for_function(
        "() => document.querySelector('#jupyter-tracking-experiments .jp-TrackingPanel-experiment')"
        "?.dataset.source === 'kernel'"
    )
    assert selected_experiment(panel) == (EXPERIMENT, "kernel")
    page.wait_for_function(
        "() => document.querySelector('#jupyter-tracking-experiments .jp-TrackingPanel-count')?.textContent === '1 run'"
    )


def test_tracked_cell_shows_status_then_card(page, lab):
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
    assert selected_experiment(panel) == (EXPERIMENT, "kernel")
    assert panel.locator(".jp-TrackingPanel-count").inner_text() == "2 runs"
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
    # Metrics and their charts first, then params, then (folded) what MLflow and the tracker recorded;
    # package versions as rows, not JSON.
    sections = details.locator("details.jp-TrackingPanel-kv > summary").all_inner_texts()
    titles = [re.sub(r" \(\d+\)$", "", t).lower() for t in sections]
    assert titles[:2] == ["metrics", "params"] and titles[-1] == "recorded by mlflow", titles
    order = page.evaluate(
        "() => [...document.querySelector('#jupyter-tracking-experiments .jp-TrackingPanel-details').children]"
        ".map(e => e.classList.contains('jp-TrackingPanel-charts') ? 'charts' : (e.className.match(/jp-mod-([a-z-]+)/) || [])[1])"
        ".filter(Boolean)"
    )
    assert order.index("metrics") < order.index("charts") < order.index("params"), order
    assert details.locator("details.jp-mod-recorded-by-mlflow").get_attribute("open") is None
    details.locator("details.jp-mod-packages > summary").click()  # folded until asked for
    packages = details.locator("details.jp-mod-packages tr").all_inner_texts()
    assert packages and all(not p.strip().startswith("{") for p in packages)
    assert any(re.match(r"mlflow\s+3\.", p.strip()) for p in packages), packages
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
    # The chart opens on a metric with a history (losses, train_loss), never on a single value (val_loss, lr).
    shown = compare.locator(".jp-TrackingChart").get_attribute("data-metric")
    assert shown in ("losses", "train_loss"), shown
    panel.locator(".jp-TrackingPanel-compareKey").select_option("losses")
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-TrackingPanel-compare .jp-TrackingChart[data-metric=\"losses\"] path.jp-TrackingChart-line').length === 2"
    )
    keys = compare.locator(".jp-TrackingChart-key").all_inner_texts()
    assert len(keys) == 2 and all(re.fullmatch(r"first-try · [0-9a-f]{6}", k) for k in keys) and keys[0] != keys[1]
    # The second run of the cell is compared with the first on its card: nothing changed, said once.
    second_card = cell(page, 1).locator(".jp-TrackingCard")
    assert second_card.locator('tr[data-metric="val_loss"] .jp-TrackingCard-delta').inner_text() == ""
    assert second_card.locator(".jp-TrackingCard-same").inner_text() == "no change since the previous run"
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


def test_a_long_run_list_shows_its_first_page_then_its_count(page):
    panel = open_experiments(page)
    select = panel.locator(".jp-TrackingPanel-experiment")
    select.select_option(label=MANY)
    page.wait_for_function(
        "() => document.querySelectorAll('#jupyter-tracking-experiments tr.jp-TrackingPanel-run').length === 50"
    )
    page.wait_for_function(
        f"() => document.querySelector('#jupyter-tracking-experiments .jp-TrackingPanel-count')?.textContent"
        f" === '50 of {MANY_RUNS} runs'"
    )
    box = panel.locator(".jp-TrackingPanel-filter")
    box.fill("params.i LIKE '1%'")  # 1, 10-19: a short list, counted by its one page
    box.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('#jupyter-tracking-experiments .jp-TrackingPanel-count')?.textContent"
        " === '11 runs'"
    )
    box.fill("")
    box.press("Enter")
    select.select_option(label=EXPERIMENT)
    page.wait_for_function(
        "() => document.querySelectorAll('#jupyter-tracking-experiments tr.jp-TrackingPanel-run').length === 3"
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


def test_the_panel_fits_250_px_and_reads_in_the_dark_theme(page):
    panel = open_experiments(page)
    panel.locator("tr.jp-TrackingPanel-run").first.click()
    panel.locator('.jp-TrackingPanel-details figure.jp-TrackingChart[data-metric="losses"]').wait_for()
    width = panel.evaluate("el => el.getBoundingClientRect().width")
    assert 240 <= width <= 260, width  # JupyterLab's default side bar width
    set_theme(page, "JupyterLab Light")
    shoot(page, panel, "lab-panel-light")
    set_theme(page, "JupyterLab Dark")
    # Nothing is wider than the panel (the runs table scrolls inside its own box, its run column sticky).
    wider = page.evaluate(
        """() => {
            const panel = document.querySelector('#jupyter-tracking-experiments');
            const right = panel.getBoundingClientRect().right + 0.5;
            return [...panel.querySelectorAll('*')]
                .filter(el => !el.closest('.jp-TrackingPanel-tableWrap') || el.matches('.jp-TrackingPanel-tableWrap'))
                .filter(el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.right > right; })
                .map(el => el.tagName + '.' + el.className);
        }"""
    )
    assert wider == [], wider
    # Long names are cut with an ellipsis and kept whole in the tooltip, never broken mid-word.
    cut = page.evaluate(
        """() => [...document.querySelectorAll('#jupyter-tracking-experiments td, #jupyter-tracking-experiments th')]
            .filter(el => el.scrollWidth > el.clientWidth + 1)
            .map(el => [getComputedStyle(el).textOverflow, getComputedStyle(el).whiteSpace, el.title === el.textContent
                        || el.title.includes(el.textContent.replace(/ [▲▼]$/, ''))])"""
    )
    assert cut and all(c == ["ellipsis", "nowrap", True] for c in cut), cut
    # Dark theme: dark backgrounds, light text, every checked text at least 4.5:1 against what is behind it.
    contrast = page.evaluate(CONTRAST_JS, [
        "#jupyter-tracking-experiments .jp-TrackingPanel-title",
        "#jupyter-tracking-experiments .jp-TrackingPanel-store",
        "#jupyter-tracking-experiments tr.jp-TrackingPanel-run td:nth-child(2)",
        "#jupyter-tracking-experiments tr.jp-TrackingPanel-run.jp-mod-active td:nth-child(2)",
        "#jupyter-tracking-experiments .jp-TrackingPanel-kv th",
        "#jupyter-tracking-experiments .jp-TrackingChart-tick",
        ".jp-TrackingCard .jp-TrackingCard-name",
        ".jp-TrackingCard .jp-TrackingCard-status",
        ".jp-TrackingCard .jp-TrackingCard-value",
    ])
    for selector, (ratio, background_luminance) in contrast.items():
        assert background_luminance < 0.1, (selector, background_luminance)
        assert ratio >= 4.5, (selector, ratio)
    strokes = page.evaluate(
        "() => [...document.querySelectorAll('#jupyter-tracking-experiments path.jp-TrackingChart-line')]"
        ".map(p => getComputedStyle(p).stroke)"
    )
    brand = page.evaluate("() => getComputedStyle(document.body).getPropertyValue('--jp-brand-color1').trim()")
    assert strokes and brand  # the series colours come from the theme's variables
    shoot(page, panel, "lab-panel-dark")
    shoot(page, cell(page, 1), "lab-card-dark")
    set_theme(page, "JupyterLab Light")
    shoot(page, cell(page, 1), "lab-card-light")


def test_open_mlflow_ui_in_a_tab(page):
    panel = open_experiments(page)
    experiment_id = panel.locator(".jp-TrackingPanel-experiment").input_value()
    panel.locator(".jp-TrackingPanel-open-ui").click()
    # While the server starts: a progress bar, the seconds so far and what it is doing.
    message = page.locator(".jp-TrackingMlflow-message")
    message.wait_for(state="visible")
    assert message.locator("progress").count() == 1
    page.wait_for_function(
        "() => /^Starting the MLflow UI: (starting|loading MLflow|answering) · [0-9]+ s/"
        ".test(document.querySelector('.jp-TrackingMlflow-text')?.textContent || '')"
    )
    shoot(page, page.locator(".jp-TrackingMlflow"), "lab-mlflow-starting")
    frame_el = page.locator("iframe.jp-TrackingMlflow-frame")
    frame_el.wait_for(state="visible", timeout=120_000)
    src = frame_el.get_attribute("src")
    # This experiment's runs, in MLflow's training view.
    assert src.endswith(f"/#/experiments/{experiment_id}/runs?workflowType=machine_learning"), src
    assert re.fullmatch(r"/jupyter-tracking/mlflow/[0-9a-f]{16}/#.*", src), src
    frame = page.frame_locator("iframe.jp-TrackingMlflow-frame")
    frame.get_by_text("first-try").first.wait_for(timeout=120_000)
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="MLflow UI")
    assert tab.count() == 1
    frame_height = frame_el.evaluate("el => el.getBoundingClientRect().height")
    assert frame_height > 700, frame_height  # the whole tab, not a 480 px box
    assert not message.is_visible()  # the progress line made way for the frame
    # MLflow's training view, and its assistant column not opened over the runs.
    frame.get_by_text("Model training").first.wait_for()
    assert frame.locator("text=Ask questions about your experiments").count() == 0
    shoot(page, None, "lab-mlflow-ui")
    # The card's link opens that run in the same tab.
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="train.ipynb").click()
    card = cell(page, 1).locator(".jp-TrackingCard")
    run_id = card.get_attribute("data-run-id")
    card.locator("button.jp-TrackingCard-link", has_text="MLflow UI").click()
    page.wait_for_function(
        "id => (document.querySelector('iframe.jp-TrackingMlflow-frame')?.getAttribute('src') || '')"
        ".endsWith('/runs/' + id + '?workflowType=machine_learning')",
        arg=run_id,
    )
    assert tab.count() == 1
    assert not [e for e in page.js_errors if "jupyter-tracking" in e or "Tracking" in e], page.js_errors


def set_theme(page, name: str) -> None:
    """Switch JupyterLab's theme through the command palette (as a user does) and wait for it."""
    page.keyboard.press("Control+Shift+c")
    page.locator(".lm-CommandPalette-input").fill(f"Use Theme: {name}")
    page.locator(".lm-CommandPalette-item", has_text=f"Use Theme: {name}").first.click()
    light = "true" if "Light" in name else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'")
    page.wait_for_timeout(500)


def shoot(page, locator, name: str) -> None:
    """A screenshot for docs/screenshots (and the test artefacts)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    target = locator if locator is not None else page
    target.screenshot(path=str(SHOTS / f"{name}.png"))


# For each selector: the contrast ratio of its text against the background behind it (alpha blended up the tree)
# and that background's relative luminance.
CONTRAST_JS = """
(selectors) => {
  const parse = c => {
    let m = c.match(/rgba?\\(([^)]+)\\)/);
    if (m) { const v = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1]; }
    m = c.match(/color\\(srgb ([^)]+)\\)/);
    if (m) { const v = m[1].split(/[ \\/]+/).filter(Boolean).map(Number); return [v[0] * 255, v[1] * 255, v[2] * 255, v.length > 3 ? v[3] : 1]; }
    return null;
  };
  const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const background = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    return layers.reduceRight((acc, c) => over(c, acc), [255, 255, 255, 1]);
  };
  const lum = c => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const out = {};
  for (const selector of selectors) {
    const el = document.querySelector(selector);
    if (!el) { out[selector] = [0, 1]; continue; }
    const style = getComputedStyle(el);
    const bg = background(el);
    const fg = over(parse(el instanceof SVGElement ? style.fill : style.color), bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    out[selector] = [(a + 0.05) / (b + 0.05), lum(bg)];
  }
  return out;
}
"""
