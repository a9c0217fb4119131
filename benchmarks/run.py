"""Speed figures of jupyter_tracking, each next to plain MLflow measured in the same run on the same kind of store.

    make bench                                  # or: .venv/bin/python benchmarks/run.py [--profile]

Every measurement gets a fresh SQLite store in a temporary project folder (a copy of one empty, already migrated
store, so MLflow's one-time schema migration is never inside a timing). Tracked cells run in a real IPython
shell; ``%load_ext`` and the imports are timed in fresh Python processes. The result is a table:
measurement | jupyter_tracking | plain MLflow | target | verdict. It is a report, not a test: the exit status
is 0 whatever the figures, and missed targets are listed at the end. ``--profile`` adds a cProfile of the
``%%track`` fixed cost. See benchmarks/README.md for what each line measures.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path

HEAVY_MODULES = ("mlflow", "pandas", "plotly")
LOG_CALLS = 100_000
LOG_METRIC_CALLS = 200
FLUSH_POINTS = (10_000, 100_000)
FIXED_COST_REPEATS = 20
FIXED_COST_WARMUP = 3
LOAD_EXT_REPEATS = 5
IMPORT_MLFLOW_REPEATS = 3
NEW_PROJECT_REPEATS = 3
RECOVERY_RUNS = 10_000
PROFILES: list[str] = []  # --profile output, printed after the table


# ---------------------------------------------------------------------------------------------- results
@dataclass
class Row:
    """One line of the table. ``ok`` is None for lines that are information, not a target."""

    measurement: str
    ours: str
    plain: str
    target: str
    ok: bool | None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.ok is None:
            return "-"
        return "ok" if self.ok else "MISSED"


def print_table(rows: list[Row]) -> None:
    header = ("measurement", "jupyter_tracking", "plain MLflow", "target", "verdict")
    cells = [header] + [(r.measurement, r.ours, r.plain, r.target, r.verdict) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    line = " | ".join(name.ljust(width) for name, width in zip(header, widths))
    print(line)
    print("-+-".join("-" * width for width in widths))
    for row in cells[1:]:
        print(" | ".join(value.ljust(width) for value, width in zip(row, widths)))


def seconds(value: float) -> str:
    if value < 1e-3:
        return f"{value * 1e6:.2f} us"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# ---------------------------------------------------------------------------------------------- stores
class Stores:
    """Fresh project folders, each with its own SQLite store copied from one migrated empty store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._count = 0
        template = root / "template"
        template.mkdir()
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = SqlAlchemyStore(f"sqlite:///{template / 'mlflow.db'}", str(template / "mlartifacts"))
        store.engine.dispose()
        self._template_db = template / "mlflow.db"

    def project(self, name: str, *, git: bool = False) -> Path:
        """A new project folder (pyproject.toml, optionally a git repository) holding a fresh ``mlflow.db``."""
        self._count += 1
        folder = self.root / f"{self._count:02d}-{name}"
        folder.mkdir()
        (folder / "pyproject.toml").write_text("[project]\nname = 'bench'\n")
        shutil.copy(self._template_db, folder / "mlflow.db")
        if git:
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}
            subprocess.run(["git", "init", "-q", str(folder)], **quiet)
            subprocess.run(["git", "-C", str(folder), "add", "pyproject.toml"], **quiet)
            subprocess.run(
                ["git", "-C", str(folder), "-c", "user.name=bench", "-c", "user.email=bench@localhost",
                 "commit", "-q", "-m", "bench"], **quiet,
            )
        return folder


def uri_of(project: Path) -> str:
    return f"sqlite:///{project / 'mlflow.db'}"


def point_mlflow_at(project: Path) -> None:
    """Plain MLflow's fluent API to this project's store. ``mlflow.set_tracking_uri`` also exports
    MLFLOW_TRACKING_URI, which would send the tracked cells there too: take it back out."""
    import mlflow

    mlflow.set_tracking_uri(uri_of(project))
    os.environ.pop("MLFLOW_TRACKING_URI", None)


# ---------------------------------------------------------------------------------------------- fresh processes
_WATCH_IMPORTS = r"""
import sys, threading
IMPORTED_BY = {}  # heavy module -> the thread that imported it
class _Watch:
    def find_spec(self, name, path=None, target=None):
        if name in HEAVY:
            IMPORTED_BY.setdefault(name, threading.current_thread().name)
        return None
sys.meta_path.insert(0, _Watch())
"""

