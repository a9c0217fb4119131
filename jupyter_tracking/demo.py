"""``make demo``: execute a notebook headless in a fresh kernel, then print the runs it made.

``python -m jupyter_tracking.demo NOTEBOOK [--output EXECUTED.ipynb] [--timeout SECONDS]``

The notebook runs with nbclient in its own folder (as Jupyter would run it) with ``MLFLOW_TRACKING_URI``
unset, so its runs go to the project's embedded store; the notebook file itself is never rewritten (``--output``
saves the executed copy elsewhere, or over it if you ask). The table is read back with plain MLflow: one row per
run the execution made, with its status, duration, the params that differ between those runs and its metrics.
Exit status: 0 when the notebook ran and made runs, 1 (with one line on stderr) otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MAX_PARAM_COLUMNS = 6
MAX_METRIC_COLUMNS = 8


class DemoError(Exception):
    """Something that ends the demo: its message is the one line the user sees."""


def execute_notebook(path: Path, *, timeout: int = 600) -> Any:
    """Run every cell of the notebook at ``path`` in a fresh kernel started in its folder; returns the executed
    notebook (in memory). Raises DemoError naming the failing cell."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    try:
        notebook = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as error:  # missing file, not JSON, not a notebook
        raise DemoError(f"cannot read {path}: {error}") from None
    kernel_name = notebook.metadata.get("kernelspec", {}).get("name", "python3")
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name=kernel_name, record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    # The kernel's own stderr (transport warnings and the like) is kept aside and shown only if it dies.
    with tempfile.TemporaryFile(mode="w+b") as kernel_log:
        try:
            client.execute(stderr=kernel_log)
        except CellExecutionError as error:
            raise DemoError(f"{path.name}: {_failed_cell(notebook)} failed: {_error_line(error)}") from None
        except CellTimeoutError:
            raise DemoError(f"{path.name}: {_failed_cell(notebook)} ran longer than {timeout} s") from None
        except DeadKernelError:
            raise DemoError(f"{path.name}: the kernel died ({_last_line(kernel_log) or 'no message'})") from None
        except Exception as error:  # noqa: BLE001 - a kernel that cannot start and the like: one line
            first = (str(error).strip().splitlines() or [""])[0][:300]
            raise DemoError(f"{path.name}: could not execute ({type(error).__name__}: {first})") from None
    return notebook


def _failed_cell(notebook: Any) -> str:
    """'cell N (id)' of the first code cell with an error output, counting code cells from 1."""
    number = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        number += 1
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            ident = f" ({cell.id})" if cell.get("id") else ""
            return f"code cell {number}{ident}"
    return "a cell"


def _last_line(log: Any) -> str:
    log.seek(0)
    lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _error_line(error: Exception) -> str:
    ename, evalue = getattr(error, "ename", None), getattr(error, "evalue", None)
    if ename:
        return f"{ename}: {evalue}" if evalue else ename
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def runs_since(location: Any, since_ms: int) -> Any:
    """The runs of every experiment in the store started at or after ``since_ms``, oldest first (a DataFrame)."""
    import mlflow

    from . import store

    if location.not_created_yet:
        return None  # nothing was tracked: do not create an empty store
    client = store.client_for(location)
    experiments = {experiment.experiment_id: experiment.name for experiment in client.search_experiments()}
    if not experiments:
        return None
    mlflow.set_tracking_uri(location.uri)
    runs = mlflow.search_runs(
        experiment_ids=list(experiments), filter_string=f"attributes.start_time >= {since_ms}",
        order_by=["attributes.start_time ASC"], output_format="pandas",
    )
    if runs is not None and len(runs):
        runs["experiment"] = runs["experiment_id"].map(experiments)
    return runs


def runs_table(runs: Any) -> str:
    """A text table: run, experiment, status, duration, the params that differ between the runs, metrics."""
    import pandas as pd

    params = sorted(column for column in runs.columns if column.startswith("params."))
    varying = [column for column in params if runs[column].astype(str).nunique(dropna=False) > 1]
    shown_params = (varying or params)[:MAX_PARAM_COLUMNS]
    metrics = sorted(
        (column for column in runs.columns if column.startswith("metrics.") and runs[column].notna().any()),
        key=lambda column: (column.count("."), column),
    )[:MAX_METRIC_COLUMNS]
    duration = (runs["end_time"] - runs["start_time"]).dt.total_seconds()
    table = pd.DataFrame(
        {
            "run": runs["tags.mlflow.runName"].fillna(""),
            "experiment": runs["experiment"],
            "status": runs["status"],
            "duration": duration.map(lambda seconds: "-" if pd.isna(seconds) else f"{seconds:.1f} s"),
        }
    )
    for column in shown_params:
        table[column.removeprefix("params.")] = runs[column].fillna("")
    for column in metrics:
        table[column.removeprefix("metrics.")] = runs[column].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    return table.to_string(index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jupyter_tracking.demo",
        description="Execute a notebook headless into the project's embedded MLflow store and print its runs.",
    )
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--output", type=Path, help="also save the executed notebook here")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")
    args = parser.parse_args(argv)

    # The embedded store, as `make lab` uses it: no URI from the environment, here or in the kernel.
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    path = args.notebook.resolve()
    from . import store

    location = store.resolve_store(path.parent)
    started_ms = int(time.time() * 1000) - 1
    started = time.perf_counter()
    try:
        notebook = execute_notebook(path, timeout=args.timeout)
    except DemoError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    if args.output:
        import nbformat

        nbformat.write(notebook, args.output)
    runs = runs_since(location, started_ms)
    where = location.db_path or location.uri
    if runs is None or not len(runs):
        print(f"demo: {path.name} ran in {elapsed:.1f} s but made no runs in {where}", file=sys.stderr)
        return 1
    print(f"{path.name}: executed in {elapsed:.1f} s; {len(runs)} run(s) in {where}:\n")
    print(runs_table(runs))
    print(f"\nBrowse them: mlflow ui --backend-store-uri {location.uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
