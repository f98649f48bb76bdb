"""Checks for part 3 of w3d3: the A/B tools. The sample-size equation against Evan Miller's
published formula and his calculator's worked example (20% baseline, 5 points: 1,030 per
variation); the z-test against the chi-squared test of ``scipy.stats.chi2_contingency`` (z
squared) and the normal distribution; chi-squared tables against ``chi2_contingency``
(``correction=False``); P(B > A), closed form and sampled, against numerical integration
(``scipy.integrate.quad``); the peeking simulation against a loop of ``chi2_contingency``
tests on the same simulated visitors."""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, stats

from mlab.course.engine.checks import Namespace, check
from mlab.testing import assert_close, assert_raises, case, expect

RTOL, ATOL = 1e-9, 1e-12


@check("sample_size_exact")
def sample_size_matches_the_published_formula(ns: Namespace) -> None:
    with case("Evan Miller's calculator: baseline 20%, +5 points, alpha 5%, power 80%"):
        n = ns.sample_size_exact(0.2, 0.05)
        expect(abs(n - 1030) < 0.5, f"expected about 1030 per variation, got {n}")
    settings = [
        (0.1, 0.02, 0.05, 0.8),
        (0.03, -0.01, 0.01, 0.9),  # a decrease
        (0.7, 0.05, 0.1, 0.6),  # above 0.5: reflected to 0.3
        (0.8, -0.1, 0.05, 0.8),  # reflected to 0.2, a decrease
        (0.5, 0.2, 0.2, 0.95),
    ]
    for p0, delta, alpha, power in settings:
        with case("", baseline=p0, delta=delta, alpha=alpha, power=power):
            p = min(p0, 1 - p0)
            za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
            sd1 = math.sqrt(2 * p * (1 - p))
            sd2 = math.sqrt(p * (1 - p) + (p + delta) * (1 - p - delta))
            want = (za * sd1 + zb * sd2) ** 2 / delta**2
            got = ns.sample_size_exact(p0, delta, alpha, power)
            assert_close(got, want, rtol=RTOL, what="visitors per variation")
    with case("baseline=1.2"):
        assert_raises(ns.sample_size_exact, 1.2, 0.01, exc=ValueError)


def _z_from_chi2(sa: int, na: int, sb: int, nb: int) -> tuple[float, float]:
    table = np.array([[sa, na - sa], [sb, nb - sb]])
    chi2, p = stats.chi2_contingency(table, correction=False)[:2]
    sign = 1.0 if sb / nb > sa / na else -1.0
    return sign * math.sqrt(chi2), float(p)


COUNTS = [
    (100, 1000, 130, 1000),
    (30, 200, 12, 150),
    (5, 40, 1, 37),
    (0, 10, 3, 12),
    (50, 50, 49, 50),  # every visitor of A converted
    (1, 1, 0, 3),  # one visitor
]


@check("two_proportion_z_test")
def z_test_is_the_root_of_chi_squared(ns: Namespace) -> None:
    for sa, na, sb, nb in COUNTS:
        with case("", successes_a=sa, n_a=na, successes_b=sb, n_b=nb):
            got = ns.two_proportion_z_test(sa, na, sb, nb)
            assert_close(
                got, _z_from_chi2(sa, na, sb, nb), rtol=RTOL, atol=ATOL, what="(z, p_value)"
            )
    with case("no successes anywhere: nothing can differ"):
        assert_close(ns.two_proportion_z_test(0, 10, 0, 20), (0.0, 1.0), what="(z, p_value)")
    with case("12 successes of 10"):
        assert_raises(ns.two_proportion_z_test, 12, 10, 1, 10, exc=ValueError)
    with case("successes_b=-1"):
        assert_raises(ns.two_proportion_z_test, 1, 10, -1, 10, exc=ValueError)
    with case("n_a=0 (no visitors)"):
        assert_raises(ns.two_proportion_z_test, 0, 0, 1, 10, exc=ValueError)


@check("chi_squared_test")
def chi_squared_matches_chi2_contingency(ns: Namespace) -> None:
    rng = np.random.default_rng(2)
    tables = {
        f"{sa}/{na} against {sb}/{nb}": np.array([[sa, na - sa], [sb, nb - sb]])
        for sa, na, sb, nb in COUNTS
    }
    tables |= {
        f"a random {r}x{c} table": rng.integers(1, 50, (r, c)) for r, c in ((2, 3), (3, 2), (4, 5))
    }
    for name, table in tables.items():
        with case(name, table=table):
            chi2, p = stats.chi2_contingency(table, correction=False)[:2]
            assert_close(
                ns.chi_squared_test(table),
                (float(chi2), float(p)),
                rtol=RTOL,
                atol=ATOL,
                what="(chi2, p_value)",
            )
    with case("a column of zeros"):
        assert_raises(ns.chi_squared_test, np.array([[0, 5], [0, 7]]), exc=ValueError)
    with case("a count of -1"):
        assert_raises(ns.chi_squared_test, np.array([[-1, 5], [3, 4]]), exc=ValueError)
    with case("a 1x3 table"):
        assert_raises(ns.chi_squared_test, np.array([[1, 2, 3]]), exc=ValueError)