_LOAD_EXT = _WATCH_IMPORTS + r"""
import contextlib, io, json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
out = io.StringIO()
start = time.perf_counter()
with contextlib.redirect_stdout(out):
    shell.run_line_magic("load_ext", "jupyter_tracking")
elapsed = time.perf_counter() - start
main = [m for m, thread in IMPORTED_BY.items() if thread == "MainThread"]
print(json.dumps({"seconds": elapsed, "heavy": main, "said": out.getvalue().strip()}))
"""

# The first tracked cell of a project that has no store yet, in a fresh process. WAIT: the user's next cell comes
# once the import thread started by %load_ext is done (a notebook's imports and data loading take longer).
_FIRST_CELL = r"""
import contextlib, io, json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
out, err = io.StringIO(), io.StringIO()
start = time.perf_counter()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    shell.run_line_magic("load_ext", "jupyter_tracking")
loaded = time.perf_counter()
if WAIT:
    from jupyter_tracking import preload
    preload._state.thread.join()
waited = time.perf_counter()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    result = shell.run_cell(CELL)
done = time.perf_counter()
print(json.dumps({"load_ext": loaded - start, "cell": done - waited, "ok": result.success, "said": err.getvalue()}))
"""

_FIRST_PLAIN_RUN = r"""
import json, time
start = time.perf_counter()
import mlflow
imported = time.perf_counter()
mlflow.set_tracking_uri("URI")
with mlflow.start_run():
    mlflow.log_params({"lr": 0.1, "epochs": 5, "batch_size": 32, "optimizer": "sgd", "dropout": 0.2})
    mlflow.log_metrics({"acc": 0.89, "loss": 0.25, "f1": 0.87})
done = time.perf_counter()
print(json.dumps({"import": imported - start, "first_run": done - imported}))
"""

_IMPORT = r"""
import json, sys, time
start = time.perf_counter()
import MODULE
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "heavy": [m for m in HEAVY if m in sys.modules]}))
"""


