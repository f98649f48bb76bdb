r"""Checks for part 1 of w4d3: the $\lambda$-return against its definition as a weighted
average of $n$-step returns (a brute-force loop in float64), Monte Carlo's return at
$\lambda = 1$ and TD(0)'s one-step target at $\lambda = 0$, and numbers worked by hand;
the move choice against a loop over the candidates."""

from __future__ import annotations

import torch
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_raises,
    assert_unchanged,
    case,
    expect,
    generator,
)


def _n_step(rewards: list[float], values: list[float], t: int, n: int, gamma: float) -> float:
    """$G^{(n)}_t = r_t + ... + \\gamma^{n-1} r_{t+n-1} + \\gamma^n V_{t+n}$."""
    ret = sum(gamma**i * rewards[t + i] for i in range(n))
    return ret + gamma**n * values[t + n]


def _lambda_return(rewards: Tensor, values: Tensor, gamma: float, lam: float) -> Tensor:
    """$(1 - \\lambda) \\sum_{n < T - t} \\lambda^{n-1} G^{(n)}_t + \\lambda^{T-t-1}
    G^{(T-t)}_t$, entry by entry."""
    out = torch.zeros(rewards.shape, dtype=torch.float64)
    for b in range(rewards.shape[0]):
        r, v = rewards[b].double().tolist(), values[b].double().tolist()
        steps = len(r)
        for t in range(steps):
            left = steps - t
            total = sum(
                (1 - lam) * lam ** (n - 1) * _n_step(r, v, t, n, gamma) for n in range(1, left)
            )
            out[b, t] = total + lam ** (left - 1) * _n_step(r, v, t, left, gamma)
    return out


@check("td_lambda_targets")
def td_lambda_by_hand(ns: Namespace) -> None:
    rewards, values = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 0.5, 0.0]])
    for lam, want in ((0.0, [0.5, 1.0]), (1.0, [1.0, 1.0]), (0.5, [0.75, 1.0])):
        with case(
            f"rewards [[0, 1]], values [[0, 0.5, 0]], gamma=1, lam={lam}: G_1 = 1, "
            "G_0 = 0 + (1 - lam) * 0.5 + lam * G_1"
        ):
            assert_close(ns.td_lambda_targets(rewards, values, 1.0, lam), torch.tensor([want]))
    with case(
        "rewards [[1, 2]], values [[9, 4, 3]], gamma=0.5, lam=0.5: the episode did not end, "
        "so the last target bootstraps from values[:, -1]: G_1 = 2 + 0.5 * 3 = 3.5, "
        "G_0 = 1 + 0.5 * (0.5 * 4 + 0.5 * 3.5) = 2.875"
    ):
        got = ns.td_lambda_targets(
            torch.tensor([[1.0, 2.0]]), torch.tensor([[9.0, 4, 3]]), 0.5, 0.5
        )
        assert_close(got, torch.tensor([[2.875, 3.5]]))


@check("td_lambda_targets")
def td_lambda_matches_n_step_average(ns: Namespace) -> None:
    g = generator(0)
    for shape, gamma, lam in (
        ((3, 5), 0.9, 0.7),
        ((2, 7), 1.0, 0.3),
        ((1, 1), 0.8, 0.6),
        ((2, 3), 0.0, 0.5),
    ):
        rewards = torch.randn(shape, generator=g, dtype=torch.float64)
        values = torch.randn(shape[0], shape[1] + 1, generator=g, dtype=torch.float64)
        r0, v0 = rewards.clone(), values.clone()
        with case(
            f"rewards {shape}, gamma={gamma}, lam={lam}: the weighted average of n-step returns",
            rewards=rewards,
            values=values,
        ):
            got = ns.td_lambda_targets(rewards, values, gamma, lam)
            assert_close(got, _lambda_return(r0, v0, gamma, lam), atol=1e-9)
            assert_unchanged(rewards, r0, what="rewards")
            assert_unchanged(values, v0, what="values")


