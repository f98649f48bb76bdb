"""mlab.analysis against the real thing: scipy.stats (tests, bootstrap), statsmodels
(two-proportion z-test), numerical integration (Bayesian P(B > A)), Monte Carlo (power,
peeking), over random and edge inputs (ties, zero differences, n = 2)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import integrate, stats

from mlab.analysis import ab
from mlab.analysis.bootstrap import bootstrap_ci
from mlab.analysis.paired import paired_t_test, wilcoxon_signed_rank
from mlab.analysis.unpaired import mann_whitney_u, welch_t_test
from mlab.errors import ShapeError


def _close(got: tuple[float, ...], want: tuple[float, ...], rtol: float = 1e-10) -> None:
    np.testing.assert_allclose(got, np.asarray(want, dtype=float), rtol=rtol, atol=1e-14)


def _pairs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random pairs; every third with ties (rounded), every fifth with zero differences."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 90))
    a = rng.normal(size=n) * rng.uniform(0.1, 5)
    b = a + rng.normal(rng.uniform(-0.5, 0.5), 1, size=n)
    if seed % 3 == 0:
        a, b = np.round(a), np.round(b)
    if seed % 5 == 0:
        b[: n // 3] = a[: n // 3]
    return a, b


EDGES = [
    ([1.0, 2.0], [0.0, 3.0]),  # n = 2
    ([1.0, 2.0], [0.5, 1.0]),  # n = 2, one sign
    ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),  # every difference zero
    ([1.0, 2.0, 3.0], [0.0, 1.0, 2.0]),  # every difference the same
    ([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 2.0, 5.0, 3.0]),  # ties and a zero
    ([3.0, 1.0, 4.0, 1.0, 5.0, 9.0], [2.0, 0.0, 3.0, 0.0, 4.0, 8.0]),  # all tied at 1
]


@pytest.mark.parametrize("seed", range(60))
def test_paired_tests_equal_scipy_on_random_pairs(seed: int) -> None:
    a, b = _pairs(seed)
    ref = stats.ttest_rel(a, b)
    _close(paired_t_test(a, b), (ref.statistic, ref.pvalue))
    d = a - b
    clean = len(a) <= 50 and np.all(d != 0) and len(np.unique(np.abs(d))) == len(d)
    ref = stats.wilcoxon(a, b, method="auto" if clean else "asymptotic")
    _close(wilcoxon_signed_rank(a, b), (ref.statistic, ref.pvalue))
    for method in ("exact", "asymptotic"):
        if method == "exact" and len(a) > 40:
            continue
        ref = stats.wilcoxon(a, b, method=method)
        _close(wilcoxon_signed_rank(a, b, method), (ref.statistic, ref.pvalue))


@pytest.mark.parametrize("a,b", EDGES)
def test_paired_tests_equal_scipy_on_edge_inputs(a: list[float], b: list[float]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about the degenerate ones
        ref = stats.ttest_rel(a, b)
        np.testing.assert_allclose(paired_t_test(np.array(a), np.array(b)), ref[:2], rtol=1e-10)
        for method in ("exact", "asymptotic"):
            ref = stats.wilcoxon(a, b, method=method)
            got = wilcoxon_signed_rank(np.array(a), np.array(b), method)
            np.testing.assert_allclose(got, ref[:2], rtol=1e-10)


def test_paired_tests_reject_what_does_not_pair() -> None:
    with pytest.raises(ShapeError, match="same example"):
        paired_t_test(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="at least 2"):
        paired_t_test(np.zeros(1), np.ones(1))
    with pytest.raises(ValueError, match="NaN"):
        wilcoxon_signed_rank(np.array([1.0, np.nan]), np.zeros(2))
    with pytest.raises(ValueError, match="method='exakt'"):
        wilcoxon_signed_rank(np.ones(3), np.zeros(3), "exakt")


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("method", ["percentile", "basic", "BCa"])
def test_bootstrap_ci_equals_scipy(seed: int, method: str) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_exponential(int(rng.integers(2, 60))) - 0.8
    if seed % 4 == 0:
        x = np.round(x)
    confidence = (0.95, 0.9, 0.5)[seed % 3]
    ref = stats.bootstrap(
        (x,), np.mean, confidence_level=confidence, n_resamples=999, rng=seed, method=method
    ).confidence_interval
    got = bootstrap_ci(x, confidence, n_resamples=999, seed=seed, method=method)
    _close(got, (ref.low, ref.high))


def test_bootstrap_ci_covers_the_true_mean_about_as_often_as_promised() -> None:
    rng = np.random.default_rng(5)
    hits = 0
    for i in range(200):
        x = rng.normal(1.0, 2.0, size=40)
        low, high = bootstrap_ci(x, 0.9, n_resamples=400, seed=i)
        hits += low <= 1.0 <= high
    assert 0.8 <= hits / 200 <= 0.97, hits


@pytest.mark.parametrize("seed", range(30))
def test_unpaired_tests_equal_scipy(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    a = rng.normal(0, rng.uniform(0.2, 3), size=int(rng.integers(2, 70)))
    b = rng.normal(0.3, rng.uniform(0.2, 3), size=int(rng.integers(2, 70)))
    if seed % 3 == 0:
        a, b = np.round(a), np.round(b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    _close(welch_t_test(a, b), (ref.statistic, ref.pvalue))
    ref = stats.mannwhitneyu(a, b, method="asymptotic")
    _close(mann_whitney_u(a, b), (ref.statistic, ref.pvalue))


def test_pairing_finds_what_the_unpaired_test_misses() -> None:
    """The point of the day: a small, consistent improvement on examples of very different
    difficulty. Paired: decisive; Welch: nothing."""
    rng = np.random.default_rng(0)
    difficulty = rng.exponential(2.0, size=200)
    a = difficulty + rng.normal(0, 0.05, size=200)
    b = difficulty - 0.03 + rng.normal(0, 0.05, size=200)
    assert paired_t_test(a, b)[1] < 1e-6
    assert welch_t_test(a, b)[1] > 0.5


# ----------------------------------------------------------------------------------------------
# A/B tools


def test_sample_size_is_evan_millers_published_equation() -> None:
    # The calculator's worked default: baseline 20%, 2 points absolute, 5% / 80%.
    assert ab.sample_size(0.2, 0.02) == 6347
    assert ab.sample_size(0.2, 0.1, relative=True) == 6347
    for p, delta, alpha, pw in [
        (0.1, 0.02, 0.05, 0.8),
        (0.03, -0.01, 0.01, 0.9),
        (0.7, 0.05, 0.1, 0.5),
    ]:
        q = min(p, 1 - p)
        za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(pw)
        sd1 = math.sqrt(2 * q * (1 - q))
        sd2 = math.sqrt(q * (1 - q) + (q + delta) * (1 - q - delta))
        n = (za * sd1 + zb * sd2) ** 2 / delta**2
        assert ab.sample_size_exact(p, delta, alpha, pw) == pytest.approx(n, rel=1e-12)
        assert ab.sample_size(p, delta, alpha, pw) == math.floor(n + 0.5)
        assert ab.statistical_power(p, delta, n, alpha) == pytest.approx(pw, rel=1e-9)
        if delta > 0:
            assert ab.minimum_detectable_effect(p, n, alpha, pw) == pytest.approx(delta, rel=1e-7)


def test_sample_size_delivers_its_power_in_simulation() -> None:
    """Run many A/B tests of the size the calculator asks for, with the effect present: the
    pooled z-test finds it about `power` of the time. A little less, in fact: the equation
    takes the null's variance at the baseline rate, the test at the (higher) pooled rate;
    statsmodels' power, which pools, predicts the simulation to within its noise."""
    from statsmodels.stats.proportion import power_proportions_2indep

    p, delta = 0.1, 0.03
    n = ab.sample_size(p, delta)
    rng = np.random.default_rng(0)
    sa = rng.binomial(n, p, size=4000)
    sb = rng.binomial(n, p + delta, size=4000)
    tests = [ab.two_proportion_z_test(a, n, b, n)[1] < 0.05 for a, b in zip(sa, sb, strict=True)]
    found = float(np.mean(tests))
    assert abs(found - 0.8) < 0.05, found
    pooled = power_proportions_2indep(delta, p, n, alpha=0.05).power
    assert abs(found - pooled) < 3 * math.sqrt(0.8 * 0.2 / 4000), (found, pooled)