def fresh_process(code: str, cwd: Path, env: dict[str, str] | None = None) -> dict:
    code = code.replace("HEAVY", repr(HEAVY_MODULES))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        raise RuntimeError(f"fresh process failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def new_project(root: Path, name: str) -> Path:
    """A project folder without a store (the first tracked cell creates it)."""
    folder = root / name
    folder.mkdir()
    (folder / "pyproject.toml").write_text("[project]\nname = 'bench'\n")
    return folder


def bench_new_project(root: Path) -> list[Row]:
    """The first tracked cell of a NEW project after %load_ext, against ``import mlflow`` + a first hand-written run
    on a new store; fresh processes, median of NEW_PROJECT_REPEATS."""
    cell = TRACKED_CELL.replace("-e bench", "first -e bench")
    warm_cache = str(root / "cache-warm")
    env = {"XDG_CACHE_HOME": warm_cache}
    fresh_process("from jupyter_tracking.store_template import ensure_template\nensure_template()\nprint('{}')",
                  root, env)  # the template of this MLflow version, as after any earlier use
    count = [0]

    def ours(wait: bool, cache: str) -> dict:
        count[0] += 1
        project = new_project(root, f"new-{count[0]:02d}")
        code = _FIRST_CELL.replace("WAIT", str(wait)).replace("CELL", repr(cell))
        result = fresh_process(code, project, {"XDG_CACHE_HOME": cache})
        from mlflow import MlflowClient

        runs = MlflowClient(tracking_uri=uri_of(project)).search_runs(
            [MlflowClient(tracking_uri=uri_of(project)).get_experiment_by_name("bench").experiment_id])
        if not result["ok"] or [run.info.status for run in runs] != ["FINISHED"] or result["said"].strip():
            raise RuntimeError(f"first tracked cell: ok={result['ok']}, runs {len(runs)}, said {result['said']!r}")
        return result

    def plain() -> dict:
        count[0] += 1
        project = new_project(root, f"plain-{count[0]:02d}")
        return fresh_process(_FIRST_PLAIN_RUN.replace("URI", uri_of(project)), project)

    waited = [ours(True, warm_cache) for _ in range(NEW_PROJECT_REPEATS)]
    at_once = [ours(False, warm_cache) for _ in range(NEW_PROJECT_REPEATS)]
    cold = ours(False, str(root / f"cache-cold-{count[0]}"))
    plains = [plain() for _ in range(NEW_PROJECT_REPEATS)]
    cell_s = statistics.median(r["cell"] for r in waited)
    at_once_s = statistics.median(r["load_ext"] + r["cell"] for r in at_once)
    import_s = statistics.median(r["import"] for r in plains)
    first_s = statistics.median(r["first_run"] for r in plains)
    plain_total = statistics.median(r["import"] + r["first_run"] for r in plains)
    return [
        Row(f"first tracked cell in a NEW project after %load_ext (median of {NEW_PROJECT_REPEATS})",
            seconds(cell_s), f"first run on a new store: {seconds(first_s)} (+ import mlflow {seconds(import_s)})",
            "<= 1.0 s", cell_s <= 1.0,
            "the cell comes once the import thread started by %load_ext is done; the store is a copy of the "
            "migrated template in the cache (made once per MLflow version)"),
        Row("the same cell sent right after %load_ext, from %load_ext to the cell done", seconds(at_once_s),
            f"import mlflow + first run: {seconds(plain_total)}", "(information)", None,
            "the cell waits for the rest of the MLflow import"),
        Row("the same, first use of this MLflow version (no template in the cache)",
            seconds(cold["load_ext"] + cold["cell"]), f"import mlflow + first run: {seconds(plain_total)}",
            "(information)", None, "the template is migrated once, under a lock, then copied"),
    ]


def bench_recovery_query(root: Path) -> list[Row]:
    """The dead-kernel check (`%load_ext`, `%track`, `%runs`) on a store with RECOVERY_RUNS runs, 5 of them RUNNING
    with a live owner (nothing to end), against MLflow's own search for RUNNING runs."""
    import sqlite3

    from mlflow import MlflowClient

    from jupyter_tracking import recovery
    from jupyter_tracking import store as store_module

    project = new_project(root, "recovery")
    location = store_module.resolve_store(project)
    client = store_module.client_for(location)
    experiment = client.create_experiment("many", artifact_location=str(project / "mlartifacts" / "many"))
    tags = {**recovery.owner_tags(), "mlflow.source.type": "NOTEBOOK", "mlflow.source.name": "bench.ipynb",
            "jupyter_tracking.cell_hash": "0123456789ab", "jupyter_tracking.version": "0.1.0"}
    model = client.create_run(experiment, tags=tags, run_name="model").info.run_id
    client.set_terminated(model, "FINISHED")
    with sqlite3.connect(project / "mlflow.db") as connection:  # clone the run's rows: seconds, not minutes
        connection.row_factory = sqlite3.Row
        run_row = dict(connection.execute("SELECT * FROM runs WHERE run_uuid = ?", (model,)).fetchone())
        tag_rows = [dict(row) for row in connection.execute("SELECT * FROM tags WHERE run_uuid = ?", (model,))]
        runs, run_tags = [], []
        for number in range(RECOVERY_RUNS - 1):
            run_id = f"{number:032x}"
            runs.append({**run_row, "run_uuid": run_id, "name": f"run-{number}",
                         "status": "RUNNING" if number < 5 else "FINISHED"})
            run_tags.extend({**row, "run_uuid": run_id} for row in tag_rows)
        columns = list(run_row)
        connection.executemany(
            f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})", runs)
        tag_columns = list(tag_rows[0])
        connection.executemany(
            f"INSERT INTO tags ({', '.join(tag_columns)}) VALUES ({', '.join(':' + c for c in tag_columns)})", run_tags)
    ours, plain = [], []
    plain_client = MlflowClient(tracking_uri=location.uri)
    for _ in range(5):
        start = time.perf_counter()
        report = recovery.recover(location)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        found = plain_client.search_runs([experiment], filter_string="attributes.status = 'RUNNING'")
        plain.append(time.perf_counter() - start)
    if report.ended or report.stale or len(found) != 5:
        raise RuntimeError(f"recovery ended {len(report.ended)}, stale {len(report.stale)}, RUNNING {len(found)}")
    median = statistics.median(ours)
    return [Row(f"dead-kernel check on a store of {RECOVERY_RUNS:,} runs, 5 RUNNING (median of 5)", seconds(median),
                f"search_runs(status RUNNING): {seconds(statistics.median(plain))}", "<= 0.1 s", median <= 0.1,
                "one search_experiments and one search_runs (status RUNNING; the owner tag is checked in Python)")]


