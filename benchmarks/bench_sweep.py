"""A 16-trial grid of a CPU-bound cell (~1 s a trial): sequential vs ``--jobs 2`` vs a 2-worker Dask cluster.

    .venv/bin/python benchmarks/bench_sweep.py [--trials 16] [--seconds 1.0] [--repeat 3]
                                               [--modes jobs2,dask2,dask2sweep] [--no-control]

All modes run in one process, one after the other, on the same kind of fresh SQLite store, in a real IPython
shell, through ``sweep.run_grid`` (what ``%%track --grid`` calls). The cell is a pure-Python loop calibrated
here to ``--seconds`` of CPU. Printed per mode: wall time of the sweep, speed-up over sequential (target
>= 1.7x for both parallel modes on 2 cores), the trials' own mean time, how busy the workers were (the trials'
own time over workers x wall time), and the overhead per trial: from sending the trial to its child run being
written, less the trial's own time (shipping the values and the record, recording the run); for the sequential
grid, the wall time per trial less the untracked cell's, timed in the same round. The
Dask cluster (two rows: Dask's default settings, and the settings ``--cluster local`` gives the cluster it makes,
``parallel.SWEEP_CLUSTER_CONFIG``) is started before its sweep (as a user's cluster would be) and closed after it,
so it does not idle beside the other modes' workers: its start time is printed apart, and so is the start of the
``--jobs`` worker processes, which is inside its sweep's wall time. The modes run in ``--repeat`` rounds, every other one in
reverse order; a mode's speed-up is taken against the sequential grid of its own round, and the table gives each
mode's median round. One more mode is the control ("bare loop, plain pool"): the same trials' loop with no tracking
in a plain 2-process pool whose workers are up before the timing, which says what any executor could have done in
that round (this VM's second core is often partly taken by other work, and two busy processes run slower each than
one); each parallel mode's wall time is also given against the control's of its round.
It is a report: exit status 0 whatever the figures; the load average is printed.
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

PARALLEL_MODES = ("jobs2", "dask2", "dask2sweep")  # timed beside the sequential grid (--modes)

# The same work for every seed: with ``(i * seed) % 7`` the seeds 7 and 14 made every step add 0, which took
# no new integer, and those trials were shorter than the others.
CELL = """total = 0
for i in range(iterations):
    total += (i + seed) % 7
