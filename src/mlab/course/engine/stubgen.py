"""Stub generation: the learner's exercise file, written from the reference library's source.

The single-source rule: the reference implementation is the only copy of a solution. For each
exercise the generator reads the reference source with :mod:`ast`, keeps the signature (with its
type hints and decorators, formatted as written) and the docstring, and replaces the body with
``raise NotImplementedError``. For a class, every method is stubbed that way and class-level
statements (attributes, annotations) are kept.

The workspace file is percent-format Python (``# %%`` cells), so VS Code and Jupyter open it as
a notebook. Its first cell imports what the exercises need: the reference modules' own imports,
and any helper the exercises use from the library that is not itself an exercise.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import inspect
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mlab.course.engine.manifest import Day, Exercise
from mlab.errors import ConfigError

__all__ = ["ExerciseSource", "exercise_source", "stub_for", "workspace_source"]

NOT_STARTED = "not started: replace this line with your code"


@dataclass(frozen=True)
class ExerciseSource:
    """The reference source of one exercise and where it came from."""

    exercise: Exercise
    source: str  # dedented source of the def/class, decorators included
    module_source: str
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    first_line: int  # line of the source's first line in its module (1-based)
    filename: str


@cache
def _module_text(module_name: str) -> tuple[str, str]:
    # Read the file without importing the module: `mlab solution` and `mlab list` stay fast
    # (importing a reference module imports torch).
    spec = importlib.util.find_spec(module_name)
    if spec is not None and spec.origin and spec.origin.endswith(".py"):
        return Path(spec.origin).read_text(encoding="utf-8"), spec.origin
    module = importlib.import_module(module_name)
    return inspect.getsource(module), inspect.getsourcefile(module) or module_name


def _find_node(
    tree: ast.Module, qualname: str
) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef:
    body: list[ast.stmt] = tree.body
    node: ast.stmt | None = None
    for part in qualname.split("."):
        node = next(
            (
                n
                for n in body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and n.name == part
            ),
            None,
        )
        if node is None:
            raise LookupError(f"{qualname}: no definition of {part!r} found in the module source")
        body = node.body
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    return node


def exercise_source(exercise: Exercise) -> ExerciseSource:
    """Find the reference definition of ``exercise`` in its module's source."""
    text, filename = _module_text(exercise.ref_module)
    tree = ast.parse(text)
    node = _find_node(tree, exercise.ref_qualname)
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    assert node.end_lineno is not None
    lines = text.splitlines()[start - 1 : node.end_lineno]
    source = textwrap.dedent("\n".join(lines)) + "\n"
    return ExerciseSource(
        exercise=exercise,
        source=source,
        module_source=text,
        node=_find_node(ast.parse(source), exercise.ref_qualname.rsplit(".", 1)[-1]),
        first_line=start,
        filename=filename,
    )


def _docstring_node(body: list[ast.stmt]) -> ast.Expr | None:
    first = body[0] if body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first
    return None


def _stub_function(
    lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef, name: str
) -> list[str]:
    """Signature and docstring lines of ``node`` followed by a ``raise NotImplementedError``."""
    doc = _docstring_node(node.body)
    body_start = node.body[0].lineno  # first statement (the docstring, if any)
    # header: from the first decorator to the line before the body starts; a one-line
    # ``def f(): return x`` has its body on the def line, so cut at the colon.
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    if body_start == node.lineno:
        raise ValueError(f"{name}: put the body of a reference exercise on its own lines")
    header = lines[first - 1 : body_start - 1]
    indent = " " * node.body[0].col_offset
    out = list(header)
    if doc is not None:
        assert doc.end_lineno is not None
        out += lines[doc.lineno - 1 : doc.end_lineno]
    out.append(f'{indent}raise NotImplementedError("{name}: {NOT_STARTED}")')
    return out


def stub_for(src: ExerciseSource) -> str:
    """The stub of one exercise: its signature and docstring, with a body that raises."""
    lines = src.source.splitlines()
    node = src.node
    name = src.exercise.name
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return "\n".join(_stub_function(lines, node, name)) + "\n"
    # A class: keep the header and class-level statements, stub each method in place.
    out: list[str] = []
    cursor = 1  # next source line (1-based) not yet copied
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([item.lineno, *(d.lineno for d in item.decorator_list)])
            out += lines[cursor - 1 : first - 1]
            out += _stub_function(lines, item, f"{name}.{item.name}")
            assert item.end_lineno is not None
            cursor = item.end_lineno + 1
    out += lines[cursor - 1 :]
    return "\n".join(out).rstrip() + "\n"


def _imports_of(module_name: str) -> list[ast.Import | ast.ImportFrom]:
    """Top-level imports of a module, relative ones made absolute (``__future__`` dropped)."""
    text, _ = _module_text(module_name)
    # the package relative imports start from: the module's own name when it is a package
    package = importlib.import_module(module_name).__package__ or ""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.ImportFrom):
            if node.module == "__future__":
                continue
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                node = ast.ImportFrom(
                    module=".".join([*base, *([node.module] if node.module else [])]),
                    names=node.names,
                    level=0,
                )
            found.append(node)
        elif isinstance(node, ast.Import):
            found.append(node)
    return found


