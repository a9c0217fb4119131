"""Where the code runs: front end, notebook path, cell id, git state, Python and package versions.

Context detection lives here and only here; other modules ask ``frontend()`` instead of testing for Colab
or VS Code themselves. Nothing here imports MLflow.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEY_PACKAGES = (
    "mlflow", "numpy", "pandas", "scikit-learn", "scipy", "torch", "tensorflow", "keras", "jax",
    "xgboost", "lightgbm", "catboost", "transformers",
)
# Import names of KEY_PACKAGES where they differ from the distribution name.
_IMPORT_NAMES = {"scikit-learn": "sklearn"}


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()


def frontend() -> str:
    """The front end showing our output: "colab", "vscode", "jupyter", "terminal" or "none"."""
    if "google.colab" in sys.modules:
        return "colab"
    shell = _shell()
    if shell is None:
        return "none"
    if "VSCODE_PID" in os.environ or "__vsc_ipynb_file__" in shell.user_ns:
        return "vscode"
    if getattr(shell, "kernel", None) is not None:
        return "jupyter"
    return "terminal"


NOTEBOOK_VARIABLE = "JUPYTER_TRACKING_NOTEBOOK"


def notebook_path() -> Path | None:
    """The notebook's file, from the first that knows it: ``%track config --notebook``, the
    ``JUPYTER_TRACKING_NOTEBOOK`` variable, VS Code, a Jupyter server session, ``IPYNB_FILE``, papermill's injected
    ``PAPERMILL_INPUT_PATH``, or the papermill / nbconvert / ``jupyter execute`` command that started this kernel."""
    from .session import current_session

    configured = current_session().settings.notebook
    if configured:
        return Path(configured)
    shell = _shell()
    user_ns = shell.user_ns if shell is not None else {}
    candidates: list[str] = []
    if os.environ.get(NOTEBOOK_VARIABLE):
        candidates.append(os.environ[NOTEBOOK_VARIABLE])
    if user_ns.get("__vsc_ipynb_file__"):
        candidates.append(str(user_ns["__vsc_ipynb_file__"]))
    for variable in ("JPY_SESSION_NAME", "IPYNB_FILE"):
        if os.environ.get(variable):
            candidates.append(os.environ[variable])
    if isinstance(user_ns.get("PAPERMILL_INPUT_PATH"), str):
        candidates.append(user_ns["PAPERMILL_INPUT_PATH"])
    for candidate in candidates:
        path = Path(candidate)
        if not path.is_absolute():
            # Jupyter gives a path relative to its root; the kernel's cwd is the notebook's folder.
            local = Path.cwd() / path.name
            path = local if local.exists() else (Path.cwd() / path)
        if path.suffix == ".ipynb":
            return path.resolve()
    return launcher_notebook()


_launcher: dict[str, Path | None] = {}


def launcher_notebook() -> Path | None:
    """The notebook named on the command line of the process that started this kernel, when that process is
    papermill (its input notebook), ``jupyter nbconvert --execute`` or ``jupyter execute`` (one notebook only).
    Read once per process (Linux ``/proc``, or psutil where it is installed)."""
    if "path" not in _launcher:
        try:
            _launcher["path"] = _notebook_in_command(*_parent_command())
        except Exception:  # noqa: BLE001 - no /proc, no psutil, the parent gone: unknown
            _launcher["path"] = None
    return _launcher["path"]


def _parent_command() -> tuple[list[str], Path]:
    parent = os.getppid()
    proc = Path(f"/proc/{parent}")
    if proc.exists():
        arguments = (proc / "cmdline").read_bytes().split(b"\0")
        return [argument.decode(errors="replace") for argument in arguments if argument], Path(os.readlink(proc / "cwd"))
    import psutil

    process = psutil.Process(parent)
    return process.cmdline(), Path(process.cwd())


def _notebook_in_command(arguments: list[str], cwd: Path) -> Path | None:
    """The notebook a papermill / nbconvert / nbclient command line runs (see ``launcher_notebook``)."""
    names = [Path(argument).name for argument in arguments]
    runner = None
    for index, name in enumerate(names):
        following = names[index + 1] if index + 1 < len(names) else ""
        if name in ("papermill", "jupyter-nbconvert", "jupyter-execute"):
            runner = name
        elif name in ("jupyter", "-m") and following in ("papermill", "nbconvert", "execute", "nbclient"):
            runner = following
        if runner:
            rest = arguments[index + 1:]
            break
    else:
        return None
    notebooks = [argument for argument in rest if argument.endswith(".ipynb") and "://" not in argument]
    if runner == "papermill":
        notebooks = notebooks[:1]  # input first, output second
    if len(notebooks) != 1:
        return None  # several notebooks run by one process: which one is ours is not known
    path = Path(notebooks[0]).expanduser()
    return (path if path.is_absolute() else cwd / path).resolve()


def kernel_label() -> str:
    """Names this kernel in cell keys when its notebook is unknown: its id (from the connection file)."""
    try:
        from ipykernel.connect import get_connection_file

        name = Path(get_connection_file()).stem
        return name.removeprefix("kernel-")[:8]
    except Exception:  # noqa: BLE001 - not an ipykernel
        return f"pid {os.getpid()}"


def notebook_dir() -> Path:
    """The notebook's folder if known, else the current working directory (a kernel starts in it)."""
    path = notebook_path()
    return path.parent if path else Path.cwd()


