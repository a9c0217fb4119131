"""`make demo`: the quickstart notebook executed headless in a fresh kernel, its runs printed from the store.

Runs the real module in a subprocess, in a temporary copy of the repository layout (a pyproject.toml and
notebooks/), so the embedded store lands in the temporary folder; the printed table is checked against the runs
read back from that store with MLflow.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "notebooks" / "01_quickstart.ipynb"


def run_demo(project: Path, notebook: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jupyter_tracking.demo", notebook, *extra],
        cwd=project, capture_output=True, text=True, timeout=300,
    )


def table_rows(stdout: str, run_names: list[str]) -> dict[str, list[str]]:
    """The printed table's row of each run, split into whitespace-separated cells."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0] in run_names:
            rows[cells[0]] = cells
    return rows


def test_demo_executes_the_quickstart_and_prints_its_runs(project: Path) -> None:
    notebook = project / "notebooks" / QUICKSTART.name
    shutil.copy(QUICKSTART, notebook)
    before = notebook.read_bytes()

    result = run_demo(project, f"notebooks/{QUICKSTART.name}")

    assert result.returncode == 0, result.stderr
    assert notebook.read_bytes() == before, "the demo must not rewrite the notebook"
    store = project / "mlflow.db"
    assert store.exists(), "runs should go to the embedded store at the project root"
    assert f"2 run(s) in {store}" in result.stdout

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("quickstart")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    names = [run.info.run_name for run in runs]
    assert names == ["baseline", "stronger-penalty"]

    header = next(line for line in result.stdout.splitlines() if line.split()[:2] == ["run", "experiment"])
    columns = header.split()
    for column in ("status", "duration", "args.alpha", "train_loss", "val_loss", "performance.f1",
                   "performance.precision", "performance.recall"):
        assert column in columns, header
    rows = table_rows(result.stdout, names)
    assert set(rows) == set(names), result.stdout
    for run in runs:
        row = rows[run.info.run_name]
        assert row[1:3] == ["quickstart", "FINISHED"]
        assert run.info.status == "FINISHED"
        assert run.data.params["args.alpha"] in row
        for key in ("train_loss", "val_loss", "performance.f1", "performance.precision", "performance.recall"):
            assert f"{run.data.metrics[key]:.4g}" in row, (key, row)
        # The step metrics are whole curves, one point per epoch, not single values.
        epochs = int(run.data.params["args.epochs"])
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) == epochs
    assert rows["baseline"] != rows["stronger-penalty"]
    assert float(runs[0].data.params["args.alpha"]) != float(runs[1].data.params["args.alpha"])


def test_demo_fails_with_one_line_naming_the_cell(project: Path) -> None:
    notebook = new_notebook(cells=[new_code_cell("x = 1"), new_code_cell("raise ValueError('bad input')")])
    notebook.cells[1].id = "the-bad-cell"
    notebook.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, project / "notebooks" / "broken.ipynb")

    result = run_demo(project, "notebooks/broken.ipynb")

    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["demo: broken.ipynb: code cell 2 (the-bad-cell) failed: ValueError: bad input"]
    assert not (project / "mlflow.db").exists(), "no store is created when nothing was tracked"


def test_demo_reports_a_missing_notebook(project: Path) -> None:
    result = run_demo(project, "notebooks/missing.ipynb")
    assert result.returncode == 1
    assert result.stderr.startswith(f"demo: cannot read {project / 'notebooks' / 'missing.ipynb'}")
    assert result.stdout == ""
