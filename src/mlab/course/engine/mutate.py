"""Mutation testing of a day's checks: small wrong versions of the reference, to be rejected.

A check that passes on the reference and fails on the stub can still be weak: it may never look
at the values, or only at one easy input. Mutation testing (DeMillo, Lipton & Sayward, "Hints on
test data selection", 1978; the tools mutmut and cosmic-ray) measures that: make one small change
to the reference (a mutant) and see whether some check fails on it (the mutant is *killed*). The
score is the share of mutants killed.

Mutants come from the exercise's reference source (:func:`stubgen.exercise_source`), parsed with
:mod:`ast`, one single change each:

=========== ===================================================================================
operator    change
=========== ===================================================================================
arith       ``+ ↔ -``, ``* → /``, ``/ → * //``, ``// → / *``, ``% → //``, ``** → *``,
            ``@ → *``, ``& ↔ |``, ``<< ↔ >>``
augassign   the same swaps in ``x += ...`` and friends
unary       unary minus (or ``~``) dropped; ``not`` dropped
compare     ``< → <= >``, ``<= → < >=``, ``== ↔ !=``, ``is ↔ is not``, ``in ↔ not in``, ...
boolop      ``and ↔ or``
negate      the condition of ``if``, ``while``, ``x if c else y`` and comprehension filters negated
const       integer literals nudged by ±1
dim         dim/axis arguments nudged by ±1 (``dim=``, ``axis=``, and positional dims of
            ``sum``, ``softmax``, ``cat``, ``transpose``, ... see :data:`DIM_POSITIONS`)
slice       slice bounds ±1 or dropped, and one-sided slices mirrored (``x[1:] → x[:-1]``)
args        two adjacent positional arguments of a call swapped
bool        ``True ↔ False``
stmt        one statement deleted (``pass`` where a block would be empty)
=========== ===================================================================================

Decorators, signatures (annotations, defaults), docstrings and f-strings (message text) are
never mutated. A class exercise yields the mutants of each of its methods.

A mutant's id, ``exercise[.method]:operator:L<line>:C<col>:<n>``, counts lines from the first
statement after the docstring, so it survives edits elsewhere in the module and in the docstring.
:mod:`mlab.course.engine.mutation_report` runs the checks on the mutants. A mutant that is truly
equivalent to the reference (no input tells them apart) goes in the day's
``equivalent_mutants.toml`` with a reason::

    [[equivalent]]
    id = "element_offset:args:L6:C42:0"
    reason = "zip(stride, index) pairs the same numbers as zip(index, stride); i * s == s * i"
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mlab.course.engine.manifest import Exercise
from mlab.course.engine.stubgen import ExerciseSource, exercise_source

__all__ = ["DIM_POSITIONS", "Mutant", "control_source", "mutants_of", "mutants_of_source"]


_BINOPS: dict[type[ast.operator], tuple[type[ast.operator], ...]] = {
    ast.Add: (ast.Sub,),
    ast.Sub: (ast.Add,),
    ast.Mult: (ast.Div,),
    ast.Div: (ast.Mult, ast.FloorDiv),
    ast.FloorDiv: (ast.Div, ast.Mult),
    ast.Mod: (ast.FloorDiv,),
    ast.Pow: (ast.Mult,),
    ast.MatMult: (ast.Mult,),
    ast.BitAnd: (ast.BitOr,),
    ast.BitOr: (ast.BitAnd,),
    ast.BitXor: (ast.BitOr,),
    ast.LShift: (ast.RShift,),
    ast.RShift: (ast.LShift,),
}
_COMPARES: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt, ast.GtE),
    ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
}
DIM_KEYWORDS = frozenset({"dim", "axis", "dims", "axes", "dim0", "dim1", "start_dim", "end_dim"})
# Positional dim arguments of methods, ``x.name(...)``; the function form ``torch.name(x, ...)``
# has them one later. cat and friends exist only as functions: there the position is as given.
_REDUCTIONS = """sum mean prod nansum max min amax amin argmax argmin softmax log_softmax cumsum
cumprod logsumexp std var all any median count_nonzero unsqueeze squeeze gather index_select
narrow select unbind sort argsort size stride unflatten scatter scatter_add scatter_reduce
index_add index_copy index_fill"""
DIM_POSITIONS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(_REDUCTIONS.split(), (0,)),
    **dict.fromkeys(
        ["transpose", "swapaxes", "swapdims", "movedim", "moveaxis", "flatten"], (0, 1)
    ),
    **dict.fromkeys(["chunk", "split", "tensor_split", "topk", "kthvalue", "roll"], (1,)),
    "diagonal": (1, 2),
    "flip": (0, 1, 2),
}
_FUNCTION_ONLY = frozenset({"cat", "concat", "concatenate", "stack"})
_MODULE_ROOTS = frozenset({"torch", "F", "np", "numpy"})
# Swapping the arguments of these changes nothing.
_SYMMETRIC = {"max", "min", "maximum", "minimum", "add", "mul", "multiply", "hypot", "equal"}
_SYMMETRIC |= {"eq", "ne", "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or"}

Def = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class Mutant:
    """One single-change variant of an exercise's reference."""

    id: str
    exercise: str
    operator: str
    line: int  # line in the exercise's source (1 = its first line, decorators included)
    module_line: int  # line in the reference module's file
    change: str  # "`a + b` → `a - b`"
    source: str  # the mutated definition, to exec in the reference module's namespace

    @property
    def description(self) -> str:
        return f"line {self.module_line}: {self.change}"


