"""Checks for part 2 of w4d1: DQN's targets (against a loop over plain Python floats), the
Huber loss (against ``torch.nn.functional.smooth_l1_loss`` and its gradient), and one update
step (against torch doing the same step by hand, with clipping that matters), then the update
trained on the five probe environments until the Q network holds their known values."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.rl.probes import make_probe, probe_q_values
from mlab.rl.replay import ReplayBuffer, Transitions
from mlab.testing import assert_close, assert_equal, assert_raises, case, expect, randn


def _loop_targets(
    rewards: torch.Tensor, discounts: torch.Tensor, next_q: torch.Tensor
) -> list[float]:
    return [
        float(r) + float(d) * max(float(v) for v in row)
        for r, d, row in zip(rewards, discounts, next_q, strict=True)
    ]


@check("dqn_targets")
def targets_match_a_loop(ns: Namespace) -> None:
    rewards, next_q = randn(7, seed=0), randn(7, 3, seed=1) * 5
    discounts = torch.tensor([0.99, 0.0, 0.99, 0.5, 0.0, 0.97, 1.0])
    with case("7 transitions, 3 actions, two terminal (discount 0)", rewards=rewards):
        got = ns.dqn_targets(rewards, discounts, next_q)
        expected = torch.tensor(_loop_targets(rewards, discounts, next_q))
        assert_close(got, expected, what="targets")
    with case("all next values negative: the max is still the largest (not the largest |q|)"):
        nq = -torch.arange(1.0, 7.0).view(2, 3)
        got = ns.dqn_targets(torch.zeros(2), torch.ones(2), nq)
        assert_close(got, torch.tensor([-1.0, -4.0]), what="targets")
    with case("one action, batch of one"):
        got = ns.dqn_targets(torch.tensor([2.0]), torch.tensor([0.5]), torch.tensor([[4.0]]))
        assert_close(got, torch.tensor([4.0]), what="targets")
    with case("5 rewards but 4 rows of next values"):
        assert_raises(
            ns.dqn_targets, torch.zeros(5), torch.zeros(5), torch.zeros(4, 2), exc=ShapeError
        )


@check("dqn_loss")
def loss_matches_smooth_l1(ns: Namespace) -> None:
    q = (randn(9, 4, seed=2) * 2).requires_grad_()
    actions = torch.tensor([0, 3, 1, 1, 2, 0, 3, 2, 1])
    targets = randn(9, seed=3) * 2  # errors both below and above 1
    for label, weights in (("weights 1", torch.ones(9)), ("PER weights", torch.rand(9) + 0.1)):
        ref_q = q.detach().clone().requires_grad_()
        chosen = ref_q[torch.arange(9), actions]
        per = F.smooth_l1_loss(chosen, targets, reduction="none", beta=1.0)
        expected = (weights * per).mean()
        expected.backward(torch.tensor(1.7))  # type: ignore[no-untyped-call]
        with case(f"9 transitions, 4 actions, {label}", q_values=q, actions=actions):
            q.grad = None
            got = ns.dqn_loss(q, actions, targets, weights)
            assert_close(got, expected.detach(), rtol=1e-5, what="loss")
            got.backward(torch.tensor(1.7))
            assert_close(q.grad, ref_q.grad, rtol=1e-5, atol=1e-7, what="gradient of q_values")


@check("dqn_loss")
def no_gradient_into_the_targets(ns: Namespace) -> None:
    q = randn(4, 2, seed=4).requires_grad_()
    targets = randn(4, seed=5).requires_grad_()
    with case("targets that require grad (a forgotten no_grad upstream)"):
        ns.dqn_loss(q, torch.tensor([1, 0, 0, 1]), targets, torch.ones(4)).backward()
        expect(
            targets.grad is None or not targets.grad.any(),
            "the loss sent a gradient into the targets: detach them, the target is a fixed "
            "regression label, not something to move towards Q",
        )


def _net(seed: int, obs: int = 3, actions: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(obs, 16), nn.ReLU(), nn.Linear(16, actions))


def _batch(seed: int, n: int = 32) -> Transitions:
    g = torch.Generator().manual_seed(seed)
    return Transitions(
        torch.randn(n, 3, generator=g),
        torch.randint(2, (n,), generator=g),
        torch.randn(n, generator=g) * 3,
        torch.randn(n, 3, generator=g),
        (torch.rand(n, generator=g) > 0.2).float() * 0.99,
        torch.arange(n),
        torch.rand(n, generator=g) + 0.5,
    )


def _torch_step(
    online: nn.Module, target: nn.Module, batch: Transitions, clip: float
) -> tuple[Tensor, Any]:
    opt = torch.optim.SGD(online.parameters(), lr=0.1, momentum=0.9)
    opt.zero_grad()
    with torch.no_grad():
        y = batch.rewards + batch.discounts * target(batch.next_obs).max(1).values
    q = online(batch.obs)[torch.arange(len(batch.actions)), batch.actions]
    per = F.smooth_l1_loss(q, y, reduction="none")
    (batch.weights * per).mean().backward()  # type: ignore[no-untyped-call]
    torch.nn.utils.clip_grad_norm_(online.parameters(), clip)
    opt.step()
    return y - q.detach(), opt


@check("dqn_update")
def one_step_matches_torch(ns: Namespace) -> None:
    for clip in (0.05, 100.0):
        online, target = _net(0), _net(1)
        ref_online, ref_target = copy.deepcopy(online), copy.deepcopy(target)
        batch = _batch(2)
        ref_online(batch.obs).sum().backward()  # stale gradients the step must clear
        online(batch.obs).sum().backward()
        expected_td, _ = _torch_step(ref_online, ref_target, batch, clip)
        opt = torch.optim.SGD(online.parameters(), lr=0.1, momentum=0.9)
        with case(f"SGD lr=0.1 momentum 0.9, max_grad_norm={clip}, stale .grad present"):
            td = ns.dqn_update(online, target, opt, batch, clip)
            assert_close(td, expected_td, rtol=1e-5, atol=1e-6, what="returned TD errors")
            for (name, p), ref in zip(
                online.named_parameters(), ref_online.parameters(), strict=True
            ):
                assert_close(p, ref, rtol=1e-5, atol=1e-6, what=f"online {name} after the step")
            for (name, p), ref in zip(
                target.named_parameters(), ref_target.parameters(), strict=True
            ):
                assert_equal(p, ref, what=f"target {name} (the update must not touch it)")


def _train_on_probe(ns: Namespace, probe: int, gamma: float = 0.9) -> tuple[nn.Module, float]:
    env = make_probe(probe)
    n_actions = int(env.action_space.n)  # type: ignore[attr-defined]
    torch.manual_seed(probe)
    net = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, n_actions))
    target = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    buffer = ReplayBuffer(500, (1,), seed=probe)
    rng = np.random.default_rng(100 + probe)  # not the env's seed: its draws would match
    obs, _ = env.reset(seed=probe)
    for _ in range(400):  # random actions: every (obs, action) pair is visited
        action = int(rng.integers(n_actions))
        next_obs, reward, term, _, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, 0.0 if term else gamma)
        obs = env.reset()[0] if term else next_obs
    for i in range(300):
        ns.dqn_update(net, target, opt, buffer.sample(32), 10.0)
        if i % 20 == 19:
            target.load_state_dict(net.state_dict())
    return net, gamma


@check("dqn_update")
def learns_the_probe_values(ns: Namespace) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: more threads only wait for each other
    try:
        _probes(ns)
    finally:
        torch.set_num_threads(threads)


def _probes(ns: Namespace) -> None:
    for probe in (1, 2, 3, 4, 5):
        net, gamma = _train_on_probe(ns, probe)
        observations, q_star = probe_q_values(probe, gamma)
        with case(f"probe {probe} after 300 updates (known optimal Q values)"):
            with torch.no_grad():
                got = net(torch.as_tensor(observations)).double()
            assert_close(got, torch.as_tensor(q_star), atol=0.1, rtol=0, what="Q values")
