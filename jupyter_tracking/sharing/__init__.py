"""The MLflow UI from the notebook (``%tracking_ui`` / ``jt.ui()``), and sharing it through localtunnel.

``ui()`` starts or reuses one UI server per kernel for the current store and shows it; ``ui(share=True)``
serves it behind a supervised localtunnel tunnel with MLflow's login on; ``ui(stop=True)`` ends all of it.
Process management lives in ``ui_server``/``tunnel``/``processes``, presentation in ``display``; this module
only decides what to do and turns every failure into a ``SharingError`` with one line a user can act on.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass, field

from ..store import StoreLocation, redact_uri, resolve_store
from . import display, processes
from .tunnel import SupervisedTunnel, Tunnel, find_client
from .ui_server import PortInUse, StartFailed, StartTimedOut, UIServer, start_ui_server

__all__ = ["SharingError", "SharingState", "SharingUsageError", "current", "ui"]

# A localtunnel server to use instead of the public service when --tunnel-host is not given (a team's own).
TUNNEL_HOST_ENV = "JUPYTER_TRACKING_TUNNEL_HOST"
# Colab's kernel proxy forwards the browser's requests with its own host name, from pages of its own origin.
COLAB_PROXY_HOSTS = ("*.colab.googleusercontent.com", "*.prod.colab.dev")
COLAB_PROXY_ORIGINS = ("https://*.colab.googleusercontent.com", "https://*.prod.colab.dev")


class SharingError(RuntimeError):
    """A failure of ``ui()`` with a message a user can act on; IPython shows only the message."""

    def _render_traceback_(self) -> list[str]:
        return [f"jupyter_tracking: {self}"]


class SharingUsageError(SharingError, ValueError):
    """Options that do not go together (``%tracking_ui`` turns it into a ``UsageError``)."""


@dataclass
class _Share:
    supervisor: SupervisedTunnel
    auth: bool
    tunnel_host: str | None
    display_id: str
    password: str | None = field(default=None, repr=False)


@dataclass
class SharingState:
    """What this kernel runs for the UI: the server, and the share (tunnel) if any."""

    location: StoreLocation | None = None
    server: UIServer | None = None
    share: _Share | None = None

    @property
    def tunnel(self) -> Tunnel | None:
        return self.share.supervisor.tunnel if self.share else None

    @property
    def public_url(self) -> str | None:
        tunnel = self.tunnel
        return tunnel.url if tunnel else None


_state = SharingState()
_lock = threading.RLock()


def current() -> SharingState:
    """This kernel's UI server and share (their fields are None when nothing runs)."""
    return _state


def ui(
    port: int | None = None,
    share: bool = False,
    stop: bool = False,
    status: bool = False,
    no_auth: bool = False,
    tunnel_host: str | None = None,
    height: int = display.DEFAULT_HEIGHT,
    *,
    start_timeout: float | None = None,
    tunnel_timeout: float | None = None,
) -> None:
    """Show the MLflow UI for the current store; ``share=True`` puts it behind a public localtunnel URL.

    ``port``: serve on this 127.0.0.1 port (default: a free one). ``stop``: end the server and tunnel.
    ``status``: say what runs. ``no_auth``: share without a login (not recommended). ``tunnel_host``:
    another localtunnel server (default: ``$JUPYTER_TRACKING_TUNNEL_HOST``, else the public service). Raises ``SharingError`` (one line) when something cannot be done.
    """
    if stop and (share or status or port is not None):
        raise SharingUsageError("--stop takes no other option: it ends the UI server and any tunnel.")
    if status and (share or port is not None):
        raise SharingUsageError("--status takes no other option.")
    if not share and (no_auth or tunnel_host):
        raise SharingUsageError("--no-auth and --tunnel-host only apply together with --share.")
    if port is not None and not (1 <= int(port) <= 65535):
        raise SharingUsageError(f"--port {port} is not a TCP port (1-65535).")
    with _lock:
        if stop:
            _stop()
        elif status:
            _status()
        else:
            location = resolve_store()
            timeouts = {"timeout": start_timeout} if start_timeout else {}
            if share:
                tunnel_host = tunnel_host or os.environ.get(TUNNEL_HOST_ENV, "").strip() or None
                _share(location, port, not no_auth, tunnel_host, timeouts, tunnel_timeout)
            else:
                _local(location, port, height, timeouts)


