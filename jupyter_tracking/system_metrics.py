"""``%%track --system``: CPU, memory and (with ``nvidia-ml-py`` and a GPU) GPU use, sampled while the cell runs.

``SystemSampler`` is a recorder observer with its own thread: every ``interval`` seconds it reads the
machine's state and logs it with ``recorder.log_step`` as ``system/*`` metrics (step = sample number),
so the values land in MLflow with the run and the live panel draws them. CPU and memory come from
``psutil`` (``pip install "jupyter_tracking[system]"``); without it the sampler says so once and logs
GPU metrics only. A machine without NVIDIA driver or GPU simply has no ``system/gpu*`` metrics.
"""

from __future__ import annotations

import contextvars
import sys
import threading
from typing import Any

MB = 1024 * 1024


def read_cpu_memory(psutil: Any) -> dict[str, float]:
    """CPU use (percent since the previous call) and memory of the machine and of this process."""
    memory = psutil.virtual_memory()
    metrics = {
        "system/cpu_percent": float(psutil.cpu_percent(interval=None)),
        "system/memory_percent": float(memory.percent),
        "system/memory_used_mb": (memory.total - memory.available) / MB,
    }
    try:
        metrics["system/process_memory_mb"] = psutil.Process().memory_info().rss / MB
    except Exception:  # noqa: BLE001 - process info can be denied on some systems
        pass
    return metrics


class GpuReader:
    """Reads utilisation and memory of every NVIDIA GPU through NVML (the ``pynvml`` module of nvidia-ml-py).

    ``GpuReader.open()`` returns None when NVML, the driver or a GPU is missing.
    """

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self.nvml = nvml
        self.handles = handles

    @classmethod
    def open(cls, nvml: Any = None) -> GpuReader | None:
        try:
            if nvml is None:
                import pynvml as nvml  # type: ignore[import-not-found,no-redef]
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception:  # noqa: BLE001 - no package, no driver, no GPU: no GPU metrics
            return None
        return cls(nvml, handles) if handles else None

    def read(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for index, handle in enumerate(self.handles):
            try:
                use = self.nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = self.nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception:  # noqa: BLE001 - a GPU that stops answering is skipped
                continue
            metrics[f"system/gpu{index}_utilization_percent"] = float(use.gpu)
            metrics[f"system/gpu{index}_memory_used_mb"] = memory.used / MB
            if memory.total:
                metrics[f"system/gpu{index}_memory_percent"] = 100.0 * memory.used / memory.total
        return metrics

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


class SystemSampler:
    """Recorder observer: samples system metrics every ``interval`` seconds from its own thread."""

    def __init__(self, interval: float = 1.0, psutil_module: Any = None, nvml: Any = None) -> None:
        self.interval = interval
        self.samples = 0
        self._psutil = psutil_module
        self._nvml = nvml
        self._gpu: GpuReader | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_run_start(self, recorder: Any) -> None:
        if self._psutil is None:
            try:
                import psutil

                self._psutil = psutil
            except ImportError:
                print('jupyter_tracking: --system needs psutil for CPU and memory: pip install "jupyter_tracking[system]"',
                      file=sys.stderr)
        self._gpu = GpuReader.open(self._nvml)
        if self._psutil is None and self._gpu is None:
            return
        if self._psutil is not None:
            self._psutil.cpu_percent(interval=None)  # starts the CPU measurement window
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._loop, recorder),
                                        name="jt-system-sampler", daemon=True)
        self._thread.start()

    def sample(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self._psutil is not None:
            metrics.update(read_cpu_memory(self._psutil))
        if self._gpu is not None:
            metrics.update(self._gpu.read())
        return metrics

    def _loop(self, recorder: Any) -> None:
        while not self._stop.wait(self.interval):
            if getattr(recorder, "status", "RUNNING") != "RUNNING":
                break
            try:
                metrics = self.sample()
            except Exception as error:  # noqa: BLE001 - sampling must never break the cell
                print(f"jupyter_tracking: system metrics stopped: {error}", file=sys.stderr)
                break
            if metrics:
                recorder.log_step(self.samples, metrics)
                self.samples += 1

    def on_run_end(self, recorder: Any, status: str) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._gpu is not None:
            self._gpu.close()
