"""Realistic wrong solutions of w3d3's exercises: each must fail its checks with a message
naming the input and the value that is wrong; the reference must pass. Runs the checks in
process (tests/checkrun.py)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytest
from scipy import stats
from scipy.special import betaln
from scipy.stats import rankdata

from checkrun import assert_fails, run_checks
from mlab.analysis import ab, bootstrap, examples, paired, unpaired
from mlab.course.engine.manifest import get_day

_run = partial(run_checks, "w3d3")
_fails = partial(assert_fails, "w3d3")


@pytest.mark.parametrize("exercise", [e.name for p in get_day("w3d3").parts for e in p.exercises])
def test_the_reference_passes(exercise: str) -> None:
    _run(exercise)


# ----------------------------------------------------------------------------------------------
# part 1


def t_test_population_sd(a: Any, b: Any) -> tuple[float, float]:
    """np.std's default: the denominator n, not n - 1."""
    d = paired.paired_differences(a, b)
    if len(d) < 2:
        raise ValueError("n < 2")
    t = d.mean() / (d.std() / math.sqrt(len(d)))
    return float(t), float(2 * stats.t.sf(abs(t), len(d) - 1))


def t_test_one_sided(a: Any, b: Any) -> tuple[float, float]:
    """Forgets the factor 2 of a two-sided test."""
    t, p = paired.paired_t_test(a, b)
    return t, p / 2


def t_test_unpaired(a: Any, b: Any) -> tuple[float, float]:
    """Welch's test where the pairs should be used."""
    if len(a) != len(b):
        raise paired.ShapeError("shapes")
    if len(a) < 2:
        raise ValueError("n < 2")
    return unpaired.welch_t_test(a, b)


def t_test_nan_for_constant_differences(a: Any, b: Any) -> tuple[float, float]:
    """Returns NaN whenever s = 0, also when every difference is +1."""
    d = paired.paired_differences(a, b)
    if len(d) >= 2 and d.std(ddof=1) == 0:
        return math.nan, math.nan
    return paired.paired_t_test(a, b)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (t_test_population_sd, r"t, p_value.*random pairs"),
        (t_test_one_sided, r"t, p_value"),
        (t_test_unpaired, r"t, p_value"),
        (t_test_nan_for_constant_differences, r"every difference the same"),
    ],
)
def test_wrong_paired_t_test_fails(wrong: Callable[..., Any], message: str) -> None:
    _fails("paired_t_test", wrong, message)


def null_counts_ranks_from_zero(n: int) -> list[int]:
    """Ranks 0..n-1 instead of 1..n."""
    counts = [1]
    for r in range(n):
        grown = counts + [0] * r
        for k, c in enumerate(counts):
            grown[k + r] += c
        counts = grown
    return counts


def test_wrong_null_counts_fail() -> None:
    _fails("wilcoxon_null_counts", null_counts_ranks_from_zero, r"n=1|counts")


def wilcoxon_keeps_zeros(a: Any, b: Any, method: str = "auto") -> tuple[float, float]:
    """Ranks the zero differences too (they push the other ranks up)."""
    d = paired.paired_differences(a, b)
    d = np.where(d == 0, 1e-300, d)  # as if zero were a tiny positive difference
    return paired.wilcoxon_signed_rank(d, np.zeros_like(d), method)


def wilcoxon_statistic_w_plus(a: Any, b: Any, method: str = "auto") -> tuple[float, float]:
    """Returns W+ as the statistic instead of min(W+, W-)."""
    d = paired.paired_differences(a, b)
    nonzero = d[d != 0]
    ranks = rankdata(np.abs(nonzero))
    return float(ranks[nonzero > 0].sum()), paired.wilcoxon_signed_rank(a, b, method)[1]


def wilcoxon_no_tie_correction(a: Any, b: Any, method: str = "auto") -> tuple[float, float]:
    """The asymptotic variance without the tie term."""
    d = paired.paired_differences(a, b)
    nonzero = d[d != 0]
    m = len(nonzero)
    ranks = rankdata(np.abs(nonzero))
    w_plus, w_minus = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    ties = len(np.unique(ranks)) < m or m < len(d)
    if method == "exact" or (method == "auto" and not ties and len(d) <= 50):
        return paired.wilcoxon_signed_rank(a, b, "exact")
    var = m * (m + 1) * (2 * m + 1) / 24
    if var == 0:
        return float(min(w_plus, w_minus)), math.nan
    z = (w_plus - m * (m + 1) / 4) / math.sqrt(var)
    return float(min(w_plus, w_minus)), float(2 * stats.norm.sf(abs(z)))


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (wilcoxon_keeps_zeros, r"statistic, p_value"),
        (wilcoxon_statistic_w_plus, r"statistic, p_value"),
        (wilcoxon_no_tie_correction, r"ties"),
    ],
)
def test_wrong_wilcoxon_fails(wrong: Callable[..., Any], message: str) -> None:
    _fails("wilcoxon_signed_rank", wrong, message)


