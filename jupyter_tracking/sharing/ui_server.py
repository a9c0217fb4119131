"""The MLflow UI server process: start (or reuse) one for a store, wait until healthy, stop it.

``start_ui_server()`` returns one of a few named outcomes: ``Started`` or ``Reused`` (both carry the
``UIServer``), or a failure (``PortInUse``, ``NotInstalled``, ``NotServable``, ``StartFailed``,
``StartTimedOut``) whose ``message`` is one line a user can act on. Servers are lean (one uvicorn worker
started directly, without the ``mlflow server`` process in front of it, no job runners, telemetry off), bound to
127.0.0.1, and run under a guard so they end with the kernel. Nothing is displayed here: a ``progress``
callback hears how the start goes.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..store import StoreLocation, redact_uri
from .processes import LOOPBACK, GuardedProcess, free_port, port_in_use, start_guarded

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "localhost:*", "127.0.0.1:*")
ADMIN_USERNAME = "admin"
START_TIMEOUT = 90.0
# Told to MLflow and to the libraries it starts: servers we start send no usage data anywhere.
TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

Progress = Callable[[float, str], None]
"""``progress(elapsed_seconds, stage)`` while a server starts; stage is a few words ("loading MLflow")."""


@dataclass(frozen=True)
class ServerConfig:
    """What makes two UI servers interchangeable (the port aside: None means "any free port")."""

    backend_store_uri: str
    artifact_root: str | None
    auth: bool
    allowed_hosts: tuple[str, ...]
    static_prefix: str | None
    frame_options: str
    allowed_origins: tuple[str, ...] = ()


@dataclass(eq=False)
class UIServer:
    """A running MLflow UI server: where it listens, its login (if any), and ``stop()``."""

    location: StoreLocation
    config: ServerConfig
    port: int
    process: GuardedProcess = field(repr=False)
    state_dir: Path = field(repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    startup_seconds: float = 0.0
    has_open_page: bool = False  # started as ``mlflow_server`` (not ``mlflow server``): it answers its OPEN_PATH

    @property
    def url(self) -> str:
        """The UI's address on this machine, e.g. ``http://127.0.0.1:43127/``."""
        return f"http://{LOOPBACK}:{self.port}{self.config.static_prefix or ''}/"

    @property
    def health_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.config.static_prefix or ''}/health"

    @property
    def pid(self) -> int:
        """The process group id: the guard leading ``mlflow server`` and its worker."""
        return self.process.pid

    def page_url(self, route: str = "") -> str:
        """Where a browser opens the UI at ``route`` (``display.ui_route``, from ``#``): through the server's open
        page (``mlflow_server.OPEN_PATH``: MLflow's UI preferences set first) when it has one; a server that
        ``mlflow server`` started has not, and is opened at ``route`` directly."""
        from .mlflow_server import OPEN_PATH

        return self.url + (OPEN_PATH if self.has_open_page else "") + route

    def alive(self) -> bool:
        return self.process.alive()

    def healthy(self, timeout: float = 2.0) -> bool:
        return self.alive() and _health_ok(self.health_url, timeout)

    def stop(self) -> None:
        """End the server and every process it started; forget it."""
        with _lock:
            if self in _servers:
                _servers.remove(self)
        self.process.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Started:
    server: UIServer
    ok = True

    @property
    def message(self) -> str:
        return f"MLflow UI started at {self.server.url} in {self.server.startup_seconds:.1f} s."


@dataclass(frozen=True)
class Reused:
    server: UIServer
    ok = True

    @property
    def message(self) -> str:
        return f"MLflow UI already running at {self.server.url} (reused)."


@dataclass(frozen=True)
class PortInUse:
    port: int
    ok = False

    @property
    def message(self) -> str:
        return (
            f"Port {self.port} on 127.0.0.1 is already in use; pick another with --port, "
            "or leave --port out to get a free one."
        )


@dataclass(frozen=True)
class NotInstalled:
    what: str
    hint: str
    ok = False

    @property
    def message(self) -> str:
        return f"{self.what} is not installed in this kernel's environment; {self.hint}."


@dataclass(frozen=True)
class NotServable:
    reason: str
    ok = False

    @property
    def message(self) -> str:
        return self.reason


@dataclass(frozen=True)
class StartFailed:
    exit_code: int | None
    stderr: str
    ok = False

    @property
    def message(self) -> str:
        last = _last_meaningful_line(self.stderr)
        return (
            f"The MLflow UI server exited (code {self.exit_code}) before it was ready: {last or 'no error output'}."
            " Check the store URI and the lines below."
        )


