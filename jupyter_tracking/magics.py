"""IPython magics: argument parsing and dispatch only; the work is done by the Python API.

``%%track`` (cell) runs a cell as one MLflow run; ``%track`` (line) shows the status or runs a subcommand
(``config``, ``sync``, ...). Bad arguments raise ``UsageError``: one line, the cell is not run.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring


def _name_list(text: str) -> list[str]:
    names = [name.strip() for name in _unquote(text).split(",") if name.strip()]
    for name in names:
        if not name.replace(".", "_").isidentifier():
            raise argparse.ArgumentTypeError(f"{name!r} is not a variable name (expected a,b,c)")
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated variable names")
    return names


def _tag(text: str) -> tuple[str, str]:
    key, separator, value = _unquote(text).partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), _unquote(value)


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return number


def _experiment_name(text: str) -> str:
    name = _unquote(text).strip()
    if not name:
        raise argparse.ArgumentTypeError("an experiment needs a name (got an empty one)")
    return name


# argparse shows a converter's __name__ in its messages ("invalid _name_list value"): give readable names.
_name_list.__name__ = "comma-separated names"
_tag.__name__ = "KEY=VALUE"
_positive_int.__name__ = "positive integer"
_experiment_name.__name__ = "experiment name"


def _unquote(value: Any) -> Any:
    """IPython's argument splitter keeps the quotes of ``--note "two words"``: drop them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    if isinstance(value, tuple):
        return tuple(_unquote(item) for item in value)
    if isinstance(value, list):
        return [_unquote(item) for item in value]
    return value


def _parse(magic: Any, line: str) -> Any:
    try:
        args = parse_argstring(magic, line)
    except UsageError:
        raise
    except ValueError as error:  # unbalanced quotes and the like
        raise UsageError(f"%%track: {error}") from None
    for key, value in vars(args).items():
        setattr(args, key, _unquote(value))
    return args


