"""Proximal Policy Optimization (Schulman et al. 2017): the loss pieces, shared by CartPole and
the language model, and a CartPole agent in the shape of CleanRL's ``ppo.py``.

The pieces, time on the last dim everywhere (``(batch, steps)``):

- :func:`gae`: generalized advantage estimation (Schulman et al. 2016), $\\hat A_t =
  \\sum_l (\\gamma\\lambda)^l \\delta_{t+l}$ with $\\delta_t = r_t + \\gamma V_{t+1} - V_t$;
- :func:`whiten`: advantages shifted and scaled to mean 0, variance 1 over the real entries;
- :func:`clipped_policy_loss`: $-\\min(\\rho_t \\hat A_t, \\mathrm{clip}(\\rho_t, 1 - \\epsilon,
  1 + \\epsilon) \\hat A_t)$, with $\\rho_t = \\pi(a_t|s_t) / \\pi_{\\text{old}}(a_t|s_t)$;
- :func:`clipped_value_loss`: the value error, the worse of the unclipped and the clipped
  (to within $\\epsilon$ of the old value) prediction, as OpenAI's baselines and trl do.

Every loss is a masked mean: ``mask`` is 1 where an entry is real (a generated token, a step
of a running episode) and 0 where it is padding.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn

from mlab.errors import ShapeError

__all__ = [
    "ActorCritic",
    "CartPoleConfig",
    "CartPoleResult",
    "clipped_policy_loss",
    "clipped_value_loss",
    "gae",
    "masked_mean",
    "train_cartpole",
    "whiten",
]


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """The mean of ``x`` over the entries where ``mask`` is 1 (all of them when None)."""
    if mask is None:
        return x.mean()
    return (x * mask).sum() / mask.sum()


def _same_shape(**tensors: Tensor | None) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items() if t is not None}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ShapeError(f"these should have one shape, but got {listed}")


def gae(
    rewards: Float[Tensor, "batch steps"],
    values: Float[Tensor, "batch steps"],
    dones: Float[Tensor, "batch steps"],
    next_value: Float[Tensor, " batch"],
    gamma: float,
    lam: float,
) -> Float[Tensor, "batch steps"]:
    """Generalized advantage estimates, computed backwards from the last step.

    ``dones[:, t]`` is 1 when the episode ended with step ``t`` (nothing after it counts
    for step ``t``), ``next_value`` is the value of the state after the last step. With
    $m_t = 1 - d_t$ and $V_T$ = ``next_value``:

    $\\delta_t = r_t + \\gamma m_t V_{t+1} - V_t$, $\\hat A_t = \\delta_t + \\gamma \\lambda
    m_t \\hat A_{t+1}$ (with $\\hat A_T = 0$).

    ``lam=0`` gives the one-step TD error, ``lam=1`` the discounted return minus the value.
    Raise ``ShapeError`` unless rewards, values and dones share one shape and
    ``next_value`` is ``(batch,)``."""
    _same_shape(rewards=rewards, values=values, dones=dones)
    if next_value.shape != rewards.shape[:1]:
        raise ShapeError(
            f"next_value has shape {tuple(next_value.shape)} but should be (batch,) = "
            f"({rewards.shape[0]},): the value after each row's last step"
        )
    steps = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    following = next_value
    for t in reversed(range(steps)):
        running = 1.0 - dones[:, t]
        delta = rewards[:, t] + gamma * running * following - values[:, t]
        last = delta + gamma * lam * running * last
        advantages[:, t] = last
        following = values[:, t]
    return advantages


def whiten(
    x: Float[Tensor, "*shape"], mask: Float[Tensor, "*shape"] | None = None, shift_mean: bool = True
) -> Float[Tensor, "*shape"]:
    """``(x - mean) / sqrt(var + 1e-8)`` with the mean and the unbiased variance (Bessel's
    ``n - 1``, as ``torch.var``) taken over the entries where ``mask`` is 1 (all entries
    when None). With ``shift_mean=False`` the mean is added back (only the scale changes).
    Padding entries come out as whatever the formula gives; losses mask them.

    Raise ``ShapeError`` unless ``mask`` has ``x``'s shape, ``ValueError`` when fewer than
    two entries are real (no variance)."""
    _same_shape(x=x, mask=mask)
    n = x.numel() if mask is None else int(mask.sum())
    if n < 2:
        raise ValueError(f"whiten needs at least 2 real entries to scale by, got {n}")
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask) * n / (n - 1)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out


def clipped_policy_loss(
    log_p: Float[Tensor, "batch steps"],
    old_log_p: Float[Tensor, "batch steps"],
    advantages: Float[Tensor, "batch steps"],
    clip: float,
    mask: Float[Tensor, "batch steps"] | None = None,
) -> Float[Tensor, ""]:
    """PPO's clipped surrogate loss, the masked mean of
    $-\\min(\\rho \\hat A, \\mathrm{clip}(\\rho, 1 - \\epsilon, 1 + \\epsilon) \\hat A)$ with
    $\\rho = \\exp(\\log p - \\log p_{\\text{old}})$ and $\\epsilon$ = ``clip``. The
    gradient flows through ``log_p`` only (old log probs and advantages are data).

    Raise ``ShapeError`` unless every input has one shape, ``ValueError`` unless
    ``clip > 0``."""
    _same_shape(log_p=log_p, old_log_p=old_log_p, advantages=advantages, mask=mask)
    if not clip > 0:
        raise ValueError(f"clip={clip} should be > 0 (0.2 is usual)")
    ratio = torch.exp(log_p - old_log_p.detach())
    advantages = advantages.detach()
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantages
    return masked_mean(-torch.min(unclipped, clipped), mask)


def clipped_value_loss(
    values: Float[Tensor, "batch steps"],
    old_values: Float[Tensor, "batch steps"],
    returns: Float[Tensor, "batch steps"],
    clip: float,
    mask: Float[Tensor, "batch steps"] | None = None,
) -> Float[Tensor, ""]:
    """The clipped value loss, the masked mean of $\\frac12 \\max((V - R)^2, (V_c - R)^2)$
    where $V_c$ is ``values`` clamped to within ``clip`` of ``old_values``: a value
    prediction gains nothing from moving further than ``clip`` in one update.

    Raise ``ShapeError`` unless every input has one shape, ``ValueError`` unless
    ``clip > 0``."""
    _same_shape(values=values, old_values=old_values, returns=returns, mask=mask)
    if not clip > 0:
        raise ValueError(f"clip={clip} should be > 0 (0.2 is usual)")
    old_values = old_values.detach()
    clamped = old_values + torch.clamp(values - old_values, -clip, clip)
    worst = torch.max((values - returns) ** 2, (clamped - returns) ** 2)
    return 0.5 * masked_mean(worst, mask)


# ----------------------------------------------------------------------------------------------
# CartPole


class ActorCritic(nn.Module):
    """CleanRL's agent for CartPole: two tanh MLPs (64, 64), orthogonal init with gain
    sqrt(2), the actor's last layer at gain 0.01 (near-uniform first policy), the critic's
    at 1."""

    def __init__(self, n_obs: int, n_actions: int) -> None:
        super().__init__()

        def layer(n_in: int, n_out: int, gain: float = float(np.sqrt(2))) -> nn.Linear:
            lin = nn.Linear(n_in, n_out)
            nn.init.orthogonal_(lin.weight, gain)
            nn.init.zeros_(lin.bias)
            return lin

        self.critic = nn.Sequential(
            layer(n_obs, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, 1, 1.0)
        )
        self.actor = nn.Sequential(
            layer(n_obs, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, n_actions, 0.01)
        )

    def value(self, obs: Tensor) -> Tensor:
        out: Tensor = self.critic(obs).squeeze(-1)
        return out

    def log_probs(self, obs: Tensor) -> Tensor:
        """The log probabilities of the actions, ``(batch, n_actions)``."""
        out: Tensor = self.actor(obs).log_softmax(-1)
        return out


@dataclass
class CartPoleConfig:
    """CleanRL's ``ppo.py`` defaults for CartPole-v1 (its total is 500,000 steps)."""

    total_steps: int = 100_000
    n_envs: int = 4
    n_steps: int = 128  # per env per rollout
    lr: float = 2.5e-4  # annealed linearly to 0
    gamma: float = 0.99
    lam: float = 0.95
    epochs: int = 4
    minibatches: int = 4
    clip: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    seed: int = 1


