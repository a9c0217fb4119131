"""The wheel built from this checkout carries the prebuilt JupyterLab extension and the server extension's
switch: installed into a fresh virtualenv (no Node involved), JupyterLab lists both as enabled and OK."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = "jupyter_tracking-{version}.data/data"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(REPO)],
        check=True, env=env, timeout=600,
    )  # fmt: skip
    (built,) = out.glob("jupyter_tracking-*.whl")
    return built


def test_the_wheel_holds_the_production_build(wheel):
    import jupyter_tracking

    data = DATA.format(version=jupyter_tracking.__version__)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read(f"{data}/share/jupyter/labextensions/jupyter-tracking/package.json"))
        config = json.loads(archive.read(f"{data}/etc/jupyter/jupyter_server_config.d/jupyter_tracking.json"))
        install = json.loads(archive.read(f"{data}/share/jupyter/labextensions/jupyter-tracking/install.json"))
        scripts = [n for n in names if n.startswith(f"{data}/share/jupyter/labextensions/jupyter-tracking/static/")]
        sizes = {n: archive.getinfo(n).file_size for n in scripts if n.endswith(".js")}
    assert manifest["name"] == "jupyter-tracking"
    load = manifest["jupyterlab"]["_build"]["load"]
    assert f"{data}/share/jupyter/labextensions/jupyter-tracking/{load}" in names
    assert manifest["jupyterlab"]["_build"]["mimeExtension"] and manifest["jupyterlab"]["_build"]["extension"]
    assert f"{data}/share/jupyter/labextensions/jupyter-tracking/schemas/jupyter-tracking/plugin.json" in names
    assert not [n for n in scripts if n.endswith(".map")], "a development build (source maps) was packaged"
    assert config == {"ServerApp": {"jpserver_extensions": {"jupyter_tracking": True}}}
    assert install["packageName"] == "jupyter_tracking"
    assert "jupyter_tracking/serverext/handlers.py" in names
    assert 10_000 < sum(sizes.values()) < 1_000_000, sizes
    print(f"\nwheel {wheel.name}: {wheel.stat().st_size} bytes, extension JS {sum(sizes.values())} bytes")


def test_installed_in_a_fresh_venv_the_extensions_are_enabled_and_ok(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # Dependencies come from this environment (a .pth file), the package itself only from the wheel.
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    (site / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True, timeout=300,
    )  # fmt: skip
    # The `jupyter` subcommands, as pip writes them when it installs jupyterlab into a venv.
    for command, module in [("jupyter-labextension", "jupyterlab.labextensions"),
                            ("jupyter-server", "jupyter_server.serverapp")]:  # fmt: skip
        script = venv / "bin" / command
        script.write_text(f"#!{python}\nimport sys\nfrom {module} import main\nsys.exit(main())\n")
        script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin"
    env["HOME"] = str(tmp_path / "home")  # no user-level Jupyter folders
    where = subprocess.run(
        [str(python), "-c", "import jupyter_tracking, sys; print(jupyter_tracking.__file__)"],
        check=True, capture_output=True, text=True, env=env, cwd=tmp_path,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(venv)), where

    labext = subprocess.run(
        [str(python), "-m", "jupyter", "labextension", "list"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    listing = re.sub(r"\x1b\[[0-9;]*m", "", labext.stdout + labext.stderr)
    assert labext.returncode == 0, listing
    line = next((l for l in listing.splitlines() if "jupyter-tracking" in l), "")
    assert re.search(r"jupyter-tracking v0\.1\.0 enabled\s+OK \(python, jupyter_tracking\)", line), listing
    assert str(venv / "share" / "jupyter" / "labextensions") in listing

    serverext = subprocess.run(
        [str(python), "-m", "jupyter", "server", "extension", "list"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    listing = re.sub(r"\x1b\[[0-9;]*m", "", serverext.stdout + serverext.stderr)
    assert re.search(r"jupyter_tracking enabled", listing), listing
    assert re.search(r"jupyter_tracking 0\.1\.0 OK", listing), listing
