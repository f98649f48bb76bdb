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

Whatever an exercise returns to a check is first held to the reference's return annotation
(:mod:`mlab.course.engine.returns`), so no check has to test types and shapes itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlab.course.engine.returns import returns_checked
from mlab.errors import CourseError

__all__ = ["Check", "MissingExercise", "Namespace", "check", "checks_for"]


class MissingExercise(CourseError, AttributeError):
    """The file under check does not define an exercise a check needs."""


class Namespace:
    """The implementation under check: attribute access gives the exercise of that name.

    ``references`` maps exercise names to a function giving the reference object; an exercise
    that has one comes back with its returns checked against the reference's annotations
    (functions wrapped, classes' methods checked in place).
    """

    def __init__(
        self,
        values: dict[str, Any],
        *,
        source: str,
        references: Mapping[str, Callable[[], Any]] | None = None,
    ) -> None:
        self._values = values
        self._source = source
        self._references = dict(references or {})
        self._checked: dict[str, Any] = {}
        self._aliases: dict[type, type] | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            value = self._values[name]
        except KeyError:
            raise MissingExercise(f"{self._source} does not define {name!r}") from None
        if name not in self._references:
            return value
        if name not in self._checked:
            ref = self._references[name]()
            self._checked[name] = returns_checked(value, ref, name, self._class_aliases)
        return self._checked[name]

    def _class_aliases(self) -> dict[type, type]:
        """Reference class -> the class under check, for the exercises that are classes: a
        return annotated with the reference's ``Sequential`` accepts the learner's."""
        if self._aliases is None:
            self._aliases = {}
            for name, reference in self._references.items():
                ref, ours = reference(), self._values.get(name)
                if isinstance(ref, type) and isinstance(ours, type) and ours is not ref:
                    self._aliases[ref] = ours
        return self._aliases

    def replace(self, name: str, value: Any) -> Namespace:
        """A copy with ``name`` bound to ``value`` (used to check one mutant at a time)."""
        return Namespace(
            {**self._values, name: value}, source=self._source, references=self._references
        )


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
