"""IPython magics: argument parsing and dispatch only; the work is done by the Python API.

``%%track`` (cell) runs a cell as one MLflow run; ``%track`` (line) shows the status or runs a subcommand
(``config``, ``sync``, ...). Bad arguments raise ``UsageError``: one line, the cell is not run.
"""

from __future__ import annotations

import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring


def _name_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if not name.replace(".", "_").isidentifier():
            raise ValueError(f"{name!r} is not a variable name")
    if not names:
        raise ValueError("expected comma-separated variable names")
    return names


def _tag(text: str) -> tuple[str, str]:
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _positive_int(text: str) -> int:
    number = int(text)
    if number <= 0:
        raise ValueError(f"expected a positive whole number, got {text!r}")
    return number


# argparse shows a converter's __name__ in its messages ("invalid _name_list value"): give readable names.
_name_list.__name__ = "comma-separated names"
_tag.__name__ = "KEY=VALUE"
_positive_int.__name__ = "positive integer"


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
    @argument("-e", "--experiment", help="experiment name (default: the configured one, else the notebook's name)")
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
    @line_cell_magic
    def track(self, line: str, cell: str | None = None) -> Any:
        """Track a cell as one MLflow run (``%%track``), or show/change tracking (``%track ...``).

        Line forms: ``%track`` (status), ``%track config [--uri URI] [--experiment NAME]``,
        ``%track sync`` (deliver runs spooled while the store was unreachable).
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
        run_tracked_cell(self.shell, cell, options)
        return None

    # ------------------------------------------------------------------ line forms
    def _track_line(self, line: str) -> Any:
        words = line.strip().split(None, 1)
        if not words:
            from .api import status

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
    @argument("--experiment", help="default experiment for tracked cells")
    def _config(self, rest: str) -> None:
        """%track config [--uri URI] [--experiment NAME]"""
        args = _parse(self._config, rest)
        from .api import configure

        location = configure(uri=args.uri, experiment=args.experiment)
        from .store import default_experiment_name

        print(f"jupyter_tracking: runs go to {location.describe()}, experiment {default_experiment_name()!r}")

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
        if delivered:
            print(f"jupyter_tracking: delivered {len(delivered)} spooled run(s): {', '.join(delivered)}")
        else:
            print("jupyter_tracking: nothing to sync")


_LINE_COMMANDS: dict[str, Any] = {
    "config": TrackingMagics._config,
    "sync": TrackingMagics._sync,
}


def register(ipython: Any) -> None:
    """Register the magics and hooks, and say in one line where runs will go."""
    from . import context
    from .store import default_experiment_name, resolve_store

    ipython.register_magics(TrackingMagics)
    context.install_cell_hooks(ipython)
    location = resolve_store()
    print(f"jupyter_tracking: runs go to {location.describe()}, experiment {default_experiment_name()!r}")


def unregister(ipython: Any) -> None:
    from . import context

    context.uninstall_cell_hooks(ipython)
