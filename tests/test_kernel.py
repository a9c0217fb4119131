"""%%track in a real IPython kernel (jupyter_client): cell ids, interrupts, runs never left active."""

from __future__ import annotations

import time

import nbformat
import pytest
from nbclient import NotebookClient

from tests.kernels import Kernel
from tests.stores import runs_of, store_client


@pytest.fixture
def kernel(project):
    running = Kernel(project / "notebooks")
    yield running
    running.close()


def test_runs_of_the_same_cell_are_linked_by_its_id(kernel, project):
    kernel.run_ok("%load_ext jupyter_tracking\n%track config --experiment kernel", "cell-0")
    tracked = "%%track\nepochs = 3\nscore = epochs / 4\n"
    first_count = kernel.run_ok(tracked, "cell-a").reply["content"]["execution_count"]
    kernel.run_ok("epochs = 5", "cell-b")
    kernel.run_ok("%%track\nloss = 1 / epochs\n", "cell-c")
    outputs = kernel.run_ok(tracked.replace("3", "4"), "cell-a").displays  # the same cell, edited and re-run
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
    kernel.run_ok("%load_ext jupyter_tracking\n%track config --experiment interrupts")
    # The kernel creates the store first (this test reads it from another process while the cell runs).
    kernel.run_ok("%%track warmup\nready = 2 * 1\n")
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
    kernel.interrupt()
    assert kernel.wait(msg_id).error == "KeyboardInterrupt"
    kernel.run_ok("%%track after\nvalue = 2 * 3\n")
    kernel.run_ok("import mlflow\nassert mlflow.active_run() is None")
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


def test_a_syntax_error_in_a_tracked_cell_reads_like_pythons_own_and_makes_no_run(kernel, project):
    """Python's own short SyntaxError (the cell, its line, a caret), none of the tracker's frames, no run;
    the same for a sweep (no parent run either)."""
    import re

    kernel.run_ok("%load_ext jupyter_tracking\n%track config --experiment syntax")
    plain = kernel.execute("x = 1\nprint((x)\ny = 2\n")  # an untracked cell, for comparison
    for cell in ("%%track\nx = 1\nprint((x)\ny = 2\n", "%%track --grid dict(a=[1, 2])\nx = 1\nprint((x)\ny = 2\n"):
        done = kernel.execute(cell)
        assert done.status == "error" and done.error == "SyntaxError"
        text = re.sub(r"\x1b\[[0-9;]*m", "", done.traceback)
        assert "magics.py" not in text and "cell.py" not in text and "jupyter_tracking" not in text, text
        assert len(text.splitlines()) <= 5, text
        assert re.search(r"Cell In\[\d+\], line 2\n\s+print\(\(x\)\n\s+\^\nSyntaxError: '\(' was never closed",
                         text), text
        assert text.split("line 2")[1] == re.sub(r"\x1b\[[0-9;]*m", "", plain.traceback).split("line 2")[1]
    assert runs_of(project, "syntax") == []
    kernel.run_ok("%%track\nok = 1\n")  # the kernel goes on tracking
    assert len(runs_of(project, "syntax")) == 1
