"""Live panel benchmark: the cost of ``jt.log`` with the panel attached, and what reaches the browser.

Runs everything in one real IPython kernel (jupyter_client) with a fresh embedded SQLite store, the panel
in widget mode (as under JupyterLab, Notebook 7 or VS Code), and reads every iopub message the way a front
end would. Prints a table:

- ``jt.log`` per call (median / p90 / p99 over 100,000 calls, timed inside the kernel) in a tracked cell
  with the live panel, with ``--no-live``, and plain ``mlflow.log_metric`` in the same kernel and store;
- for 100,000 calls as fast as possible, 100,000 spread over 5 s, and 1,000,000 points as fast as
  possible: redraws, front-end messages, the most in any one second,
  bytes sent (the widget's one-time 5 MB plotly bundle separately), and points per drawn trace.

Cells shorter than ~2-3 s get live pictures and no widget (``panels/live.py``): their columns show no comm traffic.

Usage: ``.venv/bin/python benchmarks/bench_live.py [--calls 100000] [--points 1000000]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import start_new_kernel

TIMED_LOOP = """
import time as _t, statistics as _s, json as _j
_ns = [0] * {calls}
_pc = _t.perf_counter_ns
for _i in range({calls}):
    _a = _pc()
    jt.log(step=_i, train_loss=1.0 / (_i + 1), val_loss=2.0 / (_i + 1))
    _ns[_i] = _pc() - _a
