"""Checks for part 2 of w3d3: ranking examples. The rankings are compared with NumPy's
``lexsort`` on (loss descending, index ascending), with ties, ``k`` of 0 and past the end, and
the errors promised for NaN losses, a negative ``k`` and arrays that do not match."""

from __future__ import annotations

import numpy as np

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import assert_equal, assert_raises, case


def _ranking(score: np.ndarray, k: int) -> list[int]:
    index = np.arange(len(score))
    return [int(i) for i in np.lexsort((index, -score))[:k]]


def _losses() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "20 random losses": rng.exponential(1.0, 20),
        "losses with ties": np.array([0.5, 2.0, 0.1, 2.0, 0.5, 3.0, 2.0]),
        "one loss": np.array([1.5]),
        "negative values (log-likelihood differences)": np.array([-1.0, -3.0, 0.0, -0.5]),
    }


@check("worst_examples")
def worst_matches_lexsort(ns: Namespace) -> None:
    for name, losses in _losses().items():
        for k in (0, 1, 3, len(losses), len(losses) + 5):
            with case(f"{name}, k={k}", losses=losses, k=k):
                before = losses.copy()
                assert_equal(ns.worst_examples(losses, k), _ranking(losses, k), what="indices")
                assert_equal(losses.tolist(), before.tolist(), what="losses after the call")


@check("worst_examples")
def worst_rejects_bad_input(ns: Namespace) -> None:
    with case("a NaN loss"):
        assert_raises(ns.worst_examples, np.array([1.0, np.nan, 0.2]), 2, exc=ValueError)
    with case("k=-1"):
        assert_raises(ns.worst_examples, np.array([1.0, 2.0]), -1, exc=ValueError)
    with case("losses of shape (2, 3)"):
        assert_raises(ns.worst_examples, np.ones((2, 3)), 2, exc=ShapeError)


@check("largest_disagreements")
def disagreements_match_lexsort(ns: Namespace) -> None:
    rng = np.random.default_rng(1)
    a = rng.exponential(1.0, 30)
    b = a + rng.normal(0, 0.5, 30)
    tied_a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    tied_b = np.array([2.0, 1.0, 3.0, 6.0, 5.0])  # |a - b|: 1, 1, 0, 2, 0
    for name, (x, y) in {"30 random pairs": (a, b), "ties both ways": (tied_a, tied_b)}.items():
        for k in (0, 2, 4, len(x) + 1):
            with case(f"{name}, k={k}", losses_a=x, losses_b=y, k=k):
                want = _ranking(np.abs(x - y), k)
                assert_equal(ns.largest_disagreements(x, y, k), want, what="indices")
    with case("3 losses against 4"):
        assert_raises(ns.largest_disagreements, np.ones(3), np.ones(4), 2, exc=ShapeError)
