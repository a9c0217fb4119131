"""The panels in JupyterLab's dark theme and in a narrow window, in real JupyterLab 4 and Notebook 7 (Chromium).

One notebook: two tracked cells (the final curve picture and the run card) and ``%runs`` with two runs
selected (the table, the overlaid curves, parallel coordinates, the diff). In the light theme, then in the dark
theme (switched from the Settings menu, as a user does), at 1400 and at 900 px, the test requires:
- the curve picture transparent (its corner pixel has alpha 0) and as wide as its cell at most;
- ``%runs`` text in the theme's text colour (light on dark), its figure's text too, no opaque white box;
- no output wider than its cell (nothing clipped: an output scrolls only inside its own scroll boxes).
Screenshots of each view go to docs/screenshots/ (the README shows them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import project_server
from tests.ui.test_compare_browser import open_and_run_cells

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TRAIN = """%%track {name} --note "{note}"
lr = {lr}
for epoch in range(8):
    jt.log(step=epoch, train_loss=math.exp(-epoch * lr * 10), val_loss=math.exp(-epoch * lr * 8) + 0.05,
           val_acc=1 - math.exp(-epoch * lr * 9))
val_acc = 1 - math.exp(-7 * lr * 9)
"""
CELLS = [
    "%load_ext jupyter_tracking\n%track config --experiment theme\nimport jupyter_tracking as jt, math",
    TRAIN.format(name="baseline", note="first try", lr=0.05),
    TRAIN.format(name="faster", note="twice the learning rate", lr=0.1),
    "panel = jt.runs('theme')\npanel.set_selected(list(panel.df.run_id))\npanel",
]

MEASURE = """() => {
    const lum = (css) => {
        const m = css.match(/rgba?\\(([\\d.]+),\\s*([\\d.]+),\\s*([\\d.]+)(?:,\\s*([\\d.]+))?/);
        if (!m) return null;
        const [r, g, b] = [m[1], m[2], m[3]].map(v => { v = v / 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
        return { l: 0.2126 * r + 0.7152 * g + 0.0722 * b, a: m[4] === undefined ? 1 : Number(m[4]) };
    };
    const page = lum(getComputedStyle(document.querySelector('.jp-Notebook')).backgroundColor);
    const runs = document.querySelector('.jt-runs');
    const figureText = document.querySelector('.jt-plotly .main-svg text.gtitle, .jt-plotly .main-svg .xtick text');
    const paper = document.querySelector('.jt-plotly .main-svg');
    const img = document.querySelector('.jp-OutputArea-output img[alt^="Training curves"]');
    let corner = null;
    if (img && img.complete) {
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const ctx = canvas.getContext('2d');
        ctx.drawImage(img, 0, 0);
        corner = Array.from(ctx.getImageData(2, 2, 1, 1).data);
    }
    const overflowing = Array.from(document.querySelectorAll('.jp-OutputArea-output'))
        .filter(o => o.scrollWidth > o.clientWidth + 1)
        .map(o => o.className + ' ' + o.scrollWidth + '>' + o.clientWidth);
    const imgBox = img ? img.getBoundingClientRect() : null;
    const imgCell = img ? img.closest('.jp-OutputArea-output').getBoundingClientRect() : null;
    return {
        page, runsText: runs && lum(getComputedStyle(runs).color),
        figureText: figureText && lum(getComputedStyle(figureText).fill),
        paper: paper && lum(getComputedStyle(paper).backgroundColor),
        tableCell: runs && lum(getComputedStyle(runs.querySelector('tbody td')).backgroundColor),
        corner, overflowing,
        imgFits: img ? imgBox.right <= imgCell.right + 1 && imgBox.width > 0 : null,
    };
}"""


def switch_theme(page, theme: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel", has_text=theme).first.click()
    page.wait_for_timeout(2500)


def check_and_shoot(page, app: str, theme: str) -> None:
    for width in (1400, 900):
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(1500)
        measured = page.evaluate(MEASURE)
        dark = theme == "dark"
        assert (measured["page"]["l"] < 0.1) == dark, measured
        assert measured["corner"] is not None and measured["corner"][3] == 0, f"picture not transparent: {measured}"
        assert measured["imgFits"], measured
        assert not measured["overflowing"], f"outputs wider than their cell at {width} px: {measured['overflowing']}"
        assert measured["paper"]["a"] == 0, f"the %runs figure has an opaque background: {measured}"
        for key in ("runsText", "figureText"):
            text = measured[key]
            assert text is not None and (text["l"] > 0.4 if dark else text["l"] < 0.2), (key, measured)
        cell = measured["tableCell"]
        assert cell["a"] == 0 or (cell["l"] < 0.1 if dark else cell["l"] > 0.8), measured
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator(".jp-Notebook .jp-Cell").nth(1).scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        page.screenshot(path=str(SCREENSHOTS / f"{app}-{theme}-{width}.png"))
        page.locator(".jt-runs").first.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        page.screenshot(path=str(SCREENSHOTS / f"{app}-{theme}-{width}-runs.png"))


@pytest.mark.parametrize("app,path", [("lab", "lab/tree/notebooks/theme.ipynb"),
                                      ("notebook", "notebooks/notebooks/theme.ipynb")])
def test_panels_follow_the_theme_and_fit_a_narrow_window(tmp_path, jupyter_app, chromium_page, app, path):
    # The theme choice is saved in the user settings: the server keeps them in this test's folder.
    server = project_server(jupyter_app, tmp_path, "theme", CELLS, app)
    page = chromium_page()
    open_and_run_cells(page, server, path, len(CELLS))
    page.wait_for_selector(".jt-runs tbody tr", timeout=120_000)
    page.wait_for_selector(".jt-plotly .main-svg", timeout=60_000)
    page.wait_for_selector('.jp-OutputArea-output img[alt^="Training curves"]', timeout=60_000)
    no_news = page.locator(".jp-Notification-Toast-Close, .jp-toast-button >> text=No")
    if no_news.count():
        no_news.first.click()
    if app == "lab" and page.locator("#jp-left-stack:visible").count():
        page.keyboard.press("Escape")
        page.keyboard.press("Control+b")  # the file browser off: the notebook gets the window's width
    page.wait_for_timeout(1500)
    check_and_shoot(page, app, "light")
    switch_theme(page, "JupyterLab Dark")
    check_and_shoot(page, app, "dark")
