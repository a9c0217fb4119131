"""The live panel on a real recorder and SQLite store in this process: text progress for long headless cells,
plain Python scripts, and the panel's own redraw bookkeeping."""

from __future__ import annotations

import math
import time

from jupyter_tracking import store as store_module
from jupyter_tracking.panels import live
from jupyter_tracking.recorder import RunRecorder


def recorder_in(project, name: str, **kwargs) -> RunRecorder:
    location = store_module.resolve_store(project / "notebooks")
    return RunRecorder(location, "live-inprocess", run_name=name, **kwargs)


def test_headless_kernels_print_a_progress_line_for_long_cells(project, monkeypatch, capsys):
    monkeypatch.setattr(live, "TEXT_FIRST_LINE_AFTER", 0.5)  # 10 s in real use
    monkeypatch.setattr(live, "TEXT_INTERVAL", 0.6)  # 30 s in real use
    recorder = recorder_in(project, "long-headless", total_steps=20)
    panel = live.LivePanel(mode="text")
    recorder.add_observer(panel)
    recorder.start()
    started = time.monotonic()
    for step in range(20):
        recorder.log_step(step, {"train_loss": math.exp(-step / 5)})
        time.sleep(0.1)
    recorder.finish("FINISHED")
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    progress = [line for line in captured.err.splitlines() if line.startswith("[live] long-headless · step ")]
    assert 2 <= len(progress) <= elapsed / 0.6 + 1, captured.err
    assert "/20 (" in progress[0] and "elapsed" in progress[0] and "ETA" in progress[0]
    assert "Training curves (finished)" in captured.out, "no IPython here: the text picture is printed"
    assert "train_loss" in captured.out and "(20 points)" in captured.out


def test_panel_redraw_count_follows_new_data_not_log_calls(project):
    recorder = recorder_in(project, "redraws")
    panel = live.LivePanel(mode="image")
    recorder.add_observer(panel)
    recorder.start()
    started = time.monotonic()
    calls = 0
    while time.monotonic() - started < 2.5:
        for _ in range(1000):
            recorder.log_step(None, {"loss": 1.0 / (calls + 1)})
            calls += 1
        time.sleep(0.01)
    recorder.finish("FINISHED")
    assert calls > 20_000
    # image views redraw at most once a second: 1 show + ~3 updates in 2.5 s (+ the flush), whatever the rate
    assert 1 <= panel.redraws <= 5, panel.redraws
    assert panel.view.messages == panel.redraws
    state = panel.state("FINISHED")
    assert state.curves["loss"].count == calls
    assert len(state.curves["loss"].values) <= 2 * live.DEFAULT_CAPACITY + 3


def test_widget_panel_falls_back_to_pictures_when_plotly_cannot_load(project, monkeypatch, capsys):
    def broken():
        raise ImportError("No module named 'anywidget'")

    monkeypatch.setattr(live, "_figure_class", broken)
    monkeypatch.setattr(live, "IMPORT_AFTER", 0.0)
    monkeypatch.setattr(live, "WIDGET_AFTER", 0.3)  # 2 s in real use
    recorder = recorder_in(project, "no-widgets")
    panel = live.LivePanel(mode="widget")
    recorder.add_observer(panel)
    recorder.start()
    for step in range(12):
        recorder.log_step(step, {"train_loss": 1.0 / (step + 1)})
        time.sleep(0.1)
    recorder.finish("FINISHED")
    captured = capsys.readouterr()
    assert panel.view.widget_failed and panel.view.figure is None, "the pictures went on"
    assert captured.err.count("live curves shown as pictures (ImportError") == 1, captured.err
    assert panel.redraws >= 2 and "Training curves (finished)" in captured.out
