"""Policy gradients from the simple end: REINFORCE with a baseline (Williams 1992) on a
multi-armed bandit and on two probe tasks.

The policy gradient theorem: $\\nabla_\\theta \\mathbb{E}[R] = \\mathbb{E}[\\sum_t
\\nabla_\\theta \\log \\pi_\\theta(a_t | s_t) (G_t - b(s_t))]$, where $G_t$ is the return
from step $t$ on and $b$ any baseline that does not depend on the action: it leaves the
gradient unbiased and, near the expected return, cuts its variance.

The probe tasks (after Andy Jones, "Debugging RL, Without the Agonizing Pain"), each
isolating one thing an agent must get right, with a known best return:

- ``"context"``: one step, observation $\\pm 1$, reward 1 for the action that matches its
  sign: the policy must read the observation;
- ``"delayed"``: two steps, the first action decides the reward paid only after the second:
  the return must carry the reward back to the step that earned it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor, nn

from mlab.errors import ShapeError

__all__ = [
    "Bandit",
    "PGResult",
    "probe_episode",
    "reinforce_loss",
    "returns_to_go",
    "train_bandit",
    "train_probe",
]


def returns_to_go(
    rewards: Float[Tensor, "batch steps"], gamma: float
) -> Float[Tensor, "batch steps"]:
    """The discounted return from each step to the end of its row, $G_t = r_t + \\gamma
    G_{t+1}$ with $G_T = 0$; every row is one whole episode (pad with zero rewards).

    Raise ``ValueError`` unless ``0 <= gamma <= 1``.

    >>> returns_to_go(torch.tensor([[1.0, 0.0, 2.0]]), 0.5)
    tensor([[1.5000, 1.0000, 2.0000]])
    """
    if not 0 <= gamma <= 1:
        raise ValueError(f"gamma={gamma} should be in [0, 1]")
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        out[:, t] = running
    return out


def reinforce_loss(
    log_p: Float[Tensor, "batch steps"],
    returns: Float[Tensor, "batch steps"],
    baseline: Float[Tensor, "batch steps"],
) -> Float[Tensor, ""]:
    """REINFORCE's loss, whose gradient is minus the policy gradient estimate:
    $-\\frac{1}{N} \\sum \\log \\pi(a_t|s_t) (G_t - b_t)$ averaged over every entry. The
    returns and the baseline are data: no gradient flows into them (a learned baseline
    is trained by its own loss).

    Raise ``ShapeError`` unless the three have one shape."""
    if not log_p.shape == returns.shape == baseline.shape:
        raise ShapeError(
            f"log_p {tuple(log_p.shape)}, returns {tuple(returns.shape)} and baseline "
            f"{tuple(baseline.shape)} should have one shape: one entry per step taken"
        )
    advantage = (returns - baseline).detach()
    return -(log_p * advantage).mean()


# ----------------------------------------------------------------------------------------------
# A bandit and two probes


@dataclass
class Bandit:
    """``k`` arms; pulling arm ``a`` pays ``N(means[a], 1)``."""

    means: Tensor

    def pull(self, arms: Tensor, g: torch.Generator) -> Tensor:
        return self.means[arms] + torch.randn(arms.shape, generator=g)


@dataclass
class PGResult:
    mean_reward: list[float] = field(default_factory=list)  # per update
    best_arm_prob: list[float] = field(default_factory=list)  # bandit only


def train_bandit(
    bandit: Bandit,
    *,
    updates: int = 300,
    batch: int = 32,
    lr: float = 0.1,
    baseline: bool = True,
    seed: int = 0,
) -> PGResult:
    """REINFORCE on a softmax policy over the arms (one logit each), ``batch`` pulls per
    update; the baseline is the running mean reward (none with ``baseline=False``)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.zeros(len(bandit.means), requires_grad=True)
    optimizer = torch.optim.SGD([logits], lr=lr)
    best = int(bandit.means.argmax())
    running, result = 0.0, PGResult()
    for _ in range(updates):
        log_probs = logits.log_softmax(-1)
        arms = torch.multinomial(log_probs.exp().detach(), batch, replacement=True, generator=g)
        reward = bandit.pull(arms, g)
        b = torch.full_like(reward, running if baseline else 0.0)
        loss = reinforce_loss(log_probs[arms][:, None], reward[:, None], b[:, None])
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        running = 0.9 * running + 0.1 * float(reward.mean())
        result.mean_reward.append(float(reward.mean()))
        result.best_arm_prob.append(float(log_probs[best].detach().exp()))
    return result


def _act(policy: nn.Module, obs: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Sample an action per row; return it and its log probability."""
    log_probs = policy(obs).log_softmax(-1)
    action = torch.multinomial(log_probs.exp().detach(), 1, generator=g)
    return action[:, 0], log_probs.gather(1, action)[:, 0]


def probe_episode(
    task: str, policy: nn.Module, batch: int, g: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Run ``batch`` episodes of a probe task with ``policy`` (observation ``(batch, 2)`` ->
    logits of 2 actions); return the log probabilities of the actions taken, the rewards
    (both ``(batch, steps)``) and the observations ``(batch, steps, 2)``."""
    if task == "context":
        sign = torch.randint(0, 2, (batch,), generator=g)
        obs = torch.stack([sign * 2.0 - 1.0, torch.zeros(batch)], -1)[:, None]
        action, log_p = _act(policy, obs[:, 0], g)
        return log_p[:, None], (action == sign).float()[:, None], obs
    if task == "delayed":
        first_obs = torch.tensor([[1.0, 0.0]]).expand(batch, 2)
        a1, log_p1 = _act(policy, first_obs, g)
        second_obs = torch.stack([torch.zeros(batch), torch.ones(batch)], -1)
        _, log_p2 = _act(policy, second_obs, g)
        rewards = torch.stack([torch.zeros(batch), (a1 == 1).float()], -1)
        log_p = torch.stack([log_p1, log_p2], -1)
        return log_p, rewards, torch.stack([first_obs, second_obs], 1)
    raise ValueError(f"task={task!r}: the probe tasks are 'context' and 'delayed'")


def train_probe(task: str, *, updates: int = 200, batch: int = 64, seed: int = 0) -> PGResult:
    """REINFORCE with a learned state-value baseline on a probe task; ``mean_reward`` is
    the mean episode return per update (the best is 1 for both tasks)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    policy = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    value = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
    optimizer = torch.optim.Adam([*policy.parameters(), *value.parameters()], lr=0.02)
    result = PGResult()
    for _ in range(updates):
        log_p, rewards, obs = probe_episode(task, policy, batch, g)
        returns = returns_to_go(rewards, 1.0)
        baseline = value(obs).squeeze(-1)
        loss = reinforce_loss(log_p, returns, baseline) + (baseline - returns).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        result.mean_reward.append(float(rewards.sum(1).mean()))
    return result
