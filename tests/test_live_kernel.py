"""The live panel in real IPython kernels (jupyter_client) with real SQLite stores: what reaches the front end.

Every iopub message of a tracked cell is recorded with its arrival time, so the tests see the same stream a
browser would: the widget's comm messages while the cell runs, their rate and size, and the display that
is left in the notebook when the cell ends. Front ends without widgets are checked the same way.
"""

from __future__ import annotations

import base64
import os
import re
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

from tests.kernels import Kernel, Message, make_project

SVG = "{http://www.w3.org/2000/svg}"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class LiveKernel(Kernel):
    """A real kernel in a project with ``%load_ext jupyter_tracking`` done and the live panel mode set
    (``JUPYTER_TRACKING_LIVE``); ``run`` returns the time-stamped iopub messages of a cell that succeeded."""

    def __init__(self, project: Path, mode: str | None) -> None:
        super().__init__(project / "notebooks", {"JUPYTER_TRACKING_LIVE": mode})
        self.project = project
        self.run("%load_ext jupyter_tracking\n%track config --experiment live\nimport jupyter_tracking as jt, time, math")

    def run(self, code: str, timeout: float = 300) -> list[Message]:
        return self.run_ok(code, timeout=timeout).messages


@pytest.fixture(scope="module")
def widget_kernel(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("widgetproj"))
    session = LiveKernel(project, "widget")
    # plotly's first import (1-3 s) is not what these tests measure: do it before the first tracked cell
    session.run("import plotly.graph_objects")
    yield session
    session.close()


def comm_messages(messages: list[Message], comm_id: str) -> list[Message]:
    return [m for m in messages if m.type.startswith("comm_") and m.content.get("comm_id") == comm_id]


def figure_comm(messages: list[Message]) -> str:
    opens = [m for m in messages if m.type == "comm_open" and "_esm" in m.content["data"]["state"]]
    assert len(opens) == 1, "one FigureWidget per panel"
    return opens[0].content["comm_id"]


def updates(messages: list[Message], comm_id: str) -> list[Message]:
    return [m for m in comm_messages(messages, comm_id)
            if m.type == "comm_msg" and m.content["data"].get("state", {}).get("_py2js_update")]


def max_per_second(times: list[float]) -> int:
    times = sorted(times)
    best, left = 0, 0
    for right, t in enumerate(times):
        while t - times[left] >= 1.0:
            left += 1
        best = max(best, right - left + 1)
    return best


def panel_message_times(messages: list[Message], comm_id: str, display_id: str) -> list[float]:
    """Arrival times of everything the panel sent to the front end (comm traffic and its display)."""
    times = [m.at for m in comm_messages(messages, comm_id)]
    times += [m.at for m in messages if m.type in ("display_data", "update_display_data")
              and m.content.get("transient", {}).get("display_id") == display_id]
    return times


def y_buffers(message: Message) -> list[bytes]:
    update = message.content["data"]["state"]["_py2js_update"]
    paths = message.content["data"]["buffer_paths"]
    buffers = message.msg["buffers"]
    return [bytes(buffers[i]) for i, path in enumerate(paths) if path[:3] == ["_py2js_update", "style_data", "y"]]


def store_count(project: Path, key: str) -> int:
    with sqlite3.connect(project / "mlflow.db") as db:
        return db.execute("select count(*) from metrics where key = ?", (key,)).fetchone()[0]


# ---------------------------------------------------------------------- widget front ends (Lab, Notebook 7, VS Code)
LIVE_CELL = """%%track live-demo --steps 40
import mlflow
for epoch in range(40):
    if epoch == 0:
        print("first log", flush=True)
    jt.log(step=epoch, train_loss=math.exp(-epoch / 8), val_loss=math.exp(-epoch / 10) + 0.05, val_acc=1 - math.exp(-epoch / 6))
    mlflow.log_metric("lr", 0.1 * 0.9 ** epoch, step=epoch)
    time.sleep(0.12)
print("loop done", flush=True)
"""


def panel_displays(messages: list[Message]) -> list[Message]:
    """The live panel's display and its updates (one display id, ``jt-live-...``), in arrival order."""
    return [m for m in messages if m.type in ("display_data", "update_display_data")
            and m.content.get("transient", {}).get("display_id", "").startswith("jt-live-")]


