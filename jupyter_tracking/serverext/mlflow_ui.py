"""The MLflow UI behind the Jupyter server: one lazily started ``mlflow server`` per store, proxied.

The process itself is started and supervised by ``jupyter_tracking.sharing.ui_server`` (one worker, no job
runners, 127.0.0.1, stopped when this Jupyter server exits). Here we only pick its ``--static-prefix`` (the
path the proxy serves it under), open the store read-only (SQLite ``mode=ro``; never a missing store, which
MLflow would create) and remember which proxy key leads to which local port. ``is_read_request`` is the
proxy's rule for what may pass: reads only.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote
from typing import Any

from jupyter_server.utils import url_path_join

from ..store import StoreLocation, redact_uri

_servers: dict[str, Any] = {}  # proxy key -> sharing.ui_server.UIServer
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
    outcome = start_ui_server(read_only(location), static_prefix=unquote(prefix), frame_options="SAMEORIGIN")
    if not outcome.ok:
        retry = type(outcome).__name__ in ("StartTimedOut", "PortInUse", "StartFailed")
        return UIResult(False, outcome.message, retry=retry)
    with _lock:
        _servers[key] = outcome.server
    return UIResult(True, outcome.message, url=prefix + "/")


def read_only(location: StoreLocation) -> StoreLocation:
    """The same store opened read-only: SQLite's ``mode=ro`` (MLflow then cannot write, whoever asks it)."""
    if not location.uri.startswith("sqlite:///"):
        return location
    path = location.uri.removeprefix("sqlite:///")
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