# ----------------------------------------------------------------------------------------------- actions


def _failure(outcome) -> SharingError:
    message = outcome.message
    if isinstance(outcome, (StartFailed, StartTimedOut)) and outcome.stderr.strip():
        tail = "\n".join("    " + line for line in outcome.stderr.strip().splitlines()[-12:])
        message += "\n  server stderr (last lines):\n" + tail
    return SharingError(message)


def _local(location: StoreLocation, port: int | None, height: int, timeouts: dict) -> None:
    if location.is_remote:
        display.show_remote(location)
        return
    if _state.share is not None and _state.server is not None and _state.server.alive():
        display.note("The UI is shared (login on, no inline view): see below; %tracking_ui --stop ends the share.")
        _status()
        return
    from ..context import frontend

    colab = frontend() == "colab"
    settings = dict(
        port=port, allowed_hosts=COLAB_PROXY_HOSTS if colab else (), frame_options="NONE",
        allowed_origins=COLAB_PROXY_ORIGINS if colab else (), **timeouts,
    )
    starting = display.StartProgress(location)
    settings["progress"] = starting.update
    outcome = start_ui_server(location, **settings)
    previous = _state.server
    if isinstance(outcome, PortInUse) and previous is not None and previous.port == port:
        previous.stop()  # our own server holds the port, for another store: it makes way
        _state.server = previous = None
        outcome = start_ui_server(location, **settings)
    if not outcome.ok:
        starting.clear()
        raise _failure(outcome)
    _state.server, _state.location = outcome.server, location
    if previous is not None and previous is not outcome.server:
        previous.stop()  # one UI per kernel: the store or the port changed
    display.show_local(outcome.server, location, height, route=_route(location), replace=starting.display_id)


def _route(location: StoreLocation) -> str:
    """MLflow's page for this kernel's experiment (its runs, in the training view), if it exists yet."""
    from ..store import default_experiment_name, experiment_id_for

    try:
        experiment_id = experiment_id_for(location, default_experiment_name(), create=False)
    except Exception:  # noqa: BLE001 - no deep link is better than no UI
        experiment_id = None
    return display.ui_route(experiment_id)


def _share(
    location: StoreLocation,
    port: int | None,
    auth: bool,
    tunnel_host: str | None,
    timeouts: dict,
    tunnel_timeout: float | None,
) -> None:
    if location.is_remote:
        raise SharingError(
            f"Runs go to the MLflow server {redact_uri(location.uri)}: share that server's address "
            "(ask its admin for an account) instead of --share, which is for this machine's store."
        )
    existing = _state.share
    if existing is not None and _state.server is not None and _state.server.alive():
        same = (
            existing.auth == auth
            and existing.tunnel_host == tunnel_host
            and _state.location == location
            and (port is None or port == _state.server.port)
        )
        if same and existing.supervisor.tunnel is not None:
            display.note("Already shared (the login was shown when the share started):")
            _show_share(update=False)
            return
    from .processes import free_port, port_in_use

    client = find_client()
    if not isinstance(client, list):
        raise SharingError(client.message)
    if _state.share is not None or (port is not None and _state.server is not None and _state.server.port == port):
        _stop(quiet=True)  # an old share, or our plain server on the port asked for, goes first
    if port is not None and port_in_use(port):
        raise SharingError(
            f"Port {port} on 127.0.0.1 is already in use; pick another with --port, or leave --port out."
        )
    local_port = port if port is not None else free_port()
    supervisor = SupervisedTunnel(
        local_port,
        tunnel_host,
        on_restart=_on_tunnel_restart,
        on_give_up=_on_tunnel_give_up,
        **({"start_timeout": tunnel_timeout} if tunnel_timeout else {}),
    )
    outcome = supervisor.start()
    if not outcome.ok:
        raise SharingError(outcome.message)
    tunnel = supervisor.tunnel
    served = start_ui_server(
        location, port=local_port, auth=auth, allowed_hosts=(tunnel.host,), frame_options="DENY",
        allowed_origins=(tunnel.origin,), **timeouts,
    )
    if not served.ok:
        supervisor.stop()
        raise _failure(served)
    server = served.server
    if _state.server is not None:
        _state.server.stop()  # one UI per kernel: the shared one replaces the plain one
    _state.location, _state.server = location, server
    _state.share = _Share(supervisor, auth, tunnel_host, f"jt-share-{uuid.uuid4().hex}", server.password)
    if not auth:
        display.warn("shared WITHOUT a login (--no-auth): anyone who has the URL can read, change and delete runs.")
    _show_share(update=False)
    if auth:
        display.show_login_once(server.username, server.password)


