"""mlab.testing meets the course's mutation bar (85% of mutants killed) under tests/test_testing.py.

What this covers: every mutant the course's mutation engine makes of every function in
src/mlab/testing.py (private helpers included; ~720 of them), each run in this process
against every test in tests/test_testing.py until one fails (scripts/mutate_testing.py). The
Hypothesis tests run 10 derandomized examples per mutant instead of 250, so the score is the
same on every run; everything else runs as under pytest. Mutants listed as equivalent in the
script (with a reason each) are left out, and an entry that a test kills, or that names no
mutant, fails here. About 25 s of one core.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mlab.course.engine.mutate import Mutant

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mutate_testing.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutate_testing", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _script()


@pytest.fixture(scope="module")
def report(script: ModuleType) -> Any:
    return script.mutation_report()


def test_mlab_testing_meets_the_mutation_bar(script: ModuleType, report: Any) -> None:
    assert len(report.results) > 600, "every function of mlab.testing is mutated"
    assert report.score >= script.BAR, report.text()
    assert not report.stale_equivalents, report.text()


def test_the_verdict_changing_mutants_of_the_audit_are_killed(report: Any) -> None:
    """The audit's examples: the raise of assert_close's fallback comparison (strings, None,
    objects) deleted, `equal_nan and` made `or`, `/` made `//` in chi_square_p_value."""
    changes = {r.mutant.change: r.killed_by for r in report.results}
    audited = [
        "deleted `raise _fail(what, f'expected {describe(expected)}, got {describe(actu…`",
        "`equal_nan and math.isnan(e) and math.isnan(g)` → "
        "`equal_nan or math.isnan(e) or math.isnan(g)`",
        "`(observed - expected) ** 2 / expected` → `(observed - expected) ** 2 // expected`",
        "`stat / 2` → `stat // 2`",
    ]
    for change in audited:
        assert change in changes, change
        assert changes[change] is not None, f"survived: {change}"


def test_the_runner_lets_an_unchanged_function_survive(script: ModuleType) -> None:
    """Not vacuous: the original source, run as a mutant, passes every test."""
    tests = script.load_tests()
    cases = script.collect(tests)
    text, first_line = script.functions()["chi_square_p_value"]
    same = Mutant(
        id="chi_square_p_value:none",
        exercise="chi_square_p_value",
        operator="none",
        line=1,
        module_line=first_line,
        change="nothing",
        source=script.HEADER + text,
    )
    with script.fewer_examples(cases, 3):
        assert script.run_mutant(same, cases, tests).killed_by is None
        broken = Mutant(**{**same.__dict__, "source": same.source.replace("/ 2", "// 2")})
        assert script.run_mutant(broken, cases, tests).killed_by is not None
