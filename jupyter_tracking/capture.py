"""What a cell reads and binds, and what its values become: params, metrics, step series, datasets.

Two halves, both pure (no MLflow here, STYLE.md: capture never talks to MLflow):
- ``analyze(source)`` walks the cell's syntax tree in evaluation order and tells which names are read before
  the cell binds them, which it binds (and whether only from literals), which are loop/with/import targets,
  and how to name the last expression.
- ``Capture`` classifies values by the rules in DESIGN.md ("What a tracked cell records"): params are taken
  before the cell runs (names read) and after (names bound from literals); metrics, step series and datasets
  after. Configs are flattened with dotted keys; credentials are withheld by name and by value.
  Where the binding form misleads, the final value decides: a literal container the cell grew into step series
  (``history = {"loss": []}`` appended per epoch) is series, not params; a name last bound in a loop whose values
  the loop logged (``jt.log``, an MLflow call, ``.append`` to a recorded series) is no metric; neither is what
  the cell's own MLflow calls return.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from .secret_filter import MAX_PARAM_SCAN, is_secret_name, is_secret_param, long_value, remember_secret

MAX_LIST_PARAM = 20  # longer lists are not params (a list of 100 numbers is data, or a step series)
MAX_FLAT_ENTRIES = 200  # a config with more leaves than this is not logged (a vocabulary is not a config)
MAX_DEPTH = 6


# --------------------------------------------------------------------------------------------- analysis
@dataclass
class CellAnalysis:
    """Names the cell reads and binds, from its syntax alone."""

    read_first: set[str] = field(default_factory=set)  # read before the cell binds them: inputs
    bound: set[str] = field(default_factory=set)  # bound at module level
    literal_bound: set[str] = field(default_factory=set)  # every binding is a literal: params
    literal_calls: set[str] = field(default_factory=set)  # ... of which some from a call (`Namespace(lr=0.1)`)
    not_metrics: set[str] = field(default_factory=set)  # loop/with/except targets, imports, defs, classes
    deleted: set[str] = field(default_factory=set)
    last_expr_key: str | None = None  # name for the last expression's value when it is a number/dict
    has_last_expr: bool = False
    last_expr_is_name: bool = False
    mentions_mlflow: bool = False
    # Containers bound from a literal (`history = {"loss": []}`): what the literal was, to tell a container the
    # cell grew into a step series from a config it left alone.
    literal_values: dict[str, Any] = field(default_factory=dict)
    # Names bound only inside module-level loops and read there by a logging call (`jt.log(val=vl)`,
    # `mlflow.log_metric("v", vl)`) or appended to a container (`val_losses.append(vl)`): name -> where its values
    # went ("log", or the container's name). Loop temporaries: their values are a series already.
    loop_logged: dict[str, set[str]] = field(default_factory=dict)
    # Names whose last binding is inside a module-level loop: their value is the last iteration's. An array
    # there (`grad = X.T @ err`) is not a metric history, whatever its name.
    loop_rebound: set[str] = field(default_factory=set)


def analyze(source: str) -> CellAnalysis:
    """Analyse Python source (magics already transformed); raises SyntaxError like the cell would."""
    tree = ast.parse(source)
    visitor = _Visitor()
    for statement in tree.body:
        visitor.visit(statement)
    result = visitor.result
    # Names read inside function bodies count as inputs only when the cell never binds them itself.
    result.read_first |= visitor.deferred_reads - result.bound
    result.literal_bound = {name for name in result.literal_bound if name not in visitor.computed}
    result.literal_values = {
        name: value for name, value in visitor.literal_values.items() if name in result.literal_bound
    }
    result.loop_logged = {
        name: sinks for name, sinks in visitor.logged_in_loop.items() if visitor.last_bound_in_loop.get(name)
    }
    result.loop_rebound = {name for name, in_loop in visitor.last_bound_in_loop.items() if in_loop}
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        result.has_last_expr = True
        last = tree.body[-1].value
        # The cell's own MLflow call (`mlflow.log_param("lr", 0.1)`) returns what it logged: not a result.
        result.last_expr_key = None if _calls_mlflow(last, visitor.mlflow_names) else _expression_key(last)
        result.last_expr_is_name = isinstance(tree.body[-1].value, ast.Name)
    result.mentions_mlflow = "mlflow" in visitor.all_names
    return result


def _expression_key(node: ast.expr) -> str:
    """A metric name for the value of an expression: ``acc`` -> acc, ``m.score(x)`` -> score, else result."""
    while isinstance(node, (ast.Call, ast.Subscript, ast.Await)):
        node = node.func if isinstance(node, ast.Call) else node.value
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return "result"


def _root_name(node: ast.AST) -> str | None:
    """The name an attribute/subscript/call chain starts from: ``mlflow.sklearn.log_model`` -> mlflow."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _calls_mlflow(node: ast.AST, mlflow_names: set[str]) -> bool:
    """A call of an MLflow function (``mlflow.log_param(...)``, ``log_metric(...)`` imported from mlflow)."""
    if isinstance(node, ast.Await):
        node = node.value
    return isinstance(node, ast.Call) and _root_name(node.func) in mlflow_names


