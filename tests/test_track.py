"""%%track and jt.track in a real IPython shell against real SQLite stores, read back with MlflowClient."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from jupyter_tracking.panels.card import MIME_TYPE
from tests.stores import runs_of as _runs_of
from tests.stores import store_client


EXPERIMENT = "tests"  # the default experiment of the `shell` fixture (conftest.py)


def runs_of(project: Path, experiment: str = EXPERIMENT):
    return _runs_of(project, experiment)


def run_ok(shell, source: str):
    result = shell.run_cell(source)
    assert result.error_before_exec is None and result.error_in_exec is None, result
    return result


def artifact_text(client: MlflowClient, run_id: str, path: str) -> str:
    local = client.download_artifacts(run_id, path)
    return Path(local).read_text()


TRAINING_CELL = """%%track first --note "baseline try" -t team=vision
import jupyter_tracking as jt
args = Namespace(lr=0.1, layers=[64, 32], optimizer="adam")
losses = []
for epoch in range(epochs):
    loss = 1.0 / (epoch + 1) * scale
    losses.append(loss)
    jt.log(step=epoch, train_loss=loss, val_loss=loss * 1.1)
performance = {"f1": sum(losses) / 10, "precision": max(losses) / 2}
accuracy = 1 - losses[-1] / 2
accuracy
"""


def test_tracked_cell_becomes_a_complete_mlflow_run(shell, project, capsys):
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(project), "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], check=True
    )
    run_ok(shell, "from argparse import Namespace\nepochs = 4\nscale = 2.0\nunused = 'x'")
    result = run_ok(shell, TRAINING_CELL)
    assert result.result == pytest.approx(1 - 0.5 / 2)  # the cell's value is unchanged
    output = capsys.readouterr().out
    assert "run first" in output and "FINISHED" in output

    [run] = runs_of(project)
    assert run.info.status == "FINISHED" and run.info.run_name == "first"
    assert run.data.params == {
        "epochs": "4", "scale": "2.0", "args.lr": "0.1", "args.layers": "[64, 32]", "args.optimizer": "adam",
    }
    assert run.data.metrics["accuracy"] == pytest.approx(0.75)
    assert run.data.metrics["performance.f1"] == pytest.approx(sum(2.0 / (e + 1) for e in range(4)) / 10)
    assert run.data.metrics["performance.precision"] == pytest.approx(1.0)
    assert "epoch" not in run.data.metrics and "unused" not in run.data.params
    client = store_client(project)
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [(m.step, round(m.value, 6)) for m in history] == [(e, round(2.0 / (e + 1) * 1.1, 6)) for e in range(4)]
    assert len(client.get_metric_history(run.info.run_id, "losses")) == 4  # a list bound by the cell: a series
    tags = run.data.tags
    assert tags["mlflow.note.content"] == "baseline try"
    assert tags["team"] == "vision"
    assert tags["mlflow.source.type"] == "NOTEBOOK"
    head = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert tags["mlflow.source.git.commit"] == head
    assert tags["mlflow.source.git.branch"] in ("master", "main")
    assert tags["jupyter_tracking.git.dirty"] == "false"
    assert json.loads(tags["jupyter_tracking.packages"])["mlflow"] == mlflow.__version__
    assert tags["jupyter_tracking.python"].startswith("CPython")
    assert "jupyter_tracking.cell_hash" in tags and "jupyter_tracking.cell_key" in tags
    assert artifact_text(client, run.info.run_id, "cell/cell.py") == TRAINING_CELL.split("\n", 1)[1]
    assert tags["jupyter_tracking.magic"] == '%%track first --note "baseline try" -t team=vision'
    # Artifacts live beside the store, not in the kernel's cwd.
    assert (project / "mlartifacts").is_dir()
    assert not (project / "notebooks" / "mlruns").exists()


def test_every_execution_is_a_new_run_and_the_card_shows_changes(shell, project, capsys):
    cell = "%%track tune\nlr = {lr}\nval_loss = 1 / (lr * 100)\n"  # no cell id here: linked by run name
    run_ok(shell, cell.format(lr=0.1))
    capsys.readouterr()
    bundles = []
    shell.display_pub.publish = lambda data, *a, **k: bundles.append(data)  # capture the raw bundle
    try:
        run_ok(shell, cell.format(lr=0.2))
    finally:
        del shell.display_pub.publish
    runs = runs_of(project)
    assert [r.data.params["lr"] for r in runs] == ["0.1", "0.2"]
    card = next(bundle for bundle in bundles if MIME_TYPE in bundle)
    data = card[MIME_TYPE]
    assert data["run_id"] == runs[1].info.run_id and data["previous_run_id"] == runs[0].info.run_id
    assert data["params"] == [{"key": "lr", "value": "0.2", "previous": "0.1", "changed": True}]
    [metric] = data["metrics"]
    assert metric["key"] == "val_loss" and metric["previous"] == pytest.approx(0.1) and metric["best"] == pytest.approx(0.1)
    assert "was 0.1" in card["text/plain"] and "was 0.1" in card["text/html"]


def test_failing_cell_is_failed_with_traceback_and_reraises_unchanged(shell, project):
    result = shell.run_cell("%%track\nlr = 0.3\ndef explode():\n    raise ValueError('bad batch')\nexplode()\n")
    assert isinstance(result.error_in_exec, ValueError) and str(result.error_in_exec) == "bad batch"
    [run] = runs_of(project)
    assert run.info.status == "FAILED"
    assert run.data.params == {"lr": "0.3"}
    text = artifact_text(store_client(project), run.info.run_id, "traceback.txt")
    assert "ValueError: bad batch" in text and "explode" in text
    assert mlflow.active_run() is None
    run_ok(shell, "%%track\nafter = 1.5\n")  # the next tracked cell works
    assert [r.info.status for r in runs_of(project)] == ["FAILED", "FINISHED"]


def test_a_failed_cell_does_not_record_values_left_from_its_previous_execution(shell, project):
    cell = "%%track\nloss = 1 / divisor\naccuracy = 1 - loss\n"
    shell.user_ns["divisor"] = 4
    run_ok(shell, cell)
    shell.user_ns["divisor"] = 0  # now it fails before binding anything
    assert isinstance(shell.run_cell(cell).error_in_exec, ZeroDivisionError)
    finished, failed = runs_of(project)
    assert finished.data.metrics == {"loss": 0.25, "accuracy": 0.75}
    assert failed.info.status == "FAILED" and failed.data.metrics == {}
    assert failed.data.params == {"divisor": "0"}


def test_interrupted_cell_is_killed(shell, project):
    result = shell.run_cell("%%track\nsteps_done = 3\nraise KeyboardInterrupt\n")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    [run] = runs_of(project)
    assert run.info.status == "KILLED"


@pytest.mark.parametrize(
    "line, message",
    [
        ("%%track --bogus", "unrecognized arguments"),
        ("%%track -t notakeyvalue", "KEY=VALUE"),
        ("%%track --steps -3", "positive"),
        ("%%track --params 'a b'", "variable name"),
        ("%%track one two", "unrecognized arguments"),
    ],
)
def test_bad_arguments_are_one_usage_line_and_nothing_runs(shell, project, capsys, line, message):
    from IPython.core.error import UsageError

    result = shell.run_cell(f"{line}\nside_effect = 1\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert message in str(result.error_in_exec)
    assert "side_effect" not in shell.user_ns
    assert runs_of(project) == []


def test_unknown_line_command_is_a_usage_error(shell):
    from IPython.core.error import UsageError

    result = shell.run_cell("%track frobnicate")
    assert isinstance(result.error_in_exec, UsageError) and "unknown command" in str(result.error_in_exec)


def test_odd_values_are_made_acceptable_and_the_user_told_once(shell, project, capsys):
    run_ok(
        shell,
        "class Exploding:\n    def __repr__(self):\n        raise RuntimeError('nope')\n"
        "weird = Exploding()\nhuge = {f'k{i}': i for i in range(1000)}\n",
    )
    shell.user_ns["long_text"] = "x" * 7000
    run_ok(
        shell,
        "%%track -p weird,huge\nt = long_text\nw = weird\nh = huge\n"
        "nan_metric = float('nan')\ninf_metric = float('inf')\n"
        "jt_odd = {'a#b': 1 / 2}\n",
    )
    err = capsys.readouterr().err
    [run] = runs_of(project)
    assert run.info.status == "FINISHED"
    assert run.data.params["long_text"].endswith("...[truncated]") and len(run.data.params["long_text"]) == 6000
    assert "weird" not in run.data.params and "huge" not in run.data.params
    assert math.isnan(run.data.metrics["nan_metric"])
    assert run.data.metrics["inf_metric"] > 1e300
    assert run.data.metrics["jt_odd.a_b"] == 0.5
    assert "weird" in err and "huge" in err and "long_text" in err


def test_cells_with_global_del_walrus_comprehension_and_magics(shell, project):
    run_ok(shell, "counter = 0\ntmp = 5\n")
    run_ok(
        shell,
        "%%track\ndef bump(x):\n    global counter\n    counter += x\n    return counter\n"
        "bump(2)\ndel tmp\nsquares = [i * i for i in range(5)]\nif (n := len(squares)) > 3:\n    big = n * 1.5\n"
        "%time total = sum(squares)\nlambda_result = (lambda v: v * 2)(4)\n",
    )
    [run] = runs_of(project)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["counter"] == 2
    assert run.data.metrics["big"] == 7.5
    assert run.data.metrics["total"] == 30
    assert "tmp" not in run.data.params and "tmp" not in run.data.metrics
    assert "i" not in run.data.metrics


def test_mlflow_calls_in_the_cell_land_in_the_same_run_once(shell, project):
    run_ok(
        shell,
        "%%track\nimport mlflow\nfor step in range(3):\n    mlflow.log_metric('acc', 0.5 + step / 10, step=step)\n"
        "mlflow.log_metrics({'f1': 0.7})\nacc = 0.7\nmlflow.log_param('extra', 'yes')\n",
    )
    [run] = runs_of(project)
    history = store_client(project).get_metric_history(run.info.run_id, "acc")
    assert [m.step for m in history] == [0, 1, 2]  # not a 4th point from `acc = 0.7`
    assert run.data.params["extra"] == "yes" and run.data.metrics["f1"] == 0.7


def test_secrets_never_reach_the_store(shell, project, capsys):
    token = "ghp_" + "A1b2C3d4" * 5
    run_ok(shell, f"api_key = 'plain-looking'\ngh = '{token}'\ncfg = {{'db_password': 'pw', 'lr': 0.1}}\n")
    run_ok(
        shell,
        "%%track --artifacts api_key\nclient_token = api_key\nheaders = gh\nlr = cfg['lr']\n"
        "password = 'hunter2'\nurl = 'https://bob:s3cret@example.com'\nreal_lr = lr\n",
    )
    err = capsys.readouterr().err
    [run] = runs_of(project)
    client = store_client(project)
    everything = json.dumps([run.data.params, run.data.metrics, run.data.tags])
    source = artifact_text(client, run.info.run_id, "cell/cell.py")
    for secret in ("plain-looking", token, "hunter2", "s3cret", "'pw'"):
        assert secret not in everything and secret not in source
    withheld = run.data.tags["jupyter_tracking.withheld"]
    for name in ("api_key", "gh", "cfg.db_password", "password", "client_token", "url"):
        assert name in withheld
    assert run.data.params["cfg.lr"] == "0.1"
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["cell"]  # api_key not pickled
    assert "look like credentials" in err


def test_notebooks_in_sub_folders_share_one_store(shell, project, monkeypatch):
    for folder in ("a", "b/deeper"):
        path = project / "notebooks" / folder
        path.mkdir(parents=True)
        monkeypatch.chdir(path)
        run_ok(shell, f"%%track\nwhere = {len(folder)}\n")
    assert len(runs_of(project)) == 2
    assert sorted(p.name for p in project.rglob("mlflow.db")) == ["mlflow.db"]


def test_load_ext_says_where_runs_go(ipython_shell, project, monkeypatch, capsys):
    monkeypatch.chdir(project / "notebooks")
    ipython_shell.run_line_magic("reload_ext", "jupyter_tracking")
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and str(project / "mlflow.db") in out[0]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:secret@127.0.0.1:9/")
    ipython_shell.run_line_magic("reload_ext", "jupyter_tracking")
    out = capsys.readouterr().out
    assert "MLFLOW_TRACKING_URI" in out and "secret" not in out


def test_config_status_and_explicit_uri(shell, project, tmp_path, capsys):
    other = tmp_path / "elsewhere" / "runs.db"
    other.parent.mkdir()
    run_ok(shell, f"%track config --uri sqlite:///{other} --experiment configured")
    run_ok(shell, "%%track\nvalue = 5 / 2\n")
    run_ok(shell, "%track")
    out = capsys.readouterr().out
    assert str(other) in out and "configured" in out and "last run" in out
    client = MlflowClient(f"sqlite:///{other}")
    [run] = client.search_runs([client.get_experiment_by_name("configured").experiment_id])
    assert run.data.metrics["value"] == 2.5
    assert not (project / "mlflow.db").exists()


def test_unreachable_store_spools_and_sync_delivers(shell, project, tmp_path, capsys):
    missing = tmp_path / "offline" / "mlflow.db"  # its folder does not exist: the store cannot be written
    run_ok(shell, f"%track config --uri sqlite:///{missing}")
    run_ok(
        shell,
        "%%track offline --artifacts model\nimport jupyter_tracking as jt\nlr = 0.01\nmodel = {'weights': [1, 2]}\n"
        "for s in range(5):\n    jt.log(step=s, loss=1 / (s + 1))\naccuracy = 4 / 5\n",
    )
    captured = capsys.readouterr()
    assert captured.err.count("is kept in") == 1  # told once
    assert "spooled" in captured.out
    assert shell.user_ns["accuracy"] == 0.8  # the cell ran
    run_ok(shell, "%track sync")
    assert "still unreachable" in capsys.readouterr().err
    missing.parent.mkdir()
    run_ok(shell, "%track sync")
    assert "delivered 1" in capsys.readouterr().out
    client = MlflowClient(f"sqlite:///{missing}")
    [run] = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "offline"
    assert run.data.params["lr"] == "0.01" and run.data.metrics["accuracy"] == 0.8
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 5
    with open(client.download_artifacts(run.info.run_id, "artifacts/model.json"), "rb") as handle:
        assert json.load(handle) == {"weights": [1, 2]}  # plain data is stored as JSON, not pickled
    run_ok(shell, "%track sync")
    assert "nothing to sync" in capsys.readouterr().out


def test_the_next_successful_run_delivers_spooled_runs(shell, project, tmp_path, capsys):
    missing = tmp_path / "later" / "mlflow.db"
    run_ok(shell, f"%track config --uri sqlite:///{missing}")
    run_ok(shell, "%%track while-offline\nloss = 1 / 8\n")
    assert "is kept in" in capsys.readouterr().err
    missing.parent.mkdir()
    run_ok(shell, "%%track back-online\nloss = 1 / 4\n")
    assert "delivered 1 run(s) spooled" in capsys.readouterr().err
    client = MlflowClient(f"sqlite:///{missing}")
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert sorted((r.info.run_name, r.info.status, r.data.metrics["loss"]) for r in runs) == [
        ("back-online", "FINISHED", 0.25), ("while-offline", "FINISHED", 0.125),
    ]
    run_ok(shell, "%track sync")
    assert "nothing to sync" in capsys.readouterr().out


def test_python_api_tracks_the_with_block(shell, project):
    run_ok(
        shell,
        "import jupyter_tracking as jt\nbatch_size = 32\n"
        "with jt.track('api-run', params={'explicit': 'yes'}, tags={'via': 'api'}) as run:\n"
        "    lr = 0.5\n    for i in range(3):\n        run.log(step=i, loss=1.0 / (i + 1))\n"
        "    score = batch_size * lr\n",
    )
    [run] = runs_of(project)
    assert run.info.run_name == "api-run" and run.info.status == "FINISHED"
    assert run.data.params == {"explicit": "yes", "lr": "0.5", "batch_size": "32"}
    assert run.data.metrics["score"] == 16.0 and run.data.tags["via"] == "api"
    assert len(store_client(project).get_metric_history(run.info.run_id, "loss")) == 3
    result = shell.run_cell("with jt.track('api-fail'):\n    raise ZeroDivisionError('api')\n")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert runs_of(project)[-1].info.status == "FAILED"


def test_jt_log_outside_a_tracked_cell_warns_once(shell, capsys):
    run_ok(shell, "import jupyter_tracking as jt\njt.log(loss=1)\njt.log(loss=2)\n")
    assert capsys.readouterr().err.count("outside a tracked cell") == 1


def test_dataframes_read_are_dataset_inputs_with_a_full_digest(shell, project):
    import pandas as pd

    frame = pd.DataFrame({"x": range(20_000), "y": [i % 3 for i in range(20_000)]})
    shell.user_ns["train_df"] = frame
    run_ok(shell, "%%track\nrows = float(len(train_df))\n")
    changed = frame.copy()
    changed.loc[19_999, "y"] = 99  # a change MLflow's own digest (first 10,000 rows) would miss
    shell.user_ns["train_df"] = changed
    run_ok(shell, "%%track\nrows = float(len(train_df))\n")
    first, second = runs_of(project)
    client = store_client(project)
    digests = []
    for run in (first, second):
        [dataset_input] = client.get_run(run.info.run_id).inputs.dataset_inputs
        assert dataset_input.dataset.name == "train_df"
        assert json.loads(dataset_input.dataset.profile)["num_rows"] == 20_000
        digests.append(dataset_input.dataset.digest)
    assert digests[0] != digests[1]


def test_artifacts_come_back_as_the_same_objects(shell, project):
    run_ok(shell, "%%track --artifacts model,encoder\nmodel = {'coef': [0.5, 1.5]}\nencoder = lambda v: v + 1\n")
    [run] = runs_of(project)
    client = store_client(project)
    paths = sorted(a.path for a in client.list_artifacts(run.info.run_id, "artifacts"))
    assert paths == ["artifacts/encoder.pkl", "artifacts/encoder.pkl.sig", "artifacts/model.json"]
    import cloudpickle

    with open(client.download_artifacts(run.info.run_id, "artifacts/encoder.pkl"), "rb") as handle:
        assert cloudpickle.load(handle)(1) == 2


def test_many_step_points_are_all_in_the_store_when_the_cell_ends(shell, project):
    run_ok(shell, "%%track\nimport jupyter_tracking as jt\nfor i in range(20_000):\n    jt.log(step=i, loss=1 / (i + 1))\n")
    [run] = runs_of(project)
    history = store_client(project).get_metric_history(run.info.run_id, "loss")
    assert len(history) == 20_000 and history[-1].step == 19_999


def test_autolog_option_logs_into_the_tracked_run(shell, project):
    run_ok(
        shell,
        "%%track --autolog\nfrom sklearn.linear_model import LinearRegression\nimport numpy as np\n"
        "X = np.arange(20.0).reshape(-1, 1)\nfitted = LinearRegression().fit(X, 2 * X.ravel() + 1)\n",
    )
    [run] = runs_of(project)
    assert run.data.params.get("fit_intercept") == "True"  # logged by MLflow's sklearn autologging
    assert run.info.status == "FINISHED"


def test_git_dirty_state_and_origin_without_credentials(shell, project):
    git = ["git", "-C", str(project)]
    subprocess.run([*git[:1], "init", "-q", "-b", "trial", str(project)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], check=True)
    subprocess.run([*git, "remote", "add", "origin", "https://alice:ghs_secrettoken@git.example.com/team/repo.git"], check=True)
    (project / "pyproject.toml").write_text("[project]\nname='changed'\n")  # an uncommitted change
    run_ok(shell, "%%track\nvalue = 3 / 2\n")
    [run] = runs_of(project)
    tags = run.data.tags
    assert tags["jupyter_tracking.git.dirty"] == "true"
    assert tags["mlflow.source.git.branch"] == "trial"
    assert "secrettoken" not in tags["mlflow.source.git.repoURL"]
    assert tags["mlflow.source.git.repoURL"].endswith("git.example.com/team/repo.git")


def test_the_extension_knows_which_track_options_take_values():
    """The run browser reads a cell's run name off its ``%%track`` line (``trackRunName`` in magic.ts): its
    lists of options that take a value must be the magic's own, or ``%%track --jobs 2`` would name a run "2"."""
    import re

    from IPython.core.magic_arguments import construct_parser

    from jupyter_tracking.magics import TrackingMagics

    parser = construct_parser(TrackingMagics.track)
    one, many = set(), set()
    for action in parser._actions:  # argparse's own record of the options
        if not action.option_strings or action.nargs == 0 or "-h" in action.option_strings:
            continue
        (many if action.nargs == "+" else one).update(action.option_strings)
    source = (Path(__file__).parent.parent / "labextension" / "src" / "magic.ts").read_text()

    def ts_set(name: str) -> set[str]:
        body = re.search(rf"const {name} = new Set\(\[(.*?)\]\)", source, re.S).group(1)
        return set(re.findall(r"'([^']+)'", body))

    assert ts_set("takesValue") == one
    assert ts_set("takesWords") == many
