"""What ``%runs`` and ``%track best|load|restore|rerun|diff`` do once their arguments are parsed.

Plain functions over ``queries``/``sweep``/``panels.compare`` plus the one-line messages the user sees; the
magics in ``magics.py`` only parse and call these. Errors a user can fix come out as ``QueryError``.
"""

from __future__ import annotations

import html
from typing import Any

from . import queries
from .bound_names import as_names
from .panels.text import visible


def _say(message: str) -> None:
    print(f"jupyter_tracking: {message}")


def best_bundle(run: Any, metric: str, mode: str) -> dict[str, str]:
    """A compact description of the best run: name, id, the metric, its params (text and escaped HTML)."""
    metric = metric.removeprefix("metrics.")
    value = run.data.metrics.get(metric)
    params = ", ".join(f"{k}={v}" for k, v in sorted(run.data.params.items()))
    parent = run.data.tags.get(queries.PARENT_TAG)
    text = (f"best run by {metric} ({'lowest' if mode == 'min' else 'highest'}): {run.info.run_name} "
            f"({run.info.run_id})  {metric} = {value:.6g}")
    if parent:
        text += f"  [child of sweep {parent}]"
    if params:
        text += f"\n  params: {params}"
    e = html.escape
    page = (f'<div class="jt-best"><b>best run by {e(metric)}</b> ({"lowest" if mode == "min" else "highest"}): '
            f'{e(str(run.info.run_name))} <code>{e(run.info.run_id)}</code> &middot; {e(metric)} = '
            f'<b>{e(f"{value:.6g}")}</b>' + (f"<br>params: {e(params)}" if params else "") + "</div>")
    return {"text/plain": text, "text/html": page}


def show_best(metric: str, mode: str | None = None, experiment: str | None = None) -> Any:
    """``%track best``: show the best run and return it (an MLflow ``Run``); without ``mode`` the metric's goal
    decides (a QueryError naming --max/--min when it is unknown)."""
    from IPython.display import display

    if mode is None:
        mode = queries.goal_for(metric, experiment)
    run = queries.best(metric, mode, experiment)
    display(best_bundle(run, metric, mode), raw=True)
    return run


def load_into(namespace: dict[str, Any], run_id: str, names: list[str], trust: bool = False) -> list[str]:
    """``%track load``: bind a run's artifacts (and params) as names; says in one line what was bound.

    Pickles not written by this user are refused unless ``trust`` (``object_artifacts``).
    """
    values = queries.load(run_id, *names, trust=trust)
    artifacts = set(queries.artifact_names(run_id))
    namespace.update(as_names(values))
    objects = [n for n in values if n in artifacts]
    params = [n for n in values if n not in artifacts]
    parts = []
    if objects:
        parts.append(f"objects {', '.join(objects)}")
    if params:
        parts.append(f"params {', '.join(params)}")
    _say(f"loaded {' and '.join(parts) if parts else 'nothing (the run logged no artifacts or params)'} "
         f"from run {run_id}")
    return list(values)


def bindable(values: dict[str, Any], namespace: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The params that may be bound as names, and the names skipped.

    Skipped: names that are not plain identifiers, keywords, private names (``_x``), builtins (``len``,
    ``print``), and names that hold code now (a module, function, class or other callable: ``np``, ``jt``,
    ``get_ipython``): a run's params never replace what the user did not log as a param.
    """
    import builtins
    import keyword

    kept: dict[str, Any] = {}
    skipped: list[str] = []
    for name, value in values.items():
        current = namespace.get(name)
        if (not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") or hasattr(builtins, name)
                or (name in namespace and (callable(current) or type(current).__name__ == "module"))):
            skipped.append(name)
        else:
            kept[name] = value
    return kept, skipped


def restore_into(namespace: dict[str, Any], run_id: str) -> list[str]:
    """``%track restore``: bind a run's params as names (values as Python objects); one line says what was
    bound and one what was skipped (``bindable``)."""
    values, skipped = bindable(queries.restore(run_id), namespace)
    namespace.update(as_names(values))
    shown = visible(", ".join(f"{k}={v!r}" for k, v in values.items()))
    _say(f"restored {len(values)} param(s) from run {run_id}: {shown}" if values
         else f"run {run_id} has no params to restore")
    if skipped:
        _say(f"not restored (builtins, code or private names): {visible(', '.join(sorted(skipped)))}")
    return list(values)


def show_diff(run_a: str, run_b: str) -> None:
    from IPython.display import display

    display(queries.diff(run_a, run_b))


def rerun(shell: Any, run_id: str) -> None:
    from . import sweep

    sweep.rerun(shell, run_id)
