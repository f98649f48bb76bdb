"""Checks for part 1 of w3d2: ``grid_points`` against ``itertools.product``, and
``log_uniform`` against the log-uniform distribution's inverse CDF and a Kolmogorov-Smirnov
test with ``scipy.stats.loguniform``."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from scipy import stats

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ConfigError
from mlab.testing import assert_equal, assert_raises, case, expect

GRIDS: list[dict[str, list[Any]]] = [
    {"AdamW.lr": [1e-4, 1e-3, 1e-2]},
    {"AdamW.lr": [1e-3, 1e-2], "batch_size": [8, 16, 32]},
    {"a": [1, 2], "b": ["x", "y", "z"], "c": [True, False]},
    {"one": [5], "two": [0.5, 0.25]},
    {"dup": [1, 1], "z": [(1, 2), None]},
]


@check("grid_points")
def every_combination_in_itertools_product_order(ns: Namespace) -> None:
    for axes in GRIDS:
        with case(f"axes {axes}"):
            want = [dict(zip(axes, c, strict=True)) for c in itertools.product(*axes.values())]
            got = ns.grid_points(axes)
            assert_equal(len(got), len(want), what="how many points")
            for i, (g, w) in enumerate(zip(got, want, strict=True)):
                expect(
                    list(g.items()) == list(w.items()),
                    f"point {i} is {g}, expected {w} (itertools.product's order: the first "
                    "axis varies slowest, the last fastest; names in the axes' order)",
                )


@check("grid_points")
def no_axes_is_one_point_and_the_points_are_separate(ns: Namespace) -> None:
    with case("axes {}"):
        assert_equal(ns.grid_points({}), [{}], what="the points of an empty space")
    axes = {"a": [1, 2], "b": [3, 4]}
    before = {k: list(v) for k, v in axes.items()}
    with case(f"axes {axes}"):
        points = ns.grid_points(axes)
        points[0]["a"] = 99
        expect(points[1]["a"] == 1, "changing one point changed another: make a new dict each")
        expect(axes == before, f"the axes were changed in place: now {axes}")


@check("grid_points")
def an_empty_axis_is_an_error(ns: Namespace) -> None:
    for axes, name in (({"lr": [1e-3], "bs": []}, "bs"), ({"x": []}, "x")):
        with case(f"axes {axes}"):
            assert_raises(ns.grid_points, axes, exc=ConfigError, match=repr(name))


def _inverse_cdf(low: float, high: float, u: float) -> float:
    """The log-uniform quantile: log x is uniform on [log low, log high]."""
    return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))


class CountingRandom(random.Random):
    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.draws: list[float] = []

    def random(self) -> float:
        u = super().random()
        self.draws.append(u)
        return u


@check("log_uniform")
def one_uniform_draw_through_the_inverse_cdf(ns: Namespace) -> None:
    for low, high in ((1e-4, 1e-1), (0.5, 2.0), (3.0, 3000.0), (1e-8, 1e-7)):
        rng = CountingRandom(7)
        with case(f"log_uniform({low}, {high}, rng)"):
            for _ in range(20):
                got = ns.log_uniform(low, high, rng)
                expect(len(rng.draws) == 1, f"{len(rng.draws)} calls of rng.random(): make one")
                want = _inverse_cdf(low, high, rng.draws.pop())
                expect(
                    math.isclose(got, want, rel_tol=1e-9),
                    f"got {got!r}, expected {want!r} = low * (high / low) ** u for the u that "
                    "rng.random() returned",
                )
                expect(low <= got <= high, f"{got!r} is outside [{low}, {high}]")


@check("log_uniform")
def log_uniform_as_scipy_draws_it(ns: Namespace) -> None:
    low, high = 1e-5, 1e-1
    rng = random.Random(0)
    draws = [ns.log_uniform(low, high, rng) for _ in range(3000)]
    with case(f"3000 draws of log_uniform({low}, {high})"):
        p = stats.kstest(draws, stats.loguniform(low, high).cdf).pvalue
        expect(p > 1e-4, f"a KS test against scipy.stats.loguniform gives p = {p:.2g}")
        below = sum(d < 1e-3 for d in draws) / len(draws)
        expect(
            abs(below - 0.5) < 0.05,
            f"{below:.0%} of draws are below 1e-3, the middle of [1e-5, 1e-1] on a log scale: "
            "expected half",
        )


@check("log_uniform")
def bad_bounds_are_errors(ns: Namespace) -> None:
    for low, high in ((0.0, 1.0), (-1.0, 1.0), (1e-2, 1e-2), (1.0, 0.1)):
        with case(f"log_uniform({low}, {high}, rng)"):
            err = assert_raises(ns.log_uniform, low, high, random.Random(0), exc=ConfigError)
            expect(
                str(low) in str(err) and str(high) in str(err),
                f"the message {str(err)!r} should name both bounds",
            )
    with case("log_uniform(1e-9, 1e-8, rng): small but valid"):
        expect(1e-9 <= ns.log_uniform(1e-9, 1e-8, random.Random(0)) <= 1e-8, "out of range")
