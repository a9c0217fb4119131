"""Tornado handlers of the REST API (``{base_url}jupyter-tracking/api/...``) and the MLflow UI proxy.

Every method is ``@tornado.web.authenticated``. Each request names a notebook (or folder) with ``?path=``,
a Jupyter API path inside the server's root; the store is resolved for that notebook's folder by the kernel's
rules, except that the search never leaves the root (``paths.store_location``). MLflow calls run in worker
threads. The MLflow UI started here is read-only: its database is opened read-only and the proxy forwards
only reads (GET/HEAD/OPTIONS, MLflow's POST searches and GraphQL queries).
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import urlsplit

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.ioloop import IOLoop

from .paths import PathRefused, notebook_folder, store_location

API_PREFIX = "jupyter-tracking/api"
UI_PREFIX = "jupyter-tracking/mlflow"


def jsonable(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None, so browsers can parse the JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


class TrackingHandler(APIHandler):
    """Shared plumbing: the store of ``?path=``, blocking calls off the event loop, JSON errors."""

    def location(self):
        root_dir = self.settings.get("server_root_dir") or self.contents_manager.root_dir
        try:
            folder = notebook_folder(root_dir, self.get_argument("path", ""))
            return store_location(root_dir, folder)
        except PathRefused as exc:
            raise web.HTTPError(exc.status, exc.message) from exc

    async def call(self, func, *args: Any, **kwargs: Any) -> Any:
        from .queries import BadQuery, NotFound, Unreachable

        try:
            return await IOLoop.current().run_in_executor(None, lambda: func(*args, **kwargs))
        except NotFound as exc:
            raise web.HTTPError(404, str(exc)) from exc
        except BadQuery as exc:
            raise web.HTTPError(400, str(exc)) from exc
        except Unreachable as exc:
            raise web.HTTPError(503, str(exc)) from exc

    def send(self, payload: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(jsonable(payload), allow_nan=False))


class StoreHandler(TrackingHandler):
    @web.authenticated
    async def get(self) -> None:
        from .queries import describe_store

        self.send(await self.call(describe_store, self.location()))


class ExperimentsHandler(TrackingHandler):
    @web.authenticated
    async def get(self) -> None:
        from .queries import describe_store, list_experiments

        location = self.location()
        store = await self.call(describe_store, location)
        experiments = await self.call(list_experiments, location) if store["ready"] else []
        self.send({"store": store, "experiments": experiments})


class RunsHandler(TrackingHandler):
    @web.authenticated
    async def get(self) -> None:
        from .queries import search_runs

        location = self.location()
        ids = [i for raw in self.get_arguments("experiment_id") for i in raw.split(",") if i.strip()]
        order_by = [o for o in self.get_arguments("order_by") if o.strip()]
        try:
            max_results = int(self.get_argument("max_results", "100"))
        except ValueError as exc:
            raise web.HTTPError(400, "max_results must be a whole number.") from exc
        page = await self.call(
            search_runs,
            location,
            ids,
            filter_string=self.get_argument("filter", ""),
            order_by=order_by,
            max_results=max_results,
            page_token=self.get_argument("page_token", None),
        )
        self.send(page)


class RunCountHandler(TrackingHandler):
    @web.authenticated
    async def get(self) -> None:
        from .queries import count_runs

        ids = [i for raw in self.get_arguments("experiment_id") for i in raw.split(",") if i.strip()]
        self.send(await self.call(count_runs, self.location(), ids, filter_string=self.get_argument("filter", "")))


class RunHandler(TrackingHandler):
    @web.authenticated
    async def get(self, run_id: str) -> None:
        from .queries import get_run

        self.send(await self.call(get_run, self.location(), run_id))


class MetricHistoryHandler(TrackingHandler):
    @web.authenticated
    async def get(self, run_id: str) -> None:
        from .queries import metric_history

        key = self.get_argument("key")
        try:
            max_points = int(self.get_argument("max_points", "2000"))
        except ValueError as exc:
            raise web.HTTPError(400, "max_points must be a whole number.") from exc
        self.send(await self.call(metric_history, self.location(), run_id, key, max(2, min(max_points, 20000))))


class UIServerHandler(TrackingHandler):
    """POST: start (or reuse) the MLflow UI for the notebook's store; answers the URL to open in a tab."""

    @web.authenticated
    async def post(self) -> None:
        from . import mlflow_ui

        location = self.location()
        base_url = self.settings.get("base_url", "/")
        result = await IOLoop.current().run_in_executor(None, mlflow_ui.ensure_ui, location, base_url)
        if not result.ok:
            raise web.HTTPError(503 if result.retry else result.status, result.message)
        self.send({"url": result.url, "message": result.message})

    @web.authenticated
    async def get(self) -> None:
        """With ``?path=``: how that store's UI server is doing (the tab polls it while the POST waits);
        without: every UI server this Jupyter server runs."""
        from . import mlflow_ui

        if self.get_argument("path", None) is not None:
            self.send(mlflow_ui.start_state(self.location()))
            return
        self.send({"servers": mlflow_ui.describe_running()})


HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "cookie",
    "authorization",
}


class MLflowProxyHandler(JupyterHandler):
    """Forwards ``{base_url}jupyter-tracking/mlflow/KEY/...`` to the MLflow UI server started for KEY.

    Only servers this extension started can be reached (KEY names one); the path is forwarded unchanged
    because each server runs with its ``--static-prefix`` set to exactly this prefix.
    """

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

    def check_xsrf_cookie(self) -> None:
        # The MLflow UI's own scripts do not send Jupyter's XSRF token. Unsafe methods must then come from a
        # page of this origin: a same-host Origin header, which browsers always send on cross-site POSTs.
        if not hasattr(self, "_jupyter_current_user"):
            return None
        if self.token_authenticated or self.settings.get("disable_check_xsrf", False):
            return None
        origin = self.request.headers.get("Origin")
        host = self.request.headers.get("Host")
        if origin and host and urlsplit(origin).netloc == host:
            return None
        return super().check_xsrf_cookie()

    async def _forward(self, key: str, rest: str) -> None:
        from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

        from . import mlflow_ui

        upstream = mlflow_ui.upstream_for(key)
        if upstream is None:
            return self._plain(404, "No MLflow UI is running for this store: open it again from JupyterLab.")
        if not mlflow_ui.is_read_request(self.request.method, self.request.path, self.request.body or b""):
            return self._plain(403, "This MLflow UI is read-only: change runs from the notebook (or %tracking_ui).")
        url = upstream + self.request.uri  # path and query, unchanged
        headers = {k: v for k, v in self.request.headers.get_all() if k.lower() not in HOP_BY_HOP}
        body = self.request.body if self.request.method in ("POST", "PUT", "PATCH", "DELETE") else None
        if self.request.method in ("POST", "PUT", "PATCH") and body is None:
            body = b""
        request = HTTPRequest(
            url,
            method=self.request.method,
            headers=headers,
            body=body,
            follow_redirects=False,
            decompress_response=False,
            request_timeout=300,
            allow_nonstandard_methods=True,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:
            return self._plain(502, f"The MLflow UI server did not answer ({exc}): open it again from JupyterLab.")
        if response.code == 599:
            return self._plain(502, f"The MLflow UI server did not answer ({response.error}): open it again.")
        self.set_status(response.code, response.reason)
        self._headers.clear()
        for name, value in response.headers.get_all():
            if name.lower() not in HOP_BY_HOP and name.lower() != "set-cookie":
                self.add_header(name, value)
        if response.body and self.request.method != "HEAD":
            self.write(response.body)
        await self.finish()

    def _plain(self, status: int, message: str) -> None:
        """A short text answer, readable inside the MLflow tab's frame."""
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(message)

    @web.authenticated
    async def get(self, key: str, rest: str) -> None:
        await self._forward(key, rest)

    @web.authenticated
    async def head(self, key: str, rest: str) -> None:
        await self._forward(key, rest)

    @web.authenticated
    async def post(self, key: str, rest: str) -> None:
        await self._forward(key, rest)

    @web.authenticated
    async def put(self, key: str, rest: str) -> None:
        await self._forward(key, rest)

    @web.authenticated
    async def patch(self, key: str, rest: str) -> None:
        await self._forward(key, rest)

    @web.authenticated
    async def delete(self, key: str, rest: str) -> None:
        await self._forward(key, rest)

    @web.authenticated
    async def options(self, key: str, rest: str) -> None:
        await self._forward(key, rest)


def routes(base_url: str) -> list[tuple[str, type]]:
    """The URL patterns of this extension under the server's ``base_url``."""
    api = url_path_join(base_url, API_PREFIX)
    return [
        (url_path_join(api, "store"), StoreHandler),
        (url_path_join(api, "experiments"), ExperimentsHandler),
        (url_path_join(api, "runs"), RunsHandler),
        (url_path_join(api, "run-count"), RunCountHandler),
        (url_path_join(api, r"runs/([0-9a-zA-Z_-]+)"), RunHandler),
        (url_path_join(api, r"runs/([0-9a-zA-Z_-]+)/metric-history"), MetricHistoryHandler),
        (url_path_join(api, "mlflow-ui"), UIServerHandler),
        (url_path_join(base_url, UI_PREFIX, r"([0-9a-f]{16})(/.*)?"), MLflowProxyHandler),
    ]
