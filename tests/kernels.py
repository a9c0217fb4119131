"""Real kernels for the lifecycle tests: tests.test_kernel's driver, plus everything a request printed."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from pathlib import Path

from jupyter_client.manager import KernelManager
from jupyter_core.paths import jupyter_runtime_dir

from tests.test_kernel import Kernel


class TextKernel(Kernel):
    """A ``Kernel`` that also collects the text a request printed (stdout, stderr, errors)."""

    def __init__(self, cwd: Path) -> None:
        # As jupyter_server starts kernels: the connection file is named after the kernel id.
        self.kernel_id = str(uuid.uuid4())
        runtime = Path(jupyter_runtime_dir())
        runtime.mkdir(parents=True, exist_ok=True)
        self.manager = KernelManager(kernel_name="python3", connection_file=str(runtime / f"kernel-{self.kernel_id}.json"))
        self.manager.start_kernel(cwd=str(cwd))
        self.client = self.manager.client()
        self.client.start_channels()
        try:
            self.client.wait_for_ready(timeout=120)
        except RuntimeError:
            self.close()
            raise
        self.text: dict[str, list[str]] = {}  # msg_id -> stream texts and error lines, in order

    @property
    def pid(self) -> int:
        return self.manager.provisioner.pid

    def collect(self, seconds: float = 0.0, until_idle: str | None = None) -> None:
        """Read iopub messages for ``seconds`` (or until request ``until_idle`` reports idle)."""
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if until_idle is None and remaining <= 0:
                return
            try:
                message = self.client.get_iopub_msg(timeout=max(remaining, 0.2) if until_idle is None else 120)
            except queue.Empty:
                if until_idle is None:
                    return
                continue
            parent = message["parent_header"].get("msg_id")
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                self.text.setdefault(parent, []).append(content["text"])
            elif kind == "error":
                self.text.setdefault(parent, []).append("\n".join(content.get("traceback", [])))
            elif kind == "status" and content["execution_state"] == "idle" and parent == until_idle:
                return

    def execute(self, code: str) -> tuple[dict, str]:
        """Run ``code``; its reply and everything it printed."""
        msg_id = self.send(code)
        reply = self.reply(msg_id)
        self.collect(until_idle=msg_id)
        return reply, self.printed(msg_id)

    def printed(self, msg_id: str) -> str:
        return "".join(self.text.get(msg_id, []))

    def all_text(self) -> str:
        return "".join(text for texts in self.text.values() for text in texts)

    def close(self) -> None:
        try:
            super().close()
        except Exception:  # noqa: BLE001 - a kernel the test killed
            self.client.stop_channels()


def start_kernels(cwd: Path, count: int) -> list[TextKernel]:
    """``count`` kernels started at the same time (each in a thread)."""
    kernels: list[TextKernel | None] = [None] * count
    errors: list[BaseException] = []

    def start(index: int) -> None:
        try:
            kernels[index] = TextKernel(cwd)
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
