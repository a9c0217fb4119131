"""Make the shipped notebooks (notebooks/*.ipynb) fit to ship: run it after saving one from Jupyter.

    .venv/bin/python tools/clean_notebooks.py [NOTEBOOK...]      (default: every notebook in notebooks/)

What it removes, so a notebook opens the same anywhere and stays small:
- saved widget state (``metadata.widgets``: plotly figures saved as megabytes of JSON) and the widget views
  in outputs (without the state a front end shows "model not found"; it shows the HTML/text beside them
  instead); cell execution timestamps;
- this machine's folders in outputs: the project root (and the temporary copy a notebook ran in) becomes
  ``/path/to/project``, the home folder ``~``.
``tests/test_shipped_notebooks.py`` fails when a notebook needs it. Outputs are otherwise kept as they are.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PROJECT_PLACEHOLDER = "/path/to/project"
# Folders that are this machine's and not the reader's: temporary folders, home folders, CI workspaces.
MACHINE_PATH = re.compile(r"(?<![\w.])(?:/tmp|/var/folders|/private/var|/home|/root|/Users|/work|/builds)/[^\s'\"<>]*")


def clean(notebook: dict, roots: list[str]) -> dict:
    """``notebook`` (nbformat JSON) without widget state and machine folders: ``roots`` and the folders holding
    an ``mlflow.db`` it names become the project placeholder."""
    text = json.dumps(notebook.get("cells", []))
    stores = {m.group(0)[: -len("/mlflow.db")] for m in MACHINE_PATH.finditer(text) if m.group(0).endswith("/mlflow.db")}
    roots = sorted(set(roots) | stores, key=len, reverse=True)
    notebook.get("metadata", {}).pop("widgets", None)
    for cell in notebook.get("cells", []):
        cell.get("metadata", {}).pop("execution", None)
        outputs = []
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_VIEW, None)  # no front end can draw it without the state
            outputs.append(_replace_paths(output, roots))
        if "outputs" in cell:
            cell["outputs"] = outputs
    return notebook


def _replace_paths(value, roots: list[str]):
    if isinstance(value, str):
        for root in roots:
            value = re.sub(re.escape(root) + r"(?![\w.-])", PROJECT_PLACEHOLDER, value)
        return MACHINE_PATH.sub(lambda match: _project_relative(match.group(0)), value)
    if isinstance(value, list):
        return [_replace_paths(item, roots) for item in value]
    if isinstance(value, dict):
        return {key: _replace_paths(item, roots) for key, item in value.items()}
    return value


def _project_relative(path: str) -> str:
    """Another machine folder as ``/path/to/<its last part>``."""
    return "/path/to/" + path.rstrip("/").rsplit("/", 1)[-1]


def main(paths: list[str]) -> int:
    notebooks = [Path(p) for p in paths] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    roots = [str(ROOT)]
    for path in notebooks:
        before = path.read_text(encoding="utf-8")
        after = json.dumps(clean(json.loads(before), roots), indent=1, ensure_ascii=False) + "\n"
        if after != before:
            path.write_text(after, encoding="utf-8")
            print(f"{path}: {len(before.encode()):,} -> {len(after.encode()):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
