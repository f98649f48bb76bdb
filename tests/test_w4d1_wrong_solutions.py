"""Realistic wrong solutions of w4d1's exercises: each must fail its checks with a message
naming what is wrong; the reference must pass. Runs the checks in process
(tests/checkrun.py)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

pytest.importorskip("gymnasium", reason="the rl extra: pip install -e '.[rl]'")

from checkrun import assert_fails, run_checks
from mlab.course.engine.manifest import get_day
from mlab.errors import ShapeError
from mlab.rl import dqn, rainbow, replay

_run = partial(run_checks, "w4d1")
_fails = partial(assert_fails, "w4d1")


@pytest.mark.parametrize("exercise", [e.name for p in get_day("w4d1").parts for e in p.exercises])
def test_the_reference_passes(exercise: str) -> None:
    _run(exercise)


# ----------------------------------------------------------------------------------------------
# part 1


def schedule_never_stops(step: int, start: float, end: float, duration: int) -> float:
    """Keeps going past the end: epsilon turns negative."""
    if duration < 0 or step < 0:
        raise ValueError(f"step={step}, duration={duration}")
    return start + (end - start) * step / max(duration, 1)


def greedy_explores_above_epsilon(
    q_values: Tensor, epsilon: float, generator: torch.Generator
) -> Tensor:
    """Explores where rand > epsilon: epsilon=0.05 explores 95% of the time."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon={epsilon}")
    batch, actions = q_values.shape
    explore = torch.rand(batch, generator=generator) > epsilon
    random_actions = torch.randint(actions, (batch,), generator=generator)
    return torch.where(explore, random_actions, q_values.argmax(dim=-1))


