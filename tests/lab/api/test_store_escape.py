"""The server extension answers only for stores inside the Jupyter root, creates nothing, and its MLflow UI is
read-only: a project marker above the root, an ``mlflow.db`` symlinked out of the root, ``POST mlflow-ui`` for
a notebook without a store, and writes through (or around) the proxy."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.lab.api.test_safety import API, fetch_code, outside, outside_store  # noqa: F401 (fixtures)

NB = "proj/notebooks/train.ipynb"


def _fingerprint(folder: Path):
    return sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir())


@pytest.fixture
def store_above_root(jp_root_dir: Path) -> Path:
    """A project marker and a real store in the folder above the Jupyter root."""
    from jupyter_tracking.store import client_for, experiment_id_for, resolve_store

    above = jp_root_dir.parent
    (above / "pyproject.toml").write_text("[project]\nname = 'above'\n")
    location = resolve_store(above)
    client_for(location)
    experiment_id_for(location, "above-the-root")
    return above


async def test_a_folder_without_marker_never_reaches_a_store_above_the_root(jp_fetch, jp_root_dir, store_above_root):
    loose = jp_root_dir / "loose"
    loose.mkdir()
    (loose / "n.ipynb").write_text("{}")
    before = _fingerprint(store_above_root)
    store = json.loads((await jp_fetch(API, "store", params={"path": "loose/n.ipynb"})).body)
    assert store["uri"] == f"sqlite:///{(loose / 'mlflow.db').resolve()}" and not store["exists"]
    experiments = json.loads((await jp_fetch(API, "experiments", params={"path": "loose/n.ipynb"})).body)
    assert experiments["experiments"] == []
    assert await fetch_code(jp_fetch, API, "mlflow-ui", method="POST", path="loose/n.ipynb") == 404
    assert sorted(os.listdir(loose)) == ["n.ipynb"]  # nothing created
    assert _fingerprint(store_above_root) == before


@pytest.mark.parametrize("endpoint", ["store", "experiments", "runs"])
async def test_a_symlinked_store_outside_the_root_is_refused(jp_fetch, lab_project, outside_store, endpoint):
    (lab_project / "mlflow.db").symlink_to(outside_store / "mlflow.db")
    before = _fingerprint(outside_store)
    assert await fetch_code(jp_fetch, API, endpoint, path=NB) == 403
    assert await fetch_code(jp_fetch, API, "mlflow-ui", method="POST", path=NB) == 403
    assert _fingerprint(outside_store) == before


async def test_a_symlinked_artifact_folder_outside_the_root_is_refused(jp_fetch, lab_project, outside):
    (lab_project / "mlartifacts").symlink_to(outside, target_is_directory=True)
    assert await fetch_code(jp_fetch, API, "store", path=NB) == 403
    assert await fetch_code(jp_fetch, API, "mlflow-ui", method="POST", path=NB) == 403


async def test_open_mlflow_ui_never_creates_a_store(jp_fetch, lab_project):
    assert await fetch_code(jp_fetch, API, "mlflow-ui", method="POST", path=NB) == 404
    assert not (lab_project / "mlflow.db").exists() and not (lab_project / "mlartifacts").exists()


def test_only_reads_pass_the_proxy():
    from jupyter_tracking.serverext.mlflow_ui import is_read_request

    reads = [("GET", "/x/ajax-api/2.0/mlflow/runs/get", b""), ("POST", "/x/ajax-api/2.0/mlflow/runs/search", b"{}"),
             ("POST", "/x/ajax-api/2.0/mlflow/experiments/search", b""),
             ("POST", "/x/ajax-api/2.0/mlflow/experiments/search-datasets", b""),
             ("POST", "/x/ajax-api/3.0/mlflow/traces/search", b""), ("POST", "/x/graphql", b'{"query": "query {"}')]
    writes = [("POST", "/x/ajax-api/2.0/mlflow/runs/delete", b"{}"),
              ("POST", "/x/ajax-api/2.0/mlflow/runs/create", b""),
              ("POST", "/x/ajax-api/2.0/mlflow/experiments/create", b""), ("PUT", "/x/api/2.0/mlflow-artifacts/a", b""),
              ("DELETE", "/x/ajax-api/2.0/mlflow/runs/x", b""), ("PATCH", "/x/ajax-api/2.0/mlflow/runs/search", b""),
              ("POST", "/x/graphql", b'{"query": "MUTATION { x }"}'),
              ("POST", "/x/ajax-api/2.0/mlflow/runs/search/../delete-tag", b"")]
    assert all(is_read_request(*request) for request in reads)
    assert not any(is_read_request(*request) for request in writes)


@pytest.fixture
def stop_ui_servers():
    yield
    from jupyter_tracking.serverext import mlflow_ui

    mlflow_ui.stop_all()


@pytest.mark.server
async def test_the_mlflow_ui_started_by_the_server_is_read_only(
    jp_fetch, http_server_client, jp_auth_header, seeded_runs, lab_project, stop_ui_servers
):
    response = await jp_fetch(API, "mlflow-ui", method="POST", body=b"", params={"path": NB}, request_timeout=120)
    url = json.loads(response.body)["url"]
    headers = {**jp_auth_header, "Content-Type": "application/json"}
    run_id = seeded_runs["runs"]["0.1"]
    refused = await http_server_client.fetch(
        url + "ajax-api/2.0/mlflow/runs/delete", method="POST", headers=headers,
        body=json.dumps({"run_id": run_id}), raise_error=False,
    )  # fmt: skip
    assert refused.code == 403 and b"read-only" in refused.body
    # Around the proxy, straight to the MLflow server on 127.0.0.1: the database itself is read-only.
    from jupyter_tracking.serverext import mlflow_ui

    key = url.rstrip("/").rsplit("/", 1)[-1]
    upstream = mlflow_ui.upstream_for(key)
    prefix = url.rstrip("/").split("/jupyter-tracking/", 1)[0] + "/jupyter-tracking/mlflow/" + key
    request = urllib.request.Request(
        upstream + prefix + "/ajax-api/2.0/mlflow/experiments/create", method="POST",
        data=json.dumps({"name": "written-through"}).encode(), headers={"Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request, timeout=30)
        status = 200
    except urllib.error.HTTPError as error:
        status = error.code
    assert status >= 400
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{lab_project / 'mlflow.db'}")
    assert client.get_experiment_by_name("written-through") is None
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    runs = await http_server_client.fetch(
        url + "ajax-api/2.0/mlflow/runs/search", method="POST", headers=headers,
        body=json.dumps({"experiment_ids": [seeded_runs["experiment_id"]]}),
    )
    assert len(json.loads(runs.body)["runs"]) == 4