@check("td_lambda_targets")
def td_lambda_ends_are_mc_and_td0(ns: Namespace) -> None:
    g = generator(1)
    rewards = torch.randn(4, 6, generator=g, dtype=torch.float64)
    values = torch.randn(4, 7, generator=g, dtype=torch.float64)
    gamma = 0.9
    with case("lam=1 is the Monte Carlo return (discounted rewards, then gamma^k V_T)"):
        t = torch.arange(6, dtype=torch.float64)
        power = (t[None, :] - t[:, None]).clamp(min=0)
        weights = torch.where(t[None, :] >= t[:, None], gamma**power, 0.0)
        want = rewards @ weights.T + gamma ** (6 - t)[None, :] * values[:, -1:]
        assert_close(ns.td_lambda_targets(rewards, values, gamma, 1.0), want, atol=1e-9)
    with case("lam=0 is TD(0)'s target r_t + gamma * V_{t+1}"):
        want = rewards + gamma * values[:, 1:]
        assert_close(ns.td_lambda_targets(rewards, values, gamma, 0.0), want, atol=1e-9)


@check("td_lambda_targets")
def td_lambda_targets_are_data(ns: Namespace) -> None:
    rewards = torch.tensor([[0.0, 1.0]])
    values = torch.tensor([[0.2, 0.5, 0.0]], requires_grad=True)
    with case("values that require grad (the value network's output)"):
        got = ns.td_lambda_targets(rewards, values, 1.0, 0.5)
        expect(
            not got.requires_grad,
            "the targets carry a gradient into the values: detach them, or the value "
            "network is trained to move its own targets",
        )


@check("td_lambda_targets")
def td_lambda_refuses_bad_input(ns: Namespace) -> None:
    r = torch.zeros(2, 3)
    with case("values (2, 3) for 3 steps: the value after the last step is missing"):
        assert_raises(
            ns.td_lambda_targets, r, torch.zeros(2, 3), 1.0, 0.5, exc=ShapeError, match="(2, 4)"
        )
    with case("values (1, 4) for a batch of 2"):
        assert_raises(
            ns.td_lambda_targets, r, torch.zeros(1, 4), 1.0, 0.5, exc=ShapeError, match="(1, 4)"
        )
    for gamma, lam in ((1.5, 0.5), (-0.1, 0.5), (0.9, 1.2), (0.9, -0.5)):
        with case(f"gamma={gamma}, lam={lam}"):
            assert_raises(
                ns.td_lambda_targets,
                r,
                torch.zeros(2, 4),
                gamma,
                lam,
                exc=ValueError,
                match=f"lam={lam}",
            )


@check("choose_moves")
def choose_moves_by_hand(ns: Namespace) -> None:
    values = torch.tensor([[0.1, 0.9, -0.3], [0.1, 0.9, -0.3]])
    with case("the positive player takes the largest value, the negative the smallest"):
        assert_equal(ns.choose_moves(values, torch.tensor([1, -1])), torch.tensor([1, 2]))
    with case("ties: the first of the best"):
        tied = torch.tensor([[0.5, 0.5, 0.1], [0.1, 0.7, 0.1]])
        assert_equal(ns.choose_moves(tied, torch.tensor([1, -1])), torch.tensor([0, 0]))


@check("choose_moves")
def choose_moves_match_a_loop(ns: Namespace) -> None:
    g = generator(2)
    values = torch.randn(6, 5, generator=g)
    player = torch.tensor([1, -1, -1, 1, -1, 1])
    with case("6 games, 5 candidates each", values=values, player=player):
        want = [
            int(torch.argmax(row)) if p == 1 else int(torch.argmin(row))
            for row, p in zip(values, player.tolist(), strict=True)
        ]
        assert_equal(ns.choose_moves(values, player), torch.tensor(want))


@check("choose_moves")
def choose_moves_refuse_bad_players(ns: Namespace) -> None:
    for player in ([1, 0], [2, -1], [1, -2]):
        with case(f"player={player}"):
            assert_raises(
                ns.choose_moves,
                torch.zeros(2, 3),
                torch.tensor(player),
                exc=ValueError,
                match=str(player),
            )
