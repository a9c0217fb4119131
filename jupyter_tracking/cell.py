"""One tracked execution: capture before, run, capture after, record, show the run card.

``TrackedExecution`` is shared by the ``%%track`` magic (``run_tracked_cell``) and the Python API
(``with jt.track():``). It never lets tracking break the user's code: the user's exception is re-raised
unchanged, the run is always closed (FINISHED / FAILED / KILLED), and problems of our own become a line.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _active
from . import context as context_module
from . import preload
from . import store as store_module
from .capture import Capture, CaptureRules, analyze, dataframe_digest
from .recorder import FAILED, FINISHED, KILLED, RUNNING, RunRecorder, RunSummary
from .secret_filter import is_secret_name, redact_text

SOURCE_ARTIFACT_DIR = "cell"
last_summary: RunSummary | None = None  # the most recent tracked run of this session, for `%track`
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
    ) -> None:
        self.source = source
        self.explicit_params = dict(explicit_params or {})
        self.options = options
        self.namespace = namespace
        self.bindings = dict(bindings or {})
        self.parent_run_id = parent_run_id
        self.extra_tags = dict(extra_tags or {})
        self.recorder: RunRecorder | None = None
        self.summary: RunSummary | None = None
        self._analysis_source = analysis_source if analysis_source is not None else source
        self._capture: Capture | None = None
        self._git: context_module.GitProbe | None = None
        self._mirror: _MlflowMirror | None = None
        self._previous_active = None

    # ------------------------------------------------------------------ begin
    def begin(self) -> RunRecorder:
        """Analyse, take the inputs, open the run. Raises SyntaxError like the code would."""
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
        location = store_module.resolve_store()
        experiment = options.experiment or store_module.default_experiment_name()
        notebook = context_module.notebook_path()
        self._git = context_module.GitProbe(notebook.parent if notebook else Path.cwd())
        recorder = RunRecorder(
            location, experiment, run_name=options.name, tags=self._start_tags(location, notebook),
            description=options.note, parent_run_id=self.parent_run_id, total_steps=options.steps,
            notify=_notify,
        )
        self.recorder = recorder
        for observer in _observer_factories:
            try:
                attached = observer(recorder, options)
            except Exception as error:  # noqa: BLE001
                _notify(f"panel not shown ({type(error).__name__}: {error})")
                continue
            if attached is not None:
                recorder.add_observer(attached)
        recorder.start()
        self._previous_active = _active.recorder
        _active.recorder = recorder
        if "mlflow" in sys.modules:
            self._mirror = _MlflowMirror(recorder)
            self._mirror.install()
            if options.autolog:
                _set_autolog(True, recorder)
        return recorder

    def begin_or_abort(self) -> RunRecorder:
        """``begin()``, closing the run (KILLED/FAILED, no card) if it is interrupted or fails half-way."""
        try:
            return self.begin()
        except BaseException as error:
            self.abort(error)
            raise

    def abort(self, error: BaseException) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        if _active.recorder is recorder:
            _active.recorder = self._previous_active
        if self._mirror is not None:
            self._mirror.uninstall()
        if recorder.status == RUNNING:
            recorder.abort(KILLED if isinstance(error, KeyboardInterrupt) else FAILED)

    def _start_tags(self, location: store_module.StoreLocation, notebook: Path | None) -> dict[str, str]:
        from . import __version__

        cell = context_module.current_cell
        source_hash = hashlib.sha1(self.source.encode()).hexdigest()[:12]
        notebook_text = _notebook_label(notebook, location)
        tags = {
            "mlflow.source.type": "NOTEBOOK",
            "mlflow.source.name": notebook_text,
            "jupyter_tracking.cell_hash": source_hash,
            "jupyter_tracking.cell_key": cell.cell_id or f"{notebook_text}:{self.options.name or source_hash}",
            "jupyter_tracking.python": context_module.python_version(),
            "jupyter_tracking.packages": json.dumps(context_module.package_versions(), sort_keys=True),
            "jupyter_tracking.version": __version__,
            "jupyter_tracking.frontend": context_module.frontend(),
        }
        if cell.cell_id:
            tags["jupyter_tracking.cell_id"] = cell.cell_id
        count = context_module.execution_count()
        if count is not None:
            tags["jupyter_tracking.execution_count"] = str(count)
        if notebook:
            tags["jupyter_tracking.notebook"] = str(notebook)
        for key, value in {**self.options.tags, **self.extra_tags}.items():
            if is_secret_name(key):
                continue
            tags[key] = value
        return tags

    # ------------------------------------------------------------------ end
    def end(self, status: str, error: BaseException | None = None, last_value: Any = None) -> RunSummary | None:
        """Capture the results, write and close the run, show the card. Never raises."""
        recorder = self.recorder
        if recorder is None:
            return None
        _active.recorder = self._previous_active
        try:
            if self._mirror is not None:
                self._mirror.uninstall()
                if self.options.autolog:
                    _set_autolog(False, recorder)
            self._record_results(recorder, status, error, last_value)
        except Exception as failure:  # noqa: BLE001
            recorder.notice(f"part of the run was not recorded ({type(failure).__name__}: {failure})")
        self.summary = recorder.finish(status)
        global last_summary
        last_summary = self.summary
        if not self.summary.spooled:
            _deliver_spooled_runs(recorder)
        if self.options.card:
            try:
                show_card(self.summary)
            except Exception as failure:  # noqa: BLE001
                _notify(f"run card not shown ({type(failure).__name__}: {failure})")
        return self.summary

    def _record_results(self, recorder: RunRecorder, status: str, error: BaseException | None, last_value: Any) -> None:
        logged = recorder.drain_now()
        capture = self._capture
        if capture is not None:
            stale = capture.stale_names(self.namespace) if status != FINISHED else set()
            capture.after(self.namespace, last_value if status == FINISHED else None, logged_keys=logged, skip=stale)
            result = capture.result
            recorder.add_params(result.params)
            recorder.add_metrics(result.metrics)
            recorder.add_series(result.series)
            for note in result.notes:
                recorder.notice(note)
            for name, frame in result.datasets.items():
                entity = _dataset_entity(name, frame)
                if entity is not None:
                    recorder.add_dataset(entity)
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
        recorder.add_text_artifact(redact_text(self.source), SOURCE_ARTIFACT_DIR, "cell.py")
        if error is not None and not (isinstance(error, SystemExit) and status == FINISHED):
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            recorder.add_text_artifact(redact_text(text), "", "traceback.txt")
            recorder.set_tags({"jupyter_tracking.error": f"{type(error).__name__}: {redact_text(str(error))[:500]}"})
        git = self._git.result() if self._git is not None else None
        if git is not None:
            tags = {
                "mlflow.source.git.commit": git.commit,
                "jupyter_tracking.git.dirty": "true" if git.dirty else "false",
            }
            if git.branch:
                tags["mlflow.source.git.branch"] = git.branch
            if git.remote_url:
                tags["mlflow.source.git.repoURL"] = git.remote_url
            recorder.set_tags(tags)

    def _pickle_artifact(self, recorder: RunRecorder, name: str) -> None:
        if name not in self.namespace:
            recorder.notice(f"--artifacts: `{name}` is not defined after the cell; not logged", key=f"art:{name}")
            return
        if is_secret_name(name):
            recorder.withheld.add(name)
            return
        path = recorder.tmp_path(PICKLE_ARTIFACT_DIR, f"{name}.pkl")
        value = self.namespace[name]
        try:
            import pickle

            with open(path, "wb") as handle:
                pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - lambdas, local classes: cloudpickle (an MLflow dependency) copes
            try:
                import cloudpickle

                with open(path, "wb") as handle:
                    cloudpickle.dump(value, handle)
            except Exception as error:  # noqa: BLE001
                recorder.notice(f"--artifacts: `{name}` cannot be pickled ({type(error).__name__}); not logged")
                return
        recorder.add_file_artifact(str(path), PICKLE_ARTIFACT_DIR)


def _deliver_spooled_runs(recorder: RunRecorder) -> None:
    """The store took this run: deliver runs spooled earlier while it was unreachable (DESIGN: "the next
    successful write delivers it"). A failure here leaves them spooled for `%track sync`."""
    from . import spool

    if not spool.pending(recorder.location.uri):
        return
    try:
        delivered = spool.deliver_pending(recorder.location)
    except Exception as error:  # noqa: BLE001 - they stay in the spool
        _notify(f"spooled runs not delivered yet ({store_module.describe_store_error(error, recorder.location)})")
        return
    if delivered:
        _notify(f"delivered {len(delivered)} run(s) spooled while the store was unreachable: {', '.join(delivered)}")


# ---------------------------------------------------------------------- panels
# Callables ``(recorder, options) -> observer | None`` run for each tracked execution (live panel, system
# metrics). Panels register here; they receive the recorder and only read from it.
_observer_factories: list[Any] = []


def register_observer_factory(factory: Any) -> None:
    if factory not in _observer_factories:
        _observer_factories.append(factory)


def _live_panel(recorder: Any, options: TrackOptions) -> Any:
    from .panels.live import observer_factory  # numpy/plotly stay unimported until a tracked cell runs

    return observer_factory(recorder, options)


register_observer_factory(_live_panel)


# ---------------------------------------------------------------------- the magic's entry point
def run_tracked_cell(
    shell: Any,
    source: str,
    options: TrackOptions,
    *,
    bindings: dict[str, Any] | None = None,
    parent_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> RunSummary | None:
    """Run ``source`` in the user namespace as one tracked run; re-raises the cell's own exception."""
    __tracebackhide__ = True
    code_text = shell.transform_cell(source)
    execution = TrackedExecution(
        source, options, namespace=shell.user_ns, bindings=bindings, parent_run_id=parent_run_id,
        extra_tags=extra_tags, analysis_source=code_text,
    )
    compiled = _compile_cell(shell, code_text, source)
    execution.begin_or_abort()
    status, failure, last_value = FINISHED, None, None
    try:
        last_value = _execute(shell, compiled)
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


@dataclass
class _CompiledCell:
    body: Any
    last: Any | None
    display_last: bool


def _compile_cell(shell: Any, code_text: str, raw_source: str) -> _CompiledCell:
    """Compile like IPython does (its cell file name, so tracebacks show the cell's lines)."""
    __tracebackhide__ = True
    tree = ast.parse(code_text)
    number = context_module.execution_count() or shell.execution_count
    try:
        filename = shell.compile.cache(code_text, number, raw_code=raw_source)
    except TypeError:  # older IPython without raw_code
        filename = shell.compile.cache(code_text, number)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    flags = getattr(shell.compile, "flags", 0)
    body = compile(tree, filename, "exec", flags, dont_inherit=True)
    if body.co_flags & inspect.CO_COROUTINE:
        from IPython.core.error import UsageError

        raise UsageError("top-level `await` is not supported in a %%track cell; use `with jt.track():` in it instead")
    last_code = compile(last, filename, "eval", flags, dont_inherit=True) if last is not None else None
    return _CompiledCell(body, last_code, display_last=not _ends_with_semicolon(code_text))


def _execute(shell: Any, compiled: _CompiledCell) -> Any:
    __tracebackhide__ = True
    exec(compiled.body, shell.user_global_ns, shell.user_ns)  # noqa: S102 - running the user's cell is the point
    if compiled.last is None:
        return None
    value = eval(compiled.last, shell.user_global_ns, shell.user_ns)  # noqa: S307
    if compiled.display_last:
        shell.displayhook(value)
    return value


def _ends_with_semicolon(code_text: str) -> bool:
    import io
    import tokenize

    try:
        tokens = [
            token for token in tokenize.generate_tokens(io.StringIO(code_text).readline)
            if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER,
                                  tokenize.DEDENT, tokenize.INDENT)
        ]
    except (tokenize.TokenError, SyntaxError):
        return False
    return bool(tokens) and tokens[-1].string == ";"


def _notebook_label(notebook: Path | None, location: store_module.StoreLocation) -> str:
    if notebook is None:
        return "IPython session"
    if location.project_root is not None:
        try:
            return str(notebook.relative_to(location.project_root))
        except ValueError:
            pass
    return str(notebook)


def _dataset_entity(name: str, frame: Any) -> dict[str, Any] | None:
    """An MLflow dataset record for a DataFrame: digest over every row, schema from a sample."""
    try:
        import mlflow.data

        digest = dataframe_digest(frame)
        sample = mlflow.data.from_pandas(frame.head(1000), name=name, digest=digest)
        entity = sample._to_mlflow_entity()
        return {
            "name": name, "digest": digest, "source_type": entity.source_type, "source": entity.source,
            "schema": entity.schema,
            "profile": json.dumps({"num_rows": int(len(frame)), "num_elements": int(frame.size)}),
        }
    except Exception as error:  # noqa: BLE001
        _notify(f"dataset `{name}` not recorded ({type(error).__name__}: {error})")
        return None


def _set_autolog(enabled: bool, recorder: RunRecorder) -> None:
    try:
        import mlflow

        if enabled:
            mlflow.autolog(silent=True)
        else:
            mlflow.autolog(disable=True, silent=True)
    except Exception as error:  # noqa: BLE001
        recorder.notice(f"--autolog: MLflow autologging failed ({type(error).__name__}: {error})")


def _mirrored(original: Any, points_of: Any, recorder: RunRecorder) -> Any:
    """``original`` (an MLflow fluent logging function) that also shows what it logged to our run live."""
    signature = inspect.signature(original)

    def logging_function(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        try:
            values = signature.bind(*args, **kwargs).arguments
            if values.get("run_id") in (None, recorder.run_id):
                for key, value in points_of(values):
                    recorder.mirror_logged_metric(key, value, values.get("step"), values.get("timestamp"))
        except Exception:  # noqa: BLE001 - mirroring is for display only
            pass
        return result

    logging_function.__wrapped__ = original
    return logging_function


class _MlflowMirror:
    """While the cell runs, ``mlflow.log_metric(s)`` calls also feed the live series (and are not re-logged)."""

    def __init__(self, recorder: RunRecorder) -> None:
        self.recorder = recorder
        self._originals: dict[str, Any] = {}

    def install(self) -> None:
        import mlflow

        recorder = self.recorder

        def points_of_log_metric(values: dict[str, Any]):
            yield values["key"], values["value"]

        def points_of_log_metrics(values: dict[str, Any]):
            yield from (values.get("metrics") or {}).items()

        self._originals = {"log_metric": mlflow.log_metric, "log_metrics": mlflow.log_metrics}
        mlflow.log_metric = _mirrored(mlflow.log_metric, points_of_log_metric, recorder)
        mlflow.log_metrics = _mirrored(mlflow.log_metrics, points_of_log_metrics, recorder)

    def uninstall(self) -> None:
        import mlflow

        for name, original in self._originals.items():
            setattr(mlflow, name, original)
        self._originals = {}


# ---------------------------------------------------------------------- the card
class _CardHistory:
    """What the card compares with, cached for the session: previous run per cell, best value per metric."""

    def __init__(self) -> None:
        self.previous: dict[tuple[str, str], tuple[str, dict[str, str], dict[str, float]]] = {}
        self.best: dict[tuple[str, str, str], tuple[float, str] | None] = {}


_history = _CardHistory()
MAX_BEST_LOOKUPS = 8


def comparison_for(summary: RunSummary):
    """The card's comparison for a finished run (previous run of its cell, best earlier values)."""
    from .panels.card import Comparison, metric_goal

    comparison = Comparison()
    if summary.run_id is None or summary.experiment_id is None:
        return comparison
    location = store_module.resolve_store()
    client = store_module.client_for(location)
    uri = location.uri
    if summary.cell_key:
        key = (uri, summary.cell_key)
        if key not in _history.previous:
            found = client.search_runs(
                [summary.experiment_id],
                filter_string=f"tags.`jupyter_tracking.cell_key` = '{_quote(summary.cell_key)}'",
                max_results=2, order_by=["attributes.start_time DESC"],
            )
            earlier = [run for run in found if run.info.run_id != summary.run_id]
            if earlier:
                run = earlier[0]
                _history.previous[key] = (run.info.run_id, dict(run.data.params), dict(run.data.metrics))
        if key in _history.previous:
            comparison.previous_run_id, comparison.previous_params, comparison.previous_metrics = _history.previous[key]
    current = {**summary.metrics, **summary.last_step_values}
    for metric_key in sorted(current)[:MAX_BEST_LOOKUPS]:
        goal = metric_goal(metric_key)
        cache_key = (uri, summary.experiment_id, metric_key)
        if cache_key not in _history.best:
            order = "ASC" if goal == "min" else "DESC"
            found = client.search_runs(
                [summary.experiment_id], order_by=[f"metrics.`{metric_key}` {order}"], max_results=2,
                filter_string=f"metrics.`{metric_key}` > -1e308",
            )
            earlier = [run for run in found if run.info.run_id != summary.run_id and metric_key in run.data.metrics]
            _history.best[cache_key] = (earlier[0].data.metrics[metric_key], earlier[0].info.run_id) if earlier else None
        best = _history.best[cache_key]
        if best is not None:
            comparison.best[metric_key] = best
    # This run becomes the previous one of its cell, and maybe the new best.
    if summary.status == FINISHED or summary.status == FAILED:
        if summary.cell_key:
            _history.previous[(uri, summary.cell_key)] = (summary.run_id, dict(summary.params), current)
        for metric_key, value in current.items():
            cache_key = (uri, summary.experiment_id, metric_key)
            best = _history.best.get(cache_key)
            goal = metric_goal(metric_key)
            if cache_key in _history.best and (
                best is None or (value < best[0] if goal == "min" else value > best[0])
            ):
                _history.best[cache_key] = (value, summary.run_id)
    return comparison


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def show_card(summary: RunSummary) -> None:
    """Display the run card under the cell."""
    from IPython.display import display

    from .panels.card import Comparison, card_bundle, card_data

    try:
        comparison = comparison_for(summary) if not summary.spooled else Comparison()
    except Exception:  # noqa: BLE001 - a card without comparisons is better than none
        from .panels.card import Comparison

        comparison = Comparison()
    notebook = context_module.notebook_path()
    data = card_data(
        summary, comparison, notebook=str(notebook) if notebook else None,
        cell_id=context_module.current_cell.cell_id, ui_url=None,
    )
    if context_module.frontend() == "none":
        from .panels.card import render_text

        print(render_text(data))
    else:
        display(card_bundle(data), raw=True)