def bench_load_ext(stores: Stores) -> list[Row]:
    project = stores.project("load-ext")
    load = [fresh_process(_LOAD_EXT, project) for _ in range(LOAD_EXT_REPEATS)]
    import_jt = fresh_process(_IMPORT.replace("MODULE", "jupyter_tracking"), project)
    import_mlflow = [fresh_process(_IMPORT.replace("MODULE", "mlflow"), project) for _ in range(IMPORT_MLFLOW_REPEATS)]
    load_s = statistics.median(r["seconds"] for r in load)
    mlflow_s = statistics.median(r["seconds"] for r in import_mlflow)
    heavy_after_load = sorted({m for r in load for m in r["heavy"]})
    expected = f"runs go to {project / 'mlflow.db'}"
    said_ok = all(expected in r["said"] for r in load)
    rows = [
        Row(f"%load_ext jupyter_tracking, fresh process (median of {LOAD_EXT_REPEATS})", seconds(load_s),
            f"import mlflow: {seconds(mlflow_s)}", "<= 0.2 s", load_s <= 0.2 and said_ok,
            "" if said_ok else f"the load message did not name the store: {load[0]['said']!r}"),
        Row("heavy modules imported by `import jupyter_tracking`", ", ".join(import_jt["heavy"]) or "none",
            f"({seconds(import_jt['seconds'])} to import)", "none", not import_jt["heavy"]),
        Row("heavy modules imported by %load_ext on the main thread", ", ".join(heavy_after_load) or "none",
            "-", "none", not heavy_after_load,
            "MLflow is imported by a daemon thread that %load_ext starts and does not wait for"),
    ]
    return rows


# ---------------------------------------------------------------------------------------------- in one IPython shell
def time_log_calls(jt, n: int) -> tuple[list[int], float]:
    """Call ``jt.log`` n times, timing each call with perf_counter_ns; returns (ns per call, loop end time)."""
    timer = time.perf_counter_ns
    durations = [0] * n
    for step in range(n):
        value = 1.0 / (step + 1)
        start = timer()
        jt.log(step=step, loss=value)
        durations[step] = timer() - start
    return durations, time.perf_counter()


class Shell:
    """A real IPython shell with the extension loaded; output of executions is swallowed (and kept)."""

    def __init__(self) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        self.ip = InteractiveShell.instance()
        self.output = io.StringIO()
        self.run_end_seconds: list[float] = []
        with contextlib.redirect_stdout(self.output):
            self.ip.run_line_magic("load_ext", "jupyter_tracking")
        # InteractiveShell replaces sys.modules["__main__"]: hand the cell our helper directly.
        self.ip.user_ns["_bench"] = types.SimpleNamespace(time_log_calls=time_log_calls)

    def run(self, source: str) -> float:
        """Execute a cell; returns its wall time (and keeps its CPU time in ``last_cpu``). Raises if it failed.

        First, untimed, the previous tracked cell's run end is let finish (run_ends.py: written after its cell
        returns, while the user reads the card), as it would during the pause before the next cell; how long
        that write took is kept in ``run_end_seconds``."""
        from jupyter_tracking.session import current_session

        run_ends = current_session().run_ends
        run_ends.wait()
        if run_ends.last_seconds is not None:
            self.run_end_seconds.append(run_ends.last_seconds)
            run_ends.last_seconds = None
        with contextlib.redirect_stdout(self.output):
            before = os.times()
            start = time.perf_counter()
            result = self.ip.run_cell(source, store_history=True)
            elapsed = time.perf_counter() - start
            after = os.times()
        # CPU seconds of this process (all threads) and of its child processes (git), for the notes.
        self.last_cpu = (after.user - before.user + after.system - before.system,
                         after.children_user - before.children_user + after.children_system - before.children_system)
        if not result.success:
            raise RuntimeError(f"cell failed: {result.error_in_exec or result.error_before_exec}")
        return elapsed


def last_run_id() -> str:
    from jupyter_tracking.session import current_session

    return current_session().last_summary.run_id


def history_count(project: Path, run_id: str, key: str) -> tuple[int, str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri_of(project))
    return len(client.get_metric_history(run_id, key)), client.get_run(run_id).info.status


