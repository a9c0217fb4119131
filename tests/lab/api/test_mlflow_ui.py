"""The MLflow UI proxied through the Jupyter server: a real ``mlflow server`` started by the extension."""

from __future__ import annotations

import asyncio
import json

import pytest

NB = "proj/notebooks/train.ipynb"


@pytest.fixture
def stop_ui_servers():
    yield
    from jupyter_tracking.serverext import mlflow_ui

    mlflow_ui.stop_all()


@pytest.mark.server
async def test_open_mlflow_ui_starts_one_server_and_proxies_it(
    jp_fetch, http_server_client, jp_auth_header, seeded_runs, stop_ui_servers
):
    async def state() -> dict:
        return json.loads((await jp_fetch("jupyter-tracking/api/mlflow-ui", params={"path": NB})).body)

    assert (await state())["state"] == "stopped"
    opening = asyncio.ensure_future(
        jp_fetch("jupyter-tracking/api/mlflow-ui", method="POST", body=b"", params={"path": NB}, request_timeout=120)
    )
    seen = []  # what the tab polls while the POST waits: the state, the seconds so far and the stage
    while not opening.done():
        seen.append(await state())
        await asyncio.sleep(0.3)
    response = await opening
    starting = [s for s in seen if s["state"] == "starting"]
    assert len(starting) >= 2
    assert starting[-1]["elapsed"] > starting[0]["elapsed"] and starting[-1]["stage"] in ("loading MLflow", "answering")
    after = await state()
    assert after["state"] == "running" and after["expected"] > 0  # the next start shows the time left
    url = json.loads(response.body)["url"]
    assert url.startswith("/a%40b/jupyter-tracking/mlflow/") and url.endswith("/")

    page = await http_server_client.fetch(url, headers=jp_auth_header)
    assert page.code == 200
    assert b"<html" in page.body.lower() and b"static-files" in page.body

    search = await http_server_client.fetch(
        url + "ajax-api/2.0/mlflow/experiments/search?max_results=50", headers=jp_auth_header
    )
    names = {e["name"] for e in json.loads(search.body)["experiments"]}
    assert {"iris", "other"} <= names

    runs = await http_server_client.fetch(
        url + "ajax-api/2.0/mlflow/runs/search",
        method="POST",
        headers={**jp_auth_header, "Content-Type": "application/json"},
        body=json.dumps({"experiment_ids": [seeded_runs["experiment_id"]], "filter": "params.lr = '0.01'"}),
    )
    assert [r["info"]["run_id"] for r in json.loads(runs.body)["runs"]] == [seeded_runs["runs"]["0.01"]]

    again = await jp_fetch("jupyter-tracking/api/mlflow-ui", method="POST", body=b"", params={"path": "proj"},
                           request_timeout=120)  # fmt: skip
    assert json.loads(again.body)["url"] == url  # same store: the running server is reused
    listed = json.loads((await jp_fetch("jupyter-tracking/api/mlflow-ui")).body)["servers"]
    assert len(listed) == 1 and listed[0]["alive"]
