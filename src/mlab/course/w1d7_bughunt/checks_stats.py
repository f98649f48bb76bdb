"""Checks for part 1 of w1d7: the statistics a network-debugging tool shows about a tensor.

Every expected value is computed here with numpy on a float64 copy of the input
(``numpy.nanmean``-style masks, ``numpy.std`` with ``ddof=0``, ``numpy.histogram`` itself), on
tensors built to hit the edge cases: NaN and ±inf mixed in, all NaN, empty, one element,
integer and half-precision dtypes, non-contiguous layouts, values exactly on a saturation bound
or a bin edge, and tensors that require grad."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlab.course.engine.checks import Namespace, check
from mlab.errors import MismatchError
from mlab.inspect.stats import TensorStats
from mlab.testing import assert_close, assert_equal, assert_raises, assert_unchanged, case, expect

__all__ = ["as_numpy", "assert_same_stats", "numpy_stats"]

F64 = torch.float64
NAN, INF = math.nan, math.inf


def as_numpy(x: Tensor) -> np.ndarray:
    """``x``'s values as a flat float64 numpy array, in row-major order of its logical shape."""
    return x.detach().to("cpu", F64).contiguous().numpy().ravel().copy()


def numpy_stats(x: Tensor, saturation: tuple[float, float] | None = None) -> TensorStats:
    """What ``tensor_stats`` should return, computed with numpy."""
    a = as_numpy(x)
    finite = a[np.isfinite(a)]
    n = a.size
    some = finite.size > 0
    saturated = 0.0
    if saturation is not None and n:
        lo, hi = saturation
        saturated = float(np.count_nonzero((a <= lo) | (a >= hi))) / n
    return TensorStats(
        numel=n,
        mean=float(np.mean(finite)) if some else 0.0,
        std=float(np.std(finite)) if some else 0.0,
        norm=float(np.sqrt(np.sum(finite * finite))) if some else 0.0,
        abs_max=float(np.max(np.abs(finite))) if some else 0.0,
        frac_zero=float(np.count_nonzero(a == 0)) / n if n else 0.0,
        frac_saturated=saturated,
        n_nan=int(np.count_nonzero(np.isnan(a))),
        n_inf=int(np.count_nonzero(np.isinf(a))),
    )


_INT_FIELDS = ("numel", "n_nan", "n_inf")


def assert_same_stats(got: Any, want: TensorStats, what: str = "result") -> None:
    """``got`` is a ``TensorStats`` equal to ``want``: counts exactly, floats to 1e-9."""
    expect(
        isinstance(got, TensorStats),
        f"{what} should be a TensorStats, got {type(got).__name__}: {got!r}",
    )
    for f in fields(TensorStats):
        mine, theirs = getattr(got, f.name), getattr(want, f.name)
        kind = int if f.name in _INT_FIELDS else float
        expect(
            type(mine) is kind,
            f"{what}.{f.name} should be a Python {kind.__name__} (use .item(), int(), float()), "
            f"got {type(mine).__name__} {mine!r}",
        )
        if kind is int:
            expect(mine == theirs, f"{what}.{f.name}: expected {theirs}, got {mine}")
        else:
            ok = math.isclose(mine, theirs, rel_tol=1e-9, abs_tol=1e-12)
            expect(ok, f"{what}.{f.name}: expected {theirs!r}, got {mine!r}")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _with_specials(seed: int, dtype: torch.dtype) -> Tensor:
    """A 4x6 tensor with zeros, NaN, +inf and -inf among normal values."""
    x = torch.randn(4, 6, generator=_gen(seed), dtype=dtype) * 3
    x[0, 1] = x[2, 2] = x[3, 5] = 0.0
    x[1, 0] = NAN
    x[1, 3] = INF
    x[2, 4] = -INF
    return x


# ----------------------------------------------------------------------------------------------
# finite_values


