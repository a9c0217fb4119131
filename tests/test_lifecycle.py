"""The run lifecycle under the events that used to leave runs RUNNING or duplicated (issue: every run closed
exactly once): refused writes, the cell's own MLflow runs, bad points, threads, a full disk, a read-only store,
spool delivery from two processes at once. Real IPython shell, real SQLite stores, read back with MlflowClient.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from mlflow import MlflowClient

from jupyter_tracking import spool
from tests.stores import runs_of as _runs_of
from tests.stores import store_client

EXPERIMENT = "lifecycle"
REPO = Path(__file__).resolve().parents[1]


def runs_of(project: Path):
    return _runs_of(project, EXPERIMENT)


def run_ok(shell, source: str):
    result = shell.run_cell(source)
    assert result.error_before_exec is None and result.error_in_exec is None, result
    return result


def assert_closed_once(project: Path, expected: int) -> list:
    runs = runs_of(project)
    assert len(runs) == expected, [r.info.run_name for r in runs]
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    return runs


def test_autolog_changing_a_captured_param_keeps_both_and_closes_the_run(shell, project, capsys):
    run_ok(shell, "from sklearn.datasets import make_classification\n"
                  "from sklearn.ensemble import GradientBoostingClassifier\n"
                  "X, y = make_classification(n_samples=120, random_state=0)\nmax_depth = 3")
    run_ok(shell, "%%track gbm --autolog --no-live\n"
                  "model = GradientBoostingClassifier(n_estimators=5, max_depth=max_depth - 1).fit(X, y)\n"
                  "train_acc = model.score(X, y)\n")
    captured = capsys.readouterr()
    [run] = assert_closed_once(project, 1)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["max_depth"] == "2"  # what autolog logged first stays
    assert params["max_depth.captured"] == "3"  # ours, under a derived key
    assert "train_acc" in run.data.metrics and "mlflow.source.name" in run.data.tags
    client = store_client(project)
    assert "cell" in [a.path for a in client.list_artifacts(run.info.run_id)]
    assert spool.pending() == []
    assert "unreachable" not in captured.err and "cannot reach" not in captured.err
    assert "max_depth (kept as max_depth.captured)" in captured.err
    assert "max_depth=2" in captured.out and "max_depth.captured=3" in captured.out  # the card shows both


def test_the_cells_own_mlflow_runs_are_children_of_the_tracked_run(shell, project):
    run_ok(shell, "%%track outer --no-live\nimport mlflow\n"
                  "tracked = mlflow.active_run().info.run_id\n"
                  "with mlflow.start_run(run_name='inner'):\n    mlflow.log_metric('inner_m', 1.5)\n"
                  "left_open = mlflow.start_run(run_name='left-open').info.run_id\n"
                  "mlflow.log_param('p_in_child', 7)\nresult = 1\n")
    client = store_client(project)
    runs = {run.info.run_name: run for run in runs_of(project)}
    assert set(runs) == {"outer", "inner", "left-open"}
    outer = runs["outer"]
    assert shell.user_ns["tracked"] == outer.info.run_id  # mlflow.active_run() in the cell is the tracked run
    for name in ("inner", "left-open"):
        child = runs[name]
        assert child.data.tags["mlflow.parentRunId"] == outer.info.run_id
        assert child.info.status == "FINISHED"  # closed by the end of the cell at the latest
    assert runs["inner"].data.metrics == {"inner_m": 1.5}
    assert runs["left-open"].data.params == {"p_in_child": "7"}
    assert "inner_m" not in outer.data.metrics
    import mlflow

    assert mlflow.active_run() is None
    card = client.get_run(outer.info.run_id)
    assert card.info.status == "FINISHED"


def test_a_step_the_store_cannot_hold_is_refused_at_jt_log_with_one_warning(shell, project, capsys):
    run_ok(shell, "%%track bigstep --no-live\nimport jupyter_tracking as jt\n"
                  "for s in range(5):\n    jt.log(step=s, loss=1.0 / (s + 1))\n"
                  "jt.log(step=10**30, loss=0.0)\njt.log(step=2**63, loss=0.0)\njt.log(step=float('inf'), loss=0.0)\n"
                  "jt.log(step=5, loss='not a number')\njt.log(step=6.0, loss=0.1)\n")
    err = capsys.readouterr().err
    [run] = assert_closed_once(project, 1)
    assert run.info.status == "FINISHED"
    history = store_client(project).get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == [0, 1, 2, 3, 4, 6]
    assert err.count("beyond the 64-bit steps") == 1 and "not a whole number" in err and "not a number" in err
    assert spool.pending() == []


def test_points_from_a_thread_belong_to_the_run_of_the_cell_that_started_it(shell, project, capsys):
    run_ok(shell, "import threading, time\nimport jupyter_tracking as jt\nstarted = threading.Event()\n"
                  "def loader():\n    for i in range(30):\n        jt.log(step=i, loader_loss=float(i))\n"
                  "        if i == 4:\n            started.set()\n        time.sleep(0.03)\n")
    run_ok(shell, "%%track first --no-live\nworker = threading.Thread(target=loader)\nworker.start()\n"
                  "started.wait(5)\n")
    run_ok(shell, "%%track second --no-live\nworker.join()\nx = 1\n")
    err = capsys.readouterr().err
    first, second = assert_closed_once(project, 2)
    client = store_client(project)
    in_first = client.get_metric_history(first.info.run_id, "loader_loss")
    assert 5 <= len(in_first) < 30
    assert [m.step for m in sorted(in_first, key=lambda m: m.step)] == list(range(len(in_first)))
    assert client.get_metric_history(second.info.run_id, "loader_loss") == []
    assert err.count("whose tracked cell has ended") == 1


def test_a_run_refused_by_the_store_for_good_is_set_aside_once(shell, project, capsys):
    """A spooled run whose MLflow run no longer exists (deleted meanwhile) cannot be delivered: it is set aside
    with one message, other spooled runs are still delivered, and nothing nags at later cells."""
    folder = spool.spool_dir()
    run_ok(shell, "%%track created --no-live\nx = 1\n")
    client = store_client(project)
    [created] = runs_of(project)
    location_uri = f"sqlite:///{project / 'mlflow.db'}"
    good = spool.SpoolFile({"uri": location_uri, "experiment": EXPERIMENT, "run_id": None, "run_key": "k-good",
                            "run_name": "spooled-good", "start_time": 1, "tags": {spool.RUN_KEY_TAG: "k-good"}})
    good.metrics([("loss", 0.5, 1000, 0), ("loss", 0.4, 1001, 1)])
    from jupyter_tracking.sinks import FinalRecord

    good.finish(FinalRecord([], {"lr": "0.1"}, {}, "FINISHED", 2000))
    gone = spool.SpoolFile({"uri": location_uri, "experiment": EXPERIMENT, "run_id": "0" * 32,
                            "run_name": "deleted-meanwhile", "start_time": 1})
    gone.finish(FinalRecord([], {"lr": "0.2"}, {}, "FINISHED", 2000))
    run_ok(shell, "%track sync")
    captured = capsys.readouterr()
    assert "delivered 1 spooled run(s)" in captured.out
    assert captured.err.count("set aside") == 1 and "deleted-meanwhile" in captured.err
    assert spool.pending() == []
    assert len(list((folder / spool.REFUSED_DIR).glob("*.jsonl"))) == 1
    delivered = [r for r in runs_of(project) if r.info.run_name == "spooled-good"]
    assert len(delivered) == 1 and delivered[0].info.status == "FINISHED"
    assert len(client.get_metric_history(delivered[0].info.run_id, "loss")) == 2
    run_ok(shell, "%%track later --no-live\ny = 2\n")
    assert "spool" not in capsys.readouterr().err
    assert created.info.run_id in {r.info.run_id for r in runs_of(project)}


DELIVERY_SCRIPT = textwrap.dedent("""
    import json, sys
    from jupyter_tracking import spool
    from jupyter_tracking.session import Session
    from jupyter_tracking.store import StoreLocation
    location = StoreLocation(sys.argv[1], "config")
    result = spool.deliver_pending(location, Session())
    print(json.dumps({"delivered": result.delivered, "busy": result.busy, "aside": result.set_aside}))
