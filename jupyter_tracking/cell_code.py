"""Compile and run a cell's code the way IPython does, so tracebacks, the displayed last value and ``;`` behave
as in an untracked cell.
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
    body = compile(tree, filename, "exec", flags, dont_inherit=True)
    if body.co_flags & inspect.CO_COROUTINE:
        from IPython.core.error import UsageError

        raise UsageError("top-level `await` is not supported in a %%track cell; use `with jt.track():` in it instead")
    last_code = compile(last, filename, "eval", flags, dont_inherit=True) if last is not None else None
    return CompiledCell(body, last_code, display_last=not _ends_with_semicolon(code_text))


def execute(shell: Any, compiled: CompiledCell) -> Any:
    __tracebackhide__ = True
    exec(compiled.body, shell.user_global_ns, shell.user_ns)  # noqa: S102 - running the user's cell is the point
    if compiled.last is None:
        return None
    value = eval(compiled.last, shell.user_global_ns, shell.user_ns)  # noqa: S307
    if compiled.display_last:
        shell.displayhook(value)
    return value


def _ends_with_semicolon(code_text: str) -> bool:
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


