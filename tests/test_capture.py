"""The capture rules on their own: what a cell reads and binds, and how values are classified."""

from __future__ import annotations

import argparse
import dataclasses
import enum
from pathlib import Path

import numpy as np
import pytest

from jupyter_tracking.capture import (
    Capture,
    CaptureRules,
    analyze,
    as_series,
    flatten_metrics,
    flatten_params,
)
from jupyter_tracking.limits import MAX_KEY_LENGTH, MAX_PARAM_LENGTH, TRUNCATION_MARKER, clean_key, clean_value
from jupyter_tracking.secret_filter import is_secret_name, is_secret_value, redact_text


def test_reads_before_binding_are_inputs_and_rebinding_is_not():
    analysis = analyze("x = epochs * 2\nacc = compute(x)\nprint(acc)\n")
    assert "epochs" in analysis.read_first
    assert "compute" in analysis.read_first
    assert "acc" not in analysis.read_first  # read after the cell bound it
    assert analysis.bound == {"x", "acc"}


def test_literal_bindings_and_accumulators():
    analysis = analyze(
        "lr = 0.1\nlayers = [64, 32]\nneg = -3\nargs = Namespace(lr=0.1, opt='adam')\n"
        "losses = []\nbest = 0.0\nbest = max(best, 2)\ndata = fh.read()\np = Path('x')\n"
    )
    assert analysis.literal_bound == {"lr", "layers", "neg", "args", "p"}
    assert "losses" in analysis.bound and "losses" not in analysis.literal_bound
    assert "best" not in analysis.literal_bound  # rebound from a computation


def test_loop_with_import_and_def_targets_are_not_metrics():
    analysis = analyze(
        "import numpy as np\nfrom math import pi\nfor epoch in range(3):\n    loss = epoch\n"
        "with open('f') as fh:\n    pass\ndef f():\n    pass\nclass C:\n    pass\n"
        "try:\n    pass\nexcept Exception as err:\n    pass\n"
    )
    assert {"np", "pi", "epoch", "fh", "f", "C", "err"} <= analysis.not_metrics
    assert "loss" not in analysis.not_metrics


def test_comprehension_targets_stay_local_and_walrus_binds_outside():
    analysis = analyze("squares = [i * i for i in values]\ntotal = sum(v for v in squares)\n[(n := k) for k in range(3)]\n")
    assert "i" not in analysis.bound and "i" not in analysis.read_first
    assert "values" in analysis.read_first
    assert "n" in analysis.bound


def test_function_bodies_global_del_and_augmented_assignment():
    analysis = analyze(
        "def step(x):\n    global counter\n    counter = x * scale\n    local = x\n    return local\n"
        "step(1)\ntotal += 1\ndel tmp\n"
    )
    assert "scale" in analysis.read_first  # read inside a function, never bound by the cell
    assert "local" not in analysis.bound
    assert "counter" in analysis.bound and "counter" not in analysis.literal_bound
    assert "total" in analysis.read_first and "total" in analysis.bound
    assert "tmp" in analysis.deleted


def test_last_expression_key():
    assert analyze("a = 1\nacc\n").last_expr_key == "acc"
    assert analyze("model.score(X, y)\n").last_expr_key == "score"
    assert analyze("accuracy_score(y, p)\n").last_expr_key == "accuracy_score"
    assert analyze("1 + 2\n").last_expr_key == "result"
    assert not analyze("x = 1\n").has_last_expr


class Mode(enum.Enum):
    FAST = 1


@dataclasses.dataclass
class TrainConfig:
    lr: float = 0.01
    layers: tuple = (64, 32)
    optimizer: dict = dataclasses.field(default_factory=lambda: {"name": "adam", "beta": 0.9})


def test_param_like_values_and_configs_flatten_with_dotted_keys():
    assert flatten_params("lr", 0.1) == {"lr": 0.1}
    assert flatten_params("mode", Mode.FAST) == {"mode": Mode.FAST}
    assert flatten_params("path", Path("/data")) == {"path": Path("/data")}
    assert flatten_params("seed", np.int64(3)) == {"seed": np.int64(3)}
    namespace = argparse.Namespace(lr=0.1, layers=[64, 32], _private=1)
    assert flatten_params("args", namespace) == {"args.lr": 0.1, "args.layers": [64, 32]}
    flat = flatten_params("cfg", TrainConfig())
    assert flat == {"cfg.lr": 0.01, "cfg.layers": (64, 32), "cfg.optimizer.name": "adam", "cfg.optimizer.beta": 0.9}
    assert flatten_params("model", object()) is None
    assert flatten_params("array", np.zeros(3)) is None
    assert flatten_params("long", list(range(100))) is None