def bootstrap_with_choice(
    x: Any,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    method: str = "percentile",
) -> tuple[float, float]:
    """Resamples one row at a time with rng.choice: other draws than scipy's."""
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.array([rng.choice(x, len(x)).mean() for _ in range(n_resamples)])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def bootstrap_alpha_not_halved(
    x: Any,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    method: str = "percentile",
) -> tuple[float, float]:
    """Puts all of 1 - confidence in each tail."""
    wide = 1 - 2 * (1 - confidence)
    if not 0 < confidence < 1 or wide <= 0:
        raise ValueError("confidence")
    return bootstrap.bootstrap_ci(x, wide, n_resamples, seed, method)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [(bootstrap_with_choice, r"low, high"), (bootstrap_alpha_not_halved, r"low, high|confidence")],
)
def test_wrong_bootstrap_fails(wrong: Callable[..., Any], message: str) -> None:
    _fails("bootstrap_ci", wrong, message)


def student_t_test(a: Any, b: Any) -> tuple[float, float]:
    """Pooled variance (Student), not Welch."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("n < 2")
    res = stats.ttest_ind(a, b, equal_var=True)
    return float(res.statistic), float(res.pvalue)


def test_wrong_welch_fails() -> None:
    _fails("welch_t_test", student_t_test, r"different spreads|t, p_value")


# ----------------------------------------------------------------------------------------------
# part 2


def worst_reversed_argsort(losses: Any, k: int) -> list[int]:
    """np.argsort(losses)[::-1]: ties come out in reverse index order."""
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1:
        raise examples.ShapeError("1-D")
    if k < 0 or np.isnan(losses).any():
        raise ValueError("k or NaN")
    return [int(i) for i in np.argsort(losses)[::-1][:k]]


def worst_nan_unchecked(losses: Any, k: int) -> list[int]:
    """No NaN check: NaN sorts last and is never seen."""
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1:
        raise examples.ShapeError("1-D")
    if k < 0:
        raise ValueError("k")
    return [int(i) for i in np.argsort(-losses, kind="stable")[:k]]


@pytest.mark.parametrize(
    ("wrong", "message"),
    [(worst_reversed_argsort, r"indices.*ties"), (worst_nan_unchecked, r"NaN")],
)
def test_wrong_worst_examples_fails(wrong: Callable[..., Any], message: str) -> None:
    _fails("worst_examples", wrong, message)


def disagreements_signed(a: Any, b: Any, k: int) -> list[int]:
    """Ranks a - b, so only the examples where A is worse come first."""
    if np.shape(a) != np.shape(b):
        raise examples.ShapeError("shapes")
    return examples.worst_examples(np.asarray(a) - np.asarray(b), k)


def test_wrong_disagreements_fail() -> None:
    _fails("largest_disagreements", disagreements_signed, r"indices")


# ----------------------------------------------------------------------------------------------
# part 3


def sample_size_one_sided(
    baseline: float, delta: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """z_{1-alpha} instead of z_{1-alpha/2}."""
    return ab.sample_size_exact(baseline, delta, 2 * alpha, power)


def sample_size_no_reflection(
    baseline: float, delta: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Uses the baseline as given above 0.5 as well."""
    ab.reflected_rate(baseline, delta, alpha)
    p = baseline
    za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    sd1 = math.sqrt(2 * p * (1 - p))
    sd2 = math.sqrt(p * (1 - p) + (p + delta) * (1 - p - delta))
    return (za * sd1 + zb * sd2) ** 2 / delta**2


@pytest.mark.parametrize(
    ("wrong", "message"),
    [(sample_size_one_sided, r"1030|visitors"), (sample_size_no_reflection, r"baseline = 0\.[78]")],
)
def test_wrong_sample_size_fails(wrong: Callable[..., Any], message: str) -> None:
    _fails("sample_size_exact", wrong, message)


