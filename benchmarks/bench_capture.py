"""Capture and redaction benchmark: large values, many names, and our credential rules against detect-secrets.

Two tables.

1. What a tracked cell costs with a 10 MB string, a 1 MB DNA string and 2,000 bound names, next to the same cell
   untracked, in a real ``InteractiveShell`` with a fresh embedded SQLite store (migrated before timing).
   "capture" is the part this module owns: analysing the cell, classifying its values and redacting params and
   source (``Capture.before/after`` + ``redact_params`` + ``redact_source``), timed on its own; "tracked" is the
   whole ``%%track`` cell (run created, params written, card shown). Target: capture < 0.5 s.
2. The credential corpus (``tests/secrets_corpus.py``) through our rules and through detect-secrets 1.5
   (Yelp's scanner: every default plugin; and without its two high-entropy plugins): credentials caught,
   look-alikes flagged, and the time to scan 10 MB, 1 MB DNA and the 20,000-character string on which the
   former URL pattern backtracked (3.6 s).

Usage: ``.venv/bin/python benchmarks/bench_capture.py`` (detect-secrets comes with the ``test`` extra).
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPEATS = 3
DETECT_SECRETS_LIMIT = 30.0  # seconds a detect-secrets scan may take before it is reported as "> limit"
CASES = {
    "10 MB string read": ("big = 'x' * 10_000_000 + 'y'", "n = len(big)\nlr = 0.1\n"),
    "1 MB DNA string read": (
        "import random as _r; _r.seed(1); dna = ''.join(_r.choice('ACGT') for _ in range(1_000_000))",
        "gc_content = (dna.count('G') + dna.count('C')) / len(dna)\n",
    ),
    "2,000 names bound": ("", "".join(f"p{i} = {i * 0.001!r}\n" for i in range(2000))),
    "10,000 metrics bound": ("scale = 0.5", "".join(f"m{i} = {i} * scale\n" for i in range(10_000))),
}
TARGETS = {"10,000 metrics bound": 1.0}  # capture target in seconds where it is not 0.5 s (issue 13)


def _timed(function, *args):
    began = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - began, result


def capture_table() -> list[tuple[str, float, float, float]]:
    from IPython.core.interactiveshell import InteractiveShell

    from jupyter_tracking import store as store_module
    from jupyter_tracking.capture import Capture, analyze
    from jupyter_tracking.secret_filter import redact_params, redact_source

    folder = Path(tempfile.mkdtemp(prefix="jt-bench-capture-"))
    (folder / "pyproject.toml").write_text("[project]\nname='bench'\n")
    original = os.getcwd()
    os.chdir(folder)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["JUPYTER_TRACKING_SPOOL_DIR"] = str(folder / "spool")
    shell = InteractiveShell.instance()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        shell.run_line_magic("load_ext", "jupyter_tracking")
        shell.run_cell("%%track --no-live warmup\nwarm = 1\n")  # store created and migrated: not timed
    rows = []
    for label, (setup, cell) in CASES.items():
        if setup:
            shell.run_cell(setup)
        untracked = statistics.median(_timed(shell.run_cell, cell)[0] for _ in range(REPEATS))
        tracked_times = []
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            for _ in range(REPEATS + 1):  # the first execution of a cell also loads the card's modules
                seconds, result = _timed(shell.run_cell, f"%%track --no-live\n{cell}")
                assert result.success, result.error_in_exec
                tracked_times.append(seconds)
        tracked = statistics.median(tracked_times[1:])

        def capture_only() -> None:
            capture = Capture(analyze(cell))
            capture.before(shell.user_ns)
            capture.after(shell.user_ns)
            redact_params(capture.result.params)
            redact_source(cell)

        capture_seconds = statistics.median(_timed(capture_only)[0] for _ in range(REPEATS))
        params = Capture(analyze(cell))
        params.before(shell.user_ns)
        params.after(shell.user_ns)

        def plain_mlflow() -> None:
            import mlflow

            with mlflow.start_run(run_name="plain"):
                mlflow.log_params({k: v[:6000] for k, v in params.result.params.items()})

        plain = statistics.median(_timed(plain_mlflow)[0] for _ in range(REPEATS))
        rows.append((label, untracked, tracked, capture_seconds, plain))
    store_module.settings.uri = None
    os.chdir(original)
    shutil.rmtree(folder, ignore_errors=True)
    return rows


# ------------------------------------------------------------------------------------------------ detectors
def _corpus_units():
    from tests import secrets_corpus as corpus

    code = [corpus.tracked_cell_source(), corpus.FAILING_CELL, corpus.SWEEP_CELL, corpus.SPOOL_CELL]
    text = [corpus.TAG_ARGUMENTS, corpus.NOTE, corpus.RUN_NAME, corpus.API_NOTE, repr(corpus.API_TAGS),
            corpus.SWEEP_LINE, corpus.SPOOL_LINE]
    lookalike_lines = [f"{name} = {value!r}" for name, value in corpus.LOOKALIKES.items()]
    return corpus, code, text, lookalike_lines


def ours_scores():
    from jupyter_tracking.secret_filter import redact_source, redact_text

    corpus, code, text, lookalikes = _corpus_units()
    survived = "\n".join([redact_source(unit) for unit in code] + [redact_text(unit) for unit in text])
    canaries = corpus.credential_canaries()
    caught = sum(canary not in survived for canary in canaries)
    flagged = sum(redact_source(line) != line for line in lookalikes)
    return caught, len(canaries), flagged, len(lookalikes)


def detect_secrets_scores(without_entropy: bool):
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings, transient_settings

    corpus, code, text, lookalikes = _corpus_units()
    lines = [line for unit in code + text for line in unit.splitlines()]
    plugins = None
    if without_entropy:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

        plugins = [{"name": cls.__name__} for cls in get_mapping_from_secret_type_to_class().values()
                   if "Entropy" not in cls.__name__]
    context = transient_settings({"plugins_used": plugins}) if plugins else default_settings()
    with context:
        found = [(line, [s.secret_value or "" for s in scan_line(line)]) for line in lines]
        canaries = corpus.credential_canaries()
        caught = 0
        for canary in canaries:
            hit = any(canary in line and any(v and (canary in v or (len(v) >= 6 and v in canary)) for v in values)
                      for line, values in found)
            caught += hit
        flagged = sum(bool(list(scan_line(line))) for line in lookalikes)
    return caught, len(canaries), flagged, len(lookalikes)


def scan_times():
    random.seed(2)
    big = "x" * 10_000_000
    dna = "".join(random.choice("ACGT") for _ in range(1_000_000))
    url_case = "a://" + "b" * 20_000
    return {"10 MB string": big, "1 MB DNA string": dna, "20k-char URL-like string": url_case}


def time_ours(samples):
    from jupyter_tracking.secret_filter import redact_text

    return {label: _timed(redact_text, value)[0] for label, value in samples.items()}


def time_detect_secrets(samples):
    """Each scan in a child process, stopped after DETECT_SECRETS_LIMIT seconds (its patterns can backtrack)."""
    times = {}
    for label in samples:
        script = (
            "import sys, time; sys.path.insert(0, %r); import bench_capture as b\n"
            "from detect_secrets.core.scan import scan_line\nfrom detect_secrets.settings import default_settings\n"
            "value = b.scan_times()[%r]\nwith default_settings():\n"
            "    began = time.perf_counter(); list(scan_line(value)); print(time.perf_counter() - began)\n"
        ) % (str(Path(__file__).parent), label)
        try:
            done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                  timeout=DETECT_SECRETS_LIMIT + 10)
            times[label] = float(done.stdout.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            times[label] = None
    return times


def time_former_url_pattern(samples):
    """The URL pattern this project used before (kept here only to show the quadratic case)."""
    former = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/\s:@'\"]*):(?P<password>[^/\s@'\"]+)@")
    value = samples["20k-char URL-like string"]
    return _timed(lambda v: former.search(v), value)[0]


def main() -> None:
    print("capture of one tracked cell (seconds)")
    print(f"{'case':<24}{'untracked':>11}{'tracked':>10}{'capture':>10}{'plain MLflow':>14}  target capture < 0.5 s"
          " (10,000 metrics: < 1 s)")
    missed = []
    for label, untracked, tracked, capture, plain in capture_table():
        ok = capture < TARGETS.get(label, 0.5)
        missed += [] if ok else [label]
        verdict = "ok" if ok else "MISSED"
        print(f"{label:<24}{untracked:>11.3f}{tracked:>10.3f}{capture:>10.3f}{plain:>14.3f}  {verdict}")
    print("(plain MLflow: start_run + log_params of the same params + end_run, the cell itself not included)")
    print()
    print("credential corpus: caught / total, look-alikes flagged / total")
    ours = ours_scores()
    print(f"{'jupyter_tracking rules':<34}{ours[0]:>4}/{ours[1]:<5}{ours[2]:>4}/{ours[3]}")
    try:
        full = detect_secrets_scores(without_entropy=False)
        lean = detect_secrets_scores(without_entropy=True)
    except ImportError:
        print("detect-secrets is not installed (pip install detect-secrets): comparison skipped")
        full = lean = None
    if full:
        print(f"{'detect-secrets, all plugins':<34}{full[0]:>4}/{full[1]:<5}{full[2]:>4}/{full[3]}")
        print(f"{'detect-secrets, no entropy plugins':<34}{lean[0]:>4}/{lean[1]:<5}{lean[2]:>4}/{lean[3]}")
    print()
    samples = scan_times()
    ours_t = time_ours(samples)
    theirs = time_detect_secrets(samples) if full else {}
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'scan time (s)':<28}{'ours':>8}{'detect-secrets':>16}")
    for label in samples:
        value = theirs.get(label, "-")
        if isinstance(value, float):
            other = f"{value:>16.3f}"
        else:
            other = f"{'> %.0f' % DETECT_SECRETS_LIMIT if value is None else '-':>16}"
        print(f"{label:<28}{ours_t[label]:>8.3f}{other}")
    print(f"{'former URL pattern, 20k chars':<28}{time_former_url_pattern(samples):>8.3f}")
    print()
    print("missed targets: " + (", ".join(missed) if missed else "none"))


if __name__ == "__main__":
    main()
