"""The lean MLflow UI server: MLflow's own app in one uvicorn process, set up as ``mlflow server`` sets up its worker.

``mlflow server`` imports MLflow's whole server only to start a second process (uvicorn) that imports it all
again. Run as ``python -m jupyter_tracking.sharing.mlflow_server --port P --backend-store-uri URI ...``, this
module sets the environment the CLI would set (the private names come from ``internals``) and runs uvicorn
in-process: one import instead of two, about half the time to a healthy server. ``ui_server`` falls back to
``mlflow server`` itself when the installed MLflow's names are not the ones known here.
"""

from __future__ import annotations

import argparse
import os
import sys


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

    uvicorn.run("mlflow.server.fastapi_app:app", host=args.host, port=args.port, workers=1,
                log_config=mlflow_server_log_config())
    return 0


if __name__ == "__main__":
    sys.exit(main())