# Calls through which a loop sends its values to a step series: `jt.log(...)`, `mlflow.log_metric(s)(...)`,
# `writer.add_scalar(...)`, `losses.append(...)`.
_LOGGING_CALLS = {"log", "log_metric", "log_metrics", "add_scalar", "add_scalars"}
_GROWING_CALLS = {"append", "extend", "insert"}


def _is_literal(node: ast.AST | None) -> bool:
    """A literal value, or a call of a name with only literal arguments (``Namespace(lr=0.1)``, ``Path("x")``)."""
    if node is None:
        return False
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Compare, ast.BoolOp, ast.Lambda, ast.IfExp,
                         ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.JoinedStr, ast.Await)):
        return False  # quick answers: a cell binding 10,000 names must be analysed in a blink
    if isinstance(node, ast.BinOp) and not (_is_signed_constant(node.left) and _is_signed_constant(node.right)):
        return False  # only `1+2j` is a literal among binary operations
    if isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict)) and not (node.keys if isinstance(node, ast.Dict) else node.elts):
        return False  # `losses = []` starts an accumulator; it is not a knob
    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
        arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
        if not arguments:
            return False  # `fh.read()`, `evaluate()`: a call without arguments computes something
        return all(_is_literal(argument) for argument in arguments) and all(
            keyword.arg is not None for keyword in node.keywords
        )
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return all(_is_literal(element) for element in node.elts)
    if isinstance(node, ast.Dict):
        return all(key is not None and _is_literal(key) for key in node.keys) and all(
            _is_literal(value) for value in node.values
        )
    return False


def _is_signed_constant(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) or (isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant))


def _target_names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []  # attribute / subscript targets bind no name


