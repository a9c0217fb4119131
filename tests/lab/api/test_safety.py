"""No request can make the server open a file outside the Jupyter root, and no endpoint answers without
authentication."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

API = "jupyter-tracking/api"
ENDPOINTS = ["store", "experiments", "runs", "runs/0123456789abcdef0123456789abcdef",
             "runs/0123456789abcdef0123456789abcdef/metric-history"]  # fmt: skip


async def fetch_code(jp_fetch, *parts, method="GET", headers=None, **params):
    kwargs = {"body": b""} if method == "POST" else {}
    try:
        response = await jp_fetch(*parts, params=params, method=method, headers=headers, follow_redirects=False, **kwargs)
    except HTTPClientError as exc:
        return exc.code
    return response.code


@pytest.fixture
def outside(tmp_path: Path, jp_root_dir: Path) -> Path:
    """A project folder outside the Jupyter root: never to be read."""
    folder = tmp_path / "outside-project"
    folder.mkdir()
    (folder / "pyproject.toml").write_text("[project]\nname = 'secret'\n")
    assert jp_root_dir not in folder.parents
    return folder


@pytest.fixture
def outside_store(outside: Path) -> Path:
    """The outside project with a real store holding one experiment."""
    from jupyter_tracking.store import client_for, experiment_id_for, resolve_store

    location = resolve_store(outside)
    client_for(location)
    experiment_id_for(location, "secret-experiment")
    return outside


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_dot_dot_and_home_paths_are_refused(jp_fetch, lab_project, outside, endpoint):
    for path in ["..", "../outside-project", "proj/../../outside-project", "proj/notebooks/../../../x.ipynb",
                 "~", "~/x.ipynb", "proj/%2e%2e/%2e%2e"]:  # fmt: skip
        code = await fetch_code(jp_fetch, API, endpoint, path=path, key="k")
        assert code == (404 if "%" in path else 400), path
    assert sorted(p.name for p in outside.iterdir()) == ["pyproject.toml"]  # nothing was created out there


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_absolute_paths_are_refused(jp_fetch, lab_project, outside, endpoint):
    for path in [str(outside), str(outside / "x.ipynb"), "/etc", str(lab_project)]:
        assert await fetch_code(jp_fetch, API, endpoint, path=path, key="k") == 400, path


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_a_symlink_leading_out_of_the_root_is_refused(jp_fetch, jp_root_dir, lab_project, outside, endpoint):
    (jp_root_dir / "escape").symlink_to(outside, target_is_directory=True)
    (lab_project / "notebooks" / "link.ipynb").symlink_to(outside / "pyproject.toml")
    assert await fetch_code(jp_fetch, API, endpoint, path="escape", key="k") == 403
    assert await fetch_code(jp_fetch, API, endpoint, path="escape/x.ipynb", key="k") in (403, 404)
    assert await fetch_code(jp_fetch, API, endpoint, path="proj/notebooks/link.ipynb", key="k") == 403


async def test_a_symlink_staying_inside_the_root_is_followed(jp_fetch, jp_root_dir, lab_project):
    (jp_root_dir / "alias").symlink_to(lab_project, target_is_directory=True)
    response = await jp_fetch(API, "store", params={"path": "alias/notebooks/train.ipynb"})
    assert json.loads(response.body)["uri"] == f"sqlite:///{(lab_project / 'mlflow.db').resolve()}"


async def test_a_missing_path_is_a_404(jp_fetch, lab_project):
    assert await fetch_code(jp_fetch, API, "store", path="proj/nope.ipynb") == 404


def test_notebook_folder_refuses_nul_and_backslash_and_maps_files_to_their_folder(tmp_path):
    from jupyter_tracking.serverext.paths import PathRefused, notebook_folder

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "n.ipynb").write_text("{}")
    assert notebook_folder(tmp_path, "a/n.ipynb") == (tmp_path / "a").resolve()
    assert notebook_folder(tmp_path, "") == tmp_path.resolve()
    for bad in ["a/\x00n.ipynb", "..\\x", "a\\..\\.."]:
        with pytest.raises(PathRefused) as refused:
            notebook_folder(tmp_path, bad)
        assert refused.value.status == 400


async def test_the_mlflow_ui_cannot_be_started_for_a_store_outside_the_root(jp_fetch, lab_project, outside):
    assert await fetch_code(jp_fetch, API, "mlflow-ui", method="POST", path=str(outside)) == 400
    assert await fetch_code(jp_fetch, API, "mlflow-ui", method="POST", path="../outside-project") == 400


async def test_refused_requests_leave_the_outside_store_untouched(jp_fetch, lab_project, outside_store):
    outside = outside_store
    db = outside / "mlflow.db"
    before = (db.stat().st_mtime_ns, db.stat().st_size, sorted(os.listdir(outside)))
    for path in ["../outside-project", str(outside), "proj/../../outside-project"]:
        for endpoint in ["experiments", "runs"]:
            assert await fetch_code(jp_fetch, API, endpoint, path=path) == 400
    assert (db.stat().st_mtime_ns, db.stat().st_size, sorted(os.listdir(outside))) == before


async def test_every_endpoint_needs_authentication(jp_fetch, lab_project):
    wrong = {"Authorization": "token not-the-token"}
    for method, endpoint in [*(("GET", e) for e in ENDPOINTS), ("GET", "mlflow-ui"), ("POST", "mlflow-ui")]:
        code = await fetch_code(jp_fetch, API, endpoint, method=method, headers=wrong, path="proj", key="k")
        assert code == 403, (method, endpoint)
        code = await fetch_code(jp_fetch, API, endpoint, method=method, headers=wrong, path="..", key="k")
        assert code == 403, (method, endpoint)  # authentication comes before any path is looked at
    assert not (lab_project / "mlflow.db").exists()


async def test_the_proxy_needs_authentication(jp_fetch):
    wrong = {"Authorization": "token not-the-token"}
    code = await fetch_code(jp_fetch, "jupyter-tracking/mlflow/0123456789abcdef/", headers=wrong)
    assert code in (302, 403)
    # authenticated, but no UI was started for this key: nothing to reach
    assert await fetch_code(jp_fetch, "jupyter-tracking/mlflow/0123456789abcdef/") == 404


async def test_the_proxy_takes_unsafe_methods_only_from_this_origin(
    jp_serverapp, http_server_client, jp_base_url, jp_http_port
):
    """The MLflow UI's scripts send no Jupyter XSRF token: a cookie-authenticated POST through the proxy must
    then carry this server's own Origin; a cross-site POST riding on the login cookie is refused."""
    token = jp_serverapp.identity_provider.token
    login = await http_server_client.fetch(f"{jp_base_url}api/status?token={token}")
    cookie = "; ".join(c.split(";", 1)[0] for c in login.headers.get_list("Set-Cookie"))
    assert cookie
    url = f"{jp_base_url}jupyter-tracking/mlflow/0123456789abcdef/ajax-api/2.0/mlflow/runs/delete"

    async def post(headers):
        response = await http_server_client.fetch(
            url, method="POST", body=b"{}", headers={"Cookie": cookie, **headers}, raise_error=False,
            follow_redirects=False,
        )  # fmt: skip
        return response.code, response.body or b""

    reached = b"No MLflow UI is running"  # the proxy's own answer: the request got through to forwarding
    code, body = await post({"Origin": "http://evil.example"})
    assert code in (403, 404) and reached not in body
    code, body = await post({})
    assert code == 403 and reached not in body
    code, body = await post({"Origin": f"http://127.0.0.1:{jp_http_port}"})
    assert code == 404 and reached in body
