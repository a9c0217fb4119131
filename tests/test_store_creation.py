"""A new embedded store: copied from a per-version migrated template, created once however many kernels race."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from mlflow import MlflowClient

from jupyter_tracking import store_template
from tests.kernels import start_kernels
from tests.stores import runs_of, store_client


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty user cache folder (no template yet)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


def test_a_new_store_is_a_private_copy_of_the_template_with_artifacts_beside_it(cache, project):
    db = project / "mlflow.db"
    assert store_template.create_store(db, str(project / "mlartifacts")) is True
    template = store_template.template_path()
    assert template.parent == cache / "jupyter_tracking" / "templates"
    assert stat.S_IMODE(template.stat().st_mode) == 0o600
    assert stat.S_IMODE(template.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert [path.name for path in project.iterdir() if path.name.endswith(".tmp")] == []
    client = MlflowClient(f"sqlite:///{db}")
    default = client.get_experiment("0")
    assert default.artifact_location == str(project / "mlartifacts" / "0")
    run = client.create_run("0")
    assert run.info.artifact_uri.startswith(str(project / "mlartifacts" / "0"))
    # A second project gets its own copy; the template is untouched by the first.
    other = project / "other"
    other.mkdir()
    assert store_template.create_store(other / "mlflow.db", str(other / "mlartifacts")) is True
    assert MlflowClient(f"sqlite:///{other / 'mlflow.db'}").search_runs(["0"]) == []
    assert MlflowClient(f"sqlite:///{other / 'mlflow.db'}").get_experiment("0").artifact_location == str(
        other / "mlartifacts" / "0"
    )


def test_an_existing_store_is_never_replaced(cache, project):
    db = project / "mlflow.db"
    store_template.create_store(db, str(project / "mlartifacts"))
    client = MlflowClient(f"sqlite:///{db}")
    run_id = client.create_run("0").info.run_id
    assert store_template.create_store(db, str(project / "elsewhere")) is False
    assert client.get_run(run_id).info.run_id == run_id
    assert client.get_experiment("0").artifact_location == str(project / "mlartifacts" / "0")


def test_a_copy_abandoned_by_a_dead_process_is_removed(cache, project):
    leftover = project / ".mlflow.db-k1ll3d.tmp"
    leftover.write_bytes(b"half a copy")
    recent = project / ".mlflow.db-r4c1ng.tmp"
    recent.write_bytes(b"another process is copying right now")
    old = os.stat(leftover).st_mtime - store_template.ABANDONED_AFTER - 60
    os.utime(leftover, (old, old))
    store_template.create_store(project / "mlflow.db", str(project / "mlartifacts"))
    assert not leftover.exists() and recent.exists()


def test_an_empty_file_in_place_of_the_store_is_replaced(cache, project):
    db = project / "mlflow.db"
    db.touch()
    assert store_template.create_store(db, str(project / "mlartifacts")) is True
    assert MlflowClient(f"sqlite:///{db}").get_experiment("0").name == "Default"


def test_a_damaged_template_is_dropped_and_the_store_still_made(cache, project):
    template = store_template.ensure_template()
    template.write_bytes(b"not a database at all" * 100)
    db = project / "mlflow.db"
    assert store_template.create_store(db, str(project / "mlartifacts")) is True
    assert MlflowClient(f"sqlite:///{db}").get_experiment("0").artifact_location == str(project / "mlartifacts" / "0")
    assert not template.exists()  # remade by the next new store
    store_template.create_store(project / "again.db", str(project / "mlartifacts"))
    assert template.exists()


def _create_in_process(db: str, artifacts: str, cache: str, results) -> None:
    os.environ["XDG_CACHE_HOME"] = cache
    try:
        results.put(("ok", store_template.create_store(Path(db), artifacts)))
    except BaseException as error:  # noqa: BLE001
        results.put(("error", repr(error)))


def test_processes_racing_on_a_new_project_and_an_empty_cache_make_one_store(cache, project):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    db = project / "mlflow.db"
    workers = [
        context.Process(target=_create_in_process, args=(str(db), str(project / "mlartifacts"), str(cache), results))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert [kind for kind, _ in outcomes] == ["ok"] * 4, outcomes
    assert sorted(created for _, created in outcomes) == [False, False, False, True]
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM experiments").fetchone() == (1,)
    assert [path.name for path in project.iterdir() if path.name.endswith(".tmp")] == []


ROUNDS = 5


def test_kernels_opening_a_new_project_at_once_end_up_with_one_good_store(cache, tmp_path):
    """Two or three notebooks started together on a new project, each running a tracked cell, five times over
    (the first time with no template in the cache either)."""
    spool = Path(os.environ["JUPYTER_TRACKING_SPOOL_DIR"])
    for round_number in range(ROUNDS):
        project = tmp_path / f"round-{round_number}"
        (project / "notebooks").mkdir(parents=True)
        (project / "pyproject.toml").write_text("[project]\nname='race'\n")
        count = 3 if round_number % 2 == 0 else 2
        kernels = start_kernels(project / "notebooks", count)
        try:
            requests = []
            for index, kernel in enumerate(kernels):  # everything sent at once: all race to the store
                requests.append(kernel.send("%load_ext jupyter_tracking\n%track config --experiment race"))
                requests.append(kernel.send(f"%%track k{index}\nvalue = {index}\ntwice = value * 2\n"))
            for index, kernel in enumerate(kernels):
                for msg_id in requests[2 * index : 2 * index + 2]:
                    reply = kernel.reply(msg_id, timeout=180)
                    kernel.collect(until_idle=msg_id)
                    assert reply["content"]["status"] == "ok", (round_number, kernel.printed(msg_id))
            for kernel in kernels:  # a run's end is written after its cell returns: read the store once it is
                kernel.wait_for_run_ends()
            printed = "".join(kernel.all_text() for kernel in kernels)
        finally:
            for kernel in kernels:
                kernel.close()
        assert "cannot reach" not in printed and "Traceback" not in printed, printed
        assert "spool" not in printed, printed
        runs = runs_of(project, "race")
        assert sorted(run.info.run_name for run in runs) == [f"k{index}" for index in range(count)], round_number
        assert {run.info.status for run in runs} == {"FINISHED"}
        assert sorted(run.data.params["value"] for run in runs) == [str(index) for index in range(count)]
        assert store_client(project).search_runs(["0"]) == []
        assert list(spool.glob("*.jsonl")) == []
        assert [path.name for path in project.iterdir() if path.name.endswith(".tmp")] == []
