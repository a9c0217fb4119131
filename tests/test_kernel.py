"""%%track in a real IPython kernel (jupyter_client): cell ids, interrupts, runs never left active."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

from tests.stores import runs_of, store_client


class Kernel:
    """A real IPython kernel driven like JupyterLab drives it (execute requests carry the cell id)."""

    def __init__(self, cwd: Path) -> None:
        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd))

    def send(self, code: str, cell_id: str | None = None) -> str:
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}
        message = self.client.session.msg("execute_request", content, metadata={"cellId": cell_id} if cell_id else {})
        self.client.shell_channel.send(message)
        return message["header"]["msg_id"]

    def reply(self, msg_id: str, timeout: float = 120) -> dict:
        while True:
            reply = self.client.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def run(self, code: str, cell_id: str | None = None) -> tuple[dict, list[dict]]:
        """Execute and return the reply and the display outputs of that request."""
        msg_id = self.send(code, cell_id)
        reply = self.reply(msg_id)
        outputs = []
        while True:
            try:
                message = self.client.get_iopub_msg(timeout=2)
            except Exception:  # noqa: BLE001 - queue drained
                break
            if message["parent_header"].get("msg_id") == msg_id and message["msg_type"] == "display_data":
                outputs.append(message["content"]["data"])
        return reply, outputs

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel(project):
    running = Kernel(project / "notebooks")
    yield running
    running.close()


def test_runs_of_the_same_cell_are_linked_by_its_id(kernel, project):
    reply, _ = kernel.run("%load_ext jupyter_tracking\n%track config --experiment kernel", "cell-0")
    assert reply["content"]["status"] == "ok"
    tracked = "%%track\nepochs = 3\nscore = epochs / 4\n"
    reply, _ = kernel.run(tracked, "cell-a")
    assert reply["content"]["status"] == "ok"
    first_count = reply["content"]["execution_count"]
    kernel.run("epochs = 5", "cell-b")
    kernel.run("%%track\nloss = 1 / epochs\n", "cell-c")
    reply, outputs = kernel.run(tracked.replace("3", "4"), "cell-a")  # the same cell, edited and re-run
    first, other, again = runs_of(project, "kernel")
    assert first.data.tags["jupyter_tracking.cell_id"] == "cell-a" == again.data.tags["jupyter_tracking.cell_id"]
    assert other.data.tags["jupyter_tracking.cell_id"] == "cell-c"
    assert first.data.tags["jupyter_tracking.execution_count"] == str(first_count)  # In [n] as the user sees it
    assert first.data.tags["jupyter_tracking.cell_hash"] != again.data.tags["jupyter_tracking.cell_hash"]
    assert [r.data.params["epochs"] for r in (first, again)] == ["3", "4"]
    assert other.data.params == {"epochs": "5"}
    [card] = [data for data in outputs if "application/vnd.jupyter-tracking.run+json" in data]
    data = card["application/vnd.jupyter-tracking.run+json"]
    assert data["previous_run_id"] == first.info.run_id and data["run_id"] == again.info.run_id
    assert data["cell_id"] == "cell-a"
    assert data["params"] == [{"key": "epochs", "value": "4", "previous": "3", "changed": True}]


def test_interrupting_the_kernel_marks_the_run_killed_and_the_next_cell_works(kernel, project):
    reply, _ = kernel.run("%load_ext jupyter_tracking\n%track config --experiment interrupts")
    assert reply["content"]["status"] == "ok"
    # The kernel creates the store first (this test reads it from another process while the cell runs).
    assert kernel.run("%%track warmup\nready = 2 * 1\n")[0]["content"]["status"] == "ok"
    msg_id = kernel.send(
        "%%track long\nimport time, jupyter_tracking as jt\nfor step in range(600):\n"
        "    jt.log(step=step, loss=1 / (step + 1))\n    time.sleep(0.05)\n"
    )
    client = store_client(project)
    deadline = time.monotonic() + 90
    logged = 0
    while time.monotonic() < deadline and logged < 10:  # interrupt while it is training
        time.sleep(0.3)
        runs = runs_of(project, "interrupts")
        logged = len(client.get_metric_history(runs[-1].info.run_id, "loss")) if len(runs) == 2 else 0
    kernel.manager.interrupt_kernel()
    reply = kernel.reply(msg_id)
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    assert kernel.run("%%track after\nvalue = 2 * 3\n")[0]["content"]["status"] == "ok"
    assert kernel.run("import mlflow\nassert mlflow.active_run() is None")[0]["content"]["status"] == "ok"
    _, killed, after = runs_of(project, "interrupts")
    assert killed.info.status == "KILLED" and after.info.status == "FINISHED"
    history = client.get_metric_history(killed.info.run_id, "loss")
    assert 10 <= len(history) < 600  # what was logged before the interrupt is kept
    assert sorted(m.step for m in history) == list(range(len(history)))


@pytest.mark.parametrize("cell", ["%%track\nraise SystemExit(3)\n"])
def test_system_exit_in_a_cell_is_a_failed_run(project, cell):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_tracking\n%track config --experiment exits"),
        nbformat.v4.new_code_cell(cell),
        nbformat.v4.new_code_cell("import mlflow\nleft_active = mlflow.active_run()\nleft_active"),
    ]
    path = project / "notebooks" / "exits.ipynb"
    client = NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    [run] = runs_of(project, "exits")
    assert run.info.status == "FAILED"
    assert notebook.cells[2].outputs == []  # `left_active` is None: nothing displayed