def greedy_argmax_over_batch(
    q_values: Tensor, epsilon: float, generator: torch.Generator
) -> Tensor:
    """argmax over dim 0: the best row per action, not the best action per row."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon={epsilon}")
    batch, actions = q_values.shape
    explore = torch.rand(batch, generator=generator) < epsilon
    random_actions = torch.randint(actions, (batch,), generator=generator)
    greedy = q_values.argmax(dim=0).repeat(batch)[:batch] % actions
    return torch.where(explore, random_actions, greedy)


class BufferSamplingEmptySlots(replay.ReplayBuffer):
    """Samples from all capacity slots, filled or not."""

    def sample(self, batch_size: int) -> replay.Transitions:
        if batch_size > self.size:
            raise ValueError(f"sampling {batch_size} from {self.size}")
        saved, self.size = self.size, self.capacity
        try:
            return super().sample(batch_size)
        finally:
            self.size = saved


class BufferNeverWraps(replay.ReplayBuffer):
    """When full, keeps overwriting the last slot: the oldest transitions stay forever."""

    def add(self, obs: Any, action: int, reward: float, next_obs: Any, discount: float) -> None:
        super().add(obs, action, reward, next_obs, discount)
        self.next_slot = min(self.size, self.capacity - 1)


class BufferSamplingTooMuch(replay.ReplayBuffer):
    """No error for a batch larger than the buffer: it samples with replacement anyway."""

    def sample(self, batch_size: int) -> replay.Transitions:
        idx = torch.randint(0, max(self.size, 1), (batch_size,), generator=self.generator)
        return replay.Transitions(
            self.obs[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_obs[idx],
            self.discounts[idx],
            idx,
            torch.ones(batch_size),
        )


@pytest.mark.parametrize(
    ("exercise", "wrong", "message"),
    [
        ("linear_schedule", schedule_never_stops, "value at each step"),
        ("epsilon_greedy", greedy_explores_above_epsilon, "actions"),
        ("epsilon_greedy", greedy_argmax_over_batch, "actions"),
        ("ReplayBuffer", BufferSamplingEmptySlots, "transitions sampled|sampled obs"),
        ("ReplayBuffer", BufferNeverWraps, "transitions sampled|next_slot"),
        ("ReplayBuffer", BufferSamplingTooMuch, "should raise ValueError"),
    ],
)
def test_wrong_part1_fails(exercise: str, wrong: Any, message: str) -> None:
    _fails(exercise, wrong, message)


# ----------------------------------------------------------------------------------------------
# part 2


def targets_max_over_batch(rewards: Tensor, discounts: Tensor, next_q_target: Tensor) -> Tensor:
    """max over the batch (dim 0) broadcast back: every row bootstraps from the best action
    anywhere."""
    if not rewards.shape == discounts.shape == next_q_target.shape[:1]:
        raise ShapeError("batch sizes differ")
    return rewards + discounts * next_q_target.max().expand_as(rewards)


def loss_mse(q_values: Tensor, actions: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    """Mean squared error instead of Huber: big errors give big gradients."""
    chosen = q_values.gather(1, actions.unsqueeze(1)).squeeze(1)
    return (weights * (chosen - targets.detach()) ** 2 / 2).mean()


def loss_without_detach(
    q_values: Tensor, actions: Tensor, targets: Tensor, weights: Tensor
) -> Tensor:
    """Lets the gradient flow into the targets."""
    chosen = q_values.gather(1, actions.unsqueeze(1)).squeeze(1)
    return (weights * F.huber_loss(chosen, targets, reduction="none")).mean()


def loss_ignores_weights(
    q_values: Tensor, actions: Tensor, targets: Tensor, weights: Tensor
) -> Tensor:
    chosen = q_values.gather(1, actions.unsqueeze(1)).squeeze(1)
    return F.huber_loss(chosen, targets.detach())


def update_bootstraps_from_online(
    q_net: nn.Module, target_net: nn.Module, optimizer: Any, batch: Any, max_grad_norm: float
) -> Tensor:
    """Uses the online network for the next values: no target network at all."""
    return dqn.dqn_update(q_net, q_net, optimizer, batch, max_grad_norm)


def update_without_zero_grad(
    q_net: nn.Module, target_net: nn.Module, optimizer: Any, batch: Any, max_grad_norm: float
) -> Tensor:
    with torch.no_grad():
        targets = dqn.dqn_targets(batch.rewards, batch.discounts, target_net(batch.next_obs))
    q_values = q_net(batch.obs)
    dqn.dqn_loss(q_values, batch.actions, targets, batch.weights).backward()
    nn.utils.clip_grad_norm_(q_net.parameters(), max_grad_norm)
    optimizer.step()
    return targets - q_values.detach().gather(1, batch.actions.unsqueeze(1)).squeeze(1)


def update_without_clipping(
    q_net: nn.Module, target_net: nn.Module, optimizer: Any, batch: Any, max_grad_norm: float
) -> Tensor:
    return dqn.dqn_update(q_net, target_net, optimizer, batch, float("inf"))


@pytest.mark.parametrize(
    ("exercise", "wrong", "message"),
    [
        ("dqn_targets", targets_max_over_batch, "targets"),
        ("dqn_loss", loss_mse, "loss"),
        ("dqn_loss", loss_without_detach, "gradient into the targets"),
        ("dqn_loss", loss_ignores_weights, "PER weights"),
        ("dqn_update", update_bootstraps_from_online, "TD errors|online"),
        ("dqn_update", update_without_zero_grad, "stale|online"),
        ("dqn_update", update_without_clipping, "max_grad_norm=0.05"),
    ],
)
def test_wrong_part2_fails(exercise: str, wrong: Any, message: str) -> None:
    _fails(exercise, wrong, message)


# ----------------------------------------------------------------------------------------------
# part 3


def double_with_target_argmax(
    rewards: Tensor, discounts: Tensor, online: Tensor, target: Tensor
) -> Tensor:
    """The target network both chooses and values: plain DQN again."""
    return rainbow.double_dqn_targets(rewards, discounts, target, target)


def dueling_mean_over_atoms(value: Tensor, advantages: Tensor) -> Tensor:
    return value + advantages - advantages.mean(dim=-1, keepdim=True)


def dueling_without_mean(value: Tensor, advantages: Tensor) -> Tensor:
    return value + advantages


def n_step_ignores_termination(
    rewards: Tensor, terminated: Tensor, gamma: float
) -> tuple[Tensor, Tensor]:
    """Adds the rewards after a termination (they belong to the next episode)."""
    n = rewards.shape[1]
    returns = (rewards * gamma ** torch.arange(n, dtype=rewards.dtype)).sum(dim=1)
    return returns, gamma**n * (~terminated).to(rewards.dtype).prod(dim=1)


def n_step_discount_one_short(
    rewards: Tensor, terminated: Tensor, gamma: float
) -> tuple[Tensor, Tensor]:
    """Bootstraps with gamma ** (n - 1)."""
    returns, discounts = rainbow.n_step_return(rewards, terminated, gamma)
    return returns, discounts / gamma


def noisy_without_sign(
    x: Tensor,
    w_mu: Tensor,
    w_sigma: Tensor,
    b_mu: Tensor,
    b_sigma: Tensor,
    e_in: Tensor,
    e_out: Tensor,
) -> Tensor:
    """f(e) = sqrt(|e|): all the noise positive."""
    return rainbow.noisy_linear(x, w_mu, w_sigma, b_mu, b_sigma, e_in.abs(), e_out.abs())


def noisy_bias_without_noise(
    x: Tensor,
    w_mu: Tensor,
    w_sigma: Tensor,
    b_mu: Tensor,
    b_sigma: Tensor,
    e_in: Tensor,
    e_out: Tensor,
) -> Tensor:
    """Forgets the bias's noise: bias_sigma never learns."""
    f_in, f_out = e_in.sign() * e_in.abs().sqrt(), e_out.sign() * e_out.abs().sqrt()
    return F.linear(x, w_mu + w_sigma * torch.outer(f_out, f_in), b_mu)


