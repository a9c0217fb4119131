"""Compile and run a cell's code the way IPython does, so tracebacks, the displayed last value and ``;`` behave
as in an untracked cell.

Top-level ``await`` works when IPython's autoawait is on: in a terminal IPython through the shell's own loop
runner; in a kernel, whose event loop is busy running this very cell, on an event loop of its own in a worker
thread (jt.log and MLflow's active run work there; awaitables bound to the kernel's loop by earlier cells do not).
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from typing import Any

from . import context as context_module


@dataclass
class CompiledCell:
    body: Any
    last: Any | None
    display_last: bool
    awaits: bool = False  # top-level `await` (run as a coroutine)


class CellSyntaxError(Exception):
    """A ``%%track`` cell's SyntaxError as the magic raises it, shown like Python's own for an untracked cell:
    the cell and line (``Cell In[3], line 2``), the line and a caret, the message; none of the tracker's
    frames (IPython prints every frame of a SyntaxError raised inside a magic). ``error`` is the original."""

    def __init__(self, error: SyntaxError) -> None:
        super().__init__(str(error))
        self.error = error

    def _render_traceback_(self) -> list[str]:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            import traceback

            return traceback.format_exception_only(type(self.error), self.error)
        return shell.SyntaxTB.structured_traceback(type(self.error), self.error, [])


CellSyntaxError.__name__ = CellSyntaxError.__qualname__ = "SyntaxError"  # the kernel's error reply names it so


def compile_cell(shell: Any, code_text: str, raw_source: str) -> CompiledCell:
    """Compile like IPython does (its cell file name, so tracebacks show the cell's lines). A SyntaxError
    names that file too, so it points at the cell's own line."""
    __tracebackhide__ = True
    number = context_module.execution_count() or shell.execution_count
    try:
        filename = shell.compile.cache(code_text, number, raw_code=raw_source)
    except TypeError:  # older IPython without raw_code
        filename = shell.compile.cache(code_text, number)
    flags = getattr(shell.compile, "flags", 0)
    tree = ast.parse(code_text, filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    flags = getattr(shell.compile, "flags", 0) | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    body = compile(tree, filename, "exec", flags, dont_inherit=True)
    last_code = compile(last, filename, "eval", flags, dont_inherit=True) if last is not None else None
    awaits = any(code is not None and code.co_flags & inspect.CO_COROUTINE for code in (body, last_code))
    if awaits and not getattr(shell, "autoawait", False):
        from IPython.core.error import UsageError

        raise UsageError("top-level `await` in a %%track cell needs IPython's autoawait (`%autoawait on`)")
    return CompiledCell(body, last_code, display_last=not _ends_with_semicolon(code_text), awaits=awaits)


def execute(shell: Any, compiled: CompiledCell) -> Any:
    __tracebackhide__ = True
    if compiled.awaits:
        value = _run_coroutine(shell, lambda: _awaited(shell, compiled))
        if compiled.last is not None and compiled.display_last:
            shell.displayhook(value)
        return value
    exec(compiled.body, shell.user_global_ns, shell.user_ns)  # noqa: S102 - running the user's cell is the point
    if compiled.last is None:
        return None
    value = eval(compiled.last, shell.user_global_ns, shell.user_ns)  # noqa: S307
    if compiled.display_last:
        shell.displayhook(value)
    return value


def _ends_with_semicolon(code_text: str) -> bool:
    if ";" not in code_text:
        return False  # the common case, without tokenizing a long cell
    import io
    import tokenize

    try:
        tokens = [
            token for token in tokenize.generate_tokens(io.StringIO(code_text).readline)
            if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER,
                                  tokenize.DEDENT, tokenize.INDENT)
        ]
    except (tokenize.TokenError, SyntaxError):
        return False
    return bool(tokens) and tokens[-1].string == ";"




async def _awaited(shell: Any, compiled: CompiledCell) -> Any:
    """The cell as one coroutine: its body, then its last expression (either may await)."""
    __tracebackhide__ = True
    result = eval(compiled.body, shell.user_global_ns, shell.user_ns)  # noqa: S307
    if inspect.iscoroutine(result):
        await result
    if compiled.last is None:
        return None
    value = eval(compiled.last, shell.user_global_ns, shell.user_ns)  # noqa: S307
    if compiled.last.co_flags & inspect.CO_COROUTINE:
        value = await value
    return value


def _run_coroutine(shell: Any, make: Any) -> Any:
    """Run the coroutine ``make()`` to its end; see the module docstring for where."""
    __tracebackhide__ = True
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop runs in this thread (terminal IPython): the shell's runner
        runner = getattr(shell, "loop_runner", None) or asyncio.run
        return runner(make())
    import contextvars
    import threading

    state: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        try:
            state["task"] = task = loop.create_task(make())
            state["loop"] = loop
            state["value"] = loop.run_until_complete(task)
        except BaseException as error:  # noqa: BLE001 - handed to the cell's thread, raised there
            state["error"] = error
        finally:
            loop.close()

    # MLflow's active run lives in a context variable: the worker sees the tracked run.
    worker = threading.Thread(target=contextvars.copy_context().run, args=(run,), name="jt-await", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.05)
    except KeyboardInterrupt:
        if "loop" in state:
            state["loop"].call_soon_threadsafe(state["task"].cancel)
        worker.join(10)
        raise
    if "error" in state:
        raise state["error"]
    return state.get("value")
