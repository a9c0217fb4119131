"""Capture on notebooks written the way people write them, through real kernels, read back with MlflowClient:
hand-built histories, loop temporaries, the cell's own MLflow calls and autolog on the card, single points,
``--artifacts``, top-level ``await``, bad options, big cells, and which notebook a kernel runs (papermill,
``jupyter execute``, ``%track config --notebook``, the environment variable)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from jupyter_tracking.panels.card import MIME_TYPE, SHOWN_METRICS
from tests.kernels import Kernel, write_notebook
from tests.stores import runs_of, store_client

VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def kernel(project):
    running = Kernel(project / "notebooks", load_ext=True)
    yield running
    running.close()


def card_of(execution) -> dict:
    [card] = [data[MIME_TYPE] for data in execution.data if MIME_TYPE in data]
    return card


def history(client, run, key) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]


TRAINING_CELL = """%%track numpy-loop
import numpy as np
import jupyter_tracking as jt
rng = np.random.default_rng(0)
X, y = rng.normal(size=(200, 3)), rng.normal(size=200)
history = {"loss": [], "val_loss": []}
lr = 0.05
w = np.zeros(3)
bias = 0.0
for epoch in range(6):
    pred = X[:150] @ w + bias
    grad = X[:150].T @ (pred - y[:150]) / 150
    w = w - lr * grad
    bias = bias - lr * float(np.mean(pred - y[:150]))
    train_loss_epoch = float(np.mean((pred - y[:150]) ** 2))
    vl = float(np.mean((X[150:] @ w + bias - y[150:]) ** 2))
    va = float(np.mean(np.sign(X[150:] @ w) == np.sign(y[150:])))
    history["loss"].append(train_loss_epoch)
    history["val_loss"].append(vl)
    jt.log(step=epoch, val_acc=va, bias=bias)
