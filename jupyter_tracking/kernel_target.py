"""What the JupyterLab side panel asks a kernel: the store and experiment its tracked cells write to.

The extension evaluates ``target()`` as a silent user expression (only in a kernel that has already imported
jupyter_tracking), so the panel opens on this kernel's experiment rather than guessing from the store.
Nothing here imports MLflow or touches the store: the answer comes from the session's settings and caches.
"""

from __future__ import annotations

from typing import Any


class Target(dict):
    """A dict shown to the front end as JSON (``application/json`` in the user expression's answer)."""

    def _repr_json_(self) -> dict[str, Any]:
        return dict(self)


def target() -> Target:
    """``{"experiment": name, "experiment_id": id or None, "store": redacted URI, "last_run_id": id or None}``."""
    from .session import current_session
    from .store import default_experiment_name, redact_uri, resolve_store

    session = current_session()
    location = resolve_store(session=session)
    name = default_experiment_name(session)
    last = session.last_summary
    last_run = getattr(last, "run_id", None) if getattr(last, "experiment_name", None) == name else None
    return Target(
        experiment=name,
        experiment_id=session.experiment_ids.get((location.uri, name)),
        store=redact_uri(location.uri),
        last_run_id=last_run,
    )