@magics_class
class TrackingMagics(Magics):
    """``%%track`` / ``%track``."""

    @magic_arguments()
    @argument("name", nargs="?", default=None, help="run name (default: MLflow's generated name)")
    @argument("-e", "--experiment", type=_experiment_name,
              help="experiment name (default: the configured one, else the notebook's name)")
    @argument("-p", "--params", type=_name_list, default=[], help="force these names as params: a,b")
    @argument("-m", "--metrics", type=_name_list, default=[], help="force these names as metrics: x,y")
    @argument("-x", "--exclude", type=_name_list, default=[], help="never record these names: v,w")
    @argument("-t", "--tag", type=_tag, action="append", default=[], help="KEY=VALUE tag (repeatable)")
    @argument("--note", help="why this try: stored as the run description")
    @argument("--artifacts", type=_name_list, default=[], help="pickle these variables into the run: a,b")
    @argument("--autolog", action="store_true", help="turn on mlflow.autolog() for the cell")
    @argument("--no-live", action="store_true", help="no live panel")
    @argument("--steps", type=_positive_int, help="how many steps to expect (progress and ETA)")
    @argument("--system", action="store_true", help="log CPU/memory/GPU as system/* metrics")
    @argument("--grid", metavar="EXPR", nargs="+", help="dict of lists (evaluated here): one child run per combination")
    @argument("--stop-on-error", action="store_true", help="--grid: stop at the first failing combination")
    @argument("--best-by", metavar="METRIC[:min|max]", help="--grid/--search: the metric that picks the best child")
    @argument("--search", metavar="EXPR", nargs="+", help="dict of Optuna distributions (lists: categorical)")
    @argument("--trials", type=_positive_int, help="--search: how many trials to run")
    @argument("--seed", type=int, help="--search: seed of Optuna's sampler")
    @argument("--jobs", type=int, help="--grid/--search: trials in N worker processes (-1: all cores)")
    @argument("--cluster", metavar="ADDRESS|CLIENT", help="--grid/--search: run the trials on a Dask cluster")
    @line_cell_magic
    def track(self, line: str, cell: str | None = None) -> Any:
        """Track a cell as one MLflow run (``%%track``), or show/change tracking (``%track ...``).

        Line forms: ``%track`` (status), ``%track config [--uri URI] [--experiment NAME] [--goal METRIC:max]``,
        ``%track sync`` (deliver runs spooled while the store was unreachable), ``%track recover`` (end runs
        left RUNNING by kernels that are gone).
        """
        if cell is None:
            return self._track_line(line)
        args = _parse(self.track, line)
        from .cell import TrackOptions, run_tracked_cell

        options = TrackOptions(
            name=args.name, experiment=args.experiment, params=set(args.params), metrics=set(args.metrics),
            exclude=set(args.exclude), tags=dict(args.tag), note=args.note, artifacts=list(args.artifacts),
            autolog=args.autolog, live=not args.no_live, steps=args.steps, system=args.system,
        )
        __tracebackhide__ = True
        from .cell_code import CellSyntaxError

        try:
            if args.grid is not None or args.search is not None:
                return self._sweep(args, cell, options)
            if args.stop_on_error or args.best_by or args.jobs is not None or args.cluster or args.trials or args.seed:
                raise UsageError("%%track: --stop-on-error, --best-by, --jobs, --cluster, --trials and --seed go "
                                 "with --grid EXPR or --search EXPR")
            from .secret_filter import redact_text

            magic_line = redact_text(f"%%track {line}".strip())
            run_tracked_cell(self.shell, cell, options, extra_tags={"jupyter_tracking.magic": magic_line})
        except SyntaxError as error:  # the cell's code: shown like Python's own, not through our frames
            raise CellSyntaxError(error) from None
        return None

    def _sweep(self, args: Any, cell: str, options: Any) -> None:
        """``--grid`` / ``--search``, sequential or on ``--jobs``/``--cluster`` (sweep.py, search.py)."""
        __tracebackhide__ = True
        from .parallel import EngineChoice, SweepSetupError
        from .sweep import GridError, grid_from_expression, parse_best_by, run_grid

        if args.grid is not None and args.search is not None:
            raise UsageError("%%track: --grid and --search do not go together")
        if args.search is None and (args.trials or args.seed is not None):
            raise UsageError("%%track: --trials and --seed go with --search EXPR")
        engine = EngineChoice(args.jobs, args.cluster)
        from .cell_code import compile_cell

        compile_cell(self.shell, self.shell.transform_cell(cell), cell)  # no sweep for code that cannot run
        try:
            best_by = parse_best_by(args.best_by, options.experiment)
            if args.grid is not None:
                grid = grid_from_expression(self.shell, _unquote(" ".join(args.grid)))
                run_grid(self.shell, cell, options, grid, stop_on_error=args.stop_on_error, best_by=best_by,
                         engine=engine)
                return None
            from .search import run_search, space_from_expression

            if not args.trials:
                raise GridError("--search needs --trials N")
            space = space_from_expression(self.shell, _unquote(" ".join(args.search)))
            run_search(self.shell, cell, options, space, args.trials, best_by=best_by, engine=engine,
                       seed=args.seed, stop_on_error=args.stop_on_error)
        except (GridError, SweepSetupError) as error:
            raise UsageError(f"%%track: {error}") from None
        return None

    @magic_arguments()
    @argument("experiment", nargs="?", default=None, help="experiment name (default: the current one)")
    @argument("--filter", help="MLflow search syntax: \"params.min_leaf = '3' and metrics.test_acc > 0.44\"")
    @argument("--sort", help="column to sort by: val_loss, --sort=-val_loss or 'val_loss DESC' (descending), params.max_depth")
    @argument("--max", type=_positive_int, help="at most N runs")
    @line_magic
    def runs(self, line: str) -> Any:
        """Show the comparison panel for an experiment's runs (``%runs``); ``p = %runs`` keeps it (``p.df``)."""
        args = _parse(self.runs, line)
        from .panels.compare import runs
        from .recovery import recover_and_report

        recover_and_report()

        return _reported(runs, args.experiment, filter=args.filter, sort=args.sort, max_results=args.max)

    # ------------------------------------------------------------------ line forms
    def _track_line(self, line: str) -> Any:
        words = line.strip().split(None, 1)
        if not words:
            from .api import status
            from .recovery import recover_and_report

            recover_and_report()
            print(repr(status()))
            return None
        command, rest = words[0], (words[1] if len(words) > 1 else "")
        handler = _LINE_COMMANDS.get(command)
        if handler is None:
            choices = ", ".join(sorted(_LINE_COMMANDS))
            raise UsageError(f"%track: unknown command {command!r}; use one of: {choices} (or %%track on a cell)")
        return handler(self, rest)

    @magic_arguments()
    @argument("--uri", help="any MLflow tracking URI (sqlite:///..., http(s)://..., databricks)")
    @argument("--experiment", type=_experiment_name, help="default experiment for tracked cells")
    @argument("--notebook", metavar="PATH", help="the notebook file this kernel runs, where it cannot tell itself")
    @argument("--goal", action="append", default=[], metavar="METRIC:min|max|auto",
              help="which way METRIC improves, kept with the experiment (repeatable or a,b list; auto: the rule)")
    def _config(self, rest: str) -> None:
        """%track config [--uri URI] [--experiment NAME] [--notebook PATH] [--goal METRIC:min|max|auto ...]"""
        args = _parse(self._config, rest)
        from .api import configure
        from .goals import GoalError, parse_goal_overrides

        try:
            goals = parse_goal_overrides(args.goal) if args.goal else None
        except GoalError as error:
            raise UsageError(f"%track config: {error}") from None
        location = _reported(configure, uri=args.uri, experiment=args.experiment, goals=goals, notebook=args.notebook)
        from .store import default_experiment_name

        print(f"jupyter_tracking: runs go to {location.describe()}, experiment {default_experiment_name()!r}")
        if goals:
            from .goals import overrides_for

            current = _reported(overrides_for, location, default_experiment_name())
            shown = ", ".join(f"{metric} {goal}" for metric, goal in sorted(current.items()))
            print(f"jupyter_tracking: goals set for this experiment: {shown or 'none (the rule decides)'}")

    def _sync(self, rest: str) -> None:
        """%track sync"""
        if rest.strip():
            raise UsageError("%track sync takes no arguments")
        from .api import sync

        try:
            delivered = sync()
        except ConnectionError as error:
            print(f"jupyter_tracking: nothing delivered: {error}; try again when it is back.", file=sys.stderr)
            return
        except Exception as error:
            if not _is_store_error(error):
                raise
            from .store import describe_store_error, resolve_store

            message = describe_store_error(error, resolve_store())
            print(f"jupyter_tracking: nothing delivered: {message}; the spooled runs are kept.", file=sys.stderr)
            return
        if delivered:
            print(f"jupyter_tracking: delivered {len(delivered)} spooled run(s): {', '.join(delivered)}")
        else:
            print("jupyter_tracking: nothing to sync")


    def _recover(self, rest: str) -> None:
        """%track recover"""
        if rest.strip():
            raise UsageError("%track recover takes no arguments")
        from .api import recover

        report = _reported(recover)
        for text in repr(report).splitlines():
            print(f"jupyter_tracking: {text}")

    @magic_arguments()
    @argument("metric", help="metric to rank runs by")
    @argument("--max", action="store_true", help="higher is better")
    @argument("--min", action="store_true", help="lower is better (default for both: the metric's goal)")
    @argument("-e", "--experiment", type=_experiment_name, help="experiment (default: the current one)")
    def _best(self, rest: str) -> None:
        """%track best METRIC [--max | --min] [-e EXPERIMENT]"""
        args = _parse(self._best, rest)
        if args.max and args.min:
            raise UsageError("%track best: give --max or --min, not both")
        from .reuse import show_best

        _reported(show_best, args.metric, "max" if args.max else "min" if args.min else None, args.experiment)

    @magic_arguments()
    @argument("run_id")
    @argument("names", nargs="*", help="artifact or param names (default: all)")
    @argument("--trust", action="store_true", help="also unpickle objects this user did not write")
    def _load(self, rest: str) -> None:
        """%track load RUN_ID [NAME ...] [--trust]"""
        args = _parse(self._load, rest)
        from .reuse import load_into

        _reported(load_into, self.shell.user_ns, args.run_id, list(args.names), args.trust)

    @magic_arguments()
    @argument("run_id")
    def _restore(self, rest: str) -> None:
        """%track restore RUN_ID"""
        args = _parse(self._restore, rest)
        from .reuse import restore_into

        _reported(restore_into, self.shell.user_ns, args.run_id)

    @magic_arguments()
    @argument("run_id")
    def _rerun(self, rest: str) -> None:
        """%track rerun RUN_ID"""
        args = _parse(self._rerun, rest)
        from .reuse import rerun

        __tracebackhide__ = True
        _reported(rerun, self.shell, args.run_id)

    @magic_arguments()
    @argument("run_a")
    @argument("run_b")
    def _diff(self, rest: str) -> None:
        """%track diff RUN_A RUN_B"""
        args = _parse(self._diff, rest)
        from .reuse import show_diff

        _reported(show_diff, args.run_a, args.run_b)


