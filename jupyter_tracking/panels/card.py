"""The run card shown after a tracked cell: one MIME bundle that reads well everywhere.

``text/plain`` for terminals and nbval, ``text/html`` (inline styles only, every value escaped) for Jupyter,
nbconvert and GitHub, and ``application/vnd.jupyter-tracking.run+json`` for the JupyterLab extension.
Params changed since the previous run of the same cell are marked; metrics show the change against that
run and against the experiment's best run, coloured better/worse by the metric's goal (``goals.metric_goal``,
carried in the JSON as ``goal``: ``"min"``, ``"max"`` or ``null``). An unknown goal is shown neutral.

The card lists everything the run holds: what was captured, and what the cell logged itself (``mlflow.log_*``,
autolog; marked ``logged: true`` and grouped after the captured items). It stays small whatever the run holds:
the most relevant ``SHOWN_METRICS`` metrics and ``SHOWN_PARAMS`` params are shown, the rest counted and folded
(at most ``FOLDED_ITEMS`` of them named; the JSON carries ``params_total`` / ``metrics_total``).

Only what changed is shown (a run like its predecessor says "no change" once), a metric that beats the
experiment's earlier best gets a "new best" badge, and "best" is left out where the previous run is the best.
Numbers follow ``numbers.format_number``; the JSON carries the formatted strings (``value_text``,
``delta_text``, ``best_text``) and the rule (``number_format``) so the JupyterLab card shows the same text.
Colours are JupyterLab's ``--jp-*`` variables with light-theme fallbacks (nbconvert, GitHub).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from ..goals import metric_goal
from .numbers import NUMBER_FORMAT, changed, format_delta, format_number
from .text import visible

MIME_TYPE = "application/vnd.jupyter-tracking.run+json"
SHOWN_PARAMS = 30
SHOWN_METRICS = 20
FOLDED_ITEMS = 200
GOOD = "var(--jp-success-color1,#2e7d32)"
BAD = "var(--jp-error-color1,#c62828)"
MUTED = "var(--jp-ui-font-color2,#616161)"
NOTICE = "var(--jp-warn-color0,#8a6d3b)"
CHANGED_BACKGROUND = "rgba(255,170,0,0.18)"  # a tint under inherited text: readable on light and dark
STATUS_COLOURS = {"FINISHED": GOOD, "FAILED": BAD, "KILLED": "var(--jp-warn-color1,#ef6c00)",
                  "RUNNING": "var(--jp-brand-color1,#1565c0)"}


@dataclass
class Comparison:
    """What the card compares with: the previous run of the same cell and the best values per metric."""

    previous_run_id: str | None = None
    previous_params: dict[str, str] = field(default_factory=dict)
    previous_metrics: dict[str, float] = field(default_factory=dict)
    best: dict[str, tuple[float, str]] = field(default_factory=dict)  # key -> (value, run id)
    goals: dict[str, str] = field(default_factory=dict)  # the experiment's overrides (goals.metric_goal)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def card_data(summary: Any, comparison: Comparison, *, notebook: str | None, cell_id: str | None,
              ui_url: str | None = None, logged: Any = None) -> dict[str, Any]:
    """The JSON document of the card (the extension's MIME type), from a RunSummary and its comparison.

    ``logged``: the params and metrics the run holds in the store (``{"params": {...}, "metrics": {...}}``); those
    the summary does not have were logged by the cell itself or by autolog.
    """
    duration = None if summary.end_time is None else max(0.0, summary.end_time - summary.start_time)
    param_values = {key: (value, False) for key, value in summary.params.items()}
    for key, value in ((logged or {}).get("params") or {}).items():
        param_values.setdefault(key, (value, True))
    params = [
        {
            "key": key,
            "value": value,
            "previous": comparison.previous_params.get(key),
            "changed": comparison.previous_run_id is not None and comparison.previous_params.get(key) != value,
            **({"logged": True} if by_cell else {}),
        }
        for key, (value, by_cell) in sorted(param_values.items(), key=lambda item: (item[1][1], item[0]))
    ]
    metric_values = {key: (value, False) for key, value in summary.metrics.items()}
    # Step series are summarised by their last value.
    for key, value in summary.last_step_values.items():
        metric_values.setdefault(key, (value, False))
    for key, value in ((logged or {}).get("metrics") or {}).items():
        metric_values.setdefault(key, (value, True))
    metrics = []
    for key, (value, by_cell) in metric_values.items():
        best = comparison.best.get(key)
        entry = {
            "key": key,
            "value": value,
            "previous": comparison.previous_metrics.get(key),
            "best": best[0] if best else None,
            "best_run_id": best[1] if best else None,
            "goal": metric_goal(key, comparison.goals),
            "steps": summary.step_counts.get(key, 0),
            **({"logged": True} if by_cell else {}),
        }
        entry.update(_metric_texts(entry, comparison.previous_run_id))
        metrics.append(entry)
    params_total, metrics_total = len(params), len(metrics)
    params = params[: SHOWN_PARAMS + FOLDED_ITEMS]
    metrics = _most_relevant(metrics)[: SHOWN_METRICS + FOLDED_ITEMS]
    best_run_id = next((entry["best_run_id"] for entry in metrics if entry["best_run_id"]), None)
    return {
        "version": 1,
        "run_id": summary.run_id,
        "run_name": summary.run_name,
        "experiment_id": summary.experiment_id,
        "experiment_name": summary.experiment_name,
        "status": summary.status,
        "start_time": int(summary.start_time * 1000),
        "end_time": None if summary.end_time is None else int(summary.end_time * 1000),
        "duration_s": duration,
        "tracking_uri": summary.tracking_uri,
        "notebook": notebook,
        "cell_id": cell_id,
        "previous_run_id": comparison.previous_run_id,
        "best_run_id": best_run_id,
        "note": getattr(summary, "note", None),
        "no_change": comparison.previous_run_id is not None
        and not any(p["changed"] for p in params) and not any(m["delta_text"] for m in metrics),
        "number_format": dict(NUMBER_FORMAT),
        "params": params,
        "metrics": metrics,
        "params_total": params_total,
        "metrics_total": metrics_total,
        "withheld": list(summary.withheld),
        "spooled": summary.spooled,
        "ui_url": ui_url,
        "child_runs": [{"run_id": run_id, "run_name": name} for run_id, name in getattr(summary, "child_runs", [])],
        "renamed_params": dict(getattr(summary, "renamed_params", {})),
        "refused": list(getattr(summary, "refused", [])),
    }


def _most_relevant(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Metrics in the order the card shows them: the ``SHOWN_METRICS`` most relevant (curves, then metrics whose
    goal is known, then short top-level keys) alphabetically, captured before cell-logged; then the rest."""
    ranked = sorted(metrics, key=lambda metric: (
        metric["steps"] < 2, metric["goal"] is None, metric["key"].count("."), len(metric["key"]), metric["key"],
    ))
    order = lambda metric: (bool(metric.get("logged")), metric["key"])  # noqa: E731
    return sorted(ranked[:SHOWN_METRICS], key=order) + sorted(ranked[SHOWN_METRICS:], key=order)


def _shown_and_folded(data: dict[str, Any], kind: str) -> tuple[list[dict], list[dict], int, int]:
    """(shown, folded, folded but not named, how many the run logged itself) for ``params`` or ``metrics``."""
    items = data[kind]
    limit = SHOWN_PARAMS if kind == "params" else SHOWN_METRICS
    total = data.get(f"{kind}_total", len(items))
    by_cell = sum(1 for item in items if item.get("logged"))
    return items[:limit], items[limit:], total - len(items), by_cell


def _metric_texts(metric: dict[str, Any], previous_run_id: str | None) -> dict[str, Any]:
    """The formatted strings of a metric's row and whether it is a new best (the JSON carries them)."""
    value, best = metric["value"], metric["best"]
    new_best = best is not None and _better(metric, best) is True
    # "best" is said only where it adds something: not a new best, not the previous run, not this value.
    show_best = (best is not None and not new_best and metric["best_run_id"] != previous_run_id
                 and changed(value, best))
    return {
        "value_text": format_number(value),
        "delta_text": format_delta(value, metric["previous"]),
        "best_text": format_number(best) if show_best else "",
        "new_best": new_best,
    }


def render_text(data: dict[str, Any]) -> str:
    """Plain-text card: a header line, params (changed ones marked), metrics with deltas."""
    run_id = data["run_id"] or "(spooled)"
    lines = [
        f"run {data['run_name'] or ''} [{run_id}] {data['status']} in {format_duration(data['duration_s'])}"
        f" · experiment {data['experiment_name']}"
    ]
    shown_params = [param for param in _shown_and_folded(data, "params")[0] if not param.get("logged")]
    shown_metrics = [metric for metric in _shown_and_folded(data, "metrics")[0] if not metric.get("logged")]
    if data.get("note"):
        lines.append(f"note:    {data['note']}")
    if shown_params:
        parts = []
        for param in shown_params:
            text = f"{param['key']}={_short(param['value'])}"
            if param["changed"]:
                text += f" (was {_short(param['previous']) if param['previous'] is not None else 'unset'})"
            parts.append(text)
        lines.append("params:  " + ", ".join(parts))
    if shown_metrics:
        parts = []
        for metric in shown_metrics:
            text = f"{metric['key']}={metric['value_text']}"
            extras = []
            if metric["new_best"]:
                extras.append("new best")
            if metric["delta_text"]:
                extras.append(f"{metric['delta_text']} vs previous")
            if metric["best_text"]:
                extras.append(f"best {metric['best_text']}")
            if metric["steps"] > 1:
                extras.append(f"{metric['steps']} steps")
            if extras:
                text += f" ({', '.join(extras)})"
            parts.append(text)
        lines.append("metrics: " + ", ".join(parts))
    if data.get("no_change"):
        lines.append("no change from the previous run")
    lines.extend(_logged_and_folded_lines(data))
    lines.extend(_run_notes(data))
    return visible("\n".join(lines))


def _logged_and_folded_lines(data: dict[str, Any]) -> list[str]:
    """What the cell (or autolog) logged itself, then how many items are folded away (plain text)."""
    lines = []
    groups = []
    for kind in ("params", "metrics"):
        shown, _, _, by_cell = _shown_and_folded(data, kind)
        mine = [item for item in shown if item.get("logged")]
        if mine:
            values = ", ".join(
                f"{item['key']}={_short(item['value']) if kind == 'params' else format_number(item['value'])}"
                for item in mine)
            more = by_cell - len(mine)
            groups.append(f"{kind} {values}" + (f" (+{more} more)" if more > 0 else ""))
        elif by_cell:
            groups.append(f"{by_cell} {kind}")
    if groups:
        lines.append("logged by the cell or autolog: " + "; ".join(groups))
    hidden = [f"{len(folded) + unnamed} more {kind}"
              for kind in ("params", "metrics")
              for _, folded, unnamed, _ in [_shown_and_folded(data, kind)] if folded or unnamed]
    if hidden:
        lines.append("not shown: " + ", ".join(hidden))
    return lines


def _run_notes(data: dict[str, Any]) -> list[str]:
    """The card's closing lines (plain text; the HTML card escapes them): child runs, renamed params,
    refusals, withheld names, spooling."""
    notes = []
    if data.get("child_runs"):
        names = ", ".join(f"{child['run_name']} [{child['run_id'][:8]}]" for child in data["child_runs"][:10])
        more = len(data["child_runs"]) - 10
        notes.append(f"child runs: {names}" + (f" and {more} more" if more > 0 else ""))
    if data.get("renamed_params"):
        notes.append("already logged by the cell with another value (captured value kept as): " + ", ".join(
            f"{key} -> {derived}" for key, derived in data["renamed_params"].items()))
    if data.get("refused"):
        notes.append(f"refused by the store ({len(data['refused'])}): " + "; ".join(data["refused"][:3]))
    if data["withheld"]:
        notes.append("withheld (look like credentials): " + ", ".join(data["withheld"]))
    if data.get("spooled"):
        notes.append("spooled: the store was unreachable; `%track sync` delivers this run")
    return notes


def _short(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _better(metric: dict[str, Any], reference: float | None) -> bool | None:
    """Whether the value improves on ``reference``; None when equal, not comparable or the goal is unknown."""
    if reference is None or metric["value"] == reference or metric.get("goal") not in ("min", "max"):
        return None
    improved = metric["value"] < reference
    return improved if metric["goal"] == "min" else not improved


def render_html(data: dict[str, Any]) -> str:
    """HTML card with inline styles (GitHub and nbconvert keep them); every value is escaped."""
    esc = html.escape
    colour = STATUS_COLOURS.get(data["status"], MUTED)
    badge = (f' <span style="background:{GOOD};color:var(--jp-ui-inverse-font-color1,#fff);border-radius:8px;'
             f'padding:0 6px;font-size:11px;font-weight:600">new best</span>')
    head = (
        f'<div style="font-weight:600">{esc(str(data["run_name"] or ""))} '
        f'<span style="color:{colour}">{esc(data["status"])}</span> '
        f'<span style="color:{MUTED};font-weight:400">{esc(format_duration(data["duration_s"]))} · '
        f'experiment {esc(str(data["experiment_name"]))} · run {esc(str(data["run_id"] or "spooled"))}</span>'
        f'{badge if any(m.get("new_best") for m in data["metrics"]) else ""}</div>'
    )
    note = f'<div style="font-style:italic;margin-top:2px">{esc(data["note"])}</div>' if data.get("note") else ""
    cell = "padding:1px 8px"
    rows = []
    shown_params, folded_params, unnamed_params, _ = _shown_and_folded(data, "params")
    shown_metrics, folded_metrics, unnamed_metrics, _ = _shown_and_folded(data, "metrics")
    for param in [param for param in shown_params if not param.get("logged")]:
        changed_ = param["changed"]
        was = "" if not changed_ else f' <span style="color:{MUTED}">(was {esc(_short(param["previous"]) if param["previous"] is not None else "unset")})</span>'
        style = f"background:{CHANGED_BACKGROUND};" if changed_ else ""
        rows.append(
            f'<tr style="{style}"><td style="{cell};color:{MUTED}">param</td>'
            f'<td style="{cell}">{esc(param["key"])}</td>'
            f'<td style="{cell}">{esc(_short(param["value"]))}{was}</td></tr>'
        )
    for metric in [metric for metric in shown_metrics if not metric.get("logged")]:
        better = _better(metric, metric["previous"])
        delta_colour = MUTED if better is None else (GOOD if better else BAD)
        extras = []
        if metric["new_best"]:
            extras.append(badge.strip())
        if metric["delta_text"]:
            extras.append(f'<span style="color:{delta_colour}">{esc(metric["delta_text"])} vs previous</span>')
        if metric["best_text"]:
            extras.append(f'<span style="color:{MUTED}">best {esc(metric["best_text"])}</span>')
        if metric["steps"] > 1:
            extras.append(f'<span style="color:{MUTED}">{metric["steps"]} steps</span>')
        rows.append(
            f'<tr><td style="{cell};color:{MUTED}">metric</td>'
            f'<td style="{cell}">{esc(metric["key"])}</td>'
            f'<td style="{cell}"><b>{esc(metric["value_text"])}</b> {" · ".join(extras)}</td></tr>'
        )
    table = (f'<table style="border-collapse:collapse;font-size:12px;margin-top:4px;color:inherit">{"".join(rows)}'
             '</table>') if rows else ""
    logged = [item for item in [*shown_params, *shown_metrics] if item.get("logged")]
    by_cell = sum(1 for item in [*data["params"], *data["metrics"]] if item.get("logged"))
    if logged:
        table += _folded_html(f"logged by the cell or autolog ({by_cell})", logged, 0, open_=True)
    folded = [*folded_params, *folded_metrics]
    if folded or unnamed_params or unnamed_metrics:
        table += _folded_html("more", folded, unnamed_params + unnamed_metrics)
    same = (f'<div style="color:{MUTED};font-size:12px">no change from the previous run</div>'
            if data.get("no_change") else "")
    footer = "".join(f'<div style="color:{NOTICE};font-size:12px">{esc(note)}</div>' for note in _run_notes(data))
    return (
        f'<div class="jupyter-tracking-card" style="border-left:4px solid {colour};padding:4px 10px;'
        f'color:var(--jp-content-font-color1,inherit);font-family:var(--jp-ui-font-family,sans-serif);'
        f'font-size:13px;max-width:100%;overflow-x:auto">{head}{note}{table}{same}{footer}</div>'
    )


def _folded_html(label: str, items: list[dict[str, Any]], unnamed: int, *, open_: bool = False) -> str:
    """A ``<details>`` block listing ``items`` (params have a ``changed`` key, metrics a ``steps`` key) as
    ``key value`` rows, with ``unnamed`` more counted at its end."""
    esc = html.escape
    rows = []
    for item in items:
        kind = "metric" if "steps" in item else "param"
        value = format_number(item["value"]) if kind == "metric" else _short(item["value"])
        rows.append(f'<tr><td style="padding:1px 8px;color:{MUTED}">{kind}</td><td style="padding:1px 8px">'
                    f'{esc(item["key"])}</td><td style="padding:1px 8px">{esc(value)}</td></tr>')
    if unnamed:
        rows.append(f'<tr><td colspan="3" style="padding:1px 8px;color:{MUTED}">and {unnamed} more</td></tr>')
    total = len(items) + unnamed
    summary = esc(label) if open_ else f"{total} more ({esc(_counts(items, unnamed))})"
    return (f'<details{" open" if open_ else ""} style="font-size:12px;margin-top:2px"><summary style="cursor:pointer;'
            f'color:{MUTED}">{summary}</summary><table style="border-collapse:collapse">{"".join(rows)}</table></details>')


def _counts(items: list[dict[str, Any]], unnamed: int) -> str:
    metrics = sum(1 for item in items if "steps" in item)
    parts = [f"{len(items) - metrics} params" if len(items) - metrics else "", f"{metrics} metrics" if metrics else "",
             f"{unnamed} not listed" if unnamed else ""]
    return ", ".join(part for part in parts if part)


def card_bundle(data: dict[str, Any]) -> dict[str, Any]:
    """The MIME bundle to display."""
    return {"text/plain": render_text(data), "text/html": render_html(data), MIME_TYPE: data}