def _pre_run_cell(info: Any) -> None:
    """Before each cell: wait for the run ends still being written, and remember the id of the cell being run,
    as the front end sent it (JupyterLab, Notebook 7, VS Code)."""
    from .run_ends import settle
    from .session import current_session

    session = current_session()
    settle(session)  # the previous tracked cell's run is closed before this cell runs
    session.cell_id = getattr(info, "cell_id", None)


def execution_count() -> int | None:
    """The running cell's ``In [n]`` (IPython 9 has already counted the next cell by ``pre_run_cell``)."""
    shell = _shell()
    result = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    count = getattr(result, "execution_count", None)
    return count if isinstance(count, int) else None


def install_cell_hooks(shell: Any) -> None:
    """Remember the cell id of each execution (JupyterLab, Notebook 7, VS Code and nbclient send it)."""
    uninstall_cell_hooks(shell)
    shell.events.register("pre_run_cell", _pre_run_cell)


def uninstall_cell_hooks(shell: Any) -> None:
    if _pre_run_cell in shell.events.callbacks["pre_run_cell"]:
        shell.events.unregister("pre_run_cell", _pre_run_cell)


@dataclass(frozen=True)
class GitState:
    commit: str
    branch: str | None
    dirty: bool
    remote_url: str | None


def _git(folder: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


_remote_urls: dict[str, str | None] = {}


def git_state(folder: Path) -> GitState | None:
    """Commit, branch, dirty flag and origin URL of the git repository holding ``folder``, or None.

    One ``git status`` per call (commit, branch and dirty state together); the origin URL is read once
    per repository and session.
    """
    status = _git(folder, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is None:
        return None
    commit = branch = None
    dirty = False
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            commit = line.split(" ", 2)[2].strip()
        elif line.startswith("# branch.head "):
            branch = line.split(" ", 2)[2].strip()
        elif line and not line.startswith("#"):
            dirty = True
    if not commit or commit == "(initial)":
        return None
    key = str(folder)
    if key not in _remote_urls:
        from .store import redact_uri

        remote = _git(folder, "config", "--get", "remote.origin.url")
        _remote_urls[key] = redact_uri(remote) if remote else None
    return GitState(
        commit=commit,
        branch=None if branch in (None, "(detached)") else branch,
        dirty=dirty,
        remote_url=_remote_urls[key],
    )


class GitProbe:
    """Reads the git state in a background thread while the cell runs; ``result()`` waits for it."""

    def __init__(self, folder: Path) -> None:
        self._value: GitState | None = None
        self._thread = threading.Thread(target=self._run, args=(folder,), daemon=True, name="jt-git")
        self._thread.start()

    def _run(self, folder: Path) -> None:
        self._value = git_state(folder)

    def result(self, timeout: float = 10.0) -> GitState | None:
        self._thread.join(timeout)
        return self._value


_versions_cache: dict[str, str] = {}


def package_versions() -> dict[str, str]:
    """Versions of the key ML packages the kernel has imported (plus mlflow), cached per session."""
    from importlib import metadata

    versions: dict[str, str] = {}
    for name in KEY_PACKAGES:
        module = _IMPORT_NAMES.get(name, name)
        if name != "mlflow" and module not in sys.modules:
            continue
        if name not in _versions_cache:
            try:
                _versions_cache[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        versions[name] = _versions_cache[name]
    return versions


def python_version() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"
