"""Run an exercise's checks in this process, with a wrong solution in place of the reference:
the tests of realistic wrong solutions, one day per file, share these; ``variant`` writes a
wrong solution as the reference's source with one mistake edited in."""

from __future__ import annotations

import inspect
import re
import textwrap
from types import ModuleType
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


def variant(module: ModuleType, name: str, *edits: tuple[str, str]) -> Any:
    """The reference ``module.name`` with each ``(old, new)`` edit applied to its source
    (so the wrong solution stays in step with the reference; an ``old`` no longer in the
    source fails loudly)."""
    source = textwrap.dedent(inspect.getsource(getattr(module, name)))
    for old, new in edits:
        assert old in source, f"{old!r} is not in {name}'s source any more"
        source = source.replace(old, new)
    scope = dict(vars(module))
    exec(compile(source, f"<wrong {name}>", "exec"), scope)
    return scope[name]
