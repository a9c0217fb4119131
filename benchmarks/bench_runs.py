"""``%runs`` at 1,000 / 10,000 / 100,000 runs: the first page, against MLflow's paged query and ``search_runs``.

    .venv/bin/python benchmarks/bench_runs.py [--sizes 1000,10000,100000] [--repeat 5] [--mlflow-timeout 60]

Each size gets an SQLite store of N runs x (10 params + 5 metrics + 3 tags). The first run is made with
MlflowClient and the rest are bulk-inserted as copies of its rows (MLflow's own tables and conventions, only
faster than N fsync-bound requests). Stores are cached under ``~/.cache/jupyter_tracking/bench-runs/`` (per
MLflow version) and reused by later runs of the benchmark; each run works on a fresh copy, so the indexes the
panel adds are built (and timed) every time.

For each query (unfiltered newest first; sorted by a metric; filtered by ``params.min_leaf = '3' and
metrics.test_acc > 0.44``) it prints the medians of

* the panel: ``jt.runs(...)`` and its widget bundle, first page ready to show (what ``%runs`` displays in
  JupyterLab: ``JUPYTER_TRACKING_LIVE=widget``, so the total is counted by a thread after the page shows);
* the panel's count: how long that thread takes to know the total (the table says "N+ runs (counting...)"
  until then);
* the side panel's ``runs`` endpoint (its query function, 100 rows, without the HTTP round trip), and its
  ``run-count`` endpoint, which the side panel asks after the page shows;
* MLflow's paged query as its UI makes it (``MlflowClient.search_runs``, 100 rows, same order and filter);
* ``mlflow.search_runs`` (a frame of every matching run).

The two MLflow columns run in a separate process with a time limit (``--mlflow-timeout``): a query that does
not finish is shown as "> N s". Also printed: ``%track best`` (``jt.best``) per size, the growth of a fresh
kernel's resident memory while a panel is shown, the one-time index build, and what the indexes cost a
tracked cell's final write (create_run + log_batch + set_terminated, with and without them).
Targets: <= 0.2 s for every query at 100k, and t(100k) / t(1k) <= 2. On a shared machine medians move with the
load (printed at the top): compare columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PARAMS = ["max_depth", "min_leaf", "criterion", "lr", "batch_size", "optimizer", "dropout", "layers", "seed",
          "warmup"]
METRICS = ["val_loss", "train_loss", "test_acc", "f1", "duration"]
FILTER = "params.min_leaf = '3' and metrics.test_acc > 0.44"
QUERIES = [  # label, filter, panel sort, MLflow order_by
    ("newest first", None, None, None),
    ("sorted by val_loss", None, "metrics.val_loss", "metrics.val_loss ASC"),
    ("min_leaf = 3 and test_acc > 0.44", FILTER, None, None),
]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jupyter_tracking" / "bench-runs"
MLFLOW_PAGE = 100
TARGET_SECONDS = 0.2


def _insert_copies(con: sqlite3.Connection, template_id: str, count: int) -> None:
    """``count`` runs copied from the template run's row, with their own params, metrics and tags."""
    rng = random.Random(0)
    (row,) = con.execute("SELECT * FROM runs WHERE run_uuid = ?", (template_id,)).fetchall()
    columns = [c[1] for c in con.execute("PRAGMA table_info(runs)")]
    base = dict(zip(columns, row))
    start = base["start_time"]
    chunk = 20_000
    for first in range(0, count, chunk):
        runs, params, metrics, latest, tags = [], [], [], [], []
        for i in range(first, min(count, first + chunk)):
            run_id = uuid.uuid4().hex
            record = dict(base, run_uuid=run_id, name=f"run-{i}", start_time=start + i * 1000,
                          end_time=start + i * 1000 + rng.randint(100, 60_000),
                          artifact_uri=base["artifact_uri"].replace(template_id, run_id))
            runs.append(tuple(record[c] for c in columns))
            values = {"max_depth": rng.randint(1, 12), "min_leaf": rng.randint(1, 5),
                      "criterion": rng.choice(["gini", "entropy"]), "lr": rng.choice([0.1, 0.01, 0.001]),
                      "batch_size": rng.choice([32, 64, 128]), "optimizer": rng.choice(["adam", "sgd"]),
                      "dropout": rng.choice([0.0, 0.1, 0.3]), "layers": rng.choice(["[64, 32]", "[128]"]),
                      "seed": i, "warmup": 100}
            params.extend((k, str(v), run_id) for k, v in values.items())
            for key in METRICS:
                value = rng.random()
                metrics.append((key, value, start + i * 1000, run_id, 0, 0))
                latest.append((key, value, start + i * 1000, 0, 0, run_id))
            tags.extend([("mlflow.runName", f"run-{i}", run_id), ("jupyter_tracking.cell_hash", "abc", run_id),
                         ("mlflow.source.name", "bench.ipynb", run_id)])
        con.executemany(f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", runs)
        con.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", params)
        con.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                        "VALUES (?, ?, ?, ?, ?, ?)", metrics)
        con.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                        "VALUES (?, ?, ?, ?, ?, ?)", latest)
        con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tags)