def _finite_inputs() -> list[tuple[str, Tensor]]:
    t = _with_specials(1, torch.float32)
    return [
        ("a 4x6 float32 tensor with zeros, a NaN, +inf and -inf", t),
        ("the same tensor transposed (non-contiguous: keep its logical row-major order)", t.t()),
        ("float64, every value finite", torch.randn(3, 5, generator=_gen(2), dtype=F64)),
        ("an int64 tensor (every int is finite)", torch.tensor([[3, -1], [0, 7]])),
        ("a float16 tensor", torch.tensor([1.5, NAN, -2.0, INF], dtype=torch.float16)),
        ("all NaN: nothing is left", torch.full((2, 3), NAN)),
        ("an empty 0x3 tensor", torch.zeros(0, 3)),
        ("a 0-d tensor", torch.tensor(-4.25)),
    ]


@check("finite_values")
def finite_values_keeps_the_finite_ones(ns: Namespace) -> None:
    for description, x in _finite_inputs():
        a = as_numpy(x)
        want = torch.from_numpy(a[np.isfinite(a)])
        before = x.clone()
        with case(description, x=x):
            got = ns.finite_values(x)
            assert_equal(got, want, what="finite_values(x) (flat, float64, in order)")
            assert_unchanged(x, before)


@check("finite_values")
def finite_values_is_detached(ns: Namespace) -> None:
    w = torch.tensor([1.0, NAN, 2.0], requires_grad=True)
    x = w * 2  # a non-leaf that requires grad, as a layer's output does
    with case("the output of a computation that requires grad", x=x):
        got = ns.finite_values(x)
        expect(
            not got.requires_grad and got.grad_fn is None,
            "finite_values should return a detached tensor (x.detach()): it got "
            f"requires_grad={got.requires_grad}, grad_fn={got.grad_fn}; a statistic must "
            "never become part of the graph",
        )
        assert_equal(got, torch.tensor([2.0, 4.0], dtype=F64), what="finite_values(x)")


# ----------------------------------------------------------------------------------------------
# tensor_stats


def _stats_inputs() -> list[tuple[str, Tensor, tuple[float, float] | None]]:
    return [
        ("a 3x4x5 float32 tensor", torch.randn(3, 4, 5, generator=_gen(3)), None),
        ("the same with saturation=(-1.0, 1.0)", torch.randn(3, 4, 5, generator=_gen(3)), (-1, 1)),
        ("4x6 with zeros, NaN, +inf, -inf", _with_specials(4, F64), None),
        ("4x6 with zeros, NaN, ±inf; saturation=(-2.0, 2.5)", _with_specials(4, F64), (-2.0, 2.5)),
        (
            "values exactly on the bounds of saturation=(-0.99, 0.99) count as saturated",
            torch.tensor([-0.99, -0.5, 0.0, 0.98, 0.99, 1.0], dtype=F64),
            (-0.99, 0.99),
        ),
        (
            "tanh of large inputs, saturation=(-0.99, 0.99)",
            torch.tanh(torch.randn(50, generator=_gen(5)) * 4),
            (-0.99, 0.99),
        ),
        ("all NaN: no finite value", torch.full((4,), NAN), None),
        ("all inf, saturation=(0.0, 1.0)", torch.tensor([INF, -INF, INF]), (0.0, 1.0)),
        ("one finite value among NaNs", torch.tensor([NAN, 5.0, NAN]), None),
        ("a single 0.0", torch.tensor([0.0]), (-1.0, 1.0)),
        ("a single 3.0", torch.tensor([3.0]), None),
        ("an empty 0x4 tensor", torch.zeros(0, 4), (-1.0, 1.0)),
        ("an int64 tensor", torch.tensor([[0, 3, -4], [2, 0, 7]]), None),
        ("a bfloat16 tensor", torch.tensor([0.5, -3.0, 0.0, NAN], dtype=torch.bfloat16), None),
        ("a transposed (non-contiguous) tensor", _with_specials(6, torch.float32).t(), (-1, 1)),
    ]


@check("tensor_stats")
def stats_match_numpy(ns: Namespace) -> None:
    for description, x, saturation in _stats_inputs():
        before = x.clone()
        with case(description, x=x, saturation=saturation):
            got = ns.tensor_stats(x, saturation)
            assert_same_stats(got, numpy_stats(x, saturation), what="tensor_stats(x)")
            assert_unchanged(x, before)


