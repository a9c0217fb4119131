"""A public URL for a local port through localtunnel: the npm ``lt`` client, started, watched, restarted.

``start_tunnel()`` runs one ``lt`` process and returns ``TunnelOpen`` (with its ``Tunnel``) or a named failure
(``NodeMissing``, ``ClientMissing``, ``TunnelServerUnreachable``, ``TunnelFailed``, ``TunnelTimedOut``).
``SupervisedTunnel`` keeps one open: when the client exits (a dropped tunnel, a killed process) it is
restarted with back-off, asking for the same name, and ``on_restart(new, old)`` announces the URL.

The tunnel password the hosted service shows visitors is the tunnel owner's public IP; the service itself
tells it at ``/mytunnelpassword``, fetched here once per tunnel server.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from .processes import LOOPBACK, GuardedProcess, start_guarded

DEFAULT_TUNNEL_HOST = "https://localtunnel.me"  # the lt client's own default
DEFAULT_PASSWORD_URL = "https://loca.lt/mytunnelpassword"
LOCALTUNNEL_PACKAGE = "localtunnel@2.0.2"
START_TIMEOUT = 30.0
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STABLE_SECONDS = 60.0  # a tunnel up this long resets the back-off
_URL_LINE = re.compile(r"your url is: (\S+)")


@dataclass(eq=False)
class Tunnel:
    """One running ``lt`` client: the public URL it got and the local port it forwards to."""

    url: str
    local_port: int
    tunnel_host: str
    process: GuardedProcess = field(repr=False)
    state_dir: Path = field(repr=False)
    password: str | None = None  # what visitors type on the service's reminder page (owner's public IP)
    setup_seconds: float = 0.0

    @property
    def host(self) -> str:
        """The Host header visitors' requests carry (``abc.loca.lt``): what MLflow's host check must allow."""
        return urlsplit(self.url).netloc

    @property
    def origin(self) -> str:
        """``https://abc.loca.lt``: the Origin visitors' browsers send, which MLflow must let write."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def name(self) -> str:
        """The tunnel's name (sub-domain), asked for again when the client restarts."""
        return urlsplit(self.url).hostname.split(".", 1)[0]

    def alive(self) -> bool:
        return self.process.alive()

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class TunnelOpen:
    tunnel: Tunnel
    ok = True

    @property
    def message(self) -> str:
        return f"Tunnel open at {self.tunnel.url} in {self.tunnel.setup_seconds:.1f} s."


@dataclass(frozen=True)
class NodeMissing:
    ok = False

    @property
    def message(self) -> str:
        return (
            "Node.js is not installed, and --share needs it for the localtunnel client: install it "
            "(`apt-get install nodejs npm`, `conda install nodejs`) and run the command again."
        )


@dataclass(frozen=True)
class ClientMissing:
    ok = False

    @property
    def message(self) -> str:
        return (
            "Neither the localtunnel client `lt` nor `npx` was found: run `npm install -g localtunnel@2.0.2` "
            "and try again."
        )


@dataclass(frozen=True)
class TunnelServerUnreachable:
    tunnel_host: str
    reason: str
    ok = False

    @property
    def message(self) -> str:
        return (
            f"Cannot reach the localtunnel server {self.tunnel_host} ({self.reason}); check the address "
            "given with --tunnel-host, or the network."
        )


@dataclass(frozen=True)
class TunnelFailed:
    exit_code: int | None
    stderr: str
    ok = False

    @property
    def message(self) -> str:
        last = next((ln.strip() for ln in reversed(self.stderr.splitlines()) if ln.strip().startswith("Error")), "")
        last = last or next((ln.strip() for ln in reversed(self.stderr.splitlines()) if ln.strip()), "no output")
        return f"The localtunnel client exited (code {self.exit_code}) before opening a tunnel: {last[:300]}."


