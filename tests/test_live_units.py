"""Pure parts of the live panel: decimation, grouping, the static SVG/text pictures, progress, figure dicts,
front-end detection and the system sampler's readers."""

from __future__ import annotations

import base64
import math
import re
import sys
import types
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from jupyter_tracking.panels import live
from jupyter_tracking.panels._decimate import SeriesDecimator, group_metrics, metric_stem
from jupyter_tracking.panels._figure import FigureLayout, grid_domains
from jupyter_tracking.panels._static import (
    Curve, Subplot, nice_ticks, picture_bundle, render_svg, sparkline, text_summary,
)
from jupyter_tracking.system_metrics import GpuReader, SystemSampler

SVG = "{http://www.w3.org/2000/svg}"


# ---------------------------------------------------------------------- decimation
def feed(decimator: SeriesDecimator, values: np.ndarray, chunk: int) -> None:
    for start in range(0, len(values), chunk):
        part = values[start:start + chunk]
        steps = np.arange(start, start + len(part))
        decimator.extend(steps, part, steps * 0.01)


def test_decimator_keeps_every_point_while_small():
    decimator = SeriesDecimator(capacity=100)
    values = np.sin(np.arange(50) / 5.0)
    feed(decimator, values, chunk=7)
    steps, got, times = decimator.points()
    assert steps.tolist() == list(range(50))
    assert np.allclose(got, values)
    assert np.allclose(times, steps * 0.01)


@pytest.mark.parametrize("chunk", [1, 333, 10_000, 1_000_000])
def test_decimator_bounds_size_and_keeps_extremes_first_and_last(chunk):
    rng = np.random.default_rng(1)
    values = rng.normal(size=200_000) if chunk != 1 else rng.normal(size=5_000)
    n = len(values)
    spike, dip = n // 3, (2 * n) // 3 + 1
    values[spike], values[dip] = 99.0, -77.0
    decimator = SeriesDecimator(capacity=200)
    feed(decimator, values, chunk)
    steps, got, _ = decimator.points()
    assert len(got) <= 2 * 200 + 3
    assert decimator.count == n
    assert got.max() == 99.0 and got.min() == -77.0
    assert steps[got.argmax()] == spike and steps[got.argmin()] == dip
    assert steps[0] == 0 and steps[-1] == n - 1 and got[-1] == values[-1]
    assert np.all(np.diff(steps) > 0), "points stay in logging order, without duplicates"
    assert decimator.min_value == -77.0 and decimator.max_value == 99.0


def test_decimator_survives_nan_and_inf():
    values = np.linspace(1, 0, 10_000)
    values[5000:5010] = np.nan
    values[7000] = np.inf
    values[-300:] = np.nan  # the loss diverged at the end
    decimator = SeriesDecimator(capacity=50)
    feed(decimator, values, chunk=999)
    steps, got, _ = decimator.points()
    assert decimator.max_value == 1.0 and decimator.min_value == values[9699]
    assert np.isnan(got[-1]) and decimator.last[1] != decimator.last[1], "the latest value (nan) is kept"
    assert np.isnan(got[steps >= 9700]).all() and len(got[steps >= 9700]) >= 1, "the diverged stretch is a gap"
    assert np.isfinite(got[steps < 9700]).sum() >= 40, "finite extremes are not replaced by NaN"


def test_many_metrics_share_a_point_budget():
    from jupyter_tracking.panels._decimate import reduce_points

    values = np.cos(np.arange(5000) / 50.0)
    values[1234] = 7.0
    steps = np.arange(5000.0)
    s, v, t = reduce_points(steps, values, steps * 2, 200)
    assert len(v) <= 202 and v.max() == 7.0 and s[v.argmax()] == 1234
    assert s[0] == 0 and s[-1] == 4999 and np.all(np.diff(s) > 0) and np.allclose(t, s * 2)
    assert reduce_points(steps[:50], values[:50], steps[:50], 200)[1].tolist() == values[:50].tolist()

    class Series:  # the recorder's StepSeries interface, filled directly
        def __init__(self):
            import threading

            self.lock = threading.Lock()
            self.version = 1
            self.data = {f"m{i}_loss": (list(range(3000)), list(np.sin(np.arange(3000) / (i + 1.0))),
                                        [float(x) for x in range(3000)]) for i in range(60)}

    panel = live.LivePanel(mode="image")
    panel.recorder = types.SimpleNamespace(series=Series(), status="RUNNING", start_time=0.0, run_name="many",
                                           total_steps=None)
    panel._ingest()
    state = panel.state()
    drawn = sum(len(c.values) for c in state.curves.values())
    assert drawn <= 60 * 202, drawn
    assert all(c.count == 3000 for c in state.curves.values())


