"""Fixtures shared by every test: a clean environment and a fresh project folder with its own store."""

from __future__ import annotations

from pathlib import Path

import pytest

import mlflow

from jupyter_tracking.session import Session, use_session
from tests.kernels import make_project
from tests.browser import chromium_browser, chromium_page, jupyter_app  # noqa: F401  (shared fixtures)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(autouse=True)
def _clean_tracking_env(monkeypatch, tmp_path_factory):
    """No test inherits a tracking URI, and spool files go to a per-test folder."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("JUPYTER_TRACKING_SPOOL_DIR", str(tmp_path_factory.mktemp("spool")))
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    monkeypatch.setenv("JUPYTER_TRACKING_SIGNING_KEY", str(tmp_path_factory.mktemp("keys") / "signing.key"))
    yield


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder (has pyproject.toml) with a notebooks/ sub-folder."""
    return make_project(tmp_path / "proj")


@pytest.fixture(scope="session")
def ipython_shell():
    """The test session's one in-process IPython shell, with the extension loaded."""
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython() or get_ipython()  # start_ipython() returns None once the shell exists
    shell.run_line_magic("load_ext", "jupyter_tracking")
    return shell


@pytest.fixture
def shell(ipython_shell, project, monkeypatch, request):
    """The shell with its cwd in a fresh project's notebooks/ folder, a fresh tracking session whose default
    experiment is the module's EXPERIMENT; names a test defines are removed afterwards."""
    monkeypatch.chdir(project / "notebooks")
    session = use_session(Session())
    session.settings.experiment = getattr(request.module, "EXPERIMENT", "tests")
    names_before = set(ipython_shell.user_ns)

    def run_ends_written(result) -> None:  # tests read the store right after a cell, as the next cell sees it
        session.run_ends.wait(60)

    ipython_shell.events.register("post_run_cell", run_ends_written)
    yield ipython_shell
    ipython_shell.events.unregister("post_run_cell", run_ends_written)
    for name in set(ipython_shell.user_ns) - names_before:
        ipython_shell.user_ns.pop(name, None)
    use_session(Session())
    assert mlflow.active_run() is None, "a run was left active after a cell"