def z_test_unpooled(sa: int, na: int, sb: int, nb: int) -> tuple[float, float]:
    """Each group's own variance instead of the pooled rate's."""
    if not (0 <= sa <= na and 0 <= sb <= nb):
        raise ValueError("counts")
    pa, pb = sa / na, sb / nb
    se = math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    if se == 0:
        return 0.0, 1.0
    z = (pb - pa) / se
    return z, float(2 * stats.norm.sf(abs(z)))


def test_wrong_z_test_fails() -> None:
    _fails("two_proportion_z_test", z_test_unpooled, r"z, p_value")


def chi_squared_with_yates(table: Any) -> tuple[float, float]:
    """scipy's default: Yates' continuity correction on 2x2 tables."""
    table = np.asarray(table)
    if table.ndim != 2 or min(table.shape) < 2 or (table.sum(0) == 0).any():
        raise ValueError("table")
    res = stats.chi2_contingency(table)
    return float(res.statistic), float(res.pvalue)


def test_wrong_chi_squared_fails() -> None:
    _fails("chi_squared_test", chi_squared_with_yates, r"chi2, p_value")


def bayes_without_prior(
    sa: int, na: int, sb: int, nb: int, samples: int = 100_000, seed: int = 0
) -> float:
    """Beta(successes, failures): no uniform prior (and a crash-free hack for zeros)."""
    if not (0 <= sa <= na and 0 <= sb <= nb):
        raise ValueError("counts")
    rng = np.random.default_rng(seed)
    ra = rng.beta(max(sa, 1e-3), max(na - sa, 1e-3), samples)
    rb = rng.beta(max(sb, 1e-3), max(nb - sb, 1e-3), samples)
    return float((rb > ra).mean())


def bayes_global_rng(
    sa: int, na: int, sb: int, nb: int, samples: int = 100_000, seed: int = 0
) -> float:
    """Draws from np.random's global generator: the seed does nothing."""
    if not (0 <= sa <= na and 0 <= sb <= nb):
        raise ValueError("counts")
    ra = np.random.beta(1 + sa, 1 + na - sa, samples)
    rb = np.random.beta(1 + sb, 1 + nb - sb, samples)
    return float((rb > ra).mean())


@pytest.mark.parametrize(
    ("wrong", "message"),
    [(bayes_without_prior, r"P\(rate_B > rate_A\)"), (bayes_global_rng, r"seed")],
)
def test_wrong_bayes_fails(wrong: Callable[..., Any], message: str) -> None:
    _fails("prob_b_beats_a", wrong, message)


def exact_swapped(sa: int, na: int, sb: int, nb: int) -> float:
    """Sums over alpha_A's terms with the roles of A and B mixed up: P(A > B)."""
    return ab.prob_b_beats_a_exact(sb, nb, sa, na)


def exact_off_by_one(sa: int, na: int, sb: int, nb: int) -> float:
    """Sums i = 0 .. alpha_B (one term too many)."""
    aa, ba, ab_, bb = 1 + sa, 1 + na - sa, 1 + sb, 1 + nb - sb
    i = np.arange(ab_ + 1)
    logs = betaln(aa + i, ba + bb) - np.log(bb + i) - betaln(1 + i, bb) - betaln(aa, ba)
    return float(np.exp(logs).sum())


@pytest.mark.parametrize("wrong", [exact_swapped, exact_off_by_one])
def test_wrong_exact_bayes_fails(wrong: Callable[..., Any]) -> None:
    _fails("prob_b_beats_a_exact", wrong, r"P\(rate_B > rate_A\)")


def peeking_skips_the_last_look(
    n_experiments: int,
    n_per_arm: int,
    peek_every: int,
    rate: float = 0.1,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Looks at peek_every, 2 peek_every, ... only: never at n_per_arm when it is not a multiple."""
    if peek_every < 1:
        raise ValueError("peek_every")
    usable = n_per_arm - n_per_arm % peek_every or n_per_arm
    rng = np.random.default_rng(seed)
    a = rng.random((n_experiments, n_per_arm)) < rate
    b = rng.random((n_experiments, n_per_arm)) < rate
    looks = list(range(peek_every, usable + 1, peek_every))
    hits = np.zeros((n_experiments, len(looks)), dtype=bool)
    for j, look in enumerate(looks):
        for i in range(n_experiments):
            _, p = ab.two_proportion_z_test(
                int(a[i, :look].sum()), look, int(b[i, :look].sum()), look
            )
            hits[i, j] = p < alpha
    return float(hits.any(axis=1).mean()), float(hits[:, -1].mean())


def test_wrong_peeking_fails() -> None:
    _fails("peeking_false_positive_rates", peeking_skips_the_last_look, r"peeking, fixed")