# ---------------------------------------------------------------------- grouping
def test_related_metrics_share_a_subplot():
    groups = group_metrics(["train_loss", "val_loss", "train_acc", "val_accuracy", "lr", "val_f1",
                            "grad/layer1", "grad/layer2", "train_mae", "val_mae"], max_subplots=8)
    by_title = {g.title: g.keys for g in groups}
    assert by_title["loss"] == ("train_loss", "val_loss")
    assert by_title["accuracy"] == ("train_acc", "val_accuracy", "val_f1")
    assert by_title["lr"] == ("lr",)
    assert by_title["grad"] == ("grad/layer1", "grad/layer2")
    assert by_title["mae"] == ("train_mae", "val_mae")
    assert [g.title for g in groups] == ["loss", "accuracy", "lr", "grad", "mae"]
    with_system = group_metrics(["system/cpu_percent", "x", "system/gpu0_memory_used_mb", "system/memory_percent"])
    assert [(g.title, g.time_only) for g in with_system] == [
        ("x", False), ("system utilisation (%)", True), ("system memory (MB)", True)]
    assert with_system[1].keys == ("system/cpu_percent", "system/memory_percent")
    assert metric_stem("validation/acc") == "acc" and metric_stem("training_loss") == "loss"


def test_many_groups_fold_into_other():
    keys = [f"m{i}_x" for i in range(10)]
    groups = group_metrics(keys, max_subplots=4)
    assert len(groups) == 4
    assert groups[-1].title == "other" and len(groups[-1].keys) == 7
    assert sorted(k for g in groups for k in g.keys) == sorted(keys)


# ---------------------------------------------------------------------- static pictures
def subplots_with(name: str = "train_loss") -> list[Subplot]:
    x = np.arange(20.0)
    y = np.exp(-x / 5)
    y[10] = np.nan
    return [
        Subplot("loss", "step", [Curve(name, "#1f77b4", x, y, float(y[-1]), 20, float(np.nanmin(y)), 1.0),
                                 Curve("val_loss", "#ff7f0e", x, y + 0.1, float(y[-1] + 0.1), 20, 0.1, 1.1)]),
        Subplot("accuracy", "step", [Curve("val_acc", "#2ca02c", x, 1 - y, 0.9, 20, 0.0, 0.9)], rising=True),
    ]


def test_svg_is_valid_escaped_and_deterministic():
    evil = '<script>alert("x")</script>&'
    svg = render_svg(subplots_with(evil), heading="run <b>1</b>")
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == SVG + "svg"
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    texts = [t.text for t in root.iter(SVG + "text")]
    assert any(t and t.startswith(evil) for t in texts), "the name is shown as text, not markup"
    polylines = root.findall(f".//{SVG}polyline")
    # train_loss and val_loss are split by the NaN into 2 segments each; val_acc too
    assert len(polylines) == 6
    assert render_svg(subplots_with(evil), heading="run <b>1</b>") == svg


def test_picture_follows_the_theme_fills_its_cell_and_shows_untrusted():
    """Transparent, text and frames in currentColor (a theme variable with a grey that reads on light and dark);
    the same SVG as an <img> with alt text in text/html (untrusted notebooks show it), scaled to its cell."""
    bundle = picture_bundle(subplots_with('a<"b'), "Training curves (finished)")
    root = ET.fromstring(bundle["image/svg+xml"])
    assert root.get("fill") == "currentColor" and "var(--jp-ui-font-color1," in root.get("style")
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    fills = {e.get("fill") for e in root.iter() if e.tag in (SVG + "rect", SVG + "text") and e.get("fill")}
    assert not fills - {"none", "currentColor"} - {c.color for s in subplots_with() for c in s.curves}, fills
    assert not [e for e in root.iter() if (e.get("stroke") or "").startswith("#")
                and e.tag != SVG + "polyline"], "frames and grid lines are drawn in currentColor"
    # Legends inside the plots, as in the live widget: the loss legend at the top, the accuracy one at the bottom.
    boxes = [e for e in root.iter(SVG + "rect") if e.get("fill-opacity")]
    assert len(boxes) == 2 and float(boxes[0].get("y")) < float(boxes[1].get("y"))
    html = bundle["text/html"]
    match = re.fullmatch(r'<img alt="([^"]*)" src="data:image/svg\+xml;base64,([^"]+)" style="([^"]+)">', html)
    assert match, html
    assert base64.b64decode(match.group(2)).decode() == bundle["image/svg+xml"]
    assert "width:100%" in match.group(3) and "height:auto" in match.group(3)
    assert match.group(1).startswith("Training curves (finished); a&lt;&quot;b")
    assert "last 0.02237 (20 points)" in match.group(1)