class _Visitor(ast.NodeVisitor):
    """Visits module-level code in evaluation order (values before targets), tracking what is bound so far."""

    def __init__(self) -> None:
        self.result = CellAnalysis()
        self.computed: set[str] = set()  # bound at least once from a non-literal
        self.deferred_reads: set[str] = set()
        self.all_names: set[str] = set()
        self._scopes: list[set[str]] = []  # local names of enclosing functions/comprehensions/classes
        self._globals_in_scope: list[set[str]] = []
        self._binding_is_call = False
        self.literal_values: dict[str, Any] = {}
        self.mlflow_names: set[str] = {"mlflow"}  # names bound to MLflow modules and functions
        self._loop_depth = 0  # module-level loops around the statement being visited
        self.last_bound_in_loop: dict[str, bool] = {}  # whether a name's last module-level binding is in a loop
        self.logged_in_loop: dict[str, set[str]] = {}

    # -- helpers
    def _bind(self, name: str, *, literal: bool, loop: bool = False) -> None:
        if self._scopes:
            if name in self._globals_in_scope[-1]:
                self.result.bound.add(name)
                self.computed.add(name)
            else:
                self._scopes[-1].add(name)
            return
        self.result.bound.add(name)
        self.result.deleted.discard(name)
        self.last_bound_in_loop[name] = bool(self._loop_depth)
        if loop:
            self.result.not_metrics.add(name)
        if literal:
            self.result.literal_bound.add(name)
            if self._binding_is_call:
                self.result.literal_calls.add(name)
        else:
            self.computed.add(name)

    def _bind_target(self, target: ast.AST, *, literal: bool, loop: bool = False) -> None:
        # Subscript / attribute targets read their base (`d["k"] = 1` reads d).
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            self.visit(target)
            return
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._bind_target(element, literal=literal, loop=loop)
            return
        if isinstance(target, ast.Starred):
            self._bind_target(target.value, literal=literal, loop=loop)
            return
        for name in _target_names(target):
            self._bind(name, literal=literal, loop=loop)

    def _read(self, name: str) -> None:
        self.all_names.add(name)
        for scope in reversed(self._scopes):
            if name in scope:
                return
        if self._scopes:
            self.deferred_reads.add(name)
        elif name not in self.result.bound:
            self.result.read_first.add(name)

    # -- code inside `%time ...` / `%%time`: IPython turns it into a string argument; it runs in the namespace
    def visit_Call(self, node: ast.Call) -> None:
        if self._loop_depth and not self._scopes:
            self._note_logged(node)
        inner = _timed_code(node)
        if inner is not None:
            try:
                statements = ast.parse(inner).body
            except SyntaxError:
                statements = None
            if statements is not None:
                for statement in statements:
                    self.visit(statement)
                return
        self.generic_visit(node)

    def _note_logged(self, node: ast.Call) -> None:
        """In a loop: names whose values a logging call or a growing container takes (see ``loop_logged``)."""
        func = node.func
        attribute = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if attribute in _LOGGING_CALLS:
            sink = "log"
        elif attribute in _GROWING_CALLS and isinstance(func, ast.Attribute):
            sink = _root_name(func.value)
            if sink is None:
                return
        else:
            return
        for argument in [*node.args, *(keyword.value for keyword in node.keywords)]:
            for child in ast.walk(argument):
                if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
                    self.logged_in_loop.setdefault(child.id, set()).add(sink)

    # -- leaves and operators, without NodeVisitor's generic walk (a cell may bind 10,000 names)
    def visit_Constant(self, node: ast.Constant) -> None:
        pass

    def visit_BinOp(self, node: ast.BinOp) -> None:
        self.visit(node.left)
        self.visit(node.right)

    # -- names
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._read(node.id)
        elif isinstance(node.ctx, ast.Del):
            if not self._scopes:
                self.result.deleted.add(node.id)
                self.result.bound.discard(node.id)

    # -- statements that bind
    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        literal = _is_literal(node.value)
        self._binding_is_call = isinstance(node.value, ast.Call)
        from_mlflow = _calls_mlflow(node.value, self.mlflow_names)
        value = node.value
        if (len(node.targets) == 1 and isinstance(node.targets[0], (ast.Tuple, ast.List))
                and isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(node.targets[0].elts)
                and not any(isinstance(element, ast.Starred) for element in [*value.elts, *node.targets[0].elts])):
            # `losses, val_losses = [], []`: each name takes its own value
            for target, element in zip(node.targets[0].elts, value.elts):
                self._binding_is_call = isinstance(element, ast.Call)
                self._bind_target(target, literal=_is_literal(element))
                if isinstance(target, ast.Name) and not self._scopes and _is_literal(element):
                    self._remember_literal(target.id, element)
            self._binding_is_call = False
            return
        for target in node.targets:
            # `info = mlflow.sklearn.log_model(...)`: what MLflow returns is in the run already
            self._bind_target(target, literal=literal, loop=from_mlflow)
            if literal and isinstance(target, ast.Name) and not self._scopes:
                self._remember_literal(target.id, node.value)
        self._binding_is_call = False

    def _remember_literal(self, name: str, node: ast.expr) -> None:
        if isinstance(node, (ast.List, ast.Dict, ast.Tuple)):
            try:
                self.literal_values[name] = ast.literal_eval(node)
                return
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                pass
        self.literal_values.pop(name, None)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self._bind_target(node.target, literal=_is_literal(node.value))

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self._read(node.target.id)
            self._bind(node.target.id, literal=False)
        else:
            self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        name = node.target.id
        # A walrus inside a comprehension binds in the enclosing (here: module) scope.
        if self._scopes and all(isinstance(scope, _ComprehensionScope) for scope in self._scopes):
            self.result.bound.add(name)
            self.computed.add(name)
        else:
            self._bind(name, literal=_is_literal(node.value))

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._bind_target(node.target, literal=False, loop=True)
        self._visit_loop_body(node.body)
        for statement in node.orelse:
            self.visit(statement)

    visit_AsyncFor = visit_For

    def visit_While(self, node: ast.While) -> None:
        self.visit(node.test)
        self._visit_loop_body(node.body)
        for statement in node.orelse:
            self.visit(statement)

    def _visit_loop_body(self, body: list[ast.stmt]) -> None:
        counted = not self._scopes  # loops inside functions are the function's business
        self._loop_depth += counted
        try:
            for statement in body:
                self.visit(statement)
        finally:
            self._loop_depth -= counted

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._bind_target(item.optional_vars, literal=False, loop=True)
        for statement in node.body:
            self.visit(statement)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._bind(node.name, literal=False, loop=True)
        for statement in node.body:
            self.visit(statement)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                continue
            name = alias.asname or alias.name.split(".")[0]
            self.all_names.add(alias.name.split(".")[0])
            module = getattr(node, "module", None) or alias.name
            if module == "mlflow" or module.startswith("mlflow."):
                self.mlflow_names.add(name)
            self._bind(name, literal=False, loop=True)

    visit_ImportFrom = visit_Import

    def visit_Global(self, node: ast.Global) -> None:
        if self._globals_in_scope:
            self._globals_in_scope[-1].update(node.names)

    def visit_match_case(self, node: ast.match_case) -> None:
        for child in ast.walk(node.pattern):
            name = getattr(child, "name", None)
            if isinstance(name, str):
                self._bind(name, literal=False)
        if node.guard is not None:
            self.visit(node.guard)
        for statement in node.body:
            self.visit(statement)

    # -- scopes
    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        for decorator in getattr(node, "decorator_list", []):
            self.visit(decorator)
        arguments = node.args
        for default in [*arguments.defaults, *(d for d in arguments.kw_defaults if d is not None)]:
            self.visit(default)
        if not isinstance(node, ast.Lambda):
            self._bind(node.name, literal=False, loop=True)
        parameters = {a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]}
        for extra in (arguments.vararg, arguments.kwarg):
            if extra is not None:
                parameters.add(extra.arg)
        self._scopes.append(set(parameters))
        self._globals_in_scope.append(set())
        body = node.body if isinstance(node.body, list) else [node.body]
        # Locals of a function are the names it assigns (unless declared global): collect them first.
        for statement in body:
            for child in ast.walk(statement):
                if isinstance(child, ast.Global):
                    self._globals_in_scope[-1].update(child.names)
        for statement in body:
            for child in ast.walk(statement):
                if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                    if child.id not in self._globals_in_scope[-1]:
                        self._scopes[-1].add(child.id)
        for statement in body:
            self.visit(statement)
        self._scopes.pop()
        self._globals_in_scope.pop()

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function
    visit_Lambda = _visit_function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expression in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expression)
        self._bind(node.name, literal=False, loop=True)
        self._scopes.append(set())
        self._globals_in_scope.append(set())
        for statement in node.body:
            self.visit(statement)
        self._scopes.pop()
        self._globals_in_scope.pop()

    def _visit_comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> None:
        generators = node.generators
        # The first iterable is evaluated in the enclosing scope.
        self.visit(generators[0].iter)
        scope = _ComprehensionScope()
        for generator in generators:
            for child in ast.walk(generator.target):
                if isinstance(child, ast.Name):
                    scope.add(child.id)
        self._scopes.append(scope)
        self._globals_in_scope.append(set())
        for index, generator in enumerate(generators):
            if index:
                self.visit(generator.iter)
            for condition in generator.ifs:
                self.visit(condition)
        if isinstance(node, ast.DictComp):
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)
        self._scopes.pop()
        self._globals_in_scope.pop()

    visit_ListComp = _visit_comprehension
    visit_SetComp = _visit_comprehension
    visit_GeneratorExp = _visit_comprehension
    visit_DictComp = _visit_comprehension