""")


def test_two_processes_delivering_one_spool_deliver_each_run_exactly_once(project, tmp_path):
    from jupyter_tracking.session import Session
    from jupyter_tracking.sinks import FinalRecord
    from jupyter_tracking.store import StoreLocation, experiment_id_for

    uri = f"sqlite:///{project / 'mlflow.db'}"
    experiment_id_for(StoreLocation(uri, "config"), EXPERIMENT, session=Session())  # the store exists
    for index in range(12):
        key = f"key-{index}"
        entry = spool.SpoolFile({"uri": uri, "experiment": EXPERIMENT, "run_id": None, "run_key": key,
                                 "run_name": f"spooled-{index}", "start_time": 1000 + index,
                                 "tags": {spool.RUN_KEY_TAG: key}})
        for chunk in range(3):
            entry.metrics([("loss", 1.0 / (step + 1), 5000 + step, step) for step in range(chunk * 50, chunk * 50 + 50)])
        entry.finish(FinalRecord([("acc", 0.5, 9000, 0)], {"index": str(index)}, {"t": "v"}, "FINISHED", 9000))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [subprocess.Popen([sys.executable, "-c", DELIVERY_SCRIPT, uri], stdout=subprocess.PIPE, text=True,
                                  env=env) for _ in range(2)]
    results = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in processes]
    delivered = results[0]["delivered"] + results[1]["delivered"]
    assert len(delivered) == len(set(delivered))
    client = MlflowClient(uri)
    runs = runs_of(project)
    assert sorted(r.info.run_name for r in runs) == sorted(f"spooled-{i}" for i in range(12))
    for run in runs:
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "loss")
        assert sorted(m.step for m in history) == list(range(150))  # every point exactly once
        assert run.data.metrics["acc"] == 0.5
    # Whatever one process skipped while the other held it is delivered by the next sync, never twice.
    if spool.pending(uri):
        spool.deliver_pending(StoreLocation(uri, "config"), Session())
    assert spool.pending(uri) == [] and len(runs_of(project)) == 12


def test_a_read_only_store_spools_then_delivers_when_writable_again(shell, project, capsys):
    run_ok(shell, "%%track before --no-live\nx = 1\n")
    database = project / "mlflow.db"
    subprocess.run(["chattr", "+i", str(database)], check=True)  # even root cannot write it now
    try:
        run_ok(shell, "%%track while-read-only --no-live\nimport jupyter_tracking as jt\n"
                      "for s in range(4):\n    jt.log(step=s, loss=1.0 / (s + 1))\nacc = 0.5 + 0.25\n")
        captured = capsys.readouterr()
        assert captured.err.count("is kept in") == 1
        assert "Traceback" not in captured.err and len(captured.err.splitlines()) <= 3
        assert shell.user_ns["acc"] == 0.75
    finally:
        subprocess.run(["chattr", "-i", str(database)], check=True)
    run_ok(shell, "%track sync")
    assert "delivered 1" in capsys.readouterr().out
    runs = assert_closed_once(project, 2)
    late = [r for r in runs if r.info.run_name == "while-read-only"][0]
    assert late.info.status == "FINISHED" and late.data.metrics["acc"] == 0.75
    assert len(store_client(project).get_metric_history(late.info.run_id, "loss")) == 4


DISK_FULL_SCRIPT = textwrap.dedent("""
    import json, os, subprocess, sys
    root = sys.argv[1]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", root], check=True)
    project = os.path.join(root, "proj")
    os.makedirs(os.path.join(project, "notebooks"))
    open(os.path.join(project, "pyproject.toml"), "w").write("")
    os.environ["JUPYTER_TRACKING_SPOOL_DIR"] = os.path.join(root, "spool")  # the spool on the same full disk
    os.chdir(os.path.join(project, "notebooks"))
    from IPython.testing.globalipapp import start_ipython
    shell = start_ipython()
    shell.run_line_magic("load_ext", "jupyter_tracking")
    with open(os.path.join(root, "filler"), "wb") as handle:
        try:
            while True:
                handle.write(b"x" * 65536)
                handle.flush()
        except OSError:
            pass
    result = shell.run_cell("%%track full --no-live\\nimport jupyter_tracking as jt\\n"
                            "for s in range(3):\\n    jt.log(step=s, loss=1.0)\\nanswer = 6 * 7\\n")
    print(json.dumps({"error": repr(result.error_in_exec or result.error_before_exec),
                      "answer": shell.user_ns.get("answer")}))
