"""How the run card and the pictures write things: one number format, only what changed, the note, the
"new best" badge, theme colours (JupyterLab's --jp-* variables with light fallbacks)."""

from __future__ import annotations

import re

import pytest

from jupyter_tracking.panels.card import Comparison, card_bundle, card_data, render_html, render_text
from jupyter_tracking.panels.numbers import NUMBER_FORMAT, format_delta, format_number
from jupyter_tracking.recorder import RunSummary


@pytest.mark.parametrize("value, text, trimmed", [
    (0.962, "0.9620", "0.962"), (0.9601, "0.9601", "0.9601"), (-9.68e-4, "-0.0009680", "-0.000968"),
    (9.68e-5, "9.680e-5", "9.68e-5"), (12345.6, "12346", "12346"), (1234567.8, "1.235e+6", "1.235e+6"),
    (15.0, "15", "15"), (9.99996, "10.00", "10"), (0.0, "0", "0"), (None, "–", "–"),
    (float("nan"), "nan", "nan"), (float("-inf"), "-inf", "-inf"),
])
def test_one_number_format(value, text, trimmed):
    assert format_number(value) == text
    assert format_number(value, trim=True) == trimmed


def test_deltas_only_where_something_changed():
    assert format_delta(0.962, 0.9601) == "+0.001900"
    assert format_delta(0.3, 0.1 + 0.2) == ""  # float noise is no change
    assert format_delta(2.0, 2.0) == "" and format_delta(1.0, None) == "" and format_delta(float("nan"), 1) == ""
    assert format_delta(1.0, 4.0) == "-3"


def summary(metrics, params=None, note=None):
    return RunSummary("r2", "try", "1", "exp", "FINISHED", 100.0, 101.5, params=params or {}, metrics=metrics,
                      note=note)


def test_a_run_like_its_predecessor_says_no_change_once_and_shows_its_note():
    comparison = Comparison(previous_run_id="r1", previous_params={"lr": "0.1"},
                            previous_metrics={"val_loss": 0.25, "acc": 0.9, "f1": 0.8},
                            best={"val_loss": (0.25, "r1"), "acc": (0.9, "r1")})
    data = card_data(summary({"val_loss": 0.25, "acc": 0.9, "f1": 0.8}, {"lr": "0.1"}, note="same <again>"),
                     comparison, notebook=None, cell_id=None)
    assert data["no_change"] and data["note"] == "same <again>" and data["number_format"] == NUMBER_FORMAT
    text = render_text(data)
    assert "note:    same <again>" in text.splitlines()
    assert text.count("no change") == 1 and "vs previous" not in text and "best" not in text and "±" not in text
    assert "val_loss=0.2500" in text and "acc=0.9000" in text
    page = render_html(data)
    assert page.count("no change") == 1 and "same &lt;again&gt;" in page and "vs previous" not in page


def test_new_best_is_flagged_and_best_is_not_repeated_when_the_previous_run_is_the_best():
    comparison = Comparison(previous_run_id="r1", previous_metrics={"val_loss": 0.3, "acc": 0.8},
                            best={"val_loss": (0.3, "r1"), "acc": (0.85, "r0")})
    data = card_data(summary({"val_loss": 0.2, "acc": 0.81}), comparison, notebook=None, cell_id=None)
    by_key = {m["key"]: m for m in data["metrics"]}
    assert by_key["val_loss"]["new_best"] and by_key["val_loss"]["best_text"] == ""
    assert by_key["val_loss"]["delta_text"] == "-0.1000" and by_key["val_loss"]["value_text"] == "0.2000"
    assert not by_key["acc"]["new_best"] and by_key["acc"]["best_text"] == "0.8500"  # the best is another run
    text = render_text(data)
    assert "val_loss=0.2000 (new best, -0.1000 vs previous)" in text
    assert "acc=0.8100 (+0.01000 vs previous, best 0.8500)" in text and not data["no_change"]
    # The previous run is the best and this one is worse: the delta says it all.
    comparison = Comparison(previous_run_id="r1", previous_metrics={"val_loss": 0.3}, best={"val_loss": (0.3, "r1")})
    data = card_data(summary({"val_loss": 0.35}), comparison, notebook=None, cell_id=None)
    assert "val_loss=0.3500 (+0.05000 vs previous)" in render_text(data)
    assert "new best" not in render_html(data)


def test_card_html_takes_the_theme_colours_with_light_fallbacks():
    comparison = Comparison(previous_run_id="r1", previous_params={"lr": "0.1"}, previous_metrics={"val_loss": 0.3},
                            best={"val_loss": (0.3, "r1")})
    bundle = card_bundle(card_data(summary({"val_loss": 0.2}, {"lr": "0.2"}), comparison, notebook=None, cell_id=None))
    page = bundle["text/html"]
    colours = re.findall(r"(?:color|background):([^;\"]+)", page)
    for colour in colours:
        assert colour.startswith(("var(--jp-", "inherit", "rgba(")), f"a hard-coded colour {colour!r}"
        if colour.startswith("var("):
            assert re.fullmatch(r"var\(--jp-[\w-]+,(#[0-9a-f]{3,6}|inherit|sans-serif)\)", colour), colour
    assert "color:var(--jp-content-font-color1,inherit)" in page
    assert "new best" in page and "(was 0.1)" in page
