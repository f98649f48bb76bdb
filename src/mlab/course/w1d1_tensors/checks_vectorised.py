"""Checks for part 6 of w1d1: vectorised algorithms, against the torch / numpy functions that
compute the same thing (``cummax``, ``bincount``, ``histc``, ``unique``, ``topk``, ``cdist``,
``np.convolve``, ``argsort``), a chi-square test for sampling, and a count of the Python lines
each function runs (it must not grow with the input)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_no_python_loop,
    assert_raises,
    assert_unchanged,
    case,
    chi_square_p_value,
    expect,
    generator,
    randint,
    randn,
)


def _no_loop(fn: Callable[..., Any], make_args: Callable[[int], tuple[Any, ...]]) -> None:
    with case("inputs of size 8 and of size 200 (counting Python lines run)"):
        assert_no_python_loop(fn, make_args)


# ----------------------------------------------------------------------------------------------
# two_sum_pairs


def _pairs_numpy(x: Tensor, target: int) -> Tensor:
    a = x.numpy()
    hits = np.triu(np.add.outer(a, a) == target, k=1)
    return torch.from_numpy(np.argwhere(hits).astype(np.int64)).reshape(-1, 2)


@check("two_sum_pairs")
def two_sum_matches_numpy(ns: Namespace) -> None:
    cases = [
        ("12 random integers in [-5, 5], target 0", randint(-5, 6, 12, seed=0), 0),
        ("12 random integers, target 3", randint(-5, 6, 12, seed=1), 3),
        ("x[i] + x[i] == target must not count", torch.tensor([1, 3, 2]), 4),
        ("all equal (every pair)", torch.tensor([2, 2, 2, 2]), 4),
        ("adjacent pairs only", torch.tensor([5, -5, 7, -7]), 0),
        ("no pair", torch.tensor([1, 2, 3]), 100),
        ("a stepped (non-contiguous) slice", torch.tensor([4, 0, -1, 0, 5, 0, 0])[::2], 4),
        ("one element", torch.tensor([2]), 4),
        ("empty", torch.zeros(0, dtype=torch.long), 0),
    ]
    for what, x, target in cases:
        with case(what, x=x, target=target):
            assert_equal(ns.two_sum_pairs(x, target), _pairs_numpy(x, target))


@check("two_sum_pairs")
def two_sum_rejects_matrices(ns: Namespace) -> None:
    x = torch.zeros(2, 3, dtype=torch.long)
    with case("a 2x3 matrix", x=x):
        assert_raises(ns.two_sum_pairs, x, 0, exc=ShapeError)


@check("two_sum_pairs")
def two_sum_has_no_python_loop(ns: Namespace) -> None:
    _no_loop(ns.two_sum_pairs, lambda n: (randint(0, 10, n, seed=n), 9))


# ----------------------------------------------------------------------------------------------
# running_max


@check("running_max")
def running_max_matches_cummax(ns: Namespace) -> None:
    cases = [
        ("10 random floats", randn(10, seed=10)),
        ("increasing", torch.arange(6.0)),
        ("decreasing", torch.arange(6.0).flip(0)),
        ("ties and negatives", torch.tensor([-3.0, -3.0, -5.0, -1.0, -1.0, -2.0])),
        ("integers", torch.tensor([2, 1, 4, 4, 0, 7, 3])),
        ("a stepped (non-contiguous) slice", randn(15, seed=11)[::3]),
        ("one element", torch.tensor([-2.5])),
        ("empty", torch.zeros(0)),
    ]
    for what, x in cases:
        with case(what, x=x):
            assert_equal(ns.running_max(x), torch.cummax(x, dim=0).values)


@check("running_max")
def running_max_has_no_python_loop(ns: Namespace) -> None:
    _no_loop(ns.running_max, lambda n: (randn(n, seed=n),))


# ----------------------------------------------------------------------------------------------
# bincount


@check("bincount")
def bincount_matches_torch(ns: Namespace) -> None:
    cases = [
        ("20 values in [0, 7)", randint(0, 7, 20, seed=20), 0),
        ("minlength larger than max + 1", torch.tensor([1, 3, 1]), 9),
        ("minlength smaller than max + 1", torch.tensor([0, 5, 5]), 2),
        ("only zeros", torch.zeros(4, dtype=torch.long), 0),
        ("a stepped (non-contiguous) slice", torch.tensor([2, 9, 2, 9, 0, 9])[::2], 0),
        ("empty", torch.zeros(0, dtype=torch.long), 0),
        ("empty with minlength 4", torch.zeros(0, dtype=torch.long), 4),
        ("int32 values (the counts are still int64)", randint(0, 5, 12, seed=21).int(), 0),
        (
            "uint8 values, 300 of them equal: more than a uint8 count can hold",
            torch.tensor([2] * 300 + [0, 5], dtype=torch.uint8),
            0,
        ),
    ]
    for what, x, minlength in cases:
        with case(what, x=x, minlength=minlength):
            assert_equal(ns.bincount(x, minlength), torch.bincount(x, minlength=minlength))


@check("bincount")
def bincount_rejects_negatives(ns: Namespace) -> None:
    x = torch.tensor([3, -1, 2])
    with case("a negative value", x=x):
        assert_raises(ns.bincount, x, 0, exc=ValueError)


@check("bincount")
def bincount_has_no_python_loop(ns: Namespace) -> None:
    _no_loop(ns.bincount, lambda n: (randint(0, 10, n, seed=n), 0))


# ----------------------------------------------------------------------------------------------
# histogram


@check("histogram")
def histogram_matches_histc(ns: Namespace) -> None:
    # dyadic values on the bin edges: exact in floating point, so the bin is unambiguous
    edges = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.0, -1.0, 1.75, -1.25, 2.25])
    cases = [
        (
            "100 values in [-1.5, 2.5], bins over [-1, 2]",
            randn(100, seed=30) * 1.2 + 0.5,
            6,
            -1.0,
            2.0,
        ),
        ("values exactly on the edges and outside", edges, 6, -1.0, 2.0),
        ("one bin", edges, 1, -1.0, 2.0),
        ("float64, [0.5, 4]", randn(50, seed=31, dtype=torch.float64).abs() * 3, 7, 0.5, 4.0),
        ("a stepped (non-contiguous) slice", edges[::2], 3, -1.0, 2.0),
        ("empty", torch.zeros(0), 4, 0.0, 1.0),
        (
            "ten bins over [0, 1]: the width 0.1 is not exact in binary, 0.5 is on an edge",
            torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]),
            10,
            0.0,
            1.0,
        ),
    ]
    for what, x, bins, lo, hi in cases:
        with case(what, x=x, bins=bins, lo=lo, hi=hi):
            expected = torch.histc(x, bins=bins, min=lo, max=hi).long()
            before = x.clone()
            assert_equal(ns.histogram(x, bins, lo, hi), expected)
            assert_unchanged(x, before)


@check("histogram")
def histogram_rejects_bad_ranges(ns: Namespace) -> None:
    x = torch.zeros(3)
    for bins, lo, hi in ((0, 0.0, 1.0), (3, 1.0, 1.0), (3, 2.0, 1.0)):
        with case(f"bins={bins}, lo={lo}, hi={hi}", x=x):
            assert_raises(ns.histogram, x, bins, lo, hi, exc=ValueError)


@check("histogram")
def histogram_has_no_python_loop(ns: Namespace) -> None:
    _no_loop(ns.histogram, lambda n: (randn(n, seed=n), 5, -1.0, 1.0))


# ----------------------------------------------------------------------------------------------
# count_uniques


@check("count_uniques")
def count_uniques_matches_torch_unique(ns: Namespace) -> None:
    cases = [
        ("30 integers in [-3, 4)", randint(-3, 4, 30, seed=40)),
        ("all equal", torch.full((5,), 7)),
        ("all distinct, unsorted", torch.tensor([4, -2, 9, 0])),
        ("floats with repeats", torch.tensor([0.5, -1.0, 0.5, 2.0, -1.0, 0.5])),
        ("a stepped (non-contiguous) slice", torch.tensor([3, 0, 1, 0, 3, 0, 3])[::2]),
        ("one element", torch.tensor([6])),
        ("empty", torch.zeros(0, dtype=torch.long)),
        (
            "bfloat16, one value 300 times: a count of 300 is not a bfloat16 number",
            torch.tensor([1.5] * 300 + [0.25], dtype=torch.bfloat16),
        ),
    ]
    for what, x in cases:
        with case(what, x=x):
            values, counts = torch.unique(x, sorted=True, return_counts=True)
            assert_equal(tuple(ns.count_uniques(x)), (values, counts))


@check("count_uniques")
def count_uniques_has_no_python_loop(ns: Namespace) -> None:
    _no_loop(ns.count_uniques, lambda n: (randint(0, 6, n, seed=n),))


# ----------------------------------------------------------------------------------------------
# topk_accuracy


def _topk_reference(logits: Tensor, labels: Tensor, k: int) -> float:
    hits = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return float(hits.sum()) / len(labels)


@check("topk_accuracy")
def topk_accuracy_matches_topk(ns: Namespace) -> None:
    logits, labels = randn(60, 7, seed=50), randint(0, 7, 60, seed=51)
    for k in range(1, 8):
        with case(f"60 rows, 7 classes, k={k}", logits=logits, labels=labels):
            got = ns.topk_accuracy(logits, labels, k)
            expect(isinstance(got, float), f"expected a Python float, got {type(got).__name__}")
            assert_close(got, _topk_reference(logits, labels, k))
    lt = randn(5, 4, seed=52).t()
    label = torch.tensor([0, 1, 2, 3])
    with case("a transposed (non-contiguous) 4x5, k=2", logits=lt, labels=label):
        assert_close(ns.topk_accuracy(lt, label, 2), _topk_reference(lt, label, 2))


@check("topk_accuracy")
def topk_accuracy_counts_ties_for_the_label(ns: Namespace) -> None:
    cases = [
        ("label tied for first, k=1", torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([1]), 1, 1.0),
        (
            "one class strictly higher, k=1",
            torch.tensor([[3.0, 1.0, 1.0]]),
            torch.tensor([2]),
            1,
            0.0,
        ),
        (
            "one class strictly higher, ties, k=2",
            torch.tensor([[3.0, 1.0, 1.0]]),
            torch.tensor([2]),
            2,
            1.0,
        ),
    ]
    for what, logits, labels, k, expected in cases:
        with case(what, logits=logits, labels=labels, k=k):
            assert_close(ns.topk_accuracy(logits, labels, k), expected)


@check("topk_accuracy")
def topk_accuracy_rejects_bad_k(ns: Namespace) -> None:
    logits, labels = torch.zeros(3, 4), torch.zeros(3, dtype=torch.long)
    for k in (0, 5):
        with case(f"k={k} with 4 classes", logits=logits, labels=labels):
            assert_raises(ns.topk_accuracy, logits, labels, k, exc=ValueError)


@check("topk_accuracy")
def topk_accuracy_has_no_python_loop(ns: Namespace) -> None:
    _no_loop(ns.topk_accuracy, lambda n: (randn(n, 5, seed=n), randint(0, 5, n, seed=n), 2))


# ----------------------------------------------------------------------------------------------
# pairwise_distances


@check("pairwise_distances")
def distances_match_cdist(ns: Namespace) -> None:
    cases = [
        (
            "4x3 and 5x3, float64",
            randn(4, 3, seed=60, dtype=torch.float64),
            randn(5, 3, seed=61, dtype=torch.float64),
        ),
        ("6x2 and 2x2, float32", randn(6, 2, seed=62), randn(2, 2, seed=63)),
        ("a point to itself", torch.tensor([[1.0, -2.0]]), torch.tensor([[1.0, -2.0]])),
        (
            "transposed (non-contiguous) inputs",
            randn(3, 4, seed=64).t(),
            randn(3, 2, seed=65).t(),
        ),
        ("no rows in x", torch.zeros(0, 3), randn(2, 3, seed=66)),
    ]
    for what, x, y in cases:
        with case(what, x=x, y=y):
            expected = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
            assert_close(ns.pairwise_distances(x, y), expected)


@check("pairwise_distances")
def distances_of_points_to_themselves_are_zero_not_nan(ns: Namespace) -> None:
    # In float32, ||a||^2 + ||a||^2 - 2 a.a rounds below zero for some of these rows; a
    # square root of it would be NaN.
    x = 3 * randn(20, 5, seed=0)
    with case("20 float32 points against themselves", x=x):
        got = ns.pairwise_distances(x, x)
        expect(
            not bool(torch.isnan(got).any()),
            f"{int(torch.isnan(got).sum())} distances are NaN: a squared distance that rounds "
            "slightly below 0 must be clamped at 0 before the square root",
        )
        assert_close(got.diagonal(), torch.zeros(20), atol=1e-2, what="distance to itself")


@check("pairwise_distances")
def distances_reject_mismatched_features(ns: Namespace) -> None:
    x, y = torch.zeros(4, 3), torch.zeros(5, 2)
    with case("rows of length 3 and 2", x=x, y=y):
        assert_raises(ns.pairwise_distances, x, y, exc=ShapeError)


@check("pairwise_distances")
def distances_have_no_python_loop(ns: Namespace) -> None:
    _no_loop(ns.pairwise_distances, lambda n: (randn(n, 3, seed=n), randn(n, 3, seed=n + 1)))


# ----------------------------------------------------------------------------------------------
# sample_categorical


def _inverse_cdf_numpy(probs: Tensor, u: Tensor) -> Tensor:
    """For each u, the first class whose cumulative probability exceeds u * total."""
    cdf = np.cumsum(probs.double().numpy(), axis=1)
    v = u.double().numpy() * cdf[:, -1:]
    out = [
        [int(np.argmax(row_cdf > x)) for x in row_v] for row_cdf, row_v in zip(cdf, v, strict=True)
    ]
    return torch.tensor(out, dtype=torch.int64).reshape(u.shape)


@check("categorical_from_uniform")
def inverse_cdf_picks_the_right_class(ns: Namespace) -> None:
    # dyadic probabilities: the cumulative sums are exact, so u on a boundary is unambiguous
    probs = torch.tensor([[0.25, 0.25, 0.0, 0.5], [0.0, 0.5, 0.5, 0.0], [1.0, 3.0, 0.0, 4.0]])
    u = torch.tensor(
        [
            [0.0, 0.24, 0.25, 0.49, 0.5, 0.75, 0.999],
            [0.0, 0.1, 0.5, 0.51, 0.99, 0.25, 0.75],
            [0.0, 0.125, 0.124, 0.5, 0.49, 0.6, 0.9999],
        ]
    )
    cases = [
        (
            "u on and between the boundaries; zero-probability classes first, inside and last",
            probs,
            u,
        ),
        (
            "random u, 6 rows of 5 classes",
            torch.rand(6, 5, generator=generator(55)),
            torch.rand(6, 9, generator=generator(56)),
        ),
        (
            "float64, one class",
            torch.ones(2, 1, dtype=torch.float64),
            torch.rand(2, 3, generator=generator(57), dtype=torch.float64),
        ),
        (
            "a transposed (non-contiguous) probs",
            torch.rand(4, 3, generator=generator(58)).t(),
            torch.rand(3, 4, generator=generator(59)),
        ),
        ("no samples", probs, torch.zeros(3, 0)),
    ]
    for what, p, uu in cases:
        with case(what, probs=p, u=uu):
            assert_equal(ns.categorical_from_uniform(p, uu), _inverse_cdf_numpy(p, uu))


@check("categorical_from_uniform")
def inverse_cdf_rejects_bad_input(ns: Namespace) -> None:
    probs, u = torch.full((2, 3), 1 / 3), torch.zeros(2, 5)
    bad_shapes = [
        ("1-D probs", probs[0], u[:1]),
        ("1-D u", probs, u[0]),
        ("3 rows of u for 2 rows of probs", probs, torch.zeros(3, 5)),
    ]
    for what, p, uu in bad_shapes:
        with case(what, probs=p, u=uu):
            assert_raises(ns.categorical_from_uniform, p, uu, exc=ShapeError)
    bad = torch.tensor([[0.5, -0.1, 0.6], [0.0, 0.0, 1.0]])
    with case("a negative probability", probs=bad):
        assert_raises(ns.categorical_from_uniform, bad, u, exc=ValueError)


@check("categorical_from_uniform")
def inverse_cdf_has_no_python_loop(ns: Namespace) -> None:
    _no_loop(
        ns.categorical_from_uniform,
        lambda n: (
            torch.rand(n, 4, generator=generator(n)),
            torch.rand(n, 3, generator=generator(n + 1)),
        ),
    )


# rows chosen so that zero-probability classes sit first, inside and last, and one row is not
# normalised (it sums to 3)
_PROBS = torch.tensor(
    [
        [0.1, 0.2, 0.3, 0.4],
        [0.0, 0.5, 0.0, 0.5],
        [0.7, 0.0, 0.3, 0.0],
        [0.6, 0.6, 0.3, 1.5],
        [0.0, 0.0, 1.0, 0.0],
    ]
)


@check("sample_categorical")
def samples_have_shape_dtype_and_range(ns: Namespace) -> None:
    with case("5 rows of 4 classes, 7 samples each", probs=_PROBS):
        out = ns.sample_categorical(_PROBS, 7, generator(0))
        assert_equal(tuple(out.shape), (5, 7), what="shape")
        assert_equal(out.dtype, torch.int64, what="dtype")
        expect(bool(((out >= 0) & (out < 4)).all()), f"samples outside 0..3: {out.tolist()}")
    with case("no generator (the global one)", probs=_PROBS):
        assert_equal(tuple(ns.sample_categorical(_PROBS, 3).shape), (5, 3), what="shape")


@check("sample_categorical")
def samples_follow_the_distribution(ns: Namespace) -> None:
    n = 20_000
    samples = ns.sample_categorical(_PROBS, n, generator(1))
    for row, probs in enumerate(_PROBS):
        with case(f"row {row} of probs, {n} samples with generator seed 1", probs=probs):
            counts = torch.bincount(samples[row], minlength=4)
            never = counts[probs == 0]
            expect(
                bool((never == 0).all()),
                f"classes of probability 0 were drawn: counts {counts.tolist()} for probs "
                f"{probs.tolist()}",
            )
            p = chi_square_p_value(counts, probs)
            expect(
                p >= 1e-3,
                f"counts {counts.tolist()} do not fit probs {probs.tolist()} (normalised by "
                f"their sum): chi-square p-value {p:.2g} < 1e-3",
            )


@check("sample_categorical")
def samples_come_from_the_generator(ns: Namespace) -> None:
    probs = _PROBS[:1]
    with case("two generators with the same seed", probs=probs):
        a = ns.sample_categorical(probs, 50, generator(7))
        b = ns.sample_categorical(probs, 50, generator(7))
        assert_equal(a, b, what="second draw")
        c = ns.sample_categorical(probs, 50, generator(8))
        expect(not torch.equal(a, c), "generators with seeds 7 and 8 gave identical samples")


@check("sample_categorical")
def sampling_rejects_bad_probs(ns: Namespace) -> None:
    with case("1-D probs", probs=_PROBS[0]):
        assert_raises(ns.sample_categorical, _PROBS[0], 3, generator(0), exc=ShapeError)
    bad = torch.tensor([[0.5, -0.1, 0.6]])
    with case("a negative probability", probs=bad):
        assert_raises(ns.sample_categorical, bad, 3, generator(0), exc=ValueError)


@check("sample_categorical")
def sampling_has_no_python_loop(ns: Namespace) -> None:
    _no_loop(
        ns.sample_categorical, lambda n: (torch.rand(n, 4, generator=generator(n)), n, generator(0))
    )


# ----------------------------------------------------------------------------------------------
# moving_average


@check("moving_average")
def moving_average_matches_convolve(ns: Namespace) -> None:
    x = randn(10, seed=70, dtype=torch.float64)
    cases = [
        *[(f"10 values, window {w}", x, w) for w in (1, 3, 4, 10)],
        ("a stepped (non-contiguous) slice, window 2", x[::3], 2),
        ("float32, window 5", randn(40, seed=71) + 3, 5),
        ("3 rows of 6, window 2", randn(3, 6, seed=72, dtype=torch.float64), 2),
        (
            "a (2, 3, 5) batch, transposed (non-contiguous), window 4",
            randn(2, 5, 3, seed=73, dtype=torch.float64).transpose(1, 2),
            4,
        ),
    ]
    for what, v, window in cases:
        with case(what, x=v, window=window):
            rows = v.double().reshape(-1, v.shape[-1]).numpy()
            kernel = np.ones(window) / window
            expected = np.stack([np.convolve(row, kernel, "valid") for row in rows])
            expected_t = torch.from_numpy(expected).reshape(*v.shape[:-1], -1).to(v.dtype)
            tol = 1e-5 if v.dtype == torch.float32 else 1e-10
            before = v.clone()
            assert_close(ns.moving_average(v, window), expected_t, rtol=tol, atol=tol)
            assert_unchanged(v, before)


@check("moving_average")
def moving_average_rejects_bad_windows(ns: Namespace) -> None:
    x = torch.arange(5.0)
    for v, window in ((x, 0), (x, 6), (torch.zeros(0), 1), (torch.zeros(6, 3), 4)):
        with case(f"window={window} for {v.shape[-1]} values per row", x=v):
            assert_raises(ns.moving_average, v, window, exc=ValueError)


@check("moving_average")
def moving_average_has_no_python_loop(ns: Namespace) -> None:
    _no_loop(ns.moving_average, lambda n: (randn(n, seed=n), 4))


# ----------------------------------------------------------------------------------------------
# first_nonzero


def _first_nonzero_numpy(x: Tensor) -> Tensor:
    out = [int(np.flatnonzero(row)[0]) if row.any() else -1 for row in x.numpy()]
    return torch.tensor(out, dtype=torch.int64)


@check("first_nonzero")
def first_nonzero_matches_numpy(ns: Namespace) -> None:
    m = randint(-1, 2, 5, 7, seed=80) * randint(0, 2, 5, 7, seed=81)
    m[2] = 0  # a row of zeros
    m[3, 0] = 1  # a row starting with a nonzero
    cases = [
        ("a 5x7 integer matrix with zeros, ones and negatives", m),
        (
            "floats, a nonzero only in the last column",
            torch.tensor([[0.0, 0.0, 0.5], [-2.0, 0.0, 0.0]]),
        ),
        ("a transposed (non-contiguous) matrix", m.t()),
        ("no rows", torch.zeros(0, 4)),
        ("no columns", torch.zeros(3, 0)),
    ]
    for what, x in cases:
        with case(what, x=x):
            assert_equal(ns.first_nonzero(x), _first_nonzero_numpy(x))


@check("first_nonzero")
def first_nonzero_rejects_non_matrices(ns: Namespace) -> None:
    for x in (torch.ones(4), torch.ones(2, 3, 4)):
        with case("not a matrix", x=x):
            assert_raises(ns.first_nonzero, x, exc=ShapeError)


@check("first_nonzero")
def first_nonzero_has_no_python_loop(ns: Namespace) -> None:
    _no_loop(ns.first_nonzero, lambda n: (randint(0, 2, n, 6, seed=n),))


# ----------------------------------------------------------------------------------------------
# inverse_permutation


@check("inverse_permutation")
def inverse_matches_argsort(ns: Namespace) -> None:
    cases = [
        ("a random permutation of 10", torch.randperm(10, generator=generator(90))),
        ("the reversal", torch.arange(6).flip(0)),
        ("the identity", torch.arange(4)),
        (
            "a (non-contiguous) column of a matrix",
            torch.stack([torch.randperm(5, generator=generator(91)), torch.arange(5)], dim=1)[:, 0],
        ),
        ("one element", torch.tensor([0])),
        ("empty", torch.zeros(0, dtype=torch.long)),
    ]
    for what, perm in cases:
        with case(what, perm=perm):
            inv = ns.inverse_permutation(perm)
            assert_equal(inv, torch.argsort(perm))


@check("inverse_permutation")
def inverse_rejects_non_permutations(ns: Namespace) -> None:
    for perm in (torch.tensor([0, 0, 1]), torch.tensor([1, 2, 3]), torch.tensor([0, 2])):
        with case("not a permutation of 0..n-1", perm=perm):
            assert_raises(ns.inverse_permutation, perm, exc=ValueError)


@check("inverse_permutation")
def inverse_has_no_python_loop(ns: Namespace) -> None:
    _no_loop(ns.inverse_permutation, lambda n: (torch.randperm(n, generator=generator(n)),))