@pytest.mark.parametrize(
    "counts", [(100, 1000, 130, 1000), (5, 40, 1, 37), (0, 10, 3, 12), (50, 50, 49, 50)]
)
def test_z_test_equals_statsmodels_and_chi_squared_equals_scipy(counts: tuple[int, ...]) -> None:
    from statsmodels.stats.proportion import proportions_ztest

    sa, na, sb, nb = counts
    z, p = proportions_ztest([sb, sa], [nb, na])
    _close(ab.two_proportion_z_test(sa, na, sb, nb), (z, p))
    table = np.array([[sa, na - sa], [sb, nb - sb]])
    ref = stats.chi2_contingency(table, correction=False)
    _close(ab.chi_squared_test(table), (ref.statistic, ref.pvalue))
    assert ab.chi_squared_test(table)[0] == pytest.approx(z**2, rel=1e-10)


def test_chi_squared_equals_scipy_on_larger_tables() -> None:
    rng = np.random.default_rng(3)
    for shape in ((2, 3), (3, 3), (4, 2), (5, 6)):
        table = rng.integers(1, 60, size=shape)
        ref = stats.chi2_contingency(table, correction=False)
        _close(ab.chi_squared_test(table), (ref.statistic, ref.pvalue))
    with pytest.raises(ValueError, match="sums to 0"):
        ab.chi_squared_test(np.array([[0, 0], [3, 4]]))


