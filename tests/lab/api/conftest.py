"""Fixtures for the server-extension tests: a real in-process Jupyter server (pytest-jupyter) with the
jupyter_tracking extension enabled, and a project inside its root with a real SQLite MLflow store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

# pytest-jupyter has no entry point: bring its fixtures (and its async test runner) into this folder only.
from pytest_jupyter.jupyter_server import *  # noqa: F403


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyter_tracking": True}}}


@pytest.fixture
def lab_project(jp_root_dir: Path) -> Path:
    """``proj/`` inside the Jupyter root: a project (pyproject.toml) with ``notebooks/train.ipynb``."""
    root = jp_root_dir / "proj"
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (root / "notebooks" / "train.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    return root


@pytest.fixture
def seeded_runs(lab_project: Path) -> dict:
    """Four runs in experiment ``iris`` of the project's embedded store (written with MLflow's client).

    lr 0.1/0.01/0.001 FINISHED with a 5-step val_loss curve each, and one FAILED run with a NaN metric.
    """
    from jupyter_tracking.store import client_for, experiment_id_for, resolve_store

    location = resolve_store(lab_project / "notebooks")
    client = client_for(location)
    experiment_id = experiment_id_for(location, "iris")
    other_id = experiment_id_for(location, "other")
    from mlflow.entities import Metric, Param, RunTag

    runs = {}
    base = int(time.time() * 1000)
    for index, lr in enumerate(["0.1", "0.01", "0.001"]):
        run = client.create_run(experiment_id, run_name=f"lr-{lr}", start_time=base + index * 1000)
        final = 0.5 - 0.1 * index
        metrics = [Metric("val_loss", final + 0.1 * (4 - step), base + step, step) for step in range(5)]
        metrics.append(Metric("accuracy", 0.8 + 0.05 * index, base, 0))
        client.log_batch(
            run.info.run_id,
            metrics=metrics,
            params=[Param("lr", lr), Param("layers", "[64, 32]")],
            tags=[RunTag("jupyter_tracking.cell_id", "cell-1"), RunTag("mlflow.note.content", "<b>note</b>")],
        )
        client.set_terminated(run.info.run_id, "FINISHED", end_time=base + index * 1000 + 500)
        runs[lr] = run.info.run_id
    failed = client.create_run(experiment_id, run_name="<img src=x onerror=alert(1)>", start_time=base + 5000)
    client.log_batch(failed.info.run_id, metrics=[Metric("val_loss", float("nan"), base, 0)], params=[Param("lr", "1")])
    client.set_terminated(failed.info.run_id, "FAILED")
    runs["failed"] = failed.info.run_id
    other = client.create_run(other_id, run_name="elsewhere")
    client.set_terminated(other.info.run_id, "FINISHED")
    runs["other"] = other.info.run_id
    return {"experiment_id": experiment_id, "other_id": other_id, "runs": runs, "location": location}
