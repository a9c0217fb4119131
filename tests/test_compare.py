"""The comparison panel's state and widgets over a real SQLite store (the browser side is in tests/ui/)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from jupyter_tracking import queries
from jupyter_tracking.panels import compare
from jupyter_tracking.store import resolve_store
from tests.runs_factory import make_experiment, make_run, sqlite_uri

EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
def panel_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(tmp_path))
    location = resolve_store()
    client = MlflowClient(location.uri)
    exp = make_experiment(client, "sweep", tmp_path)
    ids = []
    for i in range(45):
        ids.append(make_run(
            client, exp, name=f"run-{i:02d}",
            params={"max_depth": i % 5 + 1, "min_leaf": i % 3 + 1, "criterion": "gini",
                    "note": EVIL if i == 7 else "plain"},
            metrics={"val_loss": 1.0 / (i + 1), "test_acc": 0.4 + i / 100},
            series={"train_loss": [1.0, 0.5, 0.25 + i / 100]},
            code=f"max_depth = {i % 5 + 1}\nfit()\n",
        ))
    return location, ids


def test_df_is_the_whole_query_and_the_browser_gets_one_page(panel_store):
    location, ids = panel_store
    panel = compare.runs("sweep", location=location)
    assert len(panel.df) == 45 and set(panel.df["run_id"]) == set(ids)
    table = panel.table
    assert table.total == 45 and table.pages == 3 and len(table.rows) == compare.PAGE_SIZE
    # Newest first by default.
    assert table.rows[0]["id"] == ids[-1]
    panel.table.page = 2
    assert len(panel.table.rows) == 45 - 2 * compare.PAGE_SIZE and panel.page == 2
    panel.table.page = 99
    assert panel.page == 2


def test_constant_columns_hidden_until_show_all(panel_store):
    panel = compare.runs("sweep", location=panel_store[0])
    keys = [c["key"] for c in panel.table.columns]
    assert "params.criterion" not in keys
    assert {"params.max_depth", "params.min_leaf", "metrics.val_loss", "params.note"} <= set(keys)
    assert panel.table.hidden == 1
    panel.table.show_all = True
    assert "params.criterion" in [c["key"] for c in panel.table.columns] and panel.table.hidden == 0


def test_sort_by_clicked_column(panel_store):
    panel = compare.runs("sweep", location=panel_store[0])
    panel.table.sort = {"column": "metrics.val_loss", "descending": False}
    values = list(panel.df["metrics.val_loss"])
    assert values == sorted(values)
    assert panel.table.rows[0]["cells"][0] == "run-44"
    panel.table.sort = {"column": "params.max_depth", "descending": True}
    assert set(panel.df["params.max_depth"].iloc[:9]) == {"5"}


def test_filter_good_and_bad(panel_store):
    panel = compare.runs("sweep", location=panel_store[0])
    panel.table.filter_request = {"text": "params.min_leaf = '3' and metrics.test_acc > 0.605", "n": 1}
    assert panel.table.filter_error == ""
    assert set(panel.df["params.min_leaf"]) == {"3"} and (panel.df["metrics.test_acc"] > 0.605).all()
    good_rows = panel.table.rows
    assert panel.table.total == len(panel.df) == 8
    panel.table.filter_request = {"text": "params.min_leaf = = '3'", "n": 2}
    assert panel.table.filter_error.startswith("Filter not applied:")
    assert "\n" not in panel.table.filter_error
    assert panel.table.rows == good_rows and len(panel.df) == 8  # the last good table stays
    assert panel.filter == "params.min_leaf = '3' and metrics.test_acc > 0.605"
    panel.table.filter_request = {"text": "", "n": 3}
    assert panel.table.filter_error == "" and len(panel.df) == 45


def test_select_two_rows_overlays_curves_and_diffs(panel_store):
    _, ids = panel_store
    panel = compare.runs("sweep", location=panel_store[0])
    assert panel.table.metric == "metrics.val_loss"
    panel.table.metric = "metrics.train_loss"
    panel.table.selected = [ids[3], ids[4]]
    figure = panel.figure
    scatters = [t for t in figure.data if t.type == "scatter"]
    assert [t.meta for t in scatters] == [ids[3], ids[4]]
    assert list(scatters[0].y) == [1.0, 0.5, 0.28] and list(scatters[0].x) == [0, 1, 2]
    parcoords = [t for t in figure.data if t.type == "parcoords"][0]
    labels = [d.label for d in parcoords.dimensions]
    assert labels[-1] == "train_loss" and "max_depth" in labels
    diff = panel.table.diff
    assert diff["a"]["run_id"] == ids[3] and diff["b"]["run_id"] == ids[4]
    changed = {p["key"] for p in diff["params"] if p["changed"]}
    assert changed == {"max_depth", "min_leaf"}
    assert any(line.startswith("-max_depth = 4") for line in diff["code_diff"])
    panel.table.selected = [ids[3]]
    assert panel.table.diff == {} and len([t for t in figure.data if t.type == "scatter"]) == 1


def test_store_values_are_escaped_everywhere(panel_store):
    _, ids = panel_store
    panel = compare.runs("sweep", location=panel_store[0])
    page = panel.to_html()
    panel.set_filter("params.note = 'plain' or params.note LIKE '%img%'")
    panel.set_page(1)
    assert "<img" not in panel.to_html()
    static = compare.RunsPanel("sweep", location=panel_store[0], page_size=50).to_html()
    assert "&lt;img src=x onerror=alert(1)&gt;" in static and "<img" not in static and "<img" not in page
    panel.set_selected([ids[7], ids[8]])
    parcoords = [t for t in panel.figure.data if t.type == "parcoords"][0]
    texts = [t for d in parcoords.dimensions for t in (d.ticktext or ())]
    assert EVIL in texts  # plotly draws tick texts with textContent; the browser test checks nothing is injected
    # Trace names, titles and axis labels are markup to plotly: escaped (entities show as the characters).
    assert compare._plot_text(EVIL) == "&lt;img src=x onerror=alert(1)&gt;"


def test_max_results_asks_the_store_for_the_top_n(panel_store):
    panel = compare.runs("sweep", sort="-test_acc", max_results=5, location=panel_store[0])
    assert len(panel.df) == 5 and panel.df["metrics.test_acc"].min() == pytest.approx(0.80)
    panel.table.sort = {"column": "metrics.test_acc", "descending": False}
    assert len(panel.df) == 5 and panel.df["metrics.test_acc"].max() == pytest.approx(0.44)


def test_bundle_has_widget_html_and_text(panel_store):
    panel = compare.runs("sweep", location=panel_store[0])
    bundle = panel._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", "application/vnd.jupyter.widget-view+json"}
    assert "sweep: 45 runs" in bundle["text/plain"] and "run-44" in bundle["text/plain"]


def test_bare_names_in_a_filter_get_the_mlflow_spelling_suggested(panel_store):
    panel = compare.runs("sweep", location=panel_store[0])
    assert not panel.set_filter("min_leaf = 3 and test_acc > 0.44")
    assert panel.table.filter_error.endswith("Did you mean: params.min_leaf = '3' and metrics.test_acc > 0.44")
    assert "\n" not in panel.table.filter_error and len(panel.df) == 45
    with pytest.raises(queries.QueryError, match="Did you mean: metrics.val_loss < 0.1"):
        compare.runs("sweep", filter="val_loss < 0.1", location=panel_store[0])
    assert queries.suggest_filter("params.a = '1' and x > 2", ["a"], ["b"]) is None


def test_unknown_experiment_and_bad_initial_filter(panel_store):
    with pytest.raises(queries.QueryError, match="sweep"):
        compare.runs("missing", location=panel_store[0])
    with pytest.raises(queries.QueryError):
        compare.runs("sweep", filter="metrics.x >>> 1", location=panel_store[0])


def test_format_cell():
    assert compare.format_cell("metrics.a", 0.123456789) == "0.1235"  # the card's number format
    assert compare.format_cell("duration_s", 75.0) == "1 min 15 s"
    assert compare.format_cell("params.a", None) == ""
    assert compare.format_cell("params.a", "x" * 500).endswith("\u2026")


def test_guess_objective():
    assert queries.guess_objective(["metrics.train_loss", "metrics.test_acc", "metrics.val_loss"]) == \
        ("val_loss", "min")
    assert queries.guess_objective(["train_loss", "test_acc"]) == ("test_acc", "max")
    assert queries.guess_objective(["throughput"]) == ("throughput", "max")
    assert queries.guess_objective(["reward", "epoch_count"]) == ("reward", "max")
    assert queries.guess_objective(["weird", "odd"]) == ("weird", None)  # unknown: no direction guessed
    assert queries.guess_objective(["weird", "reward"], {"weird": "min"}) == ("weird", "min")
    assert queries.guess_objective([]) is None
