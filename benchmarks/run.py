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
_LOAD_EXT = r"""
import contextlib, io, json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
out = io.StringIO()
start = time.perf_counter()
with contextlib.redirect_stdout(out):
    shell.run_line_magic("load_ext", "jupyter_tracking")
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "heavy": [m for m in HEAVY if m in sys.modules], "said": out.getvalue().strip()}))
"""

_IMPORT = r"""
import json, sys, time
start = time.perf_counter()
import MODULE
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "heavy": [m for m in HEAVY if m in sys.modules]}))
"""


def fresh_process(code: str, cwd: Path) -> dict:
    code = code.replace("HEAVY", repr(HEAVY_MODULES))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )
    if result.returncode != 0:
        raise RuntimeError(f"fresh process failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


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
        Row("heavy modules imported by %load_ext", ", ".join(heavy_after_load) or "none", "-", "none",
            not heavy_after_load),
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
        with contextlib.redirect_stdout(self.output):
            self.ip.run_line_magic("load_ext", "jupyter_tracking")
        # InteractiveShell replaces sys.modules["__main__"]: hand the cell our helper directly.
        self.ip.user_ns["_bench"] = types.SimpleNamespace(time_log_calls=time_log_calls)

    def run(self, source: str) -> float:
        """Execute a cell; returns its wall time (and keeps its CPU time in ``last_cpu``). Raises if it failed."""
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

    note = (f"CPU per cell (mean; steadier than wall time on a busy machine): jupyter_tracking {cpu(ours_cpu)}, "
            f"plain MLflow {cpu(theirs_cpu)}; the tracked project is a git repository, as most are")
    if profile:
        profile_tracked_cell(tracked)
    return [
        Row(f"%%track fixed cost, 5 params + 3 metrics + card (median of {FIXED_COST_REPEATS})",
            f"{seconds(median_ours)} ({ratio:.2f}x)", seconds(median_plain), "<= 1.3x plain", ratio <= 1.3, note),
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
        here = Path.cwd()
        try:
            stores = Stores(root)
            section("fresh processes: %load_ext and imports", rows, lambda: bench_load_ext(stores))
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