def test_metrics_numbers_and_dicts_not_bools():
    assert flatten_metrics("acc", 0.9) == {"acc": 0.9}
    assert flatten_metrics("n", np.float32(0.5)) == {"n": 0.5}
    assert flatten_metrics("zero_d", np.array(2.5)) == {"zero_d": 2.5}
    assert flatten_metrics("flag", True) is None
    assert flatten_metrics("performance", {"f1": 0.8, "nested": {"auc": 0.7}}) == {
        "performance.f1": 0.8, "performance.nested.auc": 0.7,
    }
    assert flatten_metrics("mixed", {"f1": 0.8, "name": "x"}) is None


def test_series_lists_arrays_and_history_dicts():
    assert as_series([1, 2.5]) == [1.0, 2.5]
    assert as_series(np.array([0.5, 0.25, 0.125])) == [0.5, 0.25, 0.125]
    assert as_series([1]) is None
    assert as_series([True, False]) is None
    assert as_series(np.zeros((2, 2))) is None
    # Arrays are curves only by name: predictions are data, not a metric history.
    assert as_series(np.array([0.3, 0.2]), "val_losses") == [0.3, 0.2]
    assert as_series(np.array([1, 0, 1]), "y_pred") is None
    assert as_series([1, 0, 1], "y_pred") == [1.0, 0.0, 1.0]  # lists are what a loop appends to


def test_predictions_are_not_series_unless_forced():
    source = "y_pred = model.predict(X)\nval_losses = np.array(curve)\n"
    after = {"y_pred": np.array([0, 1, 1]), "val_losses": np.array([0.5, 0.4])}
    assert set(run_capture(source, {}, after).series) == {"val_losses"}
    forced = run_capture(source, {}, after, rules=CaptureRules(force_metrics={"y_pred"}))
    assert forced.series["y_pred"] == [0.0, 1.0, 1.0]


def run_capture(source: str, before: dict, after: dict, last=None, rules=None, logged=frozenset()):
    capture = Capture(analyze(source), rules)
    capture.before(before)
    capture.after(after, last, logged_keys=set(logged))
    return capture.result


def test_capture_classifies_a_training_cell():
    source = (
        "lr = 0.05\nlosses = []\nfor epoch in range(epochs):\n    loss = train(lr)\n    losses.append(loss)\n"
        "history = {'loss': losses, 'val_loss': losses}\nacc = evaluate()\nperformance = {'f1': f1(), 'recall': r()}\nacc\n"
    )
    before = {"epochs": 3, "train": print, "evaluate": print, "api_key": "x"}
    after = {
        **before, "lr": 0.05, "losses": [0.3, 0.2, 0.1], "epoch": 2, "loss": 0.1,
        "history": {"loss": [0.3, 0.2], "val_loss": [0.4, 0.3]}, "acc": 0.93,
        "performance": {"f1": 0.8, "recall": 0.7},
    }
    result = run_capture(source, before, after, last=0.93)
    assert result.params == {"epochs": "3", "lr": "0.05"}
    # `loss` is a loop temporary: its values are the `losses` series already (issue 13).
    assert result.metrics == {"acc": 0.93, "performance.f1": 0.8, "performance.recall": 0.7}
    assert result.series == {"losses": [0.3, 0.2, 0.1], "history.loss": [0.3, 0.2], "history.val_loss": [0.4, 0.3]}
    assert "epoch" not in result.metrics


def test_overrides_force_and_exclude():
    source = "lr = 0.1\nscore = f(lr)\nname = 'x'\n"
    after = {"lr": 0.1, "score": 0.5, "name": "x", "f": print}
    rules = CaptureRules(force_params={"score"}, force_metrics={"lr"}, exclude={"name"})
    result = run_capture(source, {"f": print}, after, rules=rules)
    assert result.params == {"score": "0.5"}
    assert result.metrics == {"lr": 0.1}


def test_step_logged_names_are_not_logged_again_and_dataframes_are_datasets():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1, 2]})
    result = run_capture(
        "val_loss = g(train_df)\n", {"train_df": frame, "g": print}, {"train_df": frame, "val_loss": 0.2, "g": print},
        logged={"val_loss"},
    )
    assert result.metrics == {}
    assert list(result.datasets) == ["train_df"]


