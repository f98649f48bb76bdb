"""Mutation score of ``mlab.testing`` against ``tests/test_testing.py``.

The course holds its checks to a mutation bar (85% of the mutants of each exercise killed);
this holds the helpers every check is built on to the same bar. Every function in
``src/mlab/testing.py`` (private helpers included) goes through the course's own mutation
engine (:func:`mlab.course.engine.mutate.mutants_of_source`); each mutant is exec'd into the
``mlab.testing`` module, patched into the test module's imports, and the tests of
``tests/test_testing.py`` run against it in this process, cheapest-known killer first, until
one fails (the mutant is *killed*) or all pass (it *survives*).

In process, each mutant costs milliseconds where pytest in a subprocess would cost seconds;
the price is that the Hypothesis tests run with fewer examples (``--examples``; derandomized,
so the score is the same on every run) than under pytest.

    .venv/bin/python scripts/mutate_testing.py               # score and survivors
    .venv/bin/python scripts/mutate_testing.py --examples 250  # Hypothesis as under pytest
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import itertools
import signal
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import mlab.testing
from mlab.course.engine.mutate import Mutant, mutants_of_source

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests" / "test_testing.py"
HEADER = "from __future__ import annotations\n"
BAR = 0.85

# Mutants that no input can tell apart from the original, each with the reason. Kept as short
# as possible: a mutant listed here that a test kills is reported as stale.
EQUIVALENT: dict[str, str] = {
    "_compare_tensors:args:L46:C17:0": "torch.promote_types is symmetric",
    "_compare_numbers:args:L26:C28:0": "math.isclose is symmetric",
    "assert_shares_storage:args:L3:C11:0": "_same_storage is symmetric",
    "assert_not_shares_storage:args:L3:C7:0": "_same_storage is symmetric",
    "_work:stmt:L11:C8:0": "CPython keeps a frame's local trace function when it returns None",
}


# ----------------------------------------------------------------------------------------------
# Mutants


def functions(module: ModuleType = mlab.testing) -> dict[str, tuple[str, int]]:
    """name -> (dedented source with decorators, first line in the file) of every top-level
    function of ``module``."""
    source = Path(inspect.getfile(module)).read_text()
    lines = source.splitlines(keepends=True)
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            text = textwrap.dedent("".join(lines[start - 1 : node.end_lineno]))
            found[node.name] = (text, start)
    return found


def testing_mutants(module: ModuleType = mlab.testing) -> list[Mutant]:
    """The mutation engine's mutants of every function in ``module``."""
    return [
        mutant
        for name, (text, first_line) in functions(module).items()
        for mutant in mutants_of_source(text, name, first_line=first_line, header=HEADER)
    ]


# ----------------------------------------------------------------------------------------------
# Tests, called directly


@dataclass
class Case:
    """One test function with one set of parametrize arguments."""

    name: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> None:
        self.fn(**self.kwargs)


def load_tests(path: Path = TESTS) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_mutated_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _values(value: Any) -> tuple[Any, ...]:
    return tuple(getattr(value, "values", value))  # pytest.param(...) or a plain tuple


def collect(module: ModuleType) -> list[Case]:
    """Every test of ``module`` with its parametrize marks expanded, in file order."""
    cases = []
    for name, fn in vars(module).items():
        if not (name.startswith("test_") and callable(fn)):
            continue
        grids = []
        for mark in getattr(fn, "pytestmark", []):
            if mark.name != "parametrize":
                continue
            argnames, argvalues = mark.args[:2]
            names = (
                [n.strip() for n in argnames.split(",")] if isinstance(argnames, str) else argnames
            )
            rows = [
                _values(v) if len(names) > 1 else (getattr(v, "values", (v,))[0],)
                for v in argvalues
            ]
            grids.append([dict(zip(names, row, strict=True)) for row in rows])
        for combo in itertools.product(*grids):
            kwargs = {k: v for part in combo for k, v in part.items()}
            missing = set(inspect.signature(fn).parameters) - set(kwargs)
            if missing:
                raise TypeError(f"{name} needs fixtures {sorted(missing)}: not supported here")
            label = ",".join(getattr(v, "__name__", str(v)) for v in kwargs.values())
            cases.append(Case(f"{name}[{label}]" if label else name, fn, kwargs))
    return cases


@contextmanager
def fewer_examples(cases: list[Case], examples: int) -> Iterator[None]:
    """Hypothesis tests run ``examples`` derandomized examples, no database, no shrinking."""
    from hypothesis import Phase, settings

    saved = {}
    for c in cases:
        old = getattr(c.fn, "_hypothesis_internal_use_settings", None)
        if old is not None and c.fn not in saved:
            saved[c.fn] = old
            c.fn._hypothesis_internal_use_settings = settings(  # type: ignore[attr-defined]
                old,
                max_examples=examples,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
            )
    try:
        yield
    finally:
        for fn, old in saved.items():
            fn._hypothesis_internal_use_settings = old  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------------
