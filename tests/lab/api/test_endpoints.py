"""The REST API of the server extension, through a real Jupyter server (jp_fetch) and a real SQLite store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

NB = "proj/notebooks/train.ipynb"
API = "jupyter-tracking/api"


async def get_json(jp_fetch, *parts, **params):
    response = await jp_fetch(API, *parts, params=params)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def status_of(jp_fetch, *parts, method="GET", headers=None, **params):
    kwargs = {"body": b""} if method == "POST" else {}
    try:
        response = await jp_fetch(API, *parts, params=params, method=method, headers=headers, **kwargs)
    except HTTPClientError as exc:
        return exc.code, exc.response.body if exc.response is not None else b""
    return response.code, response.body


async def test_store_is_the_projects_embedded_store(jp_fetch, lab_project):
    store = await get_json(jp_fetch, "store", path=NB)
    assert store["source"] == "default"
    assert store["uri"] == f"sqlite:///{(lab_project / 'mlflow.db').resolve()}"
    assert store["exists"] is False


async def test_a_project_without_runs_lists_nothing_and_creates_no_file(jp_fetch, lab_project):
    assert (await get_json(jp_fetch, "experiments", path=NB))["experiments"] == []
    assert (await get_json(jp_fetch, "runs", path=NB)) == {"runs": [], "next_page_token": None, "total": 0}
    assert (await get_json(jp_fetch, "run-count", path=NB)) == {"total": 0}
    assert not (lab_project / "mlflow.db").exists()


async def test_experiments_of_the_notebooks_store(jp_fetch, seeded_runs):
    body = await get_json(jp_fetch, "experiments", path=NB)
    assert body["store"]["exists"] is True
    names = {e["name"]: e["experiment_id"] for e in body["experiments"]}
    assert names["iris"] == seeded_runs["experiment_id"]
    assert names["other"] == seeded_runs["other_id"]


async def test_a_folder_path_and_the_notebook_path_give_the_same_store(jp_fetch, seeded_runs):
    by_notebook = await get_json(jp_fetch, "store", path=NB)
    by_folder = await get_json(jp_fetch, "store", path="proj")
    assert by_notebook == by_folder


async def test_runs_newest_first_with_params_metrics_and_tags(jp_fetch, seeded_runs):
    body = await get_json(jp_fetch, "runs", path=NB, experiment_id=seeded_runs["experiment_id"])
    runs = body["runs"]
    assert [r["run_id"] for r in runs] == [
        seeded_runs["runs"][k] for k in ("failed", "0.001", "0.01", "0.1")
    ]
    best = runs[1]
    assert best["params"] == {"lr": "0.001", "layers": "[64, 32]"}
    assert best["metrics"]["val_loss"] == pytest.approx(0.3)
    assert best["status"] == "FINISHED"
    assert best["tags"]["jupyter_tracking.cell_id"] == "cell-1"
    assert best["tags"]["mlflow.note.content"] == "<b>note</b>"
    assert runs[0]["status"] == "FAILED"
    assert runs[0]["metrics"]["val_loss"] is None  # NaN arrives as null, the JSON stays parseable
    assert runs[0]["run_name"] == "<img src=x onerror=alert(1)>"


async def test_runs_of_every_experiment_when_none_is_named(jp_fetch, seeded_runs):
    body = await get_json(jp_fetch, "runs", path=NB)
    assert {r["run_id"] for r in body["runs"]} == set(seeded_runs["runs"].values())


async def test_runs_filtered_with_mlflow_search_syntax(jp_fetch, seeded_runs):
    eid = seeded_runs["experiment_id"]
    body = await get_json(jp_fetch, "runs", path=NB, experiment_id=eid, filter="params.lr = '0.01'")
    assert [r["run_id"] for r in body["runs"]] == [seeded_runs["runs"]["0.01"]]
    body = await get_json(jp_fetch, "runs", path=NB, experiment_id=eid, filter="metrics.accuracy > 0.82")
    assert {r["run_id"] for r in body["runs"]} == {seeded_runs["runs"]["0.01"], seeded_runs["runs"]["0.001"]}
    body = await get_json(jp_fetch, "runs", path=NB, experiment_id=eid, filter="attributes.status = 'FAILED'")
    assert [r["run_id"] for r in body["runs"]] == [seeded_runs["runs"]["failed"]]


async def test_the_run_count_is_asked_apart_from_the_page(jp_fetch, seeded_runs):
    eid = seeded_runs["experiment_id"]
    page = await get_json(jp_fetch, "runs", path=NB, experiment_id=eid, max_results="1")
    assert len(page["runs"]) == 1 and page["next_page_token"] and page["total"] is None
    everything = await get_json(jp_fetch, "runs", path=NB, experiment_id=eid)
    assert (await get_json(jp_fetch, "run-count", path=NB, experiment_id=eid)) == {"total": len(everything["runs"])}
    counted = await get_json(jp_fetch, "run-count", path=NB, experiment_id=eid, filter="metrics.accuracy > 0.82")
    assert counted == {"total": 2}
    code, body = await status_of(jp_fetch, "run-count", path=NB, experiment_id=eid, filter="params.lr === 1 and (")
    assert code == 400


async def test_a_filter_mlflow_cannot_parse_is_a_400_with_its_message(jp_fetch, seeded_runs):
    code, body = await status_of(jp_fetch, "runs", path=NB, filter="params.lr === 1 and (")
    assert code == 400
    assert b"filter" in body.lower() or b"invalid" in body.lower()


async def test_runs_sorted_by_a_metric(jp_fetch, seeded_runs):
    eid = seeded_runs["experiment_id"]
    body = await get_json(
        jp_fetch, "runs", path=NB, experiment_id=eid, order_by="metrics.accuracy DESC", filter="metrics.accuracy > 0"
    )
    accuracies = [r["metrics"]["accuracy"] for r in body["runs"]]
    assert accuracies == sorted(accuracies, reverse=True) and len(accuracies) == 3
    body = await get_json(jp_fetch, "runs", path=NB, experiment_id=eid, order_by="params.lr ASC")
    assert [r["params"]["lr"] for r in body["runs"]] == ["0.001", "0.01", "0.1", "1"]


async def test_runs_are_paged_with_a_token(jp_fetch, seeded_runs):
    eid = seeded_runs["experiment_id"]
    first = await get_json(jp_fetch, "runs", path=NB, experiment_id=eid, max_results="3")
    assert len(first["runs"]) == 3 and first["next_page_token"]
    second = await get_json(
        jp_fetch, "runs", path=NB, experiment_id=eid, max_results="3", page_token=first["next_page_token"]
    )
    assert len(second["runs"]) == 1 and second["next_page_token"] is None
    seen = [r["run_id"] for r in first["runs"] + second["runs"]]
    assert sorted(seen) == sorted(v for k, v in seeded_runs["runs"].items() if k != "other")
    code, _ = await status_of(jp_fetch, "runs", path=NB, max_results="many")
    assert code == 400


async def test_one_run_with_every_tag_and_metric_point_counts(jp_fetch, seeded_runs):
    run_id = seeded_runs["runs"]["0.1"]
    run = await get_json(jp_fetch, "runs", run_id, path=NB)
    assert run["run_id"] == run_id and run["run_name"] == "lr-0.1"
    assert run["params"]["lr"] == "0.1"
    assert "mlflow.runName" in run["tags"]
    details = {m["key"]: m for m in run["metric_details"]}
    assert details["val_loss"]["points"] == 5 and details["val_loss"]["step"] == 4
    assert details["accuracy"]["points"] == 1


async def test_an_unknown_run_is_a_404(jp_fetch, seeded_runs):
    code, _ = await status_of(jp_fetch, "runs", "0123456789abcdef0123456789abcdef", path=NB)
    assert code == 404
    code, _ = await status_of(jp_fetch, "runs", "0123456789abcdef0123456789abcdef", "metric-history", path=NB, key="x")
    assert code == 404


async def test_metric_history_in_step_order(jp_fetch, seeded_runs):
    run_id = seeded_runs["runs"]["0.1"]
    body = await get_json(jp_fetch, "runs", run_id, "metric-history", path=NB, key="val_loss")
    assert body["total"] == 5
    assert [p["step"] for p in body["points"]] == [0, 1, 2, 3, 4]
    assert [round(p["value"], 6) for p in body["points"]] == [0.9, 0.8, 0.7, 0.6, 0.5]


async def test_metric_history_is_decimated_keeping_both_ends(jp_fetch, seeded_runs):
    from mlflow.entities import Metric

    from jupyter_tracking.store import client_for

    run_id = seeded_runs["runs"]["0.01"]
    client = client_for(seeded_runs["location"])
    client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (s + 1), 0, s) for s in range(500)])
    body = await get_json(jp_fetch, "runs", run_id, "metric-history", path=NB, key="loss", max_points="50")
    steps = [p["step"] for p in body["points"]]
    assert body["total"] == 500
    assert len(steps) == 50 and steps[0] == 0 and steps[-1] == 499 and steps == sorted(steps)


async def test_metric_history_needs_a_key(jp_fetch, seeded_runs):
    code, _ = await status_of(jp_fetch, "runs", seeded_runs["runs"]["0.1"], "metric-history", path=NB)
    assert code == 400


async def test_a_store_a_kernel_is_still_creating_is_left_alone(jp_fetch, lab_project):
    """A SQLite file whose schema is not at MLflow's newest revision is neither queried nor migrated."""
    import sqlite3

    db = lab_project / "mlflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('451aebb31d03')")
    before = db.read_bytes()
    store = await get_json(jp_fetch, "store", path=NB)
    assert store["exists"] is True and store["ready"] is False
    assert (await get_json(jp_fetch, "experiments", path=NB))["experiments"] == []
    assert (await get_json(jp_fetch, "runs", path=NB))["runs"] == []
    code, body = await status_of(jp_fetch, "mlflow-ui", method="POST", path=NB)
    assert code == 503 and b"try again" in body
    assert db.read_bytes() == before


async def test_the_store_follows_mlflow_tracking_uri_like_the_kernel(jp_fetch, lab_project, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'team.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    store = await get_json(jp_fetch, "store", path=NB)
    assert (store["source"], store["uri"], store["exists"]) == ("env", uri, False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:s3cret@127.0.0.1:9/")
    store = await get_json(jp_fetch, "store", path=NB)
    assert store["source"] == "env" and "s3cret" not in json.dumps(store)
    # Nothing listens on port 9: an answer at once, not MLflow's minutes of retries.
    started = time.monotonic()
    code, body = await status_of(jp_fetch, "experiments", path=NB)
    assert code == 503 and b"does not answer" in body and b"s3cret" not in body
    assert time.monotonic() - started < 10


def test_loading_the_server_extension_does_not_import_mlflow():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from jupyter_tracking.serverext import _load_jupyter_server_extension\n"
        "from jupyter_tracking.serverext.handlers import routes\n"
        "assert len(routes('/base/')) == 8\n"
        "print('mlflow' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "False"
