"""Bootstrap confidence intervals (Efron, 1979; Efron & Tibshirani, *An Introduction to the
Bootstrap*, 1993, ch. 13-14).

The spread of a statistic over many datasets is unknown, since we have only one. The bootstrap
resamples the one we have: draw ``n`` examples *with replacement*, compute the statistic,
repeat ``n_resamples`` times, and read the interval off the distribution of those values.
For two models on the same examples, resample the *pairs* (equivalently, the differences) so
that the interval keeps the pairing.

:func:`bootstrap_ci` equals ``scipy.stats.bootstrap`` (percentile, basic and BCa methods) for
the mean, given the same seed: it draws the same indices from ``np.random.default_rng(seed)``.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float
from scipy import stats

from mlab.errors import ShapeError

__all__ = ["bootstrap_ci", "bootstrap_means"]


def bootstrap_means(
    x: Float[np.ndarray, " n"], n_resamples: int = 9999, seed: int = 0
) -> Float[np.ndarray, " n_resamples"]:
    """The means of ``n_resamples`` bootstrap resamples of ``x``: resample ``r`` takes
    ``x[idx[r]]`` where ``idx = np.random.default_rng(seed).integers(0, n, (n_resamples,
    n))``, all drawn at once (the draws ``scipy.stats.bootstrap`` makes with ``rng=seed``)."""
    x = np.asarray(x, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, len(x), (n_resamples, len(x)))
    means: np.ndarray = x[idx].mean(axis=1)
    return means


def bootstrap_ci(
    x: Float[np.ndarray, " n"],
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    method: str = "percentile",
) -> tuple[float, float]:
    """A two-sided ``confidence`` interval ``(low, high)`` for the mean of ``x``, by the
    bootstrap; for a paired comparison pass the differences ``a - b``.

    ``method="percentile"``: the ``alpha`` and ``1 - alpha`` quantiles (numpy's default,
    linear interpolation) of :func:`bootstrap_means`, ``alpha = (1 - confidence) / 2``.
    ``"basic"``: the percentile interval reflected about the sample mean,
    ``(2 * mean - high, 2 * mean - low)``. ``"BCa"``: bias-corrected and accelerated
    (Efron & Tibshirani eq. 14.10-14.15): the quantile levels move by the bias ``z0`` (the
    share of resampled means below the sample mean, ties counted half) and the acceleration
    ``a`` (from the jackknife means; for the mean it is
    ``sum(dev**3) / (6 * sum(dev**2) ** 1.5)`` with ``dev = x - mean(x)``). The means are
    computed in float64 whatever ``x``'s dtype. Equal to ``scipy.stats.bootstrap((x,), np.mean,
    confidence_level=confidence, n_resamples=n_resamples, rng=seed, method=method)``.
    Raises ``ValueError`` for fewer than 2 values or a confidence outside (0, 1).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ShapeError(f"x has shape {x.shape}: pass a 1-D array (the differences a - b)")
    if len(x) < 2:
        raise ValueError(f"{len(x)} values: the bootstrap needs at least 2")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}: give a level in (0, 1) such as 0.95")
    if method not in ("percentile", "basic", "BCa"):
        raise ValueError(f"method={method!r}: use 'percentile', 'basic' or 'BCa'")
    means = bootstrap_means(x, n_resamples, seed)
    alpha = (1 - confidence) / 2
    levels = [alpha, 1 - alpha]
    if method == "BCa":
        theta = x.mean()
        below = (np.count_nonzero(means < theta) + np.count_nonzero(means <= theta)) / (
            2 * n_resamples
        )
        z0 = stats.norm.ppf(below)
        # The jackknife means (x.sum() - x) / (n - 1) differ from their mean by
        # -(x - mean) / (n - 1): Efron's acceleration reduces to the skew of x.
        dev = x - theta
        accel = (dev**3).sum() / (6 * (dev**2).sum() ** 1.5)
        levels = []
        for z in (stats.norm.ppf(alpha), -stats.norm.ppf(alpha)):
            levels.append(float(stats.norm.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z)))))
    low, high = np.quantile(means, levels)
    if method == "basic":
        low, high = 2 * x.mean() - high, 2 * x.mean() - low
    return float(low), float(high)
