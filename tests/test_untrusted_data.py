"""Data from the store is not trusted: foreign pickles are refused, restored params never shadow code, text
renderings print no terminal escapes or hidden bidi reordering, cleaned keys never merge, and the spool and new
stores are private to their owner."""

from __future__ import annotations

import os
import pickle
import stat
import tempfile
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from mlflow import MlflowClient

from jupyter_tracking import queries
from jupyter_tracking.limits import KeyCleaner, clean_mapping
from jupyter_tracking.panels.text import visible
from tests.stores import runs_of, store_client

EXPERIMENT = "untrusted"


def run_ok(shell, source: str):
    result = shell.run_cell(source)
    assert result.error_before_exec is None and result.error_in_exec is None, result
    return result


class _Planted:
    """Unpickling this creates a file: the proof that loading ran the pickle's code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _foreign_run(project: Path, marker: Path, signature: bytes | None = None) -> str:
    """A run written by someone else (``mlflow.user`` mallory) holding a planted pickle."""
    client = store_client(project)
    experiment = client.get_experiment_by_name(EXPERIMENT) or client.get_experiment(
        client.create_experiment(EXPERIMENT, artifact_location=str(project / "mlartifacts" / EXPERIMENT)))
    run = client.create_run(experiment.experiment_id, tags={"mlflow.user": "mallory"})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pkl"
        path.write_bytes(pickle.dumps(_Planted(str(marker))))
        client.log_artifact(run.info.run_id, str(path), "artifacts")
        if signature is not None:
            (Path(tmp) / "model.pkl.sig").write_bytes(signature)
            client.log_artifact(run.info.run_id, str(Path(tmp) / "model.pkl.sig"), "artifacts")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def test_own_objects_load_and_use_formats_that_run_no_code(shell, project):
    run_ok(shell, "%%track --artifacts enc,arr,cfg\nimport numpy as np\nenc = lambda v: v + 1\n"
                  "arr = np.arange(5.0)\ncfg = {'layers': [64, 32], 'act': 'relu'}\n")
    [run] = runs_of(project, EXPERIMENT)
    files = sorted(a.path for a in store_client(project).list_artifacts(run.info.run_id, "artifacts"))
    assert files == ["artifacts/arr.npy", "artifacts/cfg.json", "artifacts/enc.pkl", "artifacts/enc.pkl.sig"]
    for name in ("enc", "arr", "cfg"):
        shell.user_ns.pop(name)
    run_ok(shell, f"%track load {run.info.run_id}")
    assert shell.user_ns["enc"](1) == 2 and list(shell.user_ns["arr"]) == [0, 1, 2, 3, 4]
    assert shell.user_ns["cfg"] == {"layers": [64, 32], "act": "relu"}


def test_a_planted_pickle_is_refused_naming_author_and_run_and_trust_loads_it(shell, project, tmp_path):
    run_ok(shell, "%%track\nlr = 0.1\n")  # the store and experiment exist
    marker = tmp_path / "code-ran"
    run_id = _foreign_run(project, marker)
    with pytest.raises(UsageError) as refused:
        shell.run_line_magic("track", f"load {run_id} model")
    message = str(refused.value)
    assert "mallory" in message and run_id in message and "--trust" in message and "\n" not in message
    assert not marker.exists()
    with pytest.raises(queries.QueryError):
        queries.load_values(run_id, "model")
    assert not marker.exists()
    shell.run_line_magic("track", f"load {run_id} model --trust")
    assert marker.exists()


def test_a_pickle_with_a_forged_signature_is_refused(shell, project, tmp_path):
    run_ok(shell, "%%track --artifacts enc\nenc = lambda v: v\n")  # this user's key exists now
    marker = tmp_path / "code-ran"
    run_id = _foreign_run(project, marker, signature=b"0" * 64)
    with pytest.raises(UsageError, match="mallory"):
        shell.run_line_magic("track", f"load {run_id}")
    assert not marker.exists()


def test_restore_never_shadows_builtins_or_code(shell, project, capsys):
    client = store_client(project)
    run_ok(shell, "%%track\nwarm = 1\n")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    run = client.create_run(experiment.experiment_id)
    for key, value in {"len": "3", "print": "x", "lr": "0.25", "np": "1", "_hidden": "1", "class": "2"}.items():
        client.log_param(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id)
    run_ok(shell, "import numpy as np")
    capsys.readouterr()
    run_ok(shell, f"%track restore {run.info.run_id}")
    out = capsys.readouterr().out
    assert shell.user_ns["lr"] == 0.25 and callable(shell.user_ns["print"] if "print" in shell.user_ns else print)
    assert "len" not in shell.user_ns and "print" not in shell.user_ns and shell.user_ns["np"].__name__ == "numpy"
    assert "_hidden" not in shell.user_ns and "class" not in shell.user_ns
    [skipped] = [line for line in out.splitlines() if "not restored" in line]
    assert all(name in skipped for name in ("len", "print", "np", "_hidden", "class"))


def test_text_renderings_show_no_escapes_and_bidi_visibly(shell, project, capsys, monkeypatch):
    evil_name = "run\x1b]0;TITLE\x07-safe\u202eexe.txt"
    client = store_client(project)
    run_ok(shell, "%%track\nwarm = 1\n")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    ids = []
    for value in ("a\x1b[2J", "b\u202e"):
        run = client.create_run(experiment.experiment_id, run_name=evil_name)
        client.log_param(run.info.run_id, "p", value)
        client.log_text(run.info.run_id, f"x = '{value}'\n", "cell/cell.py")
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    texts = [str(queries.diff(*ids))]
    from jupyter_tracking.panels.compare import runs

    texts.append(runs(EXPERIMENT).to_text())
    from jupyter_tracking.panels.card import render_text

    texts.append(render_text({"run_id": ids[0], "run_name": evil_name, "status": "FINISHED", "duration_s": 1.0,
                              "experiment_name": "e\x1b[0m", "params": [], "metrics": [], "withheld": []}))
    for text in texts:
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
        assert "<U+202E>" in text
    assert visible("a\tb\nc\rd\x00") == "a\tb\ncd"


def test_cleaned_keys_never_merge(shell, project, capsys):
    run_ok(shell, "%%track\nimport jupyter_tracking as jt\nfor i in range(3):\n"
                  "    jt.log(step=i, **{'loss_α': i, 'loss_β': 10 + i})\n"
                  "cfg = {'names.lr ': 1, 'names.lr_': 2}\n")
    err = capsys.readouterr().err
    [run] = runs_of(project, EXPERIMENT)
    client = store_client(project)
    series = {key: [m.value for m in client.get_metric_history(run.info.run_id, key)]
              for key in run.data.metrics if key.startswith("loss")}
    assert sorted(series.values()) == [[0, 1, 2], [10, 11, 12]]
    assert run.data.params["cfg.names.lr_"] == "2" and sorted(run.data.params.values()).count("1") == 1
    assert err.count("loss_β") == 1  # said once
    first, _ = clean_mapping({"a#": "1", "a_": "2"}, 100)
    second, _ = clean_mapping({"a_": "2", "a#": "1"}, 100)
    assert first == second and len(first) == 2
    cleaner = KeyCleaner()
    assert len({cleaner.clean(k) for k in ("x α", "x β", "x__")}) == 3


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_spool_files_and_new_stores_are_private(shell, project, tmp_path):
    old = os.umask(0o022)
    try:
        run_ok(shell, "%%track\nlr = 0.1\n")
        assert _mode(project / "mlflow.db") == 0o600 and _mode(project / "mlartifacts") == 0o700
        shell.run_line_magic("track", f"config --uri sqlite:///{tmp_path / 'gone' / 'x.db'}")
        run_ok(shell, "%%track --artifacts obj\nobj = lambda: 1\n")
        shell.run_line_magic("track", "config --uri ''")
    finally:
        os.umask(old)
    spool = Path(os.environ["JUPYTER_TRACKING_SPOOL_DIR"])
    files = [p for p in spool.rglob("*") if p.is_file()]
    folders = [p for p in spool.rglob("*") if p.is_dir()]
    assert files and all(_mode(p) == 0o600 for p in files)
    assert all(_mode(p) == 0o700 for p in folders)