@dataclass
class CartPoleResult:
    steps: list[int] = field(default_factory=list)  # env steps when each episode ended
    returns: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def final_mean(self, last: int = 20) -> float:
        """The mean return of the last ``last`` episodes."""
        return float(np.mean(self.returns[-last:]))


def train_cartpole(
    config: CartPoleConfig, on_update: Callable[[int, float], None] | None = None
) -> CartPoleResult:
    """Train :class:`ActorCritic` on ``CartPole-v1`` with PPO, as CleanRL's ``ppo.py``:
    ``n_envs`` environments (gymnasium's vector env, autoreset), rollouts of ``n_steps``,
    GAE, advantages whitened per minibatch, clipped policy and value losses, an entropy
    bonus, ``epochs`` passes over shuffled minibatches. Returns every finished episode's
    return. A truncated episode (500 steps) is treated as ended, as CleanRL does."""
    import gymnasium as gym

    torch.manual_seed(config.seed)
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1") for _ in range(config.n_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    agent = ActorCritic(4, 2)
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.lr, eps=1e-5)
    obs_np, _ = envs.reset(seed=config.seed)
    obs = torch.tensor(obs_np, dtype=torch.float32)
    result, start = CartPoleResult(), time.perf_counter()
    episode_return = np.zeros(config.n_envs)
    batch = config.n_envs * config.n_steps
    updates = config.total_steps // batch
    g = torch.Generator().manual_seed(config.seed)
    for update in range(updates):
        optimizer.param_groups[0]["lr"] = config.lr * (1.0 - update / updates)
        shape = (config.n_envs, config.n_steps)
        all_obs = torch.zeros(*shape, 4)
        actions = torch.zeros(shape, dtype=torch.long)
        log_p, rewards, dones, values = (torch.zeros(shape) for _ in range(4))
        for t in range(config.n_steps):
            with torch.no_grad():
                log_probs = agent.log_probs(obs)
                action = torch.multinomial(log_probs.exp(), 1, generator=g)[:, 0]
                values[:, t] = agent.value(obs)
            all_obs[:, t], actions[:, t] = obs, action
            log_p[:, t] = log_probs.gather(1, action[:, None])[:, 0]
            obs_np, reward, terminated, truncated, _ = envs.step(action.numpy())
            done = terminated | truncated
            rewards[:, t] = torch.tensor(reward, dtype=torch.float32)
            dones[:, t] = torch.tensor(done, dtype=torch.float32)
            obs = torch.tensor(obs_np, dtype=torch.float32)
            episode_return += reward
            for i in np.flatnonzero(done):
                step = (update * config.n_steps + t + 1) * config.n_envs
                result.steps.append(step)
                result.returns.append(float(episode_return[i]))
                episode_return[i] = 0.0
        with torch.no_grad():
            advantages = gae(rewards, values, dones, agent.value(obs), config.gamma, config.lam)
        returns = advantages + values
        flat = [x.flatten(0, 1) for x in (all_obs, actions, log_p, advantages, returns, values)]
        size = batch // config.minibatches
        for _ in range(config.epochs):
            order = torch.randperm(batch, generator=g)
            for k in range(config.minibatches):
                idx = order[k * size : (k + 1) * size]
                b_obs, b_act, b_logp, b_adv, b_ret, b_val = (x[idx] for x in flat)
                log_probs = agent.log_probs(b_obs)
                new_logp = log_probs.gather(1, b_act[:, None])[:, 0]
                entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
                pg_loss = clipped_policy_loss(new_logp, b_logp, whiten(b_adv), config.clip)
                v_loss = clipped_value_loss(agent.value(b_obs), b_val, b_ret, config.clip)
                loss = pg_loss - config.ent_coef * entropy + config.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                nn.utils.clip_grad_norm_(agent.parameters(), config.max_grad_norm)
                optimizer.step()
        if on_update is not None and result.returns:
            on_update((update + 1) * batch, result.final_mean())
    envs.close()
    result.seconds = time.perf_counter() - start
    return result
