"""A new embedded store in milliseconds, and never two kernels migrating one file.

Creating and migrating an empty MLflow SQLite store costs seconds (alembic). So the first time an MLflow version
is used, one migrated empty store is made in the user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``, under
``jupyter_tracking/templates/``) while holding a file lock, and renamed into place when complete. A project's
``mlflow.db`` is then a copy of it: written to a temporary file in the project folder, its Default experiment
pointed at ``mlartifacts/`` beside the database, and hard-linked into place only if no store exists yet (two
kernels never overwrite each other: the one that comes second uses the first one's file). New files are
readable by their owner only (0600); folders created here are 0700.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from .private_files import FILE_MODE, private_dir, user_folder

TEMPLATES_DIRNAME = "templates"
LOCK_TIMEOUT = 300  # seconds; a migration takes a few, a stuck one should not hang a cell forever


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/jupyter_tracking`` (default ``~/.cache/jupyter_tracking``)."""
    return user_folder("cache")


def template_path(mlflow_version: str | None = None) -> Path:
    """Where the migrated empty store of this MLflow version is kept."""
    if mlflow_version is None:
        from mlflow.version import VERSION as mlflow_version
    safe = "".join(ch if ch.isalnum() or ch in ".-+" else "_" for ch in mlflow_version)
    return cache_dir() / TEMPLATES_DIRNAME / f"mlflow-{safe}.db"


def _private_temp_file(folder: Path, prefix: str) -> Path:
    """A new empty 0600 file in ``folder`` (created exclusively; the caller removes it)."""
    handle, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)  # mkstemp: O_EXCL, mode 0600
    os.close(handle)
    return Path(name)


def _is_good_store(path: Path) -> bool:
    """A complete migrated MLflow store: SQLite opens it, it has an alembic version and the Default experiment."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            version = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            default = connection.execute("SELECT 1 FROM experiments WHERE experiment_id = 0").fetchone()
            return bool(version and default)
        finally:
            connection.close()
    except sqlite3.Error:
        return False


def ensure_template() -> Path:
    """The migrated empty store of the installed MLflow version, made once (under a file lock) if missing."""
    path = template_path()
    if path.exists():
        return path
    from filelock import FileLock

    private_dir(path.parent)
    with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT, mode=FILE_MODE):
        if path.exists():  # made by another process while we waited
            return path
        temporary = _private_temp_file(path.parent, "template-")
        try:
            _migrate_empty_store(temporary)
            if not _is_good_store(temporary):
                raise RuntimeError(f"MLflow did not create a complete store in {temporary}")
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
    return path


def _migrate_empty_store(path: Path) -> None:
    """Let MLflow create and migrate its tables in the empty file ``path``."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from .store import _quiet_migrations

    with _quiet_migrations():
        store = SqlAlchemyStore(f"sqlite:///{path}", str(path.parent / "mlartifacts"))
        store.engine.dispose()


def create_store(db_path: Path, artifact_root: str) -> bool:
    """Make ``db_path`` a new empty store whose Default experiment keeps artifacts in ``artifact_root``.

    Does nothing if a store is already there (or another process puts one there first). Returns True if this
    call created it.
    """
    db_path = Path(db_path)
    if _has_content(db_path):
        return False
    private_dir(db_path.parent)
    _remove_abandoned_copies(db_path)
    try:
        template = ensure_template()
    except Exception:  # noqa: BLE001 - no usable cache folder (read-only home...): migrate a private copy
        template = None
    temporary = _private_temp_file(db_path.parent, f".{db_path.name}-")
    try:
        if template is not None and _copy_template(template, temporary, artifact_root):
            pass
        else:
            temporary.write_bytes(b"")
            _migrate_empty_store(temporary)
            _point_default_experiment(temporary, artifact_root)
        return _put_in_place(temporary, db_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


ABANDONED_AFTER = 600  # seconds: a copy this old was left by a process that died while creating a store


def _remove_abandoned_copies(db_path: Path) -> None:
    now = time.time()
    for leftover in db_path.parent.glob(f".{db_path.name}-*.tmp"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > ABANDONED_AFTER:
                leftover.unlink()


def _has_content(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _copy_template(template: Path, target: Path, artifact_root: str) -> bool:
    """Copy the template into ``target`` and point its Default experiment; False if the template is unusable."""
    try:
        with open(template, "rb") as source, open(target, "wb") as copy:
            shutil.copyfileobj(source, copy)
        _point_default_experiment(target, artifact_root)
        return True
    except (OSError, sqlite3.Error):
        # A damaged template (a disk that filled up, a file edited by hand): drop it; the next store remakes it.
        with contextlib.suppress(OSError):
            template.unlink()
        return False


def _point_default_experiment(path: Path, artifact_root: str) -> None:
    """Set experiment 0's artifact location (as MLflow itself computes it) and its creation time to now."""
    from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local

    location = str(append_to_uri_path(resolve_uri_if_local(artifact_root), "0"))
    now = int(time.time() * 1000)
    connection = sqlite3.connect(str(path))
    try:
        with connection:
            updated = connection.execute(
                "UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
                "WHERE experiment_id = 0",
                (location, now, now),
            ).rowcount
        if updated != 1:
            raise sqlite3.DatabaseError("the store has no Default experiment")
    finally:
        connection.close()
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _put_in_place(temporary: Path, db_path: Path) -> bool:
    """Link the finished ``temporary`` file to ``db_path`` unless a store is there; True if ours went in."""
    try:
        os.link(temporary, db_path)  # fails if db_path exists: the store another kernel made stays
        return True
    except FileExistsError:
        return _replace_if_empty(temporary, db_path)
    except OSError:  # a file system without hard links: serialise with a lock in the cache instead
        return _rename_under_lock(temporary, db_path)


def _replace_if_empty(temporary: Path, db_path: Path) -> bool:
    """``db_path`` exists but may be an empty file (``touch``, an SQLite open): replace it only then."""
    if _has_content(db_path):
        return False
    return _rename_under_lock(temporary, db_path)


def _rename_under_lock(temporary: Path, db_path: Path) -> bool:
    from filelock import FileLock

    locks = cache_dir() / "locks"
    private_dir(locks)
    digest = hashlib.sha256(str(db_path.resolve()).encode()).hexdigest()[:24]
    with FileLock(str(locks / f"store-{digest}.lock"), timeout=LOCK_TIMEOUT, mode=FILE_MODE):
        if _has_content(db_path):
            return False
        os.replace(temporary, db_path)
        return True
