"""How a day's checks are written and found.

A check is a plain function that receives the implementation under test (a :class:`Namespace`
over the learner's file, the reference library or a mutant) and raises when it is wrong,
using the helpers of :mod:`mlab.testing`::

    @check("element_offset")
    def offsets_match_torch(ns: Namespace) -> None:
        x = torch.arange(24).reshape(2, 3, 4).transpose(0, 2)
        with case("a transposed 2x3x4 tensor", x=x):
            assert_equal(ns.element_offset((1, 2, 0), x.stride(), 0), ...)

An exercise may have several checks; they run in the order written and stop at the first
failure.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlab.errors import CourseError

__all__ = ["Check", "MissingExercise", "Namespace", "check", "checks_for"]


class MissingExercise(CourseError, AttributeError):
    """The file under check does not define an exercise a check needs."""


class Namespace:
    """The implementation under check: attribute access gives the exercise of that name."""

    def __init__(self, values: dict[str, Any], *, source: str) -> None:
        self._values = values
        self._source = source

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise MissingExercise(f"{self._source} does not define {name!r}") from None

    def replace(self, name: str, value: Any) -> Namespace:
        """A copy with ``name`` bound to ``value`` (used to check one mutant at a time)."""
        return Namespace({**self._values, name: value}, source=self._source)


CheckFn = Callable[[Namespace], None]


@dataclass(frozen=True)
class Check:
    exercise: str
    fn: CheckFn

    @property
    def name(self) -> str:
        return self.fn.__name__


# checks module name -> its checks, in definition order
_REGISTRY: dict[str, list[Check]] = {}


def check(exercise: str) -> Callable[[CheckFn], CheckFn]:
    """Declare the decorated function a check of ``exercise``."""

    def register(fn: CheckFn) -> CheckFn:
        _REGISTRY.setdefault(fn.__module__, []).append(Check(exercise, fn))
        return fn

    return register


def checks_for(module_name: str, exercise: str | None = None) -> list[Check]:
    """The checks in ``module_name`` (importing it), optionally only those of ``exercise``."""
    importlib.import_module(module_name)
    found = _REGISTRY.get(module_name, [])
    return [c for c in found if exercise is None or c.exercise == exercise]
