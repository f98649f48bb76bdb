"""Paired tests: two models scored on the *same* examples.

When models A and B are evaluated on the same validation examples, their losses ``a[i]`` and
``b[i]`` share example ``i``'s difficulty. A paired test works on the differences
``d[i] = a[i] - b[i]``, in which that shared difficulty cancels, so it sees a difference that
an unpaired test (:mod:`mlab.analysis.unpaired`) drowns in example-to-example variation.

- :func:`paired_t_test`: Student's paired t-test (1908), ``scipy.stats.ttest_rel``.
- :func:`wilcoxon_signed_rank`: Wilcoxon's signed-rank test (1945), which uses only the ranks
  of the differences, so one huge outlier cannot dominate it; ``scipy.stats.wilcoxon``.

Both return ``(statistic, p_value)`` for the two-sided alternative and agree with scipy 1.17's
statistics and p-values, edge cases included (ties, zero differences, n = 2).
"""

from __future__ import annotations

import math

import numpy as np
from jaxtyping import Float
from scipy import stats
from scipy.stats import rankdata

from mlab.errors import ShapeError

__all__ = ["paired_differences", "paired_t_test", "wilcoxon_null_counts", "wilcoxon_signed_rank"]


def paired_differences(
    a: Float[np.ndarray, " n"], b: Float[np.ndarray, " n"]
) -> Float[np.ndarray, " n"]:
    """``a - b`` in float64, after checking that ``a`` and ``b`` pair up: both 1-D, of one
    length, finite."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    if a64.ndim != 1 or a64.shape != b64.shape:
        raise ShapeError(
            f"a has shape {a64.shape} and b {b64.shape}: a paired test needs two 1-D arrays "
            "of one length, a[i] and b[i] measured on the same example i"
        )
    if not (np.isfinite(a64).all() and np.isfinite(b64).all()):
        raise ValueError("a or b holds a NaN or an infinity: drop those examples first")
    return a64 - b64


def paired_t_test(a: Float[np.ndarray, " n"], b: Float[np.ndarray, " n"]) -> tuple[float, float]:
    """Student's paired t-test of "mean(a - b) = 0": return ``(t, p_value)``, two-sided.

    With the differences ``d = a - b`` (n of them, n >= 2), ``t = mean(d) / (s / sqrt(n))``
    where ``s`` is the standard deviation of ``d`` with ``n - 1`` in the denominator; the
    p-value is the chance that a t-distributed variable with ``n - 1`` degrees of freedom
    is at least ``|t|`` away from 0: ``2 * scipy.stats.t.sf(abs(t), n - 1)``.
    When every difference is the same, ``s = 0``: the result is ``(nan, nan)`` when they
    are all zero and ``(+-inf, 0.0)`` otherwise, as scipy has it (NumPy's float64 division
    gives exactly that). Raise ``ValueError`` for n < 2 (and ``ShapeError`` for arrays that
    do not pair up).

    >>> paired_t_test(np.array([2.0, 3.0, 5.0]), np.array([1.0, 1.0, 2.0]))[0]
    3.464101615137754
    """
    d = paired_differences(a, b)
    n = len(d)
    if n < 2:
        raise ValueError(f"n={n} pairs: a t-test needs at least 2 to estimate the spread")
    with np.errstate(divide="ignore", invalid="ignore"):  # s = 0: inf or nan, as scipy
        t = d.mean() / (d.std(ddof=1) / np.sqrt(n))
    return float(t), float(2 * stats.t.sf(abs(t), n - 1))


def wilcoxon_null_counts(n: int) -> list[int]:
    """How many of the ``2**n`` sign patterns of ranks 1..n give each rank sum ``k`` of the
    positive ones, ``k = 0 .. n(n+1)/2``: the exact null distribution of Wilcoxon's ``W+``
    (times ``2**n``) when there are no ties. Dynamic programming: add rank ``r`` to every sum.
    """
    counts = [1]
    for r in range(1, n + 1):
        grown = counts + [0] * r
        for k, c in enumerate(counts):
            grown[k + r] += c
        counts = grown
    return counts


def wilcoxon_signed_rank(
    a: Float[np.ndarray, " n"], b: Float[np.ndarray, " n"], method: str = "auto"
) -> tuple[float, float]:
    """Wilcoxon's signed-rank test of "the differences ``a - b`` are symmetric about 0":
    return ``(statistic, p_value)``, two-sided, equal to ``scipy.stats.wilcoxon(a, b,
    method=method)`` (Wilcoxon's zero handling, no continuity correction).

    Drop the zero differences; rank the others' absolute values (ties get their average
    rank, ``scipy.stats.rankdata``); ``W+`` sums the ranks of the positive differences and
    ``W-`` of the negative ones. The statistic is ``min(W+, W-)``.
    ``method="exact"``: the p-value from the exact null distribution of ``W+`` over the
    ``m`` non-zero differences (:func:`wilcoxon_null_counts`): ``2 * min(P(W+ >= floor(W+)),
    P(W+ <= ceil(W+)))``, at most 1. ``method="asymptotic"``: the normal approximation
    ``z = (W+ - m(m+1)/4) / sigma`` with ``sigma**2 = (m(m+1)(2m+1) - sum(t**3 - t) / 2) / 24``
    (``t``: the size of each group of tied ranks), ``p = 2 * norm.sf(|z|)``; with no
    non-zero difference ``sigma = 0`` and ``p`` is NaN, as scipy has it. ``"auto"``: exact
    for n <= 50 pairs without ties or zeros, asymptotic otherwise.
    """
    d = paired_differences(a, b)
    if method not in ("auto", "exact", "asymptotic"):
        raise ValueError(f"method={method!r}: use 'auto', 'exact' or 'asymptotic'")
    if len(d) == 0:
        raise ValueError("no pairs: the test needs at least one difference")
    nonzero = d[d != 0]
    m = len(nonzero)
    ranks = rankdata(np.abs(nonzero))
    w_plus = float(ranks[nonzero > 0].sum())
    w_minus = float(ranks[nonzero < 0].sum())
    _, tie_sizes = np.unique(ranks, return_counts=True)
    if method == "auto":
        clean = m == len(d) and bool((tie_sizes == 1).all())
        method = "exact" if len(d) <= 50 and clean else "asymptotic"
    if method == "exact":
        counts = wilcoxon_null_counts(m)
        total = 2**m
        upper = sum(counts[math.floor(w_plus) :]) / total
        lower = sum(counts[: math.ceil(w_plus) + 1]) / total
        p = min(1.0, 2 * min(upper, lower))
    else:
        variance = (m * (m + 1) * (2 * m + 1) - float((tie_sizes**3 - tie_sizes).sum()) / 2) / 24
        if variance == 0:
            p = math.nan
        else:
            z = (w_plus - m * (m + 1) / 4) / math.sqrt(variance)
            p = float(2 * stats.norm.sf(abs(z)))
    return min(w_plus, w_minus), p