def _show_share(update: bool) -> None:
    share, server = _state.share, _state.server
    if share is None or server is None or share.supervisor.tunnel is None:
        return
    display.show_share(
        server,
        share.supervisor.tunnel,
        auth=share.auth,
        display_id=share.display_id,
        restarts=share.supervisor.restarts,
        update=update,
    )


def _on_tunnel_restart(new: Tunnel, old: Tunnel) -> None:
    """Supervisor thread: the client came back. A new host name needs a server that allows it."""
    share = _state.share
    while not _lock.acquire(timeout=0.2):  # ui(stop=True) may hold the lock while it stops this supervisor
        if share is None or share.supervisor._stop.is_set():
            return
    try:
        _restarted(share, new, old)
    finally:
        _lock.release()


def _restarted(share: _Share | None, new: Tunnel, old: Tunnel) -> None:
    server = _state.server
    if share is None or share is not _state.share or server is None:
        return
    if new.host != old.host:
        location, port = server.location, server.port
        server.stop()
        served = start_ui_server(
            location, port=port, auth=share.auth, allowed_hosts=(new.host,), frame_options="DENY",
            allowed_origins=(new.origin,), password=share.password,
        )
        if not served.ok:
            display.warn(f"the tunnel moved to {new.url} but the UI server could not restart: {served.message}")
            _state.server = None
            return
        _state.server = served.server
    display.warn(f"the tunnel restarted; the shared UI is at {new.url}")
    _show_share(update=True)


def _on_tunnel_give_up(outcome) -> None:
    display.warn(f"the tunnel is down and could not be restarted: {outcome.message} (%tracking_ui --stop)")


def _stop(quiet: bool = False) -> None:
    share, server = _state.share, _state.server
    _state.share, _state.server = None, None
    if share is not None:
        share.supervisor.stop()
    if server is not None:
        server.stop()
    if not quiet:
        if share is not None:
            display.note("Stopped the shared MLflow UI: the tunnel and the server are gone.")
        elif server is not None:
            display.note("Stopped the MLflow UI server.")
        else:
            display.note("No MLflow UI is running.")


def _status() -> None:
    server = _state.server
    if server is None:
        display.note("No MLflow UI is running; start one with %tracking_ui (add --share for a public URL).")
        return
    state = "running" if server.healthy() else "NOT answering (restart it with %tracking_ui --stop, then %tracking_ui)"
    display.note(f"MLflow UI {state} at {server.url} for {server.location.describe()} (pid {server.pid}).")
    share = _state.share
    if share is not None:
        tunnel = share.supervisor.tunnel
        if tunnel is not None and tunnel.alive():
            display.note(
                f"Shared at {tunnel.url} (tunnel password {tunnel.password or 'unknown'}; "
                f"login {'on' if share.auth else 'OFF'}; restarts {share.supervisor.restarts})."
            )
        else:
            failure = share.supervisor.last_failure
            display.note(f"Tunnel down, restarting{': ' + failure.message if failure else ''}.")


def _stop_supervision() -> None:
    """At exit: no restarts while the helper processes are being stopped."""
    share = _state.share
    if share is not None:
        share.supervisor._stop.set()


processes.on_exit(_stop_supervision)
