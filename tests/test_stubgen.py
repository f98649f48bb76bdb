"""The stub generator: each stub is the reference's signature and docstring over a body that
raises, and the learner's workspace file imports what it needs and defines every exercise."""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
import typing
import uuid
from pathlib import Path

import pytest

from mlab.course.engine.manifest import Day, Exercise, Part, get_day
from mlab.course.engine.stubgen import (
    NOT_STARTED,
    exercise_source,
    stub_for,
    workspace_source,
)

W1D1 = get_day("w1d1")


def exec_source(source: str, name: str) -> types.ModuleType:
    """Run ``source`` as a module, the way the check worker loads a learner's file."""
    module = types.ModuleType(name)
    module.__file__ = f"<{name}>"
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def only_def(source: str) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef:
    (node,) = ast.parse(source).body
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    return node


def is_not_implemented_raise(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Raise)
        and isinstance(stmt.exc, ast.Call)
        and isinstance(stmt.exc.func, ast.Name)
        and stmt.exc.func.id == "NotImplementedError"
    )


def call_with_nones(fn: typing.Callable[..., object]) -> object:
    sig = inspect.signature(fn)
    args = [
        None
        for p in sig.parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    kwargs = {
        p.name: None
        for p in sig.parameters.values()
        if p.default is p.empty and p.kind is p.KEYWORD_ONLY
    }
    return fn(*args, **kwargs)


def imported_names(source: str) -> set[str]:
    """The names the import statements of ``source`` bind."""
    return {
        alias.asname or alias.name.split(".")[0]
        for node in ast.parse(source).body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }


def make_day(*exercises: Exercise, directory: Path) -> Day:
    return Day(
        id="w9d9",
        slug="stubs",
        title="Stub tests",
        summary="A day made up by the tests.",
        directory=directory,
        instructions=directory / "README.md",
        parts=(Part("Only part", "An intro.", "nowhere.checks", tuple(exercises)),),
    )


def make_exercise(ref: str) -> Exercise:
    return Exercise(
        name=ref.rsplit(":", 1)[1].rsplit(".", 1)[-1],
        ref=ref,
        difficulty=1,
        importance=1,
        minutes=1,
        hints=("a hint",),
        timeout=10.0,
        part=0,
        day_id="w9d9",
    )


def write_module(directory: Path, name: str, source: str) -> None:
    path = directory.joinpath(*name.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A folder on sys.path and a fresh module-name prefix (the generator caches by name)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path, f"stubtest_{uuid.uuid4().hex[:10]}"


# ----------------------------------------------------------------------------------------------
# The real day


@pytest.mark.parametrize("exercise", W1D1.exercises, ids=lambda ex: ex.name)
def test_stub_keeps_signature_and_docstring(exercise: Exercise) -> None:
    src = exercise_source(exercise)
    reference = exercise.reference()
    ref_lines, first = inspect.getsourcelines(reference)
    assert src.first_line == first
    assert src.source == textwrap.dedent("".join(ref_lines))

    stub = stub_for(src)
    ref_node, stub_node = only_def(src.source), only_def(stub)
    assert isinstance(ref_node, (ast.FunctionDef, ast.AsyncFunctionDef))
    assert isinstance(stub_node, type(ref_node))
    # The text up to the end of the docstring is the reference's, byte for byte: signature
    # lines formatted as written, type hints, decorators, docstring.
    doc = ref_node.body[0]
    assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant), "no docstring"
    assert doc.end_lineno is not None
    kept = src.source.splitlines()[: doc.end_lineno]
    assert stub.splitlines()[: len(kept)] == kept
    assert ast.get_docstring(stub_node, clean=False) == ast.get_docstring(ref_node, clean=False)
    assert ast.dump(stub_node.args) == ast.dump(ref_node.args)
    # ... and the body is only `raise NotImplementedError("<name>: not started...")`.
    assert len(stub_node.body) == 2
    assert is_not_implemented_raise(stub_node.body[1])
    assert f'NotImplementedError("{exercise.name}: {NOT_STARTED}")' in stub.splitlines()[-1]


@pytest.fixture(scope="module")
def w1d1_workspace() -> tuple[str, types.ModuleType]:
    source = workspace_source(W1D1)
    return source, exec_source(source, "w1d1_workspace_under_test")


def test_workspace_compiles_and_defines_every_exercise(w1d1_workspace) -> None:
    source, module = w1d1_workspace
    tree = ast.parse(source)
    defined = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert defined == [ex.name for ex in W1D1.exercises]  # course order, each once
    for ex in W1D1.exercises:
        assert callable(getattr(module, ex.name))
        assert f"# %%\n{stub_for(exercise_source(ex))}" in source


def test_workspace_imports_what_the_signatures_need(w1d1_workspace) -> None:
    source, module = w1d1_workspace
    # an exercise is the learner's to write: never imported from the reference
    assert not imported_names(source) & {ex.name for ex in W1D1.exercises}
    for ex in W1D1.exercises:
        # Resolving the (postponed) annotations fails with NameError on a missing import.
        hints = typing.get_type_hints(getattr(module, ex.name))
        assert hints.keys() == typing.get_type_hints(ex.reference()).keys()


def test_workspace_exercises_raise_not_implemented(w1d1_workspace) -> None:
    _, module = w1d1_workspace
    for ex in W1D1.exercises:
        with pytest.raises(NotImplementedError, match=f"^{ex.name}: not started"):
            call_with_nones(getattr(module, ex.name))


def test_workspace_is_a_notebook_with_a_check_cell(w1d1_workspace) -> None:
    source, module = w1d1_workspace
    assert source.startswith("# %% [markdown]\n# # w1d1: ")
    assert source.count("\n# %%\ndef ") + source.count("\n# %%\nclass ") == len(W1D1.exercises)
    assert 'check("w1d1", file=globals().get("__file__"))' in source
    assert module.__name__ != "__main__"  # importing it does not run the checks


# ----------------------------------------------------------------------------------------------
# Made-up modules: classes, one-liners, relative imports

CLASS_MODULE = '''
"""A module with a class exercise."""

from __future__ import annotations

SCALE = 3


def helper(x: int) -> int:
    return x * SCALE


class Counter:
    """Counts in steps."""

    start: int = 0
    step = 2
    names: tuple[str, ...] = ("a", "b")

    def __init__(self, start: int = 0) -> None:
        """Start at ``start``."""
        self.value = start

    @property
    def doubled(self) -> int:
        return self.value * 2

    @staticmethod
    def label(
        prefix: str,
        *,
        upper: bool = False,
    ) -> str:
        """A label."""
        text = prefix + "counter"
        return text.upper() if upper else text

    def bump(self, times: int = 1) -> int:
        """Add ``helper(1)`` ``times`` times."""
        for _ in range(times):
            self.value += helper(1)
        return self.value
    after_methods = "kept"
'''


def test_class_exercise_stubs_every_method_and_keeps_attributes(modules) -> None:
    root, prefix = modules
    name = f"{prefix}_counter"
    write_module(root, name, CLASS_MODULE)
    exercise = make_exercise(f"{name}:Counter")
    stub = stub_for(exercise_source(exercise))

    node = only_def(stub)
    assert isinstance(node, ast.ClassDef)
    methods = [n for n in node.body if isinstance(n, ast.FunctionDef)]
    assert [m.name for m in methods] == ["__init__", "doubled", "label", "bump"]
    for m in methods:
        assert is_not_implemented_raise(m.body[-1]), m.name
        assert len(m.body) == (2 if ast.get_docstring(m) else 1), m.name
    assert "self.value" not in stub and "helper(1)\n" not in stub
    # class attributes, annotations, decorators and a multi-line signature are kept as written
    for line in [
        '    """Counts in steps."""',
        "    start: int = 0",
        "    step = 2",
        '    names: tuple[str, ...] = ("a", "b")',
        "    @property",
        "    @staticmethod",
        "    def label(\n        prefix: str,\n        *,\n"
        "        upper: bool = False,\n    ) -> str:",
    ]:
        assert line in stub

    module = exec_source(workspace_source(make_day(exercise, directory=root)), f"{name}_ws")
    counter = module.Counter
    assert (counter.start, counter.step, counter.names) == (0, 2, ("a", "b"))
    assert counter.after_methods == "kept"
    assert counter.__doc__ == "Counts in steps."
    assert counter.bump.__doc__ == "Add ``helper(1)`` ``times`` times."
    assert module.helper(2) == 6  # a helper the exercise uses is importable in the workspace
    with pytest.raises(NotImplementedError, match=r"^Counter\.__init__: not started"):
        counter()
    with pytest.raises(NotImplementedError, match=r"^Counter\.label: not started"):
        counter.label("x")
    obj = object.__new__(counter)
    with pytest.raises(NotImplementedError, match=r"^Counter\.doubled: not started"):
        _ = obj.doubled
    with pytest.raises(NotImplementedError, match=r"^Counter\.bump: not started"):
        obj.bump()


def test_one_line_reference_is_a_clear_error(modules) -> None:
    root, prefix = modules
    name = f"{prefix}_oneline"
    write_module(
        root,
        name,
        """
        def f(): return 1

        class C:
            def m(self): return 2
        """,
    )
    with pytest.raises(ValueError, match=r"^f: put the body of a reference exercise on its own"):
        stub_for(exercise_source(make_exercise(f"{name}:f")))
    with pytest.raises(ValueError, match=r"^C\.m: put the body"):
        stub_for(exercise_source(make_exercise(f"{name}:C")))


def test_function_without_docstring_gets_only_the_raise(modules) -> None:
    root, prefix = modules
    name = f"{prefix}_nodoc"
    write_module(root, name, "def g(\n    x: int,\n) -> int:\n    y = x + 1\n    return y\n")
    stub = stub_for(exercise_source(make_exercise(f"{name}:g")))
    assert stub == (
        'def g(\n    x: int,\n) -> int:\n    raise NotImplementedError("g: ' + NOT_STARTED + '")\n'
    )


def test_missing_definition_is_named(modules) -> None:
    root, prefix = modules
    name = f"{prefix}_missing"
    write_module(root, name, "X = 1\n")
    with pytest.raises(LookupError, match="no definition of 'nothing_here'"):
        exercise_source(make_exercise(f"{name}:nothing_here"))


def test_relative_imports_become_absolute(modules) -> None:
    root, prefix = modules
    pkg = f"{prefix}_pkg"
    write_module(root, f"{pkg}.__init__", "")
    write_module(
        root,
        f"{pkg}.util",
        "def double(x):\n    return 2 * x\n\n\ndef half(x):\n    return x / 2\n",
    )
    write_module(root, f"{pkg}.sub.sibling", "ONE = 1\n")
    write_module(
        root,
        f"{pkg}.sub.__init__",
        '''
        from .sibling import ONE


        def g() -> int:
            """Return one."""
            return ONE
        ''',
    )
    write_module(
        root,
        f"{pkg}.sub.mod",
        '''
        from __future__ import annotations

        from .. import util
        from ..util import double, half
        from . import sibling


        def f(x: int) -> int:
            """Twice twice, plus one."""
            return double(x) + util.double(x) + sibling.ONE + half(0)
        ''',
    )
    day = make_day(
        make_exercise(f"{pkg}.sub.mod:f"),
        make_exercise(f"{pkg}.sub:g"),
        make_exercise(f"{pkg}.util:half"),  # also an exercise: the learner's, never imported
        directory=root,
    )
    source = workspace_source(day)
    for line in [
        f"from {pkg} import util",
        f"from {pkg}.util import double",
        f"from {pkg}.sub import sibling",
        f"from {pkg}.sub.sibling import ONE",  # relative to a package's own __init__
    ]:
        assert f"\n{line}\n" in source
    assert "from ." not in source
    assert "half" not in imported_names(source)
    assert source.count("def half(") == 1
    module = exec_source(source, f"{pkg}_ws")
    assert module.double(2) == 4 and module.sibling.ONE == 1 and module.ONE == 1
    with pytest.raises(NotImplementedError, match=r"^f: not started"):
        module.f(1)
    with pytest.raises(NotImplementedError, match=r"^g: not started"):
        module.g()