""")


def test_a_full_disk_never_stops_the_cell_and_says_so_in_a_line(tmp_path):
    """The store and the spool on one full disk (a 2 MB tmpfs in a private mount namespace): the cell runs."""
    root = tmp_path / "disk"
    root.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("JUPYTER_TRACKING_SPOOL_DIR", None)
    done = subprocess.run(["unshare", "--mount", "--map-root-user", sys.executable, "-c", DISK_FULL_SCRIPT, str(root)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome == {"error": "None", "answer": 42}
    ours = [line for line in done.stderr.splitlines() if line.startswith("jupyter_tracking:")]
    assert 1 <= len(ours) <= 3, done.stderr
    assert "Traceback" not in done.stderr and "INSERT" not in done.stderr


def test_store_logging_is_silenced_during_writes_and_restored_after_nested_and_overlapping_blocks():
    import logging
    import threading

    from jupyter_tracking.sinks import quiet_store_logging

    mlflow_logger, sqlalchemy_logger = logging.getLogger("mlflow.store.db.utils"), logging.getLogger("sqlalchemy.pool")
    before = {name: logging.getLogger(name).level for name in quiet_store_logging.LOGGERS}
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    assert sqlalchemy_logger.isEnabledFor(logging.ERROR)  # the child's level cache is filled here
    try:
        entered, release = threading.Event(), threading.Event()

        def other_writer() -> None:
            with quiet_store_logging():
                entered.set()
                release.wait(10)

        with quiet_store_logging():
            # a child logger whose answer was cached before the block is silenced too (the cache was emptied)
            assert not sqlalchemy_logger.isEnabledFor(logging.ERROR)
            assert not mlflow_logger.isEnabledFor(logging.ERROR)
            with quiet_store_logging():
                pass
            assert not mlflow_logger.isEnabledFor(logging.ERROR), "an inner block leaves its outer one silent"
            thread = threading.Thread(target=other_writer)
            thread.start()
            assert entered.wait(10)
        # this thread's block ended while another thread's write goes on: still silent for it
        assert not sqlalchemy_logger.isEnabledFor(logging.ERROR)
        release.set()
        thread.join(10)
        assert sqlalchemy_logger.isEnabledFor(logging.ERROR), "the last block to end restores the levels"
        assert logging.getLogger("sqlalchemy").level == logging.WARNING
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)