@check("tensor_stats")
def stats_default_has_no_saturation(ns: Namespace) -> None:
    x = torch.tensor([-5.0, 0.0, 5.0])
    with case("saturation left out (None): frac_saturated is 0.0", x=x):
        assert_same_stats(ns.tensor_stats(x), numpy_stats(x), what="tensor_stats(x)")


@check("tensor_stats")
def stats_do_not_join_the_graph(ns: Namespace) -> None:
    w = torch.randn(5, 4, generator=_gen(7), requires_grad=True)
    x = torch.relu(w @ torch.randn(4, 3, generator=_gen(8)))
    with case("a ReLU output that requires grad", x=x):
        got = ns.tensor_stats(x)
        assert_same_stats(got, numpy_stats(x), what="tensor_stats(x)")
        x.sum().backward()  # type: ignore[no-untyped-call]
        expect(w.grad is not None, "backward through x failed after tensor_stats(x)")


# ----------------------------------------------------------------------------------------------
# saturation_for


class _MyTanh(nn.Tanh):
    pass


class _MySigmoid(nn.Sigmoid):
    pass


_SATURATION_TABLE: list[tuple[str, nn.Module, tuple[float, float] | None]] = [
    ("nn.Tanh()", nn.Tanh(), (-0.99, 0.99)),
    ("nn.Sigmoid()", nn.Sigmoid(), (0.01, 0.99)),
    ("nn.Softmax(dim=-1)", nn.Softmax(dim=-1), (-1.0, 0.99)),
    ("nn.Hardsigmoid()", nn.Hardsigmoid(), (0.0, 1.0)),
    ("nn.Hardtanh() (its own bounds -1, 1)", nn.Hardtanh(), (-1.0, 1.0)),
    ("nn.Hardtanh(-2.0, 3.0): its own bounds", nn.Hardtanh(-2.0, 3.0), (-2.0, 3.0)),
    ("nn.Hardtanh(0, 4) with int bounds: floats come back", nn.Hardtanh(0, 4), (0.0, 4.0)),
    ("nn.ReLU6(): a Hardtanh from 0 to 6", nn.ReLU6(), (0.0, 6.0)),
    ("a subclass of nn.Tanh", _MyTanh(), (-0.99, 0.99)),
    ("a subclass of nn.Sigmoid", _MySigmoid(), (0.01, 0.99)),
    ("nn.ReLU(): not a squashing function", nn.ReLU(), None),
    ("nn.Linear(2, 2)", nn.Linear(2, 2), None),
    ("nn.LogSoftmax(dim=-1)", nn.LogSoftmax(dim=-1), None),
]


@check("saturation_for")
def saturation_bounds_per_module(ns: Namespace) -> None:
    for description, module, want in _SATURATION_TABLE:
        with case(description, module=module):
            got = ns.saturation_for(module)
            if want is None:
                expect(got is None, f"saturation_for({module}) should be None, got {got!r}")
                continue
            expect(
                isinstance(got, tuple)
                and len(got) == 2
                and all(type(v) is float for v in got)
                and got == want,
                f"saturation_for({module}) should be the tuple of floats {want!r}, got {got!r}",
            )


# ----------------------------------------------------------------------------------------------
# histogram


def _numpy_histogram(
    x: Tensor, bins: int, range_: tuple[float, float] | None
) -> tuple[Tensor, Tensor]:
    a = as_numpy(x)
    counts, edges = np.histogram(a[np.isfinite(a)], bins=bins, range=range_)
    return torch.from_numpy(counts.astype(np.int64)), torch.from_numpy(edges)


