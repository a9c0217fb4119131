"""One page of runs read straight from an MLflow SQL store (SQLite, PostgreSQL): filter, sort, count, page.

This module reads MLflow's private schema: its tables (``runs``, ``params``, ``latest_metrics``, ``tags``), its
ORM models, and the filter clauses MLflow's own ``search_runs`` builds (``_get_sqlalchemy_filter_clauses``), so a
filter means exactly what it means to MLflow. What we add is the order and the paging: the store counts the
matching runs, orders them and hands back the ids of one page, and only those runs are loaded. The order is the
comparison panel's (``queries.sort_frame``): metrics and times numerically, params and tags numerically when
every present value is a plain number, else as lower-cased text; missing (and NaN) values last; ties in the
store's order (newest first, then run id). A query this module cannot answer with those semantics raises
``Untranslatable`` and the caller takes MLflow's path instead. Nothing here writes runs; ``ensure_indexes``
only adds indexes MLflow lacks.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.entities import Run

SAMPLE_RUNS = 1000  # newest runs of a query whose params/metrics decide which columns vary
WALK_LIMIT = 20_000  # index entries a sort by a metric may expect to read before it walks the index instead
# A filtered page in store order first looks among the newest runs only, checking the filter run by run: a window of
# NEWEST_WINDOW runs or more, sized again from the share of matches seen, up to NEWEST_WINDOW_MAX; then every run.
NEWEST_WINDOW = 1000
NEWEST_WINDOW_MAX = 8_000
ATTRIBUTES = ("start_time", "end_time", "duration_s", "status", "run_name", "run_id")
# Indexes MLflow's schema lacks, named with our prefix so no MLflow migration can collide with them.
# Each covers its queries (the run id is in the index), so a page never reads the tables' rows to find runs.
INDEXES = {
    "jt_runs_experiment_start": ("runs", ("experiment_id", "lifecycle_stage", "start_time", "run_uuid")),
    "jt_latest_metrics_key_value": ("latest_metrics", ("key", "value", "is_nan", "run_uuid")),
    "jt_params_key_value": ("params", ("key", "value", "run_uuid")),
    # Per run: a filter's later terms and the run itself, looked up for each row of its rarest term.
    "jt_latest_metrics_key_run": ("latest_metrics", ("key", "run_uuid", "is_nan", "value")),
    "jt_runs_run": ("runs", ("run_uuid", "experiment_id", "lifecycle_stage", "start_time")),
}
PROBE_INDEXES = {"latest_metrics": "jt_latest_metrics_key_run", "runs": "jt_runs_run"}
METRIC_INDEX = "jt_latest_metrics_key_value"
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_indexed: set[str] = set()
_indexed_lock = threading.Lock()


class Untranslatable(Exception):
    """This query cannot be answered here with the panel's semantics: take MLflow's own path."""


@dataclass(frozen=True)
class OrderKey:
    """A resolved sort: an attribute of the run (``start_time``, ``duration_s``...) or a metric/param/tag key."""

    kind: str  # "attribute", "metric", "param" or "tag"
    key: str
    descending: bool = False

    @property
    def column(self) -> str:
        """The frame column it sorts (``metrics.val_loss``, ``start_time``)."""
        return self.key if self.kind == "attribute" else f"{self.kind}s.{self.key}"


@dataclass
class Columns:
    """Params and metrics seen in a bounded sample of a query plus its page, and which of them vary there."""

    params: list[str] = field(default_factory=list)  # frame columns, "params.x"
    metrics: list[str] = field(default_factory=list)  # "metrics.y"
    varying: set[str] = field(default_factory=set)


def sql_store(location: Any) -> Any | None:
    """MLflow's SQLAlchemy store behind a location, or None for a tracking server (HTTP) or another store."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from .store import client_for

    store = client_for(location)._tracking_client.store
    return store if isinstance(store, SqlAlchemyStore) else None