score = total / iterations
"""


def calibrate(seconds: float) -> int:
    """Loop iterations that take ``seconds`` of CPU here: the cell's own loop, its fastest of five short timings
    (this VM's speed moves by up to 2x with other work; a slow spell while calibrating made "1 s" trials of
    0.57 s once the machine was quick again)."""
    code = compile(CELL, "<calibrate>", "exec")
    per_iteration = []
    for seed in (3, 5, 11, 13, 17):
        namespace = {"iterations": 300_000, "seed": seed}
        started = time.process_time()
        exec(code, namespace)  # noqa: S102
        per_iteration.append((time.process_time() - started) / namespace["iterations"])
    return max(1000, int(seconds / min(per_iteration)))


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


def bare_pool(iterations: int, trials: int) -> dict:
    """Control: the ``trials`` runs of the bare loop in a plain 2-process pool (loky, its workers started before the
    timing; no tracking at all), timed like a mode: near the sequential grid's time / 2 on an idle 2-core machine,
    near its whole time when other work takes the second core."""
    import loky

    executor = loky.ProcessPoolExecutor(max_workers=2)
    try:
        list(executor.map(_loop, [(1000, 1)] * 2))  # the workers are up before the timing
        started = time.perf_counter()
        own = list(executor.map(_loop, [(iterations, seed + 1) for seed in range(trials)]))
        wall = time.perf_counter() - started
    finally:
        executor.shutdown(wait=True)
    return {"label": "pool", "wall": wall, "own": statistics.mean(own), "sum_own": sum(own), "overhead": None,
            "recorded": None, "n": trials}


def untracked_seconds(iterations: int, namespace: dict, repeats: int = 3) -> float:
    """The cell's own time here, untracked (median of a few): run in ``namespace`` as an untracked cell of the
    notebook would be (the shell's own names), timed right after the sequential grid in each round (the machine's
    speed moves from one minute to the next)."""
    code = compile(CELL, "<untracked>", "exec")
    times = []
    for seed in range(1, repeats + 1):
        namespace.update(iterations=iterations, seed=seed)
        started = time.perf_counter()
        exec(code, namespace)  # noqa: S102
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per trial")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of the modes, interleaved; the table gives each mode's median round")
    parser.add_argument("--modes", default=",".join(PARALLEL_MODES),
                        help=f"parallel modes to time beside the sequential grid (of {', '.join(PARALLEL_MODES)})")
    parser.add_argument("--no-control", action="store_true", help="skip the bare-pool control mode")
    args = parser.parse_args()
    chosen = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not chosen or set(chosen) - set(PARALLEL_MODES):
        parser.error(f"--modes: a comma-separated choice of {', '.join(PARALLEL_MODES)} (not {args.modes!r})")

    from IPython.core.interactiveshell import InteractiveShell

    from jupyter_tracking.parallel import EngineChoice
    from jupyter_tracking.session import Session, use_session

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    root = Path(tempfile.mkdtemp(prefix="jt-bench-sweep-"))
    try:
        os.chdir(fresh_project(root / "proj") / "notebooks")
        iterations = calibrate(args.seconds)
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
        from dask.distributed import Client, LocalCluster

        cluster_starts: list[float] = []

        def on_dask(label: str, settings: dict) -> dict:
            # The cluster is up only for its own sweep: an idle LocalCluster (scheduler in this process, two
            # worker processes) takes ~10 % of a core, which the other modes' workers would pay for.
            import dask

            began = time.perf_counter()
            with dask.config.set(settings):
                cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
            cluster_starts.append(time.perf_counter() - began)
            try:
                shell.user_ns["bench_client"] = client
                return run_mode(shell, label, grid, EngineChoice(cluster="bench_client"), iterations)
            finally:
                client.close()
                cluster.close()

        from jupyter_tracking.parallel import SWEEP_CLUSTER_CONFIG

        def sequential() -> dict:
            result = run_mode(shell, "sequential", grid, None, iterations)
            # the cell untracked, timed in the same round: what a tracked trial adds is measured against it
            result["untracked"] = untracked_seconds(iterations, shell.user_ns, repeats=2)
            return result

        modes = [("sequential", sequential),
                 ("jobs2", lambda: run_mode(shell, "jobs2", grid, EngineChoice(jobs=2), iterations)),
                 ("dask2", lambda: on_dask("dask2", {})),
                 ("dask2sweep", lambda: on_dask("dask2sweep", SWEEP_CLUSTER_CONFIG)),
                 ("pool", lambda: bare_pool(iterations, args.trials))]
        modes = [(label, run) for label, run in modes
                 if label == "sequential" or label in chosen or (label == "pool" and not args.no_control)]
        rounds: dict[str, list[dict]] = {label: [] for label, _ in modes}
        for number in range(max(1, args.repeat)):
            # Interleaved, every other round in reverse (ABC, CBA): a busy spell or a drift in the machine's
            # speed falls on every mode alike, and each round's speed-ups compare runs minutes apart at most.
            for label, run in modes if number % 2 == 0 else modes[::-1]:
                rounds[label].append(run())
        cluster_start = statistics.median(cluster_starts) if cluster_starts else None
        for label, found in rounds.items():
            for sequential, result in zip(rounds["sequential"], found):
                result["speed"] = sequential["wall"] / result["wall"]
        # each mode's median round by its speed-up over the sequential grid of the same round
        results = [sorted(found, key=lambda r: (r["speed"], -r["wall"]))[len(found) // 2]
                   for found in rounds.values()]
        results[0] = sorted(rounds["sequential"], key=lambda r: r["wall"])[len(rounds["sequential"]) // 2]
        walls = {label: [round(r["wall"], 2) for r in found] for label, found in rounds.items()}
        speeds = {label: [round(r["speed"], 2) for r in found] for label, found in rounds.items()
                  if label != "sequential"}
    finally:
        os.chdir("/")
        shutil.rmtree(root, ignore_errors=True)

    print(f"\n{args.trials}-trial grid, {args.seconds:g} s CPU a trial ({iterations} loop iterations); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; median of {max(1, args.repeat)} "
          f"interleaved round(s), each mode's speed-up against the sequential grid of its own round\n")
    print(f"{'mode':<24} {'wall':>8} {'speed-up':>9} {'trial own':>10} {'workers busy':>13} {'overhead/trial':>15} "
          f"{'of it recording':>16}  target")
    names = {"sequential": "sequential grid", "jobs2": "--jobs 2 (loky)", "dask2": "Dask, default settings",
             "dask2sweep": "Dask, sweep settings", "pool": "bare loop, plain pool"}
    for result in results:
        speed = result["speed"]
        if result["label"] == "sequential":  # the cell alone, untracked, against a tracked trial's wall time
            own = result["untracked"]
            overhead, recording = f"{(result['wall'] / result['n'] - own) * 1000:.0f} ms", "-"
            target = "-"
        elif result["label"] == "pool":  # the control: no tracking, workers started before the timing
            own, overhead, recording, target = result["own"], "-", "-", "- (control: untracked)"
        else:
            own = result["own"]
            overhead, recording = f"{result['overhead'] * 1000:.0f} ms", f"{result['recorded'] * 1000:.0f} ms"
            target = "ok (>= 1.7x)" if speed >= 1.7 else f"MISSED ({speed:.3f}x < 1.7x)"
        workers = 1 if result["label"] == "sequential" else 2
        busy = result["sum_own"] / (workers * result["wall"])  # the trials' own time over the workers' wall time
        print(f"{names[result['label']]:<24} {result['wall']:>7.2f}s {speed:>8.2f}x {own:>9.3f}s {busy:>12.0%} "
              f"{overhead:>15} {recording:>16}  {target}")
    if args.repeat > 1:
        print("\nwall time of each round: " + "; ".join(f"{k} {v}" for k, v in walls.items()))
        print("speed-up of each round: " + "; ".join(f"{k} {v}" for k, v in speeds.items()))
    if cluster_start is not None:
        print(f"\nDask cluster start (before its sweep, not in its wall time; median): {cluster_start:.2f} s")
    for label, found in rounds.items():
        if label not in ("sequential", "pool") and "pool" in rounds:
            against = [r["wall"] / pool["wall"] for r, pool in zip(found, rounds["pool"])]
            print(f"{names[label]}: wall {statistics.median(against):.2f}x the control's of its round (median; each "
                  f"round {[round(x, 2) for x in against]})")
    print("overhead/trial: from sending a trial to its child run written, less the trial's own time (parallel); "
          "a tracked trial's wall time less the untracked cell (sequential)")
    print("workers busy: the trials' own time over (workers x wall time): what the engine loses to starting, sending, "
          "waiting and the last trial alone; the rest of the way to 2x is the trials running slower beside each "
          "other than alone (trial own)")


if __name__ == "__main__":
    main()
