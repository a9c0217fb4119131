"""One tracked execution: capture before, run, capture after, record, show the run card.

``TrackedExecution`` is shared by the ``%%track`` magic (``TrackedCell``), the Python API (``with jt.track():``)
and sweeps. It never lets tracking break the user's code: the user's exception is re-raised unchanged, the run
is always closed (FINISHED / FAILED / KILLED), and problems of our own become a line. Compiling and running the
cell like IPython is in ``cell_code.py``; the cell's own MLflow calls in ``mlflow_hooks.py``; the card's
comparison in ``panels/comparison.py``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import context as context_module
from . import preload
from . import store as store_module
from .bound_names import as_names
from .capture import Capture, CaptureRules, analyze, dataframe_digest
from .recorder import FAILED, FINISHED, KILLED, RUNNING, RunRecorder, RunSummary
from .secret_filter import is_secret_name, redact_text
from .session import Session, current_session

SOURCE_ARTIFACT_DIR = "cell"
PICKLE_ARTIFACT_DIR = "artifacts"


@dataclass
class TrackOptions:
    """Everything ``%%track`` / ``jt.track()`` accept (DESIGN.md, "What a user types")."""

    name: str | None = None
    experiment: str | None = None
    params: set[str] = field(default_factory=set)
    metrics: set[str] = field(default_factory=set)
    exclude: set[str] = field(default_factory=set)
    tags: dict[str, str] = field(default_factory=dict)
    note: str | None = None
    artifacts: list[str] = field(default_factory=list)
    autolog: bool = False
    live: bool = True
    steps: int | None = None
    system: bool = False
    card: bool = True


def _notify(message: str) -> None:
    print(f"jupyter_tracking: {message}", file=sys.stderr)


class TrackedExecution:
    """The tracking around one execution of some code in a namespace."""

    def __init__(
        self,
        source: str,
        options: TrackOptions,
        *,
        namespace: dict[str, Any],
        bindings: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        extra_tags: dict[str, str] | None = None,
        analysis_source: str | None = None,
        explicit_params: dict[str, Any] | None = None,
        session: Session | None = None,
        end_later: bool = False,
    ) -> None:
        self.session = session or current_session()
        self.end_later = end_later  # the run's end may be written after the cell returns (run_ends.py)
        self.source = source
        self.explicit_params = dict(explicit_params or {})
        self.options = options
        self.namespace = namespace
        self.bindings = as_names(bindings or {})  # a grid's or a stored run's values
        self.parent_run_id = parent_run_id
        self.extra_tags = dict(extra_tags or {})
        self.recorder: RunRecorder | None = None
        self.summary: RunSummary | None = None
        self._analysis_source = analysis_source if analysis_source is not None else source
        self._capture: Capture | None = None
        self._git: context_module.GitProbe | None = None
        self._hooks: Any = None
        self._previous_active: tuple[Any, int | None] = (None, None)
        self._panel: Any = None  # the live panel, announced at the start of begin()

    # ------------------------------------------------------------------ begin
    def begin(self) -> RunRecorder:
        """Analyse, take the inputs, open the run. Raises SyntaxError like the code would."""
        self._panel = _announce_live_panel(self.options)  # its placeholder first: nothing else is on screen yet
        preload.wait()  # MLflow and the panels' modules, imported in a thread (an interrupt cannot cut it)
        analysis = analyze(self._analysis_source)
        options = self.options
        if self.bindings:
            self.namespace.update(self.bindings)
            analysis.read_first |= set(self.bindings)
        rules = CaptureRules(options.params, options.metrics, options.exclude)
        self._capture = Capture(analysis, rules)
        try:
            self._capture.remember_bound_values(self.namespace)
            self._capture.before(self.namespace)
            for name, value in self.explicit_params.items():
                self._capture.add_explicit_param(name, value)
        except Exception as error:  # noqa: BLE001 - tracking never breaks the cell
            _notify(f"could not read the cell's inputs ({type(error).__name__}: {error})")
        session = self.session
        location = store_module.resolve_store(session=session)
        experiment = options.experiment or store_module.default_experiment_name(session)
        notebook = context_module.notebook_path()
        self._git = context_module.GitProbe(notebook.parent if notebook else Path.cwd())
        tags = context_tags(self.source, options.name, location, notebook, session)
        tags.update({**self.options.tags, **self.extra_tags})  # the recorder withholds credential-like tags
        recorder = RunRecorder(
            location, experiment, session=session, run_name=options.name, tags=tags,
            description=options.note, parent_run_id=self.parent_run_id, total_steps=options.steps,
            notify=_notify,
        )
        recorder.end_later = self.end_later
        recorder.cell_logged = options.autolog  # autolog writes into the run: its end is written at once
        self.recorder = recorder
        try:
            from .panels.live import observer_factory

            live_panel = observer_factory(recorder, options, self._panel)
        except Exception as error:  # noqa: BLE001
            _notify(f"live panel not shown ({type(error).__name__}: {error})")
            live_panel = None
        if live_panel is not None:
            recorder.add_observer(live_panel)
        for observer in _observer_factories:
            try:
                attached = observer(recorder, options)
            except Exception as error:  # noqa: BLE001
                _notify(f"panel not shown ({type(error).__name__}: {error})")
                continue
            if attached is not None:
                recorder.add_observer(attached)
        recorder.start()
        from .threads import mark_threads

        mark_threads()
        self._previous_active = (session.active_recorder, session.active_thread)
        session.active_recorder, session.active_thread = recorder, threading.get_ident()
        if "mlflow" in sys.modules and recorder.run_id is not None:
            from .mlflow_hooks import CellMlflowHooks

            self._hooks = CellMlflowHooks(recorder)
            self._hooks.install()
            if options.autolog:
                # DataFrames the cell reads are its datasets, named after their variables: autolog's own
                # `dataset` input would list the same data a second time.
                reads_frames = self._capture is not None and bool(self._capture.result.datasets)
                _set_autolog(True, recorder, log_datasets=not reads_frames)
        return recorder

    def begin_or_abort(self) -> RunRecorder:
        """``begin()``, closing the run (KILLED/FAILED, no card) if it is interrupted or fails half-way."""
        try:
            return self.begin()
        except BaseException as error:
            self.abort(error)
            raise

    def abort(self, error: BaseException) -> None:
        if self._panel is not None:
            self._panel.abandon()  # no run to draw: the placeholder goes
        recorder = self.recorder
        if recorder is None:
            return
        if self.session.active_recorder is recorder:
            self.session.active_recorder, self.session.active_thread = self._previous_active
        status = KILLED if isinstance(error, KeyboardInterrupt) else FAILED
        if self._hooks is not None:
            self._hooks.uninstall(status)
        if recorder.status == RUNNING:
            recorder.abort(status)

    # ------------------------------------------------------------------ end
    def end(self, status: str, error: BaseException | None = None, last_value: Any = None) -> RunSummary | None:
        """Capture the results, write and close the run, show the card. Never raises."""
        if self._panel is not None:
            self._panel.code_finished()
        recorder = self.recorder
        if recorder is None:
            return None
        session = self.session
        session.active_recorder, session.active_thread = self._previous_active
        try:
            if self._hooks is not None:
                self._hooks.uninstall(status)
                if self.options.autolog:
                    _set_autolog(False, recorder)
            self._record_results(recorder, status, error, last_value)
        except Exception as failure:  # noqa: BLE001
            recorder.notice(f"part of the run was not recorded ({type(failure).__name__}: {failure})")
        self.summary = recorder.finish(status)
        session.last_summary = self.summary
        if not self.summary.spooled:
            deliver_spooled_runs(recorder.location, session)
        if self.options.card:
            try:
                from .panels.comparison import show_card

                show_card(self.summary, session)
            except Exception as failure:  # noqa: BLE001
                _notify(f"run card not shown ({type(failure).__name__}: {failure})")
        return self.summary

    def _record_results(self, recorder: RunRecorder, status: str, error: BaseException | None, last_value: Any) -> None:
        logged = recorder.drain_now()
        capture = self._capture
        if capture is not None:
            stale = capture.stale_names(self.namespace) if status != FINISHED else set()
            shipped = set(self.options.artifacts)  # `--artifacts` names go to the run as files, not metrics
            capture.after(self.namespace, last_value if status == FINISHED else None, logged_keys=logged,
                          skip=stale | shipped)
            result = capture.result
            recorder.add_params(result.params)
            recorder.add_metrics(result.metrics)
            recorder.add_series(result.series)
            for note in result.notes:
                recorder.notice(note)
            digests: set[str] = set()
            for name, frame in result.datasets.items():
                try:
                    from .internals import dataset_entity

                    digest = dataframe_digest(frame)
                    if digest in digests:
                        continue  # the same data under a second name: one input per distinct digest
                    digests.add(digest)
                    recorder.add_dataset(dataset_entity(name, frame, digest))
                except Exception as failure:  # noqa: BLE001
                    _notify(f"dataset `{name}` not recorded ({type(failure).__name__}: {failure})")
            if result.withheld:
                recorder.withheld |= result.withheld
        for name in self.options.artifacts:
            self._pickle_artifact(recorder, name)
        if recorder.withheld:
            recorder.set_tags({"jupyter_tracking.withheld": ", ".join(sorted(recorder.withheld))})
            recorder.notice(
                f"not logged because they look like credentials: {', '.join(sorted(recorder.withheld))}",
                key="withheld",
            )
        recorder.add_text_artifact(self.source, SOURCE_ARTIFACT_DIR, "cell.py")  # it redacts what it writes
        if error is not None and not (isinstance(error, SystemExit) and status == FINISHED):
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            recorder.add_text_artifact(redact_text(text), "", "traceback.txt")
            recorder.set_tags({"jupyter_tracking.error": f"{type(error).__name__}: {redact_text(str(error))[:500]}"})
        recorder.set_tags(git_tags(self._git.result() if self._git is not None else None))

    def _pickle_artifact(self, recorder: RunRecorder, name: str) -> None:
        if name not in self.namespace:
            recorder.notice(f"--artifacts: `{name}` is not defined after the cell; not logged", key=f"art:{name}")
            return
        if is_secret_name(name):
            recorder.withheld.add(name)
            return
        from . import object_artifacts

        try:
            files = object_artifacts.save(self.namespace[name], recorder.tmp_path(PICKLE_ARTIFACT_DIR, ""), name)
        except object_artifacts.NotSaved as error:
            recorder.notice(f"--artifacts: `{name}` {error}; not logged")
            return
        for path in files:
            recorder.add_file_artifact(str(path), PICKLE_ARTIFACT_DIR)


# ---------------------------------------------------------------------- panels
# Callables ``(recorder, options) -> observer | None`` run for each tracked execution, after the live panel
# (and its ``--system`` sampler). Panels register here; they receive the recorder and only read from it.
_observer_factories: list[Any] = []


def register_observer_factory(factory: Any) -> None:
    if factory not in _observer_factories:
        _observer_factories.append(factory)


def _announce_live_panel(options: TrackOptions) -> Any:
    """The live panel with its placeholder on screen, or None; never raises (plotly and MLflow stay unimported)."""
    try:
        from .panels.live import announce

        return announce(options)
    except Exception as error:  # noqa: BLE001 - a panel never breaks the cell
        _notify(f"live panel not shown ({type(error).__name__}: {error})")
        return None


# ---------------------------------------------------------------------- the magic's entry point
class TrackedCell:
    """One ``%%track`` execution of ``source`` in the shell's namespace: ``run()`` returns the summary and
    re-raises the cell's own exception; ``summary`` (and so the run id) is there either way."""

    def __init__(self, shell: Any, source: str, options: TrackOptions, *, bindings: dict[str, Any] | None = None,
                 parent_run_id: str | None = None, extra_tags: dict[str, str] | None = None,
                 session: Session | None = None, end_later: bool = True) -> None:
        self.shell = shell
        self.source = source
        self.options = options
        self.code_text = shell.transform_cell(source)
        self.execution = TrackedExecution(
            source, options, namespace=shell.user_ns, bindings=bindings, parent_run_id=parent_run_id,
            extra_tags=extra_tags, analysis_source=self.code_text, session=session, end_later=end_later,
        )

    @property
    def summary(self) -> RunSummary | None:
        return self.execution.summary

    @property
    def run_id(self) -> str | None:
        summary = self.execution.summary
        if summary is not None:
            return summary.run_id
        return self.execution.recorder.run_id if self.execution.recorder is not None else None

    def run(self) -> RunSummary | None:
        __tracebackhide__ = True
        from .cell_code import compile_cell, execute

        compiled = compile_cell(self.shell, self.code_text, self.source)
        execution = self.execution
        execution.begin_or_abort()
        status, failure, last_value = FINISHED, None, None
        try:
            last_value = execute(self.shell, compiled)
        except KeyboardInterrupt as error:
            status, failure = KILLED, error
            raise
        except SystemExit as error:
            status = FINISHED if error.code in (None, 0) else FAILED
            failure = error
            raise
        except BaseException as error:
            status, failure = FAILED, error
            raise
        finally:
            execution.end(status, failure, last_value)
        return execution.summary