def _helpers_used(src: ExerciseSource, exercise_names: set[str]) -> list[tuple[str, str]]:
    """(module, name) of top-level names of the reference module that the exercise uses and
    that the workspace would otherwise lack (helpers, constants): they are imported so the
    learner can call them too."""
    module_tree = ast.parse(src.module_source)
    defined: set[str] = set()
    for node in module_tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {t.id for t in targets if isinstance(t, ast.Name)}
    used = {n.id for n in ast.walk(src.node) if isinstance(n, ast.Name)}
    wanted = (used & defined) - exercise_names - set(dir(builtins)) - {src.node.name}
    return [(src.exercise.ref_module, name) for name in sorted(wanted) if not name.startswith("__")]


def _check_one_meaning_per_name(
    day: Day, plain: dict[str, None], from_names: dict[str, dict[str, None]]
) -> None:
    """The workspace is one namespace: two reference modules must not import different objects
    under the same name (``Tensor`` from torch and from mlab.autograd), or one import would
    silently replace the other in the learner's file."""
    bound: dict[str, tuple[object, str]] = {}

    def bind(local: str, obj: object, origin: str) -> None:
        if local in bound and bound[local][0] is not obj:
            raise ConfigError(
                f"{day.id}: the workspace would import {local!r} from both "
                f"{bound[local][1]} and {origin}. Give one of them another name in the "
                "reference code (e.g. `import torch` and write `torch.Tensor`)."
            )
        bound.setdefault(local, (obj, origin))

    for line in plain:
        alias = ast.parse(line).body[0].names[0]  # type: ignore[attr-defined]
        local = alias.asname or alias.name.split(".")[0]
        target = alias.name if alias.asname else alias.name.split(".")[0]
        bind(local, importlib.import_module(target), f"`{line}`")
    for module, entries in from_names.items():
        for entry in entries:
            name, _, asname = entry.partition(" as ")
            obj = getattr(importlib.import_module(module), name)
            bind(asname or name, obj, f"`from {module} import {entry}`")


def _comment_block(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.strip().splitlines()]


def _stars(n: int) -> str:
    return "*" * n + "." * (3 - n)


def workspace_source(day: Day) -> str:
    """The learner's exercise file for ``day``: percent-format cells, imports first, then one
    cell per exercise in course order, grouped by part."""
    # Exercises whose optional packages are missing are left out (their reference module
    # would not even import); the part says how to get them.
    available = [ex for ex in day.exercises if not ex.missing_requirements()]
    sources = {ex.name: exercise_source(ex) for ex in available}
    names = {ex.name for ex in day.exercises}

    plain: dict[str, None] = {}  # "import x as y" lines, ordered, deduplicated
    from_names: dict[str, dict[str, None]] = {}  # module -> "name" / "name as alias"
    for module in dict.fromkeys(ex.ref_module for ex in available):
        for node in _imports_of(module):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    plain[ast.unparse(ast.Import(names=[alias]))] = None
                continue
            assert node.module is not None
            for alias in node.names:
                # An exercise of this day is the learner's to write: never import it.
                if (alias.asname or alias.name) not in names:
                    from_names.setdefault(node.module, {})[ast.unparse(alias)] = None
    for src in sources.values():
        for module, name in _helpers_used(src, names):
            from_names.setdefault(module, {})[name] = None
    _check_one_meaning_per_name(day, plain, from_names)
    imports = sorted(plain)
    for module in sorted(from_names, key=lambda m: (m.startswith("mlab"), m)):
        if from_names[module]:
            imports.append(f"from {module} import {', '.join(from_names[module])}")

    out = [
        "# %% [markdown]",
        f"# # {day.id}: {day.title}",
        "#",
        *_comment_block(day.summary),
        "#",
        f"# Read the instructions with `mlab read {day.id}`. Replace each",
        "# `raise NotImplementedError(...)` with your code, then run",
        f"# `mlab check {day.id}` (or the last cell) to see what passes.",
        f"# Stuck? `mlab hint {day.id} EXERCISE` reveals hints one at a time.",
        "",
        "# %%",
        "from __future__ import annotations",
        "",
        *imports,
        "",
    ]
    number = 0
    for part_index, part in enumerate(day.parts, start=1):
        out += ["", "# %% [markdown]", f"# ## Part {part_index}: {part.title}"]
        if part.intro:
            out += ["#", *_comment_block(part.intro)]
        out.append("")
        for ex in part.exercises:
            number += 1
            if ex.name not in sources:
                out += [
                    "",
                    "# %% [markdown]",
                    f"# ### {number}. `{ex.name}`: needs {', '.join(ex.missing_requirements())}",
                    "# Not installed: `make setup EXTRAS=dev,nlp,notebook,docs,train,gpu`, then",
                    f"# `mlab start {day.id} --new` writes this exercise's stub beside your file.",
                ]
                continue
            src = sources[ex.name]
            out += [
                "",
                "# %% [markdown]",
                f"# ### {number}. `{ex.name}`",
                f"# difficulty {_stars(ex.difficulty)}  importance {_stars(ex.importance)}"
                f"  about {ex.minutes} min",
                "",
                "# %%",
                stub_for(src).rstrip(),
                "",
            ]
    out += [
        "",
        "# %% [markdown]",
        "# ## Check your work",
        "",
        "# %%",
        'if __name__ == "__main__":',
        "    from mlab.course import check",
        "",
        f'    check("{day.id}", file=globals().get("__file__"))',
        "",
    ]
    return "\n".join(out)
