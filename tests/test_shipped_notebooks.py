"""The notebooks in notebooks/ are fit to ship: no saved widget state, no machine folders in outputs, and
pictures a reader sees without trusting the notebook. `tools/clean_notebooks.py` fixes the first two."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET_STATE_LIMIT = 10_000  # bytes of metadata.widgets a notebook may keep
sys.path.insert(0, str(ROOT / "tools"))
from clean_notebooks import MACHINE_PATH, WIDGET_VIEW, clean  # noqa: E402


def outputs(notebook: dict):
    for cell in notebook["cells"]:
        yield from cell.get("outputs", [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_shipped_notebook_has_no_widget_state_and_no_machine_paths(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    state = json.dumps(notebook["metadata"].get("widgets", {}))
    assert len(state) <= WIDGET_STATE_LIMIT, (
        f"{path.name} keeps {len(state):,} bytes of widget state: run tools/clean_notebooks.py")
    assert not [o for o in outputs(notebook) if WIDGET_VIEW in o.get("data", {})], (
        f"{path.name} has widget views no front end can draw without the state: run tools/clean_notebooks.py")
    found = sorted({m.group(0) for o in outputs(notebook) for m in MACHINE_PATH.finditer(json.dumps(o))})
    assert not found, f"{path.name} shows this machine's folders {found}: run tools/clean_notebooks.py"
    assert path.stat().st_size < 200_000, f"{path.name} is {path.stat().st_size:,} bytes"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_pictures_show_in_untrusted_notebooks(path):
    """JupyterLab draws no image/svg+xml of an untrusted notebook; the same SVG as an <img> in text/html is
    drawn (sanitized HTML keeps data-URI images), so a notebook opened from disk shows its curves."""
    for output in outputs(json.loads(path.read_text(encoding="utf-8"))):
        data = output.get("data", {})
        if "image/svg+xml" in data:
            html = "".join(data.get("text/html", ""))
            match = re.search(r'<img alt="[^"]+" src="data:image/svg\+xml;base64,([^"]+)"', html)
            assert match, f"{path.name}: an SVG picture without its <img> twin"
            assert base64.b64decode(match.group(1)).decode() == "".join(data["image/svg+xml"])


def test_cleaning_drops_widget_state_and_machine_paths_and_keeps_the_rest():
    notebook = {
        "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {"x": "y" * 50_000}}}},
        "cells": [
            {"cell_type": "code", "metadata": {"execution": {"iopub.status.busy": "2026"}}, "source": "x",
             "outputs": [
                 {"output_type": "stream", "name": "stdout",
                  "text": ["runs go to /tmp/jt_me/jupyter_tracking/mlflow.db (embedded)\n", "root /repo/x\n"]},
                 {"output_type": "execute_result", "metadata": {}, "execution_count": 1,
                  "data": {WIDGET_VIEW: {"model_id": "abc"}, "text/html": "<b>table</b>",
                           "text/plain": "cache in /home/ann/.cache/thing"}},
             ]},
        ],
    }
    cleaned = clean(notebook, ["/repo"])
    assert "widgets" not in cleaned["metadata"]
    cell = cleaned["cells"][0]
    assert cell["metadata"] == {}
    assert cell["outputs"][0]["text"] == ["runs go to /path/to/project/mlflow.db (embedded)\n",
                                          "root /path/to/project/x\n"]
    assert cell["outputs"][1]["data"] == {"text/html": "<b>table</b>", "text/plain": "cache in /path/to/thing"}
    assert clean(json.loads(json.dumps(cleaned)), ["/repo"]) == cleaned


def test_cleaning_tool_runs_on_a_copy(tmp_path):
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps({"metadata": {"widgets": {"s": 1}}, "nbformat": 4, "nbformat_minor": 5,
                                "cells": []}))
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "clean_notebooks.py"), str(path)],
                            capture_output=True, text=True, check=True)
    assert "n.ipynb" in result.stdout
    assert "widgets" not in json.loads(path.read_text())["metadata"]
