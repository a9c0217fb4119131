"""Pages from the store (``run_pages``/``paging``) give the same runs, in the same order, as MLflow's own search
(filters) and as the whole-frame panel (sorts), on a real SQLite store with mixed params, missing and NaN
metrics, nested runs, tags, datasets, several statuses and a deleted run."""

from __future__ import annotations

import math
import time
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput

from jupyter_tracking import paging, queries, run_pages
from jupyter_tracking.panels import compare
from jupyter_tracking.serverext import queries as api
from jupyter_tracking.store import resolve_store
from tests.runs_factory import make_experiment, make_run, sqlite_uri

FILTERS = [
    "",
    "params.lr = '0.1'",
    "params.lr != '0.1'",
    "metrics.val_loss > 0.3",
    "metrics.val_loss <= 0.3",
    "metrics.val_loss != 0.5",
    "metrics.val_loss = 0",
    "params.opt LIKE 'a%'",
    "params.opt ILIKE 'a%'",
    "attributes.run_id IN ({ids})",
    "attributes.run_id NOT IN ({ids})",
    "datasets.digest IN ('d1', 'd2') and attributes.run_id IN ({ids})",
    "params.mixed IS NULL",
    "params.mixed IS NOT NULL",
    "attributes.status = 'FAILED'",
    "attributes.status != 'FINISHED'",
    "attributes.run_name LIKE 'child%'",
    "attributes.run_name = 'parent-1'",
    "tags.team = 'a'",
    "tags.team ILIKE 'A'",
    "tags.`mlflow.parentRunId` IS NOT NULL",
    "datasets.name = 'train'",
    "datasets.digest IN ('d1', 'd2')",
    "metrics.val_loss > 0.2 and params.opt = 'sgd'",
    "params.lr = '0.01' and attributes.status = 'FINISHED' and metrics.acc >= 0.5",
]
SORTS = ["metrics.val_loss", "-metrics.val_loss", "metrics.acc", "params.lr", "-params.lr", "params.mixed",
         "params.opt", "-params.opt", "tags.team", "start_time", "-duration_s", "run_name", "status",
         "val_loss", "-lr"]


def fill_mixed(client: MlflowClient, folder) -> tuple[str, list[str]]:
    """Experiment "mixed": 3 parents x 9 children with mixed params, missing and NaN metrics, tags, statuses,
    datasets, plus a deleted run; and experiment "other" with one run. Returns the experiment id and run ids."""
    exp = make_experiment(client, "mixed", folder)
    other = make_experiment(client, "other", folder)
    make_run(client, other, name="elsewhere", params={"lr": "0.1"}, metrics={"val_loss": 0.0})
    opts = ["adam", "Adam", "sgd", "SGD", "rmsprop"]
    lrs = ["0.1", "0.01", "0.001", "1", "0.05", "10"]
    mixed = ["3", "10", "abc", "2.5", None]
    ids = []
    for p in range(3):
        parent = make_run(client, exp, name=f"parent-{p}", tags={"kind": "sweep"})
        ids.append(parent)
        for i in range(9):
            n = p * 9 + i
            params = {"lr": lrs[n % len(lrs)], "opt": opts[n % len(opts)]}
            if mixed[n % len(mixed)] is not None:
                params["mixed"] = mixed[n % len(mixed)]
            metrics = {"val_loss": [0.5, 0.1, 0.3, 0.2, float("nan"), 0.0, -1.5, 0.3][n % 8]}
            if n % 4 != 1:
                metrics["acc"] = 0.3 + 0.05 * (n % 7)
            tags = {"team": ["a", "b", "A"][n % 3]} if n % 5 else {}
            status = ["FINISHED", "FINISHED", "FAILED", "FINISHED", "KILLED"][n % 5]
            ids.append(make_run(client, exp, name=f"child-{n}" if n % 6 else f"Child-{n}", params=params,
                                metrics=metrics if n % 10 != 7 else {}, tags=tags, status=status,
                                parent_run_id=parent))
    for i, run_id in enumerate(ids[1:8]):
        digest = "d1" if i % 2 else "d2"
        client.log_inputs(run_id, [DatasetInput(Dataset(name="train" if i < 4 else "test", digest=digest,
                                                        source_type="local", source="data.csv"))])
    deleted = make_run(client, exp, name="deleted", params={"lr": "0.1"}, metrics={"val_loss": 0.0})
    client.delete_run(deleted)
    return exp, ids


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    uri = sqlite_uri(folder)
    client = MlflowClient(uri)
    exp, ids = fill_mixed(client, folder)
    location = type(resolve_store())(uri=uri, source="env")
    mlflow.set_tracking_uri(uri)
    yield location, client, exp, ids
    mlflow.set_tracking_uri(None)


