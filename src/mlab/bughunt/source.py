"""Locate places in a Python file with :mod:`ast` and change exactly their text.

A bug is planted by replacing the source text of a few AST nodes (a call, an argument, an
operator, a whole line), never by unparsing the tree: every other character of the file, its
comments and layout included, stays as the author wrote it, so ``diff`` shows one or two lines.
The course's mutation engine (``mlab.course.engine.mutate``) finds nodes the same way but
unparses whole functions, which is right for running mutants and wrong for a file a learner
reads.

``ast`` positions are (line, UTF-8 byte column); :class:`Source` turns them into offsets in the
text, so a line with non-ASCII characters is cut at the right place.
"""

from __future__ import annotations

import ast
import difflib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

__all__ = ["Edit", "Source", "apply_edits", "call_name", "changed_lines", "keyword"]


@dataclass(frozen=True)
class Edit:
    """Replace ``text[start:end]`` by ``new`` (``start == end`` inserts)."""

    start: int
    end: int
    new: str


@dataclass(frozen=True)
class _Scope:
    cls: str | None  # the innermost enclosing class
    function: str | None  # the innermost enclosing function or method


class Source:
    """A parsed Python file: its text, its tree, and where each node sits in the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tree = ast.parse(text)
        self.lines = text.splitlines(keepends=True)
        starts = [0]
        for line in self.lines:
            starts.append(starts[-1] + len(line))
        self._line_starts = starts

    def offset(self, lineno: int, col_offset: int) -> int:
        """The text offset of an ``ast`` position (1-based line, UTF-8 byte column)."""
        line = self.lines[lineno - 1]
        column = len(line.encode("utf-8")[:col_offset].decode("utf-8"))
        return self._line_starts[lineno - 1] + column

    def span(self, node: ast.AST) -> tuple[int, int]:
        """``(start, end)`` text offsets of ``node``."""
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def segment(self, node: ast.AST) -> str:
        """The exact source text of ``node``."""
        start, end = self.span(node)
        return self.text[start:end]

    def replace(self, node: ast.AST, new: str) -> Edit:
        """An edit that puts ``new`` where ``node``'s text is."""
        return Edit(*self.span(node), new)

    def line_span(self, node: ast.AST) -> tuple[int, int]:
        """``(start, end)`` offsets of the whole lines ``node`` is on, newline included."""
        first, last = node.lineno, node.end_lineno  # type: ignore[attr-defined]
        return self._line_starts[first - 1], self._line_starts[last]

    def delete_lines(self, node: ast.AST) -> Edit:
        """An edit that removes the lines of the statement ``node``."""
        return Edit(*self.line_span(node), "")

    @cached_property
    def _scopes(self) -> dict[int, _Scope]:
        scopes: dict[int, _Scope] = {}

        def visit(node: ast.AST, scope: _Scope) -> None:
            scopes[id(node)] = scope
            if isinstance(node, ast.ClassDef):
                scope = _Scope(node.name, None)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                scope = _Scope(scope.cls, node.name)
            for child in ast.iter_child_nodes(node):
                visit(child, scope)

        visit(self.tree, _Scope(None, None))
        return scopes

    @cached_property
    def parents(self) -> dict[int, ast.AST]:
        """``id(node) -> parent`` for every node but the module."""
        found: dict[int, ast.AST] = {}
        for parent in ast.walk(self.tree):
            for child in ast.iter_child_nodes(parent):
                found[id(child)] = parent
        return found

    def enclosing_class(self, node: ast.AST) -> str | None:
        """The name of the innermost class whose body holds ``node``."""
        return self._scopes[id(node)].cls

    def enclosing_function(self, node: ast.AST) -> str | None:
        """The name of the innermost function or method whose body holds ``node``."""
        return self._scopes[id(node)].function

    def nodes(self) -> Iterator[ast.AST]:
        """Every node with a position, in source order."""
        located = [n for n in ast.walk(self.tree) if hasattr(n, "lineno")]
        yield from sorted(located, key=lambda n: (n.lineno, n.col_offset))  # type: ignore[attr-defined]

    def calls(self, name: str) -> Iterator[ast.Call]:
        """The calls of ``name`` (``x.name(...)``, ``mod.name(...)`` or ``name(...)``)."""
        for node in self.nodes():
            if isinstance(node, ast.Call) and call_name(node) == name:
                yield node


def call_name(call: ast.Call) -> str:
    """``"sum"`` for ``x.sum(...)``, ``torch.sum(...)`` and ``sum(...)``."""
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    """The value of keyword argument ``name`` of ``call``, if given."""
    return next((k.value for k in call.keywords if k.arg == name), None)


def apply_edits(text: str, edits: Sequence[Edit]) -> str:
    """``text`` with every edit made; edits must not overlap."""
    ordered = sorted(edits, key=lambda e: (e.start, e.end))
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end:
            raise ValueError(f"edits overlap: {before} and {after}")
    for edit in reversed(ordered):
        text = text[: edit.start] + edit.new + text[edit.end :]
    return text


def changed_lines(original: str, changed: str) -> tuple[int, ...]:
    """The 1-based lines of ``changed`` that differ from ``original``: replaced and inserted
    lines; when lines were only deleted, the lines on both sides of each gap."""
    a, b = original.splitlines(), changed.splitlines()
    opcodes = difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    lines = {
        j + 1
        for tag, _, _, j1, j2 in opcodes
        if tag in ("replace", "insert")
        for j in range(j1, j2)
    }
    if not lines:
        gaps = [j1 for tag, _, _, j1, _ in opcodes if tag == "delete"]
        lines = {n for j1 in gaps for n in (j1, j1 + 1) if 1 <= n <= len(b)}
    return tuple(sorted(lines))
