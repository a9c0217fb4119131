"""What the run card compares a finished run with: the previous run of its cell and the best earlier values.

Read from the store once per cell and metric, then kept in the session (``Session.card_history``) and updated
as runs finish. ``show_card`` displays the card under the cell. Only reads runs.
"""

from __future__ import annotations

from typing import Any

from .. import context as context_module
from .. import store as store_module

MAX_BEST_LOOKUPS = 8
MAX_READ_BACK = 1000  # runs with more captured items than this are not read back for what the cell logged


def comparison_for(summary: Any, session: Any):
    """The card's comparison for a finished run (previous run of its cell, best earlier values)."""
    from ..goals import metric_goal
    from .card import Comparison

    history = session.card_history
    comparison = Comparison()
    if summary.run_id is None or summary.experiment_id is None:
        return comparison
    location = store_module.resolve_store(session=session)
    client = store_module.client_for(location, session)
    uri = location.uri
    comparison.goals = history.goals.get(client, uri, summary.experiment_id)
    if summary.cell_key:
        key = (uri, summary.cell_key)
        if key not in history.previous:
            found = client.search_runs(
                [summary.experiment_id],
                filter_string=f"tags.`jupyter_tracking.cell_key` = '{_quote(summary.cell_key)}'",
                max_results=2, order_by=["attributes.start_time DESC"],
            )
            earlier = [run for run in found if run.info.run_id != summary.run_id]
            if earlier:
                run = earlier[0]
                history.previous[key] = (run.info.run_id, dict(run.data.params), dict(run.data.metrics))
        if key in history.previous:
            comparison.previous_run_id, comparison.previous_params, comparison.previous_metrics = history.previous[key]
    current = {**summary.metrics, **summary.last_step_values}
    for metric_key in sorted(current)[:MAX_BEST_LOOKUPS]:
        goal = metric_goal(metric_key, comparison.goals)
        if goal is None:
            continue  # unknown goal: no best to compare with
        cache_key = (uri, summary.experiment_id, metric_key, goal)
        if cache_key not in history.best:
            order = "ASC" if goal == "min" else "DESC"
            found = client.search_runs(
                [summary.experiment_id], order_by=[f"metrics.`{metric_key}` {order}"], max_results=2,
                filter_string=f"metrics.`{metric_key}` > -1e308",
            )
            earlier = [run for run in found if run.info.run_id != summary.run_id and metric_key in run.data.metrics]
            history.best[cache_key] = (earlier[0].data.metrics[metric_key], earlier[0].info.run_id) if earlier else None
        best = history.best[cache_key]
        if best is not None:
            comparison.best[metric_key] = best
    # This run becomes the previous one of its cell, and maybe the new best.
    if summary.status in ("FINISHED", "FAILED"):
        if summary.cell_key:
            history.previous[(uri, summary.cell_key)] = (summary.run_id, dict(summary.params), current)
        for metric_key, value in current.items():
            goal = metric_goal(metric_key, comparison.goals)
            cache_key = (uri, summary.experiment_id, metric_key, goal)
            best = history.best.get(cache_key)
            if cache_key in history.best and (
                best is None or (value < best[0] if goal == "min" else value > best[0])
            ):
                history.best[cache_key] = (value, summary.run_id)
    return comparison


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def logged_in_run(summary: Any, session: Any) -> dict[str, dict[str, Any]] | None:
    """The params and metrics the run holds in the store (with what the cell or autolog logged itself);
    None for a spooled run, when the store cannot say, or when nothing but our recorder wrote into the run (the
    summary is all there is, and the run's end may still be being written: run_ends.py)."""
    if summary.run_id is None or summary.spooled or not getattr(summary, "cell_logged", False):
        return None
    captured = len(summary.params) + len(summary.metrics) + len(summary.last_step_values)
    if captured > MAX_READ_BACK:
        return None  # the card folds most of such a run anyway: not worth reading it all back
    try:
        client = store_module.client_for(store_module.resolve_store(session=session), session)
        data = client.get_run(summary.run_id).data
    except Exception:  # noqa: BLE001 - the card then shows what was captured
        return None
    return {"params": dict(data.params), "metrics": dict(data.metrics)}


def show_card(summary: Any, session: Any) -> None:
    """Display the run card under the cell."""
    from IPython.display import display

    from .card import Comparison, card_bundle, card_data

    from ..sinks import quiet_store_logging

    try:
        with quiet_store_logging():  # a locked or failing store: no page of MLflow's SQL logging under the card
            comparison = comparison_for(summary, session) if not summary.spooled else Comparison()
    except Exception:  # noqa: BLE001 - a card without comparisons is better than none
        comparison = Comparison()
    notebook = context_module.notebook_path()
    data = card_data(
        summary, comparison, notebook=str(notebook) if notebook else None,
        cell_id=session.cell_id, ui_url=None, logged=logged_in_run(summary, session),
    )
    if context_module.frontend() == "none":
        from .card import render_text

        print(render_text(data))
    else:
        display(card_bundle(data), raw=True)
