r"""Checks for part 3 of w4d3: entropy against ``torch.distributions.Categorical``, the
margin against a sort, BALD against its definition from ``Categorical`` entropies, and
k-center greedy against a brute-force search over every candidate at every pick (float64
distances, first index on ties); numbers worked by hand for each."""

from __future__ import annotations

import math

import torch
from torch.distributions import Categorical

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_raises,
    assert_unchanged,
    case,
    generator,
)


def _probs(g: torch.Generator, *shape: int) -> torch.Tensor:
    return (3 * torch.randn(*shape, generator=g, dtype=torch.float64)).softmax(-1)


@check("entropy_scores")
def entropy_by_hand(ns: Namespace) -> None:
    probs = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.25, 0.25, 0.5]])
    with case("[0.5, 0.5, 0] -> log 2; one-hot -> 0 (0 log 0 = 0); [1/4, 1/4, 1/2] -> 1.5 log 2"):
        want = torch.tensor([math.log(2), 0.0, 1.5 * math.log(2)])
        assert_close(ns.entropy_scores(probs), want)


@check("entropy_scores")
def entropy_matches_categorical(ns: Namespace) -> None:
    g = generator(0)
    for n, c in ((6, 2), (4, 5), (1, 3)):
        probs = _probs(g, n, c)
        before = probs.clone()
        with case(f"{n} predictions over {c} classes", probs=probs):
            got = ns.entropy_scores(probs)
            want = Categorical(probs=before).entropy()  # type: ignore[no-untyped-call]
            assert_close(got, want, atol=1e-9)
            assert_unchanged(probs, before, what="probs")


@check("margin_scores")
def margin_by_hand(ns: Namespace) -> None:
    probs = torch.tensor([[0.1, 0.6, 0.3], [0.4, 0.4, 0.2], [0.2, 0.8, 0.0]])
    with case("[0.1, 0.6, 0.3] -> 0.3; a tie at the top [0.4, 0.4, 0.2] -> 0; [0.2, 0.8] -> 0.6"):
        assert_close(ns.margin_scores(probs), torch.tensor([0.3, 0.0, 0.6]), atol=1e-6)


@check("margin_scores")
def margin_matches_a_sort(ns: Namespace) -> None:
    g = generator(1)
    for n, c in ((5, 2), (7, 4)):
        probs = _probs(g, n, c)
        before = probs.clone()
        with case(f"{n} predictions over {c} classes", probs=probs):
            ordered = before.sort(-1, descending=True).values
            assert_close(ns.margin_scores(probs), ordered[:, 0] - ordered[:, 1], atol=1e-9)
            assert_unchanged(probs, before, what="probs")


@check("margin_scores")
def margin_refuses_one_class(ns: Namespace) -> None:
    with case("one class"):
        assert_raises(ns.margin_scores, torch.ones(3, 1), exc=ShapeError, match="(3, 1)")


@check("bald_scores")
def bald_by_hand(ns: Namespace) -> None:
    mc = torch.tensor([[[1.0, 0.0], [0.5, 0.5], [0.9, 0.1]], [[0.0, 1.0], [0.5, 0.5], [0.9, 0.1]]])
    with case(
        "2 samples: members certain and opposed -> log 2; both unsure alike -> 0; "
        "both agreeing -> 0"
    ):
        assert_close(ns.bald_scores(mc), torch.tensor([math.log(2), 0.0, 0.0]), atol=1e-6)


@check("bald_scores")
def bald_matches_definition(ns: Namespace) -> None:
    g = generator(2)
    for s, n, c in ((5, 4, 3), (2, 6, 2), (1, 3, 4)):
        mc = _probs(g, s, n, c)
        before = mc.clone()
        with case(f"{s} samples of {n} predictions over {c} classes", mc_probs=mc):
            of_mean = Categorical(probs=before.mean(0)).entropy()  # type: ignore[no-untyped-call]
            each = Categorical(probs=before).entropy()  # type: ignore[no-untyped-call]
            want = of_mean - each.mean(0)
            assert_close(ns.bald_scores(mc), want, atol=1e-9)
            assert_unchanged(mc, before, what="mc_probs")


def _k_center(features: torch.Tensor, labelled: torch.Tensor, budget: int) -> list[int]:
    x = features.double()
    chosen = [i for i in range(len(x)) if labelled[i]]
    picked: list[int] = []
    for _ in range(budget):
        best, best_d = -1, -1.0
        for i in range(len(x)):
            if i in chosen:
                continue
            d = min(float((x[i] - x[j]).norm()) for j in chosen)
            if d > best_d:
                best, best_d = i, d
        chosen.append(best)
        picked.append(best)
    return picked


@check("k_center_greedy")
def k_center_by_hand(ns: Namespace) -> None:
    x = torch.tensor([[0.0], [1.0], [5.0], [2.0], [10.0]])
    labelled = torch.tensor([True, False, False, False, False])
    with case(
        "points 0, 1, 5, 2, 10 on a line, 0 labelled: 10 is farthest, then 5 (5 from both), "
        "then 2 (2 from 0, 3 from 5)",
        features=x,
    ):
        assert_equal(ns.k_center_greedy(x, labelled, 3), torch.tensor([4, 2, 3]))
    with case("a budget of 0 picks nothing"):
        assert_equal(ns.k_center_greedy(x, labelled, 0), torch.zeros(0, dtype=torch.long))


@check("k_center_greedy")
def k_center_matches_brute_force(ns: Namespace) -> None:
    g = generator(3)
    for n, dim, n_lab, budget in ((12, 2, 1, 5), (20, 3, 4, 8), (6, 1, 2, 4)):
        x = torch.randn(n, dim, generator=g)
        labelled = torch.zeros(n, dtype=torch.bool)
        labelled[torch.randperm(n, generator=g)[:n_lab]] = True
        before = x.clone()
        with case(f"{n} points in {dim}-d, {n_lab} labelled, budget {budget}", features=x):
            got = ns.k_center_greedy(x, labelled, budget)
            assert_equal(got, torch.tensor(_k_center(before, labelled, budget)))
            assert_unchanged(x, before, what="features")
    grid = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labelled = torch.tensor([True, False, False, False, False])
    with case(
        "duplicates and ties: a copy of a labelled point and a copy of a picked one are "
        "never worth picking until nothing else is left",
        features=grid,
    ):
        got = ns.k_center_greedy(grid, labelled, 4)
        assert_equal(got, torch.tensor(_k_center(grid, labelled, 4)))


@check("k_center_greedy")
def k_center_refuses_bad_budget(ns: Namespace) -> None:
    x = torch.zeros(4, 2)
    with case("nothing labelled"):
        assert_raises(
            ns.k_center_greedy,
            x,
            torch.zeros(4, dtype=torch.bool),
            1,
            exc=ValueError,
            match="0 labelled",
        )
    with case("budget 3 with 2 unlabelled"):
        labelled = torch.tensor([True, True, False, False])
        assert_raises(ns.k_center_greedy, x, labelled, 3, exc=ValueError, match="budget=3")
