"""A 16-trial grid of a CPU-bound cell (~1 s a trial): sequential vs ``--jobs 2`` vs a 2-worker Dask cluster.

    .venv/bin/python benchmarks/bench_sweep.py [--trials 16] [--seconds 1.0] [--repeat 3]

All three run in one process, one after the other, on the same kind of fresh SQLite store, in a real IPython
shell, through ``sweep.run_grid`` (what ``%%track --grid`` calls). The cell is a pure-Python loop calibrated
here to ``--seconds`` of CPU. Printed per mode: wall time of the sweep, speed-up over sequential (target
>= 1.7x for both parallel modes on 2 cores), the trials' own mean time, and the overhead per trial: from
sending the trial to its child run being written, less the trial's own time (shipping the values and the
record, recording the run); for the sequential grid, the wall time per trial less the trial's own time. The
Dask cluster is started before its sweep (as a user's cluster would be): its start time is printed apart,
and so is the start of the ``--jobs`` worker processes, which is inside its sweep's wall time.
It is a report: exit status 0 whatever the figures; the load average is printed, and a control line (the bare
loop in a plain 2-process pool) says how much parallelism the machine allowed during the run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CELL = """total = 0
for i in range(iterations):
    total += (i * seed) % 7
score = total / iterations
"""


def calibrate(seconds: float) -> int:
    """Loop iterations that take ``seconds`` of CPU here (the cell's own loop)."""
    namespace = {"iterations": 200_000, "seed": 3}
    code = compile(CELL, "<calibrate>", "exec")
    started = time.process_time()
    exec(code, namespace)  # noqa: S102
    per_iteration = (time.process_time() - started) / namespace["iterations"]
    return max(1000, int(seconds / per_iteration))


def fresh_project(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname='bench'\n")
    return root


def run_mode(shell, label: str, grid: dict, engine, iterations: int) -> dict:
    from jupyter_tracking import sweep
    from jupyter_tracking.cell import TrackOptions

    shell.user_ns["iterations"] = iterations
    options = TrackOptions(name=label, experiment=f"bench-{label}", card=False, live=False)
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        state = sweep.run_grid(shell, CELL, options, grid, engine=engine, show=False)
    wall = time.perf_counter() - started
    rows = state.rows
    assert all(r.status == "FINISHED" for r in rows), [(r.status, r.error) for r in rows]
    own = [r.seconds for r in rows]
    overheads = [r.overhead for r in rows if r.overhead is not None]
    recorded = [r.recorded for r in rows if r.recorded is not None]
    return {"label": label, "wall": wall, "own": statistics.mean(own), "sum_own": sum(own),
            "overhead": statistics.mean(overheads) if overheads else None,
            "recorded": statistics.mean(recorded) if recorded else None, "n": len(rows)}


def _loop(arguments: tuple[int, int]) -> float:
    iterations, seed = arguments
    started = time.perf_counter()
    exec(compile(CELL, "<pool>", "exec"), {"iterations": iterations, "seed": seed})  # noqa: S102
    return time.perf_counter() - started


def machine_parallelism(iterations: int) -> float:
    """Control: 4 runs of the bare loop one after the other vs in a plain 2-process pool (no tracking at all).
    Near 2x on an idle 2-core machine; near 1x when other work takes the second core."""
    import multiprocessing

    started = time.perf_counter()
    for seed in range(4):
        _loop((iterations // 4, seed + 1))
    alone = time.perf_counter() - started
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_loop, [(1000, 1)] * 2)  # started before the timing
        started = time.perf_counter()
        pool.map(_loop, [(iterations // 4, seed + 1) for seed in range(4)], chunksize=1)
        pooled = time.perf_counter() - started
    return alone / pooled


def untracked_seconds(iterations: int, repeats: int = 3) -> float:
    """The cell's own time here, untracked (median of a few): the sequential grid's trials without tracking."""
    code = compile(CELL, "<untracked>", "exec")
    times = []
    for seed in range(1, repeats + 1):
        started = time.perf_counter()
        exec(code, {"iterations": iterations, "seed": seed})  # noqa: S102
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per trial")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of the three modes, interleaved; the table gives each mode's median round")
    args = parser.parse_args()

    from IPython.core.interactiveshell import InteractiveShell

    from jupyter_tracking.parallel import EngineChoice
    from jupyter_tracking.session import Session, use_session

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    root = Path(tempfile.mkdtemp(prefix="jt-bench-sweep-"))
    try:
        os.chdir(fresh_project(root / "proj") / "notebooks")
        iterations = calibrate(args.seconds)
        control = machine_parallelism(iterations)  # before IPython takes over __main__ (the pool pickles _loop)
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "jupyter_tracking")
        use_session(Session())
        from jupyter_tracking import preload

        preload.wait()
        grid = {"seed": list(range(1, args.trials + 1))}
        # A warm-up sweep of two short trials: the store is created and migrated outside the timings.
        shell.user_ns["iterations"] = 1000
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            from jupyter_tracking import sweep
            from jupyter_tracking.cell import TrackOptions

            sweep.run_grid(shell, CELL, TrackOptions(experiment="warmup", card=False, live=False),
                           {"seed": [1, 2]}, show=False)
        own_untracked = untracked_seconds(iterations)
        from dask.distributed import Client, LocalCluster

        began = time.perf_counter()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        cluster_start = time.perf_counter() - began
        rounds: dict[str, list[dict]] = {"sequential": [], "jobs2": [], "dask2": []}
        try:
            shell.user_ns["bench_client"] = client
            for _ in range(max(1, args.repeat)):  # interleaved: a busy spell on the machine hits every mode
                rounds["sequential"].append(run_mode(shell, "sequential", grid, None, iterations))
                rounds["jobs2"].append(run_mode(shell, "jobs2", grid, EngineChoice(jobs=2), iterations))
                rounds["dask2"].append(run_mode(shell, "dask2", grid, EngineChoice(cluster="bench_client"),
                                                iterations))
        finally:
            client.close()
            cluster.close()
        results = [sorted(found, key=lambda r: r["wall"])[len(found) // 2] for found in rounds.values()]
        walls = {label: [round(r["wall"], 2) for r in found] for label, found in rounds.items()}
    finally:
        os.chdir("/")
        shutil.rmtree(root, ignore_errors=True)

    base = results[0]["wall"]
    print(f"\n{args.trials}-trial grid, {args.seconds:g} s CPU a trial ({iterations} loop iterations); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; median of {max(1, args.repeat)} "
          f"interleaved round(s)\n")
    print(f"{'mode':<24} {'wall':>8} {'speed-up':>9} {'trial own':>10} {'overhead/trial':>15} "
          f"{'of it recording':>16}  target")
    names = {"sequential": "sequential grid", "jobs2": "--jobs 2 (loky)", "dask2": "2-worker Dask cluster"}
    for result in results:
        speed = base / result["wall"]
        if result["label"] == "sequential":  # the cell alone, untracked, against a tracked trial's wall time
            own = own_untracked
            overhead, recording = (result["wall"] / result["n"] - own) * 1000, "-"
            target = "-"
        else:
            own = result["own"]
            overhead, recording = result["overhead"] * 1000, f"{result['recorded'] * 1000:.0f} ms"
            target = "ok (>= 1.7x)" if speed >= 1.7 else "MISSED (< 1.7x)"
        print(f"{names[result['label']]:<24} {result['wall']:>7.2f}s {speed:>8.2f}x {own:>9.3f}s "
              f"{overhead:>12.0f} ms {recording:>16}  {target}")
    if args.repeat > 1:
        print("\nwall time of each round: " + "; ".join(f"{k} {v}" for k, v in walls.items()))
    print(f"\nDask cluster start (before its sweeps, not in their wall time): {cluster_start:.2f} s")
    print(f"control, the bare loop in a plain 2-process pool vs one after the other: {control:.2f}x "
          "(what this machine allowed; ~2x when idle)")
    print("overhead/trial: from sending a trial to its child run written, less the trial's own time (parallel); "
          "a tracked trial's wall time less the untracked cell (sequential)")


if __name__ == "__main__":
    main()
