"""Reading a test project's embedded store back with MLflow's own client, as a user of MLflow would."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient


def store_client(project: Path) -> MlflowClient:
    """A client for the project's ``mlflow.db``."""
    return MlflowClient(f"sqlite:///{project / 'mlflow.db'}")


def runs_of(project: Path, experiment: str) -> list:
    """The experiment's runs, oldest first ([] while the experiment does not exist)."""
    client = store_client(project)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])
