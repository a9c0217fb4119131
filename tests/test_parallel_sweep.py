"""Sweeps that outgrow one kernel: ``--jobs N`` (loky worker processes), ``--cluster`` (a real Dask LocalCluster,
into the embedded store and a real ``mlflow server``), Optuna ``--search`` with pruning, interrupts and names
that cannot be shipped. Real kernels, real stores read back with MLflow's own client."""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from IPython.core.error import UsageError
from mlflow import MlflowClient

from jupyter_tracking import parallel, queries, search, sweep
from tests.kernels import Kernel
from tests.stores import runs_of, store_client

EXPERIMENT = "psweeps"

GRID_CELL = """%%track {name} -e {experiment} --grid grid {flags}
import jupyter_tracking as jt
if a == 2 and b == 0.5:
    raise ValueError("a bad pair")
for step in range(3):
    jt.log(step=step, loss=a / (step + 1) + b + len(data) / 1000)
val_loss = a * b + len(counted.path) * 0
"""

SETUP = """%load_ext jupyter_tracking
import os
grid = {{"a": [1, 2, 3], "b": [0.5, 1.0]}}
data = list(range(2000))
class Counted:
    def __init__(self, path):
        self.path = path
    def __setstate__(self, state):
        self.__dict__.update(state)
        with open(self.path, "a") as handle:
            handle.write(f"{{os.getpid()}}\\n")
counted = Counted({path!r})
"""


def children_of(runs: list, parent) -> list:
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def sweep_view(client: MlflowClient, runs: list) -> dict:
    """Per combination: status, params, metrics and the step history of `loss` (what must match across modes)."""
    parent = next(r for r in runs if r.data.tags.get(sweep.SWEEP_TAG) in ("grid", "search"))
    view = {}
    for child in children_of(runs, parent):
        history = [(m.step, m.value) for m in client.get_metric_history(child.info.run_id, "loss")]
        view[(child.data.params["a"], child.data.params["b"])] = (
            child.info.status, child.data.params, child.data.metrics, sorted(history))
    return view


