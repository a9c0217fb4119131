"""The comparison panel and the live sweep table in real JupyterLab 4, in real Chromium (Playwright).

The store is made with plain MlflowClient (45 runs, one whose param and name are an HTML injection); the
notebook runs ``%runs`` from the page. The test filters (a bad filter first), sorts by a column, selects two
rows and requires the overlaid curves and the diff; it asserts no dialog opened and no injected element exists.
A second test runs a grid sweep from the page and reads the table while the cell is still running.
Screenshots are kept under test-artifacts/.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.kernels import make_project, write_notebook
from tests.browser import open_notebook, save_screenshot
from tests.runs_factory import make_experiment, make_run

pytestmark = pytest.mark.browser

EVIL = "<img src=x onerror=alert(1)>"
PAGE_ROWS = ".jt-runs table.jt-table tbody tr.jt-row"


def make_notebook_project(root: Path, cells: list[str], name: str) -> Path:
    return write_notebook(make_project(root, "compare-demo") / "notebooks" / f"{name}.ipynb", cells)


def fill_store(root: Path) -> list[str]:
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = make_experiment(client, "panel", root)
    ids = []
    for i in range(45):
        evil = i == 44  # the newest run: on the first page
        ids.append(make_run(
            client, exp, name=EVIL if evil else f"run-{i:02d}",
            params={"max_depth": i % 5 + 1, "min_leaf": i % 3 + 1, "criterion": "gini",
                    "note": EVIL if evil else "plain"},
            metrics={"val_loss": round(1.0 / (i + 1), 5), "test_acc": round(0.4 + i / 100, 3)},
            series={"train_loss": [1.0, 0.6, 0.3 + i / 100, 0.2 + i / 100]},
            code=f"max_depth = {i % 5 + 1}\nmodel = fit(max_depth)\n",
        ))
        time.sleep(0.002)
    return ids


def open_and_run_cells(page, server, path: str, count: int) -> None:
    open_notebook(page, server, path)
    for index in range(count):
        page.keyboard.press("Shift+Enter")
        if index < count - 1:
            page.wait_for_function(
                "(i) => { const p = document.querySelectorAll('.jp-Notebook .jp-InputPrompt');"
                " return p.length > i && /\\[\\d+\\]/.test(p[i].textContent); }", arg=index, timeout=120_000)


def first_column(page, key: str) -> list[str]:
    return page.evaluate(
        """(key) => {
            const heads = Array.from(document.querySelectorAll('.jt-runs table.jt-table thead th'));
            const index = heads.findIndex(th => th.dataset.key === key);
            return Array.from(document.querySelectorAll('.jt-runs table.jt-table tbody tr'))
                .map(tr => tr.children[index].textContent);
        }""", key)


def test_panel_filter_sort_select_diff_and_nothing_injected(tmp_path, jupyter_app, chromium_page):
    root = tmp_path / "proj"
    make_notebook_project(root, ["%load_ext jupyter_tracking", "%runs panel"], "compare")
    ids = fill_store(root)
    server = jupyter_app(root, app="lab")
    page = chromium_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    open_and_run_cells(page, server, "lab/tree/notebooks/compare.ipynb", 2)

    page.wait_for_selector(PAGE_ROWS, timeout=120_000)
    rows = page.locator(PAGE_ROWS)
    assert rows.count() == 20, "the browser holds one page of the 45 runs"
    # The page shows before the runs are counted ("20+ runs (counting...)"); the count follows.
    page.wait_for_function(
        "() => (document.querySelector('.jt-runs .jt-summary')?.textContent || '').includes('panel: 45 runs')",
        timeout=30_000)
    # The injected name and param are shown as text, and nothing ran or was inserted.
    first_row = rows.first.inner_text()
    assert EVIL in first_row
    assert page.evaluate("() => document.querySelectorAll('img[src=\"x\"]').length") == 0
    headers = page.locator(".jt-runs table.jt-table thead th").all_inner_texts()
    assert "criterion" not in headers and "max_depth" in headers  # constant columns hidden
    save_screenshot(page, "compare-panel-first-page")
    # Paging: the next page replaces the rows (the browser never holds more than one page).
    first_names = first_column(page, "run_name")
    first_row = "() => { const td = document.querySelector('.jt-runs table.jt-table tbody tr.jt-row td:nth-child(2)');" \
                " return td ? td.textContent : null; }"
    page.locator(".jt-runs .jt-next").click()
    page.wait_for_function(f"(name) => ({first_row})() === name", arg="run-24", timeout=30_000)
    assert "page 2 / 3" in page.locator(".jt-runs .jt-page-info").text_content()
    assert page.locator(PAGE_ROWS).count() == 20 and not set(first_column(page, "run_name")) & set(first_names)
    page.locator(".jt-runs .jt-prev").click()
    page.wait_for_function(f"(name) => ({first_row})() === name", arg=first_names[0], timeout=30_000)
    assert "page 1 / 3" in page.locator(".jt-runs .jt-page-info").text_content()

    # A bad filter: one line under the box, the last good table stays.
    box = page.locator(".jt-runs .jt-filter")
    box.fill("params.min_leaf = = '3'")
    box.press("Enter")
    error = page.locator(".jt-runs .jt-filter-error")
    error.wait_for(state="visible", timeout=30_000)
    assert error.inner_text().startswith("Filter not applied:") and "\n" not in error.inner_text().strip()
    assert page.locator(PAGE_ROWS).count() == 20

    box.fill("params.min_leaf = '3' and metrics.test_acc > 0.605")
    box.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('.jt-runs table.jt-table tbody tr.jt-row').length === 8",
                           timeout=30_000)
    assert error.is_hidden()
    assert all(float(v) > 0.605 for v in first_column(page, "metrics.test_acc"))
    # min_leaf is now the same in every row: hidden as a constant column.
    assert "min_leaf" not in page.locator(".jt-runs table.jt-table thead th").all_inner_texts()

    # Sort by a column: ascending on the first click for metrics.
    page.locator('.jt-runs th[data-key="metrics.val_loss"]').click()
    page.wait_for_function(
        """() => { const th = document.querySelector('.jt-runs th[data-key="metrics.val_loss"]');
                   return th && th.textContent.includes('\u25b2'); }""", timeout=30_000)
    values = [float(v) for v in first_column(page, "metrics.val_loss")]
    assert values == sorted(values) and len(values) == 8

    # Select two rows: their curves are overlaid and the diff appears.
    page.locator(f"{PAGE_ROWS} >> nth=0 >> input.jt-select").check()
    page.locator(f"{PAGE_ROWS} >> nth=1 >> input.jt-select").check()
    page.locator(".jt-runs .jt-diff-table").wait_for(timeout=60_000)
    diff_text = page.locator(".jt-runs .jt-diff-box").inner_text()
    assert "changed" in diff_text and "max_depth" in diff_text
    assert page.locator(".jt-runs .jt-code-diff").count() == 1
    page.locator(".jt-runs select.jt-metric-select").select_option("metrics.train_loss")
    page.wait_for_function(
        """() => { const el = document.querySelector('.js-plotly-plot');
                   return el && el.data && el.data.filter(t => t.type === 'scatter').length === 2
                     && el.data.filter(t => t.type === 'scatter').every(t => t.y && t.y.length === 4); }""",
        timeout=60_000)
    assert page.locator(".js-plotly-plot .scatterlayer .trace").count() == 2
    assert page.locator(".js-plotly-plot .parcoords").count() >= 1
    # The injected param shows as text in the legend and on the parallel-coordinates axis.
    plot_texts = page.locator(".js-plotly-plot text").all_text_contents()
    assert EVIL in plot_texts and sum(EVIL in t for t in plot_texts) >= 2, plot_texts
    assert page.evaluate("() => document.querySelectorAll('img[src=\"x\"]').length") == 0
    save_screenshot(page, "compare-panel-two-selected")
    page.locator(".js-plotly-plot").scroll_into_view_if_needed()
    save_screenshot(page, "compare-panel-figure")

    # Back to all runs, the injected run's parallel-coordinate label is text as well.
    box.fill("")
    box.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('.jt-runs table.jt-table tbody tr.jt-row').length === 20",
                           timeout=30_000)
    page.locator(".jt-runs .jt-show-all").check()
    page.wait_for_function("() => Array.from(document.querySelectorAll('.jt-runs thead th'))"
                           ".some(th => th.textContent === 'criterion')", timeout=30_000)
    page.wait_for_timeout(1000)
    assert dialogs == []
    assert page.evaluate("() => document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert ids  # the store held the runs the panel showed


def test_sweep_table_fills_in_while_the_cell_runs(tmp_path, jupyter_app, chromium_page):
    root = tmp_path / "proj"
    make_notebook_project(root, [
        "%load_ext jupyter_tracking\n%track config --experiment sweep",
        "%%track --grid dict(n=[1, 2, 3, 4, 5, 6])\nimport time\ntime.sleep(1.5)\nval_loss = 1 / n\n",
    ], "sweep")
    server = jupyter_app(root, app="lab")
    page = chromium_page()
    open_and_run_cells(page, server, "lab/tree/notebooks/sweep.ipynb", 2)

    page.wait_for_selector(".jt-sweep", timeout=120_000)
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        prompts = page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").all_inner_texts()
        running = len(prompts) > 1 and "*" in prompts[1]
        done = int(page.locator(".jt-sweep").get_attribute("data-done") or 0)
        if running and 0 < done < 6 and done not in seen:
            seen.append(done)
            progress = page.locator(".jt-sweep-progress").inner_text()
            assert f"{done}/6 done" in progress and "ETA" in progress
            if len(seen) == 1:
                save_screenshot(page, "sweep-table-running")
        if not running and done == 6:
            break
        page.wait_for_timeout(300)
    assert len(seen) >= 2, f"the table updated at least twice while the cell ran: {seen}"
    table = page.locator(".jt-sweep")
    table.wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelector('.jt-sweep').dataset.status === 'FINISHED'",
                           timeout=60_000)
    statuses = page.locator(".jt-sweep tr.jt-sweep-row").evaluate_all("rows => rows.map(r => r.dataset.status)")
    assert statuses == ["FINISHED"] * 6
    assert "best #6: val_loss = 0.16667" in page.locator(".jt-sweep-progress").inner_text()
    save_screenshot(page, "sweep-table-finished")
