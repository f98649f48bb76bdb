"""Checks callable from a notebook cell: ``from mlab.course import check; check("w1d1")``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["check"]


def check(day: str, *, exercise: str | None = None, file: str | Path | None = None) -> bool:
    """Run ``day``'s checks on the learner's file and print the results table.

    Returns True when every exercise checked passes.
    """
    from mlab.course.engine.report import check_and_report

    return check_and_report(day, exercise=exercise, file=file)
