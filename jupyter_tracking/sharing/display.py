"""How a UI server or a share is shown, per front end: one mapping from ``context.frontend()`` to a function.

Jupyter and VS Code get an inline iframe, Colab its kernel proxy (a port on the Colab VM is not reachable from
the browser otherwise), a terminal or a script a plain line. A share is shown the same way everywhere: a
small panel with the public URL, the tunnel password and, once, the login. While a server starts, a line with
a progress bar says how long it has been and what it is doing; the frame then takes its place, opened on this
experiment's runs in MLflow's training view (``ui_route``). Everything from outside (URLs, store names,
passwords) is escaped before it goes into HTML.
"""

from __future__ import annotations

import html
import sys
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..context import frontend

if TYPE_CHECKING:  # pragma: no cover
    from ..store import StoreLocation
    from .tunnel import Tunnel
    from .ui_server import UIServer

_BOX = (
    "font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px;line-height:1.5;"
    "border:1px solid var(--jp-border-color1,#ccc);border-radius:4px;padding:8px 12px;margin:4px 0"
)


DEFAULT_HEIGHT = 800  # pixels: MLflow's runs table and a run's charts fit without scrolling the frame


def ui_route(experiment_id: str | None = None, run_id: str | None = None) -> str:
    """The hash route of MLflow's page for a run or an experiment's runs, in the training (not GenAI) view.

    The same rule as ``mlflowRoute`` in the JupyterLab extension (labextension/src/query.ts).
    """
    view = "?workflowType=machine_learning"
    if experiment_id and run_id:
        return f"#/experiments/{quote(str(experiment_id), safe='')}/runs/{quote(str(run_id), safe='')}{view}"
    if experiment_id:
        return f"#/experiments/{quote(str(experiment_id), safe='')}/runs{view}"
    return f"#/experiments{view}"


def _publish(text: str, html_text: str | None = None, *, display_id: str | None = None, update: bool = False) -> None:
    """Show a text/plain (+ text/html) bundle through IPython if there is a shell, else print the text."""
    if frontend() == "none":
        print(text)
        return
    from IPython.display import display, update_display

    bundle: dict[str, Any] = {"text/plain": text}
    if html_text is not None:
        bundle["text/html"] = html_text
    if update and display_id:
        update_display(bundle, raw=True, display_id=display_id)
    else:
        display(bundle, raw=True, display_id=display_id)


def _link(url: str, label: str | None = None) -> str:
    return f'<a href="{html.escape(url)}" target="_blank" rel="noopener">{html.escape(label or url)}</a>'


# ----------------------------------------------------------------------------------------------- local UI


def _local_iframe(server: UIServer, location: StoreLocation, height: int, route: str = "",
                  replace: str | None = None) -> None:
    where = location.describe()
    url = server.page_url(route)  # MLflow's assistant column does not open over the runs (mlflow_server.py)
    text = f"MLflow UI for {where}: {server.url + route}"
    page = (
        f'<div style="{_BOX}">MLflow UI for {html.escape(where)}: {_link(url, server.url)} '
        "(opens in a new tab; stop it with <code>%tracking_ui --stop</code>)</div>"
        f'<iframe src="{html.escape(url)}" title="MLflow UI" width="100%" height="{int(height)}" '
        'style="border:1px solid var(--jp-border-color1,#ccc);border-radius:4px"></iframe>'
    )
    if replace:
        _publish(text, page, display_id=replace, update=True)
    else:
        _publish(text, page)


def _local_colab(server: UIServer, location: StoreLocation, height: int, route: str = "",  # noqa: ARG001
                 replace: str | None = None) -> None:
    from google.colab import output  # noqa: PLC0415 - only exists on Colab

    print(f"MLflow UI for {location.describe()}, through Colab's kernel proxy (visible to you only).")
    output.serve_kernel_port_as_iframe(server.port, path=(server.config.static_prefix or "") + "/", height=int(height))


def _local_text(server: UIServer, location: StoreLocation, height: int, route: str = "",  # noqa: ARG001
                replace: str | None = None) -> None:
    print(f"MLflow UI for {location.describe()}: {server.url}{route}  (stop it with %tracking_ui --stop)")


_LOCAL_DISPLAYS = {
    "jupyter": _local_iframe,
    "vscode": _local_iframe,
    "colab": _local_colab,
    "terminal": _local_text,
    "none": _local_text,
}


