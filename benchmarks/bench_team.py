"""Team stack benchmark: start-up of the stack, and a 50 MB model through ``mlflow server`` to S3 and back.

Starts a ``jupyter_tracking.team.TeamStack`` from nothing in a temporary folder (PostgreSQL, SeaweedFS S3,
``mlflow server --app-name basic-auth``), times its first start, a stop, and a second start on the same data.
Then, in a real IPython shell whose runs go to that server with the user's login, in the same experiment and
interleaved (median of ``--repeats``):

- upload: a ``%%track --artifacts model`` cell whose ``model`` is an object that pickles to 50 MB (the cell binds
  the prepared object: what is timed is the run, the pickling and the upload through the server to S3), against
  the same work by hand with plain MLflow: ``start_run``, ``pickle.dump`` to a file, ``mlflow.log_artifact``,
  ``end_run``;
- load: ``jt.load(run_id, "model")`` against ``MlflowClient.download_artifacts`` of the same file plus
  ``pickle.load``.

Usage: ``.venv/bin/python benchmarks/bench_team.py [--repeats 3] [--mb 50]`` (a report, exit status 0).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from run import Row, print_table, seconds  # noqa: E402

from jupyter_tracking.team import TeamStack  # noqa: E402

EXPERIMENT = "bench-team"


class RequestCounter:
    """Counts the HTTP requests this process makes (all of MLflow's go through ``requests.Session.request``)."""

    def __init__(self) -> None:
        import requests

        self.count = 0
        original = requests.Session.request

        def counted(session, method, url, *args, **kwargs):
            self.count += 1
            return original(session, method, url, *args, **kwargs)

        requests.Session.request = counted

    def since(self, start: int) -> int:
        return self.count - start


def start_up(folder: Path) -> tuple[TeamStack, list[Row]]:
    began = time.perf_counter()
    stack = TeamStack(folder).start()
    first = time.perf_counter() - began
    began = time.perf_counter()
    stack.stop()
    stopped = time.perf_counter() - began
    began = time.perf_counter()
    stack = TeamStack(folder).start()
    again = time.perf_counter() - began
    rows = [
        Row("team stack: first start (creates everything)", seconds(first), "-", "-", None,
            "PostgreSQL initdb, SeaweedFS, bucket, mlflow server, accounts"),
        Row("team stack: stop", seconds(stopped), "-", "-", None),
        Row("team stack: start again on the same data", seconds(again), "-", "-", None),
    ]
    return stack, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mb", type=int, default=50)
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="jt-bench-team-"))
    stack = None
    try:
        stack, rows = start_up(folder)
        os.environ.update(stack.notebook_env())
        os.environ["JUPYTER_TRACKING_SPOOL_DIR"] = str(folder / "spool")
        project = folder / "project"
        project.mkdir()
        (project / "pyproject.toml").write_text("")
        os.chdir(project)

        import numpy as np
        from IPython.core.interactiveshell import InteractiveShell

        import mlflow
        from mlflow import MlflowClient

        model = {"kind": "linear", "coef": np.random.default_rng(0).random(args.mb * 2**20 // 8)}
        pickled_mb = len(pickle.dumps(model)) / 2**20
        ip = InteractiveShell.instance()
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            ip.run_line_magic("load_ext", "jupyter_tracking")
            ip.run_line_magic("track", f"config --experiment {EXPERIMENT}")
        ip.user_ns["prepared"] = model
        mlflow.set_tracking_uri(stack.url)
        mlflow.set_experiment(EXPERIMENT)
        client = MlflowClient(stack.url)
        work = folder / "plain"
        work.mkdir()

        ours_up, plain_up, ours_load, plain_load = [], [], [], []
        counter = RequestCounter()
        requests_made: dict[str, int] = {}
        for repeat in range(args.repeats):
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                began, start = time.perf_counter(), counter.count
                result = ip.run_cell(f"%%track upload-{repeat} --artifacts model\nmodel = prepared\n")
                ours_up.append(time.perf_counter() - began)
                requests_made["ours_up"] = counter.since(start)
            if not result.success or "spool" in out.getvalue():
                raise RuntimeError(f"the tracked cell failed:\n{out.getvalue()[-2000:]}")
            from jupyter_tracking import cell

            ours_id = cell.last_summary.run_id

            began, start = time.perf_counter(), counter.count
            with contextlib.redirect_stdout(out), mlflow.start_run(run_name=f"plain-{repeat}") as run:
                path = work / "model.pkl"
                with open(path, "wb") as handle:
                    pickle.dump(model, handle)
                mlflow.log_artifact(str(path), "artifacts")
            plain_up.append(time.perf_counter() - began)
            requests_made["plain_up"] = counter.since(start)
            plain_id = run.info.run_id

            ip.user_ns["_bench_id"] = ours_id
            began, start = time.perf_counter(), counter.count
            ip.run_cell("import jupyter_tracking as jt\n_loaded = jt.load(_bench_id, 'model')\n")
            ours_load.append(time.perf_counter() - began)
            requests_made["ours_load"] = counter.since(start)
            assert ip.user_ns["_loaded"]["coef"].shape == model["coef"].shape

            began, start = time.perf_counter(), counter.count
            with tempfile.TemporaryDirectory() as tmp:
                with open(client.download_artifacts(plain_id, "artifacts/model.pkl", tmp), "rb") as handle:
                    loaded = pickle.load(handle)
            plain_load.append(time.perf_counter() - began)
            requests_made["plain_load"] = counter.since(start)
            assert loaded["coef"].shape == model["coef"].shape

        median = statistics.median
        rows += [
            Row(f"upload a {pickled_mb:.0f} MB model through the server to S3 (median of {args.repeats})",
                seconds(median(ours_up)), seconds(median(plain_up)), "<= 1.2x plain",
                median(ours_up) <= 1.2 * median(plain_up),
                f"ours: whole %%track --artifacts cell, {requests_made['ours_up']} MLflow requests (+ /health "
                f"checks); plain: start_run + pickle.dump + log_artifact + end_run, {requests_made['plain_up']}"),
            Row(f"load it back from S3 through the server (median of {args.repeats})",
                seconds(median(ours_load)), seconds(median(plain_load)), "<= 1.2x plain",
                median(ours_load) <= 1.2 * median(plain_load),
                f"ours: jt.load(run_id, 'model'), {requests_made['ours_load']} MLflow requests; plain: "
                f"download_artifacts + pickle.load, {requests_made['plain_load']} requests"),
        ]
    finally:
        if stack is not None:
            stack.stop()
            stack.remove_data()
        os.chdir("/")
        shutil.rmtree(folder, ignore_errors=True)

    print_table(rows)
    for row in rows:
        if row.note:
            print(f"  {row.measurement}: {row.note}")
    print(f"\nload average {os.getloadavg()[0]:.1f}")
    missed = [row.measurement for row in rows if row.ok is False]
    if missed:
        print("missed: " + "; ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
