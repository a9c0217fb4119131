"""Jupyter server extension behind the JupyterLab extension: a read-only REST API over the notebook's
MLflow store, and the MLflow UI proxied through the Jupyter server (so it needs no extra port).

Loading it is cheap: MLflow is imported by the first request that needs it.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyter_tracking.serverext"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .handlers import routes

    web_app = serverapp.web_app
    web_app.add_handlers(".*$", routes(web_app.settings["base_url"]))
    serverapp.log.info("jupyter_tracking: REST API at %sjupyter-tracking/api", web_app.settings["base_url"])