def quiet_after_the_cell(kernel: Kernel, code: str, timeout: float = 300) -> list[Message]:
    """Run ``code``, then another cell: the first cell's messages, checked to have stopped at its idle status
    (nothing of the panel reaches the front end once the kernel says idle)."""
    msg_id = kernel.send(code)
    execution = kernel.wait(msg_id, timeout)
    assert execution.status == "ok", execution.traceback
    count = len(execution.messages)
    time.sleep(1.0)
    kernel.run_ok("pass")
    assert len(kernel._iopub.get(msg_id, [])) == count, "the panel sent something after the cell had ended"
    return execution.messages


def test_widget_panel_redraws_while_the_cell_runs_and_leaves_a_static_image(widget_kernel):
    messages = quiet_after_the_cell(widget_kernel, LIVE_CELL)
    comm_id = figure_comm(messages)
    first_log = next(m.at for m in messages if m.type == "stream" and "first log" in m.content["text"])
    loop_done = next(m.at for m in messages if m.type == "stream" and "loop done" in m.content["text"])

    panel = panel_displays(messages)
    display_id = panel[0].content["transient"]["display_id"]
    assert panel[0].type == "display_data" and "waiting for the first step" in panel[0].content["data"]["text/html"]
    assert "live-demo" in panel[0].content["data"]["text/plain"] and panel[0].at < first_log
    assert all(m.type == "update_display_data" for m in panel[1:]), "one display, updated in place"
    pictures = [m for m in panel if "image/svg+xml" in m.content["data"]]
    assert pictures[0].at - first_log < 0.5, "the first curve follows the first jt.log within half a second"
    shown = [m for m in panel if WIDGET_MIME in m.content["data"]]
    assert len(shown) == 1 and shown[0].at < loop_done - 1.0, "the widget takes over while the cell is running"
    assert shown[0].at - first_log > 2.5, "not before the run has lasted a few seconds"
    assert len([m for m in pictures if m.at < shown[0].at]) >= 4, "pictures until the widget takes over"

    live_updates = [m for m in updates(messages, comm_id) if m.at < loop_done]
    assert len(live_updates) >= 5, "redrawn several times before the loop ended"
    states = {tuple(y_buffers(m)) for m in live_updates}
    assert len(states) >= 3, "the drawn curves change from one redraw to the next"
    names = [n for m in live_updates for n in m.content["data"]["state"]["_py2js_update"]["style_data"].get("name", [])]
    assert any(n.startswith("lr ") for n in names), "mlflow.log_metric calls in the cell are drawn too"
    assert any(n.startswith("val_acc ") for n in names)
    titles = [str(m.content["data"]["state"]["_py2js_update"]["layout_data"]) for m in live_updates]
    assert any("step" in t and "/40 (" in t and "ETA" in t and "elapsed" in t for t in titles), titles

    assert max_per_second(panel_message_times(messages, comm_id, display_id)) <= 10
    for message in comm_messages(messages, comm_id):
        state = message.content["data"].get("state", {})
        assert state.get("_py2js_update", 1) is not None, "one message per redraw: no separate reset message"
        if state.get("_py2js_update"):
            assert "_last_trace_edit_id" in state, "edit ids travel in the same message"

    final = [m for m in panel if m.content["data"]["text/plain"].startswith("Training curves (")]
    assert len(final) == 1 and final[0].at > loop_done and final[0] is panel[-1]
    bundle = final[0].content["data"]
    assert WIDGET_MIME not in bundle, "the saved notebook keeps a picture, not a dead widget"
    svg = ET.fromstring(bundle["image/svg+xml"])
    assert len(svg.findall(f".//{SVG}polyline")) == 4  # train_loss, val_loss, val_acc, lr
    assert bundle["text/plain"].startswith("Training curves (finished)")
    assert "val_acc" in bundle["text/plain"] and "(40 points)" in bundle["text/plain"]
    assert any(m.type == "comm_close" for m in comm_messages(messages, comm_id)), "widget freed in the browser"
    assert store_count(widget_kernel.project, "train_loss") == 40