def all_pages(pager: paging.Pager, size: int = 7) -> list[str]:
    ids, offset = [], 0
    while True:
        runs = pager.page(offset, size)
        ids += [r.info.run_id for r in runs]
        if len(runs) < size:
            return ids
        offset += size


def sql_pager(location, exp, filter_string="", sort=None, max_results=None) -> paging.Pager:
    pager = paging.open_pager(location, [exp], filter_string, queries.parse_sort(sort) if sort else None,
                              max_results, page_size=7)
    return pager


@pytest.mark.parametrize("filter_string", FILTERS)
def test_filters_match_mlflow_search_runs(mixed_store, filter_string):
    location, _, exp, ids = mixed_store
    filter_string = filter_string.replace("{ids}", ", ".join(f"'{i}'" for i in ids[::3]))
    expected = list(mlflow.search_runs(experiment_ids=[exp], filter_string=filter_string)["run_id"])
    pager = sql_pager(location, exp, filter_string)
    assert isinstance(pager, paging.SqlPager)
    assert pager.total == len(expected)
    assert all_pages(pager) == expected  # same runs, same (newest first) order


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("filter_string", ["", "metrics.val_loss > 0.05", "tags.team = 'a'"])
def test_sorts_match_the_whole_frame_panel(mixed_store, sort, filter_string):
    location, _, exp, _ = mixed_store
    expected = paging.FramePager(location, [exp], filter_string, queries.parse_sort(sort), None)
    pager = sql_pager(location, exp, filter_string, sort)
    assert isinstance(pager, paging.SqlPager)
    assert pager.total == expected.total
    assert all_pages(pager) == list(expected.frame()["run_id"])
    assert pager.sort_column == expected.sort_column


def test_metric_sorts_agree_with_mlflow_where_mlflow_orders_values(mixed_store):
    location, _, exp, _ = mixed_store
    for direction in ("ASC", "DESC"):
        frame = mlflow.search_runs(experiment_ids=[exp], order_by=[f"metrics.val_loss {direction}"])
        with_value = list(frame[frame["metrics.val_loss"].notna()]["run_id"])
        ours = all_pages(sql_pager(location, exp, sort=f"metrics.val_loss {direction}"))
        assert ours[:len(with_value)] == with_value


def test_top_n_with_max_results(mixed_store):
    location, _, exp, _ = mixed_store
    pager = sql_pager(location, exp, sort="-params.lr", max_results=5)
    full = paging.FramePager(location, [exp], "", queries.parse_sort("-params.lr"), None)
    assert pager.total == 5 and all_pages(pager) == list(full.frame()["run_id"])[:5]


def test_best_is_mlflows_best_finished_run(mixed_store):
    location, _, exp, _ = mixed_store
    for mode, direction in (("min", "ASC"), ("max", "DESC")):
        expected = mlflow.search_runs(experiment_ids=[exp], filter_string="attributes.status = 'FINISHED'",
                                      order_by=[f"metrics.acc {direction}"], max_results=1)
        assert queries.best("acc", mode, "mixed", location=location).info.run_id == expected["run_id"][0]
    with pytest.raises(queries.QueryError, match="no_such_metric"):
        queries.best("no_such_metric", "min", "mixed", location=location)