def _by_integration(sa: int, na: int, sb: int, nb: int) -> float:
    post_a, post_b = stats.beta(1 + sa, 1 + na - sa), stats.beta(1 + sb, 1 + nb - sb)
    points = sorted({float(post_a.mean()), float(post_b.mean())})
    value, _ = integrate.quad(
        lambda x: post_b.pdf(x) * post_a.cdf(x), 0, 1, points=points, limit=200
    )
    return float(value)


BAYES = [(100, 1000, 130, 1000), (3, 10, 5, 12), (0, 3, 2, 4), (4, 4, 1, 6), (0, 5, 0, 5)]


@check("prob_b_beats_a_exact")
def closed_form_matches_integration(ns: Namespace) -> None:
    for counts in BAYES:
        with case("", successes_a=counts[0], n_a=counts[1], successes_b=counts[2], n_b=counts[3]):
            got = ns.prob_b_beats_a_exact(*counts)
            assert_close(
                got, _by_integration(*counts), atol=1e-8, rtol=0, what="P(rate_B > rate_A)"
            )


@check("prob_b_beats_a")
def sampling_matches_integration(ns: Namespace) -> None:
    samples = 100_000
    tolerance = 4 * 0.5 / math.sqrt(samples)  # four standard errors at worst
    for counts in BAYES[:4]:
        with case(
            f"{samples} samples (within {tolerance:.4f})",
            successes_a=counts[0],
            n_a=counts[1],
            successes_b=counts[2],
            n_b=counts[3],
        ):
            got = ns.prob_b_beats_a(*counts, samples=samples, seed=3)
            assert_close(
                got, _by_integration(*counts), atol=tolerance, rtol=0, what="P(rate_B > rate_A)"
            )
    with case("the same seed twice, then another seed"):
        first = ns.prob_b_beats_a(3, 10, 5, 12, samples=2000, seed=1)
        expect(
            first == ns.prob_b_beats_a(3, 10, 5, 12, samples=2000, seed=1),
            "two calls with seed=1 gave different answers: draw from "
            "np.random.default_rng(seed), not from the global generator",
        )
        expect(
            first != ns.prob_b_beats_a(3, 10, 5, 12, samples=2000, seed=2),
            "seed=1 and seed=2 gave the same answer: pass seed to default_rng",
        )
    # NumPy's beta() rejects these too, but with "a <= 0": the message must name the count.
    with case("7 successes of 4"):
        assert_raises(ns.prob_b_beats_a, 7, 4, 1, 4, exc=ValueError, match="7")
    with case("-1 successes of 4"):
        assert_raises(ns.prob_b_beats_a, 2, 4, -1, 4, exc=ValueError, match="-1")


def _peeking_by_loop(
    n_exp: int, n_arm: int, every: int, rate: float, seed: int
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    a = rng.random((n_exp, n_arm)) < rate
    b = rng.random((n_exp, n_arm)) < rate
    looks = sorted({*range(every, n_arm + 1, every), n_arm})
    stopped = at_end = 0
    for i in range(n_exp):
        found = []
        for look in looks:
            sa, sb = int(a[i, :look].sum()), int(b[i, :look].sum())
            table = np.array([[sa, look - sa], [sb, look - sb]])
            found.append(
                bool(table.sum(0).min() > 0 and stats.chi2_contingency(table, False)[1] < 0.05)
            )
        stopped += any(found)
        at_end += found[-1]
    return stopped / n_exp, at_end / n_exp


@check("peeking_false_positive_rates")
def peeking_matches_a_loop_of_chi_squared_tests(ns: Namespace) -> None:
    for n_exp, n_arm, every, rate, seed in (
        (40, 90, 20, 0.3, 7),
        (80, 52, 7, 0.5, 1),
        (25, 60, 60, 0.2, 2),
        (40, 61, 20, 0.3, 3),  # looks at 20, 40, 60 and 61
        (1, 1, 1, 0.5, 4),  # one experiment, one visitor per arm
        (30, 40, 1, 0.4, 5),
    ):
        with case("", n_experiments=n_exp, n_per_arm=n_arm, peek_every=every, rate=rate, seed=seed):
            got = ns.peeking_false_positive_rates(n_exp, n_arm, every, rate=rate, seed=seed)
            assert_close(
                got,
                _peeking_by_loop(n_exp, n_arm, every, rate, seed),
                rtol=0,
                atol=1e-12,
                what="(peeking, fixed)",
            )
    for args in ((10, 10, 0), (10, 0, 1), (0, 10, 1)):
        with case("", n_experiments=args[0], n_per_arm=args[1], peek_every=args[2]):
            assert_raises(ns.peeking_false_positive_rates, *args, exc=ValueError, match="=0")
    with case("alpha=0.2: more false positives than at 0.05"):
        strict = ns.peeking_false_positive_rates(200, 100, 25, seed=4)
        loose = ns.peeking_false_positive_rates(200, 100, 25, alpha=0.2, seed=4)
        expect(loose[1] > strict[1], f"alpha=0.2 gave {loose}, alpha=0.05 {strict}")