def test_a_fresh_kernel_shows_the_placeholder_at_once_and_the_first_curve_soon_after_the_first_log(project):
    kernel = Kernel(project / "notebooks", {"JUPYTER_TRACKING_LIVE": "widget"})
    try:
        kernel.run_ok("%load_ext jupyter_tracking\nimport jupyter_tracking as jt, time")  # MLflow imports on
        messages = kernel.run_ok("%%track fresh\nfor epoch in range(8):\n    if epoch == 0:\n"
                                 "        print('first log', flush=True)\n"
                                 "    jt.log(step=epoch, train_loss=1.0 / (epoch + 1))\n    time.sleep(0.1)\n").messages
    finally:
        kernel.close()
    first_log = next(m.at for m in messages if m.type == "stream" and "first log" in m.content["text"])
    panel = panel_displays(messages)
    assert "waiting for the first step" in panel[0].content["data"]["text/html"]
    assert panel[0].at < 1.0 and panel[0].at < first_log, (panel[0].at, first_log)
    picture = next(m for m in panel if "image/svg+xml" in m.content["data"])
    assert picture.at - first_log < 0.5, (picture.at, first_log)
    assert panel[-1].content["data"]["text/plain"].startswith("Training curves (finished)")
    print(f"\nfresh kernel: placeholder {panel[0].at:.2f} s, first jt.log {first_log:.2f} s, "
          f"first picture {picture.at - first_log:.2f} s after it")


def test_a_cell_interrupted_before_its_run_starts_takes_its_placeholder_away(project):
    kernel = Kernel(project / "notebooks", {"JUPYTER_TRACKING_LIVE": "widget"})
    try:
        kernel.run_ok("%load_ext jupyter_tracking\nimport jupyter_tracking as jt, time")
        msg_id = kernel.send("%%track cut-short\njt.log(step=0, loss=1.0)\n")
        deadline = time.monotonic() + 10
        while not panel_displays(kernel._iopub.get(msg_id, [])):  # the placeholder is up: MLflow still imports
            assert time.monotonic() < deadline, "no placeholder"
            kernel.collect(0.05)
        kernel.interrupt()
        execution = kernel.wait(msg_id)
    finally:
        kernel.close()
    assert execution.error == "KeyboardInterrupt"
    panel = panel_displays(execution.messages)
    assert "waiting for the first step" in panel[0].content["data"]["text/html"]
    assert panel[-1].content["data"] == {"text/plain": ""}, "no placeholder left waiting for a run that never came"


def test_a_short_cell_gets_pictures_and_no_widget(widget_kernel):
    messages = quiet_after_the_cell(widget_kernel, """%%track short
for epoch in range(12):
    jt.log(step=epoch, train_loss=1.0 / (epoch + 1))
    time.sleep(0.1)
""")
    assert not [m for m in messages if m.type.startswith("comm_")], "no widget for a cell this short"
    panel = panel_displays(messages)
    assert "waiting for the first step" in panel[0].content["data"]["text/html"]
    assert any("image/svg+xml" in m.content["data"] and "step" in m.content["data"]["text/plain"]
               for m in panel[1:-1]), "live pictures while it ran"
    assert panel[-1].content["data"]["text/plain"].startswith("Training curves (finished)")
    assert max_per_second([m.at for m in panel]) <= 4


def test_a_million_points_stay_within_the_rate_limit_and_a_bounded_payload(widget_kernel):
    messages = widget_kernel.run("""%%track million
for i in range(1_000_000):
    if i % 100_000 == 0:
        time.sleep(0.4)  # long enough (4 s) for the widget to take over
    jt.log(step=i, train_loss=1.0 / (i + 1) + (5.0 if i == 654_321 else 0.0))
print("loop done", flush=True)
""", timeout=600)
    comm_id = figure_comm(messages)
    display_id = next(m.content["transient"]["display_id"] for m in messages
                      if m.type == "update_display_data" and WIDGET_MIME in m.content["data"])
    times = panel_message_times(messages, comm_id, display_id)
    assert max_per_second(times) <= 10
    sent = [m for m in comm_messages(messages, comm_id) if m.type == "comm_msg"]
    payload = sum(m.size() for m in sent)
    per_update = max(m.size() for m in sent)
    # 1,000,000 points of one metric; both traces (x = step and x = time) carry <= ~2 * 400 + 3 float32 points
    assert per_update < 20_000, per_update
    assert payload <= per_update * 10 * (times[-1] - times[0] + 1)
    for message in updates(messages, comm_id):
        for buffer in y_buffers(message):
            assert len(buffer) // 4 <= 2 * 400 + 3
    svg = panel_displays(messages)[-1].content["data"]["image/svg+xml"]
    points = ET.fromstring(svg).find(f".//{SVG}polyline").get("points").split()
    assert len(points) <= 2 * 400 + 3
    assert store_count(widget_kernel.project, "train_loss") >= 1_000_000, "the store keeps every point"
    spike = max(float(p.split(",")[1]) for p in points), min(float(p.split(",")[1]) for p in points)
    assert spike[0] > spike[1], "a curve is drawn"
    print(f"\n1,000,000 points: {len(sent)} comm messages, {payload:,} bytes after the widget opened, "
          f"largest {per_update:,} bytes, max {max_per_second(times)} front-end messages in one second")