def _timed_code(node: ast.Call) -> str | None:
    """The code string of ``get_ipython().run_line_magic("time", CODE)`` / ``run_cell_magic("time", "", CODE)``."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr in ("run_line_magic", "run_cell_magic")):
        return None
    if not (isinstance(func.value, ast.Call) and isinstance(func.value.func, ast.Name)
            and func.value.func.id == "get_ipython"):
        return None
    values = [arg.value if isinstance(arg, ast.Constant) else None for arg in node.args]
    if not values or values[0] != "time" or not isinstance(values[-1], str):
        return None
    return values[-1]


class _ComprehensionScope(set):
    """Marks a comprehension's scope (a walrus inside binds in the enclosing scope)."""


# --------------------------------------------------------------------------------------------- values
def _is_number(value: Any) -> bool:
    """A real number that can be a metric: int, float, numpy/0-d tensor scalar; never a bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Real):
        return True
    type_name = type(value).__name__
    module = type(value).__module__ or ""
    if module.startswith("numpy"):
        if type_name == "bool_":
            return False
        shape = getattr(value, "shape", None)
        if shape == () and getattr(getattr(value, "dtype", None), "kind", "") in "iuf":
            return True
        return False
    if module.startswith(("torch", "tensorflow", "jax")) and getattr(value, "ndim", None) == 0:
        dtype = str(getattr(value, "dtype", ""))
        return "bool" not in dtype and "complex" not in dtype
    return False


def to_float(value: Any) -> float:
    if hasattr(value, "item") and not isinstance(value, numbers.Real):
        value = value.item()
    return float(value)


def _is_scalar_param(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, enum.Enum, PurePath)):
        return True
    module = type(value).__module__ or ""
    return module.startswith("numpy") and getattr(value, "shape", None) == () and hasattr(value, "item")


def param_text(value: Any) -> str:
    """How a param value is written: ``0.1``, ``adam``, ``[64, 32]``, ``Mode.FAST``, ``None``."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(param_text(item) for item in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, str):
        return value
    if hasattr(value, "item") and not isinstance(value, (bool, int, float)):
        value = value.item()
    return str(value)


