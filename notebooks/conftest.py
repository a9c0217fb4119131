"""nbval runs notebooks/ offline: `04_share_ui.ipynb` shares the MLflow UI, so the kernels get a loopback
stand-in for the public localtunnel service (tests/sharing/lt_server.py), named in JUPYTER_TRACKING_TUNNEL_HOST
before any kernel starts. Set that variable yourself to use a real localtunnel server instead."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_server = None


def pytest_configure(config):
    global _server
    if os.environ.get("JUPYTER_TRACKING_TUNNEL_HOST"):
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.sharing.lt_server import LoopbackTunnelServer

    _server = LoopbackTunnelServer().start()
    os.environ["JUPYTER_TRACKING_TUNNEL_HOST"] = _server.url


def pytest_unconfigure(config):
    if _server is not None:
        _server.stop()
