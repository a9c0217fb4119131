"""Where runs go, and the MLflow clients that reach them.

Resolution order (DESIGN.md, "Where runs go"): the URI set with ``%track config --uri`` / ``configure()``,
then ``MLFLOW_TRACKING_URI``, then the embedded default: ``mlflow.db`` (SQLite) in the project root, with
artifacts in ``mlartifacts/`` beside it. The project root is the nearest folder up from the notebook that
holds ``.git`` or ``pyproject.toml``, else the notebook's own folder.

Nothing here imports MLflow at module import time; clients are created on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .session import Session, current_session

DB_FILENAME = "mlflow.db"
ARTIFACTS_DIRNAME = "mlartifacts"
PROJECT_MARKERS = (".git", "pyproject.toml")
DEFAULT_EXPERIMENT = "Default"


@dataclass(frozen=True)
class StoreLocation:
    """A resolved tracking store: its URI, where the choice came from, and (embedded store) its files."""

    uri: str
    source: str  # "config", "env" or "default"
    project_root: Path | None = None
    artifact_root: str | None = None

    @property
    def is_embedded(self) -> bool:
        return self.source == "default"

    @property
    def is_remote(self) -> bool:
        return self.uri.startswith(("http://", "https://", "databricks"))

    @property
    def db_path(self) -> Path | None:
        """The database file of a ``sqlite:///`` store (the embedded one or one the user chose); None for others."""
        return Path(self.uri.removeprefix("sqlite:///")) if self.uri.startswith("sqlite:///") else None

    @property
    def not_created_yet(self) -> bool:
        """The embedded store of a project where nothing was tracked yet: a read must not create it."""
        return self.is_embedded and not self.db_path.exists()

    def describe(self) -> str:
        """One short phrase for messages: where runs go and why."""
        if self.is_embedded:
            return f"{self.db_path} (embedded SQLite store of project {self.project_root})"
        origin = {"config": "set with %track config", "env": "from MLFLOW_TRACKING_URI"}[self.source]
        return f"{redact_uri(self.uri)} ({origin})"


def configure(uri: str | None = None, experiment: str | None = None, *, notebook: str | None = None,
              session: Session | None = None) -> StoreLocation:
    """Set the tracking URI, default experiment and/or this kernel's notebook file (where the kernel cannot
    learn it) for this session; returns the resolved store."""
    session = session or current_session()
    before = resolve_store(session=session).uri
    if notebook is not None:
        path = Path(notebook.strip()).expanduser() if notebook.strip() else None
        session.settings.notebook = str(path.resolve()) if path is not None else None
    if uri is not None:
        session.settings.uri = uri.strip() or None
    if experiment is not None:
        session.settings.experiment = experiment.strip() or None
    location = resolve_store(session=session)
    if location.uri != before:
        session.forget_store_state()
    return location


def redact_uri(uri: str) -> str:
    """The URI with any ``user:password@`` credentials hidden."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def find_project_root(start: Path) -> Path:
    """The nearest folder from ``start`` upwards holding ``.git`` or ``pyproject.toml``, else ``start``."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in PROJECT_MARKERS):
            return folder
    return start


def resolve_store(start_dir: Path | str | None = None, *, session: Session | None = None) -> StoreLocation:
    """Where runs go for a notebook in ``start_dir`` (default: the current notebook's folder, else the cwd)."""
    settings = (session or current_session()).settings
    if settings.uri:
        return StoreLocation(settings.uri, "config")
    env_uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env_uri:
        return StoreLocation(env_uri, "env")
    if start_dir is None:
        from .context import notebook_dir

        start_dir = notebook_dir()
    root = find_project_root(Path(start_dir))
    return StoreLocation(
        uri=f"sqlite:///{root / DB_FILENAME}",
        source="default",
        project_root=root,
        artifact_root=str(root / ARTIFACTS_DIRNAME),
    )


def default_experiment_name(session: Session | None = None) -> str:
    """The experiment used when none is given: the configured one, else the notebook's name, else Default."""
    settings = (session or current_session()).settings
    if settings.experiment:
        return settings.experiment
    from .context import notebook_path

    path = notebook_path()
    return path.stem if path else DEFAULT_EXPERIMENT


def client_for(location: StoreLocation, session: Session | None = None):
    """The session's ``MlflowClient`` for the store; the embedded store is created (with its artifact root) if new."""
    session = session or current_session()
    client = session.clients.get(location.uri)
    if client is not None:
        return client
    from .preload import ensure_mlflow

    ensure_mlflow()  # before the lock: the import thread's own work may need a client
    with session.clients_lock:
        client = session.clients.get(location.uri)
        if client is None:
            from mlflow import MlflowClient

            with _quiet_migrations():
                if location.is_embedded:
                    _create_embedded_store(location)
                client = MlflowClient(tracking_uri=location.uri)
                if location.uri.startswith(("sqlite:", "postgresql", "mysql", "mssql")):
                    from .internals import store_of

                    engine = getattr(store_of(client), "engine", None)  # creates/migrates the database now
                    if location.is_embedded and engine is not None:  # commits to a write-ahead log (sqlite_journal.py)
                        from .sqlite_journal import tune_engine

                        tune_engine(engine, str(location.db_path))
            session.clients[location.uri] = client
        return client