def _reported(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call into queries/sweep; a problem the user can fix (QueryError, GridError) becomes a one-line UsageError."""
    from .queries import QueryError
    from .sweep import GridError

    __tracebackhide__ = True
    try:
        return function(*args, **kwargs)
    except (QueryError, GridError) as error:
        raise UsageError(str(error)) from None
    except Exception as error:
        if not _is_store_error(error):
            raise
        from .store import describe_store_error, resolve_store

        raise UsageError(describe_store_error(error, resolve_store())) from None


def _is_store_error(error: BaseException) -> bool:
    """An error from the tracking store (MLflow's REST/SQL errors, refused or dropped connections)."""
    if isinstance(error, (ConnectionError, OSError)):
        return True
    module = type(error).__module__ or ""
    return module.startswith(("mlflow.exceptions", "requests", "urllib3", "sqlalchemy"))


_LINE_COMMANDS: dict[str, Any] = {
    "config": TrackingMagics._config,
    "sync": TrackingMagics._sync,
    "recover": TrackingMagics._recover,
    "best": TrackingMagics._best,
    "load": TrackingMagics._load,
    "restore": TrackingMagics._restore,
    "rerun": TrackingMagics._rerun,
    "diff": TrackingMagics._diff,
}


def register(ipython: Any) -> None:
    """Register the magics and hooks, and say in one line where runs will go."""
    from . import context
    from .store import default_experiment_name, resolve_store

    ipython.register_magics(TrackingMagics)
    ipython.register_magics(TrackingUIMagics)
    context.install_cell_hooks(ipython)
    location = resolve_store()
    print(f"jupyter_tracking: runs go to {location.describe()}, experiment {default_experiment_name()!r}")
    from . import preload

    preload.start(then=lambda: _after_mlflow_import(location))


def _after_mlflow_import(location: Any) -> None:
    """In the import thread of ``%load_ext``: end runs of dead kernels (one line if any), or, for a project
    without a store yet, make sure the migrated empty store of this MLflow version is ready to be copied."""
    if location.not_created_yet:
        from .store_template import ensure_template

        try:
            ensure_template()
        except Exception:  # noqa: BLE001 - the first tracked cell creates the store another way and says why
            pass
        return
    from .recovery import recover_and_report

    recover_and_report(location)


def unregister(ipython: Any) -> None:
    from . import context

    context.uninstall_cell_hooks(ipython)


@magics_class
class TrackingUIMagics(Magics):
    """``%tracking_ui``: the MLflow UI for the current store (work done by ``jupyter_tracking.sharing.ui``)."""

    @magic_arguments()
    @argument("--port", type=int, default=None, help="serve on this 127.0.0.1 port (default: a free one)")
    @argument("--share", action="store_true", help="a public URL through localtunnel, behind MLflow's login")
    @argument("--no-auth", action="store_true", help="with --share: no login (anyone with the URL gets in)")
    @argument("--tunnel-host", default=None, metavar="URL", help="with --share: use this localtunnel server")
    @argument("--stop", action="store_true", help="end the UI server and its tunnel")
    @argument("--status", action="store_true", help="say what runs and where")
    @argument("--height", type=_positive_int, default=800, help="height of the inline view in pixels")
    @line_magic
    def tracking_ui(self, line: str = "") -> None:
        """%tracking_ui [--port P] [--share [--no-auth] [--tunnel-host URL]] [--stop] [--status]"""
        try:
            args = parse_argstring(self.tracking_ui, line)
        except ValueError as error:
            raise UsageError(f"%tracking_ui: {error}") from None
        from .sharing import SharingUsageError, ui

        try:
            ui(
                port=args.port, share=args.share, stop=args.stop, status=args.status, no_auth=args.no_auth,
                tunnel_host=_unquote(args.tunnel_host), height=args.height,
            )
        except SharingUsageError as error:
            raise UsageError(f"%tracking_ui: {error}") from None
