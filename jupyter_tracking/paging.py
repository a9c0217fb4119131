"""Pages of a runs query from any store: what the comparison panel, ``%track best`` and the REST API read.

``open_pager`` picks one of three ways to answer "runs N to N+k of this filter in this order":

* ``SqlPager``: an SQL store the kernel reaches directly (SQLite, PostgreSQL); the database filters, sorts and
  counts, and only the page's runs are loaded (``run_pages``).
* ``MlflowPager``: a tracking server (HTTP); MLflow's own paged ``search_runs``, one request per page, page tokens
  kept to go back. The total is not known (``total`` is None) until the last page has been seen.
* ``FramePager``: every matching run in one pandas frame, sorted by ``queries.sort_frame``: the fallback for a
  query the other two cannot answer with the panel's sort semantics.

All three sort the same way (``queries.sort_frame``: numbers numerically, text lower-cased, missing last, ties in
store order) and filter with MLflow's own filter, so they answer the same query with the same runs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import queries, run_pages

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from mlflow.entities import Run

    from .run_pages import Columns

SECONDS_PER_RUN_IN_A_FRAME = 0.0004  # measured: 10,000 runs to a frame in 3.3-4.2 s (2 cores)
HTTP_SORTS = ("start_time", "attributes.start_time", "end_time", "attributes.end_time")


class Pager:
    """One query (experiments, filter, sort, max_results); pages of it on request."""

    total: int | None = None
    sort_column: str | None = None  # the frame column the sort resolved to, when it did

    def page(self, offset: int, limit: int) -> list[Run]:
        raise NotImplementedError

    @property
    def known_total(self) -> int | None:
        """The total when it is known without more work (counting can cost O(matching runs)), else None."""
        return self.total

    def has_more(self, offset: int) -> bool:
        """True when some run comes at or after ``offset``."""
        return self.total is not None and offset < self.total

    def columns(self, page_runs: list[Run]) -> Columns:
        raise NotImplementedError

    def matching(self, run_ids: list[str]) -> list[str]:
        raise NotImplementedError

    def runs(self, run_ids: list[str]) -> list[Run]:
        """These runs (the selection), in the order given."""
        return [queries.get_run(i, self.location) for i in run_ids]

    def frame(self) -> pd.DataFrame:
        """Every run of the query as a frame (``queries.runs_to_frame``), in the query's order."""
        raise NotImplementedError

    def frame_estimate(self) -> float | None:
        """Seconds ``frame()`` will take, roughly, when it is known."""
        return None if self.total is None else self.total * SECONDS_PER_RUN_IN_A_FRAME


def _columns_of(frame: pd.DataFrame) -> Columns:
    from .run_pages import Columns

    params, metrics = queries.param_columns(frame), queries.metric_columns(frame)
    return Columns(params=params, metrics=metrics, varying=set(queries.varying_columns(frame, params + metrics)))


def _capped(total: int, max_results: int | None) -> int:
    return total if max_results is None else min(total, max(0, max_results))


