"""Meta-tests of the course: for every day, its checks are proven able to tell right from wrong.

- the manifests load, every exercise has a check, and its reference source can be found;
- every check passes on the reference and none on the generated stub ("not started");
- for every exercise, the checks kill at least ``MIN_SCORE`` (85%) of the mutants of its
  reference (slow); the day's score is reported too;
- the day's ``equivalent_mutants.toml`` names only mutants that exist, of exercises that exist,
  each with a reason.

Days are found with ``manifest.all_days()``, so a new day is covered without editing this file.
"""

from __future__ import annotations

import inspect
import io
import os
import re

import pytest
from rich.console import Console

from mlab.course.engine.checks import checks_for
from mlab.course.engine.manifest import Day, all_days
from mlab.course.engine.mutation_report import (
    ALLOWLIST_FILE,
    MIN_SCORE,
    mutation_report,
    print_mutation_report,
    stale_allowlist_entries,
)
from mlab.course.engine.runner import Result, Target, run_checks
from mlab.course.engine.stubgen import exercise_source

DAYS = all_days()


def _workers() -> int:
    """Check processes per test: the cores, shared among pytest-xdist's workers (if any)."""
    sharing = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, min(2, (os.cpu_count() or 1) // sharing))


def _failures(results: list[Result], want: str) -> str:
    return "\n\n".join(
        f"{r.exercise}: {r.status} (wanted {want!r}) in check {r.check or '-'}\n{r.message}"
        for r in results
        if r.status != want
    )


day_param = pytest.mark.parametrize("day", DAYS, ids=[d.id for d in DAYS])


def test_there_are_days() -> None:
    assert DAYS, "no day manifests found under src/mlab/course/"


@day_param
def test_every_exercise_has_checks_and_a_reference_source(day: Day) -> None:
    assert day.exercises, f"{day.id} has no exercises"
    for part in day.parts:
        for ex in part.exercises:
            if ex.missing_requirements():
                continue  # reported by test_optional_packages_are_installed
            assert checks_for(part.checks_module, ex.name), (
                f'{ex.name} has no @check("{ex.name}") in {part.checks_module}'
            )
            assert ex.reference() is not None
            assert exercise_source(ex).source.strip()


# Docstring phrases that promise the learner's code will be checked for Python loops.
NO_LOOP = re.compile(r"no (python )?loop|without (a )?python loop", re.IGNORECASE)


@day_param
def test_a_promise_of_no_python_loop_is_checked(day: Day) -> None:
    """An exercise whose docstring says "no Python loop" has a check that measures it
    (`mlab.testing.assert_no_python_loop`); else a loop passes and the promise misleads."""
    unchecked = []
    for part in day.parts:
        for ex in part.exercises:
            if ex.missing_requirements():
                continue
            doc = inspect.getdoc(ex.reference()) or ""
            if NO_LOOP.search(" ".join(doc.split())):
                sources = [inspect.getsource(c.fn) for c in checks_for(part.checks_module, ex.name)]
                if not any("no_loop" in s or "no_python_loop" in s for s in sources):
                    unchecked.append(ex.name)
    assert not unchecked, f"{day.id}: no check measures the promised absence of loops: {unchecked}"


@day_param
def test_checks_pass_on_the_reference(day: Day) -> None:
    results = [
        r for r in run_checks(day, Target.reference(), workers=_workers()) if r.status != "skipped"
    ]
    assert all(r.status == "pass" for r in results), _failures(results, "pass")


@day_param
def test_checks_fail_on_the_stub(day: Day) -> None:
    results = [
        r for r in run_checks(day, Target.stub(), workers=_workers()) if r.status != "skipped"
    ]
    assert all(r.status == "not started" for r in results), _failures(results, "not started")


@day_param
def test_optional_packages_are_installed(day: Day) -> None:
    missing = {ex.name: ex.missing_requirements() for ex in day.exercises}
    missing = {name: pkgs for name, pkgs in missing.items() if pkgs}
    if missing:
        packages = sorted({p for pkgs in missing.values() for p in pkgs})
        pytest.skip(
            f"{day.id}: {len(missing)} exercises need {', '.join(packages)} and were not "
            "checked; `make setup EXTRAS=dev,nlp,notebook,docs,train,gpu` installs it (CI does)"
        )


@day_param
def test_allowlisted_equivalent_mutants_exist(day: Day) -> None:
    # load_allowlist raises on an entry without a reason; an entry naming no exercise of the
    # day, or no mutant of its exercise, is stale
    stale = stale_allowlist_entries(day)
    assert not stale, "\n".join(stale)


@pytest.mark.slow
@day_param
def test_checks_kill_the_mutants(day: Day) -> None:
    report = mutation_report(day, workers=_workers())
    console = Console(file=io.StringIO(), record=True, width=140)
    print_mutation_report(report, console)
    text = console.export_text()
    print(text)  # per-exercise scores: shown on failure, or always with `pytest -s`
    # problems include every exercise below the bar (the day's score alone can hide one)
    assert not report.problems, (
        "\n".join(report.problems) + f"\n\n{day.id} as a whole: the checks kill {report.killed} "
        f"of {report.counted} mutants ({report.score:.0%}); every exercise needs "
        f"{MIN_SCORE:.0%}.\n\n{text}\n"
        "Add checks (edge cases, values not only shapes) that fail on these mutants. Only if a "
        f"mutant is truly equivalent (no input can tell it apart), add it to "
        f"src/mlab/course/{day.directory.name}/{ALLOWLIST_FILE}:\n"
        '  [[equivalent]]\n  id = "<its id>"\n  reason = "one line: why no input tells them apart"'
    )