def test_secrets_withheld_by_name_and_by_value():
    source = "x = db_password\ny = endpoint\nmodel_dir = 'out'\n"
    before = {
        "db_password": "hunter2", "endpoint": "https://bob:s3cret@example.com/db",
        "cfg": {"openai_key": "k", "lr": 0.1},
    }
    result = run_capture(source + "z = cfg['lr']\n", before, before)
    assert "db_password" in result.withheld and "endpoint" in result.withheld
    assert "cfg.openai_key" in result.withheld
    assert result.params.get("cfg.lr") == "0.1"
    assert not any("hunter2" in v or "s3cret" in v for v in result.params.values())


def test_odd_values_are_skipped_with_a_note_never_raised():
    class Exploding:
        def __repr__(self):
            raise RuntimeError("no repr")

    huge = {f"k{i}": i for i in range(1000)}
    result = run_capture(
        "a = b\n", {"b": Exploding(), "huge": huge}, {"b": Exploding(), "a": Exploding(), "huge": huge},
        rules=CaptureRules(force_params={"b", "huge"}),
    )
    assert any("b" in note for note in result.notes)
    assert any("huge" in note and "entries" in note for note in result.notes)
    assert result.params == {}


def test_secret_detection_and_redaction():
    assert is_secret_name("API_KEY") and is_secret_name("hf_token") and is_secret_name("args.openai_key")
    assert not is_secret_name("max_tokens") and not is_secret_name("sort_key") and not is_secret_name("lr")
    assert is_secret_value("ghp_" + "a" * 36) and is_secret_value("AKIA" + "A" * 16)
    assert is_secret_value("-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----")
    assert not is_secret_value("adam")
    text = redact_text("token = 'abc'\nurl = 'postgresql://u:pw@h/db'\nlr = 0.1\nkey='sk-proj-" + "x" * 20 + "'\n")
    assert "abc" not in text and "pw@" not in text and "sk-proj" not in text and "lr = 0.1" in text


def test_mlflow_limits():
    assert clean_key("a#b") == "a_b"
    assert ".." not in clean_key("../x")
    assert len(clean_key("k" * 400)) == MAX_KEY_LENGTH
    long = clean_value("v" * 10_000, MAX_PARAM_LENGTH)
    assert len(long) == MAX_PARAM_LENGTH and long.endswith(TRUNCATION_MARKER)


def test_what_a_value_ends_up_as_decides_and_loop_temporaries_stay_out():
    source = (
        "history = {'loss': [], 'val_loss': []}\nlayers = [64, 32]\nlosses, val_losses = [], []\nw = 0.0\n"
        "for epoch in range(3):\n    w = w - 0.1\n    tl = 1 / (epoch + 1)\n    vl = tl * 2\n    va = tl / 2\n"
        "    history['loss'].append(tl)\n    val_losses.append(vl)\n    jt.log(step=epoch, acc=va, weight=w)\n"
        "    best = min(vl, 9)\ntrain_loss = tl * 0.9\nmlflow.log_param('manual', 7)\n"
    )
    after = {
        "history": {"loss": [1.0, 0.5, 0.33], "val_loss": [2.0, 1.0, 0.66]}, "layers": [64, 32], "losses": [],
        "val_losses": [2.0, 1.0, 0.66], "w": -0.3, "tl": 0.33, "vl": 0.66, "va": 0.5, "best": 0.66, "train_loss": 0.3,
        "epoch": 2,
    }
    analysis = analyze(source)
    assert analysis.last_expr_key is None  # the cell's own MLflow call returns what it logged
    capture = Capture(analysis)
    capture.before({})
    capture.after(after, 7, logged_keys={"acc", "weight"})
    result = capture.result
    assert result.params == {"layers": "[64, 32]"}
    assert set(result.series) == {"history.loss", "history.val_loss", "val_losses"}
    assert result.metrics == {"best": 0.66, "train_loss": 0.3}
    assert "w" not in result.metrics  # bound last in the loop and logged there (as `weight`)
    untouched = Capture(analysis)  # a literal the cell did not grow stays a param
    untouched.after({**after, "history": {"loss": [], "val_loss": []}}, None, logged_keys={"acc"})
    assert untouched.result.params["history.loss"] == "[]"