def test_text_summary_and_sparkline():
    text = text_summary(subplots_with(), "Training curves (finished)")
    lines = text.splitlines()
    assert lines[0] == "Training curves (finished)"
    assert lines[1].startswith("train_loss") and "last 0.02237" in lines[1] and "(20 points)" in lines[1]
    assert sparkline(np.array([0, 1, 2, 3])) == "▁▃▆█"
    assert sparkline(np.array([0.0, np.nan, 1.0])) == "▁ █"
    assert sparkline(np.arange(100), width=10) == "▁▁▂▃▄▅▆▇██"
    assert nice_ticks(0, 1) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert nice_ticks(13, 87) == pytest.approx([20, 40, 60, 80])


def test_progress_line_with_and_without_total():
    assert live.progress_line("demo", 9, 0, 40, 20.0) == "demo · step 10/40 (25%) · 0:20 elapsed · ETA 1:00"
    assert live.progress_line(None, 5, 1, None, 65.0) == "step 5 · 1:05 elapsed"
    assert live.progress_line("r", 39, 0, 40, 80.0, "FINISHED") == "r · step 40/40 (100%) · 1:20 elapsed · finished"
    assert live.progress_line("r", None, None, None, 3.0) == "r · 0:03 elapsed"


# ---------------------------------------------------------------------- figure dicts
def test_figure_layout_keeps_axes_stable_and_escapes_names():
    layout = FigureLayout()
    new, changed = layout.structure(group_metrics(["train_loss", "val_loss"]))
    assert new == ["train_loss", "val_loss"] and changed
    first = layout.layout("run · step 1")
    assert first["xaxis"]["domain"] == [0, 1] and "xaxis2" not in first
    new, changed = layout.structure(group_metrics(["train_loss", "val_loss", "val_acc<b>"]))
    assert new == ["val_acc<b>"] and changed
    second = layout.layout("run")
    assert layout.axis_of == {"loss": 1, "accuracy": 2}
    assert second["xaxis2"]["anchor"] == "y2" and second["legend2"]["x"] == second["xaxis2"]["domain"][1]
    trace = layout.trace("val_acc<b>", time_axis=False)
    assert trace["name"] == "val_acc&lt;b&gt;" and trace["xaxis"] == "x2" and trace["visible"]
    assert layout.trace("val_acc<b>", time_axis=True)["visible"] is False
    buttons = second["updatemenus"][0]["buttons"]
    assert buttons[0]["args"][0]["visible"] == [True, False] * 3
    assert buttons[1]["args"][0]["visible"] == [False, True] * 3
    assert buttons[1]["args"][1] == {"xaxis.title.text": "elapsed s", "xaxis2.title.text": "elapsed s"}
    assert layout.structure(group_metrics(["train_loss", "val_loss", "val_acc<b>"])) == ([], False)
    assert len(grid_domains(5)) == 5


# ---------------------------------------------------------------------- where are we
class FakeKernelShell:
    kernel = object()
    user_ns: dict = {}


def test_live_mode_detection(monkeypatch):
    for name in ("JUPYTER_TRACKING_LIVE", "JPY_SESSION_NAME", "VSCODE_PID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert live.live_mode(FakeKernelShell()) == "text", "a kernel nobody serves (nbclient) gets text"
    assert live.live_mode(types.SimpleNamespace(user_ns={})) == "terminal"
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/u/nb.ipynb")
    assert live.live_mode(FakeKernelShell()) == "widget"
    monkeypatch.delenv("JPY_SESSION_NAME")
    monkeypatch.setenv("VSCODE_PID", "123")
    assert live.live_mode(FakeKernelShell()) == "widget"
    monkeypatch.setenv("JUPYTER_TRACKING_LIVE", "image")
    assert live.live_mode(FakeKernelShell()) == "image"


@pytest.mark.parametrize("works", [True, False])
def test_colab_switches_on_its_widget_manager_or_falls_back_to_images(monkeypatch, works):
    # Colab's front end cannot exist here: a stand-in google.colab.output records the call.
    calls = []

    def enable():
        calls.append("enable")
        if not works:
            raise RuntimeError("no custom widget manager")

    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=enable)
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(live, "_colab_widgets", None)
    monkeypatch.delenv("JUPYTER_TRACKING_LIVE", raising=False)
    assert live.live_mode(FakeKernelShell()) == ("widget" if works else "image")
    assert live.live_mode(FakeKernelShell()) == ("widget" if works else "image")
    assert calls == ["enable"], "switched on once per session"


