"""A ``%%track`` cell's run end is written after the cell returns (run_ends.py): the next cell always sees the
run closed, a kernel killed before the write leaves a journal entry that the next kernel completes exactly once,
and cells whose end must be known at once (autolog, ``jt.track()``, the cell's own MLflow calls) write it now.
"""

from __future__ import annotations

import threading

from jupyter_tracking import spool
from jupyter_tracking.recovery import ENDED_BY as recovery_tag
from jupyter_tracking.run_ends import RunEnds, settle
from tests.kernels import Kernel
from tests.stores import runs_of, store_client

EXPERIMENT = "ends"


def test_run_ends_are_written_in_order_and_wait_is_the_barrier():
    ends = RunEnds()
    done: list[int] = []
    gate = threading.Event()

    def job(number: int) -> None:
        gate.wait(5)
        done.append(number)

    for number in range(3):
        ends.submit(lambda number=number: job(number))
    assert ends.pending == 3 and not ends.wait(0.05)  # held at the gate: nothing written yet
    gate.set()
    assert ends.wait(5)
    assert done == [0, 1, 2] and ends.pending == 0


def test_what_a_background_write_says_is_printed_once_before_the_next_cell(capsys):
    ends = RunEnds()

    class Holder:
        run_ends = ends

    ends.submit(lambda: ends.defer("run 'x': the store refused part of this run"))
    ends.submit(lambda: 1 / 0)  # a failing job never stops the thread
    settle(Holder())
    settle(Holder())
    err = capsys.readouterr().err.splitlines()
    assert err == ["jupyter_tracking: run 'x': the store refused part of this run",
                   "jupyter_tracking: a run's end could not be written (ZeroDivisionError: division by zero)"]


def test_the_next_cell_sees_the_run_closed_and_its_journal_gone(project):
    kernel = Kernel(project / "notebooks", load_ext=True)
    try:
        kernel.run_ok(f"%track config --experiment {EXPERIMENT}")
        first = kernel.send("%%track quick --no-live\nlr = 0.25\nacc = lr * 2\n")
        assert kernel.wait(first, run_ends=False).status == "ok"
        # No waiting here: the kernel's next cell waits for the run end itself.
        execution = kernel.run_ok(
            "import mlflow\nfrom jupyter_tracking import spool\nfrom jupyter_tracking.session import current_session\n"
            "run = mlflow.get_run(current_session().last_summary.run_id)\n"
            "print(run.info.status, run.data.metrics, run.data.params, len(spool.pending()))\n")
    finally:
        kernel.close()
    assert "FINISHED {'acc': 0.5} {'lr': '0.25'} 0" in execution.stdout, execution.text


DIES_BEFORE_ITS_RUN_END = """
import os, sys
from IPython.core.interactiveshell import InteractiveShell
from jupyter_tracking.session import current_session

shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "jupyter_tracking")
shell.run_cell("%track config --experiment ends")
assert shell.run_cell("%%track warmup --no-live\\nx = 1\\n").success
held = []  # the process dies before its run-ends thread writes (the jobs stay alive, as in a killed process)
current_session().run_ends.submit = held.append
result = shell.run_cell(
    "%%track doomed --no-live\\nimport jupyter_tracking as jt\\nlr = 0.05\\n"
    "for step in range(5):\\n    jt.log(step=step, loss=1 / (step + 1))\\nacc = lr * 15\\n")
assert result.success
print(current_session().last_summary.run_id, flush=True)
os._exit(0)  # as SIGKILL would: no exit handlers, temporary files left where they are
"""


def test_a_process_dead_before_its_run_end_is_written_leaves_it_to_the_next_kernel(project):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", DIES_BEFORE_ITS_RUN_END], cwd=project / "notebooks",
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[-1]
    [entry] = [path for path in spool.pending() if spool.is_journal(path)]
    assert store_client(project).get_run(run_id).info.status == "RUNNING"

    kernel = Kernel(project / "notebooks")
    try:
        printed = kernel.load_ext_printing("completed")
        again = kernel.run_ok("%track sync").text
    finally:
        kernel.close()
    assert f"completed 1 run(s) whose kernel ended before their end was written: {run_id}" in printed
    assert "ended 1 run" not in printed  # not mistaken for a dead kernel's unfinished run
    client = store_client(project)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and recovery_tag not in run.data.tags
    assert run.data.params["lr"] == "0.05" and abs(run.data.metrics["acc"] - 0.75) < 1e-9
    assert sorted(point.step for point in client.get_metric_history(run_id, "loss")) == [0, 1, 2, 3, 4]
    assert "cell" in [item.path for item in client.list_artifacts(run_id)]
    assert "jupyter_tracking.lost_files" not in run.data.tags
    assert not entry.exists() and "delivered" not in again
    assert [r.info.run_name for r in runs_of(project, EXPERIMENT)] == ["warmup", "doomed"]  # each once


def test_autolog_api_blocks_and_the_cells_own_mlflow_calls_write_the_end_before_the_cell_returns(shell, project):
    result = shell.run_cell(
        "import mlflow, jupyter_tracking as jt\nfrom jupyter_tracking import spool\n"
        "with jt.track('block') as run:\n    acc = 0.5\n"
        "block_status = mlflow.get_run(run.run_id).info.status\n")
    assert result.success and shell.user_ns["block_status"] == "FINISHED"
    from jupyter_tracking.session import current_session

    shell.run_cell("%%track own --no-live\nimport mlflow\nmlflow.log_param('manual', 7)\nacc = 0.6\n")
    # The fixture waits for run ends after each cell; nothing was handed over for this one.
    assert current_session().run_ends.last_seconds is None, "the cell's own MLflow calls: end written at once"
    shell.run_cell("%%track quiet --no-live\nacc = 0.7\n")
    assert current_session().run_ends.last_seconds is not None  # a plain tracked cell: written after the cell
    assert spool.pending() == []
    statuses = {run.info.run_name: run.info.status for run in runs_of(project, EXPERIMENT)}
    assert statuses == {"block": "FINISHED", "own": "FINISHED", "quiet": "FINISHED"}
