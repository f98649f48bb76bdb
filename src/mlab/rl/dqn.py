"""Deep Q-learning (Mnih et al., 2015, "Human-level control through deep reinforcement
learning"): an epsilon-greedy behaviour policy with a decaying epsilon, TD targets from a
periodically copied *target network*, the Huber loss, and gradient clipping.

A Q network maps a batch of observations to one value per action, ``(batch, actions)``. The
update regresses ``Q(s, a)`` onto ``r + discount * max_a' Q_target(s', a')``, where
``discount`` is ``gamma * (1 - terminated)`` (see :mod:`mlab.rl.replay`). The target network
is a frozen copy of the online one, refreshed every few hundred steps: regressing onto your own
moving output chases its tail and can diverge. The Huber loss is quadratic for small errors
and linear for large ones, so one surprising reward cannot produce a huge gradient.
The Rainbow parts that change the target (double DQN, C51) are in :mod:`mlab.rl.rainbow`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from mlab.errors import ShapeError
from mlab.rl.replay import Transitions

__all__ = ["dqn_loss", "dqn_targets", "dqn_update", "epsilon_greedy", "linear_schedule"]


def linear_schedule(step: int, start: float, end: float, duration: int) -> float:
    """A value going linearly from ``start`` at step 0 to ``end`` at step ``duration``, and
    staying at ``end`` after it: the exploration rate epsilon of DQN (1.0 down to 0.05 over the
    first half of training, say), or PER's beta (0.4 up to 1.0).

    ``duration`` = 0 means ``end`` from the start. Raise ``ValueError`` for a negative
    ``duration`` or ``step``.

    >>> linear_schedule(50, 1.0, 0.1, 100)
    0.55
    """
    if duration < 0 or step < 0:
        raise ValueError(f"step={step}, duration={duration}: both must be >= 0")
    if step >= duration:
        return end
    return start + (end - start) * step / duration


def epsilon_greedy(
    q_values: Float[Tensor, "batch actions"], epsilon: float, generator: torch.Generator
) -> Int[Tensor, " batch"]:
    """One action per row of ``q_values``: with probability ``epsilon`` an action drawn
    uniformly from all of them, otherwise the greedy one (``argmax``; ties go to the lowest
    index, as ``torch.argmax`` breaks them).

    Draw from ``generator`` in this order: ``torch.rand(batch)`` (explore where it is below
    ``epsilon``), then ``torch.randint(actions, (batch,))`` (the random actions), both always,
    so the draws do not depend on the values. Raise ``ValueError`` when ``epsilon`` is outside
    ``[0, 1]``.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon={epsilon}: a probability must lie in [0, 1]")
    batch, actions = q_values.shape
    explore = torch.rand(batch, generator=generator) < epsilon
    random_actions = torch.randint(actions, (batch,), generator=generator)
    return torch.where(explore, random_actions, q_values.argmax(dim=-1))


def dqn_targets(
    rewards: Float[Tensor, " batch"],
    discounts: Float[Tensor, " batch"],
    next_q_target: Float[Tensor, "batch actions"],
) -> Float[Tensor, " batch"]:
    """The TD targets ``rewards + discounts * max_a' next_q_target[:, a']``.

    ``next_q_target`` is the *target* network's values of the next observations;
    ``discounts`` is ``gamma * (1 - terminated)`` (0 after a terminal step: there is no future
    to bootstrap from; ``gamma ** n`` for an n-step return). Raise
    ``mlab.errors.ShapeError`` when the batch sizes differ.
    """
    if not rewards.shape == discounts.shape == next_q_target.shape[:1]:
        raise ShapeError(
            f"rewards {tuple(rewards.shape)}, discounts {tuple(discounts.shape)} and "
            f"next_q_target {tuple(next_q_target.shape)} must share the batch size"
        )
    return rewards + discounts * next_q_target.max(dim=-1).values


def dqn_loss(
    q_values: Float[Tensor, "batch actions"],
    actions: Int[Tensor, " batch"],
    targets: Float[Tensor, " batch"],
    weights: Float[Tensor, " batch"],
) -> Float[Tensor, ""]:
    """The weighted mean Huber loss (delta 1) between the values of the actions taken,
    ``q_values[i, actions[i]]``, and ``targets`` (no gradient flows into the targets):
    ``mean_i(weights[i] * huber(q_values[i, actions[i]] - targets[i]))``.

    ``huber(x)`` is ``x**2 / 2`` for ``|x| <= 1`` and ``|x| - 1/2`` beyond (torch's
    ``smooth_l1_loss``). ``weights`` are importance-sampling weights (all ones without
    prioritised replay).
    """
    chosen = q_values.gather(1, actions.unsqueeze(1)).squeeze(1)
    losses = F.huber_loss(chosen, targets.detach(), reduction="none", delta=1.0)
    return (weights * losses).mean()


def dqn_update(
    q_net: nn.Module,
    target_net: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Transitions,
    max_grad_norm: float,
) -> Float[Tensor, " batch"]:
    """One DQN step on ``batch``; return the TD errors ``targets - Q(s, a)``, detached (what
    prioritised replay sets priorities from).

    Compute ``target_net``'s values of ``batch.next_obs`` without building a graph, the
    targets with :func:`dqn_targets`, ``q_net``'s values of ``batch.obs``, and the loss with
    :func:`dqn_loss` (weights ``batch.weights``). Then zero the gradients, backpropagate, clip
    the gradients' global norm to ``max_grad_norm`` (``torch.nn.utils.clip_grad_norm_``) and
    step the optimizer. The target network is never updated here.
    """
    with torch.no_grad():
        targets = dqn_targets(batch.rewards, batch.discounts, target_net(batch.next_obs))
    q_values = q_net(batch.obs)
    loss = dqn_loss(q_values, batch.actions, targets, batch.weights)
    optimizer.zero_grad()
    loss.backward()  # type: ignore[no-untyped-call]
    nn.utils.clip_grad_norm_(q_net.parameters(), max_grad_norm)
    optimizer.step()
    chosen = q_values.detach().gather(1, batch.actions.unsqueeze(1)).squeeze(1)
    td_errors: Tensor = targets - chosen
    return td_errors