_ns.sort()
print("TIMING" + _j.dumps({{"median": _ns[len(_ns) // 2], "p90": _ns[int(len(_ns) * 0.9)], "p99": _ns[int(len(_ns) * 0.99)]}}), flush=True)
"""

PLAIN_MLFLOW = """
import mlflow, time as _t, json as _j
_ns = []
with mlflow.start_run(run_name="plain-mlflow"):
    for _i in range({calls}):
        _a = _t.perf_counter_ns()
        mlflow.log_metric("train_loss", 1.0 / (_i + 1), step=_i)
        _ns.append(_t.perf_counter_ns() - _a)
_ns.sort()
print("TIMING" + _j.dumps({{"median": _ns[len(_ns) // 2], "p90": _ns[int(len(_ns) * 0.9)], "p99": _ns[int(len(_ns) * 0.99)]}}), flush=True)
"""

SUSTAINED = """%%track sustained
import time as _t
for _b in range(50):
    for _j in range(2000):
        jt.log(train_loss=1.0 / (_b * 2000 + _j + 1), val_loss=1.5 / (_b * 2000 + _j + 1))
    _t.sleep(0.1)
"""

MILLION = """%%track million
for _i in range({points}):
    jt.log(step=_i, train_loss=1.0 / (_i + 1) + (5.0 if _i == {points} // 3 else 0.0))
"""


class Kernel:
    def __init__(self, project: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "JPY_SESSION_NAME")}
        env["JUPYTER_TRACKING_LIVE"] = "widget"
        self.manager, self.client = start_new_kernel(kernel_name="python3", env=env, cwd=str(project))

    def run(self, code: str) -> list[tuple[float, dict]]:
        messages: list[tuple[float, dict]] = []
        start = time.monotonic()
        reply = self.client.execute_interactive(
            code, timeout=1800, output_hook=lambda msg: messages.append((time.monotonic() - start, msg)))
        if reply["content"]["status"] != "ok":
            errors = [m["content"] for _, m in messages if m["msg_type"] == "error"]
            raise RuntimeError(f"cell failed: {errors}")
        return messages

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def timing(messages) -> dict:
    for _, msg in messages:
        if msg["msg_type"] == "stream" and "TIMING" in msg["content"]["text"]:
            text = msg["content"]["text"]
            return json.loads(text[text.index("TIMING") + 6:].splitlines()[0])
    raise RuntimeError("no timing printed")


def size(msg: dict) -> int:
    return len(json.dumps(msg["content"])) + sum(len(b) for b in msg.get("buffers") or [])


def max_per_second(times: list[float]) -> int:
    times = sorted(times)
    best = left = 0
    for right, t in enumerate(times):
        while t - times[left] >= 1.0:
            left += 1
        best = max(best, right - left + 1)
    return best


def traffic(messages) -> dict:
    """What the panel sent: its display (placeholder, pictures, the widget's view, the final picture; found by its
    display id) and, when a widget took over, the figure's comm traffic (found by the widget's comm id)."""
    opens = [(t, m) for t, m in messages if m["msg_type"] == "comm_open" and "_esm" in m["content"]["data"]["state"]]
    comm_id = opens[0][1]["content"]["comm_id"] if opens else None
    comm = [(t, m) for t, m in messages if m["msg_type"].startswith("comm_") and m["content"].get("comm_id") == comm_id]
    display = [(t, m) for t, m in messages if m["msg_type"] in ("display_data", "update_display_data")
               and m["content"].get("transient", {}).get("display_id", "").startswith("jt-live-")]
    if not display:
        return {}
    updates = [m for _, m in comm if m["msg_type"] == "comm_msg" and m["content"]["data"]["state"].get("_py2js_update")]
    times = [t for t, _ in comm] + [t for t, _ in display]
    per_trace = 0
    for m in updates:
        paths = m["content"]["data"]["buffer_paths"]
        for index, path in enumerate(paths):
            if path[:3] == ["_py2js_update", "style_data", "y"]:
                per_trace = max(per_trace, len(m["buffers"][index]) // 4)
    return {
        "redraws": len(updates),
        "messages": len(comm) + len(display),
        "max_per_second": max_per_second(times),
        "span_s": max(times) - min(times),
        "open_bytes": size(opens[0][1]) if opens else 0,
        "update_bytes": sum(size(m) for t, m in comm if m["msg_type"] != "comm_open"),
        "display_bytes": sum(size(m) for _, m in display),
        "points_per_trace": per_trace,
        "largest_update": max((size(m) for m in updates), default=0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--mlflow-calls", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-live-") as folder:
        project = Path(folder)
        (project / "pyproject.toml").write_text("[project]\nname='bench'\n")
        kernel = Kernel(project)
        try:
            kernel.run("%load_ext jupyter_tracking\n%track config --experiment bench\nimport jupyter_tracking as jt")
            kernel.run("%%track warmup\njt.log(step=0, x=1.0)\nimport time; time.sleep(0.5)")  # store + plotly ready
            with_panel = kernel.run("%%track with-panel\n" + TIMED_LOOP.format(calls=args.calls))
            no_live = kernel.run("%%track no-live --no-live\n" + TIMED_LOOP.format(calls=args.calls))
            plain = kernel.run(PLAIN_MLFLOW.format(calls=args.mlflow_calls))
            sustained = kernel.run(SUSTAINED)
            started = time.monotonic()
            million = kernel.run(MILLION.format(points=args.points))
            million_wall = time.monotonic() - started
        finally:
            kernel.close()

    rows = [
        ("jt.log, live panel attached", timing(with_panel), args.calls),
        ("jt.log, --no-live", timing(no_live), args.calls),
        ("mlflow.log_metric (plain MLflow)", timing(plain), args.mlflow_calls),
    ]
    print(f"\n{'per call':<36}{'calls':>9}{'median':>12}{'p90':>12}{'p99':>12}")
    for name, t, calls in rows:
        print(f"{name:<36}{calls:>9,}" + "".join(f"{t[k] / 1000:>10.2f}us" for k in ("median", "p90", "p99")))

    columns = [traffic(with_panel), traffic(sustained), traffic(million)]
    print(f"\n{'front end traffic':<40}{'100k fast':>12}{'100k over 5s':>14}{f'{args.points:,} fast':>16}")
    lines = [
        ("redraws (Plotly.update messages)", "redraws", "{:,}"),
        ("front-end messages (comm + display)", "messages", "{:,}"),
        ("most front-end messages in one second", "max_per_second", "{:,}"),
        ("messages per second (average)", None, None),
        ("widget bundle, once (bytes; 0: none)", "open_bytes", "{:,}"),
        ("initial state + updates (bytes)", "update_bytes", "{:,}"),
        ("largest single update (bytes)", "largest_update", "{:,}"),
        ("placeholder, pictures, final (bytes)", "display_bytes", "{:,}"),
        ("points per drawn trace, at most", "points_per_trace", "{:,}"),
    ]
    for label, key, fmt in lines:
        if key is None:
            cells = [f"{d['messages'] / max(d['span_s'], 1e-9):.1f}" if d else "-" for d in columns]
        else:
            cells = [fmt.format(d[key]) if d else "-" for d in columns]
        print(f"{label:<40}{cells[0]:>12}{cells[1]:>14}{cells[2]:>16}")
    print(f"\n{args.points:,} points: cell wall time {million_wall:.1f} s (every point written to SQLite), "
          f"panel traffic over {columns[2].get('span_s', 0):.1f} s")


if __name__ == "__main__":
    sys.exit(main())
