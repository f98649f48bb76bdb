"""Checks for part 4 of w1d1: gather, scatter and index_select, against advanced indexing,
``torch.nn.functional`` and per-segment masks computed by torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_no_python_loop,
    assert_raises,
    case,
    randint,
    randn,
)

# ----------------------------------------------------------------------------------------------
# label_logprobs


@check("label_logprobs")
def label_logprobs_match_indexing(ns: Namespace) -> None:
    cases = [
        ("5 rows, 7 classes", randn(5, 7, seed=0).log_softmax(1), randint(0, 7, 5, seed=1)),
        ("3 rows, 1 class", randn(3, 1, seed=2).log_softmax(1), torch.zeros(3, dtype=torch.long)),
        ("1 row, 4 classes", randn(1, 4, seed=3), torch.tensor([3])),
        ("a transposed (non-contiguous) 4x6", randn(6, 4, seed=4).t(), torch.tensor([5, 0, 2, 2])),
        ("an empty batch", torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)),
    ]
    for what, logprobs, labels in cases:
        with case(what, logprobs=logprobs, labels=labels):
            expected = logprobs[torch.arange(len(labels)), labels]
            assert_equal(ns.label_logprobs(logprobs, labels), expected)


@check("label_logprobs")
def label_logprobs_rejects_bad_shapes(ns: Namespace) -> None:
    bad = [
        ("4 labels for 5 rows", torch.zeros(5, 7), torch.zeros(4, dtype=torch.long)),
        ("labels of shape (5, 1)", torch.zeros(5, 7), torch.zeros(5, 1, dtype=torch.long)),
        ("1-D logprobs", torch.zeros(7), torch.zeros(7, dtype=torch.long)),
        ("3-D logprobs", torch.zeros(5, 7, 2), torch.zeros(5, dtype=torch.long)),
    ]
    for what, logprobs, labels in bad:
        with case(what, logprobs=logprobs, labels=labels):
            assert_raises(ns.label_logprobs, logprobs, labels, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# select_submatrix


@check("select_submatrix")
def submatrix_matches_indexing(ns: Namespace) -> None:
    x = randn(4, 6, seed=10)
    cases = [
        ("repeated rows, two columns", x, torch.tensor([3, 0, 3]), torch.tensor([5, 1])),
        ("one row, all columns reversed", x, torch.tensor([2]), torch.arange(5, -1, -1)),
        (
            "a transposed (non-contiguous) 6x4",
            x.t(),
            torch.tensor([5, 1, 0, 4]),
            torch.tensor([3, 0]),
        ),
        ("no rows", x, torch.zeros(0, dtype=torch.long), torch.tensor([0, 1])),
    ]
    for what, m, rows, cols in cases:
        with case(what, x=m, rows=rows, cols=cols):
            assert_equal(ns.select_submatrix(m, rows, cols), m[rows][:, cols])


# ----------------------------------------------------------------------------------------------
# embedding_lookup


@check("embedding_lookup")
def embedding_matches_torch(ns: Namespace) -> None:
    weight = randn(10, 3, seed=20)
    cases = [
        ("ids of shape (2, 5)", weight, randint(0, 10, 2, 5, seed=21)),
        ("ids 0 and vocab - 1", weight, torch.tensor([0, 9, 9, 0])),
        ("a 0-dimensional id", weight, torch.tensor(4)),
        ("ids of shape (2, 0)", weight, torch.zeros(2, 0, dtype=torch.long)),
        ("a (non-contiguous) 3x4 table", randn(4, 3, seed=22).t(), torch.tensor([[2, 1], [0, 2]])),
    ]
    for what, w, ids in cases:
        with case(what, weight=w, ids=ids):
            assert_equal(ns.embedding_lookup(w, ids), F.embedding(ids, w))


@check("embedding_lookup")
def embedding_rejects_out_of_range_ids(ns: Namespace) -> None:
    weight = torch.zeros(10, 3)
    for ids in (torch.tensor([[1, 10]]), torch.tensor([-1, 2]), torch.tensor([11])):
        with case("ids outside [0, vocab=10)", weight=weight, ids=ids):
            assert_raises(ns.embedding_lookup, weight, ids, exc=ValueError)


# ----------------------------------------------------------------------------------------------
# one_hot_scatter


@check("one_hot_scatter")
def one_hot_matches_functional(ns: Namespace) -> None:
    cases = [
        ("6 labels, 4 classes", randint(0, 4, 6, seed=30), 4),
        ("labels 0 and num_classes - 1", torch.tensor([0, 4, 0]), 5),
        ("one class", torch.zeros(3, dtype=torch.long), 1),
        ("a stepped (non-contiguous) slice", torch.tensor([1, 9, 0, 9, 2, 9])[::2], 3),
        ("no labels", torch.zeros(0, dtype=torch.long), 3),
    ]
    for what, labels, num_classes in cases:
        with case(what, labels=labels, num_classes=num_classes):
            got = ns.one_hot_scatter(labels, num_classes)
            assert_equal(got, F.one_hot(labels, num_classes))


@check("one_hot_scatter")
def one_hot_rejects_bad_labels(ns: Namespace) -> None:
    for labels in (torch.tensor([0, 3]), torch.tensor([-1, 1])):
        with case("labels outside [0, num_classes=3)", labels=labels):
            assert_raises(ns.one_hot_scatter, labels, 3, exc=ValueError)


# ----------------------------------------------------------------------------------------------
# segment_sum


def _segment_sums(values: Tensor, ids: Tensor, n: int) -> Tensor:
    return torch.stack([values[ids == s].sum(0) for s in range(n)])


@check("segment_sum")
def segment_sum_matches_masked_sums(ns: Namespace) -> None:
    cases = [
        (
            "7 rows of 3 features, 6 segments (some empty)",
            randn(7, 3, seed=40, dtype=torch.float64),
            randint(0, 4, 7, seed=41),
            6,
        ),
        ("1-D values", randn(5, seed=42), torch.tensor([2, 0, 2, 2, 1]), 3),
        ("integer values", torch.tensor([[1, 2], [3, 4], [5, 6]]), torch.tensor([1, 1, 0]), 2),
        (
            "a transposed (non-contiguous) 4x2",
            randn(2, 4, seed=43).t(),
            torch.tensor([0, 1, 0, 0]),
            2,
        ),
        ("no rows", torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 3),
    ]
    for what, values, ids, n in cases:
        with case(what, values=values, segment_ids=ids, num_segments=n):
            # floats compare with a tolerance (the order of additions may differ), ints exactly
            assert_close(ns.segment_sum(values, ids, n), _segment_sums(values, ids, n))


@check("segment_sum")
def segment_sum_rejects_mismatched_ids(ns: Namespace) -> None:
    values = torch.zeros(7, 3)
    for ids in (torch.zeros(6, dtype=torch.long), torch.zeros(7, 1, dtype=torch.long)):
        with case("segment_ids not of shape (7,)", values=values, segment_ids=ids):
            assert_raises(ns.segment_sum, values, ids, 2, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# segment_max


@check("segment_max")
def segment_max_matches_masked_max(ns: Namespace) -> None:
    cases = [
        (
            "9 rows of 2 features, 5 segments (some empty)",
            randn(9, 2, seed=50),
            randint(0, 3, 9, seed=51),
            5,
        ),
        (
            "all negative, float64, 3 features",
            -randn(6, 3, seed=52, dtype=torch.float64).abs() - 1,
            torch.tensor([1, 1, 0, 2, 2, 1]),
            3,
        ),
        ("ties, 1 feature", torch.tensor([[2.0], [2.0], [-1.0]]), torch.tensor([0, 0, 1]), 2),
        (
            "a transposed (non-contiguous) 4x3",
            randn(3, 4, seed=53).t(),
            torch.tensor([1, 0, 1, 1]),
            2,
        ),
        ("no rows", torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 2),
    ]
    for what, values, ids, n in cases:
        with case(what, values=values, segment_ids=ids, num_segments=n):
            empty = torch.full((values.shape[1],), -torch.inf, dtype=values.dtype)
            expected = torch.stack(
                [values[ids == s].amax(0) if bool((ids == s).any()) else empty for s in range(n)]
            )
            assert_equal(ns.segment_max(values, ids, n), expected)


# ----------------------------------------------------------------------------------------------
# gather_positions


@check("gather_positions")
def gather_positions_matches_indexing(ns: Namespace) -> None:
    cases = [
        (
            "batch 2, seq 5, d_model 3, 4 positions",
            randn(2, 5, 3, seed=60),
            randint(0, 5, 2, 4, seed=61),
        ),
        ("batch 1, seq 6, d_model 2", randn(1, 6, 2, seed=62), torch.tensor([[5, 0, 5]])),
        ("seq 2, d_model 7", randn(3, 2, 7, seed=63), torch.tensor([[1], [0], [1]])),
        (
            "a permuted (non-contiguous) x",
            randn(3, 2, 5, seed=64).permute(1, 2, 0),
            torch.tensor([[4, 0], [1, 1]]),
        ),
        ("no positions", randn(3, 4, 2, seed=65), torch.zeros(3, 0, dtype=torch.long)),
    ]
    for what, x, positions in cases:
        with case(what, x=x, positions=positions):
            expected = x[torch.arange(len(x))[:, None], positions]
            assert_equal(ns.gather_positions(x, positions), expected)


@check("gather_positions")
def gather_positions_rejects_bad_shapes(ns: Namespace) -> None:
    x = torch.zeros(2, 5, 3)
    for positions in (
        torch.zeros(3, 4, dtype=torch.long),
        torch.zeros(2, dtype=torch.long),
        torch.zeros(2, 4, 1, dtype=torch.long),
    ):
        with case("positions not of shape (batch=2, k)", x=x, positions=positions):
            assert_raises(ns.gather_positions, x, positions, exc=ShapeError)


@check("label_logprobs")
def label_logprobs_has_no_python_loop(ns: Namespace) -> None:
    with case("inputs of size 8 and of size 200 (counting Python lines and torch calls)"):
        assert_no_python_loop(
            ns.label_logprobs,
            lambda n: (torch.zeros(n, 5), torch.arange(n) % 5),
            what="label_logprobs",
        )
