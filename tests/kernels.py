"""The one driver of real IPython kernels for the tests, and the one builder of projects and notebooks.

``Kernel`` starts a real ipykernel (jupyter_client) in a folder and drives it as a front end does: execute
requests carry the cell id, every iopub message of a request is recorded with its arrival time, and it can be
interrupted or killed. ``make_project`` and ``write_notebook`` lay out what a user has on disk.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


# ---------------------------------------------------------------------------------------------- projects
def make_project(root: Path, name: str = "demo", *, git: bool = False) -> Path:
    """A project folder as users have one: ``pyproject.toml`` and a ``notebooks/`` sub-folder."""
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(f"[project]\nname='{name}'\n")
    if git:
        import subprocess

        subprocess.run(["git", "init", "-q", str(root)], check=True)
        subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
        subprocess.run(["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"],
                       check=True)
    return root


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook of code cells with the python3 kernelspec, saved at ``path``."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


# ---------------------------------------------------------------------------------------------- kernels
@dataclass
class Message:
    at: float  # seconds since the request was sent
    msg: dict

    @property
    def type(self) -> str:
        return self.msg["msg_type"]

    @property
    def content(self) -> dict:
        return self.msg["content"]

    def size(self) -> int:
        return len(json.dumps(self.content)) + sum(len(b) for b in self.msg.get("buffers") or [])


@dataclass
class Execution:
    """One execute request: its reply and every iopub message it caused, in arrival order."""

    reply: dict
    messages: list[Message] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.reply["content"]["status"]

    @property
    def error(self) -> str | None:
        return self.reply["content"].get("ename") if self.status == "error" else None

    @property
    def traceback(self) -> str:
        return "\n".join("\n".join(m.content["traceback"]) for m in self.messages if m.type == "error")

    def stream(self, name: str) -> str:
        return "".join(m.content["text"] for m in self.messages if m.type == "stream" and m.content["name"] == name)

    @property
    def stdout(self) -> str:
        return self.stream("stdout")

    @property
    def stderr(self) -> str:
        return self.stream("stderr")

    @property
    def data(self) -> list[dict]:
        """The MIME bundles shown (display_data, execute_result, update_display_data), in order."""
        return [m.content["data"] for m in self.messages
                if m.type in ("display_data", "execute_result", "update_display_data")]

    @property
    def displays(self) -> list[dict]:
        """Only the display_data bundles (what a cell displays, not its value)."""
        return [m.content["data"] for m in self.messages if m.type == "display_data"]


class Kernel:
    """A real IPython kernel in ``cwd``. The environment is this process's without ``MLFLOW_TRACKING_URI`` and
    ``JPY_SESSION_NAME`` (so the kernel resolves the project's own store), plus ``env`` (a None value unsets the
    variable); ``load_ext`` runs ``%load_ext jupyter_tracking`` first."""

    def __init__(self, cwd: Path, env: dict[str, str | None] | None = None, *, load_ext: bool = False) -> None:
        from jupyter_client.manager import start_new_kernel

        kernel_env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "JPY_SESSION_NAME")}
        for key, value in (env or {}).items():
            if value is None:
                kernel_env.pop(key, None)
            else:
                kernel_env[key] = value
        kernel_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), kernel_env.get("PYTHONPATH")) if p)
        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd), env=kernel_env)
        if load_ext:
            self.run_ok("%load_ext jupyter_tracking")

    # ------------------------------------------------------------------ requests
    def send(self, code: str, cell_id: str | None = None) -> str:
        """Send an execute request (as JupyterLab does: the cell id in the metadata); returns its msg id."""
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}
        message = self.client.session.msg("execute_request", content, metadata={"cellId": cell_id} if cell_id else {})
        self.client.shell_channel.send(message)
        self._sent_at = time.monotonic()
        return message["header"]["msg_id"]

    def wait(self, msg_id: str, timeout: float = 300) -> Execution:
        """The reply to ``msg_id`` and its iopub messages up to the kernel's idle status."""
        started = getattr(self, "_sent_at", time.monotonic())
        deadline = time.monotonic() + timeout
        messages: list[Message] = []
        idle = False
        while not idle:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no idle status for the request within {timeout} s")
            message = self.client.get_iopub_msg(timeout=remaining)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "status":
                idle = message["content"]["execution_state"] == "idle"
                continue
            messages.append(Message(time.monotonic() - started, message))
        while True:
            reply = self.client.get_shell_msg(timeout=max(1.0, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return Execution(reply, messages)

    def execute(self, code: str, cell_id: str | None = None, timeout: float = 300) -> Execution:
        return self.wait(self.send(code, cell_id), timeout)

    def run_ok(self, code: str, cell_id: str | None = None, timeout: float = 300) -> Execution:
        execution = self.execute(code, cell_id, timeout)
        assert execution.status == "ok", execution.traceback or execution.reply["content"]
        return execution

    # ------------------------------------------------------------------ faults
    @property
    def pid(self) -> int:
        return self.manager.provisioner.process.pid

    def interrupt(self) -> None:
        self.manager.interrupt_kernel()

    def kill(self) -> None:
        """SIGKILL the kernel process, as the out-of-memory killer would."""
        os.kill(self.pid, signal.SIGKILL)
        self.manager.provisioner.process.wait(10)

    def close(self, now: bool = True) -> None:
        self.client.stop_channels()
        try:
            self.manager.shutdown_kernel(now=now)
        except Exception:  # noqa: BLE001 - already dead (killed by the test)
            pass
