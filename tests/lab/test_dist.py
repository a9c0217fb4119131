"""What a release is made of and what a user gets from it: `python -m build` (isolated, as a release build runs)
makes an sdist and a wheel from this checkout; each goes into its own fresh virtualenv with no Node on PATH, and
there `import jupyter_tracking` works, `jupyter labextension list` shows the extension enabled and OK, the server
extension is enabled, and a tracked cell in a real kernel of that venv writes an MLflow run.

The wheel is installed as `pip install jupyter_tracking[lab]` installs it, dependencies resolved from the package
index. The sdist is built into a wheel by pip in its own isolated build (that is the part that needs no Node); its
dependencies come from this test environment (a .pth file), which saves a second 1 GB install.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VERSION = json.loads((REPO / "labextension" / "package.json").read_text())["version"]
DATA = f"jupyter_tracking-{VERSION}.data/data"
LABEXT = f"{DATA}/share/jupyter/labextensions/jupyter-tracking"
PROBE = Path(__file__).with_name("installed_probe.py")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    build = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert build.returncode == 0, (build.stdout + build.stderr)[-4000:]
    (sdist,) = out.glob("jupyter_tracking-*.tar.gz")
    (wheel,) = out.glob("jupyter_tracking-*.whl")
    print(f"\npython -m build: {time.monotonic() - started:.0f} s; "
          f"sdist {sdist.stat().st_size} bytes, wheel {wheel.stat().st_size} bytes")  # fmt: skip
    return {"sdist": sdist, "wheel": wheel}


def test_one_version_for_the_python_and_the_js_package(dists):
    assert dists["sdist"].name == f"jupyter_tracking-{VERSION}.tar.gz"
    assert dists["wheel"].name == f"jupyter_tracking-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(dists["wheel"]) as archive:
        generated = archive.read("jupyter_tracking/_version.py").decode()
        manifest = json.loads(archive.read(f"{LABEXT}/package.json"))
    assert f"__version__ = VERSION = '{VERSION}'" in generated
    assert manifest["version"] == VERSION


def test_the_sdist_carries_the_sources_and_the_built_extension(dists):
    root = f"jupyter_tracking-{VERSION}"
    with tarfile.open(dists["sdist"]) as archive:
        names = {name.removeprefix(f"{root}/") for name in archive.getnames()}
    built = {n for n in names if n.startswith("jupyter_tracking/labextension/")}
    assert {"jupyter_tracking/labextension/package.json", "jupyter_tracking/labextension/static/style.js"} <= built
    assert {"PKG-INFO", "pyproject.toml", "install.json", ".yarnrc.yml", "labextension/package.json",
            "labextension/yarn.lock", "labextension/src/index.ts", "jupyter-config/server-config/jupyter_tracking.json",
            "jupyter_tracking/__init__.py", "tests/lab/test_dist.py"} <= names  # fmt: skip
    assert not [n for n in names if "node_modules" in n or n.startswith((".venv", "labextension/lib/", ".git/"))]
    assert not [n for n in built if n.endswith(".map")], "a development build (source maps) was packaged"


def test_the_wheel_holds_the_production_build_once(dists):
    with zipfile.ZipFile(dists["wheel"]) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read(f"{LABEXT}/package.json"))
        config = json.loads(archive.read(f"{DATA}/etc/jupyter/jupyter_server_config.d/jupyter_tracking.json"))
        install = json.loads(archive.read(f"{LABEXT}/install.json"))
        scripts = [n for n in names if n.startswith(f"{LABEXT}/static/")]
        sizes = {n: archive.getinfo(n).file_size for n in scripts if n.endswith(".js")}
    assert manifest["name"] == "jupyter-tracking"
    load = manifest["jupyterlab"]["_build"]["load"]
    assert f"{LABEXT}/{load}" in names
    assert manifest["jupyterlab"]["_build"]["mimeExtension"] and manifest["jupyterlab"]["_build"]["extension"]
    assert f"{LABEXT}/schemas/jupyter-tracking/plugin.json" in names
    assert not [n for n in scripts if n.endswith(".map")], "a development build (source maps) was packaged"
    assert not [n for n in names if n.startswith("jupyter_tracking/labextension/")], "the extension is packed twice"
    assert config == {"ServerApp": {"jpserver_extensions": {"jupyter_tracking": True}}}
    assert install["packageName"] == "jupyter_tracking"
    assert "jupyter_tracking/serverext/handlers.py" in names
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "benchmarks/"))]
    assert 10_000 < sum(sizes.values()) < 1_000_000, sizes
    assert dists["wheel"].stat().st_size < 500_000


def _without_node(venv: Path, home: Path) -> dict[str, str]:
    """The environment of a user who has Python but no Node: only the venv's scripts on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "MLFLOW_", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = str(venv / "bin")
    env["HOME"] = str(home)  # no user-level Jupyter folders or kernels
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    assert shutil.which("node", path=env["PATH"]) is None and shutil.which("npm", path=env["PATH"]) is None
    return env


def _run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> tuple[str, str]:
    """(stdout, stdout and stderr without colours) of a command that must succeed."""
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    output = ANSI.sub("", done.stdout + done.stderr)
    assert done.returncode == 0, f"{' '.join(command)}\n{output[-4000:]}"
    return done.stdout, output


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_installed_into_a_fresh_venv_without_node_it_works(kind, dists, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    env = _without_node(venv, tmp_path / "home")
    started = time.monotonic()
    if kind == "wheel":
        _run([python, "-m", "pip", "install", "-q", "--no-compile", f"{dists['wheel']}[lab]"], env, tmp_path, 1200)
        labextension = [str(venv / "bin" / "jupyter"), "labextension", "list"]
        serverextension = [str(venv / "bin" / "jupyter"), "server", "extension", "list"]
    else:
        purelib, _ = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env, tmp_path)
        (Path(purelib.strip()) / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        _run([python, "-m", "pip", "install", "-q", "--no-deps", str(dists["sdist"])], env, tmp_path, 900)
        labextension = [python, "-m", "jupyterlab.labextensions", "list"]
        serverextension = [python, "-m", "jupyter_server.extension.serverextension", "list"]
    installed = time.monotonic() - started

    imported, _ = _run([python, "-c", "import jupyter_tracking as j; print(j.__file__, j.__version__)"], env, tmp_path)
    where, version = imported.split()
    assert where.startswith(str(venv)) and version == VERSION, (where, version)

    _, listing = _run(labextension, env, tmp_path)
    line = next((l for l in listing.splitlines() if "jupyter-tracking" in l), "")
    assert re.search(rf"jupyter-tracking v{re.escape(VERSION)} enabled\s+OK \(python, jupyter_tracking\)", line), listing
    assert str(venv / "share" / "jupyter" / "labextensions") in listing

    _, listing = _run(serverextension, env, tmp_path)
    assert re.search(r"jupyter_tracking enabled", listing), listing
    assert re.search(rf"jupyter_tracking {re.escape(VERSION)} OK", listing), listing

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    printed, _ = _run([python, str(PROBE), store], env, tmp_path, 600)
    probe = json.loads(printed.strip().splitlines()[-1])
    assert [cell["status"] for cell in probe["cells"]] == ["ok", "ok", "ok"], probe["cells"]
    assert probe["cells"][0]["stdout"].strip() == python  # the kernel is the venv's own
    [run] = probe["runs"]
    assert run["name"] == "packaged" and run["status"] == "FINISHED", run
    assert run["params"] == {"lr": "0.05"} and run["metrics"] == {"loss": 0.125}, run
    assert run["version"] == VERSION
    print(f"\n{kind}: installed in {installed:.0f} s")