class SqlPager(Pager):
    def __init__(self, location: Any, query: Any, sort: queries.SortKey | None, max_results: int | None) -> None:
        self.location, self.query = location, query
        self.max_results = max_results
        self.order = query.resolve(sort.name, sort.descending) if sort else None
        self.sort_column = self.order.column if self.order else None
        if self.order == run_pages.OrderKey("attribute", "start_time", True):
            self.order = None  # newest first is the store's own order
        self._total: int | None = None
        self.count_failed = False  # the panel's background count gave up (the table says "N+")
        self._more: set[int] = set()  # offsets known to have a run at or after them
        self._cached: tuple[tuple[int, int], list] | None = None

    @property
    def total(self) -> int:
        """How many runs match (counted on first use: ``%track best`` needs only the first run). With a filter
        on params, metrics or tags this evaluates it on every run: the panel counts in the background."""
        if self._total is None:
            self._total = _capped(self.query.count(), self.max_results)
        return self._total

    @property
    def known_total(self) -> int | None:
        if self._total is None and (count := self.query.known_count()) is not None:
            self._total = _capped(count, self.max_results)
        return self._total

    def has_more(self, offset: int) -> bool:
        """Whether a run comes at or after ``offset``: one run asked for, not a count (when none was made yet)."""
        if self._total is not None:
            return offset < self._total
        if self.max_results is not None and offset >= self.max_results:
            return False
        if offset not in self._more and self.query.page_ids(self.order, offset, 1):
            self._more.add(offset)
        return offset in self._more

    def page(self, offset: int, limit: int) -> list[Run]:
        limit = max(0, limit if self.max_results is None else min(limit, self.max_results - offset))
        if self._cached and self._cached[0] == (offset, limit):
            return self._cached[1]
        ids = self.query.page_ids(self.order, offset, limit + 1) if limit else []
        # One id past the page says whether another page follows; a short page says the total, uncounted.
        if len(ids) > limit:
            self._more.add(offset + limit)
        elif limit and (ids or offset == 0):
            self._total = _capped(offset + len(ids), self.max_results) if self._total is None else self._total
        runs = self.query.runs(ids[:limit]) if limit else []
        self._cached = ((offset, limit), runs)
        return runs

    def columns(self, page_runs: list[Run]) -> Columns:
        return self.query.columns([r.info.run_id for r in page_runs])

    def matching(self, run_ids: list[str]) -> list[str]:
        return self.query.matching(run_ids)

    def runs(self, run_ids: list[str]) -> list[Run]:
        return self.query.runs(run_ids)

    def frame(self) -> pd.DataFrame:
        ids = self.query.page_ids(self.order, 0, self.total)
        runs: list = []
        with queries.gc_paused():
            for start in range(0, len(ids), queries.PAGE_SIZE):
                runs.extend(self.query.runs(ids[start:start + queries.PAGE_SIZE]))
        return queries.runs_to_frame(runs)


class MlflowPager(Pager):
    """MLflow's paged ``search_runs`` (a tracking server): a page per request; tokens remembered to go back."""

    def __init__(self, location: Any, experiment_ids: list[str], filter_string: str,
                 sort: queries.SortKey | None, max_results: int | None, page_size: int) -> None:
        self.location, self.experiment_ids, self.filter_string = location, experiment_ids, filter_string
        self.max_results, self.page_size = max_results, max(1, page_size)
        self.order_by = [queries.store_order_by(sort)] if sort else None
        self.sort_column = sort.name.removeprefix("attributes.") if sort else None
        self._tokens: dict[int, str | None] = {0: None}  # offset -> the page token that starts there
        self._pages: dict[int, list] = {}
        self._end: int | None = None  # offset of the end, once a page without a next token was seen
        self.page(0, self.page_size)  # a bad filter fails here, once

    def _fetch(self, offset: int) -> list[Run]:
        from .store import client_for

        if offset in self._pages:
            return self._pages[offset]
        known = max(o for o in self._tokens if o <= offset)
        client = client_for(self.location)
        while True:
            try:
                page = client.search_runs(self.experiment_ids, self.filter_string or "", max_results=self.page_size,
                                          order_by=self.order_by, page_token=self._tokens[known])
            except Exception as exc:
                from mlflow.exceptions import MlflowException

                if isinstance(exc, MlflowException):
                    raise queries.QueryError(queries.one_line(exc)) from exc
                raise
            runs = list(page)
            self._pages = {known: runs}  # one page in memory
            if page.token:
                self._tokens[known + len(runs)] = page.token
            else:
                self._end = known + len(runs)
                self.total = _capped(self._end, self.max_results)
            if known == offset or not page.token:
                return runs if known == offset else []
            known += len(runs)

    def page(self, offset: int, limit: int) -> list[Run]:
        if self.max_results is not None:
            limit = max(0, min(limit, self.max_results - offset))
        if limit <= 0:
            return []
        runs: list = []
        start = offset - offset % self.page_size
        while len(runs) < limit + (offset - start):
            got = self._fetch(start + len(runs))
            if not got:
                break
            runs.extend(got)
        return runs[offset - start:offset - start + limit]

    def has_more(self, offset: int) -> bool:
        if self.max_results is not None and offset >= self.max_results:
            return False
        return self._end is None or offset < self._end

    def columns(self, page_runs: list[Run]) -> Columns:
        first = self.page(0, self.page_size)
        seen = {r.info.run_id: r for r in [*first, *page_runs]}
        return _columns_of(queries.runs_to_frame(list(seen.values())))

    def matching(self, run_ids: list[str]) -> list[str]:
        if not run_ids:
            return []
        quoted = ", ".join("'" + i.replace("'", "") + "'" for i in run_ids)
        clause = f"attributes.run_id IN ({quoted})"
        text = f"{self.filter_string} and {clause}" if self.filter_string else clause
        found = {r.info.run_id for r in queries.search(filter=text, location=self.location,
                                                       experiment_ids_=self.experiment_ids)}
        return [i for i in run_ids if i in found]

    def frame(self) -> pd.DataFrame:
        return queries.runs_to_frame(queries.search(filter=self.filter_string or None, order_by=self.order_by,
                                                    max_results=self.max_results, location=self.location,
                                                    experiment_ids_=self.experiment_ids))


