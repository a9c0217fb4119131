"""Reading runs back from the store: runs as a pandas frame, the best run, a diff of two runs, artifacts and params.

Everything here reads; nothing writes runs. The comparison panel (``panels/compare.py``, which reads pages
through ``paging.py``), the sweep (``sweep.py``) and the ``%runs`` / ``%track best|load|restore|diff`` magics are
built on these functions.
MLflow and pandas are imported on first use.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import gc
import html
import json
import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from mlflow.entities import Run

    from .store import StoreLocation

CELL_ARTIFACT = "cell/cell.py"
ARTIFACTS_DIR = "artifacts"
PARENT_TAG = "mlflow.parentRunId"
GRID_TAG = "jupyter_tracking.grid"
BEST_CHILD_TAG = "jupyter_tracking.best_child"
RERUN_TAG = "rerun_of"
PAGE_SIZE = 10_000  # runs per store request (MLflow's own search_runs uses the same page size)
STALE_STATUS = "RUNNING (stale)"  # another host's run with no sign of life for a while (recovery.is_stale)
INFO_COLUMNS = ["run_id", "run_name", "experiment_id", "status", "start_time", "end_time", "duration_s",
                "parent_run_id", "artifact_uri"]


class QueryError(ValueError):
    """A query the store refused or that names something missing; ``str()`` is one line a user can act on."""


# ---------------------------------------------------------------------------------------------- lookup


def location_or_default(location: StoreLocation | None = None) -> StoreLocation:
    from .store import resolve_store

    return location if location is not None else resolve_store()


def experiment_ids(experiment: str | Iterable[str] | None = None, location: StoreLocation | None = None) -> list[str]:
    """Ids of the named experiment(s) (default: the session's experiment); QueryError if one does not exist."""
    from .store import client_for, default_experiment_name

    location = location_or_default(location)
    names = [experiment] if isinstance(experiment, str) or experiment is None else list(experiment)
    client = client_for(location)
    ids = []
    for name in names:
        name = name if name is not None else default_experiment_name()
        found = client.get_experiment_by_name(name)
        if found is None and str(name).isdigit():
            try:
                found = client.get_experiment(str(name))
            except Exception:  # noqa: BLE001 - not an id either
                found = None
        if found is None:
            known = [e.name for e in client.search_experiments(max_results=20)]
            hint = f" Experiments here: {', '.join(known)}." if known else " This store has no experiments yet."
            raise QueryError(f"No experiment named {name!r} in {location.describe()}.{hint}")
        ids.append(found.experiment_id)
    return ids


@contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector while many objects are built (a store page of runs, a frame).

    With MLflow, SQLAlchemy and pandas loaded, the collections that thousands of new objects trigger cost more
    than the query itself (10,000 runs: 2.5x faster without them). Nothing is leaked: collection resumes after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def one_line(exc: BaseException) -> str:
    """The first meaningful line of an exception message (MLflow's messages can run for a page)."""
    text = getattr(exc, "message", None) or str(exc)
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()[:300]
    return type(exc).__name__


def search(
    experiment: str | Iterable[str] | None = None,
    *,
    filter: str | None = None,  # noqa: A002 - the public name
    order_by: list[str] | None = None,
    max_results: int | None = None,
    location: StoreLocation | None = None,
    experiment_ids_: list[str] | None = None,
) -> list[Run]:
    """Runs matching an MLflow filter, in store order; pages through the store like ``mlflow.search_runs``."""
    from .store import client_for

    location = location_or_default(location)
    ids = experiment_ids_ if experiment_ids_ is not None else experiment_ids(experiment, location)
    client = client_for(location)
    limit = max_results if max_results is not None else 100_000
    runs: list = []
    token = None
    try:
        with gc_paused():
            while len(runs) < limit:
                page = client.search_runs(ids, filter or "", max_results=min(PAGE_SIZE, limit - len(runs)),
                                          order_by=order_by or None, page_token=token)
                runs.extend(page)
                token = page.token
                if not token:
                    break
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if isinstance(exc, MlflowException):
            raise QueryError(one_line(exc)) from exc
        raise
    return runs


# ---------------------------------------------------------------------------------------------- frames


def runs_to_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run: info columns, then ``params.*`` (strings, as MLflow stores them), ``metrics.*``
    (latest values) and ``tags.*`` columns; missing values are None / NaN. Same naming as ``mlflow.search_runs``.
    """
    with gc_paused():
        return _runs_to_frame(runs)


def _runs_to_frame(runs: list[Run]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    from .recovery import is_stale

    count = len(runs)
    info: dict[str, list] = {name: [None] * count for name in INFO_COLUMNS}
    params: dict[str, list] = {}
    metrics: dict[str, list] = {}
    tags: dict[str, list] = {}
    start = np.full(count, np.nan)
    end = np.full(count, np.nan)
    for i, run in enumerate(runs):
        ri, data = run.info, run.data
        info["run_id"][i] = ri.run_id
        info["run_name"][i] = ri.run_name
        info["experiment_id"][i] = ri.experiment_id
        info["status"][i] = STALE_STATUS if ri.status == "RUNNING" and is_stale(run) else ri.status
        info["artifact_uri"][i] = ri.artifact_uri
        info["parent_run_id"][i] = data.tags.get(PARENT_TAG)
        if ri.start_time is not None:
            start[i] = ri.start_time
        if ri.end_time is not None:
            end[i] = ri.end_time
        for key, value in data.params.items():
            column = params.get(key)
            if column is None:
                column = params[key] = [None] * count
            column[i] = value
        for key, value in data.metrics.items():
            column = metrics.get(key)
            if column is None:
                column = metrics[key] = [math.nan] * count
            column[i] = value
        for key, value in data.tags.items():
            column = tags.get(key)
            if column is None:
                column = tags[key] = [None] * count
            column[i] = value
    columns: dict[str, Any] = {}
    for name in INFO_COLUMNS:
        if name == "start_time":
            columns[name] = pd.to_datetime(start, unit="ms", utc=True)
        elif name == "end_time":
            columns[name] = pd.to_datetime(end, unit="ms", utc=True)
        elif name == "duration_s":
            columns[name] = (end - start) / 1000.0
        else:
            columns[name] = pd.Series(info[name], dtype=object)
    for key in sorted(params):
        columns[f"params.{key}"] = pd.Series(params[key], dtype=object)
    for key in sorted(metrics):
        columns[f"metrics.{key}"] = np.asarray(metrics[key], dtype=float)
    for key in sorted(tags):
        columns[f"tags.{key}"] = pd.Series(tags[key], dtype=object)
    return pd.DataFrame(columns, index=pd.RangeIndex(count))


def runs_frame(
    experiment: str | Iterable[str] | None = None,
    *,
    filter: str | None = None,  # noqa: A002
    sort: str | None = None,
    max_results: int | None = None,
    location: StoreLocation | None = None,
) -> pd.DataFrame:
    """The runs of an experiment as a frame (see ``runs_to_frame``), filtered and sorted; newest first by default."""
    key = parse_sort(sort) if sort else None
    order_by = [store_order_by(key)] if key else None
    frame = runs_to_frame(search(experiment, filter=filter, order_by=order_by, max_results=max_results,
                                 location=location))
    if key:
        column = resolve_column(frame, key.name) if len(frame) else None
        if max_results is not None and column and column.startswith("params.") and "." not in key.name:
            # A bare name turned out to be a param: ask the store again so the top N are the right ones.
            key = SortKey(column, key.descending)
            frame = runs_to_frame(search(experiment, filter=filter, order_by=[store_order_by(key)],
                                         max_results=max_results, location=location))
        frame = sort_frame(frame, key)
    return frame


@dataclass(frozen=True)
class SortKey:
    """A sort request: a column name as typed (``val_loss``, ``metrics.val_loss``, ``start_time``) and direction."""

    name: str
    descending: bool = False


def parse_sort(text: str) -> SortKey:
    """``val_loss``, ``-val_loss``, ``metrics.val_loss DESC``, ``params.depth asc`` -> SortKey."""
    text = text.strip()
    descending = False
    if text.startswith("-"):
        descending, text = True, text[1:].strip()
    parts = text.rsplit(None, 1)
    if len(parts) == 2 and parts[1].upper() in ("ASC", "DESC"):
        descending, text = parts[1].upper() == "DESC", parts[0].strip()
    if not text:
        raise QueryError("Sort by what? Give a column: val_loss, -val_loss, 'params.depth DESC'.")
    return SortKey(text, descending)


_ATTRIBUTES = {"start_time", "end_time", "status", "run_name", "run_id", "duration_s"}


def store_order_by(key: SortKey) -> str:
    """The MLflow ``order_by`` clause for a sort key; bare names are taken to be metrics."""
    name = key.name
    if name.startswith(("metrics.", "params.", "tags.", "attributes.")):
        clause = name
    elif name in _ATTRIBUTES - {"duration_s"}:
        clause = f"attributes.{name}"
    elif name == "duration_s":
        clause = "attributes.end_time"
    else:
        clause = f"metrics.{name}"
    return f"{_quote_key(clause)} {'DESC' if key.descending else 'ASC'}"


def _quote_key(clause: str) -> str:
    prefix, _, rest = clause.partition(".")
    if rest and not rest.replace("_", "").replace(".", "").isalnum():
        rest = "`" + rest.replace("`", "") + "`"
    return f"{prefix}.{rest}" if rest else clause


def resolve_column(frame: pd.DataFrame, name: str) -> str:
    """The frame column a typed name means: exact, else ``metrics.NAME``, ``params.NAME``, ``tags.NAME``."""
    if name in frame.columns:
        return name
    if name.startswith("attributes.") and name.removeprefix("attributes.") in frame.columns:
        return name.removeprefix("attributes.")
    for prefix in ("metrics.", "params.", "tags."):
        if prefix + name in frame.columns:
            return prefix + name
    raise QueryError(f"No column {name!r} to sort by; columns: {', '.join(map(str, frame.columns[:30]))}.")


def sort_frame(frame: pd.DataFrame, key: SortKey) -> pd.DataFrame:
    """Sorted by one column, numerically where the values are numbers (params are strings in MLflow); missing last."""
    if frame.empty:
        return frame
    column = resolve_column(frame, key.name)
    values = sortable(frame[column])
    order = values.sort_values(ascending=not key.descending, na_position="last", kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def sortable(series: pd.Series) -> pd.Series:
    """A copy of a column that sorts naturally: numbers if every present value is a number, else strings."""
    import pandas as pd

    if series.dtype != object:
        return series
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().sum() == series.notna().sum():
        return numeric
    return series.map(lambda v: None if v is None else str(v).lower())


def varying_columns(frame: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    """The columns (of those given) with more than one distinct value, missing counted as a value.

    With fewer than two runs nothing can vary, so every column is returned.
    """
    columns = list(columns)
    if len(frame) < 2:
        return columns
    varying = []
    for column in columns:
        if frame[column].nunique(dropna=False) > 1:
            varying.append(column)
    return varying


def param_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("params.")]


def metric_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("metrics.")]


# ---------------------------------------------------------------------------------------------- best


def best(
    metric: str,
    mode: str | None = None,
    experiment: str | Iterable[str] | None = None,
    *,
    location: StoreLocation | None = None,
) -> Run:
    """The finished run of the experiment with the lowest (``mode="min"``) or highest (``"max"``) ``metric``.

    Without ``mode``, the metric's goal decides (``goals.metric_goal`` with the experiment's overrides); a name
    whose goal is unknown needs ``mode``. Only runs that logged the metric count, so a sweep's parent (which
    holds no metrics) never wins.
    """
    metric = metric.removeprefix("metrics.")
    if mode not in (None, "min", "max"):
        raise QueryError(f"mode must be 'min' or 'max', not {mode!r}.")
    from . import paging

    location = location_or_default(location)
    ids = experiment_ids(experiment, location)
    if mode is None:
        mode = goal_for(metric, experiment_ids_=ids, location=location)
    pager = paging.open_pager(location, ids, "attributes.status = 'FINISHED'",
                              SortKey(f"metrics.{metric}", mode == "max"), page_size=1)
    runs = pager.page(0, 1)  # the store sorts (an SQL store walks an index): one run is loaded
    if not runs or metric not in runs[0].data.metrics:
        raise QueryError(f"No finished run in this experiment logged the metric {metric!r}.")
    return runs[0]


def goal_for(
    metric: str,
    experiment: str | Iterable[str] | None = None,
    *,
    location: StoreLocation | None = None,
    experiment_ids_: list[str] | None = None,
) -> str:
    """``"min"`` or ``"max"`` for a metric of the experiment(s): ``goals.metric_goal`` with the experiments'
    overrides; QueryError (one line naming ``--max``/``--min``) when the goal is unknown."""
    from .goals import describe_unknown, experiment_overrides, metric_goal
    from .store import client_for

    metric = metric.removeprefix("metrics.")
    location = location_or_default(location)
    ids = experiment_ids_ if experiment_ids_ is not None else experiment_ids(experiment, location)
    goal = metric_goal(metric, experiment_overrides(client_for(location), ids))
    if goal is None:
        raise QueryError(describe_unknown(metric, "say --max or --min (mode='max' or 'min' in jt.best)"))
    return goal


# ---------------------------------------------------------------------------------------------- one run


def get_run(run_id: str, location: StoreLocation | None = None) -> Run:
    """The run with this id; QueryError (one line) if the store has none."""
    from .store import client_for

    run_id = str(run_id).strip()
    try:
        return client_for(location_or_default(location)).get_run(run_id)
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if isinstance(exc, MlflowException):
            raise QueryError(f"No run {run_id!r} in this store.") from exc
        raise


@contextlib.contextmanager
def _no_progress_bar():
    """MLflow draws a text progress bar for every download when tqdm is installed: noise under a cell for a
    small file we fetch ourselves (cell source, a pickled object). Off while we download."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def cell_source(run_id: str, location: StoreLocation | None = None) -> str | None:
    """The source of the cell that made the run (artifact ``cell/cell.py``), or None if it was not logged."""
    from .store import client_for

    client = client_for(location_or_default(location))
    with tempfile.TemporaryDirectory(prefix="jt-cell-") as tmp, _no_progress_bar():
        try:
            path = client.download_artifacts(run_id, CELL_ARTIFACT, tmp)
        except Exception:  # noqa: BLE001 - no such artifact
            return None
        return Path(path).read_text(encoding="utf-8", errors="replace")