def read_runs(store: Any, run_ids: list[str]) -> list[Run]:
    """The runs with these ids (info, params, latest metrics, tags), in the order given; missing ids skipped.

    The same ``Run`` entities as ``SqlRun.to_mlflow_entity`` (what MLflow's ``search_runs`` builds, without the
    dataset inputs), read as plain rows: the ORM's per-object bookkeeping cost more than the four queries.
    """
    import math

    from mlflow.entities import Metric, Param, Run, RunData, RunInfo, RunTag
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlParam, SqlRun, SqlTag
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
    from sqlalchemy import select

    wanted = list(dict.fromkeys(run_ids))
    with store.ManagedSessionMaker() as session:
        infos = session.execute(select(
            SqlRun.run_uuid, SqlRun.name, SqlRun.experiment_id, SqlRun.user_id, SqlRun.status, SqlRun.start_time,
            SqlRun.end_time, SqlRun.lifecycle_stage, SqlRun.artifact_uri).where(SqlRun.run_uuid.in_(wanted))).all()
        params: dict[str, list] = {}
        for run_id, key, value in session.execute(select(SqlParam.run_uuid, SqlParam.key, SqlParam.value)
                                                  .where(SqlParam.run_uuid.in_(wanted))):
            params.setdefault(run_id, []).append(Param(key, value))
        metrics: dict[str, list] = {}
        for run_id, key, value, timestamp, step, is_nan in session.execute(select(
                SqlLatestMetric.run_uuid, SqlLatestMetric.key, SqlLatestMetric.value, SqlLatestMetric.timestamp,
                SqlLatestMetric.step, SqlLatestMetric.is_nan).where(SqlLatestMetric.run_uuid.in_(wanted))):
            metrics.setdefault(run_id, []).append(Metric(key, math.nan if is_nan else value, timestamp, step))
        tags: dict[str, list] = {}
        for run_id, key, value in session.execute(select(SqlTag.run_uuid, SqlTag.key, SqlTag.value)
                                                  .where(SqlTag.run_uuid.in_(wanted))):
            tags.setdefault(run_id, []).append(RunTag(key, value))
    found = {}
    for run_id, name, experiment_id, user_id, status, start, end, stage, artifact_uri in infos:
        run_tags = tags.get(run_id, [])
        if not name:
            name = next((t.value for t in run_tags if t.key == MLFLOW_RUN_NAME), name)
        info = RunInfo(run_id=run_id, run_name=name, experiment_id=str(experiment_id), user_id=user_id,
                       status=status, start_time=start, end_time=end, lifecycle_stage=stage,
                       artifact_uri=artifact_uri)
        found[run_id] = Run(info, RunData(metrics=metrics.get(run_id, []), params=params.get(run_id, []),
                                          tags=run_tags))
    return [found[i] for i in run_ids if i in found]


def ensure_indexes(store: Any) -> None:
    """Create the indexes of ``INDEXES`` on an SQLite store, once per store and process (``IF NOT EXISTS``).

    They make a page's sort and filter walk an index instead of every run. A store that refuses (a read-only
    file, a database locked for longer than the busy timeout) is simply used without them. PostgreSQL is left
    alone: building an index there blocks a team's writers, its planner has statistics, and whether to add them
    (the same statements) is its administrator's call.
    """
    import sqlalchemy

    if store._get_dialect() != "sqlite":
        return
    with _indexed_lock:
        if store.db_uri in _indexed:
            return
        _indexed.add(store.db_uri)
    try:
        with store.engine.begin() as connection:
            for name, (table, columns) in INDEXES.items():
                connection.execute(sqlalchemy.text(
                    f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(columns)})"))
    except Exception:  # noqa: BLE001 - the indexes only make pages faster; without them pages are still right
        pass