def worker_processes(pid: int) -> list[psutil.Process]:
    """The kernel's child processes that run trials (loky workers, Dask nannies and workers)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            line = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "resource_tracker" not in line:
            found.append(child)
    return found


def test_jobs_2_gives_the_same_children_as_the_sequential_grid(project, tmp_path):
    kernel = Kernel(project / "notebooks")
    try:
        unpickled = tmp_path / "unpickled.txt"
        kernel.run_ok(SETUP.format(path=str(unpickled)), timeout=120)
        kernel.run_ok(GRID_CELL.format(name="seq", experiment="seq", flags=""), timeout=240)
        run = kernel.run_ok(GRID_CELL.format(name="par", experiment="par", flags="--jobs 2"), timeout=240)
        table = run.data[-1]["text/plain"]  # the table under the cell, as it was left
        assert "grid sweep: 6/6 done · 1 failed · 2 local worker processes" in table, table
        assert "trial 3 (a=2, b=0.5) failed: ValueError: a bad pair" in run.stderr
        # Two trials run at once; the next two wait in the workers' queue, QUEUED until a worker takes them.
        tables = [b["text/plain"] for b in run.data if "grid sweep:" in b.get("text/plain", "")]
        running = [sum(" RUNNING" in line for line in t.splitlines()[2:]) for t in tables]
        assert max(running) == 2 and all(n <= 2 for n in running), tables
        client = store_client(project)
        seq, par = runs_of(project, "seq"), runs_of(project, "par")
        assert len(seq) == len(par) == 7
        seq_view, par_view = sweep_view(client, seq), sweep_view(client, par)
        assert seq_view.keys() == par_view.keys() and len(par_view) == 6
        for key in seq_view:
            assert par_view[key] == seq_view[key], key
        assert par_view[("2", "0.5")][0] == "FAILED"
        assert par_view[("3", "1.0")][3] == [(0, pytest.approx(6.0)), (1, pytest.approx(4.5)),
                                              (2, pytest.approx(4.0))]
        parent = next(r for r in par if sweep.GRID_TAG in r.data.tags)
        seq_parent = next(r for r in seq if sweep.GRID_TAG in r.data.tags)
        assert parent.info.status == "FINISHED"
        best = client.get_run(parent.data.tags[queries.BEST_CHILD_TAG])
        seq_best = client.get_run(seq_parent.data.tags[queries.BEST_CHILD_TAG])
        assert best.data.params == seq_best.data.params == {"a": "1", "b": "0.5"}
        failed = next(c for c in children_of(par, parent) if c.info.status == "FAILED")
        traceback = Path(client.download_artifacts(failed.info.run_id, "traceback.txt", str(tmp_path))).read_text()
        assert 'line 3' in traceback and 'raise ValueError("a bad pair")' in traceback, traceback
        assert traceback.rstrip().endswith("ValueError: a bad pair") and "trials.py" not in traceback, traceback
        cell = Path(client.download_artifacts(failed.info.run_id, "cell/cell.py", str(tmp_path))).read_text()
        assert cell.startswith("import jupyter_tracking as jt")
        assert all(r.info.status != "RUNNING" for r in seq + par)
        # The shipped names were unpickled once per worker process, not once per trial.
        pids = unpickled.read_text().split()
        assert 1 <= len(pids) <= 2 and len(set(pids)) == len(pids)
        assert worker_processes(kernel.pid) == []
        # Rerunning the parent runs the grid where it ran: in 2 worker processes again.
        assert parent.data.tags[parallel.ENGINE_TAG] == "--jobs 2"
        rerun = kernel.run_ok(f"%track rerun {parent.info.run_id}", timeout=240)
        assert "2 local worker processes" in rerun.data[-1]["text/plain"], rerun.data
        again = [r for r in runs_of(project, "par") if r.info.run_id not in {p.info.run_id for p in par}]
        new_parent = next(r for r in again if sweep.GRID_TAG in r.data.tags)
        assert new_parent.data.tags[queries.RERUN_TAG] == parent.info.run_id
        assert new_parent.data.tags[parallel.ENGINE_TAG] == "--jobs 2"
        workers = {c.data.tags[parallel.WORKER_TAG].rsplit(":", 1)[1] for c in children_of(again, new_parent)}
        assert len(children_of(again, new_parent)) == 6 and str(kernel.pid) not in workers
        assert worker_processes(kernel.pid) == []
    finally:
        kernel.close()


@pytest.mark.server
def test_dask_local_cluster_into_the_embedded_store_and_a_team_server(project, tmp_path):
    from tests.sharing.team import TeamServer

    server = TeamServer("sqlite:///" + str(tmp_path / "server.db"), tmp_path).start()
    kernel = Kernel(project / "notebooks")
    try:
        kernel.run_ok(SETUP.format(path=str(tmp_path / "unpickled.txt")) +
                      "from dask.distributed import Client, LocalCluster\n"
                      "cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, "
                      "dashboard_address=None)\nclient = Client(cluster)\n", timeout=180)
        run = kernel.run_ok(GRID_CELL.format(name="dask", experiment="dask", flags="--cluster client"), timeout=240)
        assert "Dask at tcp://" in run.data[-1]["text/plain"]
        runs = runs_of(project, "dask")
        view = sweep_view(store_client(project), runs)
        assert len(view) == 6 and sum(v[0] == "FINISHED" for v in view.values()) == 5
        assert view[("1", "1.0")][3] == [(0, pytest.approx(4.0)), (1, pytest.approx(3.5)), (2, pytest.approx(10 / 3))]
        # The same sweep, by scheduler address, into a real mlflow server the workers never see.
        kernel.run_ok(f"%track config --uri {server.url}\naddress = cluster.scheduler_address")
        address = kernel.run_text("print(address)")[1].strip()
        kernel.run_ok(GRID_CELL.format(name="team", experiment="team", flags=f"--cluster {address}"), timeout=240)
        client = MlflowClient(server.url)
        experiment = client.get_experiment_by_name("team")
        team_runs = client.search_runs([experiment.experiment_id])
        team_view = sweep_view(client, team_runs)
        assert {k: v[1:] for k, v in team_view.items()} == {k: v[1:] for k, v in view.items()}
        assert all(r.info.status != "RUNNING" for r in team_runs)
        kernel.run_ok("client.close()\ncluster.close()", timeout=60)
        assert worker_processes(kernel.pid) == []
    finally:
        kernel.close()
        server.stop()


SEARCH_CELL = """%%track tune --search space --trials {trials} --seed 3 --best-by val_loss:min {flags}
import jupyter_tracking as jt
for step in range(6):
    val_loss = (10 + x if x > 0.6 else x) + 1 / (step + 1)
    jt.log(step=step, val_loss=val_loss)
