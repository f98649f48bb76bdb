"""A/B testing tools, as Evan Miller's pages offer them (evanmiller.org/ab-testing/).

- :func:`sample_size`: visitors per variation to detect a change in a conversion rate
  ("Sample Size Calculator"); :func:`statistical_power` and
  :func:`minimum_detectable_effect` solve the same equation for the other unknowns.
- :func:`two_proportion_z_test` and :func:`chi_squared_test`: did the rates differ
  ("Chi-Squared Test"; for a 2x2 table chi-squared is the z statistic squared).
- :func:`prob_b_beats_a`: the Bayesian chance that B's true rate exceeds A's, by sampling from
  the Beta posteriors, and :func:`prob_b_beats_a_exact`, Evan Miller's closed form
  ("Formulas for Bayesian A/B Testing", 2015).
- :func:`peeking_false_positive_rates`: what stopping as soon as ``p < alpha`` does to the
  false-positive rate ("How Not To Run an A/B Test", 2010).

The sample-size equation (per variation, baseline rate ``p``, absolute change ``delta``,
``p`` reflected to ``1 - p`` above 0.5 as the calculator does)::

    n = (z_{1-alpha/2} sqrt(2 p (1-p)) + z_{power} sqrt(p (1-p) + (p+delta)(1-p-delta)))**2
        / delta**2
"""

from __future__ import annotations

import math

import numpy as np
from jaxtyping import Int
from scipy import optimize, stats
from scipy.special import betaln

__all__ = [
    "chi_squared_test",
    "minimum_detectable_effect",
    "peeking_false_positive_rates",
    "prob_b_beats_a",
    "prob_b_beats_a_exact",
    "reflected_rate",
    "sample_size",
    "sample_size_exact",
    "statistical_power",
    "two_proportion_z_test",
]


def reflected_rate(baseline: float, delta: float, alpha: float) -> float:
    """The rate the sample-size equation uses: ``baseline``, or ``1 - baseline`` above 0.5
    (converting and not converting are symmetric), after checking the inputs: a rate in
    (0, 1), a level in (0, 1), a change ``delta != 0`` that keeps the rate in (0, 1)."""
    if not 0 < baseline < 1:
        raise ValueError(f"baseline={baseline}: a conversion rate strictly between 0 and 1")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha}: a significance level in (0, 1) such as 0.05")
    p = 1 - baseline if baseline > 0.5 else baseline
    if delta == 0 or not 0 < p + delta < 1:
        raise ValueError(
            f"delta={delta} with baseline={baseline}: the changed rate must differ from the "
            "baseline and stay in (0, 1)"
        )
    return p


