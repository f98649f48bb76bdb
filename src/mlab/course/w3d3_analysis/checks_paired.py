"""Checks for part 1 of w3d3: paired tests and bootstrap intervals, each compared with
``scipy.stats`` (``ttest_rel``, ``wilcoxon``, ``bootstrap``, ``ttest_ind``): statistic and
p-value within 1e-9 relative, on random pairs and on edge inputs (n = 2, ties, zero
differences, every difference equal), and the errors the docstrings promise."""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
from scipy import stats

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import assert_close, assert_equal, assert_raises, case

RTOL, ATOL = 1e-9, 1e-12


def _pairs(seed: int, n: int, kind: str = "plain") -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs: ``plain`` (continuous), ``ties`` (rounded to halves), ``zeros`` (a third
    of the pairs equal)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(1.0, 2.0, size=n)
    b = a + rng.normal(0.3, 1.0, size=n)
    if kind == "ties":
        a, b = np.round(a * 2) / 2, np.round(b * 2) / 2
    if kind == "zeros":
        b[: n // 3] = a[: n // 3]
    return a, b


def _same(got: object, ref: Any, what: str) -> None:
    want = (float(ref[0]), float(ref[1]))
    assert_close(got, want, rtol=RTOL, atol=ATOL, equal_nan=True, what=what)


def _quiet_scipy(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate inputs make scipy warn
        return fn(*args, **kwargs)


EDGES = {
    "n = 2": ([1.0, 2.0], [0.0, 3.0]),
    "n = 2, both differences positive": ([1.0, 2.0], [0.5, 1.0]),
    "every difference the same (+1)": ([1.0, 2.0, 3.0], [0.0, 1.0, 2.0]),
    "every difference the same (-2)": ([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0]),
    "every difference zero": ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),
    "ties and a zero": ([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 2.0, 5.0, 3.0]),
}


@check("paired_t_test")
def t_test_matches_ttest_rel(ns: Namespace) -> None:
    inputs = {
        f"{n} random pairs ({kind})": _pairs(n, n, kind)
        for n in (3, 10, 57)
        for kind in ("plain", "ties")
    }
    inputs |= {k: (np.array(a), np.array(b)) for k, (a, b) in EDGES.items()}
    for name, (a, b) in inputs.items():
        with case(name, a=a, b=b):
            ref = _quiet_scipy(stats.ttest_rel, a, b)
            _same(ns.paired_t_test(a.copy(), b.copy()), ref[:2], "(t, p_value)")


@check("paired_t_test")
def t_test_rejects_what_cannot_be_tested(ns: Namespace) -> None:
    with case("one pair"):
        assert_raises(ns.paired_t_test, np.array([1.0]), np.array([2.0]), exc=ValueError)
    with case("no pairs"):
        assert_raises(ns.paired_t_test, np.zeros(0), np.zeros(0), exc=ValueError)
    with case("3 values against 4"):
        assert_raises(ns.paired_t_test, np.zeros(3), np.ones(4), exc=ShapeError)


@check("wilcoxon_null_counts")
def null_counts_match_every_sign_pattern(ns: Namespace) -> None:
    for n in range(0, 11):
        with case(f"n={n}: all 2**{n} ways to give ranks 1..{n} a sign", n=n):
            want = [0] * (n * (n + 1) // 2 + 1)
            for signs in itertools.product((0, 1), repeat=n):
                want[sum(r for r, s in zip(range(1, n + 1), signs, strict=True) if s)] += 1
            assert_equal(ns.wilcoxon_null_counts(n), want, what="counts")


def _scipy_method(a: np.ndarray, b: np.ndarray) -> str:
    """The method the exercise's "auto" means: exact for n <= 50 without ties or zeros."""
    d = a - b
    clean = np.all(d != 0) and len(np.unique(np.abs(d))) == len(d)
    return "exact" if clean and len(d) <= 50 else "asymptotic"


@check("wilcoxon_signed_rank")
def wilcoxon_auto_matches_scipy(ns: Namespace) -> None:
    inputs = {
        f"{n} random pairs ({kind})": _pairs(100 + n, n, kind)
        for n, kind in (
            (2, "plain"),
            (9, "plain"),
            (50, "plain"),
            (51, "plain"),
            (70, "plain"),
            (12, "ties"),
            (40, "ties"),
            (30, "zeros"),
        )
    }
    inputs |= {k: (np.array(a), np.array(b)) for k, (a, b) in EDGES.items()}
    symmetric = np.array([1.0, -2.0, -3.0, 4.0, 5.0, -6.0, -7.0, 8.0])
    inputs["W+ = W- (p = 1)"] = (symmetric, np.zeros(8))
    for name, (a, b) in inputs.items():
        with case(name + ", method='auto'", a=a, b=b):
            ref = _quiet_scipy(stats.wilcoxon, a, b, method=_scipy_method(a, b))
            got = ns.wilcoxon_signed_rank(a.copy(), b.copy())
            _same(got, ref[:2], "(statistic, p_value)")


@check("wilcoxon_signed_rank")
def wilcoxon_methods_match_scipy(ns: Namespace) -> None:
    inputs = {
        f"{n} random pairs ({kind})": _pairs(200 + n, n, kind)
        for n, kind in ((6, "plain"), (25, "ties"), (18, "zeros"), (60, "plain"))
    }
    inputs |= {k: (np.array(a), np.array(b)) for k, (a, b) in EDGES.items()}
    for method in ("exact", "asymptotic"):
        for name, (a, b) in inputs.items():
            with case(f"{name}, method={method!r}", a=a, b=b):
                ref = _quiet_scipy(stats.wilcoxon, a, b, method=method)
                got = ns.wilcoxon_signed_rank(a, b, method=method)
                _same(got, ref[:2], "(statistic, p_value)")
    with case("method='exakt'"):
        assert_raises(
            ns.wilcoxon_signed_rank,
            np.ones(3),
            np.zeros(3),
            method="exakt",
            exc=ValueError,
            match="exakt",
        )
    with case("no pairs"):
        assert_raises(ns.wilcoxon_signed_rank, np.zeros(0), np.zeros(0), exc=ValueError)


@check("bootstrap_ci")
def bootstrap_matches_scipy(ns: Namespace) -> None:
    rng = np.random.default_rng(7)
    samples = {
        "2 values": np.array([0.3, -1.2]),
        "15 skewed values": rng.standard_exponential(15) - 1,
        "40 rounded values (ties)": np.round(rng.normal(size=40)),
    }
    for method in ("percentile", "basic", "BCa"):
        for (name, x), (confidence, seed) in zip(
            samples.items(), ((0.95, 0), (0.9, 3), (0.5, 11)), strict=True
        ):
            with case(f"{name}, method={method!r}, confidence={confidence}, seed={seed}", x=x):
                ref = stats.bootstrap(
                    (x,),
                    np.mean,
                    confidence_level=confidence,
                    n_resamples=999,
                    rng=seed,
                    method=method,
                )
                got = ns.bootstrap_ci(
                    x.copy(), confidence, n_resamples=999, seed=seed, method=method
                )
                ci = ref.confidence_interval
                assert_close(
                    got, (float(ci.low), float(ci.high)), rtol=RTOL, atol=ATOL, what="(low, high)"
                )
    with case("the defaults: confidence=0.95, 9999 resamples, seed 0, percentile"):
        x = samples["15 skewed values"]
        ci = stats.bootstrap((x,), np.mean, rng=0, method="percentile").confidence_interval
        assert_close(
            ns.bootstrap_ci(x),
            (float(ci.low), float(ci.high)),
            rtol=RTOL,
            atol=ATOL,
            what="(low, high)",
        )
    with case("float32 values: the means are taken in float64"):
        x32 = samples["15 skewed values"].astype(np.float32)
        ci = stats.bootstrap(
            (x32.astype(np.float64),), np.mean, n_resamples=999, rng=5, method="BCa"
        ).confidence_interval
        assert_close(
            ns.bootstrap_ci(x32, n_resamples=999, seed=5, method="BCa"),
            (float(ci.low), float(ci.high)),
            rtol=RTOL,
            atol=ATOL,
            what="(low, high)",
        )


@check("bootstrap_ci")
def bootstrap_rejects_bad_input(ns: Namespace) -> None:
    x = np.array([1.0, 2.0, 4.0])
    for bad in (0.0, 1.0, 1.5):
        with case(f"confidence={bad}"):
            assert_raises(ns.bootstrap_ci, x, bad, exc=ValueError)
    with case("one value"):
        assert_raises(ns.bootstrap_ci, np.array([1.0]), exc=ValueError)
    with case("a 2-D array"):
        assert_raises(ns.bootstrap_ci, np.ones((3, 2)), exc=ShapeError)
    with case("method='bca' (it is spelled 'BCa')"):
        assert_raises(ns.bootstrap_ci, x, method="bca", exc=ValueError, match="bca")


@check("welch_t_test")
def welch_matches_ttest_ind(ns: Namespace) -> None:
    rng = np.random.default_rng(3)
    inputs = {
        "2 and 2 values": (np.array([1.0, 2.0]), np.array([0.5, 4.0])),
        "10 and 31 values, different spreads": (rng.normal(0, 1, 10), rng.normal(0.4, 3, 31)),
        "40 and 5 values (ties)": (np.round(rng.normal(0, 2, 40)), np.round(rng.normal(1, 1, 5))),
        "equal spreads (va = vb)": (np.array([0.0, 2.0]), np.array([1.0, 3.0])),
        "both constant, equal means": (np.ones(3), np.ones(4)),
        "both constant, different means": (np.ones(3), np.full(4, 2.0)),
        "one constant": (np.ones(5), np.array([0.0, 1.0, 3.0])),
    }
    for name, (a, b) in inputs.items():
        with case(name, a=a, b=b):
            ref = _quiet_scipy(stats.ttest_ind, a, b, equal_var=False)
            _same(ns.welch_t_test(a, b), ref[:2], "(t, p_value)")
    for a, b in ((np.ones(1), np.ones(4)), (np.arange(4.0), np.ones(1))):
        with case(f"{len(a)} and {len(b)} values"):
            assert_raises(ns.welch_t_test, a, b, exc=ValueError)
    with case("a of shape (3, 2)"):
        assert_raises(ns.welch_t_test, np.ones((3, 2)), np.arange(4.0), exc=ShapeError)
