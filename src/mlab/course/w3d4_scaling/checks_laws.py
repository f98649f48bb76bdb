"""Checks for part 1 of w3d4: ``fit_power_law`` recovers known exponents (Kaplan et al.'s and
Hoffmann et al.'s published fits among them) from exact synthetic data, and on noisy data
reaches the least-squares optimum ``scipy.optimize.curve_fit`` finds from the true parameters;
``bootstrap_power_law`` refits exactly the resamples that ``torch.randint`` draws (redraws
included, the generator left where they leave it), each compared with ``curve_fit``."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import curve_fit

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import assert_close, assert_equal, assert_raises, case, expect

F64 = torch.float64

# (a, alpha, c, smallest n, largest n): textbook shapes and the published fits
KNOWN = [
    (5.0, 0.3, 1.5, 1e3, 1e6),
    (406.4, 0.34, 1.69, 1e7, 1e10),  # Hoffmann et al. (2022): A / N^alpha + E
    (410.7, 0.28, 1.69, 1e9, 1e12),  # ... and B / D^beta + E: the data exponent
    (2.0, 1.2, 0.0, 10.0, 1e4),  # a steep law with no floor
    (50.0, 0.05, 0.5, 1e3, 1e8),  # a shallow one
]


def _law(x: np.ndarray, a: float, alpha: float, c: float) -> np.ndarray:
    return a * x**-alpha + c


def _reference_fit(n: torch.Tensor, loss: torch.Tensor, p0: list[float]) -> np.ndarray:
    params, _ = curve_fit(_law, n.double().numpy(), loss.double().numpy(), p0=p0, maxfev=20000)
    return np.asarray(params)


def _noisy(seed: int, sizes: list[float], a: float, alpha: float, c: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = torch.tensor(sizes, dtype=F64)
    return a * n**-alpha + c + 0.01 * torch.randn(len(sizes), generator=g, dtype=F64)


@check("fit_power_law")
def recovers_known_exponents(ns: Namespace) -> None:
    for a, alpha, c, lo, hi in KNOWN:
        n = torch.logspace(np.log10(lo), np.log10(hi), 6, dtype=F64)
        loss = a * n**-alpha + c
        with case(f"exact data L = {a} * n^-{alpha} + {c}, n from {lo:g} to {hi:g}", n=n):
            fit = ns.fit_power_law(n, loss)
            assert_close(fit.alpha, alpha, rtol=1e-6, atol=0, what="alpha")
            assert_close(fit.a, a, rtol=1e-5, atol=0, what="a")
            assert_close(fit.c, c, rtol=0, atol=1e-6, what="c")
            expect(fit.sse < 1e-12, f"sse should be ~0 on exact data, got {fit.sse:.3g}")


@check("fit_power_law")
def matches_curve_fit_on_noisy_data(ns: Namespace) -> None:
    cases = [
        ([2e3, 5e3, 1e4, 3e4, 1e5, 3e5, 1e6], (20.0, 0.35, 1.2), 0),
        ([1e3, 1e3, 4e3, 4e3, 16e3, 16e3, 64e3, 64e3], (8.0, 0.25, 1.0), 1),  # two seeds each
        ([3e2, 1e3, 3e3, 1e4], (3.0, 0.5, 2.0), 2),
    ]
    for sizes, truth, seed in cases:
        n = torch.tensor(sizes, dtype=F64)
        loss = _noisy(seed, sizes, *truth)
        want = _reference_fit(n, loss, list(truth))
        want_sse = float(((loss.numpy() - _law(n.numpy(), *want)) ** 2).sum())
        with case(
            f"{len(sizes)} noisy runs around L = {truth[0]} n^-{truth[1]} + {truth[2]}",
            n=n,
            loss=loss,
        ):
            fit = ns.fit_power_law(n, loss)
            assert_close(fit.alpha, float(want[1]), rtol=1e-5, atol=0, what="alpha (curve_fit's)")
            assert_close(fit.a, float(want[0]), rtol=1e-4, atol=0, what="a (curve_fit's)")
            assert_close(fit.c, float(want[2]), rtol=0, atol=1e-5, what="c (curve_fit's)")
            got_sse = float(((loss.numpy() - _law(n.numpy(), fit.a, fit.alpha, fit.c)) ** 2).sum())
            assert_close(
                fit.sse,
                got_sse,
                rtol=1e-6,
                atol=1e-15,
                what="sse (the squared residuals of the returned a, alpha, c)",
            )
            assert_close(got_sse, want_sse, rtol=1e-6, atol=1e-15, what="sse vs curve_fit's")
        with case("the same runs in another order, as float32", n=n.flip(0).float()):
            again = ns.fit_power_law(n.flip(0).float(), loss.flip(0).float())
            want32 = _reference_fit(n.float(), loss.float(), list(truth))
            assert_close(again.alpha, float(want32[1]), rtol=1e-4, atol=0, what="alpha")


@check("fit_power_law")
def fit_power_law_rejects_bad_input(ns: Namespace) -> None:
    n = torch.tensor([1e3, 1e4, 1e5, 1e6], dtype=F64)
    loss = 5 * n**-0.3 + 1
    with case("n and loss of different lengths"):
        assert_raises(ns.fit_power_law, n, loss[:3], exc=ShapeError, what="fit_power_law")
    with case("2-d inputs"):
        assert_raises(ns.fit_power_law, n[None], loss[None], exc=ShapeError, what="fit_power_law")
    with case("only 2 distinct sizes (4 runs)"):
        two = torch.tensor([1e3, 1e3, 1e4, 1e4], dtype=F64)
        assert_raises(ns.fit_power_law, two, loss, exc=ValueError, match="3", what="fit_power_law")
    with case("a size of 0"):
        zero = torch.tensor([0.0, 1e4, 1e5, 1e6], dtype=F64)
        assert_raises(ns.fit_power_law, zero, loss, exc=ValueError, what="fit_power_law")
    with case("max_alpha bounds the exponent: a law steeper than allowed", n=n):
        fit = ns.fit_power_law(n, 5 * n**-1.5 + 1, max_alpha=1.0)
        expect(fit.alpha <= 1.0 + 1e-6, f"alpha={fit.alpha} is above max_alpha=1.0")


def _expected_draws(
    n: torch.Tensor, n_boot: int, seed: int
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The resamples the docstring's rule draws, and the generator's state afterwards."""
    g = torch.Generator().manual_seed(seed)
    draws = []
    for _ in range(n_boot):
        while True:
            idx = torch.randint(len(n), (len(n),), generator=g)
            if len(set(n[idx].tolist())) >= 3:
                break
        draws.append(idx)
    return draws, g.get_state()


