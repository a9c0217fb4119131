"""Live panel latency: when the panel appears, when the first curve follows the first ``jt.log``, what a short
cell costs with the panel against ``--no-live``, in a fresh kernel and a warm one.

Drives real IPython kernels (jupyter_client) in widget mode, as JupyterLab and Notebook 7 do, and times the
iopub messages a front end receives. The tracked cell prints the wall time of its first ``jt.log``.

- fresh: a new kernel, ``%load_ext jupyter_tracking``, then at once the tracked cell (``--seconds`` long);
- warm: the same kernel, the same cell again;
- short: a 1.5 s cell with the panel and with ``--no-live`` (warm kernel), each ``--repeat`` times.

Usage: ``.venv/bin/python benchmarks/bench_live_latency.py [--seconds 5] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.kernels import Kernel, make_project  # noqa: E402

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def cell(name: str, seconds: float, live: bool = True) -> str:
    steps = max(2, int(seconds / 0.1))
    flag = "" if live else " --no-live"
    return (f"%%track {name}{flag}\nimport time as _t, math as _m\n"
            f"for epoch in range({steps}):\n"
            "    if epoch == 0:\n"
            "        print('FIRST_LOG', _t.time(), flush=True)\n"
            "    jt.log(step=epoch, train_loss=_m.exp(-epoch / 10), val_loss=_m.exp(-epoch / 12) + 0.05)\n"
            "    _t.sleep(0.1)\n")


def timed(kernel: Kernel, code: str) -> dict:
    """Send ``code``; the times (s after sending) of the panel's first display, first curve, widget, end."""
    sent_wall = time.time()
    msg_id = kernel.send(code)
    kernel.collect(until_idle=msg_id, timeout=600)
    ended = time.monotonic() - kernel._sent[msg_id]
    kernel.reply(msg_id)
    kernel.wait_for_run_ends()
    messages = kernel._iopub.get(msg_id, [])
    result = {"end": ended, "placeholder": None, "curve": None, "widget": None, "first_log": None}
    for message in messages:
        if message.type == "stream" and "FIRST_LOG" in message.content["text"]:
            wall = float(message.content["text"].split("FIRST_LOG", 1)[1].split()[0])
            result["first_log"] = wall - sent_wall
        display_id = message.content.get("transient", {}).get("display_id", "") if message.type.endswith(
            "display_data") else ""
        if not display_id.startswith("jt-live"):
            continue
        data = message.content["data"]
        if result["placeholder"] is None:
            result["placeholder"] = message.at
        if result["curve"] is None and ("image/svg+xml" in data or WIDGET_MIME in data):
            result["curve"] = message.at
        if result["widget"] is None and WIDGET_MIME in data:
            result["widget"] = message.at
    return result


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:5.2f}"


def show(label: str, result: dict) -> None:
    first_curve = (result["curve"] - result["first_log"]) if result["curve"] is not None and result["first_log"] \
        is not None else None
    print(f"{label:<22} panel shown {fmt(result['placeholder'])} s  first jt.log {fmt(result['first_log'])} s  "
          f"first curve +{fmt(first_curve)} s after it  widget {fmt(result['widget'])} s  cell {fmt(result['end'])} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "proj")
        kernel = Kernel(project / "notebooks", {"JUPYTER_TRACKING_LIVE": "widget"})
        try:
            kernel.run_ok("%load_ext jupyter_tracking\nimport jupyter_tracking as jt")
            show("fresh kernel", timed(kernel, cell("fresh", args.seconds)))
            show("warm kernel", timed(kernel, cell("warm", args.seconds)))
            with_panel, without = [], []
            for index in range(args.repeat):
                result = timed(kernel, cell(f"short{index}", 1.5))
                show("short 1.5 s, panel", result)
                with_panel.append(result["end"])
                result = timed(kernel, cell(f"short{index}", 1.5, live=False))
                show("short 1.5 s, --no-live", result)
                without.append(result["end"])
            print(f"short cell median: {statistics.median(with_panel):.2f} s with the panel, "
                  f"{statistics.median(without):.2f} s with --no-live")
        finally:
            kernel.close()
    print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
