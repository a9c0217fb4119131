"""Fixtures shared by every test: a clean environment and a fresh project folder with its own store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    yield


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder (has pyproject.toml) with a notebooks/ sub-folder."""
    root = tmp_path / "proj"
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname='demo'\n")
    return root