@pytest.mark.parametrize(
    "counts", [(100, 1000, 130, 1000), (3, 10, 5, 12), (0, 5, 0, 5), (40, 400, 35, 380)]
)
def test_bayesian_b_beats_a_equals_numerical_integration(counts: tuple[int, ...]) -> None:
    sa, na, sb, nb = counts
    post_a = stats.beta(1 + sa, 1 + na - sa)
    post_b = stats.beta(1 + sb, 1 + nb - sb)
    points = sorted({post_a.mean(), post_b.mean()})
    want, err = integrate.quad(
        lambda x: post_b.pdf(x) * post_a.cdf(x), 0, 1, points=points, limit=200
    )
    assert err < 1e-7
    assert ab.prob_b_beats_a_exact(sa, na, sb, nb) == pytest.approx(want, abs=1e-8)
    samples = 200_000
    got = ab.prob_b_beats_a(sa, na, sb, nb, samples=samples, seed=1)
    assert abs(got - want) < 4 * 0.5 / math.sqrt(samples)


def test_peeking_inflates_false_positives() -> None:
    peeking, fixed = ab.peeking_false_positive_rates(3000, 500, 25, rate=0.2, seed=0)
    # One look: a false positive 5% of the time (binomial noise of 3000 A/A tests: +-1.2%).
    assert abs(fixed - 0.05) < 0.012, fixed
    # Twenty looks: several times that (Evan Miller's table: about 25% for 20 looks).
    assert peeking > 3 * fixed, (peeking, fixed)
    again = ab.peeking_false_positive_rates(3000, 500, 500, rate=0.2, seed=0)
    assert again[0] == again[1] == fixed


def test_peeking_matches_a_loop_of_scipy_chi_squared_tests() -> None:
    """The vectorised simulation against its plain reading: a chi-squared test at each look
    (z-test squared), for 60 experiments with the same draws."""
    n_exp, n_arm, every = 60, 90, 20
    rng = np.random.default_rng(7)
    a = rng.random((n_exp, n_arm)) < 0.3
    b = rng.random((n_exp, n_arm)) < 0.3
    stopped = 0
    for i in range(n_exp):
        for look in (20, 40, 60, 80, 90):
            sa, sb = int(a[i, :look].sum()), int(b[i, :look].sum())
            table = np.array([[sa, look - sa], [sb, look - sb]])
            if table.sum(0).min() > 0 and stats.chi2_contingency(table, False)[1] < 0.05:
                stopped += 1
                break
    got = ab.peeking_false_positive_rates(n_exp, n_arm, every, rate=0.3, seed=7)
    assert got[0] == stopped / n_exp


def test_ab_tools_reject_impossible_inputs() -> None:
    with pytest.raises(ValueError, match=r"baseline=1\.2"):
        ab.sample_size(1.2, 0.01)
    with pytest.raises(ValueError, match="delta=0"):
        ab.sample_size(0.2, 0)
    with pytest.raises(ValueError, match="12 successes of 10"):
        ab.two_proportion_z_test(12, 10, 1, 10)


@pytest.mark.parametrize(
    "module", ["mlab.analysis.paired", "mlab.analysis.ab", "mlab.analysis.examples"]
)
def test_docstring_examples_run(module: str) -> None:
    """The examples in the docstrings (shown in the learner's stubs) print what they say."""
    import doctest
    import importlib

    mod = importlib.import_module(module)
    result = doctest.testmod(mod, extraglobs={"np": np}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