def run_tracked_cell(shell: Any, source: str, options: TrackOptions, **kwargs: Any) -> RunSummary | None:
    """Run ``source`` in the user namespace as one tracked run; re-raises the cell's own exception."""
    __tracebackhide__ = True
    return TrackedCell(shell, source, options, **kwargs).run()


# ---------------------------------------------------------------------- tags and spool delivery
def context_tags(source: str, name: str | None, location: store_module.StoreLocation, notebook: Path | None,
                 session: Session) -> dict[str, str]:
    """The tags every tracked run starts with (a sweep's parent too): source, cell, notebook, versions."""
    from . import __version__

    source_hash = hashlib.sha1(source.encode()).hexdigest()[:12]
    notebook_text = _notebook_label(notebook, location)
    cell_key = f"{notebook_text}:{name or source_hash}"
    if notebook is None and context_module.frontend() == "jupyter":
        # Without its notebook a kernel cannot tell its cells from another notebook's: link within it only.
        cell_key = f"{notebook_text} {context_module.kernel_label()}:{name or source_hash}"
        session.warn_once("notebook", "this kernel cannot tell which notebook it runs, so runs name no notebook "
                          "and link runs of a cell within this kernel only; name it with `%track config --notebook "
                          f"PATH` or the {context_module.NOTEBOOK_VARIABLE} environment variable")
    tags = {
        "mlflow.source.type": "NOTEBOOK",
        "mlflow.source.name": notebook_text,
        "jupyter_tracking.cell_hash": source_hash,
        "jupyter_tracking.cell_key": session.cell_id or cell_key,
        "jupyter_tracking.python": context_module.python_version(),
        "jupyter_tracking.packages": json.dumps(context_module.package_versions(), sort_keys=True),
        "jupyter_tracking.version": __version__,
        "jupyter_tracking.frontend": context_module.frontend(),
    }
    if session.cell_id:
        tags["jupyter_tracking.cell_id"] = session.cell_id
    count = context_module.execution_count()
    if count is not None:
        tags["jupyter_tracking.execution_count"] = str(count)
    if notebook:
        tags["jupyter_tracking.notebook"] = str(notebook)
    return tags


