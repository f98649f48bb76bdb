"""Checks for part 3 of w1d1: elementwise operations and reductions, against torch and numpy
computing the same things (torch.logsumexp, torch.softmax, layer_norm, cdist, masked arrays)."""

from __future__ import annotations

import numpy as np
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
    assert_unchanged,
    case,
    generator,
)


def _tensors(seed: int) -> list[tuple[str, Tensor]]:
    """Tensors of several ranks, shapes and layouts, values of both signs."""
    g = generator(seed)
    base = torch.randn(6, 8, 5, generator=g) * 3
    return [
        ("a 3x5 matrix", base[0, :3].clone()),
        ("a 5x3 matrix", base[1, :5, :3].clone()),
        ("a 2x3x4 tensor", base[:2, :3, :4].clone()),
        ("a 4x6 matrix, transposed (non-contiguous)", base[2, :6, :4].t()),
        ("x[::2, 1::3] of a 6x8x5 tensor (strided)", base[::2, 1::3]),
        ("a 1x4 matrix", base[3, :1, :4].clone()),
        ("a 4x1 matrix", base[3, :4, :1].clone()),
        ("a 7-vector", base[4, :7, 0].clone()),
    ]


def _large(seed: int) -> list[tuple[str, Tensor]]:
    """Inputs whose naive exponentials overflow or underflow in float32."""
    g = generator(seed)
    big = torch.randn(3, 4, generator=g) * 10 + 1000
    return [
        ("values around +1000", big),
        ("values around -1000", -big),
        (
            "a 2x3 matrix mixing 1000, -1000 and 0",
            torch.tensor([[1000.0, -1000.0, 0.0], [-1000.0, 999.0, 1000.0]]),
        ),
        ("values around 90 (exp overflows float32)", torch.tensor([[88.0, 90.0, 95.0, 89.5]])),
    ]


# ----------------------------------------------------------------------------------------------
# column_mean_std


@check("column_mean_std")
def column_stats_match_numpy(ns: Namespace) -> None:
    g = generator(1)
    offset = torch.randn(6, 3, generator=g) + torch.tensor([1000.0, -3000.0, 0.0])
    matrices = [m for m in _tensors(1) if m[1].ndim == 2]
    matrices += [
        ("a 6x3 matrix with means 1000 and -3000 (cancellation)", offset),
        ("a 1x4 matrix (one row)", torch.tensor([[1.0, -2.0, 3.0, 0.5]])),
    ]
    for name, x in matrices:
        a = x.double().numpy()
        expected = (
            torch.from_numpy(a.mean(axis=0, keepdims=True)).float(),
            torch.from_numpy(a.std(axis=0, ddof=0, keepdims=True)).float(),
        )
        before = x.clone()
        with case(name, x=x):
            mean, std = ns.column_mean_std(x)
            assert_close(mean, expected[0], what="mean")
            assert_close(std, expected[1], what="std", rtol=1e-5)
            assert_unchanged(x, before)


