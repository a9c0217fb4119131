"""``ui(share=True)`` end to end: a real ``mlflow server``, the real ``lt`` client, a loopback tunnel service."""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import os
import re
import signal
import time

import psutil
import pytest

from jupyter_tracking import sharing
from jupyter_tracking.sharing import SharingError
from jupyter_tracking.session import current_session
from jupyter_tracking.store import resolve_store
from tests.sharing.conftest import group_members, http_get, processes_with, wait_until
from tests.sharing.lt_server import LoopbackTunnelServer

pytestmark = pytest.mark.server


def _through_tunnel(lt_port: int, host: str, paths: list[str], auth: tuple[str, str] | None = None):
    """GET each path over ONE keep-alive connection to the tunnel service, as a browser would."""
    headers = {"Host": host, "Bypass-Tunnel-Reminder": "1"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", lt_port, timeout=30)
    results = []
    try:
        for path in paths:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            results.append((response.status, response.getheader("WWW-Authenticate"), response.read()))
    finally:
        conn.close()
    return results


def _lt_node(state: sharing.SharingState) -> psutil.Process:
    """The node process running ``lt`` for the current tunnel."""
    members = group_members(state.tunnel.process.pid)
    return next(m for m in members if m.name() == "node")


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shareproj")
    (root / "pyproject.toml").write_text("[project]\nname='share'\n")
    return root


@pytest.fixture(scope="module")
def shared(lt_server, project_dir):
    """One share for the module's tests, started as a user would: ui(share=True) in the project folder."""
    cwd = os.getcwd()
    os.chdir(project_dir)
    out, err = io.StringIO(), io.StringIO()
    began = time.monotonic()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            sharing.ui(share=True, tunnel_host=lt_server.url)
    finally:
        os.chdir(cwd)
    elapsed = time.monotonic() - began
    state = sharing.current()
    yield state, out.getvalue(), err.getvalue(), elapsed
    with contextlib.redirect_stdout(io.StringIO()):
        sharing.ui(stop=True)


def test_share_shows_url_tunnel_password_and_the_login_once(shared, project_dir):
    state, out, err, elapsed = shared
    assert state.location == resolve_store(project_dir)
    url = state.public_url
    assert re.fullmatch(r"http://[0-9a-f]{8}\.localhost:\d+", url)
    assert f"Shared MLflow UI: {url}" in out
    assert "tunnel password for visitors: 127.0.0.1" in out  # what the service's /mytunnelpassword said
    assert out.count(state.server.password) == 1, "the generated password is shown exactly once"
    assert "Login for the shared UI: user admin" in out and "shown once" in out
    assert "WITHOUT a login" not in err
    print(f"\nshare (tunnel + login-protected server) ready in {elapsed:.1f} s")


def test_the_ui_behind_the_tunnel_requires_the_login(shared, lt_server):
    state = shared[0]
    host = state.tunnel.host
    denied = _through_tunnel(lt_server.port, host, ["/", "/", "/api/2.0/mlflow/experiments/search?max_results=1"])
    assert [status for status, _, _ in denied] == [401, 401, 401]
    assert denied[0][1] == 'Basic realm="mlflow"'  # the browser asks for the login
    login = (state.server.username, state.server.password)
    allowed = _through_tunnel(
        lt_server.port, host, ["/", "/api/2.0/mlflow/experiments/search?max_results=1", "/"], auth=login
    )
    assert [status for status, _, _ in allowed] == [200, 200, 200]
    assert b"<html" in allowed[0][2].lower() and b'"Default"' in allowed[1][2]
    wrong = _through_tunnel(lt_server.port, host, ["/"], auth=("admin", "not-the-password"))
    assert wrong[0][0] == 401


def test_the_ui_can_write_through_the_tunnel(shared, lt_server):
    """Browsers send Origin on every POST: MLflow's cross-origin guard must accept the tunnel's own origin."""
    state = shared[0]
    origin = state.public_url.rstrip("/")
    auth = "Basic " + base64.b64encode(f"{state.server.username}:{state.server.password}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", lt_server.port, timeout=30)
    statuses = []
    try:
        for _ in range(2):  # the second request keeps the tunnel's Host header (see lt's --local-host)
            body = json.dumps({"name": f"made-through-the-tunnel-{len(statuses)}"})
            conn.request("POST", "/ajax-api/2.0/mlflow/experiments/create", body=body, headers={
                "Host": state.tunnel.host, "Origin": origin, "Authorization": auth,
                "Content-Type": "application/json"})
            response = conn.getresponse()
            statuses.append((response.status, response.read()))
    finally:
        conn.close()
    assert [status for status, _ in statuses] == [200, 200], statuses
    # Another site's page, using the visitor's login, is still refused.
    port = state.server.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/ajax-api/2.0/mlflow/experiments/create", body=json.dumps({"name": "evil"}), headers={
        "Host": state.tunnel.host, "Origin": "https://evil.example", "Authorization": auth,
        "Content-Type": "application/json"})
    assert conn.getresponse().status == 403
    conn.close()