@dataclass(frozen=True)
class TunnelTimedOut:
    tunnel_host: str
    seconds: float
    ok = False

    @property
    def message(self) -> str:
        return (
            f"The localtunnel server {self.tunnel_host} gave no tunnel within {self.seconds:.0f} s (it may be "
            "refusing new tunnels or be overloaded); try again later or use --tunnel-host."
        )


TunnelOutcome = TunnelOpen | NodeMissing | ClientMissing | TunnelServerUnreachable | TunnelFailed | TunnelTimedOut


# ----------------------------------------------------------------------------------------------- client


def find_client() -> list[str] | NodeMissing | ClientMissing:
    """The command that runs the localtunnel client, or why there is none.

    In order: ``$JUPYTER_TRACKING_LT``, the pinned client of a source checkout (``sharing-node/``), ``lt`` on
    PATH, then ``npx --yes localtunnel@2.0.2`` (downloads it once; what Colab uses).
    """
    if shutil.which("node") is None:
        return NodeMissing()
    explicit = os.environ.get("JUPYTER_TRACKING_LT")
    if explicit:
        return [explicit]
    pinned = Path(__file__).resolve().parents[2] / "sharing-node" / "node_modules" / ".bin" / "lt"
    if pinned.exists():
        return [str(pinned)]
    on_path = shutil.which("lt")
    if on_path:
        return [on_path]
    npx = shutil.which("npx")
    if npx:
        return [npx, "--yes", LOCALTUNNEL_PACKAGE]
    return ClientMissing()


def fetch_tunnel_password(tunnel_host: str | None, timeout: float = 10.0) -> str | TunnelServerUnreachable:
    """The tunnel password (the owner's public IP) as the tunnel service reports it.

    Returns ``TunnelServerUnreachable`` when the service cannot be reached at all, and "" when it answers
    but has no such page (a self-hosted server without the reminder page).
    """
    host = (tunnel_host or DEFAULT_TUNNEL_HOST).rstrip("/")
    url = DEFAULT_PASSWORD_URL if tunnel_host is None else f"{host}/mytunnelpassword"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a URL the user chose
            return response.read(200).decode("utf-8", "replace").strip()
    except urllib.error.HTTPError:
        return ""
    except urllib.error.URLError as exc:
        reason = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
        return TunnelServerUnreachable(host, str(reason))
    except (OSError, ValueError) as exc:
        return TunnelServerUnreachable(host, str(exc) or type(exc).__name__)


def start_tunnel(
    local_port: int,
    tunnel_host: str | None = None,
    *,
    name: str | None = None,
    password: str | None = None,
    timeout: float = START_TIMEOUT,
) -> TunnelOutcome:
    """Open a tunnel to 127.0.0.1:``local_port`` with the ``lt`` client; wait until it prints its URL.

    ``tunnel_host`` is the localtunnel server (None: the public service), ``name`` the sub-domain to ask for,
    ``password`` the tunnel password if already known (else fetched, which also checks the server answers).
    """
    client = find_client()
    if not isinstance(client, list):
        return client
    if password is None:
        fetched = fetch_tunnel_password(tunnel_host)
        if isinstance(fetched, TunnelServerUnreachable):
            return fetched
        password = fetched
    server = (tunnel_host or DEFAULT_TUNNEL_HOST).rstrip("/")
    command = [*client, "--port", str(local_port), "--local-host", LOOPBACK, "--host", server]
    if name:
        command += ["--subdomain", name]
    state_dir = Path(tempfile.mkdtemp(prefix="jt-lt-"))
    began = time.monotonic()
    try:
        process = start_guarded("lt", command, log_dir=state_dir, cwd=state_dir, remove_on_orphan=True)
    except OSError as exc:  # pragma: no cover - the guard itself could not start
        shutil.rmtree(state_dir, ignore_errors=True)
        return TunnelFailed(None, str(exc))
    deadline = began + timeout
    while time.monotonic() < deadline:
        match = _URL_LINE.search(process.stdout_text())
        if match:
            return TunnelOpen(
                Tunnel(
                    url=match.group(1),
                    local_port=local_port,
                    tunnel_host=server,
                    process=process,
                    state_dir=state_dir,
                    password=password or None,
                    setup_seconds=time.monotonic() - began,
                )
            )
        code = process.exit_code()
        if code is not None:
            stderr = process.stderr_tail(30)
            process.stop()
            shutil.rmtree(state_dir, ignore_errors=True)
            return TunnelFailed(code, stderr)
        time.sleep(0.1)
    process.stop()
    shutil.rmtree(state_dir, ignore_errors=True)
    return TunnelTimedOut(server, timeout)


