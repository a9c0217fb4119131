"""MLflow imported in a thread from %load_ext: an interrupt never leaves it half imported; a failure is retried."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.kernels import Kernel
from tests.stores import runs_of

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_half_initialised_mlflow_is_thrown_away_and_imported_again():
    # What an import cut short by Ctrl-C leaves in sys.modules: a module still marked as initialising.
    result = _python(
        "import sys, types, importlib.machinery\n"
        "half = types.ModuleType('mlflow')\n"
        "half.__spec__ = importlib.machinery.ModuleSpec('mlflow', None)\n"
        "half.__spec__._initializing = True\n"
        "sys.modules['mlflow'] = half\n"
        "sys.modules['mlflow.version'] = types.ModuleType('mlflow.version')\n"
        "from jupyter_tracking import preload\n"
        "preload.ensure_mlflow()\n"
        "import mlflow\n"
        "assert mlflow is not half and mlflow.version.VERSION, mlflow\n"
        "print('ok', mlflow.version.VERSION)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")


def test_a_failed_import_is_retried_cleanly():
    # The first attempt fails half-way (after `mlflow` itself is imported); the retry starts from scratch.
    result = _python(
        "import sys\n"
        "class FailOnce:\n"
        "    failed = False\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'mlflow.store.tracking.sqlalchemy_store' and not self.failed:\n"
        "            self.failed = True\n"
        "            raise ImportError('disk hiccup')\n"
        "        return None\n"
        "sys.meta_path.insert(0, FailOnce())\n"
        "from jupyter_tracking import preload\n"
        "preload.ensure_mlflow()\n"
        "import mlflow.store.tracking.sqlalchemy_store as s\n"
        "assert sys.meta_path[0].failed and s.SqlAlchemyStore\n"
        "print('ok')\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_an_import_that_keeps_failing_is_reported_as_such_and_works_once_fixed():
    result = _python(
        "import sys\n"
        "class Broken:\n"
        "    broken = True\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'mlflow.tracking.fluent' and self.broken:\n"
        "            raise ImportError('mlflow is broken here')\n"
        "        return None\n"
        "finder = Broken()\n"
        "sys.meta_path.insert(0, finder)\n"
        "from jupyter_tracking import preload\n"
        "try:\n"
        "    preload.ensure_mlflow()\n"
        "except ImportError as error:\n"
        "    print('failed:', error)\n"
        "assert not [name for name in sys.modules if name.startswith('mlflow')], 'half-imported modules left'\n"
        "finder.broken = False\n"
        "preload.ensure_mlflow()\n"
        "import mlflow\n"
        "print('ok', mlflow.version.VERSION)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "failed: mlflow is broken here"
    assert result.stdout.splitlines()[1].startswith("ok ")


def test_load_ext_imports_nothing_heavy_on_the_main_thread():
    result = _python(
        "import sys, threading\n"
        "HEAVY = ('mlflow', 'pandas', 'plotly', 'sqlalchemy')\n"
        "imported = []\n"
        "class Watch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name in HEAVY:\n"
        "            imported.append((name, threading.current_thread().name))\n"
        "        return None\n"
        "sys.meta_path.insert(0, Watch())\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "shell.run_line_magic('load_ext', 'jupyter_tracking')\n"
        "main = [name for name, thread in imported if thread == 'MainThread']\n"
        "from jupyter_tracking import preload\n"
        "preload.ensure_mlflow()\n"
        "assert 'mlflow' in sys.modules\n"
        "print('main thread imported:', main)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "main thread imported: []" in result.stdout


def test_interrupting_the_first_tracked_cell_while_mlflow_imports_leaves_later_cells_working(project):
    kernel = Kernel(project / "notebooks")
    try:
        reply, printed = kernel.run_text("%load_ext jupyter_tracking\n%track config --experiment interrupted")
        assert reply["content"]["status"] == "ok", printed
        msg_id = kernel.send("%%track first\nvalue = 1\n")
        time.sleep(0.3)  # MLflow takes seconds to import: the cell is waiting for it now
        kernel.manager.interrupt_kernel()
        reply = kernel.reply(msg_id)
        kernel.collect(until_idle=msg_id)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        assert "preload.py" in kernel.printed(msg_id)  # it landed while the cell waited for the import thread
        for number in (2, 3):
            reply, printed = kernel.run_text(f"%%track after-{number}\nvalue = {number}\n")
            assert reply["content"]["status"] == "ok", printed
        reply, printed = kernel.run_text("%track sync")
        assert reply["content"]["status"] == "ok" and "nothing to sync" in printed, printed
        everything = kernel.all_text()
    finally:
        kernel.close()
    assert "partially initialized" not in everything and "AttributeError" not in everything, everything
    assert "spool" not in everything, everything
    runs = runs_of(project, "interrupted")
    assert [(run.info.run_name, run.info.status) for run in runs] == [
        ("after-2", "FINISHED"), ("after-3", "FINISHED"),
    ]


def test_commands_sent_right_after_load_ext_wait_for_the_import_and_never_deadlock(project):
    from jupyter_tracking import store_template

    store_template.create_store(project / "mlflow.db", str(project / "mlartifacts"))  # recovery runs at load
    kernel = Kernel(project / "notebooks")
    try:
        requests = [kernel.send("%load_ext jupyter_tracking"), kernel.send("%track"), kernel.send("%runs Default")]
        for msg_id in requests:
            assert kernel.reply(msg_id, timeout=120)["content"]["status"] == "ok", kernel.printed(msg_id)
            kernel.collect(until_idle=msg_id)
        assert "store:" in kernel.printed(requests[1])
    finally:
        kernel.close()