def test_mlflow_host_check_allows_exactly_the_tunnel_host(shared):
    state = shared[0]
    port = state.server.port
    # After the first request on a tunnel socket, lt forwards the visitor's Host unchanged: it must pass.
    assert http_get(port, "/", host=state.tunnel.host)[0] == 401  # past the host check, stopped by the login
    assert http_get(port, "/", host="attacker.example")[0] == 403
    assert http_get(port, "/", host=f"other.localhost:{state.tunnel.host.rsplit(':', 1)[1]}")[0] == 403
    assert state.server.config.allowed_hosts[-1] == state.tunnel.host
    assert not any("*" in h and "localhost" not in h and "127.0.0.1" not in h for h in state.server.config.allowed_hosts)
    assert http_get(port, "/")[1].get("x-frame-options") == "DENY"  # the public UI cannot be framed


def test_status_reports_the_share_without_the_password(shared, capsys):
    state = shared[0]
    sharing.ui(status=True)
    out = capsys.readouterr().out
    assert f"Shared at {state.public_url}" in out and "login on" in out
    assert state.server.password not in out


def test_sharing_again_reuses_the_share_and_does_not_repeat_the_password(shared, lt_server, project_dir, capsys,
                                                                         monkeypatch):
    state = shared[0]
    server, url = state.server, state.public_url
    monkeypatch.chdir(project_dir)
    sharing.ui(share=True, tunnel_host=lt_server.url)
    out = capsys.readouterr().out
    assert out.startswith("Already shared (the login was shown when the share started):")
    assert f"Shared MLflow UI: {url}" in out and server.password not in out
    assert sharing.current().server is server and sharing.current().public_url == url


def test_a_killed_lt_client_is_restarted_and_the_url_announced(shared, lt_server, capsys):
    state = shared[0]
    url, restarts = state.public_url, state.share.supervisor.restarts
    node = _lt_node(state)
    began = time.monotonic()
    node.send_signal(signal.SIGKILL)
    assert wait_until(lambda: state.share.supervisor.restarts > restarts, timeout=40)
    restart_seconds = time.monotonic() - began
    assert state.public_url == url  # the service gave the same name back
    assert _lt_node(state).pid != node.pid
    err = capsys.readouterr()
    assert f"the tunnel restarted; the shared UI is at {url}" in err.err
    assert "(tunnel restarted" in err.out  # the panel is shown again with the count
    login = (state.server.username, state.server.password)
    assert wait_until(lambda: _through_tunnel(lt_server.port, state.tunnel.host, ["/"], auth=login)[0][0] == 200)
    print(f"\nlt restarted after SIGKILL in {restart_seconds:.1f} s (back-off 1 s included)")


def test_a_tunnel_dropped_by_the_service_is_reopened(shared, lt_server):
    state = shared[0]
    restarts = state.share.supervisor.restarts
    old_node = _lt_node(state)
    lt_server.drop(state.tunnel.name)
    assert wait_until(lambda: not old_node.is_running() or old_node.status() == psutil.STATUS_ZOMBIE, timeout=20)
    assert wait_until(lambda: state.share.supervisor.restarts > restarts, timeout=40)
    login = (state.server.username, state.server.password)
    assert wait_until(lambda: _through_tunnel(lt_server.port, state.tunnel.host, ["/"], auth=login)[0][0] == 200)


