"""Checks for part 3 of w4d1: Rainbow's parts. Double DQN's and the n-step targets against
loops over Python floats (with the online and target argmax disagreeing, terminations in the
middle of a window, rewards after them); the dueling combination against its formula (the
mean over actions, not atoms); the noisy layer against ``torch.nn.functional.linear`` with the
noise built by hand (values and gradients); C51's projection against a brute-force one."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import (
    assert_close,
    assert_no_python_loop,
    assert_raises,
    assert_unchanged,
    case,
    randn,
)


@check("double_dqn_targets")
def online_chooses_target_values(ns: Namespace) -> None:
    online = torch.tensor([[1.0, 5.0, 2.0], [0.0, -1.0, 3.0], [2.0, 2.0, 1.0], [4.0, 0.0, 0.0]])
    target = torch.tensor([[9.0, 1.0, 4.0], [2.0, 7.0, -3.0], [5.0, 6.0, 8.0], [1.0, 2.0, 3.0]])
    rewards = torch.tensor([1.0, -1.0, 0.5, 2.0])
    discounts = torch.tensor([0.9, 0.9, 1.0, 0.0])
    # online argmax 1, 2, 0 (tie: the first), 0 -> target values 1, -3, 5, 1
    expected = [1.0 + 0.9 * 1.0, -1.0 + 0.9 * -3.0, 0.5 + 5.0, 2.0]
    with case("4 transitions where the online and target argmax differ", online=online):
        got = ns.double_dqn_targets(rewards, discounts, online, target)
        assert_close(got, torch.tensor(expected), what="targets")
    g = torch.Generator().manual_seed(0)
    online, target = torch.randn(50, 6, generator=g), torch.randn(50, 6, generator=g)
    rewards, discounts = torch.randn(50, generator=g), torch.rand(50, generator=g)
    loop = [
        float(r) + float(d) * float(t[max(range(6), key=lambda a: float(o[a]))])
        for r, d, o, t in zip(rewards, discounts, online, target, strict=True)
    ]
    with case("50 random transitions, 6 actions"):
        got = ns.double_dqn_targets(rewards, discounts, online, target)
        assert_close(got, torch.tensor(loop), rtol=1e-5, what="targets")
    with case("online values of 3 actions, target values of 2"):
        assert_raises(
            ns.double_dqn_targets,
            torch.zeros(2),
            torch.zeros(2),
            torch.zeros(2, 3),
            torch.zeros(2, 2),
            exc=ShapeError,
        )


@check("dueling_combine")
def dueling_formula(ns: Namespace) -> None:
    for atoms in (1, 5):
        value = randn(6, 1, atoms, seed=atoms)
        adv = randn(6, 4, atoms, seed=10 + atoms) * 3 + torch.arange(4.0).view(1, 4, 1)
        expected = value + adv - adv.mean(dim=1, keepdim=True)
        before = adv.clone()
        with case(f"batch 6, 4 actions, {atoms} atom(s)", value=value, advantages=adv):
            got = ns.dueling_combine(value, adv)
            assert_close(got, expected, rtol=1e-5, atol=1e-6, what="Q (or logits)")
            assert_unchanged(adv, before, what="advantages")
            assert_close(got.mean(dim=1, keepdim=True), value, rtol=1e-5, atol=1e-5, what="mean Q")


def _loop_n_step(
    rewards: torch.Tensor, terminated: torch.Tensor, gamma: float
) -> tuple[list[float], list[float]]:
    returns, discounts = [], []
    for row_r, row_t in zip(rewards.tolist(), terminated.tolist(), strict=True):
        total, ended = 0.0, False
        for k, (r, t) in enumerate(zip(row_r, row_t, strict=True)):
            total += gamma**k * r
            if t:
                ended = True
                break
        returns.append(total)
        discounts.append(0.0 if ended else gamma ** len(row_r))
    return returns, discounts


@check("n_step_return")
def n_step_matches_a_loop(ns: Namespace) -> None:
    rewards = torch.tensor(
        [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [-1.0, 5.0, 7.0], [0.5, 0.5, 0.5]]
    )
    terminated = torch.tensor(
        [[0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 1]], dtype=torch.bool
    )
    for gamma in (0.9, 1.0, 0.5):
        expected = _loop_n_step(rewards, terminated, gamma)
        with case(f"n=3, gamma={gamma}: no end, an end mid-window (rewards after it ignored)"):
            got = ns.n_step_return(rewards, terminated, gamma)
            assert_close(got[0], torch.tensor(expected[0]), rtol=1e-6, what="returns")
            assert_close(got[1], torch.tensor(expected[1]), rtol=1e-6, what="discounts")
    g = torch.Generator().manual_seed(3)
    for n in (1, 2, 5):
        r = torch.randn(40, n, generator=g)
        t = torch.rand(40, n, generator=g) < 0.2
        expected = _loop_n_step(r, t, 0.97)
        with case(f"40 random windows of n={n}, gamma=0.97", terminated=t):
            got = ns.n_step_return(r, t, 0.97)
            assert_close(got[0], torch.tensor(expected[0]), rtol=1e-5, atol=1e-6, what="returns")
            assert_close(got[1], torch.tensor(expected[1]), rtol=1e-6, what="discounts")


def _noisy_reference(
    x: Tensor, w_mu: Tensor, w_sigma: Tensor, b_mu: Tensor, b_sigma: Tensor, e_in: Tensor,
    e_out: Tensor,
) -> Tensor:  # fmt: skip
    f_in = torch.tensor([math.copysign(math.sqrt(abs(v)), v) for v in e_in.tolist()])
    f_out = torch.tensor([math.copysign(math.sqrt(abs(v)), v) for v in e_out.tolist()])
    weight = w_mu + w_sigma * f_out.view(-1, 1) * f_in.view(1, -1)
    return F.linear(x, weight, b_mu + b_sigma * f_out)


@check("noisy_linear")
def noisy_linear_matches_f_linear(ns: Namespace) -> None:
    shapes = ((5, 4, 3), (1, 1, 1), (8, 6, 2))
    for i, (batch, d_in, d_out) in enumerate(shapes):
        args = [
            randn(batch, d_in, seed=i),
            randn(d_out, d_in, seed=10 + i),
            randn(d_out, d_in, seed=20 + i).abs() * 0.5,
            randn(d_out, seed=30 + i),
            randn(d_out, seed=40 + i).abs() * 0.5,
            randn(d_in, seed=50 + i) * 2,
            randn(d_out, seed=60 + i) * 2,
        ]
        leaves = [a.clone().requires_grad_() for a in args[:5]]
        ref = [a.clone().requires_grad_() for a in args[:5]]
        upstream = randn(batch, d_out, seed=70 + i)
        expected = _noisy_reference(*ref, *args[5:])
        (expected * upstream).sum().backward()  # type: ignore[no-untyped-call]
        with case(f"batch {batch}, {d_in} in, {d_out} out, noise of both signs"):
            got = ns.noisy_linear(*leaves, *args[5:])
            assert_close(got, expected.detach(), rtol=1e-5, atol=1e-6, what="output")
            (got * upstream).sum().backward()
            names = ("x", "weight_mu", "weight_sigma", "bias_mu", "bias_sigma")
            for name, a, b in zip(names, leaves, ref, strict=True):
                assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6, what=f"gradient of {name}")


def _brute_projection(probs: Tensor, rewards: Tensor, discounts: Tensor, atoms: Tensor) -> Tensor:
    """Each moved atom spreads its mass over the fixed atoms by a triangle of width 2 dz."""
    z = atoms.double().tolist()
    dz = (z[-1] - z[0]) / (len(z) - 1)
    out = torch.zeros(probs.shape, dtype=torch.float64)
    for i in range(probs.shape[0]):
        for j, zj in enumerate(z):
            tz = min(max(float(rewards[i]) + float(discounts[i]) * zj, z[0]), z[-1])
            for k, zk in enumerate(z):
                out[i, k] += float(probs[i, j]) * max(0.0, 1.0 - abs(tz - zk) / dz)
    return out


@check("categorical_projection")
def projection_matches_brute_force(ns: Namespace) -> None:
    atoms = torch.linspace(-10.0, 10.0, 11)  # dz = 2
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(6, 11, generator=g).softmax(dim=1)
    rewards = torch.tensor([0.3, -1.0, 25.0, -30.0, 2.0, 1.0])
    discounts = torch.tensor([0.9, 0.99, 0.9, 0.5, 0.0, 1.0])
    # row 2 and 3 fall off the ends (clamped); row 4 is terminal (all mass at r);
    # row 5 shifts by 1 = half an atom; row 1 lands between atoms
    with case("11 atoms in [-10, 10], returns beyond both ends, a terminal row", probs=probs):
        got = ns.categorical_projection(probs, rewards, discounts, atoms)
        expected = _brute_projection(probs, rewards, discounts, atoms)
        assert_close(got.double(), expected, atol=1e-6, rtol=1e-5, what="projected probabilities")
    with case("every moved atom lands exactly on an atom (r = 2, discount 1)"):
        got = ns.categorical_projection(probs, torch.full((6,), 2.0), torch.ones(6), atoms)
        expected = _brute_projection(probs, torch.full((6,), 2.0), torch.ones(6), atoms)
        assert_close(got.double(), expected, atol=1e-6, rtol=1e-5, what="projected probabilities")
    atoms51 = torch.linspace(0.0, 100.0, 51)
    probs = torch.rand(20, 51, generator=g).softmax(dim=1)
    rewards, discounts = torch.rand(20, generator=g) * 3, torch.rand(20, generator=g)
    with case("51 atoms in [0, 100] (CartPole's), 20 random rows"):
        got = ns.categorical_projection(probs, rewards, discounts, atoms51)
        expected = _brute_projection(probs, rewards, discounts, atoms51)
        assert_close(got.double(), expected, atol=1e-6, rtol=1e-5, what="projected probabilities")
        assert_close(got.sum(dim=1), torch.ones(20), atol=1e-5, what="row sums")
    atoms = torch.linspace(-10.0, 3.1, 51)  # (v_max - v_min) / delta rounds to 50.0000038
    probs = torch.rand(4, 51, generator=g).softmax(dim=1)
    rewards, discounts = torch.tensor([20.0, 3.1, -0.2, 50.0]), torch.tensor([0.9, 0.0, 0.5, 1.0])
    with case("51 atoms in [-10, 3.1], returns beyond v_max (b rounds above 50 in float32)"):
        got = ns.categorical_projection(probs, rewards, discounts, atoms)
        expected = _brute_projection(probs, rewards, discounts, atoms)
        assert_close(got.double(), expected, atol=1e-5, rtol=1e-4, what="projected probabilities")


@check("categorical_projection")
def projection_is_vectorised(ns: Namespace) -> None:
    atoms = torch.linspace(-5.0, 5.0, 21)

    def make(n: int) -> tuple[Tensor, ...]:
        g = torch.Generator().manual_seed(n)
        probs = torch.rand(n, 21, generator=g).softmax(dim=1)
        return probs, torch.randn(n, generator=g), torch.rand(n, generator=g), atoms

    assert_no_python_loop(ns.categorical_projection, make, what="categorical_projection")
