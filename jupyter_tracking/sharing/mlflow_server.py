"""The lean MLflow UI server: MLflow's own app in one uvicorn process, set up as ``mlflow server`` sets up its worker.

``mlflow server`` imports MLflow's whole server only to start a second process (uvicorn) that imports it all
again. Run as ``python -m jupyter_tracking.sharing.mlflow_server --port P --backend-store-uri URI ...``, this
module sets the environment the CLI would set (the private names come from ``internals``) and runs uvicorn
in-process: one import instead of two, about half the time to a healthy server. ``ui_server`` falls back to
``mlflow server`` itself when the installed MLflow's names are not the ones known here.

The app also answers one page of its own, ``OPEN_PATH`` under the static prefix: a few lines of script that set
MLflow's UI preferences in the browser (``UI_DEFAULTS``, unless the user already chose) and then load the UI at the
route given after ``#``. The inline ``%tracking_ui`` frame is another origin than the notebook, so the lab
extension cannot set them there: without this page MLflow's assistant column opens over the runs on each new
server's first load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

OPEN_PATH = "jupyter-tracking-open"
# MLflow's own localStorage entries (its useLocalStorage hook keeps `${key}_v${version}` as JSON): the assistant
# column does not open by itself. The same as MLFLOW_UI_DEFAULTS in labextension/src/mlflowPrefs.ts (a test holds
# them together), which sets them for the JupyterLab tab.
UI_DEFAULTS = {
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
    "mlflow.assistant.panelOpen_v1": "false",
}


def open_page() -> bytes:
    """The page at ``OPEN_PATH``: MLflow's UI preferences set where not set yet, then the UI at ``#route``
    (always this server's own UI page: only the part after ``#`` comes from the address)."""
    defaults = json.dumps(UI_DEFAULTS)
    return (
        '<!doctype html><meta charset="utf-8"><title>MLflow UI</title><script>\n'
        f"const defaults = {defaults};\n"
        "for (const [key, value] of Object.entries(defaults)) {\n"
        "  try { if (localStorage.getItem(key) === null) localStorage.setItem(key, value); } catch (e) {}\n"
        "}\n"
        "location.replace('./' + location.hash);\n"
        "</script>\n"
    ).encode()


def with_open_page(inner, static_prefix: str | None):
    """MLflow's ASGI app, with ``OPEN_PATH`` answered here; every other request (and lifespan) goes to MLflow."""
    path = f"{static_prefix or ''}/{OPEN_PATH}"
    body = open_page()

    async def app(scope, receive, send):
        if scope["type"] != "http" or scope["path"] != path:
            await inner(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await send({"type": "http.response.start", "status": 405, "headers": [(b"allow", b"GET, HEAD")]})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})

    return app


def worker_environment(args: argparse.Namespace, names: dict[str, str]) -> dict[str, str]:
    """The variables ``mlflow server`` hands its uvicorn worker, for these arguments."""
    env = {
        names["backend_store"]: args.backend_store_uri,
        names["registry_store"]: args.backend_store_uri,
        names["serve_artifacts"]: "true",
        names["sgi_name"]: "uvicorn",
        # The public settings the CLI turns its flags into.
        "MLFLOW_SERVER_ALLOWED_HOSTS": args.allowed_hosts,
        "MLFLOW_SERVER_X_FRAME_OPTIONS": args.x_frame_options,
        "MLFLOW_ENABLE_WORKSPACES": "false",
    }
    if args.artifact_root:
        env[names["artifact_root"]] = args.artifact_root
        env[names["artifacts_destination"]] = args.artifact_root
    if args.static_prefix:
        env[names["static_prefix"]] = args.static_prefix
    if args.cors_allowed_origins:
        env["MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"] = args.cors_allowed_origins
    return env


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jupyter_tracking.sharing.mlflow_server")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--backend-store-uri", required=True)
    p.add_argument("--artifact-root")
    p.add_argument("--static-prefix")
    p.add_argument("--allowed-hosts", required=True)
    p.add_argument("--x-frame-options", required=True)
    p.add_argument("--cors-allowed-origins")
    return p


def main(argv: list[str] | None = None) -> int:
    from ..internals import mlflow_server_log_config, mlflow_server_worker_env

    args = parser().parse_args(argv)
    names = mlflow_server_worker_env()
    if names is None:
        print("This MLflow's server settings are not the ones jupyter_tracking knows: use `mlflow server`.",
              file=sys.stderr)
        return 3
    os.environ.update(worker_environment(args, names))
    # As `mlflow server` does before it serves: open the stores now, so a store that cannot be opened ends the
    # process with MLflow's error (the caller shows its last lines) instead of a UI that fails page by page.
    from mlflow.server.handlers import initialize_backend_stores

    try:
        initialize_backend_stores(args.backend_store_uri, args.backend_store_uri, args.artifact_root)
    except Exception as exc:  # noqa: BLE001 - any failure to open the store ends the server, with its reason
        import traceback

        traceback.print_exc()
        print(f"Error initializing the backend store: {exc}", file=sys.stderr)
        return 1
    import uvicorn
    from mlflow.server.fastapi_app import app

    uvicorn.run(with_open_page(app, args.static_prefix), host=args.host, port=args.port, workers=1,
                log_config=mlflow_server_log_config())
    return 0


if __name__ == "__main__":
    sys.exit(main())
