"""Query, best, diff, load and restore logic against a real SQLite MLflow store."""

from __future__ import annotations

import math

import pytest
from mlflow import MlflowClient

from jupyter_tracking import queries
from jupyter_tracking.store import resolve_store
from tests.runs_factory import make_experiment, make_run, sqlite_uri

CODE_A = "lr = 0.1\nmodel = fit(lr)\nval_loss = 0.5\n"
CODE_B = "lr = 0.01\nmodel = fit(lr, epochs=3)\nval_loss = 0.3\n"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(tmp_path))
    location = resolve_store()
    client = MlflowClient(location.uri)
    exp = make_experiment(client, "grid", tmp_path)
    return location, client, exp


@pytest.fixture
def grid_runs(store):
    location, client, exp = store
    ids = {}
    for depth in (1, 2, 3):
        for leaf in (1, 3):
            val_loss = 1.0 / depth + 0.01 * leaf
            ids[(depth, leaf)] = make_run(
                client, exp, name=f"d{depth}-l{leaf}",
                params={"max_depth": depth, "min_leaf": leaf, "criterion": "gini"},
                metrics={"val_loss": val_loss, "test_acc": 0.3 + 0.05 * depth},
                series={"train_loss": [1.0 / (i + depth) for i in range(5)]},
            )
    return location, client, exp, ids


def test_frame_has_params_metrics_and_info_columns(grid_runs):
    location, _, _, ids = grid_runs
    frame = queries.runs_frame("grid", location=location)
    assert len(frame) == 6
    assert set(ids.values()) == set(frame["run_id"])
    for column in ("run_name", "status", "start_time", "duration_s", "params.max_depth", "params.min_leaf",
                   "metrics.val_loss", "metrics.test_acc", "metrics.train_loss"):
        assert column in frame.columns
    row = frame[frame["run_id"] == ids[(2, 3)]].iloc[0]
    assert row["params.max_depth"] == "2"  # params stay strings, as in MLflow
    assert row["metrics.val_loss"] == pytest.approx(0.53)
    assert row["metrics.train_loss"] == pytest.approx(1.0 / 6)  # latest value of the series
    assert row["duration_s"] >= 0
    # Newest first by default, like MLflow.
    assert list(frame["start_time"]) == sorted(frame["start_time"], reverse=True)


def test_filter_uses_mlflow_syntax(grid_runs):
    location, _, _, ids = grid_runs
    frame = queries.runs_frame("grid", filter="params.min_leaf = '3' and metrics.test_acc > 0.44",
                               location=location)
    assert set(frame["run_id"]) == {ids[(3, 3)]}


def test_bad_filter_is_one_line_query_error(grid_runs):
    location = grid_runs[0]
    with pytest.raises(queries.QueryError) as info:
        queries.runs_frame("grid", filter="params.min_leaf === 3 and", location=location)
    assert "\n" not in str(info.value) and str(info.value)


def test_sort_numeric_params_and_metrics(grid_runs):
    location, _, _, ids = grid_runs
    frame = queries.runs_frame("grid", sort="-max_depth", location=location)
    assert list(frame["params.max_depth"])[:2] == ["3", "3"]
    frame = queries.runs_frame("grid", sort="val_loss", location=location)
    assert frame["run_id"].iloc[0] == ids[(3, 1)]
    assert list(frame["metrics.val_loss"]) == sorted(frame["metrics.val_loss"])
    frame = queries.runs_frame("grid", sort="metrics.test_acc DESC", max_results=2, location=location)
    assert len(frame) == 2 and set(frame["params.max_depth"]) == {"3"}
    # A bare name that is a param, with a limit: the store is asked for the right top N.
    frame = queries.runs_frame("grid", sort="-max_depth", max_results=2, location=location)
    assert list(frame["params.max_depth"]) == ["3", "3"]
    with pytest.raises(queries.QueryError):
        queries.runs_frame("grid", sort="nonexistent", location=location)


