"""The credential corpus through real tracked cells: nothing of it in any byte written, no look-alike withheld.

One big ``%%track`` cell (named and valued credentials, nested configs, source-only literals, ``-t`` tags,
``--note``, a run name), a failing cell (traceback and error tag), ``jt.track(tags=..., note=...)``, a
``--grid`` sweep (parent source, tags, note) and a run spooled for an unreachable store. Then the raw bytes
of ``mlflow.db``, every artifact file, every spool file, and everything printed or displayed are searched.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from jupyter_tracking.capture import param_text
from jupyter_tracking.secret_filter import forget_remembered_secrets
from tests import secrets_corpus as corpus
from tests.stores import runs_of, store_client

EXPERIMENT = "secrets"


def _all_bytes(*folders: Path) -> bytes:
    chunks = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                chunks.append(path.read_bytes())
    return b"\n".join(chunks)


def test_corpus_size():
    assert len(corpus.credential_canaries()) >= 100
    assert len(set(corpus.credential_canaries())) == len(corpus.credential_canaries())
    assert len(corpus.LOOKALIKES) >= 50


def test_no_credential_anywhere_and_no_lookalike_withheld(shell, project, capsys, monkeypatch):
    forget_remembered_secrets()
    bundles: list = []
    monkeypatch.setattr(shell.display_pub, "publish", lambda data, *args, **kwargs: bundles.append(data))

    line = f"%%track {corpus.RUN_NAME} {corpus.TAG_ARGUMENTS} {corpus.LOOKALIKE_TAGS} --note '{corpus.NOTE}'"
    assert shell.run_cell(line + "\n" + corpus.tracked_cell_source()).success
    before_failure = capsys.readouterr()
    assert not shell.run_cell("%%track\n" + corpus.FAILING_CELL).success
    # IPython shows the user's own exception as raised (its own output, not ours): keep only our lines.
    failure = capsys.readouterr()
    ours = [line for line in (failure.out + failure.err).splitlines() if line.startswith("jupyter_tracking")]
    api_cell = (f"import jupyter_tracking as jt\nwith jt.track(tags={corpus.API_TAGS!r}, note={corpus.API_NOTE!r}):\n"
                "    lr_api = 0.3\n")
    assert shell.run_cell(api_cell).success
    assert shell.run_cell(corpus.SWEEP_LINE + "\n" + corpus.SWEEP_CELL).success
    shell.run_line_magic("track", f"config --uri sqlite:///{project / 'gone' / 'x.db'}")
    assert shell.run_cell(corpus.SPOOL_LINE + "\n" + corpus.SPOOL_CELL).success
    shell.run_line_magic("track", "config --uri ''")
    captured = capsys.readouterr()

    import os

    spool = Path(os.environ["JUPYTER_TRACKING_SPOOL_DIR"])
    assert list(spool.glob("*.jsonl")), "the unreachable store's run was not spooled"
    written = _all_bytes(project, spool)
    outputs = "\n".join([before_failure.out, before_failure.err, *ours, captured.out, captured.err,
                         json.dumps(bundles, default=str)]).encode()
    assert (project / "mlflow.db").exists() and b"max_new_tokens = 512" in written  # the source was stored
    assert corpus.KEPT_SOURCE_LINE.encode() in written

    leaks = [canary for canary in corpus.credential_canaries() if canary.encode() in written]
    shown = [canary for canary in corpus.credential_canaries() if canary.encode() in outputs]
    assert leaks == [] and shown == []

    runs = runs_of(project, EXPERIMENT)
    [main] = [run for run in runs if "max_new_tokens" in run.data.params and "lr" not in run.data.params]
    params = main.data.params
    stored = Path(store_client(project).download_artifacts(main.info.run_id, "cell/cell.py")).read_text()
    ast.parse(stored)  # still the same runnable code, with its credentials blanked
    changed = {name: (params.get(name), param_text(value)) for name, value in corpus.LOOKALIKES.items()
               if params.get(name) != param_text(value)}
    assert changed == {}
    withheld = set(main.data.tags["jupyter_tracking.withheld"].split(", "))
    assert withheld.isdisjoint(corpus.LOOKALIKES)
    assert {name for name, _ in corpus.NAMED} <= withheld and set(corpus.VALUE_NAMES) <= withheld
    assert {"webhook", "api_token"} <= withheld  # the -t tags with credential names
    assert main.data.tags["max_new_tokens"] == "512" and main.data.tags["family"] == "sk-learn-random-forest"
    assert main.data.params["config.lr"] == "0.1" and main.data.params["config.db.host"] == "localhost"
    failed = [run for run in runs if run.info.status == "FAILED"]
    assert failed and "login failed for ***" in failed[0].data.tags["jupyter_tracking.error"]
