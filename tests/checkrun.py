"""Run an exercise's checks in this process, with a wrong solution in place of the reference:
the tests of realistic wrong solutions, one day per file, share these two."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mlab.course.engine.checks import checks_for
from mlab.course.engine.manifest import get_day
from mlab.course.engine.worker import _reference_namespace
from mlab.errors import MismatchError


def run_checks(day_id: str, exercise: str, value: Any = None) -> None:
    """Run every check of ``exercise`` with ``value`` in place of the reference (the
    reference itself when None)."""
    day = get_day(day_id)
    ns = _reference_namespace(day)
    if value is not None:
        ns = ns.replace(exercise, value)
    module = next(
        p.checks_module for p in day.parts if any(e.name == exercise for e in p.exercises)
    )
    checks = checks_for(module, exercise)
    assert checks, f"{day_id} {exercise} has no checks"
    for c in checks:
        c.fn(ns)


def assert_fails(
    day_id: str,
    exercise: str,
    value: Any,
    message: str,
    exc: type[Exception] | tuple[type[Exception], ...] = MismatchError,
) -> None:
    """The checks of ``exercise`` reject ``value`` with ``exc``, saying ``message`` (a
    regular expression searched in the error and its notes)."""
    with pytest.raises(exc) as info:
        run_checks(day_id, exercise, value)
    text = str(info.value) + "\n".join(getattr(info.value, "__notes__", []))
    assert re.search(message, text, flags=re.DOTALL), text
