"""Read-only MLflow queries for the REST API, shaped as JSON-ready dicts.

Blocking (MLflow's client is synchronous): the handlers call these in a worker thread. MLflow is imported
here, on the first request, never when the server extension loads. Nothing here writes to the store, and a
store that does not exist yet is reported as empty instead of being created.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

from ..store import StoreLocation, client_for, redact_uri

MAX_RESULTS_LIMIT = 1000
SUMMARY_TAGS = ("mlflow.note.content", "mlflow.source.name", "mlflow.parentRunId")


class NotFound(Exception):
    """The run or experiment asked for is not in the store."""


class BadQuery(Exception):
    """MLflow refused the query (a filter or order-by it cannot parse, a bad page token)."""


_schema_head: str | None = None
_schema_lock = threading.Lock()


def _mlflow_schema_head() -> str:
    """The newest database migration of the installed MLflow (what a fully created store is at)."""
    global _schema_head
    with _schema_lock:
        if _schema_head is None:
            import importlib.util

            from alembic.script import ScriptDirectory

            package = importlib.util.find_spec("mlflow").submodule_search_locations[0]
            _schema_head = ScriptDirectory(str(Path(package) / "store" / "db_migrations")).get_current_head()
        return _schema_head


def store_state(location: StoreLocation) -> str:
    """"ready", or for a SQLite store "missing" (never created) or "initializing" (a kernel is creating it).

    The server must neither create a store nor open one whose tables a kernel is still migrating: MLflow
    would run the same migrations concurrently and one side would fail. Only a store whose schema is at
    MLflow's newest revision is queried.
    """
    db_path = location.db_path
    if db_path is None:
        return "ready"
    if not db_path.is_file() or db_path.stat().st_size == 0:
        return "missing"
    try:
        with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)) as db:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return "initializing"
    return "ready" if row and row[0] == _mlflow_schema_head() else "initializing"


class Unreachable(Exception):
    """The store is a tracking server that does not answer (MLflow's client would retry for minutes)."""


def store_exists(location: StoreLocation) -> bool:
    """True when the store can be queried (see ``store_state``); raises ``Unreachable`` for a dead server."""
    if store_state(location) != "ready":
        return False
    if location.is_remote and location.uri.startswith(("http://", "https://")):
        from ..store import is_reachable

        if not is_reachable(location):
            raise Unreachable(f"The tracking server {redact_uri(location.uri)} does not answer.")
    return True


def describe_store(location: StoreLocation) -> dict[str, Any]:
    state = store_state(location)
    return {
        "uri": redact_uri(location.uri),
        "source": location.source,
        "exists": state != "missing",
        "ready": state == "ready",
        "description": location.describe(),
    }


def _mlflow_errors(func):
    """Turn MLflow's own "bad request" errors into ``BadQuery`` / ``NotFound``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return func(*args, **kwargs)
        except MlflowException as exc:
            code = getattr(exc, "error_code", "")
            if code in ("RESOURCE_DOES_NOT_EXIST",):
                raise NotFound(exc.message) from exc
            if code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE"):
                raise BadQuery(exc.message) from exc
            raise

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


@_mlflow_errors
def list_experiments(location: StoreLocation) -> list[dict[str, Any]]:
    """Active experiments of the store, most recently updated first."""
    if not store_exists(location):
        return []
    from mlflow.entities import ViewType

    client = client_for(location)
    experiments = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=MAX_RESULTS_LIMIT)
    rows = [
        {
            "experiment_id": e.experiment_id,
            "name": e.name,
            "creation_time": e.creation_time,
            "last_update_time": e.last_update_time,
            "tags": {k: v for k, v in (e.tags or {}).items() if not k.startswith("mlflow.")},
        }
        for e in experiments
    ]
    rows.sort(key=lambda row: row["last_update_time"] or 0, reverse=True)
    return rows


def _run_summary(run: Any) -> dict[str, Any]:
    from ..recovery import is_stale

    info, data = run.info, run.data
    tags = data.tags or {}
    return {
        "run_id": info.run_id,
        "run_name": info.run_name,
        "experiment_id": info.experiment_id,
        "status": info.status,
        "stale": is_stale(run),
        "start_time": info.start_time,
        "end_time": info.end_time,
        "params": dict(data.params or {}),
        "metrics": dict(data.metrics or {}),
        "tags": {k: v for k, v in tags.items() if not k.startswith("mlflow.") or k in SUMMARY_TAGS},
    }


def _sort_key(order_by: list[str] | None) -> Any:
    """The one sort of an ``order_by`` list as the panel's ``SortKey``; None for the default (newest first)."""
    from mlflow.utils.search_utils import SearchUtils

    from ..queries import SortKey

    if not order_by:
        return None
    key_type, key, ascending = SearchUtils.parse_order_by_for_search_runs(order_by[0])
    prefix = {"metric": "metrics.", "parameter": "params.", "tag": "tags."}.get(key_type, "")
    key = SearchUtils.translate_key_alias(key)
    if not prefix and key == "start_time" and not ascending:
        return None
    return SortKey(prefix + key, not ascending)


@_mlflow_errors
def search_runs(
    location: StoreLocation,
    experiment_ids: list[str] | None,
    filter_string: str = "",
    order_by: list[str] | None = None,
    max_results: int = 100,
    page_token: str | None = None,
) -> dict[str, Any]:
    """One page of runs matching MLflow's search syntax, with the token for the next page (or None).

    For an SQL store and one sort key (what the side panel sends) the same paged path as the ``%runs`` panel
    answers (``paging``: the database filters, sorts and counts, only the page is loaded, and the answer has
    ``total``); a tracking server, or several sort keys, go to MLflow's own paged ``search_runs``.
    """
    if not store_exists(location):
        return {"runs": [], "next_page_token": None, "total": 0}
    from mlflow.entities import ViewType
    from mlflow.utils.search_utils import SearchUtils

    from .. import paging, run_pages
    from ..queries import QueryError

    if not experiment_ids:
        experiment_ids = [e["experiment_id"] for e in list_experiments(location)]
        if not experiment_ids:
            return {"runs": [], "next_page_token": None, "total": 0}
    limit = max(1, min(int(max_results), MAX_RESULTS_LIMIT))
    if (not order_by or len(order_by) == 1) and run_pages.sql_store(location) is not None:
        offset = SearchUtils.parse_start_offset_from_page_token(page_token)
        try:
            pager = paging.open_pager(location, list(experiment_ids), filter_string or "", _sort_key(order_by),
                                      page_size=limit, create_indexes=False)
        except QueryError as exc:
            raise BadQuery(str(exc)) from exc
        runs = pager.page(offset, limit)
        more = pager.has_more(offset + len(runs)) if len(runs) == limit else False
        token = SearchUtils.create_page_token(offset + len(runs)).decode() if more else None
        # The total only when the page told it (a last page, or the matches were listed anyway): counting the
        # runs a params/metrics filter matches costs O(matches), so ``count_runs`` answers it on its own.
        total = offset + len(runs) if token is None else pager.known_total
        return {"runs": [_run_summary(run) for run in runs], "next_page_token": token, "total": total}
    client = client_for(location)
    page = client.search_runs(
        experiment_ids=experiment_ids,
        filter_string=filter_string or "",
        run_view_type=ViewType.ACTIVE_ONLY,
        max_results=limit,
        order_by=order_by,
        page_token=page_token or None,
    )
    token = page.token.decode() if isinstance(page.token, bytes) else page.token
    return {"runs": [_run_summary(run) for run in page], "next_page_token": token or None, "total": None}


def count_runs(location: StoreLocation, experiment_ids: list[str], filter_string: str = "") -> dict[str, Any]:
    """How many runs match (``{"total": N}``), asked apart from the first page so the page shows first. None for a
    tracking server (MLflow's API has no count: the side panel says "more" while there is a next page)."""
    from .. import paging, run_pages
    from ..queries import QueryError

    if not store_exists(location) or run_pages.sql_store(location) is None:
        return {"total": 0 if not store_exists(location) else None}
    if not experiment_ids:
        experiment_ids = [e["experiment_id"] for e in list_experiments(location)]
        if not experiment_ids:
            return {"total": 0}
    try:
        pager = paging.open_pager(location, list(experiment_ids), filter_string or "", None, page_size=1,
                                  create_indexes=False)
    except QueryError as exc:
        raise BadQuery(str(exc)) from exc
    return {"total": pager.total}


@_mlflow_errors
def get_run(location: StoreLocation, run_id: str) -> dict[str, Any]:
    """One run: its summary plus every tag and, per metric, its latest value and how many points it has."""
    if not store_exists(location):
        raise NotFound(f"Run {run_id} not found: the store is empty.")
    client = client_for(location)
    run = client.get_run(run_id)
    summary = _run_summary(run)
    summary["tags"] = dict(run.data.tags or {})
    summary["artifact_uri"] = run.info.artifact_uri
    metrics = []
    for key in sorted(run.data.metrics or {}):
        history = client.get_metric_history(run_id, key)
        latest = max(history, key=lambda m: (m.step, m.timestamp)) if history else None
        metrics.append(
            {
                "key": key,
                "value": run.data.metrics[key],
                "step": latest.step if latest else 0,
                "points": len(history),
            }
        )
    summary["metric_details"] = metrics
    return summary


def decimate(points: list[dict[str, Any]], max_points: int) -> list[dict[str, Any]]:
    """At most ``max_points`` points, evenly spread, always keeping the first and the last."""
    if max_points < 2 or len(points) <= max_points:
        return points
    last = len(points) - 1
    indexes = sorted({round(i * last / (max_points - 1)) for i in range(max_points)})
    return [points[i] for i in indexes]


@_mlflow_errors
def metric_history(location: StoreLocation, run_id: str, key: str, max_points: int = 2000) -> dict[str, Any]:
    """The step series of one metric of one run, in step order, decimated to ``max_points``."""
    if not store_exists(location):
        raise NotFound(f"Run {run_id} not found: the store is empty.")
    client = client_for(location)
    client.get_run(run_id)  # NotFound for an unknown run rather than an empty series
    history = client.get_metric_history(run_id, key)
    points = sorted(
        ({"step": m.step, "value": m.value, "timestamp": m.timestamp} for m in history),
        key=lambda p: (p["step"], p["timestamp"]),
    )
    return {"run_id": run_id, "key": key, "total": len(points), "points": decimate(points, max_points)}
