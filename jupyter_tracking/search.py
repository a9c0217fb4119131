"""Optuna search from a cell: ``%%track NAME --search SPACE --trials N [--best-by METRIC:min|max]``.

SPACE evaluates in the notebook to a dict of Optuna distributions (a plain list is categorical). Optuna (TPE by
default) proposes each trial's values, bound as names exactly as ``--grid`` binds a combination; each trial is
a child run under one parent (``sweep.run_trials``, in the kernel or on ``--jobs``/``--cluster`` workers).
``jt.log`` of the objective metric reports intermediate values, so the pruner (Optuna's median pruner) stops bad
trials early: their runs are FINISHED with the tag ``jupyter_tracking.pruned``, PRUNED in the table. The study
lives beside the store in Optuna's RDB storage (``optuna.db`` next to the embedded SQLite store; in the user's
cache folder for a server store), so running the cell again continues the search.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import sys
from collections.abc import Mapping
from typing import Any

from .sweep import (BEST_METRIC_TAG, SWEEP_TAG, GridError, Row, SweepState, goal_overrides, parse_best_by,
                    run_trials)

SEARCH_TAG = "jupyter_tracking.search_space"
TRIALS_TAG = "jupyter_tracking.search_trials"
STUDY_TAG = "jupyter_tracking.optuna.study"
STORAGE_TAG = "jupyter_tracking.optuna.storage"
SAMPLER_TAG = "jupyter_tracking.optuna.sampler"
PRUNER_TAG = "jupyter_tracking.optuna.pruner"
BEST_TRIAL_TAG = "jupyter_tracking.optuna.best_trial"
TRIAL_TAG = "jupyter_tracking.optuna.trial"
MAX_TRIALS = 10_000


def _optuna() -> Any:
    from .parallel import require

    optuna = require("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def parse_space(value: Any) -> dict[str, Any]:
    """A dict of names -> Optuna distributions (lists become categorical); GridError (one line) otherwise."""
    optuna = _optuna()
    distributions = optuna.distributions
    if not isinstance(value, Mapping) or not value:
        raise GridError(f"--search must evaluate to a non-empty dict of Optuna distributions, got "
                        f"{type(value).__name__ if not isinstance(value, Mapping) else 'an empty dict'}")
    space: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise GridError(f"--search key {key!r} is not a variable name")
        if isinstance(item, distributions.BaseDistribution):
            space[key] = item
        elif isinstance(item, (list, tuple)) and item:
            try:
                space[key] = distributions.CategoricalDistribution(list(item))
            except Exception as error:  # noqa: BLE001 - Optuna's own check of the choices
                raise GridError(f"--search value for {key!r}: {error}") from None
        else:
            raise GridError(f"--search value for {key!r} must be an Optuna distribution or a non-empty list, "
                            f"got {type(item).__name__}")
    return space


def space_from_expression(shell: Any, expression: str) -> dict[str, Any]:
    try:
        value = shell.ev(expression)
    except Exception as error:  # noqa: BLE001 - the user's expression
        raise GridError(f"--search {expression!r} could not be evaluated: {type(error).__name__}: {error}") from None
    return parse_space(value)


def space_to_json(space: dict[str, Any]) -> str:
    optuna = _optuna()
    return json.dumps({k: json.loads(optuna.distributions.distribution_to_json(d)) for k, d in space.items()},
                      separators=(",", ":"))


def space_from_json(text: str) -> dict[str, Any]:
    optuna = _optuna()
    return {k: optuna.distributions.json_to_distribution(json.dumps(v)) for k, v in json.loads(text).items()}


def objective_of(code: str, best_by: tuple[str, str] | None, location: Any, experiment: str) -> tuple[str, str]:
    """The metric Optuna optimises: ``--best-by``, else the likeliest one the cell logs or binds (with a known
    goal); GridError asking for ``--best-by`` when there is none."""
    if best_by is not None:
        return best_by
    from . import queries

    names: list[str] = []
    try:
        tree = ast.parse(code)
    except SyntaxError:
        tree = None
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "log":
            names.extend(k.arg for k in node.keywords if k.arg and k.arg not in ("step", "total"))
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append(node.id)
    guess = queries.guess_objective(list(dict.fromkeys(names)), goal_overrides(location, experiment))
    if guess is None or guess[1] is None:
        raise GridError("--search needs the metric to optimise: add --best-by METRIC:min or --best-by METRIC:max")
    return guess[0], guess[1]


def storage_url(location: Any) -> str:
    """Optuna's RDB storage beside the store: ``optuna.db`` next to a SQLite store, else in the user's cache."""
    if location.db_path is not None:
        folder = location.db_path.parent
    else:
        from .private_files import private_dir, user_folder

        digest = hashlib.sha1(location.uri.encode()).hexdigest()[:12]
        folder = private_dir(user_folder("cache") / "optuna" / digest)
    return f"sqlite:///{folder / 'optuna.db'}"


class SearchTrials:
    """Trials asked of an Optuna study as workers free up; told back as they finish."""

    def __init__(self, optuna: Any, study: Any, space: dict[str, Any], count: int, state: SweepState,
                 storage: str, metric: str) -> None:
        self.optuna, self.study, self.space, self.count = optuna, study, space, count
        self.state, self.storage, self.metric = state, storage, metric
        self.asked = 0
        self.trials: dict[int, Any] = {}

    def next_row(self) -> Row | None:
        if self.asked >= self.count:
            return None
        trial = self.study.ask(self.space)
        self.asked += 1
        row = Row(len(self.state.rows), {k: trial.params[k] for k in self.space})
        self.state.rows.append(row)
        self.trials[row.index] = trial
        return row

    def link(self, row: Row) -> Any:
        from .trials import OptunaLink

        return OptunaLink(self.storage, self.study.study_name, self.trials[row.index]._trial_id, self.metric)

    def child_tags(self, row: Row) -> dict[str, str]:
        return {TRIAL_TAG: str(self.trials[row.index].number)}

    def finished(self, row: Row, record: Any) -> None:
        states = self.optuna.trial.TrialState
        trial = self.trials[row.index]
        value = row.metrics.get(self.metric)
        try:
            if record is not None and record.status == "PRUNED":
                self.study.tell(trial, state=states.PRUNED)
            elif record is not None and record.status == "FINISHED" and value is not None and math.isfinite(value):
                self.study.tell(trial, value)
            else:
                self.study.tell(trial, state=states.FAIL)
        except Exception as error:  # noqa: BLE001 - the run is recorded; the study just lacks this trial
            print(f"jupyter_tracking: Optuna did not take trial {trial.number} ({type(error).__name__}: {error})",
                  file=sys.stderr)

    def close(self, state: SweepState) -> dict[str, str]:
        try:
            best = self.study.best_trial
        except ValueError:  # no completed trial yet
            return {}
        return {BEST_TRIAL_TAG: json.dumps({"number": best.number, "value": best.value, "params": best.params},
                                           default=str)[:5000]}


def run_search(shell: Any, source: str, options: Any, space: dict[str, Any], count: int, *,
               best_by: tuple[str, str] | None = None, engine: Any = None, seed: int | None = None,
               stop_on_error: bool = False, show: bool = True, study_name: str | None = None,
               child_tags_exclude: set[str] | None = None) -> SweepState:
    """``count`` trials of an Optuna search over ``space`` as child runs of one parent; returns the state."""
    from . import store as store_module
    from .session import current_session

    if not 0 < count <= MAX_TRIALS:
        raise GridError(f"--trials must be between 1 and {MAX_TRIALS}, got {count}")
    optuna = _optuna()
    session = current_session()
    location = store_module.resolve_store(session=session)
    experiment = options.experiment or store_module.default_experiment_name(session)
    metric, goal = objective_of(shell.transform_cell(source), best_by, location, experiment)
    storage = storage_url(location)
    if study_name is None:
        key = options.name or hashlib.sha1(source.encode()).hexdigest()[:12]
        study_name = f"{experiment}/{key}"
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.MedianPruner()
    study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner,
                                direction="minimize" if goal == "min" else "maximize", load_if_exists=True)
    state = SweepState({k: [] for k in space}, [], objective=(metric, goal), planned=count, kind="search")
    tags = {SWEEP_TAG: "search", SEARCH_TAG: space_to_json(space), TRIALS_TAG: str(count), STUDY_TAG: study_name,
            STORAGE_TAG: storage.removeprefix("sqlite:///"), BEST_METRIC_TAG: f"{metric}:{goal}",
            SAMPLER_TAG: f"TPESampler(seed={seed})", PRUNER_TAG: "MedianPruner()"}
    trials = SearchTrials(optuna, study, space, count, state, storage, metric)
    return run_trials(shell, source, options, state, trials, engine, parent_tags=tags, stop_on_error=stop_on_error,
                      show=show, child_tags_exclude=child_tags_exclude)


def rerun_search(shell: Any, source: str, options: Any, run: Any, *, show: bool = True,
                 engine: Any = None) -> SweepState | None:
    """A search parent reruns as a new search over its space (a new study); None if ``run`` is no search."""
    text = run.data.tags.get(SEARCH_TAG)
    if not text:
        return None
    best_by = run.data.tags.get(BEST_METRIC_TAG)
    count = int(run.data.tags.get(TRIALS_TAG, "10"))
    study = f"{run.data.tags.get(STUDY_TAG, 'search')}/rerun-{run.info.run_id[:8]}"
    return run_search(shell, source, options, space_from_json(text), count,
                      best_by=parse_best_by(best_by) if best_by else None, show=show, study_name=study,
                      child_tags_exclude=set(options.tags), engine=engine)
