"""The same pages on the other stores a kernel meets: PostgreSQL that it talks to directly (the database
answers, as on SQLite) and a tracking server over HTTP (MLflow's paged ``search_runs``, one request a page)."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

from jupyter_tracking import paging, queries
from jupyter_tracking.panels import compare
from jupyter_tracking.store import StoreLocation
from tests.sharing.team import Postgres, TeamServer
from tests.test_run_pages import FILTERS, SORTS, all_pages, fill_mixed

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def postgres_store(tmp_path_factory):
    pg = Postgres().start()
    try:
        client = MlflowClient(pg.uri)
        exp, ids = fill_mixed(client, tmp_path_factory.mktemp("pgart"))
        mlflow.set_tracking_uri(pg.uri)
        yield StoreLocation(uri=pg.uri, source="env"), exp, ids
    finally:
        mlflow.set_tracking_uri(None)
        pg.stop()


def test_postgres_filters_and_sorts_match(postgres_store):
    location, exp, ids = postgres_store
    for filter_string in FILTERS:
        filter_string = filter_string.replace("{ids}", ", ".join(f"'{i}'" for i in ids[::3]))
        expected = list(mlflow.search_runs(experiment_ids=[exp], filter_string=filter_string)["run_id"])
        pager = paging.open_pager(location, [exp], filter_string, page_size=7)
        assert isinstance(pager, paging.SqlPager), filter_string
        assert (pager.total, all_pages(pager)) == (len(expected), expected), filter_string
    for sort in SORTS:
        key = queries.parse_sort(sort)
        expected = paging.FramePager(location, [exp], "", key, None)
        pager = paging.open_pager(location, [exp], "", key, page_size=7)
        assert isinstance(pager, paging.SqlPager), sort
        assert all_pages(pager) == list(expected.frame()["run_id"]), sort


@pytest.fixture(scope="module")
def server_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("httppages")
    server = TeamServer("sqlite:///" + str(folder / "mlflow.db"), folder).start()
    try:
        client = MlflowClient(server.url)
        exp, ids = fill_mixed(client, folder)
        mlflow.set_tracking_uri(server.url)
        yield StoreLocation(uri=server.url, source="env"), client, exp, ids
    finally:
        mlflow.set_tracking_uri(None)
        server.stop()


def test_server_pages_one_request_each_forward_and_back(server_store):
    location, client, exp, _ = server_store
    expected = list(mlflow.search_runs(experiment_ids=[exp])["run_id"])
    panel = compare.RunsPanel("mixed", location=location, page_size=10)
    assert isinstance(panel._pager, paging.MlflowPager)
    table = panel.table
    assert not table.total_known and table.pages == 2 and table.total == 10
    for page in (0, 1, 2, 1, 0):
        table.page = page
        assert [r["id"] for r in table.rows] == expected[page * 10:page * 10 + 10]
    assert table.total_known and table.total == len(expected) == 30  # the last page was seen
    assert panel._frame is None and list(panel.df["run_id"]) == expected


def test_server_metric_sort_filter_and_best(server_store):
    location, _, exp, _ = server_store
    pager = paging.open_pager(location, [exp], "metrics.val_loss > 0", queries.parse_sort("metrics.val_loss"),
                              page_size=4)
    assert isinstance(pager, paging.MlflowPager)
    expected = mlflow.search_runs(experiment_ids=[exp], filter_string="metrics.val_loss > 0",
                                  order_by=["metrics.val_loss ASC"])
    assert all_pages(pager, 4) == list(expected["run_id"])
    frame_pager = paging.open_pager(location, [exp], "", queries.parse_sort("params.lr"))
    assert isinstance(frame_pager, paging.FramePager)  # MLflow would sort a param as text
    best = mlflow.search_runs(experiment_ids=[exp], filter_string="attributes.status = 'FINISHED'",
                              order_by=["metrics.acc DESC"], max_results=1)
    assert queries.best("acc", "max", "mixed", location=location).info.run_id == best["run_id"][0]