# ---------------------------------------------------------------------- system metrics readers
class FakeNvml:
    """NVML as nvidia-ml-py exposes it, for two GPUs (no GPU exists on this machine)."""

    def __init__(self):
        self.shutdown = False

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetUtilizationRates(self, handle):
        return types.SimpleNamespace(gpu=[35, 90][handle], memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return types.SimpleNamespace(used=[1024, 2048][handle] * 1024 * 1024, total=4096 * 1024 * 1024)

    def nvmlShutdown(self):
        self.shutdown = True


def test_gpu_reader_reads_every_gpu():
    nvml = FakeNvml()
    reader = GpuReader.open(nvml)
    assert reader.read() == {
        "system/gpu0_utilization_percent": 35.0, "system/gpu0_memory_used_mb": 1024.0,
        "system/gpu0_memory_percent": 25.0,
        "system/gpu1_utilization_percent": 90.0, "system/gpu1_memory_used_mb": 2048.0,
        "system/gpu1_memory_percent": 50.0,
    }
    reader.close()
    assert nvml.shutdown


def test_gpu_reader_absent_without_nvml_or_driver():
    class NoDriver(FakeNvml):
        def nvmlInit(self):
            raise OSError("NVML Shared Library Not Found")

    assert GpuReader.open(NoDriver()) is None
    # here: nvidia-ml-py may be installed or not, but there is no NVIDIA driver
    assert GpuReader.open() is None


def test_system_sampler_reads_cpu_and_memory_with_psutil():
    import psutil

    sampler = SystemSampler(psutil_module=psutil, nvml=FakeNvml())
    sampler._gpu = GpuReader.open(sampler._nvml)
    psutil.cpu_percent(interval=None)
    sample = sampler.sample()
    assert 0 <= sample["system/cpu_percent"] <= 100
    assert 0 < sample["system/memory_percent"] < 100
    assert sample["system/memory_used_mb"] > 1 and sample["system/process_memory_mb"] > 10
    assert sample["system/gpu1_utilization_percent"] == 90.0
    assert all(key.startswith("system/") and math.isfinite(v) for key, v in sample.items())


# ---------------------------------------------------------------------- placeholder and kernel status
def test_placeholder_names_the_run_escaped_in_the_theme():
    bundle = live.placeholder_bundle('<img src=x onerror="alert(1)">')
    assert "<img src=x" not in bundle["text/html"] and "&lt;img src=x" in bundle["text/html"]
    assert "waiting for the first step" in bundle["text/html"]
    for variable in ("--jp-border-color1", "--jp-ui-font-color1", "--jp-ui-font-color2", "--jp-ui-font-family"):
        assert re.search(rf"var\({variable},[^)]+\)", bundle["text/html"]), variable  # with a light fallback
    assert bundle["text/plain"].endswith("· waiting for the first step")
    assert live.placeholder_bundle(None)["text/plain"] == "new run · waiting for the first step"


def test_the_placeholder_path_imports_no_plotly_ipywidgets_or_mlflow():
    import subprocess

    code = (
        "import sys, os\n"
        "os.environ['JUPYTER_TRACKING_LIVE'] = 'widget'\n"
        "from jupyter_tracking.panels import live\n"
        "live.warm_up = lambda: None  # the background import is not the cell's path\n"
        "class Options: live = True; name = 'x'\n"
        "panel = live.announce(Options())\n"
        "assert panel is not None and panel.mode == 'widget'\n"
        "print(sorted(m for m in ('plotly', 'ipywidgets', 'anywidget', 'mlflow') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


class FakeKernel:
    def __init__(self, parent):
        self.parent = parent
        self.sent = []

    def get_parent(self, channel=None):
        return self.parent if channel == "shell" else {"header": {"msg_id": "control-request"}}

    def _publish_status(self, status, channel, parent=None):
        self.sent.append((status, (parent or self.get_parent(channel))["header"]["msg_id"]))


def test_a_subshell_request_does_not_make_the_kernel_read_idle_while_a_tracked_cell_runs(monkeypatch):
    import IPython

    from jupyter_tracking import internals

    cell = {"header": {"msg_id": "cell"}}
    kernel = FakeKernel(cell)
    hooks = []
    shell = types.SimpleNamespace(kernel=kernel, events=types.SimpleNamespace(
        register=lambda event, callback: hooks.append((event, callback))))
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    internals.hold_busy_status(1)
    try:
        kernel._publish_status("busy", "control")
        kernel._publish_status("idle", "control")  # create_subshell_request answered
        assert kernel.sent == [("busy", "control-request"), ("idle", "control-request"), ("busy", "cell")]
        kernel.sent.clear()
        kernel._publish_status("idle", "shell", cell)  # the cell's own end: left alone
        assert kernel.sent == [("idle", "cell")]
        assert [event for event, _ in hooks] == ["post_execute"]
        hooks[0][1]()  # the cell's end releases the hold whatever happened
        kernel.sent.clear()
        kernel._publish_status("idle", "control")
        assert kernel.sent == [("idle", "control-request")], "nothing re-published once the cell has ended"
    finally:
        internals.release_busy_status()