def projection_loses_mass_on_atoms(
    probs: Tensor, rewards: Tensor, discounts: Tensor, atoms: Tensor
) -> Tensor:
    """floor == ceil gives both neighbours weight 0: the mass vanishes."""
    n = atoms.shape[0]
    delta = (atoms[-1] - atoms[0]) / (n - 1)
    tz = (rewards.unsqueeze(1) + discounts.unsqueeze(1) * atoms).clamp(atoms[0], atoms[-1])
    b = ((tz - atoms[0]) / delta).clamp(0, n - 1)
    lower, upper = b.floor(), b.ceil()
    out = torch.zeros_like(probs)
    out.scatter_add_(1, lower.long(), probs * (upper - b))
    out.scatter_add_(1, upper.long(), probs * (b - lower))
    return out


def projection_without_clamp(
    probs: Tensor, rewards: Tensor, discounts: Tensor, atoms: Tensor
) -> Tensor:
    """No clamp to [v_min, v_max]: returns beyond the support are dropped (index clipped)."""
    n = atoms.shape[0]
    delta = (atoms[-1] - atoms[0]) / (n - 1)
    b = (rewards.unsqueeze(1) + discounts.unsqueeze(1) * atoms - atoms[0]) / delta
    lower, upper = b.floor(), b.ceil()
    lw = torch.where(lower == upper, torch.ones_like(b), upper - b)
    keep_l = (lower >= 0) & (lower <= n - 1)
    keep_u = (upper >= 0) & (upper <= n - 1)
    out = torch.zeros_like(probs)
    out.scatter_add_(1, lower.clamp(0, n - 1).long(), probs * lw * keep_l)
    out.scatter_add_(1, upper.clamp(0, n - 1).long(), probs * (b - lower) * keep_u)
    return out


def projection_looping(probs: Tensor, rewards: Tensor, discounts: Tensor, atoms: Tensor) -> Tensor:
    """Right numbers, one row at a time."""
    rows = [
        rainbow.categorical_projection(
            probs[i : i + 1], rewards[i : i + 1], discounts[i : i + 1], atoms
        )
        for i in range(probs.shape[0])
    ]
    return torch.cat(rows)


@pytest.mark.parametrize(
    ("exercise", "wrong", "message"),
    [
        ("double_dqn_targets", double_with_target_argmax, "targets"),
        ("dueling_combine", dueling_mean_over_atoms, "Q \\(or logits\\)"),
        ("dueling_combine", dueling_without_mean, "Q \\(or logits\\)"),
        ("n_step_return", n_step_ignores_termination, "returns"),
        ("n_step_return", n_step_discount_one_short, "discounts"),
        ("noisy_linear", noisy_without_sign, "output"),
        ("noisy_linear", noisy_bias_without_noise, "output"),
        ("categorical_projection", projection_loses_mass_on_atoms, "projected probabilities"),
        ("categorical_projection", projection_without_clamp, "projected probabilities"),
        ("categorical_projection", projection_looping, "loops in Python"),
    ],
)
def test_wrong_part3_fails(exercise: str, wrong: Callable[..., Any], message: str) -> None:
    _fails(exercise, wrong, message)


# ----------------------------------------------------------------------------------------------
# part 4


class TreeTiesGoLeft(replay.SumTree):
    """Goes left when the value equals the left sum: a value on an edge lands one leaf early
    (possibly on a leaf of priority 0)."""

    def find(self, values: np.ndarray) -> np.ndarray:
        values = np.array(values, dtype=np.float64)
        nodes = np.ones(values.shape, dtype=np.int64)
        for _ in range(self.leaves.bit_length() - 1):
            left = 2 * nodes
            go_right = values > self.tree[left]
            values = np.where(go_right, values - self.tree[left], values)
            nodes = left + go_right
        return nodes - self.leaves


class TreeWithoutChecks(replay.SumTree):
    """Accepts negative priorities."""

    def update(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        nodes = np.asarray(indices, dtype=np.int64) + self.leaves
        self.tree[nodes] = priorities
        for _ in range(self.leaves.bit_length() - 1):
            nodes = np.unique(nodes // 2)
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]


def weights_unnormalised(probs: Tensor, size: int, beta: float) -> Tensor:
    return (size * probs) ** -beta


def weights_positive_exponent(probs: Tensor, size: int, beta: float) -> Tensor:
    weights = (size * probs) ** beta
    return weights / weights.max()


@pytest.mark.parametrize(
    ("exercise", "wrong", "message"),
    [
        ("SumTree", TreeTiesGoLeft, "find\\(values\\)"),
        ("SumTree", TreeWithoutChecks, "should raise ValueError"),
        ("importance_weights", weights_unnormalised, "weights"),
        ("importance_weights", weights_positive_exponent, "weights"),
    ],
)
def test_wrong_part4_fails(exercise: str, wrong: Any, message: str) -> None:
    _fails(exercise, wrong, message)
