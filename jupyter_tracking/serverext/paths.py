"""Map a notebook path sent by the browser to a folder inside the Jupyter root, or refuse.

The browser names notebooks with Jupyter API paths (``folder/train.ipynb``, relative to the server's root).
Nothing a request sends can point outside that root: absolute paths, ``..`` segments, NUL bytes and
symlinks that resolve outside it are all refused before any file is looked at.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


class PathRefused(Exception):
    """The requested path is not acceptable; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def notebook_folder(root_dir: str | os.PathLike[str], api_path: str) -> Path:
    """The real folder of notebook (or folder) ``api_path`` under ``root_dir``; raises ``PathRefused``.

    The empty path is the root itself. A file maps to the folder holding it.
    """
    if "\x00" in api_path or "\\" in api_path:
        raise PathRefused(400, "The path contains a character that is not allowed.")
    pure = PurePosixPath(api_path)
    if pure.is_absolute() or api_path.startswith("~"):
        raise PathRefused(400, "The path must be relative to the Jupyter root.")
    if any(part == ".." for part in pure.parts):
        raise PathRefused(400, "The path must not contain '..'.")
    root = Path(os.path.realpath(root_dir))
    target = Path(os.path.realpath(root.joinpath(*pure.parts)))
    if target != root and root not in target.parents:
        raise PathRefused(403, "The path leads outside the Jupyter root.")
    if not target.exists():
        raise PathRefused(404, f"No such file or folder: {api_path}")
    return target if target.is_dir() else target.parent


def store_location(root_dir: str | os.PathLike[str], folder: Path):
    """The store of a notebook in ``folder`` (from ``notebook_folder``), found without leaving the root.

    A configured store (``MLFLOW_TRACKING_URI`` of the server) is used as is. Otherwise the project root is
    searched from ``folder`` up to the Jupyter root and no further (a folder without a project marker uses its
    own ``mlflow.db``, never one above the root), and the store's files, symlinks resolved, must lie inside the
    root: raises ``PathRefused`` (403) when ``mlflow.db`` or ``mlartifacts`` leads outside. Nothing is created.
    """
    from ..store import ARTIFACTS_DIRNAME, DB_FILENAME, PROJECT_MARKERS, StoreLocation, resolve_store

    root = Path(os.path.realpath(root_dir))
    folder = Path(os.path.realpath(folder))
    if folder != root and root not in folder.parents:
        raise PathRefused(403, "The path leads outside the Jupyter root.")
    configured = resolve_store(folder)
    if not configured.is_embedded:
        return configured
    project = folder
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).exists() for marker in PROJECT_MARKERS):
            project = candidate
            break
        if candidate == root:
            break
    for name in (DB_FILENAME, ARTIFACTS_DIRNAME):
        real = Path(os.path.realpath(project / name))
        if real != root and root not in real.parents:
            raise PathRefused(403, f"This notebook's {name} leads outside the Jupyter root: it is not opened.")
    return StoreLocation(
        uri=f"sqlite:///{project / DB_FILENAME}", source="default", project_root=project,
        artifact_root=str(project / ARTIFACTS_DIRNAME),
    )
