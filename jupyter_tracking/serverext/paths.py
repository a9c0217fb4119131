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