train_loss = float(np.mean((X[:150] @ w + bias - y[:150]) ** 2))
"""


def test_hand_built_history_is_series_and_loop_temporaries_are_not_metrics(kernel, project):
    kernel.run_ok("%track config --experiment loops")
    kernel.run_ok(TRAINING_CELL)
    [run] = runs_of(project, "loops")
    client = store_client(project)
    assert run.data.params == {"lr": "0.05"}  # no `history.*` params
    assert len(history(client, run, "history.loss")) == 6 and len(history(client, run, "history.val_loss")) == 6
    assert history(client, run, "history.val_loss")[-1] == pytest.approx(kernel_value(kernel, "vl"))
    assert len(history(client, run, "val_acc")) == 6 and len(history(client, run, "bias")) == 6
    # The loop's temporaries are in the series already; the loss computed after the loop is the final metric.
    assert set(run.data.metrics) == {"history.loss", "history.val_loss", "val_acc", "bias", "train_loss"}


def kernel_value(kernel: Kernel, name: str) -> float:
    return float(kernel.run_ok(f"print(repr({name}))").stdout)


def test_the_card_lists_what_the_cell_and_autolog_logged_and_mlflow_results_are_not_metrics(kernel, project):
    kernel.run_ok("%track config --experiment own-calls")
    kernel.run_ok("import pandas as pd, numpy as np\nrng = np.random.default_rng(1)\n"
                  "X_train = pd.DataFrame(rng.normal(size=(120, 4)), columns=list('abcd'))\n"
                  "y_train = (X_train['a'] > 0).astype(int)\ntrain_copy = X_train.copy()")
    shown = kernel.run_ok(
        "%%track --autolog\nimport mlflow\nfrom sklearn.linear_model import LogisticRegression\n"
        "C = 0.5\nmodel = LogisticRegression(C=C).fit(X_train, y_train)\nsame = len(train_copy)\n"
        "mlflow.log_param('manual_param', 7)\n")
    [run] = runs_of(project, "own-calls")
    client = store_client(project)
    assert run.data.params["manual_param"] == "7" and "log_param" not in run.data.metrics
    autologged = set(run.data.params) - {"C", "manual_param"}
    assert len(autologged) >= 5 and "training_score" in run.data.metrics  # autolog's own params and metrics
    card = card_of(shown)
    logged_params = {p["key"] for p in card["params"] if p.get("logged")}
    logged_metrics = {m["key"] for m in card["metrics"] if m.get("logged")}
    assert {"manual_param", *autologged} <= logged_params
    assert "manual_param" in logged_params and "training_score" in logged_metrics
    assert card["params_total"] == len(run.data.params)
    text = next(data for data in shown.data if MIME_TYPE in data)["text/plain"]
    assert "logged by the cell or autolog" in text and "manual_param=7" in text
    # The training frame once, named after the variable (not autolog's `dataset` too, nor the copy again).
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert [entry.dataset.name for entry in inputs] == ["X_train"]


def test_a_single_logged_point_is_a_value_not_a_curve(kernel, project):
    kernel.run_ok("%track config --experiment single")
    shown = kernel.run_ok("%%track\nimport mlflow\nmlflow.log_metric('custom_metric', 1.5)\nacc = 3 / 4\n")
    [run] = runs_of(project, "single")
    assert run.data.metrics == {"custom_metric": 1.5, "acc": 0.75}
    figures = ("image/svg+xml", "application/vnd.plotly.v1+json", "application/vnd.jupyter.widget-view+json")
    assert not [data for data in shown.data if any(kind in data for kind in figures)]
    assert {m["key"]: m["value"] for m in card_of(shown)["metrics"]} == {"custom_metric": 1.5, "acc": 0.75}


def test_artifacts_are_not_logged_again_as_metrics(kernel, project):
    kernel.run_ok("%track config --experiment artifacts")
    kernel.run_ok("%%track --artifacts results\nimport numpy as np\n"
                  "results = {'curve': np.linspace(0, 1, 5000), 'losses': np.linspace(1, 0, 5000)}\nscore = 1 / 2\n")
    [run] = runs_of(project, "artifacts")
    client = store_client(project)
    assert run.data.metrics == {"score": 0.5}
    assert client.get_metric_history(run.info.run_id, "results.curve") == []
    assert [item.path for item in client.list_artifacts(run.info.run_id, "artifacts")]


def test_top_level_await_runs_tracked_and_bad_options_are_one_line(kernel, project):
    kernel.run_ok("%track config --experiment awaits")
    kernel.run_ok("%%track\nimport asyncio\nimport jupyter_tracking as jt\nawait asyncio.sleep(0.01)\n"
                  "for step in range(3):\n    jt.log(step=step, loss=1 / (step + 1))\n    await asyncio.sleep(0)\n"
                  "val = await asyncio.sleep(0, result=0.25)\n")
    [run] = runs_of(project, "awaits")
    assert run.info.status == "FINISHED" and run.data.metrics == {"val": 0.25, "loss": pytest.approx(1 / 3)}
    kernel.run_ok("%autoawait off")
    refused = kernel.execute("%%track\nimport asyncio\nawait asyncio.sleep(0)\nnever = 1\n")
    assert refused.error == "UsageError" and "needs IPython's autoawait" in refused.text
    assert len(refused.text.strip().splitlines()) == 1
    empty = kernel.execute('%%track -e ""\nnever = 1\n')
    assert empty.error == "UsageError" and "experiment needs a name" in empty.text
    assert len(empty.text.strip().splitlines()) == 1
    kernel.run_ok("%autoawait on")
    assert len(runs_of(project, "awaits")) == 1 and runs_of(project, "Default") == []
    assert "never" not in kernel.run_ok("print(dir())").stdout


def test_ten_thousand_metrics_keep_the_card_small(kernel, project):
    kernel.run_ok("%track config --experiment wide\nscale = 0.5")
    cell = "%%track --no-live\n" + "".join(f"m{i} = {i} * scale\n" for i in range(10_000))
    shown = kernel.run_ok(cell, timeout=600)
    [run] = runs_of(project, "wide")
    assert len(run.data.metrics) == 10_000
    bundle = next(data for data in shown.data if MIME_TYPE in data)
    size = len(json.dumps(bundle))
    assert size < 150_000, size
    card = bundle[MIME_TYPE]
    assert card["metrics_total"] == 10_000 and len(card["metrics"]) < 300
    assert "not shown: " in bundle["text/plain"] and len(bundle["text/plain"]) < 5_000
    assert bundle["text/html"].count("<details") == 1 and f"{10_000 - SHOWN_METRICS} more" in bundle["text/html"]


# ---------------------------------------------------------------------------------------------- notebook identity
def _tracked_notebook(path: Path) -> Path:
    notebook = write_notebook(path, ["lr = 0.1", "%load_ext jupyter_tracking", "%%track fit\nscore = lr * 2\n"])
    document = nbformat.read(notebook, as_version=4)
    document.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(document, notebook)
    return notebook


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "JPY_SESSION_NAME")}


def test_papermill_and_jupyter_execute_runs_know_their_notebook(project, tmp_path):
    first = _tracked_notebook(project / "notebooks" / "sweep_a.ipynb")
    second = _tracked_notebook(project / "notebooks" / "sweep_b.ipynb")
    for notebook, value in ((first, "0.3"), (second, "0.7")):
        subprocess.run([str(VENV_BIN / "papermill"), str(notebook.relative_to(project)), str(tmp_path / "out.ipynb"),
                        "-p", "lr", value, "-k", "python3"], cwd=project, env=_env(), check=True,
                       capture_output=True, timeout=300)
    executed = write_notebook(project / "notebooks" / "executed.ipynb", ["%load_ext jupyter_tracking",
                                                                          "%%track fit\nscore = 2\n"])
    subprocess.run([str(VENV_BIN / "jupyter"), "execute", executed.name], cwd=executed.parent, env=_env(), check=True,
                   capture_output=True, timeout=300)
    [run_a], [run_b], [run_c] = (runs_of(project, name) for name in ("sweep_a", "sweep_b", "executed"))
    assert run_a.data.params == {"lr": "0.3"} and run_b.data.params == {"lr": "0.7"}
    for run, notebook in ((run_a, first), (run_b, second), (run_c, executed)):
        assert run.data.tags["mlflow.source.name"] == str(notebook.relative_to(project))
        assert run.data.tags["jupyter_tracking.notebook"] == str(notebook)
    assert run_a.data.tags["jupyter_tracking.cell_key"] != run_b.data.tags["jupyter_tracking.cell_key"]


def test_a_kernel_that_cannot_tell_its_notebook_says_so_once_and_can_be_told(project):
    unknown = Kernel(project / "notebooks", load_ext=True)
    try:
        unknown.run_ok("%track config --experiment where")
        said = unknown.run_ok("%%track same\nx = 1\n").stderr + unknown.run_ok("%%track same\nx = 2\n").stderr
        assert said.count("cannot tell which notebook it runs") == 1 and "--notebook PATH" in said
        unknown.run_ok("%track config --notebook told.ipynb")
        unknown.run_ok("%%track same\nx = 3\n")
    finally:
        unknown.close()
    named = Kernel(project / "notebooks", {"JUPYTER_TRACKING_NOTEBOOK": "from_env.ipynb"}, load_ext=True)
    try:
        named.run_ok("%track config --experiment where")
        assert "cannot tell" not in named.run_ok("%%track same\nx = 4\n").stderr
    finally:
        named.close()
    first, second, told, from_env = runs_of(project, "where")
    assert first.data.tags["mlflow.source.name"] == "IPython session"
    assert first.data.tags["jupyter_tracking.cell_key"] == second.data.tags["jupyter_tracking.cell_key"]
    assert first.data.tags["jupyter_tracking.cell_key"].startswith("IPython session ")  # this kernel only
    assert told.data.tags["jupyter_tracking.notebook"] == str(project / "notebooks" / "told.ipynb")
    assert from_env.data.tags["mlflow.source.name"] == "notebooks/from_env.ipynb"
