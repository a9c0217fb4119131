"""The one driver of real IPython kernels for the tests, and the one builder of projects and notebooks.

``Kernel`` starts a real ipykernel (jupyter_client) in a folder and drives it as a front end does: execute
requests carry the cell id, every iopub message of a request is recorded with its arrival time, and it can be
interrupted or killed. ``make_project`` and ``write_notebook`` lay out what a user has on disk.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time
import uuid
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
    def text(self) -> str:
        """Everything printed, in order: streams, and tracebacks of errors."""
        parts = []
        for m in self.messages:
            if m.type == "stream":
                parts.append(m.content["text"])
            elif m.type == "error":
                parts.append("\n".join(m.content.get("traceback", [])))
        return "".join(parts)

    @property
    def displays(self) -> list[dict]:
        """Only the display_data bundles (what a cell displays, not its value)."""
        return [m.content["data"] for m in self.messages if m.type == "display_data"]


class Kernel:
    """A real IPython kernel in ``cwd``, started as jupyter_server starts one (its connection file is named after
    its kernel id). The environment is this process's without ``MLFLOW_TRACKING_URI`` and ``JPY_SESSION_NAME``
    (so the kernel resolves the project's own store), plus ``env`` (a None value unsets the variable);
    ``load_ext`` runs ``%load_ext jupyter_tracking`` first. Requests may be pipelined: every iopub message is
    kept under the request it answers."""

    def __init__(self, cwd: Path, env: dict[str, str | None] | None = None, *, load_ext: bool = False) -> None:
        from jupyter_client.manager import KernelManager
        from jupyter_core.paths import jupyter_runtime_dir

        kernel_env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "JPY_SESSION_NAME")}
        for key, value in (env or {}).items():
            if value is None:
                kernel_env.pop(key, None)
            else:
                kernel_env[key] = value
        kernel_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), kernel_env.get("PYTHONPATH")) if p)
        self.spool_dir = Path(kernel_env["JUPYTER_TRACKING_SPOOL_DIR"]) if kernel_env.get("JUPYTER_TRACKING_SPOOL_DIR") \
            else Path.home() / ".cache" / "jupyter_tracking" / "spool"
        self.kernel_id = str(uuid.uuid4())
        runtime = Path(jupyter_runtime_dir())
        runtime.mkdir(parents=True, exist_ok=True)
        self.manager = KernelManager(kernel_name="python3",
                                     connection_file=str(runtime / f"kernel-{self.kernel_id}.json"))
        self.manager.start_kernel(cwd=str(cwd), env=kernel_env)
        self.client = self.manager.client()
        self.client.start_channels()
        try:
            self.client.wait_for_ready(timeout=120)
        except RuntimeError:
            self.close()
            raise
        self._sent: dict[str, float] = {}  # msg_id -> when it was sent
        self._iopub: dict[str, list[Message]] = {}  # msg_id -> its iopub messages, in arrival order
        self._idle: set[str] = set()
        self._replies: dict[str, dict] = {}
        if load_ext:
            self.run_ok("%load_ext jupyter_tracking")

    # ------------------------------------------------------------------ requests
    def send(self, code: str, cell_id: str | None = None) -> str:
        """Send an execute request (as JupyterLab does: the cell id in the metadata); returns its msg id."""
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": True}
        message = self.client.session.msg("execute_request", content, metadata={"cellId": cell_id} if cell_id else {})
        self.client.shell_channel.send(message)
        msg_id = message["header"]["msg_id"]
        self._sent[msg_id] = time.monotonic()
        return msg_id

    def reply(self, msg_id: str, timeout: float = 300) -> dict:
        """The shell reply to ``msg_id`` (replies to other requests are kept for their turn)."""
        deadline = time.monotonic() + timeout
        while msg_id not in self._replies:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply within {timeout} s")
            reply = self.client.get_shell_msg(timeout=remaining)
            self._replies[reply["parent_header"].get("msg_id")] = reply
        return self._replies.pop(msg_id)

    def collect(self, seconds: float = 0.0, until_idle: str | None = None, timeout: float = 300) -> None:
        """Read iopub messages for ``seconds``, or until request ``until_idle`` reports idle."""
        deadline = time.monotonic() + (timeout if until_idle is not None else seconds)
        while until_idle is None or until_idle not in self._idle:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if until_idle is not None:
                    raise TimeoutError(f"no idle status within {timeout} s")
                return
            try:
                message = self.client.get_iopub_msg(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            parent = message["parent_header"].get("msg_id")
            if message["msg_type"] == "status":
                if message["content"]["execution_state"] == "idle":
                    self._idle.add(parent)
                continue
            at = time.monotonic() - self._sent.get(parent, time.monotonic())
            self._iopub.setdefault(parent, []).append(Message(at, message))

    def wait(self, msg_id: str, timeout: float = 300, *, run_ends: bool = True) -> Execution:
        """The reply to ``msg_id`` and its iopub messages up to the kernel's idle status; with ``run_ends``, also
        until the run ends the kernel writes after the cell are in the store (what a test reads next)."""
        self.collect(until_idle=msg_id, timeout=timeout)  # first: each message is timed as it arrives
        reply = self.reply(msg_id, timeout)
        if run_ends:
            self.wait_for_run_ends()
        return Execution(reply, self._iopub.get(msg_id, []))

    def journal_entries(self) -> list[Path]:
        """This kernel's journal entries in its spool folder: run ends it has not written yet (run_ends.py)."""
        entries = []
        for path in self.spool_dir.glob("*.jsonl"):
            try:
                with open(path, encoding="utf-8") as handle:
                    owner = json.loads(handle.readline() or "{}").get("owner") or {}
            except (OSError, ValueError):
                continue
            if owner.get("jupyter_tracking.owner.pid") == str(self.pid):
                entries.append(path)
        return entries

    def wait_for_run_ends(self, timeout: float = 60) -> None:
        """Until the kernel has written the ends of its runs (its journal entries are gone), as a reader in
        another process must: the next cell of the kernel itself waits for them before it runs."""
        deadline = time.monotonic() + timeout
        while self.journal_entries():
            if time.monotonic() > deadline:
                raise TimeoutError(f"run ends not written within {timeout} s: {self.journal_entries()}")
            time.sleep(0.01)

    def execute(self, code: str, cell_id: str | None = None, timeout: float = 300) -> Execution:
        return self.wait(self.send(code, cell_id), timeout)

    def run_ok(self, code: str, cell_id: str | None = None, timeout: float = 300) -> Execution:
        execution = self.execute(code, cell_id, timeout)
        assert execution.status == "ok", execution.traceback or execution.reply["content"]
        return execution

    def run_text(self, code: str, timeout: float = 300) -> tuple[dict, str]:
        """Run ``code``; its reply and everything it printed (streams and tracebacks)."""
        execution = self.execute(code, timeout=timeout)
        return execution.reply, execution.text

    def load_ext_printing(self, text: str, timeout: float = 120) -> str:
        """``%load_ext jupyter_tracking``, then what it prints (its import thread prints later) once ``text``
        appears or ``timeout`` passes, plus 2 s more: a second line would show too."""
        msg_id = self.send("%load_ext jupyter_tracking")
        assert self.reply(msg_id)["content"]["status"] == "ok"
        deadline = time.monotonic() + timeout
        while text not in self.printed(msg_id) and time.monotonic() < deadline:
            self.collect(seconds=0.5)
        self.collect(seconds=2.0)
        return self.printed(msg_id)

    def printed(self, msg_id: str) -> str:
        """What request ``msg_id`` printed so far (streams and tracebacks)."""
        return Execution({}, self._iopub.get(msg_id, [])).text

    def all_text(self) -> str:
        return "".join(Execution({}, messages).text for messages in self._iopub.values())

    # ------------------------------------------------------------------ faults
    @property
    def pid(self) -> int:
        return self.manager.provisioner.pid

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


def start_kernels(cwd: Path, count: int) -> list[Kernel]:
    """``count`` kernels started at the same time (each in a thread), as when several notebooks open at once."""
    kernels: list[Kernel | None] = [None] * count
    errors: list[BaseException] = []

    def start(index: int) -> None:
        try:
            kernels[index] = Kernel(cwd)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=start, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for kernel in kernels:
            if kernel is not None:
                kernel.close()
        raise errors[0]
    return [kernel for kernel in kernels if kernel is not None]
