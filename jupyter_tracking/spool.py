"""The spool: run data kept in local files while the store is unreachable, delivered later by ``sync``.

One JSON-lines file per run in ``$JUPYTER_TRACKING_SPOOL_DIR`` (default ``~/.cache/jupyter_tracking/spool``).
Records: ``run`` (where it belongs; the MLflow run id if the run was created before the store went away),
``batch`` (params, metrics, tags), ``artifact`` (a file copied into the spool), ``dataset`` and ``end``.
``sync(location)`` replays every file that belongs to that store and deletes it once delivered.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from .private_files import copy_private, open_private, private_dir


def spool_dir() -> Path:
    configured = os.environ.get("JUPYTER_TRACKING_SPOOL_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "jupyter_tracking" / "spool"


class SpoolFile:
    """Appends one run's records to its spool file."""

    def __init__(self, uri: str, experiment: str, run_id: str | None, run_info: dict[str, Any]) -> None:
        folder = private_dir(spool_dir())
        self.local_id = uuid.uuid4().hex
        self.path = folder / f"{int(time.time())}-{self.local_id}.jsonl"
        self.files = folder / self.local_id
        self._append({"op": "run", "uri": uri, "experiment": experiment, "run_id": run_id, **run_info})

    def _append(self, record: dict[str, Any]) -> None:
        with open_private(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def batch(self, params: dict[str, str], metrics: list[tuple[str, float, int, int]], tags: dict[str, str]) -> None:
        if params or metrics or tags:
            self._append({"op": "batch", "params": params, "metrics": metrics, "tags": tags})

    def artifact(self, local_path: str, artifact_path: str | None) -> None:
        folder = self.files / uuid.uuid4().hex[:8]  # keeps the file's own name, which MLflow logs it under
        private_dir(folder)
        target = folder / Path(local_path).name
        copy_private(local_path, target)
        self._append({"op": "artifact", "file": str(target), "artifact_path": artifact_path})

    def dataset(self, entity: dict[str, Any]) -> None:
        self._append({"op": "dataset", **entity})

    def end(self, status: str, end_time: int) -> None:
        self._append({"op": "end", "status": status, "end_time": end_time})


def pending(uri: str | None = None) -> list[Path]:
    """Spool files waiting for delivery (to ``uri`` only, when given), oldest first."""
    folder = spool_dir()
    if not folder.exists():
        return []
    files = sorted(folder.glob("*.jsonl"))
    if uri is None:
        return files
    return [path for path in files if _header(path).get("uri") == uri]


def _header(path: Path) -> dict[str, Any]:
    records = _read(path)
    return records[0] if records else {}


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


def deliver(path: Path, client: Any, experiment_id_for: Any) -> str:
    """Replay one spool file into the store through ``client``; returns the run id. Raises if unreachable."""
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

    records = _read(path)
    header = records[0]
    run_id = header.get("run_id")
    if run_id is None:
        experiment_id = experiment_id_for(header["experiment"])
        run = client.create_run(
            experiment_id, start_time=header.get("start_time"), tags=header.get("tags") or {},
            run_name=header.get("run_name"),
        )
        run_id = run.info.run_id
        # Remember the new id so that a sync interrupted from here on does not create the run twice.
        header["run_id"] = run_id
        lines = [json.dumps(header)] + [json.dumps(record) for record in records[1:]]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for record in records[1:]:
        op = record["op"]
        if op == "batch":
            client.log_batch(
                run_id,
                metrics=[Metric(key, value, timestamp, step) for key, value, timestamp, step in record["metrics"]],
                params=[Param(key, value) for key, value in record["params"].items()],
                tags=[RunTag(key, value) for key, value in record["tags"].items()],
            )
        elif op == "artifact":
            client.log_artifact(run_id, record["file"], record.get("artifact_path"))
        elif op == "dataset":
            fields = {k: record[k] for k in ("name", "digest", "source_type", "source", "schema", "profile")}
            client.log_inputs(run_id, [DatasetInput(Dataset(**fields), [InputTag("mlflow.data.context", "notebook")])])
        elif op == "end":
            client.set_terminated(run_id, record["status"], end_time=record["end_time"])
    shutil.rmtree(path.parent / path.stem.split("-", 1)[1], ignore_errors=True)
    path.unlink()
    return run_id


def deliver_pending(location: Any) -> list[str]:
    """Deliver every spooled run that belongs to ``location`` (a StoreLocation); returns their run ids.

    Raises ConnectionError if the store is still unreachable; a file that fails half-way stays for next time.
    """
    from . import store

    files = pending(location.uri)
    if not files:
        return []
    if not store.is_reachable(location):
        raise ConnectionError(f"the store {store.redact_uri(location.uri)} is still unreachable")
    client = store.client_for(location)
    return [deliver(path, client, lambda name: store.experiment_id_for(location, name)) for path in files]
