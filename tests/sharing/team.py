"""Helpers for the team-server tests: a real ``mlflow server`` (basic-auth, proxied artifacts), a real
PostgreSQL server (``jupyter_tracking.team``'s, run as the ``postgres`` user when we are root), and a real
Jupyter kernel to run cells in. The whole team stack (``jupyter_tracking.team.TeamStack``) is in test_team_stack.py."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_tracking.sharing.processes import GuardedProcess, free_port, start_guarded
from jupyter_tracking.team import DATABASE, DB_ROLE, PostgresServer

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
    """A throw-away PostgreSQL cluster: the team stack's own ``PostgresServer`` in a folder of its own.

    (pytest's tmp folders are 0700 root: the folder is made in /tmp so the ``postgres`` user can reach it.)
    """

    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="jt-pg-")))
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    server: PostgresServer | None = None

    def start(self) -> Postgres:
        os.chmod(self.folder, 0o711)
        self.server = PostgresServer(self.folder, self.password, free_port())
        self.server.start(self.folder / "logs")
        return self

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def user(self) -> str:
        return DB_ROLE

    @property
    def uri(self) -> str:
        """With the password, for a test server's command line (a throw-away cluster)."""
        return f"postgresql://{DB_ROLE}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.kill()  # throw-away: no clean shutdown needed
            self.server.remove_data()
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