def test_sort_puts_missing_values_last_and_orders_numbers_numerically(store):
    location, client, exp = store
    for n in (10, 9, 100):
        make_run(client, exp, params={"n": n}, metrics={"m": n})
    make_run(client, exp, params={"other": 1})
    frame = queries.runs_frame("grid", sort="params.n", location=location)
    assert list(frame["params.n"])[:3] == ["9", "10", "100"]
    assert frame["params.n"].iloc[3] is None
    frame = queries.runs_frame("grid", sort="-m", location=location)
    assert list(frame["metrics.m"])[:3] == [100, 10, 9] and math.isnan(frame["metrics.m"].iloc[3])


def test_varying_columns(grid_runs):
    location = grid_runs[0]
    frame = queries.runs_frame("grid", location=location)
    candidates = queries.param_columns(frame) + queries.metric_columns(frame)
    varying = queries.varying_columns(frame, candidates)
    assert "params.criterion" not in varying
    assert {"params.max_depth", "params.min_leaf", "metrics.val_loss"} <= set(varying)
    assert queries.varying_columns(frame.iloc[:1], candidates) == candidates


def test_unknown_experiment_names_the_known_ones(grid_runs):
    with pytest.raises(queries.QueryError, match="grid"):
        queries.runs_frame("nope", location=grid_runs[0])


def test_best_min_and_max_skip_parent_and_failed(store):
    location, client, exp = store
    parent = make_run(client, exp, name="sweep", tags={"jupyter_tracking.grid": '{"a": [1, 2]}'})
    good = make_run(client, exp, name="a1", params={"a": 1}, metrics={"val_loss": 0.2, "acc": 0.9},
                    parent_run_id=parent)
    make_run(client, exp, name="a2", params={"a": 2}, metrics={"val_loss": 0.4, "acc": 0.95}, parent_run_id=parent)
    make_run(client, exp, name="broken", metrics={"val_loss": 0.01, "acc": 0.99}, status="FAILED")
    assert queries.best("val_loss", experiment="grid", location=location).info.run_id == good
    assert queries.best("metrics.acc", mode="max", experiment="grid", location=location).info.run_name == "a2"
    with pytest.raises(queries.QueryError, match="f1"):
        queries.best("f1", experiment="grid", location=location)
    with pytest.raises(queries.QueryError):
        queries.best("acc", mode="largest", experiment="grid", location=location)


def test_best_without_mode_follows_the_goal_rule_and_the_experiment_overrides(store):
    location, client, exp = store
    low = make_run(client, exp, name="low", metrics={"reward": 1.0, "acc": 0.5, "weird": 3.0})
    high = make_run(client, exp, name="high", metrics={"reward": 9.0, "acc": 0.9, "weird": 7.0})
    assert queries.best("reward", experiment="grid", location=location).info.run_id == high
    assert queries.best("acc", experiment="grid", location=location).info.run_id == high
    with pytest.raises(queries.QueryError, match="'weird' improves is unknown: say --max or --min"):
        queries.best("weird", experiment="grid", location=location)
    assert queries.best("weird", "max", experiment="grid", location=location).info.run_id == high
    # An override kept with the experiment (what `%track config --goal` writes) wins over the rule.
    client.set_experiment_tag(exp, "jupyter_tracking.goal.reward", "min")
    client.set_experiment_tag(exp, "jupyter_tracking.goal.weird", "min")
    assert queries.goal_for("reward", "grid", location=location) == "min"
    assert queries.best("reward", experiment="grid", location=location).info.run_id == low
    assert queries.best("weird", experiment="grid", location=location).info.run_id == low
    assert queries.best("reward", "max", experiment="grid", location=location).info.run_id == high