def _artifact_repository(run: Run, location: StoreLocation | None) -> Any:
    """The run's artifact repository, from the run already fetched (MlflowClient would fetch the run again:
    one more request per call against a server)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(run.info.artifact_uri, tracking_uri=location_or_default(location).uri)


def _artifact_files(run_id: str, location: StoreLocation | None = None, *, run: Run | None = None) -> dict[str, str]:
    """``{name: file name}`` of the objects logged with ``--artifacts`` (``artifacts/<name>.json|.npy|.pkl``)."""
    from .object_artifacts import object_name
    from .store import client_for

    try:
        if run is not None:
            files = _artifact_repository(run, location).list_artifacts(ARTIFACTS_DIR)
        else:
            files = client_for(location_or_default(location)).list_artifacts(run_id, ARTIFACTS_DIR)
    except Exception:  # noqa: BLE001 - no artifacts folder
        return {}
    found: dict[str, str] = {}
    for item in files:
        filename = item.path.rsplit("/", 1)[-1]
        name = None if item.is_dir else object_name(filename)
        if name is not None:
            found.setdefault(name, filename)
    return found


def artifact_names(run_id: str, location: StoreLocation | None = None, *, run: Run | None = None) -> list[str]:
    """Names of the Python objects logged with ``--artifacts``."""
    return sorted(_artifact_files(run_id, location, run=run))


def load_artifacts(
    run_id: str, *names: str, location: StoreLocation | None = None, trust: bool = False, _run: Run | None = None,
) -> dict[str, Any]:
    """The objects logged with ``--artifacts`` by a run: ``{name: object}`` (all when no names).

    Pickles this user did not write are refused (QueryError naming the run and its author) unless ``trust``.
    Files come straight from the run's artifact repository (one request each against a server).
    """
    from .object_artifacts import SIGNATURE_SUFFIX, Refused
    from .object_artifacts import load as load_object

    run_id = str(run_id).strip()
    run = _run or get_run(run_id, location)
    files = _artifact_files(run_id, location, run=run)
    available = sorted(files)
    wanted = list(names) or available
    missing = [n for n in wanted if n not in available]
    if missing:
        have = ", ".join(available) if available else "none"
        raise QueryError(f"Run {run_id} has no artifact {', '.join(map(repr, missing))} (it has: {have}).")
    repository = _artifact_repository(run, location)
    author = run.data.tags.get("mlflow.user")
    objects = {}
    with tempfile.TemporaryDirectory(prefix="jt-load-") as tmp, _no_progress_bar():
        for name in wanted:
            path = Path(repository.download_artifacts(f"{ARTIFACTS_DIR}/{files[name]}", tmp))
            signature = None
            if path.suffix == ".pkl":
                try:
                    signature = Path(repository.download_artifacts(
                        f"{ARTIFACTS_DIR}/{files[name]}{SIGNATURE_SUFFIX}", tmp))
                except Exception:  # noqa: BLE001 - unsigned: only loaded when trusted
                    signature = None
            try:
                objects[name] = load_object(path, signature=signature, trust=trust, run_id=run_id, author=author)
            except Refused as refusal:
                raise QueryError(str(refusal)) from None
    return objects


class ParamGroup(dict):
    """Params that were flattened with dotted keys (``args.lr``), back as one object: ``g.lr`` and ``g["lr"]``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def parse_param(text: str | None) -> Any:
    """A param string back as the Python value it most likely was (``"0.1"`` -> 0.1, ``"[64, 32]"`` -> list)."""
    if text is None:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    if isinstance(value, (int, float, bool, str, list, tuple, dict, type(None), complex)):
        return value
    return text


