"""Run by tests/lab/test_dist.py with the Python of a fresh virtualenv that has jupyter_tracking installed from a
built artifact: a real IPython kernel of that venv loads the extension and runs a tracked cell, then MlflowClient
reads the run back. Prints one JSON object on stdout.

usage: python installed_probe.py STORE_URI
"""

from __future__ import annotations

import json
import os
import sys
from queue import Empty

from jupyter_client.manager import start_new_kernel

CELLS = [
    "import sys; print(sys.executable)",
    "%load_ext jupyter_tracking",
    "%%track packaged --experiment dist\nlr = 0.05\nloss = round(1 / 8, 3)\n",
]


def execute(client, code: str) -> dict:
    msg_id = client.execute(code)
    while True:
        reply = client.get_shell_msg(timeout=180)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    stdout, kinds = [], []
    while True:
        try:
            message = client.get_iopub_msg(timeout=2)
        except Empty:
            break
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kinds.append(message["msg_type"])
        if message["msg_type"] == "stream" and message["content"]["name"] == "stdout":
            stdout.append(message["content"]["text"])
        if message["msg_type"] == "error":
            stdout.append("\n".join(message["content"]["traceback"]))
    return {"status": reply["content"]["status"], "stdout": "".join(stdout), "outputs": kinds}


def main(store_uri: str) -> None:
    manager, client = start_new_kernel(kernel_name="python3", env={**os.environ, "MLFLOW_TRACKING_URI": store_uri})
    try:
        results = [execute(client, code) for code in CELLS]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)

    from mlflow.tracking import MlflowClient

    store = MlflowClient(store_uri)
    experiment = store.get_experiment_by_name("dist")
    runs = store.search_runs([experiment.experiment_id]) if experiment else []
    print(json.dumps({
        "cells": results,
        "runs": [{"name": r.info.run_name, "status": r.info.status, "params": r.data.params,
                  "metrics": r.data.metrics, "version": r.data.tags.get("jupyter_tracking.version")} for r in runs],
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