@check("column_mean_std")
def column_stats_reject_bad_shapes(ns: Namespace) -> None:
    for shape in [(5,), (2, 3, 4), (0, 3)]:
        with case(f"shape {shape}"):
            assert_raises(ns.column_mean_std, torch.ones(shape), exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# masked_mean


@check("masked_mean")
def masked_mean_matches_numpy_masked_arrays(ns: Namespace) -> None:
    g = generator(2)
    garbage = torch.randn(4, 5, generator=g)
    garbage_mask = torch.tensor(
        [
            [True, False, True, True, False],
            [False] * 5,
            [True, True, True, True, True],
            [False, False, True, False, False],
        ]
    )
    garbage[~garbage_mask] = torch.tensor([torch.nan, torch.inf, -torch.inf] * 4)[:11]
    cases = [
        (name, x, torch.rand(x.shape, generator=g) < 0.6) for name, x in _tensors(2) if x.ndim == 2
    ]
    cases += [
        ("padding holding NaN and inf; an all-False row", garbage, garbage_mask),
        ("a mask with one True per row", torch.randn(3, 4, generator=g), torch.eye(3, 4).bool()),
        ("an empty batch", torch.zeros(0, 4), torch.zeros(0, 4, dtype=torch.bool)),
    ]
    for name, x, mask in cases:
        before = x.clone()
        masked = np.ma.masked_array(x.double().numpy(), mask=~mask.numpy())
        expected = torch.from_numpy(np.ma.filled(masked.mean(axis=1), 0.0)).float()
        with case(name, x=x, mask=mask):
            assert_close(ns.masked_mean(x, mask), expected)
            assert_unchanged(x, before)


@check("masked_mean")
def masked_mean_rejects_bad_shapes(ns: Namespace) -> None:
    x = torch.zeros(3, 4)
    for name, t, mask in [
        ("a 4x3 mask for a 3x4 x", x, torch.ones(4, 3, dtype=torch.bool)),
        ("a 3x1 mask for a 3x4 x", x, torch.ones(3, 1, dtype=torch.bool)),
        ("a 1-D x", torch.zeros(4), torch.ones(4, dtype=torch.bool)),
        ("a 3-D x", torch.zeros(2, 3, 4), torch.ones(2, 3, 4, dtype=torch.bool)),
    ]:
        with case(name, x=t, mask=mask):
            assert_raises(ns.masked_mean, t, mask, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# running_mean


@check("running_mean")
def running_mean_matches_prefix_means(ns: Namespace) -> None:
    for name, x in [*_tensors(3), ("a 3x0 tensor", torch.zeros(3, 0))]:
        a = x.double().numpy()
        n = a.shape[-1]
        prefix = [a[..., : i + 1].mean(axis=-1) for i in range(n)]
        expected = torch.from_numpy(np.stack(prefix, axis=-1) if n else a).float()
        before = x.clone()
        with case(name, x=x):
            assert_close(ns.running_mean(x), expected)
            assert_unchanged(x, before)


# ----------------------------------------------------------------------------------------------
# argmax_one_hot


@check("argmax_one_hot")
def one_hot_matches_torch(ns: Namespace) -> None:
    ties = torch.tensor(
        [[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [-torch.inf, -5.0, -5.0, -6.0]]
    )
    matrices = [m for m in _tensors(4) if m[1].ndim == 2]
    matrices += [
        ("rows with ties", ties),
        ("large values", _large(4)[0][1]),
        ("an empty batch of 0 rows", torch.zeros(0, 3)),
    ]
    for name, x in matrices:
        with case(name, x=x):
            assert_equal(ns.argmax_one_hot(x), F.one_hot(x.argmax(dim=1), x.shape[1]))


@check("argmax_one_hot")
def one_hot_rejects_non_matrices(ns: Namespace) -> None:
    for shape in [(4,), (2, 3, 4)]:
        with case(f"shape {shape}"):
            assert_raises(ns.argmax_one_hot, torch.ones(shape), exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# pairwise_sq_distances


@check("pairwise_sq_distances")
def distances_match_cdist(ns: Namespace) -> None:
    g = generator(5)
    base = torch.randn(12, 6, generator=g)
    cases = [
        ("4x3 and 5x3 points", base[:4, :3].clone(), base[4:9, :3].clone()),
        ("5x2 and 1x2 points", base[:5, :2].clone(), base[9:10, :2].clone()),
        ("strided 6x3 points and transposed 2x3 points", base[::2, ::2], base[:3, :2].t()),
        ("3x1 and 4x1 points", base[:3, :1].clone(), base[3:7, 5:6].clone()),
        ("no points and 3x4 points", base[:0, :4], base[:3, :4]),
    ]
    for name, a, b in cases:
        expected = (torch.cdist(a.double(), b.double()) ** 2).float()
        with case(name, a=a, b=b):
            assert_close(ns.pairwise_sq_distances(a, b), expected, atol=1e-5, rtol=1e-5)


@check("pairwise_sq_distances")
def distances_reject_bad_shapes(ns: Namespace) -> None:
    for name, a, b in [
        ("(3, 2) and (4, 3)", torch.zeros(3, 2), torch.zeros(4, 3)),
        ("(3,) and (4, 3)", torch.zeros(3), torch.zeros(4, 3)),
        ("(4, 3) and (3,)", torch.zeros(4, 3), torch.zeros(3)),
        ("(3, 3) and (4, 2)", torch.zeros(3, 3), torch.zeros(4, 2)),
        ("(2, 4, 3) and (4, 3)", torch.zeros(2, 4, 3), torch.zeros(4, 3)),
        ("(4, 3) and (2, 4, 3)", torch.zeros(4, 3), torch.zeros(2, 4, 3)),
    ]:
        with case(name, a=a, b=b):
            assert_raises(ns.pairwise_sq_distances, a, b, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# logsumexp, softmax, log_softmax


def _infinite_rows() -> Tensor:
    inf = torch.inf
    return torch.tensor([[-inf, -inf, -inf], [inf, 1.0, 2.0], [1.0, -inf, 3.0], [-inf, 2.0, inf]])


def _all_dims(
    ns_fn_name: str, ns: Namespace, reference: object, inputs: list[tuple[str, Tensor]]
) -> None:
    fn = getattr(ns, ns_fn_name)
    for name, x in inputs:
        for dim in range(-x.ndim, x.ndim):
            if x.shape[dim] == 0:  # nothing to normalise over; other dims may be empty
                continue
            before = x.clone()
            with case(f"{name}, dim={dim}", x=x):
                assert_close(fn(x, dim), reference(x, dim), equal_nan=True)  # type: ignore[operator]
                assert_unchanged(x, before)


@check("logsumexp")
def logsumexp_matches_torch(ns: Namespace) -> None:
    inputs = [*_tensors(6), ("a 0x3 tensor", torch.zeros(0, 3))]
    for name, x in inputs:
        for dim in range(-x.ndim, x.ndim):
            if x.shape[dim] == 0:
                continue
            with case(f"{name}, dim={dim}", x=x):
                assert_close(ns.logsumexp(x, dim), torch.logsumexp(x, dim))


@check("logsumexp")
def logsumexp_is_stable(ns: Namespace) -> None:
    _all_dims("logsumexp", ns, torch.logsumexp, _large(7))


@check("logsumexp")
def logsumexp_handles_infinities(ns: Namespace) -> None:
    x = _infinite_rows()
    with case("rows of all -inf, with +inf, with -inf", x=x):
        assert_close(ns.logsumexp(x, 1), torch.logsumexp(x, 1))


@check("logsumexp")
def logsumexp_rejects_empty_dims(ns: Namespace) -> None:
    x = torch.zeros(3, 0)
    with case("a 3x0 tensor, dim=1", x=x):
        assert_raises(ns.logsumexp, x, 1, exc=ShapeError)


@check("softmax")
def softmax_matches_torch(ns: Namespace) -> None:
    _all_dims("softmax", ns, torch.softmax, [*_tensors(8), ("a 0x3 tensor", torch.zeros(0, 3))])


@check("softmax")
def softmax_is_stable(ns: Namespace) -> None:
    x = _infinite_rows()[2:]
    _all_dims("softmax", ns, torch.softmax, [*_large(9), ("rows holding -inf (masked)", x[:1])])


@check("log_softmax")
def log_softmax_matches_torch(ns: Namespace) -> None:
    _all_dims(
        "log_softmax", ns, torch.log_softmax, [*_tensors(10), ("a 0x3 tensor", torch.zeros(0, 3))]
    )


@check("log_softmax")
def log_softmax_is_stable(ns: Namespace) -> None:
    x = _infinite_rows()[2:]
    _all_dims(
        "log_softmax", ns, torch.log_softmax, [*_large(11), ("rows holding -inf (masked)", x[:1])]
    )


# ----------------------------------------------------------------------------------------------
# standardise


def _layer_norm_along(x: Tensor, dim: int, eps: float) -> Tensor:
    """torch's layer_norm over ``dim`` alone, computed in float64 and rounded to x's dtype."""
    moved = x.double().movedim(dim, -1)
    return F.layer_norm(moved, moved.shape[-1:], eps=eps).movedim(-1, dim).to(x.dtype)


@check("standardise")
def standardise_matches_layer_norm(ns: Namespace) -> None:
    g = generator(12)
    shifted = torch.randn(5, 4, generator=g) + 100.0
    inputs = [*_tensors(12), ("a 5x4 matrix with mean 100 and spread 1", shifted)]
    for name, x in inputs:
        for dim in range(-x.ndim, x.ndim):
            for eps in (1e-5, 0.5):
                before = x.clone()
                with case(f"{name}, dim={dim}, eps={eps}", x=x):
                    got = ns.standardise(x, dim, eps)
                    assert_close(got, _layer_norm_along(x, dim, eps), rtol=1e-4, atol=1e-4)
                    assert_unchanged(x, before)


@check("standardise")
def standardise_eps_defaults_to_1e_5(ns: Namespace) -> None:
    x = torch.tensor([[0.0, 0.002, 0.004], [1.0, -1.0, 0.0]])
    with case("small spread, eps not given", x=x):
        assert_close(ns.standardise(x, 1), _layer_norm_along(x, 1, 1e-5), rtol=1e-4, atol=1e-4)


@check("running_mean")
def running_mean_has_no_python_loop(ns: Namespace) -> None:
    with case("inputs of size 8 and of size 200 (counting Python lines and torch calls)"):
        assert_no_python_loop(
            ns.running_mean,
            lambda n: (torch.arange(float(2 * n)).reshape(2, n),),
            what="running_mean",
        )


@check("pairwise_sq_distances")
def pairwise_sq_distances_has_no_python_loop(ns: Namespace) -> None:
    with case("inputs of size 8 and of size 200 (counting Python lines and torch calls)"):
        assert_no_python_loop(
            ns.pairwise_sq_distances,
            lambda n: (torch.ones(n, 3), torch.zeros(n, 3)),
            what="pairwise_sq_distances",
        )
