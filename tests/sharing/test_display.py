"""Front-end mapping: Colab (its front end emulated by a fake ``google.colab``: it cannot exist here), a plain
terminal, and stores that are MLflow servers already."""

from __future__ import annotations

import sys
import types

import pytest

from jupyter_tracking import sharing
from jupyter_tracking.sharing import display
from jupyter_tracking.store import resolve_store
from tests.sharing.conftest import http_get

pytestmark = pytest.mark.server


class FakeColabOutput(types.ModuleType):
    """Records what we ask Colab's front end to do."""

    def __init__(self):
        super().__init__("google.colab.output")
        self.calls = []

    def serve_kernel_port_as_iframe(self, port, path="/", height="400", cache_in_notebook=False):
        self.calls.append(("iframe", port, path, height))


@pytest.fixture
def colab(monkeypatch):
    google = types.ModuleType("google")
    google.__path__ = []
    colab = types.ModuleType("google.colab")
    colab.__path__ = []
    output = FakeColabOutput()
    colab.output = output
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    return output


def test_colab_shows_the_ui_through_the_kernel_proxy(colab, project, monkeypatch, capsys):
    monkeypatch.chdir(project / "notebooks")
    try:
        sharing.ui(height=480)
        server = sharing.current().server
        assert colab.calls == [("iframe", server.port, "/", 480)]
        out = capsys.readouterr().out
        assert out.startswith(f"MLflow UI for {resolve_store().describe()}, through Colab's kernel proxy")
        # The proxy's host names pass MLflow's host check, and the page may be framed.
        assert "*.colab.googleusercontent.com" in server.config.allowed_hosts
        status, headers, _ = http_get(server.port, "/", host="8000-m-s-abc.colab.googleusercontent.com")
        assert status == 200 and "x-frame-options" not in headers
        assert http_get(server.port, "/", host="evil.example")[0] == 403
        # Pages served through the proxy may write (browsers send their Origin on every POST).
        import http.client
        import json

        for origin, expected in (("https://8000-m-s-abc.colab.googleusercontent.com", 200), ("https://evil.example", 403)):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("POST", "/ajax-api/2.0/mlflow/experiments/create", body=json.dumps({"name": f"c{expected}"}),
                         headers={"Origin": origin, "Content-Type": "application/json"})
            assert conn.getresponse().status == expected, origin
            conn.close()

        # The same server in a terminal: a plain line with the link.
        monkeypatch.delitem(sys.modules, "google.colab")
        display.show_local(server, resolve_store())
        assert capsys.readouterr().out.strip() == (
            f"MLflow UI for {resolve_store().describe()}: {server.url}  (stop it with %tracking_ui --stop)"
        )
    finally:
        sharing.ui(stop=True)


def test_a_server_store_is_linked_not_served(monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://alice:s3cret@mlflow.team.example:8443/")
    sharing.ui()
    out = capsys.readouterr().out
    assert out.strip() == (
        "Runs go to the MLflow server https://mlflow.team.example:8443/: its UI is at that address "
        "(log in there if it asks)."
    )
    assert sharing.current().server is None
    with pytest.raises(sharing.SharingError) as caught:
        sharing.ui(share=True)
    assert "s3cret" not in str(caught.value) and "***@mlflow.team.example:8443" in str(caught.value)


def test_share_panel_escapes_what_it_shows(tmp_path):
    from types import SimpleNamespace

    server = SimpleNamespace(url="http://127.0.0.1:1/")
    tunnel = SimpleNamespace(url='https://x.loca.lt/"><script>alert(1)</script>', password="<b>1.2.3.4</b>")
    text, page = display.share_panel(server, tunnel, auth=True)
    assert "<script>" not in page and "<b>1.2.3.4" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;1.2.3.4&lt;/b&gt;" in page
    assert "<script>" in text  # plain text is shown as text, never interpreted