def _config_items(value: Any) -> list[tuple[str, Any]] | None:
    """The fields of a config-like object (dict, Namespace, dataclass, NamedTuple, pydantic), else None."""
    if isinstance(value, Mapping):
        return [(str(key), item) for key, item in value.items()]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f.name, getattr(value, f.name, None)) for f in dataclasses.fields(value)]
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return [(str(key), item) for key, item in value._asdict().items()]
    type_name = type(value).__name__
    if type_name in ("Namespace", "SimpleNamespace") and hasattr(value, "__dict__"):
        return [(str(key), item) for key, item in vars(value).items()]
    if hasattr(value, "model_dump") and "pydantic" in (type(value).__module__ or "") + str(type(value).__mro__):
        try:
            return [(str(key), item) for key, item in value.model_dump().items()]
        except Exception:  # noqa: BLE001 - a broken config is just not logged
            return None
    return None


def _remember_leaves(value: Any, depth: int = 0) -> None:
    """Remember the text values inside a withheld value (a string, or a small config holding strings)."""
    if isinstance(value, (str, bytes, int)) and not isinstance(value, bool):
        remember_secret(value)
        return
    if depth >= 3:
        return
    try:
        items = _config_items(value)
    except Exception:  # noqa: BLE001 - odd objects are not looked into
        return
    if items is None and isinstance(value, (list, tuple)) and len(value) <= MAX_LIST_PARAM:
        items = [("", item) for item in value]
    for _, item in (items or [])[:MAX_FLAT_ENTRIES]:
        _remember_leaves(item, depth + 1)


class TooLarge(Exception):
    """A config with more leaves than MAX_FLAT_ENTRIES."""


def flatten_params(name: str, value: Any, *, _depth: int = 0) -> dict[str, Any] | None:
    """``{dotted key: value}`` of the param-like leaves of ``value``, or None if ``value`` is not param-like.

    Raises TooLarge for configs with too many leaves.
    """
    if _is_scalar_param(value):
        return {name: value}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_asdict"):
        if len(value) <= MAX_LIST_PARAM and all(_is_scalar_param(item) for item in value):
            return {name: value}
        return None
    if _depth >= MAX_DEPTH:
        return None
    items = _config_items(value)
    if items is None:
        return None
    flat: dict[str, Any] = {}
    for key, item in items:
        if key.startswith("_"):
            continue
        leaves = flatten_params(f"{name}.{key}", item, _depth=_depth + 1)
        if leaves:
            flat.update(leaves)
        if len(flat) > MAX_FLAT_ENTRIES:
            raise TooLarge(name)
    return flat


