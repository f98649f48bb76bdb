"""Unpaired (two-sample) tests, for contrast with :mod:`mlab.analysis.paired`.

They treat ``a`` and ``b`` as independent samples: right for two models evaluated on
*different* examples, wasteful when the examples are the same, because the example-to-example
spread (most of the variance of a loss) stays in the denominator.

- :func:`welch_t_test`: Welch's t-test (1947), ``scipy.stats.ttest_ind(equal_var=False)``.
- :func:`mann_whitney_u`: the Mann-Whitney U test (1947) by its normal approximation with
  tie and continuity corrections, ``scipy.stats.mannwhitneyu(method="asymptotic")``.
"""

from __future__ import annotations

import math

import numpy as np
from jaxtyping import Float
from scipy import stats
from scipy.stats import rankdata

from mlab.errors import ShapeError

__all__ = ["as_sample", "mann_whitney_u", "welch_t_test"]


def as_sample(x: Float[np.ndarray, " n"], name: str) -> Float[np.ndarray, " n"]:
    """``x`` as a float64 array, after checking it is 1-D (``ShapeError`` naming ``name``)."""
    x64 = np.asarray(x, dtype=np.float64)
    if x64.ndim != 1:
        raise ShapeError(f"{name} has shape {x64.shape}: pass a 1-D array of values")
    return x64


def welch_t_test(a: Float[np.ndarray, " n_a"], b: Float[np.ndarray, " n_b"]) -> tuple[float, float]:
    """Welch's t-test of "mean(a) = mean(b)" for independent samples: ``(t, p_value)``,
    two-sided.

    ``t = (mean(a) - mean(b)) / sqrt(va + vb)`` with ``va = var(a, ddof=1) / len(a)`` (and
    ``vb`` likewise); degrees of freedom by Welch-Satterthwaite,
    ``(va + vb)**2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))``;
    ``p = 2 * scipy.stats.t.sf(|t|, df)``. Both samples constant: ``(nan, nan)`` as scipy
    has it when the means are equal, ``(+-inf, 0.0)`` otherwise. Raises ``ValueError``
    when a sample has fewer than 2 values.
    """
    a, b = as_sample(a, "a"), as_sample(b, "b")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"len(a)={len(a)}, len(b)={len(b)}: each sample needs at least 2")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = a.mean() - b.mean()
    if va + vb == 0:
        return (math.nan, math.nan) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(t), float(2 * stats.t.sf(abs(t), df))


def mann_whitney_u(
    a: Float[np.ndarray, " n_a"], b: Float[np.ndarray, " n_b"]
) -> tuple[float, float]:
    """The Mann-Whitney U test of "a and b come from one distribution": ``(U_a, p_value)``,
    two-sided, normal approximation.

    Rank all values together (ties averaged); ``U_a = R_a - n_a (n_a + 1) / 2`` where
    ``R_a`` sums the ranks of ``a``. Under the null ``U_a`` has mean ``n_a n_b / 2`` and
    variance ``n_a n_b / 12 * ((n + 1) - sum(t**3 - t) / (n (n - 1)))``; the p-value is
    ``2 * norm.sf((|U_a - mean| - 0.5) / sd)`` (continuity correction), at most 1.
    """
    a, b = as_sample(a, "a"), as_sample(b, "b")
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"len(a)={len(a)}, len(b)={len(b)}: both samples need values")
    na, nb = len(a), len(b)
    n = na + nb
    ranks = rankdata(np.concatenate([a, b]))
    u = float(ranks[:na].sum() - na * (na + 1) / 2)
    _, ties = np.unique(ranks, return_counts=True)
    variance = na * nb / 12 * ((n + 1) - float((ties**3 - ties).sum()) / (n * (n - 1)))
    if variance == 0:
        return u, math.nan
    z = (abs(u - na * nb / 2) - 0.5) / math.sqrt(variance)
    return u, float(min(1.0, 2 * stats.norm.sf(z)))