def cached_store(count: int) -> Path:
    """The path of a store with ``count`` runs in experiment "bench", built once per MLflow version."""
    import mlflow

    path = CACHE / f"mlflow-{mlflow.__version__}" / f"runs-{count}.db"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jt-bench-build-") as tmp:
        from mlflow import MlflowClient

        db = Path(tmp) / "mlflow.db"
        client = MlflowClient(f"sqlite:///{db}")
        experiment_id = client.create_experiment("bench", artifact_location=str(Path(tmp) / "artifacts"))
        template = client.create_run(experiment_id, run_name="template",
                                     tags={"jupyter_tracking.cell_hash": "abc"})
        client.log_param(template.info.run_id, "max_depth", "1")
        client.log_metric(template.info.run_id, "val_loss", 1.0)
        client.set_terminated(template.info.run_id)
        client._tracking_client.store.engine.dispose()
        con = sqlite3.connect(db)
        con.execute("PRAGMA synchronous = OFF")
        con.execute("PRAGMA journal_mode = MEMORY")
        _insert_copies(con, template.info.run_id, count - 1)
        con.commit()
        con.close()
        partial = path.with_suffix(".partial")
        shutil.copyfile(db, partial)
        partial.rename(path)
    print(f"  built the {count:,}-run store in {time.perf_counter() - started:.1f} s (cached at {path})")
    return path


# ---------------------------------------------------------------------------------------------- MLflow side


def _mlflow_worker(conn, uri: str, experiment_id: str) -> None:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    client.search_runs([experiment_id], max_results=1)  # engine and session set up outside the timings
    while True:
        kind, filter_string, order_by = conn.recv()
        started = time.perf_counter()
        if kind == "paged":
            rows = len(client.search_runs([experiment_id], filter_string or "", max_results=MLFLOW_PAGE,
                                          order_by=[order_by] if order_by else None))
        else:
            rows = len(mlflow.search_runs(experiment_ids=[experiment_id], filter_string=filter_string or "",
                                          order_by=[order_by] if order_by else None))
        conn.send((time.perf_counter() - started, rows))


class MlflowTimer:
    """Plain MLflow's queries in a child process, so one that runs for minutes can be cut off."""

    def __init__(self, uri: str, experiment_id: str, timeout: float) -> None:
        self.uri, self.experiment_id, self.timeout = uri, experiment_id, timeout
        self.process = None

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_mlflow_worker, args=(child, self.uri, self.experiment_id),
                                       daemon=True)
        self.process.start()

    def time(self, kind: str, filter_string: str | None, order_by: str | None) -> float | None:
        """Seconds the query took, or None when it did not finish within the time limit."""
        if self.process is None:
            self._start()
            self.conn.send(("paged", None, None))  # waits for the import and the first query
            self.conn.recv()
        self.conn.send((kind, filter_string, order_by))
        if self.conn.poll(self.timeout):
            return self.conn.recv()[0]
        self.close()
        return None

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join()
            self.process = None


