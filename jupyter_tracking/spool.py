"""The spool: runs kept in local files while their store is unreachable, delivered later exactly once.

One JSON-lines file per run in ``$JUPYTER_TRACKING_SPOOL_DIR`` (default ``~/.cache/jupyter_tracking/spool``),
folder 0700 and files 0600. Records: ``run`` (where it belongs; the MLflow run id when the run was created before
the store went away, else a ``run_key`` the run is created with), ``metrics`` (step rows), ``final`` (params,
tags, single metrics, artifact files copied beside it, datasets, status, end time).

``deliver_pending`` replays files through ``sinks.MlflowSink``, the same code that writes live runs. Delivery is
exactly once across processes: a lock per file (``filelock``), progress noted after each record, and a run
created at delivery is found again by its ``run_key`` tag instead of being created twice. A file the store
refuses for good is moved to ``refused/`` with one message, and delivery goes on with the others.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .private_files import copy_private, open_private, private_dir, user_folder

RUN_KEY_TAG = "jupyter_tracking.run_key"
REFUSED_DIR = "refused"


def spool_dir() -> Path:
    configured = os.environ.get("JUPYTER_TRACKING_SPOOL_DIR")
    if configured:
        return Path(configured)
    return user_folder("cache") / "spool"


class SpoolFile:
    """Appends one run's records to its spool file (each record flushed and fsynced).

    When the disk itself refuses (full, read-only), records are kept in memory and written with the next
    record that succeeds; ``unsaved`` says how many are still only in memory.
    """

    def __init__(self, header: dict[str, Any]) -> None:
        self.local_id = uuid.uuid4().hex
        self.folder = spool_dir()
        self.path = self.folder / f"{int(time.time())}-{self.local_id}.jsonl"
        self.files = self.folder / self.local_id
        self._unsaved: list[str] = []
        self.lost_files: list[str] = []  # artifact files that could not be copied into the spool
        self._append({"op": "run", **header})

    @property
    def unsaved(self) -> int:
        return len(self._unsaved) + len(self.lost_files)

    def _append(self, record: dict[str, Any]) -> None:
        self._unsaved.append(json.dumps(record))
        try:
            private_dir(self.folder)
            with open_private(self.path, "a") as handle:
                handle.write("".join(line + "\n" for line in self._unsaved))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            return  # kept in memory; the caller says so once
        self._unsaved = []

    def metrics(self, rows: list[tuple[str, float, int, int]]) -> None:
        if rows:
            self._append({"op": "metrics", "rows": rows})

    def finish(self, final: Any) -> None:
        artifacts = []
        for path, artifact_path in final.artifacts:
            try:
                artifacts.append([self._copy(path), artifact_path])
            except OSError:
                self.lost_files.append(Path(path).name)
        self._append(_final_record(final, artifacts))

    def _copy(self, local_path: str) -> str:
        folder = private_dir(self.files / uuid.uuid4().hex[:8])  # keeps the file's name: MLflow logs it so
        target = folder / Path(local_path).name
        copy_private(local_path, target)
        return str(target)


def write_journal(header: dict[str, Any], final: Any) -> Path:
    """A run's end, kept while it is written after its cell (``run_ends.py``): a spool file like any other,
    whose header names its owner process (``recovery.owner_tags``). Delivery leaves it alone while that process
    lives; once it is gone, the entry completes the run exactly once. Written without fsync (a killed process
    loses nothing; a crashed machine may) and with artifact files where they are (the owner removes the entry
    when its write is done, before those files go). Raises OSError when the spool folder cannot be written."""
    from .recovery import owner_tags

    folder = private_dir(spool_dir())
    path = folder / f"{int(time.time())}-{uuid.uuid4().hex}.jsonl"
    records = [{"op": "run", **header, "owner": owner_tags()},
               _final_record(final, [list(item) for item in final.artifacts])]
    with open_private(path, "w") as handle:
        handle.write("".join(json.dumps(record) + "\n" for record in records))
    return path


def _final_record(final: Any, artifacts: list[list[Any]]) -> dict[str, Any]:
    """The ``final`` record of a spool file (``deliver`` reads it back), with ``artifacts`` as stored there."""
    return {"op": "final", "rows": final.rows, "params": final.params, "tags": final.tags, "status": final.status,
            "end_time": final.end_time, "artifacts": artifacts, "datasets": final.datasets}


def is_journal(path: Path) -> bool:
    """A journal entry (``write_journal``), as opposed to a run spooled during an outage."""
    return bool(_header(path).get("owner"))


def remove_journal(path: Path) -> None:
    """The journal entry's run end is written (or spooled for good): the entry goes."""
    _progress_path(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def _owned_by_live_process(path: Path) -> bool:
    """A journal entry whose owner is alive (it writes the run's end itself), or of another host and recent
    (nothing here can tell whether its owner lives)."""
    owner = _header(path).get("owner")
    if not owner:
        return False
    from .recovery import STALE_AFTER, owner_state

    state = owner_state(owner)
    if state == "unknown":
        try:
            return time.time() - path.stat().st_mtime < STALE_AFTER
        except OSError:
            return False
    return state != "gone"


def pending_run_ids(uri: str) -> set[str]:
    """Ids of runs whose end waits in the spool for ``uri``: recovery leaves them to delivery."""
    return {run_id for run_id in (_header(path).get("run_id") for path in pending(uri)) if run_id}


def pending(uri: str | None = None, *, deliverable: bool = False) -> list[Path]:
    """Spool files waiting for delivery (to ``uri`` only, when given), oldest first; with ``deliverable``,
    without the journal entries their live owner is writing."""
    folder = spool_dir()
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.jsonl"))
    if uri is not None:
        files = [path for path in files if _header(path).get("uri") == uri]
    if deliverable:
        files = [path for path in files if not _owned_by_live_process(path)]
    return files


def _header(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.loads(handle.readline() or "{}")
    except (OSError, json.JSONDecodeError):
        return {}


def _read(path: Path) -> list[dict[str, Any]]:
    records = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut by a crash: the rest is still delivered
    return records


def _progress_path(path: Path) -> Path:
    return path.with_suffix(".progress")


def _progress(path: Path) -> int:
    try:
        return int(_progress_path(path).read_text())
    except (OSError, ValueError):
        return 0


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open_private(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def deliver(path: Path, sink: Any) -> str:
    """Replay one spool file through ``sink`` (an ``MlflowSink``); returns the run id. The caller holds the
    file's lock. Raises what the sink raises; progress is kept, so a retry continues where this stopped."""
    from .sinks import FinalRecord

    records = _read(path)
    header = records[0]
    run_id = header.get("run_id")
    if run_id is None:
        experiment = header["experiment"]
        created = sink.find_run(experiment, RUN_KEY_TAG, header["run_key"]) if header.get("run_key") else None
        if created is None:
            created = sink.create_run(experiment, run_name=header.get("run_name"), tags=header.get("tags") or {},
                                      start_time=header.get("start_time"))
        run_id = header["run_id"] = created.run_id
        _write_atomically(path, "".join(json.dumps(record) + "\n" for record in [header, *records[1:]]))
    done = _progress(path)
    for index, record in enumerate(records[1:], start=1):
        if index <= done:
            continue
        if record["op"] == "metrics":
            sink.write_metrics(run_id, [tuple(row) for row in record["rows"]])
        elif record["op"] == "final":
            artifacts = [tuple(item) for item in record["artifacts"]]
            tags = dict(record["tags"])
            if header.get("owner"):  # a journal entry names files where its kernel left them: some may be gone
                lost = [Path(path).name for path, _ in artifacts if not Path(path).exists()]
                artifacts = [item for item in artifacts if Path(item[0]).exists()]
                if lost:
                    tags["jupyter_tracking.lost_files"] = ", ".join(lost)[:500]
            sink.finish(run_id, FinalRecord(
                rows=[tuple(row) for row in record["rows"]], params=record["params"], tags=tags,
                status=record["status"], end_time=record["end_time"], artifacts=artifacts,
                datasets=record["datasets"],
            ))
        _write_atomically(_progress_path(path), str(index))
    _remove(path)
    return run_id


def _remove(path: Path) -> None:
    shutil.rmtree(path.parent / path.stem.split("-", 1)[-1], ignore_errors=True)
    _progress_path(path).unlink(missing_ok=True)
    path.unlink(missing_ok=True)


@dataclass
class Delivery:
    """What ``deliver_pending`` did: runs delivered, files set aside (refused for good), and the outage that
    stopped it, if any (the rest stays spooled)."""

    delivered: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)
    outage: BaseException | None = None
    busy: int = 0  # files another process was delivering at the same moment


def deliver_pending(location: Any, session: Any = None, *, journals_only: bool = False) -> Delivery:
    """Deliver every spooled run that belongs to ``location`` (a StoreLocation), each exactly once
    (``journals_only``: only the run ends that dead kernels left in their journal)."""
    from filelock import FileLock, Timeout

    from . import store
    from .sinks import OUTAGE, MlflowSink, classify

    result = Delivery()
    files = pending(location.uri)
    if journals_only:
        files = [path for path in files if is_journal(path)]
    deliverable = [path for path in files if not _owned_by_live_process(path)]
    result.busy = len(files) - len(deliverable)  # run ends their own kernels are writing now
    if not deliverable:
        return result
    if not store.is_reachable(location):
        result.outage = ConnectionError(f"the store {store.redact_uri(location.uri)} is still unreachable")
        return result
    sink = MlflowSink(location, session)
    for path in deliverable:
        lock = FileLock(str(path.with_suffix(".lock")), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            result.busy += 1
            continue
        try:
            if not path.exists():
                continue  # delivered by another process a moment ago
            try:
                result.delivered.append(deliver(path, sink))
            except Exception as error:  # noqa: BLE001
                if classify(error) == OUTAGE:
                    result.outage = error
                    break
                result.set_aside.append(_set_aside(path, error))
        finally:
            lock.release()
            Path(lock.lock_file).unlink(missing_ok=True)
    return result


def _set_aside(path: Path, error: BaseException) -> str:
    """Move a file the store refuses for good to ``refused/`` (with the reason), so it is not retried."""
    from .sinks import _one_line

    target = private_dir(path.parent / REFUSED_DIR)
    reason = _one_line(error)
    header = _header(path)
    shutil.move(str(path), target / path.name)
    stem = path.stem.split("-", 1)[-1]
    if (path.parent / stem).exists():
        shutil.move(str(path.parent / stem), target / stem)
    _progress_path(path).unlink(missing_ok=True)
    (target / (path.stem + ".reason")).write_text(reason + "\n", encoding="utf-8")
    name = header.get("run_name") or header.get("run_id") or path.name
    return f"{name} ({target / path.name}): {reason}"