def sample_size_exact(
    baseline: float, delta: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The sample-size equation before rounding: visitors per variation for a two-sided test
    at level ``alpha`` to detect an absolute change ``delta`` of the rate ``baseline`` with
    probability ``power``.

    With ``p = reflected_rate(baseline, delta, alpha)`` (given: it also checks the inputs),
    ``z_a = norm.ppf(1 - alpha / 2)``, ``z_b = norm.ppf(power)``,
    ``sd1 = sqrt(2 p (1 - p))`` (the spread of a difference when nothing changed) and
    ``sd2 = sqrt(p (1 - p) + (p + delta) (1 - p - delta))`` (when it did):
    ``n = (z_a sd1 + z_b sd2)**2 / delta**2``.
    """
    p = reflected_rate(baseline, delta, alpha)
    z_alpha = stats.norm.ppf(1 - alpha / 2)
    z_beta = stats.norm.ppf(power)
    sd1 = math.sqrt(2 * p * (1 - p))
    sd2 = math.sqrt(p * (1 - p) + (p + delta) * (1 - p - delta))
    return float((z_alpha * sd1 + z_beta * sd2) ** 2 / delta**2)


def sample_size(
    baseline: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    relative: bool = False,
) -> int:
    """Visitors per variation that Evan Miller's calculator gives: the sample-size equation
    (module docstring), rounded to the nearest integer (halves up, as JavaScript's
    ``Math.round``).

    ``mde`` is the minimum detectable effect: an absolute change of the rate
    (``baseline=0.2, mde=0.02``: from 20% to 22%), or with ``relative=True`` a fraction of
    the baseline (``mde=0.1``: 10% of 20%, the same 2 points). Rates above 0.5 are reflected
    (``p = 1 - baseline``): the calculator's symmetry between converting and not.

    >>> sample_size(0.2, 0.02)
    6347
    """
    delta = mde * baseline if relative else mde
    return math.floor(sample_size_exact(baseline, delta, alpha, power) + 0.5)


def statistical_power(baseline: float, delta: float, n: float, alpha: float = 0.05) -> float:
    """The power the sample-size equation promises with ``n`` visitors per variation: solve it
    for ``z_power`` and return ``Phi(z_power)``:
    ``Phi((|delta| sqrt(n) - z_{1-alpha/2} sd1) / sd2)``."""
    p = reflected_rate(baseline, delta, alpha)
    z_alpha = stats.norm.ppf(1 - alpha / 2)
    sd1 = math.sqrt(2 * p * (1 - p))
    sd2 = math.sqrt(p * (1 - p) + (p + delta) * (1 - p - delta))
    return float(stats.norm.cdf((abs(delta) * math.sqrt(n) - z_alpha * sd1) / sd2))


def minimum_detectable_effect(
    baseline: float, n: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest absolute increase ``delta > 0`` of ``baseline`` that ``n`` visitors per
    variation detect with probability ``power``: the root of ``sample_size_exact(baseline,
    delta) = n`` (Brent's method; the required n falls as delta grows)."""
    p = reflected_rate(baseline, 0.5 * (1 - baseline if baseline <= 0.5 else baseline), alpha)
    top = 1 - p - 1e-12
    if sample_size_exact(baseline, top, alpha, power) > n:
        raise ValueError(f"n={n} visitors per variation detect no change of rate {baseline}")
    return float(
        optimize.brentq(
            lambda d: sample_size_exact(baseline, d, alpha, power) - n, 1e-9, top, xtol=1e-14
        )
    )


def two_proportion_z_test(
    successes_a: int, n_a: int, successes_b: int, n_b: int
) -> tuple[float, float]:
    """The pooled two-proportion z-test of "A and B convert at one rate": ``(z, p_value)``,
    two-sided, with ``z`` positive when B's rate is higher.

    ``z = (p_b - p_a) / sqrt(p (1 - p) (1/n_a + 1/n_b))`` where ``p`` is the pooled rate
    ``(successes_a + successes_b) / (n_a + n_b)``; ``p_value = 2 * norm.sf(|z|)``. Equal to
    statsmodels' ``proportions_ztest`` (with the groups in the order B, A), and ``z**2`` is
    :func:`chi_squared_test` on the 2x2 table. A pooled rate of 0 or 1 (no difference can
    show): ``(0.0, 1.0)``.
    """
    for s, n, name in ((successes_a, n_a, "A"), (successes_b, n_b, "B")):
        if not 0 <= s <= n or n <= 0:
            raise ValueError(f"{name}: {s} successes of {n}: need 0 <= successes <= n, n > 0")
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return 0.0, 1.0
    z = (successes_b / n_b - successes_a / n_a) / se
    return z, float(2 * stats.norm.sf(abs(z)))


def chi_squared_test(table: Int[np.ndarray, "rows cols"]) -> tuple[float, float]:
    """Pearson's chi-squared test of independence on a contingency table of counts:
    ``(chi2, p_value)``. Expected counts ``E = row_total * col_total / total``;
    ``chi2 = sum((O - E)**2 / E)`` with ``(rows - 1) (cols - 1)`` degrees of freedom;
    ``p = chi2.sf``. No Yates correction (Evan Miller's page has none): equal to
    ``scipy.stats.chi2_contingency(table, correction=False)``. Raises ``ValueError`` for a
    table with a row or column of zeros (an expected count of 0)."""
    observed = np.asarray(table, dtype=np.float64)
    if observed.ndim != 2 or min(observed.shape) < 2:
        raise ValueError(f"table of shape {observed.shape}: need a 2-D table, at least 2x2")
    if (observed < 0).any():
        raise ValueError("table holds negative counts")
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    if (expected == 0).any():
        raise ValueError("a row or column of the table sums to 0: drop it")
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    dof = (observed.shape[0] - 1) * (observed.shape[1] - 1)
    return chi2, float(stats.chi2.sf(chi2, dof))


def prob_b_beats_a(
    successes_a: int,
    n_a: int,
    successes_b: int,
    n_b: int,
    samples: int = 100_000,
    seed: int = 0,
) -> float:
    """P(rate_B > rate_A) under uniform priors, by sampling: each rate's posterior is
    ``Beta(1 + successes, 1 + failures)``; draw ``samples`` rates of A, then of B, from
    ``np.random.default_rng(seed).beta`` and return the share where B's is larger. Its
    standard error is at most ``0.5 / sqrt(samples)``."""
    for s, n, name in ((successes_a, n_a, "A"), (successes_b, n_b, "B")):
        if not 0 <= s <= n:
            raise ValueError(f"{name}: {s} successes of {n}: need 0 <= successes <= n")
    rng = np.random.default_rng(seed)
    rate_a = rng.beta(1 + successes_a, 1 + n_a - successes_a, samples)
    rate_b = rng.beta(1 + successes_b, 1 + n_b - successes_b, samples)
    return float((rate_b > rate_a).mean())


def prob_b_beats_a_exact(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Evan Miller's closed form of P(rate_B > rate_A) for the Beta posteriors above
    (``alpha = 1 + successes``, ``beta = 1 + failures``)::

        sum_{i=0}^{alpha_B - 1} B(alpha_A + i, beta_A + beta_B)
                                / ((beta_B + i) B(1 + i, beta_B) B(alpha_A, beta_A))

    summed in log space (``scipy.special.betaln``)."""
    aa, ba = 1 + successes_a, 1 + n_a - successes_a
    ab, bb = 1 + successes_b, 1 + n_b - successes_b
    i = np.arange(ab)
    logs = betaln(aa + i, ba + bb) - np.log(bb + i) - betaln(1 + i, bb) - betaln(aa, ba)
    return float(np.exp(logs).sum())


def peeking_false_positive_rates(
    n_experiments: int,
    n_per_arm: int,
    peek_every: int,
    rate: float = 0.1,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Simulate ``n_experiments`` A/A tests (both arms convert at ``rate``: every "win" is a
    false positive) and return ``(peeking, fixed)``: the share declared significant when the
    experimenter runs :func:`two_proportion_z_test` after every ``peek_every`` visitors per
    arm and stops at the first ``p < alpha``, and the share when testing once, at
    ``n_per_arm``.

    Visitors: ``rng = np.random.default_rng(seed)``; ``a = rng.random((n_experiments,
    n_per_arm)) < rate``, then ``b`` the same way. Peeks at ``peek_every, 2 * peek_every, ...``
    below ``n_per_arm``, and a last look at ``n_per_arm``. Raises ``ValueError`` naming the
    value when a count is below 1.
    """
    if peek_every < 1 or n_per_arm < 1 or n_experiments < 1:
        raise ValueError(
            f"n_experiments={n_experiments}, n_per_arm={n_per_arm}, peek_every={peek_every}: "
            "all must be >= 1"
        )
    rng = np.random.default_rng(seed)
    a = rng.random((n_experiments, n_per_arm)) < rate
    b = rng.random((n_experiments, n_per_arm)) < rate
    looks = [*range(peek_every, n_per_arm, peek_every), n_per_arm]
    sa = np.cumsum(a, axis=1)[:, np.array(looks) - 1]
    sb = np.cumsum(b, axis=1)[:, np.array(looks) - 1]
    n = np.array(looks, dtype=np.float64)
    pooled = (sa + sb) / (2 * n)
    se = np.sqrt(pooled * (1 - pooled) * 2 / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (sb - sa) / n / se, 0.0)
    significant = 2 * stats.norm.sf(np.abs(z)) < alpha
    return float(significant.any(axis=1).mean()), float(significant[:, -1].mean())