def fmt(seconds: float | None, timeout: float) -> str:
    if seconds is None:
        return f"> {timeout:.0f} s"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def median_time(func, repeat: int, after=None) -> float:
    """Median seconds of ``func()``; ``after(result)``, untimed, lets work it left to threads finish first
    (the panel's figure), so it does not run into the next timing."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - started)
        if after is not None:
            after(result)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------- write cost


def index_write_cost(source: Path, repeat: int) -> tuple[float, float]:
    """Median seconds of one run's final write (create_run, log_batch of 10 params + 5 metrics + 3 tags,
    set_terminated) on a copy of ``source`` without and with the panel's indexes, interleaved."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    from jupyter_tracking import run_pages

    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="jt-bench-write-") as tmp:
        clients = {}
        for indexed in (False, True):
            db = Path(tmp) / f"{indexed}.db"
            shutil.copyfile(source, db)
            if indexed:
                con = sqlite3.connect(db)
                for name, (table, columns) in run_pages.INDEXES.items():
                    con.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(columns)})")
                con.commit()
                con.close()
            clients[indexed] = MlflowClient(f"sqlite:///{db}")
            experiment_id = clients[indexed].get_experiment_by_name("bench").experiment_id
        for i in range(repeat + 2):
            for indexed in (False, True):
                client = clients[indexed]
                started = time.perf_counter()
                run = client.create_run(experiment_id, run_name=f"write-{i}")
                client.log_batch(run.info.run_id,
                                 metrics=[Metric(k, random.random(), 0, 0) for k in METRICS],
                                 params=[Param(k, str(random.randint(1, 9))) for k in PARAMS],
                                 tags=[RunTag(f"t{j}", "x") for j in range(3)])
                client.set_terminated(run.info.run_id)
                if i >= 2:
                    times[indexed].append(time.perf_counter() - started)
        for client in clients.values():
            client._tracking_client.store.engine.dispose()
    return statistics.median(times[False]), statistics.median(times[True])


# ---------------------------------------------------------------------------------------------- main


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _memory_worker(conn, uri: str) -> None:
    """In a fresh process: resident memory before and after showing a panel sorted by a metric (after one
    small panel, so the session's one-time imports and widget classes are not counted)."""
    import gc

    from jupyter_tracking.panels import compare
    from jupyter_tracking.store import StoreLocation

    location = StoreLocation(uri=uri, source="env")
    small = compare.runs("bench", max_results=5, location=location)
    small._repr_mimebundle_()
    small.figure  # noqa: B018 - waits for the thread that imports plotly (a one-time cost)
    gc.collect()
    before = rss_mib()
    panel = compare.runs("bench", sort="metrics.val_loss", location=location)
    panel._repr_mimebundle_()
    panel.figure  # noqa: B018
    conn.send((before, rss_mib(), panel._pager.total))