def test_diff_params_metrics_and_code(store):
    location, client, exp = store
    a = make_run(client, exp, name="a", params={"lr": 0.1, "opt": "sgd"}, metrics={"val_loss": 0.5}, code=CODE_A)
    b = make_run(client, exp, name="b", params={"lr": 0.01, "opt": "sgd", "epochs": 3},
                 metrics={"val_loss": 0.3, "acc": 0.8}, code=CODE_B)
    result = queries.diff(a, b, location=location)
    assert ("lr", "0.1", "0.01") in result.changed_params
    assert ("epochs", None, "3") in result.changed_params
    assert ("opt", "sgd", "sgd") not in result.changed_params
    metrics = {k: (x, y) for k, x, y in result.metrics}
    assert metrics["val_loss"] == (0.5, 0.3) and metrics["acc"] == (None, 0.8)
    code = "\n".join(result.code_diff)
    assert "-lr = 0.1" in code and "+lr = 0.01" in code
    text = str(result)
    assert "lr: 0.1 -> 0.01" in text and "-0.2" in text
    data = result.to_dict()
    assert data["metrics"][1]["delta"] == pytest.approx(-0.2)
    # The card's look: changed rows first, the card's number format, deltas coloured by the metric's goal,
    # unchanged rows folded into one line.
    assert [p["key"] for p in data["params"]] == ["epochs", "lr", "opt"]
    assert data["metrics"][1] | {"delta": None} == {
        "key": "val_loss", "a": 0.5, "b": 0.3, "delta": None, "a_text": "0.5000", "b_text": "0.3000",
        "delta_text": "-0.2000", "changed": True, "better": True}
    assert "val_loss: 0.5000 -> 0.3000 (-0.2000)" in text and "same in both: opt" in text
    page = result._repr_html_()
    assert f'<td style="padding:1px 8px;color:{queries.DIFF_GOOD}">-0.2000</td>' in page
    assert "<details" in page and "params opt" in page and "0.500000" not in page
    same = queries.diff(a, a, location=location)
    assert same.code_diff == [] and "same cell code" in str(same)


def test_diff_html_escapes_store_values(store):
    location, client, exp = store
    evil = "<img src=x onerror=alert(1)>"
    a = make_run(client, exp, name=evil, params={"p": evil}, code=f"x = '{evil}'\n")
    b = make_run(client, exp, name="b", params={"p": "1"}, code="x = 1\n")
    page = queries.diff(a, b, location=location)._repr_html_()
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_load_artifacts_and_params(store):
    location, client, exp = store
    model = {"weights": [1.5, 2.5], "kind": "tree"}
    run_id = make_run(client, exp, params={"lr": 0.1, "layers": [64, 32], "opt": "adam", "args.batch": 32},
                      artifacts={"model": model, "scaler": (1, 2)})
    assert queries.artifact_names(run_id, location) == ["model", "scaler"]
    # The factory writes plain pickles with MLflow's client: not this user's signed artifacts.
    with pytest.raises(queries.QueryError, match=f"of run {run_id} is a pickle written by .*--trust"):
        queries.load(run_id, "model", location=location)
    assert queries.load(run_id, "model", location=location, trust=True) == {"model": model}
    everything = queries.load(run_id, location=location, trust=True)
    assert everything["model"] == model and everything["scaler"] == (1, 2)
    assert everything["lr"] == 0.1 and everything["layers"] == [64, 32] and everything["opt"] == "adam"
    assert everything["args"].batch == 32 and everything["args"]["batch"] == 32
    assert queries.load(run_id, "lr", "model", location=location, trust=True) == {"lr": 0.1, "model": model}
    with pytest.raises(queries.QueryError, match="'missing'"):
        queries.load(run_id, "missing", location=location)
    with pytest.raises(queries.QueryError, match="No run"):
        queries.load("0" * 32, location=location)


def test_restore_types_params(store):
    location, client, exp = store
    run_id = make_run(client, exp, params={"lr": 0.1, "depth": 3, "name": "gini", "flag": True, "none": None,
                                           "cfg.a.b": 1, "cfg.c": "x"})
    values = queries.restore(run_id, location=location)
    assert values["lr"] == 0.1 and values["depth"] == 3 and values["name"] == "gini"
    assert values["flag"] is True and values["none"] is None
    assert values["cfg"].a.b == 1 and values["cfg"]["c"] == "x"


def test_metric_history_is_sorted_and_decimated(store):
    location, client, exp = store
    run_id = make_run(client, exp, series={"loss": [float(i) for i in range(5000)]})
    steps, values = queries.metric_history([run_id], "loss", location, max_points=1000)[run_id]
    assert len(steps) <= 1001 and steps[0] == 0 and steps[-1] == 4999
    assert steps == sorted(steps) and values[-1] == 4999.0