def params_as_values(params: dict[str, str]) -> dict[str, Any]:
    """MLflow params as Python values keyed by top-level name; dotted keys regrouped into ParamGroups."""
    values: dict[str, Any] = {}
    for key in sorted(params):
        parts = key.split(".")
        value = parse_param(params[key])
        if len(parts) == 1:
            if isinstance(values.get(key), ParamGroup):
                continue
            values[key] = value
            continue
        target = values.get(parts[0])
        if not isinstance(target, ParamGroup):
            target = values[parts[0]] = ParamGroup()
        for part in parts[1:-1]:
            nxt = target.get(part)
            if not isinstance(nxt, ParamGroup):
                nxt = ParamGroup()
                dict.__setitem__(target, part, nxt)
            target = nxt
        dict.__setitem__(target, parts[-1], value)
    return {k: v for k, v in values.items() if k.isidentifier()}


def restore(run_id: str, *, location: StoreLocation | None = None) -> dict[str, Any]:
    """A run's params as Python values, ready to bind as names (``%track restore`` binds them)."""
    return params_as_values(get_run(run_id, location).data.params)


def load(run_id: str, *names: str, location: StoreLocation | None = None, trust: bool = False) -> dict[str, Any]:
    """What ``%track load`` binds: the run's ``--artifacts`` objects and its params (all, or just ``names``).

    An artifact wins over a param of the same name. QueryError names what is missing.
    """
    run = get_run(run_id, location)
    params = params_as_values(run.data.params)
    available = artifact_names(run.info.run_id, location, run=run)
    if not names:
        result = dict(params)
        if available:
            result.update(load_artifacts(run.info.run_id, *available, location=location, trust=trust, _run=run))
        return result
    missing = [n for n in names if n not in available and n not in params]
    if missing:
        have = ", ".join(available) if available else "none"
        raise QueryError(
            f"Run {run.info.run_id} has no artifact or param {', '.join(map(repr, missing))} "
            f"(artifacts: {have}; log objects with %%track --artifacts NAME)."
        )
    result = {n: params[n] for n in names if n not in available}
    wanted = [n for n in names if n in available]
    if wanted:
        result.update(load_artifacts(run.info.run_id, *wanted, location=location, trust=trust, _run=run))
    return {n: result[n] for n in names}


