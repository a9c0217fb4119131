"""The comparison panel over many runs against plain ``mlflow.search_runs`` for the same query, in one process.

    .venv/bin/python benchmarks/bench_runs.py [--runs 10000] [--repeat 3]

Builds a fresh SQLite store with N runs x (10 params + 5 metrics + a few tags); the first run is made with
MlflowClient and the rest are bulk-inserted as copies of its rows (the same tables and conventions MLflow
writes, only faster than 10,000 fsync-bound requests). Then, for each query, alternately times

* ``mlflow.search_runs(...)`` (a pandas frame of every matching run), and
* ``jt.runs(...)`` plus the panel's widget with its first page ready to show (what ``%runs`` displays),

and prints the medians and their ratio (target: panel <= 1.2x). The one-time costs of a session's first
panel (importing plotly/anywidget, creating the first widgets) are timed separately.

Where the panel wins: it pauses Python's cyclic garbage collector while thousands of Run objects are built
(``queries.gc_paused``), and sorts in pandas instead of asking SQLite to order by a metric.
"""

from __future__ import annotations

import argparse
import os
import random
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
QUERIES = [
    ("all runs, newest first", None, None),
    ("filter min_leaf = 3 and test_acc > 0.44", "params.min_leaf = '3' and metrics.test_acc > 0.44", None),
    ("all runs sorted by val_loss", None, "metrics.val_loss"),
]


def build_store(folder: Path, count: int) -> tuple[str, str]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("bench", artifact_location=str(folder / "artifacts"))
    template = client.create_run(experiment_id, run_name="template", tags={"jupyter_tracking.cell_hash": "abc"})
    client.log_param(template.info.run_id, "max_depth", "1")
    client.log_metric(template.info.run_id, "val_loss", 1.0)
    client.set_terminated(template.info.run_id)
    rng = random.Random(0)
    con = sqlite3.connect(folder / "mlflow.db")
    con.execute("PRAGMA synchronous = OFF")
    (row,) = con.execute("SELECT * FROM runs WHERE run_uuid = ?", (template.info.run_id,)).fetchall()
    columns = [c[1] for c in con.execute("PRAGMA table_info(runs)")]
    base = dict(zip(columns, row))
    runs, params, metrics, latest, tags = [], [], [], [], []
    start = base["start_time"]
    for i in range(count - 1):
        run_id = uuid.uuid4().hex
        record = dict(base, run_uuid=run_id, name=f"run-{i}", start_time=start + i * 1000,
                      end_time=start + i * 1000 + rng.randint(100, 60_000),
                      artifact_uri=base["artifact_uri"].replace(template.info.run_id, run_id))
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
    con.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
                    metrics)
    con.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                    "VALUES (?, ?, ?, ?, ?, ?)", latest)
    con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tags)
    con.commit()
    con.close()
    return uri, experiment_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="jt-bench-runs-"))
    t0 = time.perf_counter()
    uri, experiment_id = build_store(folder, args.runs)
    print(f"store: {args.runs} runs x ({len(PARAMS)} params + {len(METRICS)} metrics) built in "
          f"{time.perf_counter() - t0:.1f} s at {folder}")
    os.environ["MLFLOW_TRACKING_URI"] = uri

    import mlflow

    import jupyter_tracking as jt
    from jupyter_tracking.panels import compare

    mlflow.set_tracking_uri(uri)
    t0 = time.perf_counter()
    import anywidget  # noqa: F401
    import plotly.graph_objects as go

    go.FigureWidget  # noqa: B018 - plotly's widget module imports nbformat -> jsonschema (grammar compilation)
    print(f"one-time import of plotly's FigureWidget + anywidget (first panel of a session only): "
          f"{time.perf_counter() - t0:.2f} s")
    # Warm both paths once (SQLAlchemy engine, MLflow client, pandas; the first widgets of the session).
    mlflow.search_runs(experiment_ids=[experiment_id], max_results=10)
    t0 = time.perf_counter()
    jt.runs("bench", max_results=10)._repr_mimebundle_()
    print(f"first panel of a session, 10 runs (widget classes, plotly's widget bundle read once): "
          f"{time.perf_counter() - t0:.2f} s")

    print()
    header = f"{'query':<42} {'rows':>6} {'search_runs':>12} {'panel 1st page':>15} {'ratio':>6} {'page rows':>10}"
    print(header)
    print("-" * len(header))
    for label, filter_string, sort in QUERIES:
        plain, panel_times = [], []
        rows = page_rows = 0
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            frame = mlflow.search_runs(experiment_ids=[experiment_id], filter_string=filter_string or "",
                                       order_by=[f"{sort} ASC"] if sort else None)
            plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            panel = jt.runs("bench", filter=filter_string, sort=sort)
            bundle = panel._repr_mimebundle_()
            panel_times.append(time.perf_counter() - t0)
            assert "application/vnd.jupyter.widget-view+json" in bundle
            rows, page_rows = len(panel.df), len(panel.table.rows)
            assert rows == len(frame), (rows, len(frame))
        a, b = statistics.median(plain), statistics.median(panel_times)
        print(f"{label:<42} {rows:>6} {a:>11.2f}s {b:>14.2f}s {b / a:>6.2f} {page_rows:>10}"
              f"   (best of {args.repeat}: {min(plain):.2f}s vs {min(panel_times):.2f}s)")
    print()
    print(f"page size {compare.PAGE_SIZE}: the browser receives only the visible page's rows; medians of "
          f"{args.repeat}, same process, same store.")
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