def test_text_the_database_cannot_sort_like_python_falls_back(mixed_store):
    location, client, exp, _ = mixed_store
    folder_exp = make_experiment(client, "unicode", Path(location.uri.removeprefix("sqlite:///")).parent)
    for name in ("Éclair", "eclair", "zeta", "Ärger"):
        make_run(client, folder_exp, name=name, params={"word": name})
    pager = paging.open_pager(location, [folder_exp], "", queries.parse_sort("params.word"))
    assert isinstance(pager, paging.FramePager)
    assert list(pager.frame()["params.word"]) == sorted(["Éclair", "eclair", "zeta", "Ärger"], key=str.lower)


@pytest.mark.parametrize("refused", ["params.lr === 3 and", "params.lr > '0.05'", "metrics.acc IS NULL"])
def test_filters_mlflow_refuses_are_refused_in_one_line(mixed_store, refused):
    location, _, exp, _ = mixed_store
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow.search_runs(experiment_ids=[exp], filter_string=refused)
    with pytest.raises(queries.QueryError) as info:
        sql_pager(location, exp, refused)
    assert "\n" not in str(info.value)


def test_columns_from_sample_and_page_match_the_whole_frame(mixed_store):
    location, _, exp, _ = mixed_store
    for filter_string in ("", "params.opt = 'sgd'", "attributes.run_name = 'parent-1'"):
        pager = sql_pager(location, exp, filter_string)
        expected = paging._columns_of(paging.FramePager(location, [exp], filter_string, None, None).frame())
        got = pager.columns(pager.page(0, 7))
        assert (got.params, got.metrics, got.varying) == (expected.params, expected.metrics, expected.varying)