def metric_history(run_ids: Iterable[str], key: str, location: StoreLocation | None = None,
                   max_points: int = 2000) -> dict[str, tuple[list[int], list[float]]]:
    """Step series of one metric for several runs: ``{run_id: (steps, values)}``; long series decimated."""
    from .store import client_for

    client = client_for(location_or_default(location))
    key = key.removeprefix("metrics.")
    out = {}
    for run_id in run_ids:
        points = client.get_metric_history(run_id, key)
        points = sorted(points, key=lambda m: (m.step, m.timestamp))
        if len(points) > max_points:
            stride = math.ceil(len(points) / max_points)
            points = points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])
        out[run_id] = ([m.step for m in points], [m.value for m in points])
    return out


# ---------------------------------------------------------------------------------------------- diff


@dataclass
class RunDiff:
    """Two runs side by side: params and metrics (``(key, a, b)`` rows) and a unified diff of their cell code."""

    run_a: Any
    run_b: Any
    params: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    metrics: list[tuple[str, float | None, float | None]] = field(default_factory=list)
    code_a: str | None = None
    code_b: str | None = None

    @property
    def changed_params(self) -> list[tuple[str, str | None, str | None]]:
        return [row for row in self.params if row[1] != row[2]]

    @property
    def code_diff(self) -> list[str]:
        if self.code_a is None or self.code_b is None or self.code_a == self.code_b:
            return []
        return list(difflib.unified_diff(self.code_a.splitlines(), self.code_b.splitlines(),
                                         fromfile=_label(self.run_a), tofile=_label(self.run_b), lineterm=""))

    def to_dict(self) -> dict:
        """Plain data for front ends (every string unescaped: the renderer escapes). Changed rows come first;
        numbers are also given as text in the card's format (``panels.numbers``), deltas with ``better``
        (True/False by the metric's goal, None when unknown or unchanged)."""
        from .goals import metric_goal
        from .panels.numbers import format_delta, format_number

        params = [{"key": k, "a": a, "b": b, "changed": a != b} for k, a, b in self.params]
        metrics = []
        for key, a, b in self.metrics:
            delta = _delta(a, b)
            goal = metric_goal(key, {})
            better = None if not delta or goal is None else (delta < 0) == (goal == "min")
            metrics.append({"key": key, "a": _num(a), "b": _num(b), "delta": delta,
                            "a_text": _show(None) if a is None else format_number(a),
                            "b_text": _show(None) if b is None else format_number(b),
                            "delta_text": format_delta(b, a) if a is not None and b is not None else "",
                            "changed": a != b, "better": better})
        return {
            "a": {"run_id": self.run_a.info.run_id, "label": _label(self.run_a)},
            "b": {"run_id": self.run_b.info.run_id, "label": _label(self.run_b)},
            "params": sorted(params, key=lambda row: not row["changed"]),
            "metrics": sorted(metrics, key=lambda row: not row["changed"]),
            "code_same": self.code_a == self.code_b,
            "code_missing": self.code_a is None or self.code_b is None,
            "code_diff": self.code_diff,
        }

    def __str__(self) -> str:
        lines = [f"diff {_label(self.run_a)}  vs  {_label(self.run_b)}"]
        data = self.to_dict()
        for section in ("params", "metrics"):
            rows = data[section]
            same = [row["key"] for row in rows if not row["changed"]]
            if rows:
                lines.append(f"{section}:")
            for row in rows:
                if row["changed"]:
                    a, b = (row["a_text"], row["b_text"]) if section == "metrics" else (_show(row["a"]), _show(row["b"]))
                    delta = f" ({row['delta_text']})" if row.get("delta_text") else ""
                    lines.append(f" * {row['key']}: {a} -> {b}{delta}")
            if same:
                lines.append(f"   same in both: {', '.join(same)}")
        lines.append("code:")
        if self.code_a is None or self.code_b is None:
            lines.append("   (cell code not logged for one of the runs)")
        elif self.code_a == self.code_b:
            lines.append("   same cell code")
        else:
            lines.extend("   " + line for line in self.code_diff)
        from .panels.text import visible

        return visible("\n".join(lines))

    def _repr_html_(self) -> str:
        return diff_html(self.to_dict())

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {"text/plain": str(self), "text/html": self._repr_html_()}