class FramePager(Pager):
    """Every matching run in one frame, sorted in pandas: slow for big experiments, right for any query."""

    def __init__(self, location: Any, experiment_ids: list[str], filter_string: str,
                 sort: queries.SortKey | None, max_results: int | None) -> None:
        self.location = location
        order_by = None
        if max_results is not None and sort:
            order_by = [queries.store_order_by(sort)]
        runs = queries.search(filter=filter_string or None, order_by=order_by, max_results=max_results,
                              location=location, experiment_ids_=experiment_ids)
        frame = queries.runs_to_frame(runs)
        if sort and len(frame):
            try:
                self.sort_column = queries.resolve_column(frame, sort.name)
                frame = queries.sort_frame(frame, sort)
            except queries.QueryError:
                pass  # the sort column is not in this result: store order
        self._frame = frame
        self._by_id = {r.info.run_id: r for r in runs}
        self.total = len(frame)

    def page(self, offset: int, limit: int) -> list[Run]:
        return [self._by_id[i] for i in self._frame["run_id"].iloc[offset:offset + limit]] if self.total else []

    def columns(self, page_runs: list[Run]) -> Columns:
        return _columns_of(self._frame)

    def matching(self, run_ids: list[str]) -> list[str]:
        return [i for i in run_ids if i in self._by_id]

    def frame(self) -> pd.DataFrame:
        return self._frame

    def frame_estimate(self) -> float | None:
        return 0.0


def open_pager(location: Any, experiment_ids: list[str], filter_string: str = "",
               sort: queries.SortKey | None = None, max_results: int | None = None,
               page_size: int = 20, create_indexes: bool = True) -> Pager:
    """The fastest pager that answers this query exactly (see the module docstring); QueryError (one line) for a
    filter MLflow refuses. ``create_indexes=False`` for readers that must never write (the server extension)."""
    from mlflow.exceptions import MlflowException


    filter_string = (filter_string or "").strip()
    store = run_pages.sql_store(location)
    if store is not None:
        if create_indexes:
            run_pages.ensure_indexes(store)
        try:
            pager = SqlPager(location, run_pages.SqlRunQuery(store, experiment_ids, filter_string), sort, max_results)
            pager.page(0, page_size)  # an order it cannot reproduce shows up here
            return pager
        except MlflowException as exc:
            if exc.error_code == "INVALID_PARAMETER_VALUE":  # a filter or sort MLflow itself refuses
                raise queries.QueryError(queries.one_line(exc)) from exc
            # Anything else (MLflow wraps whatever is raised inside its sessions, Untranslatable included):
            # MLflow's own path answers, or says what is wrong.
        except run_pages.Untranslatable:
            pass
    elif sort is None or sort.name in HTTP_SORTS or sort.name.startswith("metrics."):
        return MlflowPager(location, experiment_ids, filter_string, sort, max_results, page_size)
    return FramePager(location, experiment_ids, filter_string, sort, max_results)


def timed_frame(pager: Pager, say=print) -> pd.DataFrame:
    """``pager.frame()``, first saying in one line how long it will take when that is more than two seconds."""
    estimate = pager.frame_estimate()
    if estimate is not None and estimate > 2:
        say(f"jupyter_tracking: building a frame of all {pager.total:,} runs of this query, about "
            f"{estimate:.0f} s (the panel itself loads only the page it shows).")
    started = time.perf_counter()
    frame = pager.frame()
    pager.last_frame_seconds = time.perf_counter() - started
    return frame