@dataclass(frozen=True)
class _Change:
    operator: str
    node: ast.AST  # the node replaced
    new: ast.AST | None  # its replacement; None deletes a statement
    shown: ast.AST  # what the description shows: the node, or an ancestor for context


def _snippet(node: ast.AST | None, limit: int = 70) -> str:
    if node is None:
        return "(deleted)"
    text = ast.unparse(node).splitlines()[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _docstring_free(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    is_doc = (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )
    return body[1:] if is_doc else body


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """The mutable nodes under ``node`` in source order: no annotations, signatures,
    decorators, docstrings, f-strings or nested classes."""
    skipped = (ast.JoinedStr, ast.ClassDef, ast.expr_context, ast.operator, ast.cmpop)
    if isinstance(node, (*skipped, ast.boolop, ast.unaryop)):
        return
    yield node
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for stmt in _docstring_free(node.body):
            yield from _walk(stmt)
        return
    if isinstance(node, ast.Lambda):
        yield from _walk(node.body)
        return
    for name, value in ast.iter_fields(node):
        if name in ("annotation", "returns", "type_comment"):
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, ast.AST):
                yield from _walk(item)


def _parents(tree: ast.AST) -> dict[int, tuple[ast.AST, str, int | None]]:
    """id(node) -> (parent, field, index in the field's list or None)."""
    found: dict[int, tuple[ast.AST, str, int | None]] = {}
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        found[id(item)] = (parent, name, i)
            elif isinstance(value, ast.AST):
                found[id(value)] = (parent, name, None)
    return found


@contextmanager
def _replaced(
    parents: dict[int, tuple[ast.AST, str, int | None]], node: ast.AST, new: ast.AST | None
) -> Iterator[None]:
    """Temporarily put ``new`` where ``node`` is (None: delete the statement)."""
    parent, name, index = parents[id(node)]
    if index is None:
        setattr(parent, name, new)
        try:
            yield
        finally:
            setattr(parent, name, node)
        return
    items: list[ast.AST] = getattr(parent, name)
    saved = list(items)
    if new is None:
        del items[index]
        if not items:
            items.append(ast.Pass())
    else:
        items[index] = new
    try:
        yield
    finally:
        items[:] = saved


def _int_value(node: ast.AST) -> int | None:
    """The value of an integer literal (``3`` or ``-3``; not a bool), else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int_value(node.operand)
        return None if inner is None or inner < 0 else -inner
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def _int_node(value: int) -> ast.expr:
    if value < 0:
        return ast.UnaryOp(op=ast.USub(), operand=ast.Constant(-value))
    return ast.Constant(value)


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _call_name(call: ast.Call) -> str:
    """``sum`` for ``x.sum(...)``, ``torch.sum(...)`` and ``sum(...)``."""
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _dim_call(
    node: ast.AST, parents: dict[int, tuple[ast.AST, str, int | None]]
) -> ast.Call | None:
    """The call of which ``node`` (an integer literal) is a dim argument, if it is one."""
    parent, name, index = parents.get(id(node), (None, "", None))
    if isinstance(parent, (ast.Tuple, ast.List)):  # dims=(0, 1)
        node = parent
        parent, name, index = parents.get(id(node), (None, "", None))
    if isinstance(parent, ast.keyword):
        call = parents[id(parent)][0]
        return call if parent.arg in DIM_KEYWORDS and isinstance(call, ast.Call) else None
    if not isinstance(parent, ast.Call) or name != "args" or index is None:
        return None
    func = parent.func
    method = _call_name(parent)
    if method in _FUNCTION_ONLY:
        return parent if index == 1 else None
    positions = DIM_POSITIONS.get(method, ())
    if isinstance(func, ast.Name) and hasattr(builtins, func.id):
        return None  # max(size, 1) is Python's max, not torch.max(x, dim)
    is_function = isinstance(func, ast.Name) or (
        isinstance(func, ast.Attribute) and _root_name(func.value) in _MODULE_ROOTS
    )
    return parent if index - is_function in positions else None


def _plus(bound: ast.expr, delta: int) -> ast.expr:
    value = _int_value(bound)
    if value is not None:
        return _int_node(value + delta)
    return ast.BinOp(left=bound, op=ast.Add() if delta > 0 else ast.Sub(), right=ast.Constant(1))


def _slice_changes(node: ast.Slice, shown: ast.AST) -> Iterator[_Change]:
    def with_(lower: ast.expr | None, upper: ast.expr | None) -> _Change:
        return _Change("slice", node, ast.Slice(lower=lower, upper=upper, step=node.step), shown)

    lower, upper = node.lower, node.upper
    if lower is not None:
        yield from (with_(_plus(lower, 1), upper), with_(_plus(lower, -1), upper))
        yield with_(None, upper)
    if upper is not None:
        yield from (with_(lower, _plus(upper, 1)), with_(lower, _plus(upper, -1)))
        yield with_(lower, None)
    # x[1:] <-> x[:-1], x[:2] <-> x[-2:]: the other end of the same length
    bound = lower if upper is None else upper if lower is None else None
    value = _int_value(bound) if bound is not None else None
    if value:
        mirrored = _int_node(-value)
        yield with_(mirrored, None) if lower is None else with_(None, mirrored)


def _changes(
    node: ast.AST, parents: dict[int, tuple[ast.AST, str, int | None]]
) -> Iterator[_Change]:
    """Every single-node change of ``node``."""
    parent, field_name, _ = parents.get(id(node), (None, "", None))
    in_block = field_name in ("body", "orelse", "finalbody")
    if isinstance(node, ast.stmt) and in_block and not isinstance(node, ast.Pass):
        yield _Change("stmt", node, None, node)
    if isinstance(node, ast.BinOp):
        for op in _BINOPS.get(type(node.op), ()):
            yield _Change("arith", node, ast.BinOp(node.left, op(), node.right), node)
    elif isinstance(node, ast.AugAssign):
        for op in _BINOPS.get(type(node.op), ()):
            yield _Change("augassign", node, ast.AugAssign(node.target, op(), node.value), node)
    elif isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.UAdd):
        if _int_value(node) is None or _dim_call(node, parents) is None:  # dims keep their sign
            yield _Change("unary", node, node.operand, node)
    elif isinstance(node, ast.Compare):
        for i, cmp in enumerate(node.ops):
            for cmp_op in _COMPARES[type(cmp)]:
                ops = [*node.ops[:i], cmp_op(), *node.ops[i + 1 :]]
                yield _Change("compare", node, ast.Compare(node.left, ops, node.comparators), node)
    elif isinstance(node, ast.BoolOp):
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield _Change("boolop", node, ast.BoolOp(other, node.values), node)
    elif isinstance(node, ast.Slice):
        shown = parent
        while shown is not None and not isinstance(shown, ast.Subscript):
            shown = parents.get(id(shown), (None, "", None))[0]
        yield from _slice_changes(node, shown or node)
    elif isinstance(node, ast.Call) and _call_name(node) not in _SYMMETRIC:
        args = node.args
        for i in range(len(args) - 1):
            a, b = args[i], args[i + 1]
            starred = isinstance(a, ast.Starred) or isinstance(b, ast.Starred)
            if not starred and ast.unparse(a) != ast.unparse(b):
                swapped = [*args[:i], b, a, *args[i + 2 :]]
                yield _Change("args", node, ast.Call(node.func, swapped, node.keywords), node)
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield _Change("bool", node, ast.Constant(not node.value), parent or node)

    # Conditions: negate (a `not x` condition already loses its `not` as a "unary" mutant).
    is_test = (field_name == "test" and isinstance(parent, (ast.If, ast.While, ast.IfExp))) or (
        field_name == "ifs" and isinstance(parent, ast.comprehension)
    )
    if is_test and not (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
        assert isinstance(node, ast.expr)
        yield _Change("negate", node, ast.UnaryOp(ast.Not(), node), node)

    value = _int_value(node)
    inside_negative = isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub)
    if value is not None and not inside_negative:
        if isinstance(parent, ast.Slice) and field_name in ("lower", "upper"):
            return  # the "slice" operator changes bounds
        call = _dim_call(node, parents)
        if call is None:
            for new in (value + 1, value - 1):
                yield _Change("const", node, _int_node(new), parent or node)
            return
        # A dim keeps its sign: on a 1-d input dim=-1 *is* dim=0, an equivalent mutant.
        for new in (value + 1, value - 1):
            if (new < 0) == (value < 0):
                yield _Change("dim", node, _int_node(new), call)


def _scopes(top: ast.stmt, name: str) -> list[tuple[str, Def]]:
    """(id prefix, function) pairs to mutate: the function, or each method of a class."""
    if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [(name, top)]
    assert isinstance(top, ast.ClassDef)
    return [
        (f"{name}.{item.name}", item)
        for item in top.body
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


def mutants_of_source(
    source: str, name: str, *, first_line: int = 1, header: str = ""
) -> list[Mutant]:
    """The mutants of the function or class defined by ``source`` (dedented), for exercise
    ``name``. ``first_line`` is the source's first line in its module; ``header`` is put before
    each mutant's source (a ``from __future__`` import)."""
    tree = ast.parse(source)
    top = tree.body[0]
    parents = _parents(tree)
    original = ast.unparse(tree)
    seen = {original}
    found: list[Mutant] = []
    for prefix, fn in _scopes(top, name):
        code = _docstring_free(fn.body)
        base = code[0].lineno if code else fn.lineno
        counts: dict[tuple[str, int, int], int] = {}
        for node in (n for stmt in code for n in _walk(stmt)):
            for change in _changes(node, parents):
                line = getattr(change.node, "lineno", getattr(change.shown, "lineno", base))
                col = getattr(change.node, "col_offset", getattr(change.shown, "col_offset", 0))
                key = (change.operator, line - base + 1, col)
                n = counts[key] = counts.get(key, -1) + 1
                before = _snippet(change.shown)
                with _replaced(parents, change.node, change.new):
                    mutated = ast.unparse(tree)
                    after = _snippet(change.new if change.shown is change.node else change.shown)
                if mutated in seen:
                    continue
                seen.add(mutated)
                try:
                    compile(mutated, "<mutant>", "exec")
                except SyntaxError:
                    continue  # not expected: a mutant that cannot load would be a false kill
                where = f"{fn.name}, " if prefix != name else ""
                change_text = (
                    f"deleted `{before}`" if change.new is None else f"`{before}` → `{after}`"
                )
                found.append(
                    Mutant(
                        id=f"{prefix}:{change.operator}:L{key[1]}:C{col}:{n}",
                        exercise=name,
                        operator=change.operator,
                        line=line,
                        module_line=first_line + line - 1,
                        change=where + change_text,
                        source=header + mutated + "\n",
                    )
                )
    return found


def _header(src: ExerciseSource) -> str:
    """What a mutant's source starts with: the module's ``from __future__`` import, so that
    its annotations are not evaluated when the runner executes it."""
    future = "from __future__ import annotations" in src.module_source
    return "from __future__ import annotations\n" if future else ""


def control_source(src: ExerciseSource) -> str:
    """The unchanged reference, as a mutant's source: it must pass every check."""
    return _header(src) + src.source


def mutants_of(exercise: Exercise | ExerciseSource) -> list[Mutant]:
    """The mutants of one exercise's reference."""
    src = exercise if isinstance(exercise, ExerciseSource) else exercise_source(exercise)
    return mutants_of_source(
        src.source, src.exercise.name, first_line=src.first_line, header=_header(src)
    )