def _http_answers(uri: str, timeout: float) -> bool:
    """True when the server at ``uri`` gives any HTTP answer to ``GET /health`` within ``timeout`` seconds.

    A TCP connect is not enough: a server that is going down can still accept connections and never answer,
    and MLflow's client then waits out its long timeouts.
    """
    import ssl
    import urllib.error
    import urllib.request

    request = urllib.request.Request(uri.rstrip("/") + "/health", method="GET")
    context = None
    if uri.startswith("https://") and os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context = ssl._create_unverified_context()  # noqa: S323 - the user asked MLflow for this too
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback servers: no proxy
    if context is not None:
        opener.add_handler(urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # 401, 404, 503...: it answered
    except ssl.SSLError:
        return True  # it answered the handshake; MLflow will say what is wrong with the certificate
    except (OSError, ValueError):
        return False


class _quiet_migrations:  # noqa: N801 - a context manager used like a function
    """Hide MLflow's INFO lines about creating/upgrading database tables (they are not the user's business)."""

    LOGGERS = ("mlflow.store.db.utils", "alembic", "alembic.runtime.migration")

    def __enter__(self) -> None:
        import logging

        self._levels = {}
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(logging.WARNING)

    def __exit__(self, *exc_info: object) -> None:
        import logging

        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)


def _create_embedded_store(location: StoreLocation) -> None:
    """Create the SQLite store so that its Default experiment keeps artifacts beside the database.

    MLflow would otherwise put them in ``./mlruns`` relative to whatever the kernel's cwd is. The store is a
    copy of a migrated empty one kept per MLflow version (``store_template.py``): milliseconds instead of a
    migration, and several kernels opening one new project at once end up sharing one complete file.
    """
    from .private_files import private_dir
    from .store_template import create_store

    create_store(location.db_path, location.artifact_root)
    if location.artifact_root:
        private_dir(Path(location.artifact_root))  # before MLflow makes it with the umask's mode


def experiment_id_for(location: StoreLocation, name: str, *, create: bool = True,
                      session: Session | None = None) -> str | None:
    """The id of experiment ``name`` in the store (cached per session), creating it (artifacts beside an
    embedded store) if asked."""
    session = session or current_session()
    key = (location.uri, name)
    known = session.experiment_ids.get(key)
    if known is not None:
        return known
    found = _experiment_id(location, name, create, session)
    if found is not None:
        session.experiment_ids[key] = found
    return found


def _experiment_id(location: StoreLocation, name: str, create: bool, session: Session) -> str | None:
    client = client_for(location, session)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    if not create:
        return None
    artifact_location = None
    if location.is_embedded:
        artifact_location = str(Path(location.artifact_root) / _slug(name))
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except Exception:
        # Created concurrently by another kernel: read it back.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _slug(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("._")
    return cleaned or "experiment"


def point_mlflow_at(uri: str) -> None:
    """Make MLflow's fluent API use ``uri`` (so the cell's own mlflow calls land in our store).

    ``mlflow.set_tracking_uri`` also writes MLFLOW_TRACKING_URI into the environment, which would then
    override our own store resolution for the rest of the session: put the environment back.
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def is_reachable(location: StoreLocation, timeout: float = 1.5) -> bool:
    """Quick check that the store answers (a TCP connect for HTTP stores; a writable folder for SQLite).

    MLflow's own HTTP client retries for minutes against a dead server; this lets the recorder spool at once.
    """
    uri = location.uri
    if uri.startswith(("http://", "https://")):
        return _http_answers(uri, timeout)
    db_path = location.db_path
    if db_path is not None:
        folder = db_path.parent
        if db_path.exists():
            return os.access(db_path, os.W_OK) and os.access(folder, os.W_OK)
        return folder.exists() and os.access(folder, os.W_OK)
    return True


def describe_store_error(error: BaseException, location: StoreLocation | None = None) -> str:
    """One line a user can act on for an error from the store (refused credentials, unreachable, other)."""
    text = " ".join(str(error).split())
    code = str(getattr(error, "error_code", "") or "")
    where = redact_uri(location.uri) if location is not None else "the tracking store"
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or any(
        marker in text for marker in ("401", "403", "Unauthorized", "UNAUTHENTICATED", "PERMISSION_DENIED")
    ):
        return (
            f"{where} refused the credentials; set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            "(or fix them) and try again"
        )
    if isinstance(error, (ConnectionError, OSError)) or any(
        marker in text for marker in ("Max retries exceeded", "Connection refused", "Failed to establish")
    ):
        return f"cannot reach {where}; check that it is running"
    first = text[:200]
    return f"{where} answered {type(error).__name__}: {first}" if first else f"{where} failed ({type(error).__name__})"
