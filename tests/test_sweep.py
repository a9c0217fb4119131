"""Grid sweeps, rerun and the %runs / %track best|load|restore|diff magics in a real IPython shell and kernel,
against a real SQLite store read back with MlflowClient."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from jupyter_tracking import queries, sweep
from jupyter_tracking.session import current_session
from tests.kernels import Kernel
from tests.stores import runs_of

GRID_CELL = """%%track --grid grid
if max_depth == 2 and min_leaf == 3:
    raise ValueError("no good combination")
val_loss = 1.0 / max_depth + min_leaf / 100
test_acc = 1 - val_loss / 2
"""


EXPERIMENT = "sweeps"  # the default experiment of the `shell` fixture (conftest.py)


def all_runs(project: Path, experiment: str = EXPERIMENT):
    return runs_of(project, experiment)


def test_parse_grid_and_combinations():
    grid = sweep.parse_grid({"a": [1, 2], "b": range(3)})
    assert grid == {"a": [1, 2], "b": [0, 1, 2]}
    combos = sweep.combinations(grid)
    assert len(combos) == 6 and combos[0] == {"a": 1, "b": 0} and combos[1] == {"a": 1, "b": 1}
    for bad, message in [([1, 2], "dict of lists"), ({}, "empty"), ({"a": []}, "empty"),
                         ({"not a name": [1]}, "variable name"), ({"a": "abc"}, "list of values"),
                         ({"a": 5}, "list of values")]:
        with pytest.raises(sweep.GridError, match=message):
            sweep.parse_grid(bad)
    assert sweep.parse_best_by("test_acc") == ("test_acc", "max")
    assert sweep.parse_best_by("val_loss") == ("val_loss", "min")
    assert sweep.parse_best_by("score:min") == ("score", "min")
    with pytest.raises(sweep.GridError):
        sweep.parse_best_by("x:sideways")


def test_grid_sweep_children_parent_best_and_a_failing_combination(shell, project, capsys):
    shell.user_ns["grid"] = {"max_depth": [1, 2, 4], "min_leaf": [1, 3]}
    result = shell.run_cell(GRID_CELL)
    assert result.error_in_exec is None and result.error_before_exec is None
    captured = capsys.readouterr()
    assert "combination 4 (max_depth=2, min_leaf=3) failed: ValueError: no good combination" in captured.err
    # A terminal IPython gets one line per combination and the table once at the end.
    assert "[1/6] max_depth=1, min_leaf=1: FINISHED" in captured.err and "[4/6] max_depth=2, min_leaf=3: FAILED" in captured.err
    assert captured.out.count("grid sweep: 6/6 done") == 1 and "1 failed" in captured.out
    assert "ValueError: no good combination" in captured.out  # the error column
    runs = all_runs(project)
    parents = [r for r in runs if queries.GRID_TAG in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 6 and len(runs) == 7
    assert parent.info.status == "FINISHED"
    assert json.loads(parent.data.tags[queries.GRID_TAG]) == {"max_depth": [1, 2, 4], "min_leaf": [1, 3]}
    assert parent.data.metrics == {}  # the parent never copies the children's metrics
    statuses = {(c.data.params["max_depth"], c.data.params["min_leaf"]): c.info.status for c in children}
    assert statuses[("2", "3")] == "FAILED"
    assert sum(s == "FINISHED" for s in statuses.values()) == 5
    best_child = next(c for c in children if c.data.params == {"max_depth": "4", "min_leaf": "1"})
    assert parent.data.tags[queries.BEST_CHILD_TAG] == best_child.info.run_id
    assert parent.data.tags[sweep.BEST_METRIC_TAG] == "val_loss:min"
    assert best_child.data.metrics["val_loss"] == pytest.approx(0.26)
    # best and filters find the child that holds the model, never the parent.
    assert queries.best("val_loss", experiment="sweeps").info.run_id == best_child.info.run_id
    frame = queries.runs_frame("sweeps", filter="params.min_leaf = '3' and metrics.test_acc > 0.6")
    assert set(frame["params.max_depth"]) == {"4"}
    # Each child has the cell code, and runs were not left open.
    assert queries.cell_source(best_child.info.run_id).startswith("if max_depth == 2")
    assert all(r.info.status != "RUNNING" for r in runs)


def test_live_table_state_and_html(shell, project):
    shell.user_ns["g"] = {"a": [1, 2, 3]}
    shell.run_cell("%%track --grid g --best-by score:max\nscore = a * 10\n")
    # The display's contents, rendered the way the sweep shows them at the end.
    parent = next(r for r in all_runs(project) if queries.GRID_TAG in r.data.tags)
    child = queries.get_run(parent.data.tags[queries.BEST_CHILD_TAG])
    assert child.data.params["a"] == "3" and parent.data.tags[sweep.BEST_METRIC_TAG] == "score:max"
    state = sweep.SweepState({"a": ["<b>x</b>", 2]}, [sweep.Row(0, {"a": "<b>x</b>"}, "FINISHED", "r1", 1.0, {"m": 1.0}),
                                                     sweep.Row(1, {"a": 2}, "RUNNING")])
    page = state.to_html()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert 'data-done="1" data-total="2"' in page and "ETA 1.0 s" in state.progress_line()
    assert "1/2 done" in state.to_text()


def test_stop_on_error_stops_and_fails_the_parent(shell, project):
    shell.user_ns["grid"] = {"max_depth": [1, 2, 4], "min_leaf": [1, 3]}
    result = shell.run_cell(GRID_CELL.replace("--grid grid", "--grid grid --stop-on-error"))
    assert isinstance(result.error_in_exec, ValueError)
    runs = all_runs(project)
    parent = next(r for r in runs if queries.GRID_TAG in r.data.tags)
    assert parent.info.status == "FAILED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert [c.info.status for c in children] == ["FINISHED"] * 3 + ["FAILED"]


def test_interrupt_inside_a_combination_kills_child_and_parent(shell, project):
    shell.user_ns["grid"] = {"n": [1, 2, 3, 4]}
    result = shell.run_cell("%%track --grid grid\nif n == 3:\n    raise KeyboardInterrupt\nloss = n / 10\n")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    runs = all_runs(project)
    parent = next(r for r in runs if queries.GRID_TAG in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "KILLED"
    assert [(c.data.params["n"], c.info.status) for c in children] == [("1", "FINISHED"), ("2", "FINISHED"),
                                                                      ("3", "KILLED")]
    assert parent.data.tags[queries.BEST_CHILD_TAG] == children[0].info.run_id


def test_bad_grid_is_a_one_line_usage_error(shell, project):
    with pytest.raises(UsageError, match="could not be evaluated: NameError"):
        shell.run_cell_magic("track", "--grid undefined_name", "x = 1\n")
    shell.user_ns["grid"] = [1, 2]
    with pytest.raises(UsageError, match="dict of lists"):
        shell.run_cell_magic("track", "--grid grid", "x = 1\n")
    with pytest.raises(UsageError, match="go with --grid"):
        shell.run_cell_magic("track", "--stop-on-error", "x = 1\n")
    assert not (project / "mlflow.db").exists() or not all_runs(project)


def test_best_load_restore_diff_rerun_magics(shell, project, capsys):
    for lr in (0.1, 0.01):
        shell.user_ns["lr"] = lr
        result = shell.run_cell(
            "%%track --artifacts model\n"
            "model = {'weights': [lr * 2, lr * 3], 'lr': lr}\n"
            "val_loss = lr * 5\n"
        )
        assert result.error_in_exec is None
    runs = all_runs(project)
    first, second = runs[0].info.run_id, runs[1].info.run_id
    assert runs[0].data.params["lr"] == "0.1"

    best = shell.run_line_magic("track", "best val_loss")
    assert best is None  # shown, not returned as Out
    assert f"({second})" in capsys.readouterr().out

    shell.user_ns.pop("model")
    shell.run_line_magic("track", f"load {second} model")
    assert shell.user_ns["model"] == {"weights": [0.02, 0.03], "lr": 0.01}
    assert f"loaded objects model from run {second}" in capsys.readouterr().out
    with pytest.raises(UsageError, match="no artifact or param 'nothing'"):
        shell.run_line_magic("track", f"load {second} nothing")

    shell.user_ns["lr"] = 123
    shell.run_line_magic("track", f"restore {first}")
    assert shell.user_ns["lr"] == 0.1

    shell.run_line_magic("track", f"diff {first} {second}")
    out = capsys.readouterr().out
    assert "lr: 0.1 -> 0.01" in out and "-model = {'weights'" not in out  # same code: no code diff
    assert "same cell code" in out

    shell.user_ns["lr"] = 999
    shell.run_line_magic("track", f"rerun {first}")
    current_session().run_ends.wait(60)  # its end is written after the magic returns, before the next cell
    new = all_runs(project)[-1]
    assert new.info.run_id not in (first, second)
    assert new.data.tags["rerun_of"] == first and new.data.params["lr"] == "0.1"
    assert new.data.metrics["val_loss"] == pytest.approx(0.5)
    assert queries.cell_source(new.info.run_id) == queries.cell_source(first)
    assert queries.load(new.info.run_id, "model")["model"]["lr"] == 0.1

    with pytest.raises(UsageError, match="No run"):
        shell.run_line_magic("track", "rerun 0123456789abcdef0123456789abcdef")


def test_runs_magic_returns_the_panel(shell, project):
    shell.user_ns["grid"] = {"depth": [1, 2, 3]}
    shell.run_cell("%%track --grid grid\nval_loss = 1 / depth\n")
    panel = shell.run_line_magic("runs", "--filter \"metrics.val_loss < 0.9\" --sort val_loss")
    assert list(panel.df["params.depth"]) == ["3", "2"]
    panel = shell.run_line_magic("runs", "sweeps --max 2 --sort=-val_loss")
    assert list(panel.df["params.depth"]) == ["1", "2"]
    with pytest.raises(UsageError, match="No experiment named 'nope'"):
        shell.run_line_magic("runs", "nope")
    with pytest.raises(UsageError):
        shell.run_line_magic("runs", "--filter \"params.depth ==== 1\"")


def test_rerun_of_a_sweep_parent_runs_the_grid_again(shell, project):
    shell.user_ns["grid"] = {"depth": [1, 2]}
    shell.run_cell("%%track --grid grid\nval_loss = 1 / depth\n")
    parent = next(r for r in all_runs(project) if queries.GRID_TAG in r.data.tags)
    shell.user_ns.pop("grid")
    shell.run_line_magic("track", f"rerun {parent.info.run_id}")
    parents = [r for r in all_runs(project) if queries.GRID_TAG in r.data.tags]
    assert len(parents) == 2 and parents[1].data.tags["rerun_of"] == parent.info.run_id
    children = [r for r in all_runs(project) if r.data.tags.get("mlflow.parentRunId") == parents[1].info.run_id]
    assert sorted(c.data.params["depth"] for c in children) == ["1", "2"]
    assert all("rerun_of" not in c.data.tags for c in children)


def test_names_bound_from_the_store_are_the_interned_names_of_the_code(shell, project):
    """``%track restore``, ``load`` and ``rerun`` bind names whose keys came out of the store: each must be the
    interned string the cell's code looks up, or every top-level read of it compares characters
    (``bound_names.py``)."""
    names = ("width_kept", "weights_kept")
    shell.run_cell("%%track --artifacts weights_kept\nwidth_kept = 16\nweights_kept = [width_kept] * 3\n"
                   "val_loss = 1 / width_kept\n")
    run_id = all_runs(project)[-1].info.run_id

    def bound_keys() -> list[str]:
        return [key for key in shell.user_ns if key in names]

    for command in (f"restore {run_id}", f"load {run_id} weights_kept", f"rerun {run_id}"):
        for name in names:
            shell.user_ns.pop(name, None)
        shell.run_line_magic("track", command)
        current_session().run_ends.wait(60)
        assert bound_keys(), command
        assert all(key is sys.intern(key) for key in bound_keys()), command
    assert shell.user_ns["width_kept"] == 16 and all_runs(project)[-1].data.tags["rerun_of"] == run_id


def test_real_kernel_interrupt_during_a_sweep(project):
    """A real kernel, interrupted with SIGINT while the third combination sleeps."""
    kernel = Kernel(project / "notebooks")  # the project's embedded store, whatever this process's environment
    try:
        # The kernel creates the store first: polling it while MLflow migrates a new database would race.
        kernel.run_ok("%load_ext jupyter_tracking\n%track config --experiment sweeps\n"
                      "from jupyter_tracking import store\n"
                      "store.experiment_id_for(store.resolve_store(), 'sweeps')", timeout=120)
        msg_id = kernel.send("%%track --grid dict(n=[1, 2, 3, 4])\nimport time\nif n == 3:\n    time.sleep(60)\nloss = n\n")
        db = project / "mlflow.db"
        deadline = time.monotonic() + 150
        runs, problem = [], None
        while time.monotonic() < deadline:
            assert not kernel.client.shell_channel.msg_ready(), (
                f"the cell ended before the interrupt: {kernel.client.get_shell_msg()['content']}; runs seen: "
                f"{[(r.info.status, r.data.tags.get(sweep.COMBINATION_TAG)) for r in runs]}; last problem: {problem!r}")
            if db.exists():
                try:
                    runs = all_runs(project)
                except Exception as error:  # noqa: BLE001 - experiment not created yet
                    problem, runs = error, []
                if sum(1 for r in runs if r.info.status == "FINISHED") >= 2 and \
                        any(r.info.status == "RUNNING" and r.data.tags.get(sweep.COMBINATION_TAG) == "2" for r in runs):
                    break
            time.sleep(0.3)
        else:
            pytest.fail(f"the sweep did not reach its third combination: {[(r.info.status, r.data.tags) for r in runs]}")
        time.sleep(0.5)
        kernel.interrupt()
        assert kernel.wait(msg_id, 60).error == "KeyboardInterrupt"
        runs = all_runs(project)
        parent = next(r for r in runs if queries.GRID_TAG in r.data.tags)
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert parent.info.status == "KILLED"
        assert [(c.data.params["n"], c.info.status) for c in children] == [
            ("1", "FINISHED"), ("2", "FINISHED"), ("3", "KILLED")]
    finally:
        kernel.close()
