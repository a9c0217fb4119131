"""Fixtures shared by every test: a clean environment and a fresh project folder with its own store."""

from __future__ import annotations

from pathlib import Path

import pytest

import mlflow

from jupyter_tracking import cell as cell_module
from jupyter_tracking import recorder as recorder_module
from jupyter_tracking import store as store_module
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
    root = tmp_path / "proj"
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname='demo'\n")
    return root


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
    """The shell with its cwd in a fresh project's notebooks/ folder, the module's EXPERIMENT as default
    experiment, no other session settings; names a test defines are removed afterwards."""
    monkeypatch.chdir(project / "notebooks")
    store_module.settings.uri = None
    store_module.settings.experiment = getattr(request.module, "EXPERIMENT", "tests")
    recorder_module.forget_experiment_ids()
    cell_module._history = cell_module._CardHistory()
    names_before = set(ipython_shell.user_ns)
    yield ipython_shell
    for name in set(ipython_shell.user_ns) - names_before:
        ipython_shell.user_ns.pop(name, None)
    store_module.settings.uri = None
    store_module.settings.experiment = None
    assert mlflow.active_run() is None, "a run was left active after a cell"