def _histogram_inputs() -> list[tuple[str, Tensor, int, tuple[float, float] | None]]:
    spread = torch.randn(300, generator=_gen(9), dtype=F64)
    return [
        ("300 normal values, 10 bins", spread, 10, None),
        ("300 float32 values, 7 bins", spread.float(), 7, None),
        ("one bin", spread, 1, None),
        ("values on the bin edges, 4 bins", torch.tensor([0.0, 1.0, 1.0, 2.0, 3.0, 4.0]), 4, None),
        ("NaN and ±inf are left out", _with_specials(10, torch.float32), 5, None),
        ("range=(-1.0, 1.0) with values outside it", spread, 8, (-1.0, 1.0)),
        ("range=(0, 10) beyond every value: top bins stay empty", spread.abs(), 10, (0, 10)),
        ("range=(0.1, 0.3), 3 bins (the last edge is exactly 0.3)", spread, 3, (0.1, 0.3)),
        ("range=(-1.3, 2.9), 7 bins", spread, 7, (-1.3, 2.9)),
        (
            "int64 values on the edges, range=(0, 6)",
            torch.tensor([0, 1, 2, 6, 6, 7, -1]),
            6,
            (0, 6),
        ),
        ("every value equal: range widened to (1.5, 2.5)", torch.full((5,), 2.0), 4, None),
        ("one finite value, 3.0, and a NaN: range (2.5, 3.5)", torch.tensor([3.0, NAN]), 2, None),
        ("range=(2.0, 2.0) given: widened too", torch.tensor([1.9, 2.0, 2.2, 2.6]), 2, (2.0, 2.0)),
        ("an empty tensor: range (0, 1)", torch.zeros(0), 3, None),
        ("all NaN: nothing to count, range (0, 1)", torch.full((3,), NAN), 2, None),
        ("a 2-d non-contiguous tensor", spread.reshape(20, 15).t(), 6, None),
    ]


def _same_edges(got: Any, want: Tensor) -> None:
    """Edges equal to numpy's to the last bit, with a word on why when only rounding differs."""
    what = "edges (as numpy.histogram's, float64)"
    assert_close(got, want, rtol=1e-12, atol=0.0, what=what)
    if not torch.equal(got, want):
        gap = float((got - want).abs().max())
        raise MismatchError(
            f"{what}: equal up to rounding (largest gap {gap:.3g}) but not exactly. Compute "
            "lo + torch.arange(bins + 1, dtype=torch.float64) * ((hi - lo) / bins) and set the "
            "last edge to hi, as numpy does: torch.linspace rounds differently, and a value "
            "that sits on an edge would then land in another bin."
        )


@check("histogram")
def histogram_matches_numpy(ns: Namespace) -> None:
    for description, x, bins, range_ in _histogram_inputs():
        want_counts, want_edges = _numpy_histogram(x, bins, range_)
        with case(description, x=x, bins=bins, range=range_):
            got = ns.histogram(x, bins=bins, range=range_)
            expect(
                isinstance(got, tuple) and len(got) == 2,
                f"histogram should return (counts, edges), got {type(got).__name__}",
            )
            _same_edges(got[1], want_edges)
            assert_equal(got[0], want_counts, what="counts (int64, as numpy.histogram's)")


@check("histogram")
def histogram_defaults_to_40_bins(ns: Namespace) -> None:
    x = torch.randn(500, generator=_gen(11))
    want_counts, want_edges = _numpy_histogram(x, 40, None)
    with case("500 values, bins and range left out", x=x):
        counts, edges = ns.histogram(x)
        _same_edges(edges, want_edges)
        assert_equal(counts, want_counts, what="counts")


@check("histogram")
def histogram_rejects_bad_arguments(ns: Namespace) -> None:
    x = torch.randn(10, generator=_gen(12))
    with case("bins=0"):
        assert_raises(ns.histogram, x, bins=0, exc=ValueError, what="histogram(x, bins=0)")
    with case("bins=-3"):
        assert_raises(ns.histogram, x, bins=-3, exc=ValueError, what="histogram(x, bins=-3)")
    with case("range=(3.0, 1.0): the lower end above the upper"):
        assert_raises(
            ns.histogram, x, bins=4, range=(3.0, 1.0), exc=ValueError, what="histogram(x, ...)"
        )


# ----------------------------------------------------------------------------------------------
# relative_difference


def _numpy_relative(a: Tensor, b: Tensor) -> float:
    """max |a - b| / (max |finite b| + 1e-12), written with numpy masks."""
    if a.shape != b.shape:
        return INF
    x, y = as_numpy(a), as_numpy(b)
    if not np.array_equal(np.isnan(x), np.isnan(y)):
        return INF
    if x.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        gap = np.abs(x - y)
    gap[(x == y) | np.isnan(x)] = 0.0
    finite_y = y[np.isfinite(y)]
    scale = float(np.max(np.abs(finite_y))) if finite_y.size else 0.0
    return float(np.max(gap)) / (scale + 1e-12)