def test_no_live_turns_the_panel_off_but_keeps_tracking(widget_kernel):
    messages = widget_kernel.run("""%%track quiet --no-live
for epoch in range(5):
    jt.log(step=epoch, quiet_loss=1.0 / (epoch + 1))
    time.sleep(0.15)
""")
    assert not [m for m in messages if m.type == "comm_open"]
    bundles = [m.content["data"] for m in messages if m.type in ("display_data", "update_display_data")]
    assert not [b for b in bundles if "image/svg+xml" in b or WIDGET_MIME in b]
    assert any("run quiet" in b.get("text/plain", "") for b in bundles), "the run card is still shown"
    assert store_count(widget_kernel.project, "quiet_loss") == 5


def test_cells_without_step_metrics_get_no_panel(widget_kernel):
    messages = widget_kernel.run("%%track plain\nx = 1\naccuracy = 0.5\ntime.sleep(0.4)\n")
    assert not [m for m in messages if m.type == "comm_open"]
    assert not [m for m in messages if "image/svg+xml" in m.content.get("data", {})]
    panel = panel_displays(messages)
    assert panel[-1].content["data"] == {"text/plain": ""}, "the placeholder is taken away"


def test_system_metrics_are_logged_and_drawn(widget_kernel):
    # ~5 s: several 1 s samples reach the panel while it is live (a key is drawn from its second point on).
    messages = widget_kernel.run("""%%track with-system --system
for epoch in range(14):
    jt.log(step=epoch, train_loss=1.0 / (epoch + 1))
    sum(i * i for i in range(60_000))
    time.sleep(0.35)
""")
    comm_id = figure_comm(messages)
    # A trace is named in the widget's first data (plotly's ``_widget_data`` state), when it is added, and again
    # when its latest value changes (a steady memory percentage may never be renamed while the widget is up).
    names: set[str] = set()
    for m in comm_messages(messages, comm_id):
        state = m.content["data"].get("state", {})
        traces = list(state.get("_widget_data") or []) + list(
            (state.get("_py2js_addTraces") or {}).get("trace_data") or [])
        names |= {str(t.get("name", "")).split(" ")[0] for t in traces if isinstance(t, dict)}
        names |= {str(n).split(" ")[0] for n in (state.get("_py2js_update") or {}).get("style_data", {}).get("name", [])}
    assert {"system/cpu_percent", "system/memory_percent", "system/memory_used_mb"} <= names, names
    assert store_count(widget_kernel.project, "system/cpu_percent") >= 2
    assert store_count(widget_kernel.project, "system/process_memory_mb") >= 2
    svg = panel_displays(messages)[-1].content["data"]["image/svg+xml"]
    assert "system utilisation (%)" in svg and "system memory (MB)" in svg and "elapsed s" in svg


def test_a_failing_cell_leaves_the_curves_up_to_the_failure(widget_kernel):
    execution = widget_kernel.execute(
        "%%track breaks\nfor epoch in range(6):\n    jt.log(step=epoch, train_loss=1.0 / (epoch + 1))\n"
        "    time.sleep(0.2)\nraise ValueError('diverged')\n")
    assert execution.error == "ValueError"
    messages = execution.messages
    final = panel_displays(messages)[-1]
    text = final.content["data"]["text/plain"]
    assert text.startswith("Training curves (failed)") and "(6 points)" in text


# ---------------------------------------------------------------------- front ends without widgets
def test_image_fallback_updates_a_picture_about_once_a_second(project):
    session = LiveKernel(project, "image")
    try:
        messages = session.run("""%%track pictures
for epoch in range(30):
    jt.log(step=epoch, total=30, train_loss=1.0 / (epoch + 1))
    time.sleep(0.12)
print("loop done", flush=True)
""")
    finally:
        session.close()
    loop_done = next(m.at for m in messages if m.type == "stream" and "loop done" in m.content["text"])
    assert not [m for m in messages if m.type == "comm_open"], "no widgets at all"
    first = next(m for m in messages if "image/svg+xml" in m.content.get("data", {}))
    display_id = first.content["transient"]["display_id"]
    assert "waiting for the first step" in panel_displays(messages)[0].content["data"]["text/html"]
    live = [m for m in messages if m.type == "update_display_data" and first.at < m.at < loop_done
            and m.content["transient"]["display_id"] == display_id]
    assert first.at < loop_done - 1.5 and len(live) >= 2
    assert len({m.content["data"]["image/svg+xml"] for m in live}) == len(live), "each picture is newer"
    gaps = [b.at - a.at for a, b in zip([first] + live, live)]
    assert min(gaps) >= 0.9, gaps
    assert "step" in live[-1].content["data"]["text/plain"] and "/30" in live[-1].content["data"]["text/plain"]
    final = [m for m in messages if m.type == "update_display_data" and m.at > loop_done]
    assert final[-1].content["data"]["text/plain"].startswith("Training curves (finished)")


