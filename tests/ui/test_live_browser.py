"""The live panel in real JupyterLab 4 and Notebook 7, in real Chromium (Playwright).

A notebook whose tracked cell logs for several seconds is run from the page. While the cell is still
executing, the test reads the plotted points out of the plotly graph (``el.data``) twice and requires two
different curve states; after the cell ends it saves the notebook and requires the static image in the file.
Screenshots are kept under test-artifacts/.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.kernels import make_project, write_notebook
from tests.browser import save_screenshot, wait_for_kernel_idle

pytestmark = pytest.mark.browser

STEPS = 60
TRAIN_CELL = f"""%%track browser-demo --steps {STEPS}
for epoch in range({STEPS}):
    jt.log(step=epoch, train_loss=math.exp(-epoch / 10), val_loss=math.exp(-epoch / 12) + 0.05,
           val_acc=1 - math.exp(-epoch / 8))
    time.sleep(0.25)
"""

READ_PLOT = """() => {
    const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
    return plots.map(el => (el.data || []).map(t => ({
        name: String(t.name),
        visible: t.visible,
        points: t.y ? t.y.length : 0,
        last: t.y && t.y.length ? Number(t.y[t.y.length - 1]) : null,
        lastX: t.x && t.x.length ? Number(t.x[t.x.length - 1]) : null,
    })));
}"""


def make_notebook_project(root: Path) -> Path:
    return write_notebook(make_project(root, "browser-demo") / "notebooks" / "live.ipynb",
                          ["%load_ext jupyter_tracking\nimport jupyter_tracking as jt, time, math", TRAIN_CELL])


def cell_is_running(page) -> bool:
    prompts = page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").all_inner_texts()
    return len(prompts) >= 2 and "*" in prompts[1]


def plotted(page) -> list[dict]:
    plots = page.evaluate(READ_PLOT)
    return [trace for plot in plots for trace in plot]


def visible_state(traces: list[dict]) -> dict[str, tuple[int, float]]:
    return {t["name"].split(" ")[0]: (t["points"], t["last"]) for t in traces if t["visible"] is not False}


@pytest.mark.parametrize("app,path", [("lab", "lab/tree/notebooks/live.ipynb"),
                                      ("notebook", "notebooks/notebooks/live.ipynb")])
def test_live_panel_redraws_in_the_browser_while_the_cell_runs(tmp_path, jupyter_app, chromium_page, app, path):
    notebook = make_notebook_project(tmp_path / "proj")
    server = jupyter_app(tmp_path / "proj", app=app)
    page = chromium_page()
    page.goto(server.url(path))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    wait_for_kernel_idle(page, timeout=90_000)
    page.wait_for_timeout(1500)

    page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function("() => { const p = document.querySelectorAll('.jp-Notebook .jp-InputPrompt');"
                           " return p.length && /\\[1\\]/.test(p[0].textContent); }", timeout=120_000)
    page.keyboard.press("Shift+Enter")  # the focus moved to the tracked cell

    page.wait_for_selector(".jp-Notebook .jp-Cell >> nth=1 >> .js-plotly-plot", timeout=90_000)
    states = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(states) < 2:
        state = visible_state(plotted(page))
        running = cell_is_running(page)
        if not running:
            break
        if state.get("train_loss") and (not states or state != states[-1][1]):
            states.append((time.monotonic(), state))
            save_screenshot(page, f"live-{app}-running-{len(states)}")
        page.wait_for_timeout(700)
    assert len(states) >= 2, f"two different curve states while the cell ran, got {states}"
    first, second = states[0][1], states[1][1]
    assert second["train_loss"][0] > first["train_loss"][0], "more points drawn the second time"
    assert {"train_loss", "val_loss", "val_acc"} <= set(second), second
    assert second["train_loss"][1] < first["train_loss"][1], "the loss curve went down"
    subplot_titles = page.locator(".jp-Notebook .jp-Cell >> nth=1 >> .js-plotly-plot .annotation-text")
    assert {"loss", "accuracy"} <= set(subplot_titles.evaluate_all("els => els.map(e => e.textContent)"))
    title = page.locator(".jp-Notebook .jp-Cell >> nth=1 >> .js-plotly-plot .gtitle").text_content()
    assert f"/{STEPS}" in title and "elapsed" in title and "ETA" in title, title

    # the step/time toggle works in the browser while the cell still runs
    page.locator(".jp-Notebook .jp-Cell >> nth=1 >> .updatemenu-button").nth(1).click()
    page.wait_for_timeout(500)
    if cell_is_running(page):
        by_time = [t for t in plotted(page) if t["visible"] is not False]
        assert by_time and all(t["lastX"] < 60 for t in by_time), "x is elapsed seconds now"
        save_screenshot(page, f"live-{app}-time-axis")

    page.wait_for_function("() => { const p = document.querySelectorAll('.jp-Notebook .jp-InputPrompt');"
                           " return p.length > 1 && /\\[2\\]/.test(p[1].textContent); }", timeout=120_000)
    picture = page.locator('.jp-Notebook .jp-Cell >> nth=1 >> img[alt^="Training curves (finished)"]')
    picture.wait_for(timeout=30_000)
    assert page.locator(".jp-Notebook .jp-Cell >> nth=1 >> .js-plotly-plot").count() == 0
    save_screenshot(page, f"live-{app}-finished")

    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    pictures = []
    while time.monotonic() < deadline:
        saved = json.loads(notebook.read_text())
        pictures = [o for o in saved["cells"][1].get("outputs", []) if "image/svg+xml" in o.get("data", {})]
        if pictures:
            break
        time.sleep(0.5)
    assert pictures, "the saved notebook keeps the static image"
    svg = pictures[0]["data"]["image/svg+xml"]
    svg = "".join(svg) if isinstance(svg, list) else svg
    assert svg.count("<polyline") == 3 and "train_loss = " in svg
    widget_outputs = [o for o in saved["cells"][1]["outputs"]
                      if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not widget_outputs, "no dead widget left in the saved notebook"