def flatten_metrics(name: str, value: Any, *, _depth: int = 0) -> dict[str, float] | None:
    """``{dotted key: float}`` for a number or a (nested) dict of numbers; None otherwise."""
    if _is_number(value):
        return {name: to_float(value)}
    if isinstance(value, Mapping) and value and _depth < MAX_DEPTH:
        flat: dict[str, float] = {}
        for key, item in value.items():
            leaves = flatten_metrics(f"{name}.{key}", item, _depth=_depth + 1)
            if leaves is None:
                return None
            flat.update(leaves)
        return flat
    return None


# An array bound by a cell is a metric history only when its name says so: `y_pred = model.predict(X)` is
# data, `val_losses = np.array(...)` is a curve. Lists and tuples (usually appended to per epoch) always are.
_HISTORY_NAME = re.compile(
    r"(loss|acc|err|score|metric|f1|auc|precision|recall|mse|mae|rmse|r2|iou|dice|bleu|rouge|perplexity|ppl|"
    r"reward|return|lr|learning_rate|grad|norm|history|curve|hist)",
    re.IGNORECASE,
)


def looks_like_history(name: str) -> bool:
    return bool(_HISTORY_NAME.search(name.rsplit(".", 1)[-1]))


def as_series(value: Any, name: str | None = None) -> list[float] | None:
    """The values of a list/tuple/1-D array of >= 2 real numbers, else None.

    Arrays (numpy, tensors) qualify only when ``name`` looks like a metric history (or no name is given).
    """
    if isinstance(value, (str, bytes, Mapping)) or hasattr(value, "_asdict"):
        return None
    shape = getattr(value, "shape", None)
    if shape is not None:
        if len(shape) != 1 or shape[0] < 2:
            return None
        dtype_kind = getattr(getattr(value, "dtype", None), "kind", "")
        if dtype_kind not in ("i", "u", "f"):
            return None
        if name is not None and not looks_like_history(name):
            return None
        try:
            return [float(item) for item in value.tolist()]
        except (TypeError, ValueError, AttributeError):
            return None
    if isinstance(value, (list, tuple)) and len(value) >= 2 and all(_is_number(item) for item in value):
        return [to_float(item) for item in value]
    return None


def flatten_series(name: str, value: Any, *, forced: bool = False) -> dict[str, list[float]] | None:
    """Step series in ``value``: a list of numbers, a dict of such lists, or an object with a ``.history`` dict.

    ``forced`` (``--metrics NAME``) accepts any 1-D array whatever its name.
    """
    series = as_series(value, None if forced else name)
    if series is not None:
        return {name: series}
    history = getattr(value, "history", None)
    if isinstance(history, Mapping) and not isinstance(value, Mapping):
        value = history
    if isinstance(value, Mapping) and value:
        flat: dict[str, list[float]] = {}
        for key, item in value.items():
            series = as_series(item)  # inside a dict of histories (Keras' History.history) any array counts
            if series is None:
                return None
            flat[f"{name}.{key}"] = series
        return flat
    return None


def is_dataframe(value: Any) -> bool:
    module = type(value).__module__ or ""
    return type(value).__name__ == "DataFrame" and module.startswith("pandas")


# --------------------------------------------------------------------------------------------- capture
@dataclass
class Captured:
    """What one cell produced, ready for the recorder."""

    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)
    datasets: dict[str, Any] = field(default_factory=dict)  # name -> DataFrame
    withheld: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


@dataclass
class CaptureRules:
    """User overrides from ``--params/--metrics/--exclude``."""

    force_params: set[str] = field(default_factory=set)
    force_metrics: set[str] = field(default_factory=set)
    exclude: set[str] = field(default_factory=set)


