"""Files only their owner can read: the spool (run data waiting for its store) and new embedded stores.

Folders are made 0700 and files 0600 when this package creates them (not after the fact, so there is no
moment when another user could open them). Existing files and folders of the user are left as they are.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import IO

FILE_MODE = 0o600
DIR_MODE = 0o700
_XDG = {"cache": ("XDG_CACHE_HOME", ".cache"), "config": ("XDG_CONFIG_HOME", ".config")}


def user_folder(kind: str) -> Path:
    """This package's folder in the user's ``cache`` or ``config`` folder (``$XDG_CACHE_HOME/jupyter_tracking``,
    default ``~/.cache/jupyter_tracking``; likewise for config). Not created here."""
    variable, default = _XDG[kind]
    return Path(os.environ.get(variable) or str(Path.home() / default)) / "jupyter_tracking"


def private_dir(path: Path) -> Path:
    """``path`` (and missing parents) created 0700; an existing folder is left as it is."""
    path = Path(path)
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made by another process meanwhile
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def open_private(path: Path, mode: str = "a") -> IO[str]:
    """A text handle on ``path`` ("a" or "w"), the file created 0600 if it is new."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    descriptor = os.open(path, flags, FILE_MODE)
    return os.fdopen(descriptor, mode, encoding="utf-8")


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty and 0600 if it does not exist; True if this call created it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        return False
    return True


def copy_private(source: str | Path, target: Path) -> None:
    """Copy ``source`` to a new 0600 file ``target``."""
    with open(source, "rb") as reader, os.fdopen(
        os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "wb"
    ) as writer:
        shutil.copyfileobj(reader, writer)