@dataclass(frozen=True)
class StartTimedOut:
    seconds: float
    stderr: str
    ok = False

    @property
    def message(self) -> str:
        return (
            f"The MLflow UI server did not answer /health within {self.seconds:.0f} s and was stopped; "
            "the machine may be busy: try again, the lines below say what it was doing."
        )


Outcome = Started | Reused | PortInUse | NotInstalled | NotServable | StartFailed | StartTimedOut


def _last_meaningful_line(stderr: str) -> str:
    for line in reversed(stderr.strip().splitlines()):
        line = line.strip()
        if line and not line.startswith(("File ", "^", "~")) and "Warning" not in line:
            return line[:300]
    return ""


# ----------------------------------------------------------------------------------------------- manager

_servers: list[UIServer] = []
_lock = threading.RLock()


def running_servers() -> list[UIServer]:
    """The UI servers started by this kernel that are still running."""
    with _lock:
        return [s for s in _servers if s.alive()]


def find_running(config: ServerConfig, port: int | None = None) -> UIServer | None:
    """A healthy running server started with ``config`` (and on ``port`` when given), else None."""
    with _lock:
        for server in list(_servers):
            if server.config == config and (port is None or server.port == port):
                if server.healthy():
                    return server
                server.stop()  # dead or wedged: forget it
    return None


def server_config(
    location: StoreLocation,
    *,
    auth: bool = False,
    allowed_hosts: tuple[str, ...] | list[str] = (),
    static_prefix: str | None = None,
    frame_options: str = "NONE",
    allowed_origins: tuple[str, ...] | list[str] = (),
) -> ServerConfig:
    """The server settings for ``location``: backend URI, artifact root, login, host and origin checks, framing."""
    artifact_root = location.artifact_root
    if artifact_root is None and location.db_path is not None:
        artifact_root = str(location.db_path.parent / "mlartifacts")
    hosts = tuple(dict.fromkeys((*DEFAULT_HOSTS, *allowed_hosts)))
    return ServerConfig(
        backend_store_uri=location.uri,
        artifact_root=artifact_root,
        auth=auth,
        allowed_hosts=hosts,
        static_prefix=(static_prefix.rstrip("/") or None) if static_prefix else None,
        frame_options=frame_options.upper(),
        allowed_origins=tuple(dict.fromkeys(allowed_origins)),
    )


def start_ui_server(
    location: StoreLocation,
    port: int | None = None,
    auth: bool = False,
    allowed_hosts: tuple[str, ...] | list[str] = (),
    static_prefix: str | None = None,
    *,
    frame_options: str = "NONE",
    allowed_origins: tuple[str, ...] | list[str] = (),
    password: str | None = None,
    timeout: float = START_TIMEOUT,
    progress: Progress | None = None,
) -> Outcome:
    """Start an MLflow UI server for ``location`` on 127.0.0.1, or reuse one started with the same settings.

    ``auth`` turns on MLflow's basic-auth login (user ``admin``, ``password`` or a generated one);
    ``allowed_hosts`` are added to the localhost names MLflow's host check accepts; ``allowed_origins`` to the
    localhost origins whose pages may write (browsers send Origin on every POST: a UI reached through a tunnel or
    a proxy needs its public origin here); ``frame_options`` is the X-Frame-Options header ("NONE" lets a
    notebook embed the UI in an iframe). Waits until ``/health`` answers, calling ``progress`` about twice a
    second meanwhile.
    """
    problem = _check_servable(location, auth)
    if problem is not None:
        return problem
    config = server_config(
        location, auth=auth, allowed_hosts=allowed_hosts, static_prefix=static_prefix, frame_options=frame_options,
        allowed_origins=allowed_origins,
    )
    with _lock:
        existing = find_running(config, port)
        if existing is not None:
            return Reused(existing)
        if port is not None and port_in_use(port):
            return PortInUse(port)
        chosen = port if port is not None else free_port()
        state_dir = Path(tempfile.mkdtemp(prefix="jt-ui-"))
        if auth:
            password = password or secrets.token_urlsafe(12)
        command, env, has_open_page = _server_command(config, chosen, state_dir, password if auth else None)
        began = time.monotonic()
        process = start_guarded(
            "mlflow-server", command, log_dir=state_dir, env=env, cwd=state_dir, remove_on_orphan=True
        )
        server = UIServer(
            location=location,
            config=config,
            port=chosen,
            process=process,
            state_dir=state_dir,
            username=ADMIN_USERNAME if auth else None,
            password=password if auth else None,
            has_open_page=has_open_page,
        )
        failure = _wait_healthy(server, timeout, progress)
        if failure is not None:
            server.stop()
            return failure
        server.startup_seconds = time.monotonic() - began
        _servers.append(server)
        return Started(server)