"""


def test_optuna_search_prunes_the_bad_region_and_continues_its_study(shell, project, capsys):
    import optuna

    shell.user_ns["space"] = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    result = shell.run_cell(SEARCH_CELL.format(trials=12, flags=""))
    assert result.error_in_exec is None and result.error_before_exec is None
    out = capsys.readouterr().out
    assert "search sweep: 12/12 done" in out and "pruned" in out
    runs = runs_of(project, EXPERIMENT)
    parent = next(r for r in runs if r.data.tags.get(sweep.SWEEP_TAG) == "search")
    children = children_of(runs, parent)
    assert len(children) == 12 and parent.info.status == "FINISHED"
    pruned = [c for c in children if parallel.PRUNED_TAG in c.data.tags]
    client = store_client(project)
    steps = {c.info.run_id: len(client.get_metric_history(c.info.run_id, "val_loss")) for c in children}
    seen = [(round(float(c.data.params["x"]), 3), parallel.PRUNED_TAG in c.data.tags, steps[c.info.run_id])
            for c in children]
    assert any(float(c.data.params["x"]) > 0.6 for c in pruned), seen  # the bad region is pruned
    assert all(steps[c.info.run_id] < 6 for c in pruned), seen  # stopped early
    assert all(steps[c.info.run_id] == 6 for c in children if c not in pruned), seen
    assert all(c.info.status == "FINISHED" for c in children)  # pruned is not FAILED
    assert parent.data.tags[search.SAMPLER_TAG] == "TPESampler(seed=3)"
    assert json.loads(parent.data.tags[search.SEARCH_TAG])["x"]["name"] == "FloatDistribution"
    best = queries.get_run(parent.data.tags[queries.BEST_CHILD_TAG])
    assert best.data.metrics["val_loss"] == min(c.data.metrics["val_loss"] for c in children
                                                if parallel.PRUNED_TAG not in c.data.tags)
    assert json.loads(parent.data.tags[search.BEST_TRIAL_TAG])["params"]["x"] == float(best.data.params["x"])
    storage = project / "optuna.db"
    assert storage.exists()
    # The cell again, its trials in 2 worker processes: the study continues, it does not restart, and the
    # workers report the objective's intermediate values to it.
    result = shell.run_cell(SEARCH_CELL.format(trials=4, flags="--jobs 2"))
    assert result.error_in_exec is None
    study = optuna.load_study(study_name=parent.data.tags[search.STUDY_TAG], storage=f"sqlite:///{storage}")
    states = [t.state for t in study.trials]
    assert len(states) == 16 and optuna.trial.TrialState.RUNNING not in states
    for trial in study.trials[12:]:
        assert trial.intermediate_values and (len(trial.intermediate_values) == 6 or
                                              trial.state == optuna.trial.TrialState.PRUNED), trial
    second = [r for r in runs_of(project, EXPERIMENT) if r.data.tags.get(sweep.SWEEP_TAG) == "search"][-1]
    trial_tags = {int(c.data.tags[search.TRIAL_TAG]) for c in children_of(runs_of(project, EXPERIMENT), second)}
    assert trial_tags == {12, 13, 14, 15}
    # Rerunning a search's parent reruns its space as a new search.
    shell.run_line_magic("track", f"rerun {second.info.run_id}")
    parents = [r for r in runs_of(project, EXPERIMENT) if r.data.tags.get(sweep.SWEEP_TAG) == "search"]
    assert len(parents) == 3 and parents[-1].data.tags["rerun_of"] == second.info.run_id
    assert len(children_of(runs_of(project, EXPERIMENT), parents[-1])) == 4
    assert parents[-1].data.tags[search.STUDY_TAG] != parent.data.tags[search.STUDY_TAG]


def test_interrupt_during_a_parallel_sweep_leaves_no_running_run_and_no_worker(project):
    kernel = Kernel(project / "notebooks")
    try:
        kernel.run_ok("%load_ext jupyter_tracking\n%track config --experiment isweep\n"
                      "from jupyter_tracking import store\n"
                      "store.experiment_id_for(store.resolve_store(), 'isweep')", timeout=120)
        msg_id = kernel.send("%%track --grid dict(n=[1, 2, 3, 4, 5, 6]) --jobs 2\nimport time\n"
                             "if n >= 3:\n    time.sleep(120)\nloss = n\n")
        deadline = time.monotonic() + 150
        runs: list = []
        while time.monotonic() < deadline:
            assert not kernel.client.shell_channel.msg_ready(), "the cell ended before the interrupt"
            runs = runs_of(project, "isweep")
            if sum(1 for r in runs if r.info.status == "FINISHED") >= 2 and len(worker_processes(kernel.pid)) >= 2:
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"the sweep did not reach its third trial: {[(r.info.status, r.data.tags) for r in runs]}")
        time.sleep(1.0)
        kernel.interrupt()
        assert kernel.wait(msg_id, 60).error == "KeyboardInterrupt"
        runs = runs_of(project, "isweep")
        parent = next(r for r in runs if queries.GRID_TAG in r.data.tags)
        children = {int(c.data.params["n"]): c.info.status for c in children_of(runs, parent)}
        assert parent.info.status == "KILLED"
        assert children == {1: "FINISHED", 2: "FINISHED", 3: "KILLED", 4: "KILLED"}
        assert all(r.info.status != "RUNNING" for r in runs)
        assert worker_processes(kernel.pid) == []
    finally:
        kernel.close()


def test_a_name_that_cannot_be_shipped_is_one_line_before_anything_starts(shell, project):
    import threading

    shell.user_ns["lock"] = threading.Lock()
    shell.user_ns["grid"] = {"n": [1, 2]}
    with pytest.raises(UsageError) as caught:
        shell.run_cell_magic("track", "--grid grid --jobs 2", "with lock:\n    loss = n\n")
    message = str(caught.value)
    assert "\n" not in message and "cannot send `lock` (lock: TypeError) to the workers" in message
    assert not (project / "mlflow.db").exists() or not runs_of(project, EXPERIMENT)
    assert worker_processes(psutil.Process().pid) == [] or all(
        "loky" not in " ".join(p.cmdline()) for p in worker_processes(psutil.Process().pid))
    with pytest.raises(UsageError, match="go with --grid EXPR or --search EXPR"):
        shell.run_cell_magic("track", "--jobs 2", "x = 1\n")
    with pytest.raises(UsageError, match="--search needs --trials N"):
        shell.run_cell_magic("track", "--search {'x': [1, 2]}", "loss = x\n")
    with pytest.raises(UsageError, match="must be an Optuna distribution or a non-empty list"):
        shell.run_cell_magic("track", "--search {'x': 3} --trials 2", "loss = x\n")
    with pytest.raises(parallel.SweepSetupError, match=r"^no_such_package_jt is not installed: pip install "):
        parallel.require("no_such_package_jt")


def test_jobs_artifacts_come_back_and_stop_on_error_cancels_the_rest(shell, project):
    shell.user_ns["grid"] = {"n": [1, 2, 3, 4, 5, 6]}
    result = shell.run_cell("%%track --grid grid --jobs 2 --artifacts model\nmodel = {'weights': [n, n * 2]}\n"
                            "loss = n / 10\n")
    assert result.error_in_exec is None
    runs = runs_of(project, EXPERIMENT)
    parent = next(r for r in runs if queries.GRID_TAG in r.data.tags)
    child = next(c for c in children_of(runs, parent) if c.data.params["n"] == "4")
    assert queries.load(child.info.run_id, "model")["model"] == {"weights": [4, 8]}
    assert not [key for key in [*child.data.metrics, *child.data.params] if key.startswith("model")]  # a file only
    assert float(child.data.tags[parallel.TRIAL_SECONDS_TAG]) >= 0 and ":" in child.data.tags[parallel.WORKER_TAG]
    # --stop-on-error: the first failure stops the sweep; what was still running is KILLED, the rest never runs.
    # Trial 2 fails after trial 1 (no sleep) has surely finished, even on a loaded machine.
    result = shell.run_cell("%%track --grid grid --jobs 2 --stop-on-error\nimport time\nif n == 2:\n"
                            "    time.sleep(3)\n    raise ValueError('stop here')\ntime.sleep(0 if n == 1 else 30)\n"
                            "loss = n\n")
    assert isinstance(result.error_in_exec, RuntimeError) and "trial 2 failed: ValueError: stop here" in str(
        result.error_in_exec)
    runs = runs_of(project, EXPERIMENT)
    parent = [r for r in runs if queries.GRID_TAG in r.data.tags][-1]
    statuses = {c.data.params["n"]: c.info.status for c in children_of(runs, parent)}
    assert parent.info.status == "FAILED" and statuses["1"] == "FINISHED" and statuses["2"] == "FAILED"
    assert set(statuses) <= {"1", "2", "3", "4"} and all(statuses[n] == "KILLED" for n in statuses if n in "34")
    assert "6" not in statuses and all(r.info.status != "RUNNING" for r in runs)


FOREIGN_KEYS_CELL = """import sys
foreign_keys = len([key for key in globals() if key in ("seed", "rate", "total") and key is not sys.intern(key)])
total = 0
for step in range(4):
    total += rate * seed