def test_stop_ends_tunnel_and_server_and_leaves_no_process(shared, lt_server, capsys):
    state = shared[0]
    server, tunnel = state.server, state.tunnel
    groups = [server.pid, tunnel.process.pid]
    pids = [p.pid for g in groups for p in group_members(g)]
    assert len(pids) == 5  # server: guard + mlflow + uvicorn worker; tunnel: guard + node
    name = tunnel.name
    sharing.ui(stop=True)
    assert "Stopped the shared MLflow UI" in capsys.readouterr().out
    assert wait_until(lambda: not any(group_members(g) for g in groups), timeout=10)
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not processes_with("--port", str(server.port))
    assert not processes_with("lt", "--host", lt_server.url)
    assert wait_until(lambda: lt_server.connected(name) == 0, timeout=10)
    assert sharing.current().server is None and sharing.current().share is None
    sharing.ui(stop=True)
    assert "No MLflow UI is running." in capsys.readouterr().out


def test_no_auth_share_on_a_service_that_renames_tunnels(project_dir, monkeypatch, capsys):
    """--no-auth warns and serves without a login; a new tunnel name moves MLflow's host check with it."""
    monkeypatch.chdir(project_dir)
    with LoopbackTunnelServer(honor_names=False) as renaming:
        try:
            sharing.ui(share=True, no_auth=True, tunnel_host=renaming.url)
            out, err = capsys.readouterr()
            assert "WITHOUT a login (--no-auth)" in err and "NO LOGIN" in out
            state = sharing.current()
            assert state.server.password is None
            old_host, old_port = state.tunnel.host, state.server.port
            assert _through_tunnel(renaming.port, old_host, ["/", "/"]) [1][0] == 200
            _lt_node(state).send_signal(signal.SIGKILL)
            assert wait_until(lambda: state.tunnel is not None and state.tunnel.host != old_host
                              and state.server is not None and state.server.config.allowed_hosts[-1] == state.tunnel.host,
                              timeout=90)
            new_host = state.tunnel.host
            assert state.server.port == old_port  # same local port: lt keeps forwarding to it
            assert state.server.config.allowed_origins == (state.tunnel.origin,)  # writes follow the new name
            assert wait_until(lambda: http_get(old_port, "/health")[0] == 200, timeout=60)
            assert http_get(old_port, "/", host=new_host)[0] == 200
            assert http_get(old_port, "/", host=old_host)[0] == 403  # the old name is no longer allowed
            assert f"the shared UI is at {state.public_url}" in capsys.readouterr().err
            assert _through_tunnel(renaming.port, new_host, ["/", "/"])[1][0] == 200
        finally:
            sharing.ui(stop=True)


# ----------------------------------------------------------------------------------------------- bad input


def _one_line(exc: SharingError) -> str:
    text = str(exc)
    assert "\n" not in text, text
    assert exc._render_traceback_() == [f"jupyter_tracking: {text}"]
    return text


def test_node_missing(project_dir, monkeypatch, tmp_path, no_leftovers, lt_server):
    monkeypatch.chdir(project_dir)
    monkeypatch.setenv("PATH", str(tmp_path))  # no node, no npx, no lt
    no_leftovers.append(("lt", "--host", lt_server.url, "--port"))
    no_leftovers.append(("mlflow", "server", str(project_dir)))
    before = lt_server.new_tunnel_requests
    with pytest.raises(SharingError) as caught:
        sharing.ui(share=True, tunnel_host=lt_server.url)
    assert _one_line(caught.value).startswith("Node.js is not installed")
    assert lt_server.new_tunnel_requests == before
    assert sharing.current().server is None


def test_tunnel_server_refusing_new_tunnels(project_dir, monkeypatch, no_leftovers):
    monkeypatch.chdir(project_dir)
    with LoopbackTunnelServer(refuse=True) as refusing:
        no_leftovers.append(("--host", refusing.url))
        with pytest.raises(SharingError) as caught:
            sharing.ui(share=True, tunnel_host=refusing.url, tunnel_timeout=4)
        assert refusing.new_tunnel_requests >= 1  # lt asked and was refused (it retries silently)
    text = _one_line(caught.value)
    assert text.startswith(f"The localtunnel server {refusing.url} gave no tunnel within 4 s")
    assert sharing.current().server is None and not processes_with("mlflow", "server", str(project_dir))


def test_tunnel_server_unreachable(project_dir, monkeypatch, no_leftovers):
    monkeypatch.chdir(project_dir)
    from jupyter_tracking.sharing.processes import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    no_leftovers.append(("--host", dead))
    monkeypatch.setenv("JUPYTER_TRACKING_TUNNEL_HOST", dead)  # a team's own tunnel server, set once
    with pytest.raises(SharingError) as caught:
        sharing.ui(share=True)
    assert _one_line(caught.value) == (
        f"Cannot reach the localtunnel server {dead} (Connection refused); check the address given with "
        "--tunnel-host, or the network."
    )