def test_nbconvert_execution_keeps_the_static_image(project):
    """nbclient (what nbconvert --execute and nbval drive): no widget, no progress for a short cell, one picture."""
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext jupyter_tracking\nimport jupyter_tracking as jt, time"),
        nbformat.v4.new_code_cell(
            "%%track headless\nfor epoch in range(12):\n"
            "    jt.log(step=epoch, train_loss=1 / (epoch + 1), val_loss=1.2 / (epoch + 1), val_acc=epoch / 12)\n"
            "    time.sleep(0.1)\n"
        ),
    ]
    path = project / "notebooks" / "headless.ipynb"
    env_before = os.environ.pop("JUPYTER_TRACKING_LIVE", None)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if env_before is not None:
            os.environ["JUPYTER_TRACKING_LIVE"] = env_before
    nbformat.write(nb, path)

    outputs = nbformat.read(path, 4).cells[1].outputs
    pictures = [o for o in outputs if o.get("output_type") == "display_data" and "image/svg+xml" in o.data]
    assert len(pictures) == 1
    assert not [o for o in outputs if WIDGET_MIME in o.get("data", {})]
    assert not [o for o in outputs if o.get("name") == "stderr" and "[live]" in o.get("text", "")]
    assert pictures[0].data["text/plain"].startswith("Training curves (finished)")
    svg = ET.fromstring(pictures[0].data["image/svg+xml"])
    assert len(svg.findall(f".//{SVG}polyline")) == 3

    html, _ = HTMLExporter().from_notebook_node(nbformat.read(path, 4))
    embedded = re.search(r'<img[^>]* src="data:image/svg\+xml;base64,([^"]+)"', html)
    assert embedded, "nbconvert's HTML shows the picture"
    assert base64.b64decode(embedded.group(1)).decode().count("<polyline") == 3


def test_terminal_ipython_shows_a_progress_line_on_a_tty_then_the_text_picture(project):
    """Terminal IPython with stderr on a pseudo-terminal: the progress line is rewritten in place (\\r)."""
    import pty

    script = project / "notebooks" / "train_tty.ipy"
    script.write_text(
        "%load_ext jupyter_tracking\nimport jupyter_tracking as jt, time\n"
        "get_ipython().run_cell_magic('track', 'tty-run --steps 20', "
        "'for i in range(20):\\n    jt.log(step=i, train_loss=1 / (i + 1))\\n    time.sleep(0.2)\\n')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "JUPYTER_TRACKING_LIVE")}
    controller, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "IPython", "--no-banner", "--colors=nocolor", str(script)],
                               cwd=script.parent, env=env, stdout=subprocess.PIPE, stderr=terminal,
                               stdin=subprocess.DEVNULL, text=True)
    os.close(terminal)
    stderr = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        stderr += chunk
    stdout = process.communicate(timeout=300)[0]
    os.close(controller)
    assert process.returncode == 0, stderr.decode(errors="replace")
    lines = [part for part in stderr.decode(errors="replace").split("\r") if "tty-run · step" in part]
    assert len(lines) >= 2, stderr
    assert any("/20 (" in line and "ETA" in line for line in lines), lines
    assert "Training curves (finished)" in stdout


def test_terminal_ipython_prints_the_text_picture(project):
    script = project / "notebooks" / "train.ipy"
    script.write_text(
        "%load_ext jupyter_tracking\nimport jupyter_tracking as jt, time\n"
        "get_ipython().run_cell_magic('track', 'terminal-run', "
        "'for i in range(8):\\n    jt.log(step=i, train_loss=1 / (i + 1))\\n    time.sleep(0.1)\\n')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "JUPYTER_TRACKING_LIVE")}
    done = subprocess.run([sys.executable, "-m", "IPython", "--no-banner", "--colors=nocolor", str(script)],
                          cwd=script.parent, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Training curves (finished)" in done.stdout
    line = next(line for line in done.stdout.splitlines() if line.startswith("train_loss"))
    assert "█" in line and "▁" in line and "(8 points)" in line