# ----------------------------------------------------------------------------------------------- supervision


class SupervisedTunnel:
    """Keeps a tunnel to ``local_port`` open: restarts the client with back-off whenever it exits.

    ``on_restart(new_tunnel, old_tunnel)`` runs on the supervisor's thread after each successful restart
    (the URL may have changed); ``on_give_up(outcome)`` if a restart fails ``max_failures`` times in a row.
    """

    def __init__(
        self,
        local_port: int,
        tunnel_host: str | None = None,
        *,
        on_restart: Callable[[Tunnel, Tunnel], None] | None = None,
        on_give_up: Callable[[TunnelOutcome], None] | None = None,
        backoff: tuple[float, ...] = BACKOFF_SECONDS,
        start_timeout: float = START_TIMEOUT,
        max_failures: int = 20,
    ) -> None:
        self.local_port = local_port
        self.tunnel_host = tunnel_host
        self.on_restart = on_restart
        self.on_give_up = on_give_up
        self.backoff = backoff
        self.start_timeout = start_timeout
        self.max_failures = max_failures
        self.tunnel: Tunnel | None = None
        self.restarts = 0
        self.last_failure: TunnelOutcome | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> TunnelOutcome:
        """Open the first tunnel; on success, start watching it."""
        outcome = start_tunnel(self.local_port, self.tunnel_host, timeout=self.start_timeout)
        if outcome.ok:
            self.tunnel = outcome.tunnel
            self._thread = threading.Thread(target=self._watch, name="jt-tunnel-supervisor", daemon=True)
            self._thread.start()
        return outcome

    @property
    def url(self) -> str | None:
        return self.tunnel.url if self.tunnel else None

    def stop(self) -> None:
        """Stop supervising and end the client."""
        self._stop.set()
        with self._lock:
            tunnel, self.tunnel = self.tunnel, None
        if tunnel is not None:
            tunnel.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.start_timeout + 5)

    def _watch(self) -> None:
        failures = 0
        while not self._stop.is_set():
            tunnel = self.tunnel
            if tunnel is None:
                return
            up_since = time.monotonic()
            while tunnel.alive() and not self._stop.is_set():
                self._stop.wait(0.2)
            if self._stop.is_set():
                return
            if time.monotonic() - up_since > STABLE_SECONDS:
                failures = 0
            while not self._stop.is_set():
                delay = self.backoff[min(failures, len(self.backoff) - 1)]
                if self._stop.wait(delay):
                    return
                outcome = start_tunnel(
                    self.local_port,
                    self.tunnel_host,
                    name=tunnel.name,
                    password=tunnel.password or "",
                    timeout=self.start_timeout,
                )
                with self._lock:
                    if self._stop.is_set():
                        if outcome.ok:
                            outcome.tunnel.stop()
                        return
                    if outcome.ok:
                        old, self.tunnel = tunnel, outcome.tunnel
                tunnel.stop()  # the exited client's guard and logs
                if outcome.ok:
                    self.restarts += 1
                    self.last_failure = None
                    if self.on_restart is not None:
                        try:
                            self.on_restart(self.tunnel, old)
                        except Exception:  # noqa: BLE001 - an announcement must not kill supervision
                            pass
                    break
                failures += 1
                self.last_failure = outcome
                if failures >= self.max_failures:
                    if self.on_give_up is not None:
                        self.on_give_up(outcome)
                    return