def test_indexes_exist_and_mlflow_still_writes_and_reads(mixed_store):
    location, client, exp, _ = mixed_store
    store = run_pages.sql_store(location)
    run_pages.ensure_indexes(store)
    import sqlalchemy

    with store.engine.connect() as connection:
        names = {row[0] for row in connection.execute(sqlalchemy.text(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'jt_%'"))}
    assert names == set(run_pages.INDEXES)
    before = len(mlflow.search_runs(experiment_ids=[exp]))
    run_id = make_run(client, exp, name="after-indexes", params={"lr": "0.1"}, metrics={"val_loss": 0.25})
    try:
        assert len(mlflow.search_runs(experiment_ids=[exp])) == before + 1
    finally:
        client.delete_run(run_id)


@pytest.fixture
def panel_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_uri(tmp_path))
    location = resolve_store()
    client = MlflowClient(location.uri)
    exp = make_experiment(client, "paged", tmp_path)
    ids = [make_run(client, exp, name=f"r{i:02d}", params={"depth": i % 4}, metrics={"loss": 1 / (i + 1)})
           for i in range(25)]
    return location, client, exp, ids


def test_panel_pages_forward_and_back_holding_one_page(panel_store):
    location, _, _, ids = panel_store
    panel = compare.RunsPanel("paged", location=location, page_size=10, sort="loss")
    order = list(reversed(ids))  # loss falls with i: the smallest loss is the newest run
    table = panel.table
    assert isinstance(panel._pager, paging.SqlPager) and panel._frame is None
    assert table.total == 25 and table.pages == 3
    seen = []
    for page in (0, 1, 2, 1, 0):
        table.page = page
        seen.append([r["id"] for r in table.rows])
        assert seen[-1] == order[page * 10:page * 10 + 10]
        assert len(panel.page_frame()) == len(seen[-1])
    assert panel._frame is None  # the full frame was never built
    assert list(panel.df["run_id"]) == order


def test_a_run_added_while_the_panel_is_open_shows_on_refresh(panel_store):
    location, client, exp, _ = panel_store
    panel = compare.RunsPanel("paged", location=location, page_size=10)
    table = panel.table
    new = make_run(client, exp, name="late", params={"depth": 9}, metrics={"loss": 0.5})
    assert table.total == 25 and new not in [r["id"] for r in table.rows]
    panel.refresh()
    assert table.total == 26 and table.rows[0]["id"] == new
    newer = make_run(client, exp, name="later", params={"depth": 9}, metrics={"loss": 0.4})
    table.filter_request = {"text": "", "n": 1}  # applying the filter again also refreshes
    assert table.total == 27 and table.rows[0]["id"] == newer


def test_frame_says_how_long_it_will_take_when_long(panel_store, monkeypatch):
    location = panel_store[0]
    panel = compare.RunsPanel("paged", location=location)
    said = []
    monkeypatch.setattr(paging, "SECONDS_PER_RUN_IN_A_FRAME", 1.0)
    frame = paging.timed_frame(panel._pager, say=said.append)
    assert len(frame) == 25 and len(said) == 1 and "25 runs" in said[0] and "about 25 s" in said[0]
    monkeypatch.setattr(paging, "SECONDS_PER_RUN_IN_A_FRAME", 0.0001)
    said.clear()
    paging.timed_frame(panel._pager, say=said.append)
    assert said == []


def test_runs_endpoint_pages_with_total_and_tokens(panel_store):
    location, _, exp, ids = panel_store
    first = api.search_runs(location, [exp], "", order_by=["metrics.loss DESC"], max_results=10)
    # The first page does not wait for the count: the side panel asks for it apart.
    assert first["total"] is None and first["next_page_token"]
    assert api.count_runs(location, [exp], "")["total"] == 25
    assert api.count_runs(location, [exp], "params.depth = '2' and metrics.loss < 0.2")["total"] == 5
    assert [r["run_id"] for r in first["runs"]] == ids[:10]
    rest = api.search_runs(location, [exp], "", order_by=["metrics.loss DESC"], max_results=10,
                           page_token=first["next_page_token"])
    last = api.search_runs(location, [exp], "", order_by=["metrics.loss DESC"], max_results=10,
                           page_token=rest["next_page_token"])
    assert [r["run_id"] for r in rest["runs"] + last["runs"]] == ids[10:] and last["next_page_token"] is None
    assert last["total"] == 25  # the last page tells it
    filtered = api.search_runs(location, [exp], "params.depth = '2'", order_by=["params.depth ASC"])
    assert filtered["total"] == 6 and all(r["params"]["depth"] == "2" for r in filtered["runs"])
    with pytest.raises(api.BadQuery):
        api.search_runs(location, [exp], "params.depth === 2")
    with pytest.raises(api.BadQuery):
        api.count_runs(location, [exp], "params.depth === 2")
    assert math.isfinite(first["runs"][0]["metrics"]["loss"])


def test_rarest_term_first_gives_mlflows_runs_with_and_without_our_indexes(mixed_store, tmp_path):
    """The SQLite rewrite of a filter with params/metrics/tags terms (joined rarest first, with our per-run
    indexes when the store has them) gives MLflow's runs in MLflow's order, and runs at all without them."""
    import shutil
    import sqlite3

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    location, _, exp, ids = mixed_store
    indexed = run_pages.sql_store(location)
    run_pages.ensure_indexes(indexed)
    copy = tmp_path / "plain.db"
    shutil.copyfile(location.uri.removeprefix("sqlite:///"), copy)
    with sqlite3.connect(copy) as db:
        for name in run_pages.INDEXES:
            db.execute(f"DROP INDEX {name}")
    plain = SqlAlchemyStore(f"sqlite:///{copy}", str(tmp_path / "artifacts"))
    filters = [f for f in FILTERS if any(p in f for p in ("params.", "metrics.", "tags.", "run_name"))]
    filters += ["tags.team = 'a' and params.lr != '0.1' and metrics.val_loss > 0",
                "metrics.acc > 0 and params.opt ILIKE '%d%' and tags.team IS NOT NULL"]
    try:
        for filter_string in filters:
            filter_string = filter_string.replace("{ids}", ", ".join(f"'{i}'" for i in ids[::3]))
            expected = list(mlflow.search_runs(experiment_ids=[exp], filter_string=filter_string)["run_id"])
            for store in (indexed, plain):
                query = run_pages.SqlRunQuery(store, [exp], filter_string)
                with query._session() as session:
                    found = query._sqlite_matching_ids(session)
                    joined = query._clauses(session)[1]
                if not joined:  # IS NULL and attribute terms only: the plain query answers
                    assert found is None, filter_string
                    continue
                assert found == expected, (filter_string, store is plain)
    finally:
        plain.engine.dispose()


@pytest.mark.parametrize("filter_string", [f for f in FILTERS if any(p in f for p in ("params.", "metrics.", "tags."))])
def test_filtered_pages_among_the_newest_runs_are_mlflows_pages(mixed_store, monkeypatch, filter_string):
    """A filtered page in store order is first looked for among the newest runs (a window that grows, then
    every run): with windows smaller than the experiment, every page, shallow and deep, is still MLflow's."""
    location, _, exp, ids = mixed_store
    filter_string = filter_string.replace("{ids}", ", ".join(f"'{i}'" for i in ids[::3]))
    expected = list(mlflow.search_runs(experiment_ids=[exp], filter_string=filter_string)["run_id"])
    monkeypatch.setattr(run_pages, "NEWEST_WINDOW", 4)
    monkeypatch.setattr(run_pages, "NEWEST_WINDOW_MAX", 16)  # 31 runs: a window of 4, 16, then all of them
    store = run_pages.sql_store(location)
    for size in (1, 2, 3, 5):
        pages, offset = [], 0
        while True:
            query = run_pages.SqlRunQuery(store, [exp], filter_string)  # new each time: no list of matches yet
            page = query.page_ids(None, offset, size)
            pages += page
            if len(page) < size:
                break
            offset += size
        assert pages == expected, size
    first = run_pages.SqlRunQuery(store, [exp], filter_string)
    assert first.page_ids(None, 0, 1) == expected[:1]
    if expected and expected[0] in ids[-4:]:  # found in the first window: the filter was not run on every run
        assert first._ids is None
    assert first.count() == len(expected)


def test_the_panel_shows_its_first_page_before_the_count_and_the_count_follows(panel_store, monkeypatch):
    """In a widget front end the table shows before the runs matching a params/metrics filter are counted;
    the count comes from a thread and the table then says the exact total."""
    import threading

    location = panel_store[0]
    monkeypatch.setenv("JUPYTER_TRACKING_LIVE", "widget")
    counted = threading.Event()
    release = threading.Event()
    real_count = run_pages.SqlRunQuery.count

    def slow_count(query):
        release.wait(30)  # held until the first page has been looked at
        result = real_count(query)
        counted.set()
        return result

    monkeypatch.setattr(run_pages.SqlRunQuery, "count", slow_count)
    panel = compare.RunsPanel("paged", location=location, page_size=4, filter="params.depth = '2'")
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    table = panel.table
    assert len(table.rows) == 4 and table.counting and not table.total_known and table.total == 4
    assert table.pages == 2  # one more page is known to exist, without counting
    assert "4+ runs" in bundle["text/plain"]
    release.set()
    assert counted.wait(30)
    deadline = time.monotonic() + 30
    while table.counting and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not table.counting and table.total_known and table.total == 6 and table.pages == 2
    # Elsewhere (nbconvert, a terminal) the static table is all there is: it counts first.
    monkeypatch.setenv("JUPYTER_TRACKING_LIVE", "text")
    static = compare.RunsPanel("paged", location=location, page_size=4, filter="params.depth = '2'")
    assert "6 runs" in static._repr_mimebundle_()["text/plain"]


def test_a_count_that_keeps_failing_leaves_the_table_saying_n_plus_not_counting(panel_store, monkeypatch):
    """A store that refuses the background count (locked, gone) twice gets a third try; after that the table
    says "N+ runs" instead of "counting" for ever."""
    location = panel_store[0]
    monkeypatch.setenv("JUPYTER_TRACKING_LIVE", "widget")
    monkeypatch.setattr(compare.time, "sleep", lambda seconds: None)
    tries = []

    def refused(query):
        tries.append(1)
        raise RuntimeError("database is locked")

    monkeypatch.setattr(run_pages.SqlRunQuery, "count", refused)
    panel = compare.RunsPanel("paged", location=location, page_size=4, filter="params.depth = '2'")
    panel._repr_mimebundle_()
    table = panel.table
    panel._figure_thread.join(30)  # the thread counts, then draws the figure
    assert len(tries) == compare.COUNT_ATTEMPTS
    assert not table.counting and not table.total_known and table.total == 4
