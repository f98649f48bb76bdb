"""Checks for part 4 of w4d1: the sum tree against a brute-force cumulative sum
(``torch.cumsum`` and ``torch.searchsorted``, integer priorities so interval edges are exact,
leaves of priority 0, repeated indices, capacities that are not powers of two) and the
importance-sampling weights against their formula."""

from __future__ import annotations

import numpy as np
import torch

from mlab.course.engine.checks import Namespace, check
from mlab.testing import assert_close, assert_equal, assert_raises, case, expect


def _brute_find(priorities: np.ndarray, values: np.ndarray) -> list[int]:
    """The leaf whose half-open interval [cum[j-1], cum[j]) holds each value."""
    cum = torch.cumsum(torch.as_tensor(priorities, dtype=torch.float64), 0)
    return torch.searchsorted(cum, torch.as_tensor(values), right=True).tolist()


@check("SumTree")
def total_and_find_match_cumsum(ns: Namespace) -> None:
    rng = np.random.default_rng(0)
    for capacity in (1, 5, 8, 13):
        priorities = rng.integers(0, 6, capacity).astype(np.float64)
        priorities[0] = max(priorities[0], 1.0)
        tree = ns.SumTree(capacity)
        tree.update(np.arange(capacity), priorities)
        edges = np.cumsum(priorities)
        edges = edges[edges < priorities.sum()]  # values on interval edges, below the total
        values = np.concatenate([edges, rng.uniform(0, priorities.sum(), 40), [0.0]])
        with case(f"capacity {capacity}, integer priorities {priorities.tolist()}"):
            assert_close(tree.total(), float(priorities.sum()), what="total()")
            got = tree.find(values)
            assert_equal(
                np.asarray(got).tolist(), _brute_find(priorities, values), what="find(values)"
            )
            found = np.asarray(got)
            expect(
                bool((priorities[found] > 0).all()),
                f"find returned leaves of priority 0: {found[priorities[found] == 0].tolist()}",
            )


@check("SumTree")
def updates_keep_the_sums(ns: Namespace) -> None:
    rng = np.random.default_rng(1)
    tree = ns.SumTree(11)
    priorities = np.zeros(11)
    for step in range(30):
        idx = rng.integers(0, 11, 3)
        new = rng.integers(0, 9, 3).astype(np.float64)
        if step == 7:
            idx, new = np.array([4, 4]), np.array([2.0, 5.0])  # repeated: the last wins
        tree.update(idx, new)
        for i, p in zip(idx, new, strict=True):
            priorities[i] = p
        if priorities.sum() == 0:
            continue
        values = rng.uniform(0, priorities.sum(), 25)
        with case(f"after update {step} of 30 (capacity 11): {priorities.tolist()}"):
            assert_close(tree.total(), float(priorities.sum()), what="total()")
            assert_equal(
                np.asarray(tree.find(values)).tolist(),
                _brute_find(priorities, values),
                what="find(values)",
            )


@check("SumTree")
def layout_and_plain_lists(ns: Namespace) -> None:
    for capacity, leaves in ((1, 1), (5, 8), (8, 8), (9, 16)):
        tree = ns.SumTree(capacity)
        with case(f"capacity {capacity}: {leaves} leaves, nodes 1 .. {2 * leaves - 1}"):
            assert_equal(tree.tree.shape, (2 * leaves,), what="tree.tree's shape")
            tree.update(list(range(capacity)), [1.0] * capacity)
            assert_close(float(tree.tree[1]), float(capacity), what="the root, node 1")
            assert_close(float(tree.tree[0]), 0.0, what="node 0 (unused)")
    with case("indices, priorities and values as Python lists"):
        tree = ns.SumTree(3)
        tree.update([0, 2], [1.0, 3.0])
        assert_equal(np.asarray(tree.find([0.5, 1.5, 3.9])).tolist(), [0, 2, 2], what="find")


@check("SumTree")
def sum_tree_errors(ns: Namespace) -> None:
    with case("capacity 0"):
        assert_raises(ns.SumTree, 0, exc=ValueError, match="0")
    tree = ns.SumTree(4)
    with case("a negative priority"):
        assert_raises(tree.update, np.array([1]), np.array([-0.5]), exc=ValueError, match="-0.5")
    with case("index 4 in a tree of capacity 4"):
        assert_raises(tree.update, np.array([4]), np.array([1.0]), exc=ValueError, match="4")
    with case("index -1"):
        assert_raises(tree.update, np.array([-1]), np.array([1.0]), exc=ValueError, match="-1")
    with case("a NaN priority"):
        assert_raises(tree.update, np.array([0]), np.array([np.nan]), exc=ValueError)


@check("importance_weights")
def weights_match_the_formula(ns: Namespace) -> None:
    probs = torch.tensor([0.1, 0.02, 0.3, 0.05, 0.001])
    for beta in (0.4, 1.0, 0.0, 0.7):
        raw = [(500 * p) ** -beta for p in probs.tolist()]
        expected = [w / max(raw) for w in raw]
        with case(f"5 probabilities from a buffer of 500, beta={beta}", probs=probs):
            got = ns.importance_weights(probs, 500, beta)
            assert_close(got, torch.tensor(expected), rtol=1e-5, what="weights")
    with case("uniform sampling from 50: all weights 1"):
        got = ns.importance_weights(torch.full((7,), 1 / 50), 50, 0.6)
        assert_close(got, torch.ones(7), rtol=1e-5, what="weights")