def panel_memory(uri: str) -> tuple[float, float, int]:
    """(RSS MiB before, after, runs) of a panel shown in a fresh process."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_memory_worker, args=(child, uri))
    process.start()
    try:
        return parent.recv()
    finally:
        process.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mlflow-timeout", type=float, default=60.0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import jupyter_tracking as jt
    from jupyter_tracking import queries, run_pages
    from jupyter_tracking.panels import compare
    from jupyter_tracking.serverext import queries as api
    from jupyter_tracking.store import StoreLocation

    os.environ["JUPYTER_TRACKING_LIVE"] = "widget"  # the panel as JupyterLab shows it (the count follows the page)
    print(f"load average {os.getloadavg()[0]:.1f}; medians of {args.repeat}")
    results: dict[int, dict[str, float | None]] = {}
    memory_lines: list[str] = []
    write_source = None
    first_panel = True
    for size in sizes:
        source = cached_store(size)
        folder = Path(tempfile.mkdtemp(prefix="jt-bench-runs-"))
        db = folder / "mlflow.db"
        shutil.copyfile(source, db)
        uri = f"sqlite:///{db}"
        os.environ["MLFLOW_TRACKING_URI"] = uri
        location = StoreLocation(uri=uri, source="env")
        store = run_pages.sql_store(location)
        started = time.perf_counter()
        run_pages.ensure_indexes(store)
        index_seconds = time.perf_counter() - started
        experiment_id = queries.experiment_ids("bench", location)[0]
        if first_panel:  # one-time costs of a session's first panel (imports, widget classes): not in the table
            started = time.perf_counter()
            first = compare.runs("bench", location=location)
            first._repr_mimebundle_()
            shown = time.perf_counter() - started
            first.figure  # noqa: B018 - waits for the thread that imports plotly and draws the figure
            print(f"first panel of the session (anywidget, widget classes; plotly in a thread): table shown in "
                  f"{shown:.2f} s, figure drawn after {time.perf_counter() - started:.2f} s")
            first_panel = False
        print(f"\n{size:,} runs (indexes built in {index_seconds:.2f} s)")
        header = (f"  {'query':<34} {'panel':>9} {'count':>7} {'runs API':>9} {'count API':>9}"
                  f" {'MLflow paged':>13} {'search_runs':>12} {'rows':>7}")
        print(header)
        print("  " + "-" * (len(header) - 2))
        timer = MlflowTimer(uri, experiment_id, args.mlflow_timeout)
        row: dict[str, float | None] = {}
        before, after, shown = panel_memory(uri)
        memory_lines.append(f"  {size:>7,} runs: {before:.0f} MiB before, +{after - before:.1f} MiB while shown")
        for label, filter_string, sort, order_by in QUERIES:
            def panel():
                p = compare.runs("bench", filter=filter_string, sort=sort, location=location)
                assert "application/vnd.jupyter.widget-view+json" in p._repr_mimebundle_()
                return p

            def endpoint():
                return api.search_runs(location, [experiment_id], filter_string or "",
                                       order_by=[order_by] if order_by else None, max_results=MLFLOW_PAGE)

            def panel_count():  # what the panel's counting thread does once the page is shown
                return run_pages.SqlRunQuery(store, [experiment_id], filter_string or "").count()

            t_panel = median_time(panel, args.repeat, after=lambda p: p.figure)
            t_count = median_time(panel_count, args.repeat)
            t_api = median_time(endpoint, args.repeat)
            t_count_api = median_time(lambda: api.count_runs(location, [experiment_id], filter_string or ""),
                                      args.repeat)
            total = panel()._pager.total
            t_paged = timer.time("paged", filter_string, order_by)
            t_all = timer.time("all", filter_string, order_by)
            row[f"panel {label}"], row[f"API {label}"] = t_panel, t_api
            print(f"  {label:<34} {fmt(t_panel, 0):>9} {fmt(t_count, 0):>7} {fmt(t_api, 0):>9}"
                  f" {fmt(t_count_api, 0):>9} {fmt(t_paged, args.mlflow_timeout):>13}"
                  f" {fmt(t_all, args.mlflow_timeout):>12} {total:>7}")
        timer.close()
        t_best = median_time(lambda: jt.best("val_loss", "min", "bench", location=location), args.repeat)
        row["%track best"] = t_best
        print(f"  {'%track best val_loss (jt.best)':<34} {fmt(t_best, 0):>9}")
        results[size] = row
        write_source = source
        store.engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)

    print()
    print(f"kernel memory (fresh process) while a panel sorted by val_loss is shown, page of {compare.PAGE_SIZE}:")
    print("\n".join(memory_lines))
    if write_source is not None:
        plain, indexed = index_write_cost(write_source, 40)
        print(f"one run's final write on the {max(sizes):,}-run store (create_run + log_batch 10 params, "
              f"5 metrics, 3 tags + set_terminated): {plain * 1000:.1f} ms without the indexes, "
              f"{indexed * 1000:.1f} ms with them")
    small, large = min(sizes), max(sizes)
    missed = []
    if small != large:
        print(f"\nt({large:,}) / t({small:,}) and the {TARGET_SECONDS} s target at {large:,}:")
        for name in results[large]:
            ratio = results[large][name] / results[small][name]
            ok = results[large][name] <= TARGET_SECONDS and ratio <= 2
            print(f"  {name:<44} {ratio:5.2f}x  {fmt(results[large][name], 0):>8}  {'ok' if ok else 'MISSED'}")
            if not ok:
                missed.append(name)
    print("\nmissed: " + (", ".join(missed) if missed else "none"))


if __name__ == "__main__":
    main()