class Capture:
    """Classifies a cell's variables: ``before(namespace)`` ahead of the run, ``after(namespace, last)`` once done."""

    def __init__(self, analysis: CellAnalysis, rules: CaptureRules | None = None) -> None:
        self.analysis = analysis
        self.rules = rules or CaptureRules()
        self.result = Captured()
        self._claimed: set[str] = set()  # variable names already classified

    # -- helpers
    def _allowed(self, name: str) -> bool:
        return name not in self.rules.exclude and not name.startswith("_")

    def _withhold(self, name: str, value: Any = None) -> None:
        self.result.withheld.add(name)
        _remember_leaves(value)

    def _add_params(self, name: str, value: Any, *, forced: bool = False) -> bool:
        if is_secret_name(name):
            self._withhold(name, value)
            return True
        try:
            flat = flatten_params(name, value)
        except TooLarge:
            self.result.notes.append(f"`{name}` has more than {MAX_FLAT_ENTRIES} entries: not logged as params")
            return True
        except Exception as error:  # noqa: BLE001 - odd objects (repr/attributes raising) are skipped
            self.result.notes.append(f"`{name}` could not be read ({type(error).__name__}): skipped")
            return True
        if flat is None:
            if forced:
                try:
                    flat = {name: repr(value)}
                except Exception as error:  # noqa: BLE001
                    self.result.notes.append(f"`{name}` could not be shown ({type(error).__name__}): skipped")
                    return True
            else:
                return False
        for key, leaf in flat.items():
            if isinstance(leaf, str) and len(leaf) > MAX_PARAM_SCAN:
                if is_secret_name(key):
                    self._withhold(key)
                else:
                    self.result.params[key] = long_value(leaf)  # too long to be a param: only its head
                continue
            if is_secret_param(key, leaf):
                self._withhold(key, leaf)
                continue
            try:
                text = param_text(leaf)
            except Exception as error:  # noqa: BLE001
                self.result.notes.append(f"`{key}` could not be shown ({type(error).__name__}): skipped")
                continue
            if len(text) > MAX_PARAM_SCAN:
                self.result.params[key] = long_value(text)
            elif is_secret_param(key, text):
                self._withhold(key, text)
            else:
                self.result.params[key] = text
        return True

    def _add_metrics(self, name: str, value: Any, *, name_checked: bool = False) -> bool:
        """``name_checked``: the caller has made sure ``name`` is no credential name."""
        try:
            flat = flatten_metrics(name, value)
        except Exception:  # noqa: BLE001
            return False
        if not flat:
            return False
        for key, number in flat.items():
            if not (name_checked and key == name) and is_secret_name(key):
                self._withhold(key)
            else:
                self.result.metrics[key] = number
        return True

    def _add_series(self, name: str, value: Any, *, forced: bool = False, arrays: bool = True) -> bool:
        if not arrays and not forced and getattr(value, "shape", None) is not None:
            return False
        try:
            flat = flatten_series(name, value, forced=forced)
        except Exception:  # noqa: BLE001
            return False
        if not flat:
            return False
        self.result.series.update(flat)
        return True

    def _grown_into_series(self, name: str, value: Any) -> bool:
        """A container bound from a literal that the cell grew into a step series or a dict of them
        (``history = {"loss": []}`` then appended per epoch): logged as series, not as a param."""
        if name not in self.analysis.literal_values:
            return False
        try:
            flat = flatten_series(name, value, forced=True)
            if not flat or value == self.analysis.literal_values[name]:
                return False
        except Exception:  # noqa: BLE001 - odd comparisons: left to the param rule
            return False
        self.result.series.update(flat)
        self._claimed.add(name)
        return True

    def _is_loop_temporary(self, name: str, logged_keys: set[str]) -> bool:
        """A name bound in a loop whose values went to a step series there (``jt.log``, an MLflow call, a list
        recorded as a series): its last value is not logged again as a metric."""
        if "log" in self.analysis.loop_logged[name] and logged_keys:
            return True
        series_roots = {key.split(".", 1)[0] for key in [*self.result.series, *logged_keys]}
        return bool(self.analysis.loop_logged[name] & series_roots)

    def add_explicit_param(self, name: str, value: Any) -> None:
        """A param given by value (``jt.track(params={"lr": 0.1})``)."""
        self._add_params(name, value, forced=True)
        self._claimed.add(name)

    # -- phases
    def before(self, namespace: Mapping[str, Any]) -> None:
        """Params from names the cell reads that exist already; DataFrames it reads become datasets."""
        names = self.analysis.read_first | self.rules.force_params
        for name in sorted(names):
            if name not in namespace or not self._allowed(name) or name in self.rules.force_metrics:
                continue
            value = namespace[name]
            if name not in self.rules.force_params and name in self.analysis.literal_bound:
                continue  # the cell sets it itself: taken after the run
            if is_dataframe(value) and name not in self.rules.force_params:
                self.result.datasets[name] = value
                self._claimed.add(name)
                continue
            if self._add_params(name, value, forced=name in self.rules.force_params):
                self._claimed.add(name)

    def remember_bound_values(self, namespace: Mapping[str, Any]) -> None:
        """Note which object each name the cell binds holds before it runs (see ``stale_names``)."""
        self._bound_before = {name: id(namespace[name]) for name in self.analysis.bound if name in namespace}

    def stale_names(self, namespace: Mapping[str, Any]) -> set[str]:
        """Names the cell binds that still hold the object they held before it ran (a failed cell never got
        to rebind them: their values belong to an earlier execution)."""
        before = getattr(self, "_bound_before", {})
        return {name for name, ident in before.items() if name in namespace and id(namespace[name]) == ident}

    def after(
        self, namespace: Mapping[str, Any], last_value: Any = None, logged_keys: set[str] = frozenset(),
        skip: set[str] = frozenset(),
    ) -> None:
        """Params bound from literals, metrics and step series bound by the cell, the last expression.

        ``skip``: names not to record (values left from an earlier execution of a failed cell).
        """
        self._claimed |= set(skip)
        analysis = self.analysis
        for name in sorted(self.rules.force_params - self._claimed):
            if name in namespace and name not in self.rules.exclude:
                self._add_params(name, namespace[name], forced=True)
                self._claimed.add(name)
        for name in sorted(analysis.literal_bound - self._claimed):
            if name in namespace and self._allowed(name) and name not in self.rules.force_metrics:
                if name in analysis.literal_calls and _is_number(namespace[name]):
                    continue  # `loss = compute(reduction="mean")` computed a number: a metric
                if self._grown_into_series(name, namespace[name]):
                    continue
                if self._add_params(name, namespace[name]):
                    self._claimed.add(name)
        for name in sorted(self.rules.force_metrics):
            if name in namespace and name not in self.rules.exclude and name not in logged_keys:
                value = namespace[name]
                if self._add_metrics(name, value) or self._add_series(name, value, forced=True):
                    self._claimed.add(name)
                else:
                    self.result.notes.append(f"`{name}` is not a number, a dict of numbers or a list of numbers")
        candidates = analysis.bound - analysis.not_metrics - analysis.deleted - self._claimed
        temporaries = []
        for name in sorted(candidates):
            if name not in namespace or not self._allowed(name) or name in logged_keys:
                continue
            value = namespace[name]
            if is_secret_name(name):
                self._withhold(name, value)
                continue
            if name in analysis.loop_logged and name not in self.rules.force_metrics:
                temporaries.append(name)  # decided once every series of the cell is known
                continue
            if (self._add_metrics(name, value, name_checked=True)
                    or self._add_series(name, value, arrays=name not in analysis.loop_rebound)):
                self._claimed.add(name)
        for name in temporaries:
            if self._is_loop_temporary(name, logged_keys):
                self._claimed.add(name)
            elif self._add_metrics(name, namespace[name]) or self._add_series(name, namespace[name]):
                self._claimed.add(name)
        key = analysis.last_expr_key
        if analysis.has_last_expr and last_value is not None and key and key not in self._claimed:
            flat = flatten_metrics(key, last_value) if self._allowed(key) else None
            if flat and isinstance(last_value, Mapping) and not analysis.last_expr_is_name:
                flat = {dotted.split(".", 1)[1]: number for dotted, number in flat.items()}
            for metric_key, number in (flat or {}).items():
                if metric_key not in logged_keys and metric_key not in self.result.metrics:
                    self.result.metrics[metric_key] = number
        for key in list(self.result.metrics):
            if key in logged_keys or key in self.result.params:
                del self.result.metrics[key]
        for key in list(self.result.series):
            if key in logged_keys:
                del self.result.series[key]


def dataframe_digest(frame: Any) -> str:
    """A digest over every row and column of a DataFrame (MLflow's own covers the first 10,000 rows)."""
    import hashlib

    import pandas as pd

    digest = hashlib.sha256()
    digest.update(repr(list(map(str, frame.columns))).encode())
    digest.update(repr(list(map(str, frame.dtypes))).encode())
    try:
        hashes = pd.util.hash_pandas_object(frame, index=True)
        digest.update(hashes.to_numpy().tobytes())
    except TypeError:  # unhashable cells (lists, dicts): fall back to their text
        digest.update(frame.to_csv().encode())
    return digest.hexdigest()[:16]

