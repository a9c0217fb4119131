"""The MLflow UI behind the Jupyter server: one lazily started ``mlflow server`` per store, proxied.

The process itself is started and supervised by ``jupyter_tracking.sharing.ui_server`` (one worker, no job
runners, 127.0.0.1, stopped when this Jupyter server exits). Here we only pick its ``--static-prefix`` (the
path the proxy serves it under), open the store read-only (SQLite ``mode=ro``; never a missing store, which
MLflow would create) and remember which proxy key leads to which local port. ``is_read_request`` is the
proxy's rule for what may pass: reads only. While a server starts, ``start_state`` says how far it got (the
tab polls it to show progress), and the last start's duration is what the next one is expected to take.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote
from typing import Any

from jupyter_server.utils import url_path_join

from ..store import StoreLocation, redact_uri

_servers: dict[str, Any] = {}  # proxy key -> sharing.ui_server.UIServer
_starting: dict[str, dict[str, Any]] = {}  # proxy key -> {"began": monotonic, "stage": str}
_last_start_seconds: list[float] = []  # how long the most recent start took (one value, or none yet)
_lock = threading.Lock()


@dataclass(frozen=True)
class UIResult:
    """What the "open MLflow UI" request gets: the URL to open, or a one-line reason it cannot."""

    ok: bool
    message: str
    url: str | None = None
    retry: bool = False
    status: int = 400  # the HTTP status of a refusal that retrying will not change


def proxy_key(location: StoreLocation) -> str:
    """A stable, opaque name for the store in proxy URLs (the URI itself may hold paths or credentials)."""
    return hashlib.sha256(location.uri.encode()).hexdigest()[:16]


def ensure_ui(location: StoreLocation, base_url: str) -> UIResult:
    """Start (or reuse) the UI server for ``location``; blocking, up to the server's start timeout."""
    from ..sharing.ui_server import start_ui_server

    from .queries import store_state

    state = store_state(location)
    if state == "missing":
        return UIResult(False, "This notebook has no store yet (no tracked run): nothing to show.", status=404)
    if state == "initializing":
        return UIResult(False, "A kernel is creating this store right now: try again in a few seconds.", retry=True)
    key = proxy_key(location)
    prefix = url_path_join(base_url, "jupyter-tracking/mlflow", key).rstrip("/")
    # MLflow's routes match the decoded path; the proxy forwards the path as the browser sent it.
    with _lock:
        _starting[key] = {"began": time.monotonic(), "stage": "starting"}

    def progress(_elapsed: float, stage: str) -> None:
        with _lock:
            if key in _starting:
                _starting[key]["stage"] = stage

    try:
        outcome = start_ui_server(
            read_only(location), static_prefix=unquote(prefix), frame_options="SAMEORIGIN", progress=progress
        )
    finally:
        with _lock:
            _starting.pop(key, None)
    if outcome.ok and type(outcome).__name__ == "Started":
        with _lock:
            _last_start_seconds[:] = [outcome.server.startup_seconds]
    if not outcome.ok:
        retry = type(outcome).__name__ in ("StartTimedOut", "PortInUse", "StartFailed")
        return UIResult(False, outcome.message, retry=retry)
    with _lock:
        _servers[key] = outcome.server
    return UIResult(True, outcome.message, url=prefix + "/")


def read_only(location: StoreLocation) -> StoreLocation:
    """The same store opened read-only: SQLite's ``mode=ro`` (MLflow then cannot write, whoever asks it)."""
    if location.db_path is None:
        return location
    path = str(location.db_path)
    return replace(location, uri=f"sqlite:///file:{quote(path)}?mode=ro&uri=true")


# MLflow's UI reads with GET, and with POST for searches (runs, experiments, logged models, traces, datasets)
# and GraphQL queries. Anything else through the proxy would change the store.
_READ_POST = re.compile(r"/(?:ajax-)?api/\d+\.\d+/mlflow/(?:[\w-]+/)*search(?:-[\w-]+)?$")
_GRAPHQL = re.compile(r"/graphql$")


def is_read_request(method: str, path: str, body: bytes) -> bool:
    """Whether a request to the MLflow UI only reads (the proxy forwards nothing else)."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return True
    if method != "POST":
        return False
    if _READ_POST.search(path):
        return True
    return bool(_GRAPHQL.search(path)) and b"mutation" not in body.lower()


def upstream_for(key: str) -> str | None:
    """``http://127.0.0.1:PORT`` of the running server for proxy ``key``, else None."""
    with _lock:
        server = _servers.get(key)
        if server is None:
            return None
        if not server.alive():
            del _servers[key]
            return None
        return f"http://127.0.0.1:{server.port}"


def start_state(location: StoreLocation) -> dict[str, Any]:
    """How the UI server of ``location`` is doing: "running", "starting" (with the seconds since it began, its
    stage and how long the last start took, if known) or "stopped"."""
    key = proxy_key(location)
    with _lock:
        expected = _last_start_seconds[0] if _last_start_seconds else None
        starting = _starting.get(key)
        if starting is not None:
            return {"state": "starting", "elapsed": time.monotonic() - starting["began"],
                    "stage": starting["stage"], "expected": expected}
    running = upstream_for(key) is not None
    return {"state": "running" if running else "stopped", "elapsed": None, "stage": None, "expected": expected}


def describe_running() -> list[dict[str, Any]]:
    with _lock:
        return [
            {"key": key, "store": redact_uri(server.location.uri), "alive": server.alive()}
            for key, server in _servers.items()
        ]


def stop_all() -> None:
    """Stop every UI server this Jupyter server started (tests; the sharing module also does it at exit)."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()