"""


@pytest.mark.parametrize("shipped_as", ["loky initializer", "Dask names", "kernel dict"])
def test_a_trial_runs_against_the_interned_names_of_its_code(shipped_as, monkeypatch):
    """A trial's values and shipped names reach the worker unpickled: equal strings, but not the interned names
    of the cell's code, and a top-level loop reading them compares characters at each step (``bound_names.py``).
    The trial's namespace is keyed by the interned names. ``total`` is left over from an earlier run of the cell,
    so it is shipped too."""
    import pickle

    import cloudpickle

    from jupyter_tracking import trials

    names = pickle.loads(pickle.dumps({"rate": 0.5, "total": 99}))
    bindings = pickle.loads(pickle.dumps({"seed": 3}))
    foreign = [key for key in [*names, *bindings] if key is not sys.intern(key)]
    assert sorted(foreign) == ["rate", "seed", "total"]  # what a worker receives
    spec = trials.TrialSpec(0, bindings, FOREIGN_KEYS_CELL)
    if shipped_as == "loky initializer":
        monkeypatch.setattr(trials, "_shipped", {})
        trials.init_worker({name: cloudpickle.dumps(value) for name, value in names.items()})
        record = trials.run_trial(spec)
    elif shipped_as == "Dask names":
        record = trials.run_trial(spec, trials._Names(names))
    else:
        record = trials.run_trial(spec, names)
    assert record.status == "FINISHED", record.traceback
    assert record.metrics["foreign_keys"] == 0 and record.metrics["total"] == pytest.approx(6.0)


def test_the_table_counts_workers_and_pruned_trials():
    rows = [sweep.Row(0, {"x": 1}, "FINISHED", "r1", 2.0, {"m": 1.0}), sweep.Row(1, {"x": 2}, "PRUNED", "r2", 1.0),
            sweep.Row(2, {"x": 3}, "RUNNING"), sweep.Row(3, {"x": 4}, "QUEUED")]
    state = sweep.SweepState({"x": []}, rows, workers=2, planned=6, kind="search", where="2 local worker processes")
    line = state.progress_line()
    assert "2/6 done" in line and "1 pruned" in line and "2 local worker processes" in line
    assert state.eta_seconds() == pytest.approx(1.5 * 2)  # 4 left, 2 at a time, 1.5 s each
    assert "search sweep: 2/6 done" in state.to_text() and 'data-total="6"' in state.to_html()


def test_cluster_local_starts_and_closes_its_own_dask_cluster(shell, project):
    shell.user_ns["grid"] = {"n": [1, 2, 3]}
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = shell.run_cell("%%track --grid grid --cluster local --jobs 2\nloss = n / 10\n")
    assert result.error_in_exec is None
    runs = runs_of(project, EXPERIMENT)
    parent = next(r for r in runs if queries.GRID_TAG in r.data.tags)
    children = children_of(runs, parent)
    assert sorted(c.data.metrics["loss"] for c in children) == [0.1, 0.2, pytest.approx(0.3)]
    assert all(c.info.status == "FINISHED" for c in children) and parent.info.status == "FINISHED"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = [p for p in worker_processes(psutil.Process().pid) if p.pid not in before and p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE]  # multiprocessing's resource tracker is no worker
        if not left:
            break
        time.sleep(0.5)
    assert not left, [" ".join(p.cmdline()) for p in left]


def test_cluster_local_runs_its_workers_with_the_sweep_settings():
    """--cluster local: the workers do not profile the trials and wake their event loop less often (their
    settings are Dask's defaults otherwise); the kernel's own Dask settings are left as they were."""
    import dask

    engine = parallel.DaskEngine({}, {}, local_workers=1)
    try:
        seen = engine.client.run(lambda: {key: dask.config.get(key) for key in parallel.SWEEP_CLUSTER_CONFIG})
    finally:
        engine.close()
    assert list(seen.values()) == [parallel.SWEEP_CLUSTER_CONFIG]
    assert dask.config.get("distributed.worker.profile.enabled") is True


def test_the_engine_tag_reads_back_as_the_choice_it_was():
    for choice in (parallel.EngineChoice(2), parallel.EngineChoice(-1), parallel.EngineChoice(None, "tcp://h:8786"),
                   parallel.EngineChoice(3, "local"), parallel.EngineChoice(None, "client")):
        assert parallel.EngineChoice.from_tag(choice.to_tag()) == choice
    for text in (None, "", "--jobs", "--jobs two", "--threads 2", "--jobs 2 --cluster"):
        assert parallel.EngineChoice.from_tag(text) is None


STREAM_CELL = """%%track -e streamed --grid grid {flags}
import time
import jupyter_tracking as jt
for step in range(32):  # 8 s: the workers and the parent run start first, slowly on a loaded machine
    time.sleep(0.25)
    jt.log(step=step, loss=1.0 / (step + 1) + lr)
"""


def test_running_trials_stream_their_latest_step_to_the_table(project):
    """While trials run in the kernel one after the other, on local worker processes or on a Dask cluster, the
    table under the cell shows each running trial's latest step and values (not only the trials that finished)."""
    folders_before = set(Path(tempfile.gettempdir()).glob("jt-sweep-progress-*"))
    kernel = Kernel(project / "notebooks")
    try:
        kernel.run_ok('%load_ext jupyter_tracking\ngrid = {"lr": [0.0, 0.5]}\n', timeout=120)
        # In the kernel: its run's step series; loky: a file per trial; Dask: an event topic.
        for flags in ("", "--jobs 2", "--cluster local"):
            run = kernel.run_ok(STREAM_CELL.format(flags=flags), timeout=240)
            tables = [bundle["text/plain"] for bundle in run.data if "sweep:" in bundle.get("text/plain", "")]
            running = [t for t in tables if re.search(r"RUNNING +step", t)]
            assert running, (flags, tables)
            # A running row shows its step and its latest loss (lr 0.5: 1/(step+1) + 0.5) as the trial logged it.
            # (The second combination's row: "2  0.5  RUNNING  step N  loss", once it has a step to show.)
            row = next(line for t in running for line in t.splitlines()
                       if line.split()[:3] == ["2", "0.5", "RUNNING"] and " step " in line)
            step = int(row.split("step")[1].split()[0])
            assert 0 <= step < 31 and f"{1.0 / (step + 1) + 0.5:.5g}" in row, row
            assert "0/2 done" in running[0] and "2/2 done" in tables[-1] and "step" not in tables[-1]
            assert "opacity:0.75" in next(b["text/html"] for b in run.data
                                          if re.search(r"RUNNING +step", b.get("text/plain", "")))
        assert set(Path(tempfile.gettempdir()).glob("jt-sweep-progress-*")) <= folders_before  # removed at the end
        assert worker_processes(kernel.pid) == []
    finally:
        kernel.close()


def test_progress_messages_reach_rows_in_the_kernel_itself(tmp_path):
    """The channels and the table's side: a file channel written by one process and read by the kernel, a call
    channel for trials in the kernel, and only running rows take a message."""
    from jupyter_tracking import trials

    channel = trials.FileProgress(str(tmp_path))
    log = trials.StepLog(progress=channel, index=1)
    log.log_step(0, {"loss": 0.9, "acc": float("nan")})
    log.log_step(1, {"loss": 0.8})  # within PROGRESS_EVERY of the first: not sent yet
    assert channel.read([1]) == {1: {"index": 1, "step": 0, "values": {"loss": 0.9}}}
    (tmp_path / "trial-7.json").write_text("{half a mess")  # replaced while read: skipped, not raised
    assert set(channel.read([1, 2, 7])) == {1} and channel.read([2]) == {}
    state = sweep.SweepState({"x": [1, 2]}, [sweep.Row(0, {"x": 1}, "FINISHED", metrics={"loss": 0.1}),
                                              sweep.Row(1, {"x": 2}, "RUNNING")])
    assert state.apply_progress(channel.read([1])) and not state.apply_progress(channel.read([1]))
    assert state.rows[1].step == 0 and state.rows[1].live == {"loss": 0.9}
    assert state.apply_progress({0: {"index": 0, "step": 5, "values": {"loss": 9.0}}}) is False  # finished
    assert "RUNNING   step 0  0.9" in state.to_text()
    heard = []
    engine = parallel.InlineEngine({})
    engine.on_progress = heard.append
    trials.StepLog(progress=engine.channel, index=3).log_step(None, {"loss": 2.0})
    assert heard == [{3: {"index": 3, "step": 0, "values": {"loss": 2.0}}}]
    broken = trials.StepLog(progress=trials.FileProgress(str(tmp_path / "gone") + "/\0bad"), index=0)
    broken.log_step(0, {"loss": 1.0})  # a channel that fails never fails the trial
    assert broken.points == [("loss", 1.0, broken.points[0][2], 0)]