class SqlRunQuery:
    """The runs of some experiments matching an MLflow filter, in one SQL store; pages of them on request.

    ``MlflowException`` (a filter MLflow refuses) comes out of the constructor; ``Untranslatable`` out of any
    method when MLflow's internals are not what this module expects, or an order it cannot reproduce.
    """

    def __init__(self, store: Any, experiment_ids: list[str], filter_string: str = "") -> None:
        from mlflow.utils.search_utils import SearchUtils

        self.store = store
        self.experiment_ids = [int(i) for i in experiment_ids]
        self.filter_string = filter_string or ""
        self._parsed = SearchUtils.parse_search_filter(self.filter_string)
        self._dialect = store._get_dialect()
        if self._dialect not in ("sqlite", "postgresql"):
            raise Untranslatable(f"no page queries for {self._dialect}")
        self._has_index: bool | None = None
        self._existing: set[str] | None = None
        self._count: int | None = None
        self._ids: list[str] | None = None
        # Filters on params, metrics, tags, datasets or run names cost an index lookup per candidate run:
        # evaluated once per query (``_matching_ids``). Filters on the runs' own columns are cheap to repeat.
        self._expensive = any(c.get("type") != "attribute" or c.get("key") in ("run_name", "run name")
                              for c in self._parsed)

    # ------------------------------------------------------------------------------------------ pieces

    def _session(self):
        return self.store.ManagedSessionMaker()

    def _clauses(self, session: Any) -> tuple[list, list]:
        """MLflow's own clauses for the filter: WHERE terms on ``runs`` (the experiments, active runs, the
        attribute and dataset terms) and the subqueries of params, metrics and tags that MLflow joins to the
        runs (each one key of one table, so at most one row per run)."""
        from mlflow.store.tracking.dbmodels.models import SqlRun
        from sqlalchemy import select

        try:
            from mlflow.store.tracking.sqlalchemy_store import _get_sqlalchemy_filter_clauses

            attributes, joined, datasets = _get_sqlalchemy_filter_clauses(self._parsed, session, self._dialect)
            conditions = [SqlRun.experiment_id.in_(self.experiment_ids), SqlRun.lifecycle_stage == "active",
                          *attributes]
            conditions += [SqlRun.run_uuid.in_(select(sub.c.destination_id)) for sub in datasets]
            for sub in joined:
                sub.c.run_uuid  # noqa: B018 - the column every joined subquery must have
        except (ImportError, TypeError, ValueError, AttributeError) as exc:
            raise Untranslatable(f"MLflow's filter clauses changed: {exc}") from exc
        return conditions, list(joined)

    def _conditions(self, session: Any) -> list:
        """WHERE terms on ``runs``: the experiments, active runs, and MLflow's own clauses for the filter."""
        from mlflow.store.tracking.dbmodels.models import SqlRun
        from sqlalchemy import select

        conditions, joined = self._clauses(session)
        # MLflow joins each subquery to the runs; the same rows, as IN, let the database use its indexes.
        return conditions + [SqlRun.run_uuid.in_(select(sub.c.run_uuid)) for sub in joined]

    @staticmethod
    def _entity(kind: str):
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlParam, SqlTag

        return {"metric": SqlLatestMetric, "param": SqlParam, "tag": SqlTag}[kind]

    def _has_key(self, session: Any, conditions: list, kind: str, key: str) -> bool:
        from mlflow.store.tracking.dbmodels.models import SqlRun
        from sqlalchemy import select

        entity = self._entity(kind)
        stmt = (select(entity.run_uuid).join(SqlRun, SqlRun.run_uuid == entity.run_uuid)
                .where(entity.key == key, *conditions).limit(1))
        return session.execute(stmt).first() is not None

    def _text_order(self, session: Any, column: Any, stmt: Any) -> Any:
        """How a text column sorts, as ``queries.sortable`` decides: as numbers when every present value
        (of the matching runs) is one, else lower-cased. ``stmt`` selects the distinct present values."""
        import pandas as pd
        from sqlalchemy import Float, cast, func

        values = [v for (v,) in session.execute(stmt)]
        if not values:
            return column
        numeric = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
        if numeric.notna().all():
            if all(isinstance(v, str) and _PLAIN_NUMBER.fullmatch(v) for v in values):
                return cast(column, Float)
            raise Untranslatable("numbers the database would read differently")
        if not all(str(v).isascii() for v in values):
            raise Untranslatable("non-ASCII text sorts by Python's rules")  # the database lower-cases ASCII only
        lowered = func.lower(column)
        return lowered.collate("C") if self._dialect == "postgresql" else lowered

    # ------------------------------------------------------------------------------------------ public

    def count(self) -> int:
        """How many runs match."""
        from mlflow.store.tracking.dbmodels.models import SqlRun
        from sqlalchemy import func, select

        if self._expensive:
            return len(self._matching_ids())
        if self._count is None:
            with self._session() as session:
                stmt = select(func.count()).select_from(SqlRun).where(*self._conditions(session))
                self._count = int(session.execute(stmt).scalar_one())
        return self._count

    def known_count(self) -> int | None:
        """The count when it is known without more work (the matches were listed, or counted), else None."""
        return len(self._ids) if self._ids is not None else self._count

    def _matching_ids(self) -> list[str]:
        """With an expensive filter: the ids of every matching run, newest first, read once per query. One evaluation of
        the filter then serves the count, the pages in store order and the column sample (evaluating it is
        the expensive part: an index lookup per candidate run). Costs ~90 bytes a matching run."""
        from mlflow.store.tracking.dbmodels.models import SqlRun
        from sqlalchemy import select

        if self._ids is None:
            with self._session() as session:
                ids = self._sqlite_matching_ids(session) if self._dialect == "sqlite" else None
                if ids is None:
                    stmt = (select(SqlRun.run_uuid).where(*self._conditions(session))
                            .order_by(SqlRun.start_time.desc(), SqlRun.run_uuid))
                    ids = list(session.scalars(stmt))
                self._ids = ids
        return self._ids

    def _newest_matching_ids(self, session: Any, offset: int, limit: int) -> list[str] | None:
        """With an expensive filter, in store order: ``limit`` matching runs from ``offset``, looked for among the
        newest runs only (``_in_window``). When a window holds too few matches, the next one is sized from the
        share of matches seen (at least twice as large), up to ``NEWEST_WINDOW_MAX`` runs; None past that or
        when a window held no match at all (rare matches: the caller evaluates the filter on every run).

        The matching runs of the newest N runs are the first matching runs in store order, so the page is the
        one ``_matching_ids`` gives. Counting them all is the part whose cost grows with the experiment; it is
        left to ``count``.
        """
        wanted = offset + limit
        size = max(NEWEST_WINDOW, 4 * wanted)
        while size <= NEWEST_WINDOW_MAX:
            ids, whole = self._in_window(session, size, wanted)
            if len(ids) == wanted or whole:
                return ids[offset:]
            if not ids:
                return None
            size = max(2 * size, math.ceil(size * wanted / len(ids) * 1.25))
        return None

    def _in_window(self, session: Any, size: int, limit: int) -> tuple[list[str], bool]:
        """The first ``limit`` matching runs among the newest ``size`` runs, and whether those were all the runs.
        The window is read off the runs index and the filter checked for each of its runs, one index probe per
        term, so this costs the same at a thousand runs or a hundred thousand."""
        from mlflow.store.tracking.dbmodels.models import SqlRun
        from sqlalchemy import exists, func, select

        conditions, joined = self._clauses(session)
        # Each params/metrics/tags term checked for the one run at hand (their primary key is (key, run)).
        probes = [exists(select(sub.c.run_uuid).where(sub.c.run_uuid == SqlRun.run_uuid)) for sub in joined]
        window = (select(SqlRun.run_uuid, SqlRun.start_time)
                  .where(SqlRun.experiment_id.in_(self.experiment_ids), SqlRun.lifecycle_stage == "active")
                  .order_by(SqlRun.start_time.desc(), SqlRun.run_uuid).limit(size).subquery("jt_window"))
        stmt = (select(SqlRun.run_uuid).select_from(window).join(SqlRun, SqlRun.run_uuid == window.c.run_uuid)
                .where(*conditions, *probes).order_by(window.c.start_time.desc(), window.c.run_uuid).limit(limit))
        ids = list(session.scalars(stmt))
        whole = len(ids) < limit and session.execute(select(func.count()).select_from(window)).scalar_one() < size
        return ids, whole

    def _sqlite_matching_ids(self, session: Any) -> list[str] | None:
        """``_matching_ids`` on SQLite, the rarest term first: the params/metrics/tags subqueries joined in
        the order of their sizes (each counted on our indexes), then each later one and the run looked up per
        matching row on our per-run indexes (``PROBE_INDEXES``), when the store has them.

        Without statistics SQLite's planner walks every run of the experiment and probes each subquery's
        result for it (100,000 probes per term at 100,000 runs), and picks the primary keys, which read the
        table rows, over our covering indexes. ``CROSS JOIN`` and ``INDEXED BY`` are SQLite's documented ways
        to fix the join order and the index. The same rows as the plain query, in the same order; None when
        there is no such subquery or a piece does not have the shape this relies on (one table per subquery).
        """
        from mlflow.store.tracking.dbmodels.models import SqlRun
        from sqlalchemy import func, select

        conditions, joined = self._clauses(session)
        if not joined:
            return None
        sizes: list[int] = []
        for sub in joined:  # each counted up to the smallest so far: only which is rarest matters
            cap = select(sub.c.run_uuid).limit(min(sizes) + 1) if sizes else select(sub.c.run_uuid)
            sizes.append(session.execute(select(func.count()).select_from(cap.subquery())).scalar_one())
        ordered = [joined[i] for i in sorted(range(len(joined)), key=lambda i: sizes[i])]
        dialect = session.get_bind().dialect
        existing = self._indexes(session)
        sql, values = "", []

        def piece(stmt: Any) -> str:
            compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
            values.extend(compiled.params[name] for name in compiled.positiontup)
            return " ".join(str(compiled).split())

        for n, sub in enumerate(ordered):
            text = piece(sub.element)
            table = sub.element.get_final_froms()
            if len(table) != 1 or not hasattr(table[0], "name") or re.search(r"\bJOIN\b", text):
                return None
            hint = PROBE_INDEXES.get(table[0].name)
            if n and hint in existing and text.count(f" FROM {table[0].name} ") == 1:
                text = text.replace(f" FROM {table[0].name} ", f" FROM {table[0].name} INDEXED BY {hint} ")
            sql += (f"(SELECT run_uuid FROM ({text})) AS jt_{n}" if n == 0 else
                    f" CROSS JOIN ({text}) AS jt_{n} ON jt_{n}.run_uuid = jt_0.run_uuid")
        runs = piece(select(SqlRun.run_uuid).where(*conditions).order_by(SqlRun.start_time.desc(), SqlRun.run_uuid))
        head = "SELECT runs.run_uuid FROM runs WHERE "
        if not runs.startswith(head):
            return None
        hint = PROBE_INDEXES["runs"]
        sql = (f"SELECT runs.run_uuid FROM {sql} CROSS JOIN runs{f' INDEXED BY {hint}' if hint in existing else ''}"
               f" ON runs.run_uuid = jt_0.run_uuid WHERE {runs[len(head):]}")
        # The pieces were compiled in the order they appear in ``sql``, so the values line up with its "?".
        # The DB-API cursor itself: SQLAlchemy's result rows cost more than the query for 10,000s of ids.
        cursor = session.connection().connection.cursor()
        try:
            cursor.execute(sql, tuple(values))
            return list(dict.fromkeys(run_id for (run_id,) in cursor.fetchall()))
        finally:
            cursor.close()

    def _indexes(self, session: Any) -> set[str]:
        """Our indexes present in this SQLite store (read once per query)."""
        from sqlalchemy import text

        if self._existing is None:
            self._existing = {name for (name,) in session.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'jt\\_%' ESCAPE '\\'"))}
        return self._existing

    def resolve(self, name: str, descending: bool = False) -> OrderKey | None:
        """The sort a typed column name means, as ``queries.resolve_column`` reads it against the frame of all
        matching runs: an attribute, ``metrics.``/``params.``/``tags.`` + key, or a bare key found (among the
        matching runs) as a metric, else a param, else a tag. None when no matching run has it."""
        name = name.removeprefix("attributes.") if name.removeprefix("attributes.") in ATTRIBUTES else name
        if name in ATTRIBUTES:
            return OrderKey("attribute", name, descending)
        if name in ("experiment_id", "parent_run_id", "artifact_uri"):
            raise Untranslatable(f"sorting by {name}")
        with self._session() as session:
            conditions = self._conditions(session)
            for kind in ("metric", "param", "tag"):
                prefix = f"{kind}s."
                if name.startswith(prefix) and self._has_key(session, conditions, kind, name[len(prefix):]):
                    return OrderKey(kind, name[len(prefix):], descending)
            for kind in ("metric", "param", "tag"):
                if self._has_key(session, conditions, kind, name):
                    return OrderKey(kind, name, descending)
        return None

    def page_ids(self, order: OrderKey | None, offset: int, limit: int) -> list[str]:
        """Run ids of one page: ``limit`` runs from ``offset`` in the panel's order (newest first by default)."""
        from mlflow.store.tracking.dbmodels.models import SqlRun
        from sqlalchemy import and_, exists, false, func, not_, select

        offset, limit = max(0, int(offset)), max(0, int(limit))
        if limit == 0:
            return []
        store_order = [SqlRun.start_time.desc(), SqlRun.run_uuid]
        with self._session() as session:
            conditions = self._conditions(session)
            if order is None and self._expensive:
                if self._ids is None:
                    found = self._newest_matching_ids(session, offset, limit)
                    if found is not None:
                        return found
                return self._matching_ids()[offset:offset + limit]
            if order is None:
                stmt = select(SqlRun.run_uuid).where(*conditions).order_by(*store_order)
                return list(session.scalars(stmt.offset(offset).limit(limit)))
            if order.kind == "attribute":
                if order.key == "duration_s":
                    value = SqlRun.end_time - SqlRun.start_time
                    present = and_(SqlRun.end_time.isnot(None), SqlRun.start_time.isnot(None))
                else:
                    column = {"run_name": SqlRun.name, "run_id": SqlRun.run_uuid}.get(order.key)
                    if column is None:
                        column = getattr(SqlRun, order.key)
                    present = column.isnot(None)
                    value = column
                    if order.key in ("status", "run_name", "run_id"):
                        distinct_values = select(column).distinct().where(*conditions)
                        if order.key == "run_name":
                            names = session.execute(distinct_values.where((column == "") | column.is_(None))
                                                    .limit(1)).first()
                            if names is not None:
                                raise Untranslatable("runs named by their mlflow.runName tag only")
                        value = self._text_order(session, column, distinct_values.where(present))
                with_value = select(SqlRun.run_uuid).where(present, *conditions)
                without_value = select(SqlRun.run_uuid).where(not_(present), *conditions)
                count_with = select(func.count()).select_from(SqlRun).where(present, *conditions)
            else:
                entity = self._entity(order.kind)
                on = [entity.run_uuid == SqlRun.run_uuid, entity.key == order.key]
                if order.kind == "metric":
                    on.append(entity.is_nan == false())  # NaN sorts with the missing values, as in pandas
                    value = entity.value
                else:
                    value = self._text_order(session, entity.value, select(entity.value).distinct()
                                             .join(SqlRun, SqlRun.run_uuid == entity.run_uuid)
                                             .where(entity.key == order.key, *conditions))
                with_value = select(SqlRun.run_uuid).join(entity, and_(*on)).where(*conditions)
                if order.kind == "metric" and self._walk_metric_index(session, offset + limit):
                    # Only the metric in the outer FROM: SQLite reads it in value order off the index and
                    # stops at the page's end; each run's conditions are checked as it comes.
                    start = select(SqlRun.start_time).where(SqlRun.run_uuid == entity.run_uuid).scalar_subquery()
                    walk = (select(entity.run_uuid)
                            .where(entity.key == order.key, entity.is_nan == false(),
                                   exists().where(SqlRun.run_uuid == entity.run_uuid, *conditions))
                            .order_by(value.desc() if order.descending else value.asc(), start.desc(),
                                      entity.run_uuid))
                    ids = list(session.scalars(walk.offset(offset).limit(limit)))
                    if len(ids) == limit:
                        return ids
                without_value = select(SqlRun.run_uuid).where(not_(exists().where(*on)), *conditions)
                count_with = select(func.count()).select_from(SqlRun).join(entity, and_(*on)).where(*conditions)
            ordered = [value.desc() if order.descending else value.asc(),
                       *(store_order if order.key != "start_time" else [SqlRun.run_uuid])]
            ids = list(session.scalars(with_value.order_by(*ordered).offset(offset).limit(limit)))
            if len(ids) < limit:
                n_with = int(session.execute(count_with).scalar_one())
                rest = without_value.order_by(*store_order).offset(max(0, offset - n_with))
                ids += list(session.scalars(rest.limit(limit - len(ids))))
            return ids

    def _walk_metric_index(self, session: Any, wanted: int) -> bool:
        """Whether to read a metric's runs in value order off our index (SQLite), stopping after ``wanted``
        matching runs, rather than sort every matching run: when matches are common enough that the walk
        stops early. SQLite's planner cannot tell without statistics and sometimes picks the slow one. How
        common is read off the newest ``SAMPLE_RUNS`` runs (bounded work; it only picks the faster way, both
        give the same runs)."""
        from mlflow.store.tracking.dbmodels.models import SqlRun
        from sqlalchemy import exists, func, select, text

        if self._dialect != "sqlite":
            return False
        if self._has_index is None:
            self._has_index = session.execute(text("SELECT 1 FROM sqlite_master WHERE type = 'index' AND "
                                                   "name = :name"), {"name": METRIC_INDEX}).first() is not None
        if not self._has_index:
            return False
        if not self._parsed:
            return True  # every run matches
        newest = (select(SqlRun.run_uuid.label("run_id"))
                  .where(SqlRun.experiment_id.in_(self.experiment_ids), SqlRun.lifecycle_stage == "active")
                  .order_by(SqlRun.start_time.desc()).limit(SAMPLE_RUNS).subquery())
        sampled = session.execute(select(func.count()).select_from(newest)).scalar_one()
        matching = session.execute(select(func.count()).select_from(newest).where(
            exists().where(SqlRun.run_uuid == newest.c.run_id, *self._conditions(session)))).scalar_one()
        return matching > 0 and wanted * sampled / matching <= WALK_LIMIT

    def runs(self, run_ids: list[str]) -> list[Run]:
        """The runs with these ids (params, latest metrics, tags), in the order given."""
        if not run_ids:
            return []
        return read_runs(self.store, run_ids)

    def matching(self, run_ids: list[str]) -> list[str]:
        """Those of ``run_ids`` that match the query (a selection that survives a new filter)."""
        if not run_ids:
            return []
        from mlflow.store.tracking.dbmodels.models import SqlRun
        from sqlalchemy import select

        with self._session() as session:
            stmt = select(SqlRun.run_uuid).where(SqlRun.run_uuid.in_(list(run_ids)), *self._conditions(session))
            found = set(session.scalars(stmt))
        return [i for i in run_ids if i in found]

    def columns(self, page_ids: list[str], sample: int = SAMPLE_RUNS) -> Columns:
        """Param and metric columns of the newest ``sample`` matching runs plus the page, and which vary there
        (more than one distinct value, a missing value counting as one, like ``queries.varying_columns``). With an
        expensive filter whose matches are not known yet, the sample is the matching runs among the newest
        ``sample`` runs: bounded work, and with rare matches the page decides alone."""
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlParam, SqlRun
        from sqlalchemy import case, false, func, select

        with self._session() as session:
            if self._expensive:
                # The matching runs among the newest (a bounded look; with rare matches the page decides alone).
                newest = (self._ids[:sample] if self._ids is not None else
                          self._in_window(session, sample, sample)[0])
            else:
                newest = list(session.scalars(select(SqlRun.run_uuid).where(*self._conditions(session))
                                              .order_by(SqlRun.start_time.desc(), SqlRun.run_uuid).limit(sample)))
            ids = list(dict.fromkeys([*newest, *page_ids]))
            if not ids:
                return Columns()
            rows = session.execute(
                select(SqlParam.key, func.count(), func.min(SqlParam.value), func.max(SqlParam.value))
                .where(SqlParam.run_uuid.in_(ids)).group_by(SqlParam.key)).all()
            real = SqlLatestMetric.is_nan == false()
            metric_rows = session.execute(
                select(SqlLatestMetric.key, func.count(case((real, 1))),
                       func.min(case((real, SqlLatestMetric.value))), func.max(case((real, SqlLatestMetric.value))))
                .where(SqlLatestMetric.run_uuid.in_(ids)).group_by(SqlLatestMetric.key)).all()
        result = Columns(params=sorted(f"params.{k}" for k, *_ in rows),
                         metrics=sorted(f"metrics.{k}" for k, *_ in metric_rows))
        for prefix, found in (("params.", rows), ("metrics.", metric_rows)):
            for key, present, low, high in found:
                if len(ids) < 2 or low != high or 0 < present < len(ids):
                    result.varying.add(prefix + key)
        return result
