"""What the side panel asks a real kernel (labextension/src/kernel.ts): the same expression, sent the same way
(a silent execute request with a user expression), answers the experiment this kernel writes to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.kernels import Kernel, make_project

REPO = Path(__file__).resolve().parents[2]


def target_expression() -> str:
    """TARGET_EXPRESSION exactly as the extension's source has it (its quoted parts joined)."""
    source = (REPO / "labextension" / "src" / "kernel.ts").read_text()
    block = re.search(r"export const TARGET_EXPRESSION =(.*?);\n", source, re.S).group(1)
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', block))


def ask(kernel: Kernel) -> dict:
    """A silent request with the expression, as JupyterLab's kernel connection sends it; the expression's answer."""
    content = {"code": "", "silent": True, "store_history": False, "allow_stdin": False,
               "user_expressions": {"jt": target_expression()}, "stop_on_error": False}
    message = kernel.client.session.msg("execute_request", content)
    kernel.client.shell_channel.send(message)
    reply = kernel.reply(message["header"]["msg_id"], timeout=120)
    assert reply["content"]["status"] == "ok"
    return reply["content"]["user_expressions"]["jt"]


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path / "proj")


@pytest.fixture
def kernel(project, tmp_path):
    k = Kernel(project / "notebooks", {"JUPYTER_TRACKING_SPOOL_DIR": str(tmp_path / "spool")})
    yield k
    k.close()


def test_the_kernel_names_its_experiment_and_never_imports_the_package_unasked(kernel, project):
    answer = ask(kernel)
    assert answer["status"] == "ok" and answer["data"] == {"text/plain": "None"}
    assert kernel.run_ok("import sys; print('jupyter_tracking' in sys.modules)").stdout.strip() == "False"

    kernel.run_ok("%load_ext jupyter_tracking\n%track config --experiment 'tuning <b>'")
    target = ask(kernel)["data"]["application/json"]
    assert target["experiment"] == "tuning <b>" and target["experiment_id"] is None and target["last_run_id"] is None
    assert target["store"].endswith("/proj/mlflow.db")

    kernel.run_ok("%%track first --no-live\nx = 1")
    target = ask(kernel)["data"]["application/json"]
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tuning <b>")
    assert target["experiment_id"] == experiment.experiment_id
    runs = client.search_runs([experiment.experiment_id])
    assert [target["last_run_id"]] == [r.info.run_id for r in runs]