def test_port_in_use_for_a_share(project_dir, monkeypatch, lt_server, no_leftovers):
    monkeypatch.chdir(project_dir)
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        no_leftovers.append(("--port", str(port)))
        with pytest.raises(SharingError) as caught:
            sharing.ui(share=True, port=port, tunnel_host=lt_server.url)
    assert _one_line(caught.value).startswith(f"Port {port} on 127.0.0.1 is already in use")


def test_server_failing_behind_a_tunnel_stops_the_tunnel_too(tmp_path, monkeypatch, lt_server, no_leftovers):
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setattr(current_session().settings, "uri", f"sqlite:///{tmp_path}/not-a-folder/mlflow.db")
    no_leftovers.append(("mlflow", str(tmp_path)))
    tunnels_before = set(lt_server.tunnels)
    with pytest.raises(SharingError) as caught:
        sharing.ui(share=True, tunnel_host=lt_server.url)
    first, *rest = str(caught.value).splitlines()
    assert first.startswith("The MLflow UI server exited (code 1) before it was ready: FileExistsError")
    assert rest[0] == "  server stderr (last lines):" and any("FileExistsError" in line for line in rest[1:])
    new = set(lt_server.tunnels) - tunnels_before
    assert new and wait_until(lambda: all(lt_server.connected(t) == 0 for t in new), timeout=10)
    assert not processes_with("lt", "--host", lt_server.url)
    assert sharing.current().server is None


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"stop": True, "share": True}, "--stop takes no other option"),
        ({"status": True, "port": 5000}, "--status takes no other option"),
        ({"no_auth": True}, "--no-auth and --tunnel-host only apply together with --share"),
        ({"tunnel_host": "http://x"}, "--no-auth and --tunnel-host only apply together with --share"),
        ({"port": 70000}, "--port 70000 is not a TCP port"),
    ],
)
def test_contradictory_options_are_refused(kwargs, expected):
    with pytest.raises(SharingError) as caught:
        sharing.ui(**kwargs)
    assert _one_line(caught.value).startswith(expected)


def test_a_failed_share_keeps_the_plain_ui_and_a_good_one_replaces_it(project_dir, monkeypatch, lt_server, capsys):
    monkeypatch.chdir(project_dir)
    try:
        sharing.ui()
        plain = sharing.current().server
        with LoopbackTunnelServer(refuse=True) as refusing:
            with pytest.raises(SharingError):
                sharing.ui(share=True, tunnel_host=refusing.url, tunnel_timeout=3)
        assert sharing.current().server is plain and plain.healthy()  # still there, still usable
        sharing.ui(share=True, tunnel_host=lt_server.url)
        shared = sharing.current().server
        assert shared is not plain and shared.config.auth
        assert wait_until(lambda: not processes_with("--port", str(plain.port)), timeout=10)
        assert "Shared MLflow UI" in capsys.readouterr().out
    finally:
        sharing.ui(stop=True)


def test_a_chosen_port_stays_with_the_notebook(tmp_path, monkeypatch, lt_server, capsys):
    """--port P keeps working when the store changes or the UI gets shared: our old server makes way."""
    from jupyter_tracking.sharing.processes import free_port

    first, second = tmp_path / "a", tmp_path / "b"
    for root in (first, second):
        root.mkdir()
        (root / "pyproject.toml").write_text("")
    port = free_port()
    try:
        monkeypatch.chdir(first)
        sharing.ui(port=port)
        assert sharing.current().server.location == resolve_store(first)
        monkeypatch.chdir(second)
        sharing.ui(port=port)
        server = sharing.current().server
        assert (server.port, server.location) == (port, resolve_store(second))
        assert len(processes_with("mlflow", "--port", str(port))) == 2  # one server (guard + process), not two
        sharing.ui(share=True, port=port, tunnel_host=lt_server.url)
        shared = sharing.current().server
        assert shared.port == port and shared.config.auth
        assert len(processes_with("mlflow", "--port", str(port))) == 3  # with a login: `mlflow server` + worker
        assert f"local: http://127.0.0.1:{port}/" in capsys.readouterr().out
    finally:
        sharing.ui(stop=True)