@check("bootstrap_power_law")
def bootstrap_refits_the_drawn_resamples(ns: Namespace) -> None:
    sizes = [1e3, 3e3, 1e4, 3e4, 1e5]
    truth = (10.0, 0.4, 1.3)
    n = torch.tensor(sizes, dtype=F64)
    loss = _noisy(5, sizes, *truth)
    draws, state = _expected_draws(n, 12, seed=7)
    g = torch.Generator().manual_seed(7)
    with case("5 noisy runs, 12 resamples, generator seeded 7", n=n, loss=loss):
        got = ns.bootstrap_power_law(n, loss, 12, g)
        expect(tuple(got.shape) == (12, 3), f"shape should be (12, 3), got {tuple(got.shape)}")
        for i, idx in enumerate(draws):
            want = _reference_fit(n[idx], loss[idx], list(truth))
            assert_close(
                got[i, 1].item(),
                float(want[1]),
                rtol=1e-4,
                atol=1e-7,
                what=f"resample {i} (runs {idx.tolist()}): alpha",
            )
            assert_close(
                got[i, 2].item(), float(want[2]), rtol=0, atol=1e-4, what=f"resample {i}: c"
            )
            assert_close(
                got[i, 0].item(), float(want[0]), rtol=1e-3, atol=0, what=f"resample {i}: a"
            )
        expect(
            torch.equal(g.get_state(), state),
            "the generator was not left where drawing the resamples leaves it: draw each "
            "resample as torch.randint(len(n), (len(n),), generator=generator), and nothing else",
        )


@check("bootstrap_power_law")
def bootstrap_redraws_unfittable_resamples(ns: Namespace) -> None:
    # 3 distinct sizes among 5 runs: many draws have fewer than 3 and must be drawn again
    n = torch.tensor([1e3, 1e3, 1e4, 1e4, 1e5], dtype=F64)
    loss = 4.0 * n**-0.5 + 2.0
    draws, state = _expected_draws(n, 6, seed=3)
    g = torch.Generator().manual_seed(3)
    with case("5 runs of only 3 sizes (exact data), 6 resamples", n=n):
        got = ns.bootstrap_power_law(n, loss, 6, g)
        expect(
            torch.equal(g.get_state(), state),
            "the generator should have drawn "
            f"{sum(1 for _ in draws)} fittable resamples and redrawn every resample with "
            "fewer than 3 distinct sizes (no more, no fewer draws)",
        )
        want = torch.tensor([[4.0, 0.5, 2.0]] * 6, dtype=F64)
        assert_close(got, want, rtol=1e-5, atol=1e-6, what="every resample's (a, alpha, c)")
    with case("a float32 loss: rows are float64"):
        out = ns.bootstrap_power_law(n, loss.float(), 1, torch.Generator().manual_seed(0))
        assert_equal(out.dtype, F64, what="dtype")


@check("bootstrap_power_law")
def bootstrap_rejects_bad_input(ns: Namespace) -> None:
    n = torch.tensor([1e3, 1e4, 1e5], dtype=F64)
    loss = 2 * n**-0.2
    g = torch.Generator().manual_seed(0)
    with case("n_boot=0"):
        assert_raises(
            ns.bootstrap_power_law,
            n,
            loss,
            0,
            g,
            exc=ValueError,
            match="n_boot",
            what="bootstrap_power_law",
        )
    with case("2 distinct sizes"):
        two = torch.tensor([1e3, 1e4, 1e4], dtype=F64)
        assert_raises(
            ns.bootstrap_power_law, two, loss, 5, g, exc=ValueError, what="bootstrap_power_law"
        )
    with case("n and loss of different lengths"):
        assert_raises(
            ns.bootstrap_power_law, n, loss[:2], 5, g, exc=ShapeError, what="bootstrap_power_law"
        )