def _label(run) -> str:
    name = run.info.run_name or ""
    return f"{name} ({run.info.run_id[:8]})" if name else run.info.run_id


def _show(value: str | None) -> str:
    return "-" if value is None else str(value)


def _num(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def _delta(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    result = b - a
    return result if math.isfinite(result) else None


def diff(run_a: str, run_b: str, *, location: StoreLocation | None = None) -> RunDiff:
    """Params, metrics and cell code of two runs side by side (every param/metric key of either run)."""
    a, b = get_run(run_a, location), get_run(run_b, location)
    params = [(k, a.data.params.get(k), b.data.params.get(k)) for k in sorted(set(a.data.params) | set(b.data.params))]
    metrics = [(k, a.data.metrics.get(k), b.data.metrics.get(k))
               for k in sorted(set(a.data.metrics) | set(b.data.metrics))]
    return RunDiff(a, b, params, metrics, cell_source(a.info.run_id, location), cell_source(b.info.run_id, location))


DIFF_GOOD = "var(--jp-success-color1,#1a7f37)"
DIFF_BAD = "var(--jp-error-color1,#cf222e)"
DIFF_MUTED = "var(--jp-ui-font-color2,#616161)"


def diff_html(data: dict) -> str:
    """HTML for a diff (``RunDiff.to_dict()``): changed rows first with coloured deltas, unchanged ones folded,
    theme colours with light fallbacks; every value from the store goes through ``html.escape``."""
    e = html.escape
    a, b = e(data["a"]["label"]), e(data["b"]["label"])
    cell = 'style="padding:1px 8px;text-align:left"'
    out = ['<div class="jt-diff" style="font-size:12px;color:var(--jp-content-font-color1,inherit);'
           'max-width:100%;overflow-x:auto">',
           f'<table class="jt-diff-table" style="border-collapse:collapse"><thead><tr><th {cell}></th>'
           f'<th {cell}>{a}</th><th {cell}>{b}</th><th {cell}></th></tr></thead><tbody>']
    folded = []
    for section in ("params", "metrics"):
        rows = data[section]
        changed = [row for row in rows if row["changed"]]
        same = [row["key"] for row in rows if not row["changed"]]
        if changed:
            out.append(f'<tr><th colspan="4" {cell}>{section}</th></tr>')
        for row in changed:
            if section == "metrics":
                colour = DIFF_MUTED if row["better"] is None else (DIFF_GOOD if row["better"] else DIFF_BAD)
                out.append(f'<tr><td {cell}>{e(row["key"])}</td><td {cell}>{e(row["a_text"])}</td>'
                           f'<td {cell}>{e(row["b_text"])}</td>'
                           f'<td style="padding:1px 8px;color:{colour}">{e(row["delta_text"])}</td></tr>')
            else:
                out.append(f'<tr style="background:rgba(255,170,0,0.18)"><td {cell}>{e(row["key"])}</td>'
                           f'<td {cell}>{e(_show(row["a"]))}</td><td {cell}>{e(_show(row["b"]))}</td>'
                           f'<td {cell}>changed</td></tr>')
        if same:
            folded.append(f"{section} {', '.join(same)}")
    out.append("</tbody></table>")
    if folded:
        out.append(f'<details style="color:{DIFF_MUTED}"><summary>same in both</summary>'
                   f'{e("; ".join(folded))}</details>')
    if data["code_missing"]:
        out.append("<div>cell code: not logged for one of the runs</div>")
    elif data["code_same"]:
        out.append("<div>cell code: same</div>")
    else:
        lines = []
        for line in data["code_diff"]:
            color = DIFF_GOOD if line.startswith("+") else DIFF_BAD if line.startswith("-") else "inherit"
            lines.append(f'<span style="color:{color}">{e(line)}</span>')
        out.append('<pre class="jt-code-diff" style="font-size:11px;background:var(--jp-layout-color2,#f6f8fa);'
                   'padding:6px;overflow:auto">' + "\n".join(lines) + "</pre>")
    out.append("</div>")
    return "".join(out)


def grid_of(run: Run) -> dict | None:
    """The grid recorded on a sweep's parent run, or None."""
    text = run.data.tags.get(GRID_TAG)
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def guess_objective(metrics: Iterable[str], overrides: dict[str, str] | None = None) -> tuple[str, str | None] | None:
    """The metric a sweep is most likely judged by, and its goal (``goals.metric_goal``): a held-out (val/test)
    loss first, then a held-out score, then any loss, any known score, else the first metric with goal None
    (unknown: no best can be picked by it). None when there are no metrics.
    """
    from .goals import metric_goal, words_of

    keys = [m.removeprefix("metrics.") for m in metrics]
    if not keys:
        return None

    def rank(key: str) -> tuple[int, int]:
        held_out = bool({"val", "valid", "validation", "test", "eval"} & set(words_of(key)))
        goal = metric_goal(key, overrides)
        if goal is None:
            return (4, keys.index(key))
        return ((0 if held_out else 2) + (0 if goal == "min" else 1), keys.index(key))

    key = min(keys, key=rank)
    return key, metric_goal(key, overrides)


def load_values(run_id: str, *names: str, location: StoreLocation | None = None, trust: bool = False) -> Any:
    """``jt.load(run_id, "model")`` -> the object; ``jt.load(run_id)`` or several names -> ``{name: object}``.

    Objects logged with ``--artifacts`` come back as the same Python objects; params come back as values.
    """
    values = load(run_id, *names, location=location, trust=trust)
    return values[names[0]] if len(names) == 1 else values


_FILTER_WORDS = {"and", "or", "not", "like", "ilike", "in", "is", "null", "attributes", "params", "metrics",
                 "tags", "datasets", "run", "true", "false"}


def suggest_filter(text: str, params: Iterable[str], metrics: Iterable[str]) -> str | None:
    """For a filter written with bare names (``min_leaf = 3 and test_acc > 0.44``), the MLflow spelling
    (``params.min_leaf = '3' and metrics.test_acc > 0.44``), or None when there is nothing to suggest.
    """
    import re

    params, metrics = set(params), set(metrics)
    token = re.compile(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`)|(?<![\w.`])([A-Za-z_][\w.]*)(\s*(?:!=|>=|<=|=|<|>)\s*)(-?[\d.]+(?:e-?\d+)?)?""")
    changed = False

    def replace(match: re.Match) -> str:
        nonlocal changed
        quoted, name, operator, number = match.groups()
        if quoted is not None or name.lower() in _FILTER_WORDS or name.split(".")[0] in _FILTER_WORDS:
            return match.group(0)
        if name in metrics:
            changed = True
            return f"metrics.{name}{operator}{number or ''}"
        if name in params:
            changed = True
            return f"params.{name}{operator}" + (f"'{number}'" if number is not None else "")
        return match.group(0)

    suggestion = token.sub(replace, text)
    return suggestion if changed else None
