"""Helpers for the team-server tests: a real ``mlflow server`` (basic-auth, proxied artifacts), a real
PostgreSQL server started as the ``postgres`` user, and a real Jupyter kernel to run cells in."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_tracking.sharing.processes import GuardedProcess, free_port, start_guarded

REPO = Path(__file__).resolve().parents[2]


@dataclass
class TeamServer:
    """``mlflow server`` as a team would run it: a database backend, artifacts proxied, optionally a login."""

    backend_uri: str
    folder: Path
    password: str | None = None
    port: int = field(default_factory=free_port)
    process: GuardedProcess | None = None
    start_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> TeamServer:
        command = [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1", "--backend-store-uri", self.backend_uri,
            "--serve-artifacts", "--artifacts-destination", str(self.folder / "artifacts"),
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "MLFLOW_AUTH_"))}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        if self.password:
            command += ["--app-name", "basic-auth"]
            ini = self.folder / "basic_auth.ini"
            ini.write_text(
                f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{self.folder / 'auth.db'}\n"
                "admin_username = admin\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            )
            env.update(
                MLFLOW_AUTH_CONFIG_PATH=str(ini),
                MLFLOW_AUTH_ADMIN_PASSWORD=self.password,
                MLFLOW_FLASK_SERVER_SECRET_KEY="team-server-secret-key-for-tests",
            )
        began = time.monotonic()
        self.process = start_guarded("team-mlflow", command, log_dir=self.folder / "logs", env=env, cwd=self.folder)
        import urllib.request

        deadline = began + timeout
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise RuntimeError(f"team server exited:\n{self.process.stderr_tail(30)}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        self.start_seconds = time.monotonic() - began
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("team server did not become healthy")

    def kill(self) -> None:
        """End it abruptly, as a crash or a dropped network would: SIGKILL the whole group."""
        import signal

        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.popen.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@dataclass
class Postgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (run as ``postgres`` when we are root: it refuses root)."""

    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="jt-pg-")))  # pytest's tmp is 0700 root
    port: int = field(default_factory=free_port)

    @staticmethod
    def bindir() -> Path:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if found:
            return Path(found[-1]).parent
        initdb = shutil.which("initdb")
        if initdb:
            return Path(initdb).resolve().parent
        raise RuntimeError("PostgreSQL is not installed: `apt-get install postgresql` (.ci/run does it)")

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def start(self) -> Postgres:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        bindir = self.bindir()
        self._run(str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "pg.log"),
                  "-w", "-t", "60", "start")
        self._run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "mlflow")
        return self

    @property
    def uri(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/mlflow"

    def stop(self) -> None:
        try:
            self._run(str(self.bindir() / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


class Kernel:
    """A real IPython kernel (jupyter_client) with ``jupyter_tracking`` loaded; ``run()`` executes one cell."""

    def __init__(self, cwd: Path, env: dict[str, str]):
        from jupyter_client.manager import start_new_kernel

        kernel_env = dict(os.environ)
        kernel_env.update(env)
        kernel_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), kernel_env.get("PYTHONPATH")) if p)
        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=kernel_env)
        self.run("%load_ext jupyter_tracking")

    def run(self, code: str, timeout: float = 300.0) -> dict:
        """Execute ``code``; returns {"stdout", "stderr", "data": [bundles], "error": ename or None}."""
        result: dict = {"stdout": "", "stderr": "", "data": [], "error": None, "traceback": ""}

        def hook(msg: dict) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                result[content["name"]] += content["text"]
            elif kind in ("display_data", "execute_result", "update_display_data"):
                result["data"].append(content["data"])
            elif kind == "error":
                result["error"] = content["ename"]
                result["traceback"] = "\n".join(content["traceback"])

        self.client.execute_interactive(code, output_hook=hook, timeout=timeout, allow_stdin=False)
        return result

    def run_ok(self, code: str, timeout: float = 300.0) -> dict:
        result = self.run(code, timeout)
        assert result["error"] is None, result
        return result

    @property
    def pid(self) -> int:
        return self.manager.provisioner.process.pid

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)
