"""Fixtures for the sharing tests: the loopback localtunnel server, HTTP through a tunnel, the process table."""

from __future__ import annotations

import base64
import http.client
import os
import time
from pathlib import Path

import psutil
import pytest

from tests.sharing.lt_server import LoopbackTunnelServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def lt_server():
    """A loopback localtunnel service shared by the tests (each share gets its own tunnel on it)."""
    with LoopbackTunnelServer() as server:
        yield server


def http_get(port: int, path: str = "/", *, host: str | None = None, auth: tuple[str, str] | None = None,
             timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """One GET to 127.0.0.1:port with the given Host header (a tunnel's public host) and basic-auth login."""
    headers = {"Host": host or f"127.0.0.1:{port}", "Connection": "close"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def processes_with(*needles: str) -> list[psutil.Process]:
    """Live processes whose command line contains every needle (as a substring of the joined line)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            line = " ".join(proc.info["cmdline"] or ())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if line and all(needle in line for needle in needles):
            found.append(proc)
    return found


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1):
    """Poll ``predicate`` until it returns something truthy; return it (or the last falsy value)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (psutil.NoSuchProcess, ProcessLookupError, PermissionError):
            continue
    return members


def group_rss_mb(pgid: int) -> float:
    total = 0
    for proc in group_members(pgid):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


@pytest.fixture
def no_leftovers():
    """Yields a list to fill with needles; after the test, no process may match any of them."""
    needles: list[tuple[str, ...]] = []
    yield needles
    left = {n: wait_until(lambda n=n: not processes_with(*n), timeout=15) for n in needles}
    stray = {n: [p.pid for p in processes_with(*n)] for n, ok in left.items() if not ok}
    assert not stray, f"processes left behind: {stray}"
