"""The embedded store commits to SQLite's write-ahead log on a local disk, and keeps SQLite's defaults elsewhere."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from contextlib import closing

import pytest

from jupyter_tracking import sqlite_journal
from jupyter_tracking.session import current_session
from tests.stores import runs_of

EXPERIMENT = "journal"


def journal_mode(db) -> str:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        return connection.execute("PRAGMA journal_mode").fetchone()[0]


def test_a_tracked_cell_commits_to_a_private_write_ahead_log_that_readers_see_at_once(shell, project):
    previous = os.umask(0o022)
    try:
        result = shell.run_cell("%%track\nlr = 0.1\nloss = lr * 2.5\n")
    finally:
        os.umask(previous)
    assert result.success
    db = project / "mlflow.db"
    assert journal_mode(db) == "wal"
    (client,) = current_session().clients.values()
    from jupyter_tracking.internals import store_of

    with store_of(client).engine.connect() as connection:
        from sqlalchemy import text

        assert connection.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL: no sync at each commit
    for name in ("mlflow.db", "mlflow.db-wal", "mlflow.db-shm"):
        assert stat.S_IMODE((project / name).stat().st_mode) == 0o600, name
    # The kernel still holds the store open (its commits are in the log, not yet in mlflow.db): a read-only
    # reader in another process, as the run browser and the MLflow UI open it, sees the finished run.
    assert (project / "mlflow.db-wal").stat().st_size > 0
    reader = textwrap.dedent(f"""
        import sqlite3
        db = sqlite3.connect("file:{db}?mode=ro", uri=True)
        print(db.execute("SELECT status FROM runs").fetchall(),
              db.execute("SELECT key, value FROM latest_metrics").fetchall())
    """)
    out = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[('FINISHED',)] [('loss', 0.25)]"
    (run,) = runs_of(project, EXPERIMENT)
    assert run.data.params == {"lr": "0.1"} and run.data.metrics == {"loss": 0.25}


def test_a_store_on_a_network_filesystem_keeps_sqlite_defaults(shell, project, monkeypatch):
    monkeypatch.setattr(sqlite_journal, "mount_table", lambda: [("/", "ext4"), (str(project), "nfs4")])
    assert shell.run_cell("%%track\nlr = 0.2\nloss = lr * 2.5\n").success
    assert journal_mode(project / "mlflow.db") == "delete"
    assert not (project / "mlflow.db-wal").exists()
    (run,) = runs_of(project, EXPERIMENT)
    assert run.info.status == "FINISHED" and run.data.metrics == {"loss": 0.5}


def test_a_killed_kernel_loses_no_commit(project, tmp_path):
    """SIGKILL right after a run's end was written, the log never checkpointed: the run is whole when read."""
    script = textwrap.dedent(f"""
        import os, signal
        from jupyter_tracking.store import client_for, resolve_store
        client = client_for(resolve_store({str(project / "notebooks")!r}))
        run = client.create_run("0")
        client.log_param(run.info.run_id, "lr", "0.1")
        for step in range(50):
            client.log_metric(run.info.run_id, "loss", 1 / (step + 1), step=step)
        client.set_terminated(run.info.run_id)
        print(run.info.run_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (project / "mlflow.db-wal").stat().st_size > 0  # the commits are in the log only
    from tests.stores import store_client

    run = store_client(project).get_run(killed.stdout.strip())
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.1"}
    history = store_client(project).get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(50)) and history[-1].value == pytest.approx(1 / 50)


def test_the_filesystem_is_that_of_the_longest_mount_point():
    mounts = [("/", "ext4"), ("/home", "nfs4"), ("/home/ann/my drive", "fuse.drive"), ("/home/ann/fast", "xfs"),
              ("/tmp", "tmpfs")]
    assert sqlite_journal.filesystem_type("/home/ann/project", mounts) == "nfs4"
    assert sqlite_journal.filesystem_type("/home/ann/my drive/p", mounts) == "fuse.drive"
    assert sqlite_journal.filesystem_type("/home/ann/fastlane", mounts) == "nfs4"  # not under /home/ann/fast
    assert sqlite_journal.filesystem_type("/home/ann/fast/p", mounts) == "xfs"
    assert sqlite_journal.filesystem_type("/tmp", mounts) == "tmpfs"
    assert sqlite_journal.filesystem_type("/srv/p", mounts + [("/", "zfs")]) == "zfs"  # mounted over: the last
    assert sqlite_journal.filesystem_type("/srv/p", []) is None
    assert sqlite_journal._unescape("/home/ann/my\\040drive") == "/home/ann/my drive"


@pytest.mark.parametrize(("kind", "journal"), [("ext4", "wal"), ("tmpfs", "wal"), ("NTFS", "wal"), ("nfs", "default"),
                                                ("cifs", "default"), ("fuse.sshfs", "default"), (None, "default")])
def test_only_a_local_disk_gets_the_write_ahead_log(monkeypatch, tmp_path, kind, journal):
    monkeypatch.setattr(sqlite_journal, "mount_table", lambda: None if kind is None else [("/", kind)])
    assert sqlite_journal.journal_for(str(tmp_path / "mlflow.db")) == journal