def show_local(server: UIServer, location: StoreLocation, height: int = DEFAULT_HEIGHT, *, route: str = "",
               replace: str | None = None) -> None:
    """Show a running local UI server the way the current front end can display it, at ``route`` (``ui_route``);
    ``replace``: the display id of the start's progress line, which the frame takes the place of."""
    _LOCAL_DISPLAYS.get(frontend(), _local_text)(server, location, height, route, replace)


class StartProgress:
    """The line shown while a UI server starts (Jupyter and VS Code): elapsed seconds and stage, redrawn in place.

    Nothing is shown for a server that is ready within a second (a reused one), nor outside a notebook.
    """

    def __init__(self, location: StoreLocation) -> None:
        self.where = location.describe()
        self.display_id: str | None = None
        self._inline = frontend() in ("jupyter", "vscode")

    def update(self, elapsed: float, stage: str) -> None:
        if not self._inline or elapsed < 1.0:
            return
        text = f"Starting the MLflow UI for {self.where}: {stage}, {elapsed:.0f} s"
        page = (
            f'<div style="{_BOX}"><progress style="width:8em;vertical-align:middle"></progress> '
            f"Starting the MLflow UI for {html.escape(self.where)}: {html.escape(stage)} &middot; "
            f'<span class="jt-ui-elapsed">{elapsed:.0f} s</span></div>'
        )
        if self.display_id is None:
            self.display_id = f"jt-ui-start-{uuid.uuid4().hex}"
            _publish(text, page, display_id=self.display_id)
        else:
            _publish(text, page, display_id=self.display_id, update=True)

    def clear(self) -> None:
        """The start failed: the progress line goes (the error says what happened)."""
        if self.display_id is not None:
            _publish("", "", display_id=self.display_id, update=True)


def show_remote(location: StoreLocation) -> None:
    """The store is an MLflow server already: point at its own UI (credentials never shown)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(location.uri)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))
    text = f"Runs go to the MLflow server {url}: its UI is at that address (log in there if it asks)."
    _publish(text, f'<div style="{_BOX}">Runs go to the MLflow server {_link(url)}: its UI is there.</div>')


# ----------------------------------------------------------------------------------------------- share


def share_panel(server: UIServer, tunnel: Tunnel, *, auth: bool, restarts: int = 0) -> tuple[str, str]:
    """Text and HTML of the share panel (no admin password: that is shown once, separately)."""
    password = tunnel.password or "this machine's public IP address"
    login = "login required (user admin)" if auth else "NO LOGIN: anyone with the URL can read and change runs"
    restarted = f" (tunnel restarted {restarts}x)" if restarts else ""
    text = (
        f"Shared MLflow UI: {tunnel.url}{restarted}\n"
        f"  tunnel password for visitors: {password}; {login}\n"
        f"  local: {server.url}  stop with %tracking_ui --stop"
    )
    warn = "" if auth else ' style="color:#b00020;font-weight:bold"'
    page = (
        f'<div style="{_BOX}"><b>Shared MLflow UI:</b> {_link(tunnel.url)}{html.escape(restarted)}<br>'
        f"Tunnel password for visitors (typed once on the tunnel page): <code>{html.escape(password)}</code><br>"
        f"<span{warn}>{html.escape(login)}</span><br>"
        f"Local: {_link(server.url)} &middot; stop with <code>%tracking_ui --stop</code></div>"
    )
    return text, page


def show_share(server: UIServer, tunnel: Tunnel, *, auth: bool, display_id: str, restarts: int = 0,
               update: bool = False) -> None:
    """Show (or, after a tunnel restart, update in place) the share panel."""
    text, page = share_panel(server, tunnel, auth=auth, restarts=restarts)
    _publish(text, page, display_id=display_id, update=update)


def show_login_once(username: str, password: str) -> None:
    """The generated admin login: shown at share time only, never again (not in --status, not on restarts)."""
    if frontend() in ("terminal", "none"):
        print(f"Login for the shared UI: user {username}, password {password}  (shown once: keep it now)")
        return
    from IPython.display import display

    # HTML only, so the saved notebook holds the password once (not also as text/plain).
    page = (
        f'<div style="{_BOX}">Login for the shared UI: user <code>{html.escape(username)}</code>, password '
        f"<code>{html.escape(password)}</code> <i>(shown once: keep it now)</i></div>"
    )
    display({"text/html": page}, raw=True)


def warn(message: str) -> None:
    """A one-line warning on stderr."""
    print(f"jupyter_tracking: {message}", file=sys.stderr)


def note(message: str) -> None:
    """A one-line note on stdout."""
    print(message)