def _check_servable(location: StoreLocation, auth: bool) -> Outcome | None:
    if location.uri.startswith(("http://", "https://")):
        return NotServable(
            f"The store is already an MLflow server ({redact_uri(location.uri)}): open it directly, "
            "no local UI server is needed."
        )
    if location.uri.startswith("databricks"):
        return NotServable("The store is Databricks: open the experiment in your Databricks workspace.")
    if importlib.util.find_spec("mlflow") is None:
        return NotInstalled("MLflow", "run `pip install mlflow` in this environment")
    if auth and importlib.util.find_spec("flask_wtf") is None:
        return NotInstalled("MLflow's login (Flask-WTF)", "run `pip install 'mlflow[auth]'`, or share with --no-auth")
    return None


def _server_command(
    config: ServerConfig, port: int, state_dir: Path, password: str | None
) -> tuple[list[str], dict[str, str], bool]:
    """The command and environment of the server, and whether it is ``mlflow_server`` (with its open page)."""
    if password is None:
        direct = _worker_command(config, port)
        if direct is not None:
            return (*direct, True)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", LOOPBACK,
        "--port", str(port),
        "--workers", "1",
        "--backend-store-uri", config.backend_store_uri,
        "--allowed-hosts", ",".join(config.allowed_hosts),
        "--x-frame-options", config.frame_options,
    ]  # fmt: skip
    if config.artifact_root:
        command += ["--default-artifact-root", config.artifact_root, "--artifacts-destination", config.artifact_root]
    if config.static_prefix:
        command += ["--static-prefix", config.static_prefix]
    if config.allowed_origins:  # added to MLflow's localhost origins, which stay allowed
        command += ["--cors-allowed-origins", ",".join(config.allowed_origins)]
    env = _base_env()
    if password is not None:
        command += ["--app-name", "basic-auth"]
        ini = state_dir / "basic_auth.ini"
        ini.write_text(
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = sqlite:///{state_dir / 'basic_auth.db'}\n"
            f"admin_username = {ADMIN_USERNAME}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = password
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_hex(32)
    return command, env, False


def _base_env() -> dict[str, str]:
    """The server's environment: ours without tracking settings or logins, no job runners, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "MLFLOW_AUTH_"))}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    for name in ("MLFLOW_SERVER_ALLOWED_HOSTS", "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS", "MLFLOW_SERVER_X_FRAME_OPTIONS"):
        env.pop(name, None)
    env.update(TELEMETRY_OFF)
    return env


def _worker_command(config: ServerConfig, port: int) -> tuple[list[str], dict[str, str]] | None:
    """MLflow's app in one uvicorn process (``mlflow_server``); None when the installed MLflow's private names
    are not the known ones (then ``mlflow server`` itself is started)."""
    from ..internals import mlflow_server_worker_env

    if mlflow_server_worker_env() is None or importlib.util.find_spec("uvicorn") is None:
        return None
    command = [
        sys.executable, "-m", "jupyter_tracking.sharing.mlflow_server",
        "--host", LOOPBACK,
        "--port", str(port),
        "--backend-store-uri", config.backend_store_uri,
        "--allowed-hosts", ",".join(config.allowed_hosts),
        "--x-frame-options", config.frame_options,
    ]  # fmt: skip
    if config.artifact_root:
        command += ["--artifact-root", config.artifact_root]
    if config.static_prefix:
        command += ["--static-prefix", config.static_prefix]
    if config.allowed_origins:
        command += ["--cors-allowed-origins", ",".join(config.allowed_origins)]
    return command, _base_env()


def _health_ok(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port (a connect: binding could steal the port)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def _wait_healthy(server: UIServer, timeout: float, progress: Progress | None = None) -> Outcome | None:
    """None once ``/health`` answers; a failure outcome if the process exits or time runs out.

    ``progress`` hears the elapsed time and the stage: "loading MLflow" until the port is open (uvicorn opens it
    once MLflow's app is imported), then "answering".
    """
    began = time.monotonic()
    deadline = began + timeout
    told = 0.0
    while time.monotonic() < deadline:
        code = server.process.exit_code()
        if code is not None:
            stderr = server.process.stderr_tail(20)
            if "address already in use" in stderr.lower():
                return PortInUse(server.port)
            return StartFailed(code, stderr)
        if _health_ok(server.health_url, 1.0):
            return None
        now = time.monotonic()
        if progress is not None and now - told >= 0.5:
            told = now
            stage = "answering" if _listening(server.port) else "loading MLflow"
            try:
                progress(now - began, stage)
            except Exception:  # noqa: BLE001 - a display that fails must not stop the server start
                progress = None
        time.sleep(0.2)
    return StartTimedOut(timeout, server.process.stderr_tail(20))
