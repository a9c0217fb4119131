"""The embedded store commits to a write-ahead log: an append a commit, no sync, on a local disk.

MLflow opens SQLite with SQLite's defaults: a rollback journal and ``synchronous=FULL``. Every commit then
creates a journal file, syncs it, writes the database, syncs it and deletes the journal, and a tracked run is about
a dozen commits: 33 disk writes (220 KB) a tracked cell. A 16-trial ``--jobs 2`` sweep wrote to the disk ~1000
times in 5 s, and its workers, preempted 4x as often as those of a plain pool running the same loop, ran their
trials 20-25 % slower; with the log, ~30 writes, and 10-12 % (``benchmarks/README.md``).

So each connection the kernel opens to the project's embedded store is put in WAL mode with
``synchronous=NORMAL`` (``tune_engine``): a commit is an append to ``mlflow.db-wal``, synced only when SQLite
checkpoints the log into the database. That gives up what the spool journal already gives up
(``run_ends.py``): a commit survives the kernel being killed or interrupted, and the database stays consistent
whatever happens, but the last commits before the machine itself crashes or loses power can be lost.
WAL mode is kept in the file: the MLflow UI and the run browser, which open the store read-only, read it as
before, and see each commit at once.

WAL's index is shared memory, so SQLite warns against it on network filesystems. The store keeps SQLite's
defaults there (NFS, SMB, FUSE mounts such as a mounted Google Drive) and wherever the filesystem's type
cannot be told: ``journal_for`` says which.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Filesystems where WAL is safe: a local disk or memory. Anything else (nfs, cifs, smb3, fuse.*, 9p, ceph,
# lustre, gpfs, ...) or an unknown type keeps SQLite's rollback journal.
LOCAL_FILESYSTEMS = frozenset({
    "ext2", "ext3", "ext4", "xfs", "btrfs", "bcachefs", "f2fs", "jfs", "reiserfs", "zfs", "tmpfs", "ramfs",
    "overlay", "apfs", "hfs", "ntfs",
})
WAL = "wal"
DEFAULT = "default"


def mount_table() -> list[tuple[str, str]] | None:
    """(mount point, filesystem type) of every mount: ``/proc/self/mounts`` on Linux, psutil where it is
    installed; None if neither can tell."""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as handle:
            return [(_unescape(fields[1]), fields[2]) for fields in map(str.split, handle) if len(fields) >= 3]
    except OSError:
        try:
            import psutil

            return [(part.mountpoint, part.fstype) for part in psutil.disk_partitions(all=True)]
        except Exception:  # noqa: BLE001 - no /proc, no psutil: unknown
            return None


def filesystem_type(path: Path, mounts: list[tuple[str, str]] | None = None) -> str | None:
    """The type of the filesystem ``path`` is on: that of its longest mount point (the last one mounted over a
    folder wins); None if it cannot be told."""
    mounts = mount_table() if mounts is None else mounts
    target = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for mount_point, kind in mounts or []:
        inside = target == mount_point or target.startswith(mount_point.rstrip(os.sep) + os.sep)
        if inside and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), kind)
    return best[1] if best else None


def _unescape(field: str) -> str:
    """A mount point as ``/proc/self/mounts`` writes it: space, tab, newline and backslash as octal escapes."""
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def journal_for(db_path: str) -> str:
    """``WAL`` for a store file on a local disk, ``DEFAULT`` (SQLite's own settings) elsewhere (asked once per
    client a session makes for the store: ``store.client_for``)."""
    kind = filesystem_type(Path(db_path).parent)
    return WAL if kind is not None and kind.lower() in LOCAL_FILESYSTEMS else DEFAULT  # psutil on Windows: NTFS


def tune_engine(engine: Any, db_path: str) -> bool:
    """Put the connections ``engine`` opens to ``db_path`` in WAL mode with ``synchronous=NORMAL`` (see above);
    the ones already open are closed so that every later one is. False where the store keeps the defaults."""
    if journal_for(db_path) != WAL:
        return False
    from sqlalchemy import event

    if not event.contains(engine, "connect", _on_connect):
        event.listen(engine, "connect", _on_connect)
        engine.dispose()  # pooled connections opened before the listener: the next ones are tuned
    return True


def _on_connect(connection: Any, _record: Any) -> None:
    """A new DBAPI connection: WAL (a no-op once the file is in WAL mode), then no sync at each commit. Where the
    mode cannot be changed (another connection in a transaction, a read-only file) the connection is left as
    SQLite opened it: ``synchronous=NORMAL`` is only safe with WAL."""
    import sqlite3

    cursor = connection.cursor()
    try:
        mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode and str(mode[0]).lower() == WAL:
            cursor.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error:
        pass
    finally:
        cursor.close()
