"""The MLflow UI behind the Jupyter server: one lazily started ``mlflow server`` per store, proxied.

The process itself is started and supervised by ``jupyter_tracking.sharing.ui_server`` (one worker, no job
runners, 127.0.0.1, stopped when this Jupyter server exits). Here we only pick its ``--static-prefix`` (the
path the proxy serves it under) and remember which proxy key leads to which local port.
"""

from __future__ import annotations

import hashlib
import threading
from urllib.parse import unquote
from dataclasses import dataclass
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


def proxy_key(location: StoreLocation) -> str:
    """A stable, opaque name for the store in proxy URLs (the URI itself may hold paths or credentials)."""
    return hashlib.sha256(location.uri.encode()).hexdigest()[:16]


def ensure_ui(location: StoreLocation, base_url: str) -> UIResult:
    """Start (or reuse) the UI server for ``location``; blocking, up to the server's start timeout."""
    from ..sharing.ui_server import start_ui_server

    from .queries import store_state

    if store_state(location) == "initializing":
        return UIResult(False, "A kernel is creating this store right now: try again in a few seconds.", retry=True)
    key = proxy_key(location)
    prefix = url_path_join(base_url, "jupyter-tracking/mlflow", key).rstrip("/")
    # MLflow's routes match the decoded path; the proxy forwards the path as the browser sent it.
    outcome = start_ui_server(location, static_prefix=unquote(prefix), frame_options="SAMEORIGIN")
    if not outcome.ok:
        retry = type(outcome).__name__ in ("StartTimedOut", "PortInUse", "StartFailed")
        return UIResult(False, outcome.message, retry=retry)
    with _lock:
        _servers[key] = outcome.server
    return UIResult(True, outcome.message, url=prefix + "/")


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