def git_tags(git: context_module.GitState | None) -> dict[str, str]:
    if git is None:
        return {}
    tags = {"mlflow.source.git.commit": git.commit, "jupyter_tracking.git.dirty": "true" if git.dirty else "false"}
    if git.branch:
        tags["mlflow.source.git.branch"] = git.branch
    if git.remote_url:
        tags["mlflow.source.git.repoURL"] = git.remote_url
    return tags


def deliver_spooled_runs(location: store_module.StoreLocation, session: Session) -> None:
    """The store took a run: deliver runs spooled earlier while it was unreachable (DESIGN: "the next
    successful write delivers it"). What cannot be delivered now stays spooled for `%track sync`."""
    from . import spool

    if not spool.pending(location.uri, deliverable=True):
        return
    try:
        delivery = spool.deliver_pending(location, session)
    except Exception as error:  # noqa: BLE001 - they stay in the spool
        _notify(f"spooled runs not delivered yet ({store_module.describe_store_error(error, location)})")
        return
    for line in delivery_lines(delivery, location):
        _notify(line)


def delivery_lines(delivery: Any, location: store_module.StoreLocation) -> list[str]:
    """What a spool delivery did, in one line per kind of outcome."""
    lines = []
    if delivery.delivered:
        lines.append(f"delivered {len(delivery.delivered)} run(s) spooled while the store was unreachable: "
                     f"{', '.join(delivery.delivered)}")
    for item in delivery.set_aside:
        lines.append(f"the store refuses the spooled run {item}; it is set aside and will not be retried")
    if delivery.outage is not None:
        lines.append(f"some spooled runs wait for the store: {store_module.describe_store_error(delivery.outage, location)}")
    return lines


def _notebook_label(notebook: Path | None, location: store_module.StoreLocation) -> str:
    if notebook is None:
        return "IPython session"
    if location.project_root is not None:
        try:
            return str(notebook.relative_to(location.project_root))
        except ValueError:
            pass
    return str(notebook)


def _set_autolog(enabled: bool, recorder: RunRecorder, *, log_datasets: bool = True) -> None:
    try:
        import mlflow

        if enabled:
            mlflow.autolog(silent=True, log_datasets=log_datasets)
        else:
            mlflow.autolog(disable=True, silent=True)
    except Exception as error:  # noqa: BLE001
        recorder.notice(f"--autolog: MLflow autologging failed ({type(error).__name__}: {error})")