def _relative_inputs() -> list[tuple[str, Tensor, Tensor]]:
    a = torch.randn(4, 5, generator=_gen(13), dtype=F64)
    b = a + 1e-3 * torch.randn(4, 5, generator=_gen(14), dtype=F64)
    big_negative = b.clone()
    big_negative[2, 3] = -40.0
    nan_a, nan_b = a.clone(), b.clone()
    nan_a[1, 1] = nan_b[1, 1] = NAN
    inf_a, inf_b = a.clone(), b.clone()
    inf_a[0, 2] = inf_b[0, 2] = INF
    inf_a[3, 0] = inf_b[3, 0] = -INF
    return [
        ("a 4x5 pair about 1e-3 apart", a, b),
        ("the same pair the other way round (b sets the scale)", b, a),
        ("b's largest magnitude is a negative value, -40", a, big_negative),
        ("equal tensors", a, a.clone()),
        ("NaN at the same place in both: ignored", nan_a, nan_b),
        ("the same ±inf at the same places in both: ignored", inf_a, inf_b),
        ("one differing element", torch.tensor([2.0]), torch.tensor([3.0])),
        ("b is all zeros: the scale is 0 + 1e-12", torch.tensor([1e-15, 0.0]), torch.zeros(2)),
        ("float32 against float64", torch.tensor([1.0, 2.5]), torch.tensor([1.0, 2.0], dtype=F64)),
        ("int64 tensors", torch.tensor([[1, 5], [3, 3]]), torch.tensor([[1, 4], [3, -8]])),
        ("a transposed a against a contiguous b", a.t(), b.t().contiguous()),
    ]


def _relative_infinite() -> list[tuple[str, Tensor, Tensor]]:
    a = torch.randn(3, 3, generator=_gen(15))
    nan_a = a.clone()
    nan_a[1, 2] = NAN
    inf_b = a.clone()
    inf_b[0, 0] = INF
    flip = a.clone()
    flip[2, 1] = INF
    flop = a.clone()
    flop[2, 1] = -INF
    return [
        ("a NaN in a only", nan_a, a),
        ("a NaN in b only", a, nan_a),
        ("an inf in b only", a, inf_b),
        ("+inf in a where b has -inf", flip, flop),
        ("shapes (3, 3) and (9,)", a, a.reshape(9)),
        ("shapes (2,) and (3,)", torch.zeros(2), torch.zeros(3)),
    ]


def _same_float(got: Any, want: float, what: str) -> None:
    expect(type(got) is float, f"{what} should be a Python float, got {type(got).__name__}")
    ok = got == want or math.isclose(got, want, rel_tol=1e-9, abs_tol=0.0)
    if not ok:
        raise MismatchError(f"{what}: expected {want!r}, got {got!r}")


@check("relative_difference")
def relative_difference_matches_numpy(ns: Namespace) -> None:
    for description, a, b in _relative_inputs():
        with case(description, a=a, b=b):
            _same_float(ns.relative_difference(a, b), _numpy_relative(a, b), "result")


@check("relative_difference")
def relative_difference_is_inf_when_they_cannot_match(ns: Namespace) -> None:
    for description, a, b in _relative_infinite():
        with case(description, a=a, b=b):
            _same_float(ns.relative_difference(a, b), INF, "result")


@check("relative_difference")
def relative_difference_of_special_tensors(ns: Namespace) -> None:
    for description, a, b, want in (
        ("two empty tensors", torch.zeros(0, 2), torch.zeros(0, 2), 0.0),
        ("all NaN in both", torch.full((3,), NAN), torch.full((3,), NAN), 0.0),
        ("±inf only, the same in both", torch.tensor([INF, -INF]), torch.tensor([INF, -INF]), 0.0),
    ):
        with case(description, a=a, b=b):
            _same_float(ns.relative_difference(a, b), want, "result")
    a = torch.tensor([1.0, 2.0], requires_grad=True) * 3
    b = torch.tensor([3.0, 7.0])
    with case("a requires grad", a=a, b=b):
        _same_float(ns.relative_difference(a, b), 1.0 / (7.0 + 1e-12), "result")