def bench_log(shell: Shell, stores: Stores) -> tuple[list[Row], dict[int, float]]:
    """jt.log per call over LOG_CALLS calls, and the time from the loop's end to the run closed with every point."""
    flush: dict[int, float] = {}
    rows: list[Row] = []
    per_call: list[int] = []
    for points in sorted(FLUSH_POINTS, key=lambda n: n != LOG_CALLS):  # the LOG_CALLS run first
        project = stores.project(f"log-{points}")
        os.chdir(project)
        source = (f"%%track log-{points} -e bench\nimport jupyter_tracking as jt\n"
                  f"_times, _loop_end = _bench.time_log_calls(jt, {points})\n")
        shell.run(source)
        # the run's end (the points not yet written, then its status) is written after the cell returns
        # (run_ends.py): the run is closed with every point once that write is done
        from jupyter_tracking.session import current_session

        current_session().run_ends.wait()
        closed = time.perf_counter()
        times, loop_end = shell.ip.user_ns["_times"], shell.ip.user_ns["_loop_end"]
        count, status = history_count(project, last_run_id(), "loss")
        if count != points or status != "FINISHED":
            raise RuntimeError(f"{points} points logged, {count} in the store, run {status}")
        flush[points] = closed - loop_end
        if points == LOG_CALLS:
            per_call = times
        del shell.ip.user_ns["_times"]
    median_ns = statistics.median(per_call)
    p99_ns = percentile(per_call, 0.99)
    timer = time.perf_counter_ns
    empty = []
    for _ in range(10_000):
        start = timer()
        empty.append(timer() - start)
    timer_note = ("each call timed on its own; the two perf_counter_ns calls around it "
                  f"({seconds(statistics.median(empty) / 1e9)}) are included")
    plain_ns = bench_log_metric(stores)
    rows.append(Row(f"jt.log per call, median of {LOG_CALLS:,} calls", seconds(median_ns / 1e9),
                    f"mlflow.log_metric: {seconds(statistics.median(plain_ns) / 1e9)}", "<= 0.5 us",
                    median_ns <= 500, timer_note))
    rows.append(Row(f"jt.log per call, p99 of {LOG_CALLS:,} calls", seconds(p99_ns / 1e9),
                    f"mlflow.log_metric: {seconds(percentile(plain_ns, 0.99) / 1e9)}", "(information)", None))
    rows.append(Row(f"jt.log slowest call of {LOG_CALLS:,} (GC pauses included)", seconds(max(per_call) / 1e9),
                    f"mlflow.log_metric: {seconds(max(plain_ns) / 1e9)}", "<= 5 ms", max(per_call) <= 5e6))
    per_point = buffered_bytes_per_point(LOG_CALLS)
    rows.append(Row(f"memory per buffered jt.log point ({LOG_CALLS:,} points, writer paused)",
                    f"{per_point:.0f} B", "-", "<= 100 B", per_point <= 100,
                    "tracemalloc; the floor for (time, step, value) as 8-byte numbers is 24 B"))
    return rows, flush


def buffered_bytes_per_point(n: int) -> float:
    """Bytes held per point while points wait for the writer (a recorder whose writer never ran)."""
    import gc
    import tracemalloc

    from jupyter_tracking.recorder import RunRecorder
    from jupyter_tracking.session import Session
    from jupyter_tracking.store import StoreLocation

    recorder = RunRecorder(StoreLocation("sqlite:///unused.db", "config"), "bench", session=Session())
    recorder.log_step(0, {"loss": 1.0})  # the key's first point registers it
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for step in range(1, n + 1):
        recorder.log_step(step, {"loss": 1.0 / step})
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n


def bench_log_metric(stores: Stores) -> list[int]:
    """Synchronous ``mlflow.log_metric`` per point in an active run, LOG_METRIC_CALLS calls, ns each."""
    import mlflow

    project = stores.project("log-metric")
    point_mlflow_at(project)
    experiment = mlflow.create_experiment("plain", artifact_location=str(project / "mlartifacts"))
    durations = []
    with mlflow.start_run(experiment_id=experiment):
        for step in range(LOG_METRIC_CALLS):
            value = 1.0 / (step + 1)
            start = time.perf_counter_ns()
            mlflow.log_metric("loss", value, step=step)
            durations.append(time.perf_counter_ns() - start)
    return durations