# Running


class _Timeout(Exception):
    pass


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise _Timeout


@dataclass
class Result:
    mutant: Mutant
    killed_by: str | None  # the test that failed, "timeout", or None: it survived
    error: str = ""


@contextmanager
def patched(mutant_source: str, name: str, targets: list[ModuleType]) -> Iterator[None]:
    """``name`` replaced by the function ``mutant_source`` defines, in mlab.testing (where the
    other helpers find it) and in every module of ``targets`` that imported it."""
    originals = {id(m): m.__dict__.get(name) for m in targets}
    exec(compile(mutant_source, f"<mutant of {name}>", "exec"), mlab.testing.__dict__)
    new = mlab.testing.__dict__[name]
    for m in targets:
        if m is not mlab.testing and originals[id(m)] is not None:
            m.__dict__[name] = new
    trace = sys.gettrace()
    try:
        yield
    finally:
        sys.settrace(trace)  # a mutant of python_lines_run may leave its tracer installed
        for m in targets:
            if originals[id(m)] is not None:
                m.__dict__[name] = originals[id(m)]


def run_mutant(
    mutant: Mutant, cases: list[Case], tests: ModuleType, *, time_limit: float = 20.0
) -> Result:
    """Run ``cases`` (reordered: the killer moves to the front) against ``mutant``."""
    name = mutant.exercise
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        with patched(mutant.source, name, [mlab.testing, tests]):
            signal.setitimer(signal.ITIMER_REAL, time_limit)
            try:
                for i, c in enumerate(cases):
                    try:
                        c()
                    except _Timeout:
                        return Result(mutant, "timeout")
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except BaseException as err:  # pytest.fail's Failed is a BaseException
                        cases.insert(0, cases.pop(i))
                        return Result(mutant, c.name, f"{type(err).__name__}: {err}"[:200])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        return Result(mutant, "timeout")
    finally:
        signal.signal(signal.SIGALRM, previous)
    return Result(mutant, None)


def control(cases: list[Case], tests: ModuleType) -> None:
    """Every function re-exec'd from its unparsed source (as mutants are) passes every test."""
    for name, (text, _) in functions().items():
        source = HEADER + ast.unparse(ast.parse(text)) + "\n"
        with patched(source, name, [mlab.testing, tests]):
            for c in cases:
                c()


@dataclass
class Report:
    results: list[Result]
    seconds: float
    all_ids: set[str]  # of every mutant, the ones not run included

    @property
    def counted(self) -> list[Result]:
        return [r for r in self.results if r.mutant.id not in EQUIVALENT]

    @property
    def survivors(self) -> list[Result]:
        return [r for r in self.counted if r.killed_by is None]

    @property
    def score(self) -> float:
        return 1 - len(self.survivors) / max(1, len(self.counted))

    @property
    def stale_equivalents(self) -> list[str]:
        killed = {r.mutant.id for r in self.results if r.killed_by is not None}
        return sorted(i for i in EQUIVALENT if i in killed or i not in self.all_ids)

    def text(self) -> str:
        lines = [
            f"mlab.testing: {len(self.counted) - len(self.survivors)} of {len(self.counted)} "
            f"mutants killed ({self.score:.1%}; bar {BAR:.0%}), {len(EQUIVALENT)} equivalent "
            f"left out, {self.seconds:.1f} s"
        ]
        for r in self.survivors:
            lines.append(f"  survived {r.mutant.id}  {r.mutant.description}")
        for i in self.stale_equivalents:
            lines.append(f"  stale equivalent entry (killed or gone): {i}")
        return "\n".join(lines)


def mutation_report(
    *,
    examples: int = 10,
    only: Callable[[Mutant], bool] | None = None,
    check_control: bool = True,
) -> Report:
    """Run the mutants of mlab.testing against tests/test_testing.py, in this process."""
    tests = load_tests()
    cases = collect(tests)
    every = testing_mutants()
    mutants = every if only is None else [m for m in every if only(m)]
    start = time.perf_counter()
    with fewer_examples(cases, examples), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what mutants make torch say
        if check_control:
            control(cases, tests)
        results = [run_mutant(m, cases, tests) for m in mutants]
    return Report(results, time.perf_counter() - start, {m.id for m in every})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10, help="Hypothesis examples per test")
    parser.add_argument("-k", default="", help="only mutants whose id contains this")
    parser.add_argument("-v", action="store_true", help="also say which test killed each")
    args = parser.parse_args(argv)
    report = mutation_report(examples=args.examples, only=lambda m: args.k in m.id)
    if args.v:
        for r in report.results:
            if r.killed_by:
                print(f"  killed {r.mutant.id} by {r.killed_by}")
    print(report.text())
    return 0 if report.score >= BAR and not report.stale_equivalents else 1


if __name__ == "__main__":
    sys.exit(main())
