"""Make runs in a real SQLite MLflow store the way jupyter_tracking's core records them (plain MlflowClient).

Used by the query, comparison-panel and benchmark tests before and independently of the cell runner.
"""

from __future__ import annotations

import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag


def sqlite_uri(folder: Path) -> str:
    return f"sqlite:///{Path(folder) / 'mlflow.db'}"


def make_experiment(client: MlflowClient, name: str, folder: Path) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    return client.create_experiment(name, artifact_location=str(Path(folder) / "artifacts" / name))


def make_run(
    client: MlflowClient,
    experiment_id: str,
    *,
    name: str | None = None,
    params: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    series: dict[str, list[float]] | None = None,
    tags: dict[str, str] | None = None,
    code: str | None = None,
    artifacts: dict[str, Any] | None = None,
    status: str = "FINISHED",
    parent_run_id: str | None = None,
) -> str:
    """One run with params, final metrics, step series, the cell code artifact and pickled artifacts."""
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id, run_name=name, tags=all_tags)
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    metric_list = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
    for key, values in (series or {}).items():
        metric_list.extend(Metric(key, float(v), now + i, i) for i, v in enumerate(values))
    client.log_batch(
        run_id,
        metrics=metric_list,
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[],
    )
    if code is not None:
        client.log_text(run_id, code, "cell/cell.py")
    if artifacts:
        with tempfile.TemporaryDirectory() as tmp:
            for key, value in artifacts.items():
                path = Path(tmp) / f"{key}.pkl"
                path.write_bytes(pickle.dumps(value))
                client.log_artifact(run_id, str(path), "artifacts")
    client.set_terminated(run_id, status)
    return run_id


__all__ = ["RunTag", "make_experiment", "make_run", "sqlite_uri"]