def bench_log_batch(stores: Stores, points: int) -> float:
    """``MlflowClient.log_batch`` of ``points`` points in chunks of 1000, then the run closed; seconds."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    project = stores.project(f"log-batch-{points}")
    client = MlflowClient(tracking_uri=uri_of(project))
    experiment = client.create_experiment("plain", artifact_location=str(project / "mlartifacts"))
    run = client.create_run(experiment)
    now = int(time.time() * 1000)
    values = [(1.0 / (step + 1), step) for step in range(points)]
    start = time.perf_counter()
    metrics = [Metric("loss", value, now, step) for value, step in values]
    for first in range(0, points, 1000):
        client.log_batch(run.info.run_id, metrics=metrics[first : first + 1000])
    client.set_terminated(run.info.run_id, "FINISHED")
    elapsed = time.perf_counter() - start
    count, status = history_count(project, run.info.run_id, "loss")
    if count != points or status != "FINISHED":
        raise RuntimeError(f"log_batch: {points} points logged, {count} in the store, run {status}")
    return elapsed


FIXED_PARAMS_AND_METRICS = """lr = 0.1
epochs = 5
batch_size = 32
optimizer = "sgd"
dropout = 0.2
acc = 0.9 - lr * 0.1
loss = dropout + 0.05
f1 = acc * 0.98
"""

PLAIN_CELL = FIXED_PARAMS_AND_METRICS + """mlflow.start_run(experiment_id=_plain_experiment)
mlflow.log_params({"lr": lr, "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer, "dropout": dropout})
mlflow.log_metrics({"acc": acc, "loss": loss, "f1": f1})
mlflow.set_tags({"mlflow.source.type": "NOTEBOOK", "mlflow.source.name": "bench.ipynb", "purpose": "bench"})
mlflow.end_run()
"""

TRACKED_CELL = "%%track -e bench\n" + FIXED_PARAMS_AND_METRICS


def bench_fixed_cost(shell: Shell, stores: Stores, profile: bool) -> list[Row]:
    """Median wall time of a tracked cell with 5 params and 3 metrics against the same logging by hand."""
    import mlflow

    ours_project = stores.project("fixed-track", git=True)
    plain_project = stores.project("fixed-plain", git=True)
    point_mlflow_at(plain_project)
    shell.ip.user_ns["mlflow"] = mlflow
    shell.ip.user_ns["_plain_experiment"] = mlflow.create_experiment(
        "plain", artifact_location=str(plain_project / "mlartifacts"),
    )

    def tracked() -> float:
        os.chdir(ours_project)
        return shell.run(TRACKED_CELL)

    def plain() -> float:
        os.chdir(plain_project)
        point_mlflow_at(plain_project)  # each tracked cell points MLflow's fluent API at its own store
        return shell.run(PLAIN_CELL)

    for _ in range(FIXED_COST_WARMUP):
        tracked()
        plain()
    ours, theirs, ours_cpu, theirs_cpu = [], [], [], []
    for _ in range(FIXED_COST_REPEATS):  # interleaved, so that load from other processes hits both alike
        ours.append(tracked())
        ours_cpu.append(shell.last_cpu)
        theirs.append(plain())
        theirs_cpu.append(shell.last_cpu)
    run_id = last_run_id()
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=uri_of(ours_project)).get_run(run_id)
    recorded = (len(run.data.params), len(run.data.metrics))
    if recorded != (5, 3):
        raise RuntimeError(f"the tracked cell recorded {recorded[0]} params and {recorded[1]} metrics, not 5 and 3")
    median_ours, median_plain = statistics.median(ours), statistics.median(theirs)
    ratio = median_ours / median_plain

    def cpu(samples: list[tuple[float, float]]) -> str:
        own = statistics.mean(sample[0] for sample in samples)
        children = statistics.mean(sample[1] for sample in samples)
        return f"{seconds(own)} in-process + {seconds(children)} in child processes"

    ends = shell.run_end_seconds[-FIXED_COST_REPEATS:]
    end_note = (f"; the run's end, written after the cell returns (off the critical path), took "
                f"{seconds(statistics.median(ends))} (median)" if ends else "")
    note = (f"CPU per cell (mean; steadier than wall time on a busy machine): jupyter_tracking {cpu(ours_cpu)}, "
            f"plain MLflow {cpu(theirs_cpu)}; the tracked project is a git repository, as most are{end_note}")
    if profile:
        profile_tracked_cell(tracked)
    return [
        Row(f"%%track fixed cost, 5 params + 3 metrics + card (median of {FIXED_COST_REPEATS})",
            f"{seconds(median_ours)} ({ratio:.2f}x)", seconds(median_plain), "<= 0.5x plain", ratio <= 0.5, note),
    ]


def profile_flush(shell: Shell, stores: Stores, points: int) -> None:
    """cProfile (main thread) of one extra run: from the end of a ``points``-call jt.log loop to the run closed."""
    import cProfile

    profiler = cProfile.Profile()
    shell.ip.user_ns["_bench"].profiler = profiler
    os.chdir(stores.project(f"profile-flush-{points}"))
    shell.run(
        f"%%track profile-flush -e bench\nimport jupyter_tracking as jt\n"
        f"_times, _loop_end = _bench.time_log_calls(jt, {points})\n_bench.profiler.enable()\n"
    )
    profiler.disable()
    del shell.ip.user_ns["_times"]
    print_profile(profiler, f"cProfile from the end of the {points:,}-call jt.log loop to the run closed (main thread)")


def print_profile(profiler, title: str) -> None:
    import pstats

    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(r"jupyter_tracking|mlflow/(tracking|store)|subprocess|threading", 40)
    PROFILES.append(f"{title}:\n{text.getvalue().strip()}")


def profile_tracked_cell(tracked) -> None:
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(10):
        tracked()
    profiler.disable()
    print_profile(profiler, "cProfile of 10 executions of the %%track fixed-cost cell (cumulative)")


# ---------------------------------------------------------------------------------------------- main
def section(title: str, rows: list[Row], measure) -> None:
    """Run one measurement; a failure becomes a MISSED line with its reason instead of ending the report."""
    print(f"measuring {title} ...", file=sys.stderr)
    try:
        rows.extend(measure())
    except Exception as error:  # noqa: BLE001 - the report goes on
        rows.append(Row(title, "error", "-", "-", False, f"{type(error).__name__}: {error}"))

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of the %%track fixed cost")
    args = parser.parse_args(argv)

    for variable in ("MLFLOW_TRACKING_URI", "JPY_SESSION_NAME", "IPYNB_FILE"):  # the embedded store, always
        os.environ.pop(variable, None)
    import mlflow  # noqa: F401 - imported here so that its logging set-up can be quietened

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="jt-bench-") as folder:
        root = Path(folder)
        os.environ["JUPYTER_TRACKING_SPOOL_DIR"] = str(root / "spool")
        os.environ["XDG_CACHE_HOME"] = str(root / "cache")  # store templates: the measured processes' own cache
        here = Path.cwd()
        try:
            stores = Stores(root)
            section("fresh processes: %load_ext and imports", rows, lambda: bench_load_ext(stores))
            section("fresh processes: the first tracked cell of a new project", rows, lambda: bench_new_project(root))
            section(f"the dead-kernel check on {RECOVERY_RUNS:,} runs", rows, lambda: bench_recovery_query(root))
            shell = Shell()
            flush: dict[int, float] = {}

            def log_section() -> list[Row]:
                log_rows, measured = bench_log(shell, stores)
                flush.update(measured)
                return log_rows

            section(f"jt.log ({LOG_CALLS:,} calls) and the flush of {FLUSH_POINTS} points", rows, log_section)
            for points in FLUSH_POINTS:
                def flush_row(points: int = points) -> list[Row]:
                    plain = bench_log_batch(stores, points)
                    ours = flush.get(points)
                    if ours is None:
                        raise RuntimeError("no jupyter_tracking figure (see the jt.log line)")
                    return [Row(f"all {points:,} points in the store after the cell", seconds(ours),
                                f"log_batch x1000: {seconds(plain)}", "<= 3 s", ours <= 3.0)]

                section(f"MlflowClient.log_batch of {points:,} points", rows, flush_row)
            if args.profile:
                profile_flush(shell, stores, max(FLUSH_POINTS))
            section(f"the %%track fixed cost ({FIXED_COST_REPEATS} + {FIXED_COST_REPEATS} cells)", rows,
                    lambda: bench_fixed_cost(shell, stores, args.profile))
        finally:
            os.chdir(here)
    print()
    print_table(rows)
    for row in rows:
        if row.note:
            print(f"note: {row.measurement}: {row.note}")
    for text in PROFILES:
        print(f"\n{text}")
    missed = [row.measurement for row in rows if row.ok is False]
    print(f"\n{len(rows)} lines in {time.perf_counter() - started:.0f} s; CPU count {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f} (other processes slow every figure alike).")
    if missed:
        print("MISSED targets:")
        for name in missed:
            print(f"  - {name}")
    else:
        print("All targets met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
