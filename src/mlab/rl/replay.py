"""Experience replay: a uniform buffer (Mnih et al., 2015) and prioritised replay with a sum
tree and importance-sampling weights (Schaul et al., 2016, "Prioritized Experience Replay").

A transition is ``(obs, action, reward, next_obs, discount)``. ``discount`` folds the episode's
end into one number: ``gamma * (1 - terminated)`` for a one-step transition, ``gamma ** m``
(or 0 when the episode terminated within them) for an ``m``-step one, so the target is always
``reward + discount * value(next_obs)`` (see :mod:`mlab.rl.dqn`). A time limit (truncation) is
not a termination: its discount stays ``gamma``, and the agent bootstraps from the last
observation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

__all__ = [
    "PrioritizedReplayBuffer",
    "ReplayBuffer",
    "SumTree",
    "Transitions",
    "importance_weights",
]


@dataclass
class Transitions:
    """A batch of transitions sampled from a buffer. ``indices`` are their slots in the buffer
    (prioritised replay updates their priorities); ``weights`` are importance-sampling weights
    (all ones for uniform replay)."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    discounts: Tensor
    indices: Tensor
    weights: Tensor


class ReplayBuffer:
    """A circular buffer of the last ``capacity`` transitions, sampled uniformly.

    Storage is preallocated: ``obs`` and ``next_obs`` as float32 tensors of shape
    ``(capacity, *obs_shape)``, ``actions`` int64, ``rewards`` and ``discounts`` float32, each
    of length ``capacity``. ``add`` writes one transition into slot ``self.next_slot`` (0, 1,
    2, ... wrapping round to 0 when full, overwriting the oldest); ``len(buffer)`` is how many
    slots hold a transition (at most ``capacity``). ``sample(batch_size)`` draws
    ``batch_size`` slots uniformly *with replacement* from the filled ones, with
    ``torch.randint(..., generator=self.generator)``, and returns them as
    :class:`Transitions` (``weights`` all ones, ``indices`` the slots drawn, int64).

    Raise ``ValueError`` when ``capacity`` < 1, and when ``sample`` is asked for more
    transitions than the buffer holds (name both numbers and say to wait until it holds a
    batch: sampling 32 from 5 would train on the same few transitions over and over).
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity={capacity}: a buffer holds at least one transition")
        self.capacity = capacity
        self.obs = torch.zeros((capacity, *obs_shape))
        self.next_obs = torch.zeros((capacity, *obs_shape))
        self.actions = torch.zeros(capacity, dtype=torch.int64)
        self.rewards = torch.zeros(capacity)
        self.discounts = torch.zeros(capacity)
        self.next_slot = 0
        self.size = 0
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.size

    def add(
        self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, discount: float
    ) -> None:
        """Store one transition in slot ``next_slot`` and move on (wrapping round)."""
        i = self.next_slot
        self.obs[i] = torch.as_tensor(obs)
        self.next_obs[i] = torch.as_tensor(next_obs)
        self.actions[i] = action
        self.rewards[i] = reward
        self.discounts[i] = discount
        self.next_slot = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> Transitions:
        """``batch_size`` transitions drawn uniformly with replacement."""
        if batch_size > self.size:
            raise ValueError(
                f"sampling {batch_size} transitions from a buffer holding {self.size}: "
                f"wait until it holds at least a batch (learning_starts >= batch_size)"
            )
        idx = torch.randint(0, self.size, (batch_size,), generator=self.generator)
        return Transitions(
            self.obs[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_obs[idx],
            self.discounts[idx],
            idx,
            torch.ones(batch_size),
        )


class SumTree:
    """A binary tree whose every node holds the sum of its two children, over ``capacity``
    leaf priorities: sampling in proportion to priority takes O(log n), not O(n).

    Layout: an array ``self.tree`` of ``2 * self.leaves`` float64 zeros, ``self.leaves`` the
    smallest power of two >= ``capacity``; node 1 is the root, node ``i``'s children are
    ``2i`` and ``2i + 1``, leaf ``j`` is node ``self.leaves + j`` (node 0 is unused).

    - ``update(indices, priorities)``: set those leaves (numpy arrays or lists; an index may
      repeat: the last priority given wins, as in a loop) and recompute every ancestor's sum.
    - ``total()``: the sum of all priorities (the root).
    - ``find(values)`` (an array or a list): for each value ``v`` in ``[0, total())``, the
      leaf ``j`` whose interval ``[sum of leaves before j, sum of leaves up to j)`` holds
      ``v``: start at the root; if ``v`` < the left child's sum go left, else subtract it
      and go right; the leaf reached, minus ``self.leaves``, is ``j``. A leaf of priority 0
      is never found.
      Vectorised over ``values``: one pass per tree level, not per value.

    Raise ``ValueError`` for ``capacity`` < 1, an index outside ``[0, capacity)``, or a
    negative or non-finite priority (name it).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity={capacity}: a sum tree needs at least one leaf")
        self.capacity = capacity
        self.leaves = 1 << (capacity - 1).bit_length()
        self.tree = np.zeros(2 * self.leaves)

    def update(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priorities of leaves ``indices`` (arrays or lists) and recompute their
        ancestors."""
        indices = np.asarray(indices, dtype=np.int64)
        priorities = np.asarray(priorities, dtype=np.float64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.capacity):
            raise ValueError(f"leaf indices {indices} fall outside [0, {self.capacity})")
        if not np.all(np.isfinite(priorities) & (priorities >= 0)):
            raise ValueError(f"priorities {priorities} must be finite and >= 0")
        nodes = indices + self.leaves
        self.tree[nodes] = priorities
        for _ in range(self.leaves.bit_length() - 1):  # one pass per level, leaves to root
            nodes = np.unique(nodes // 2)
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]

    def total(self) -> float:
        """The sum of every priority."""
        return float(self.tree[1])

    def find(self, values: np.ndarray) -> np.ndarray:
        """The leaf holding each prefix-sum value (see the class docstring)."""
        values = np.array(values, dtype=np.float64)
        nodes = np.ones(values.shape, dtype=np.int64)
        for _ in range(self.leaves.bit_length() - 1):  # one pass per level, root to leaves
            left = 2 * nodes
            go_right = values >= self.tree[left]
            values = np.where(go_right, values - self.tree[left], values)
            nodes = left + go_right
        return nodes - self.leaves


def importance_weights(
    probs: Float[Tensor, " batch"], size: int, beta: float
) -> Float[Tensor, " batch"]:
    """Importance-sampling weights of transitions drawn with probabilities ``probs`` from a
    buffer of ``size`` transitions: ``(size * probs) ** -beta``, divided by their largest
    value (so the weights only ever scale the loss down).

    Uniform sampling has ``probs = 1 / size`` and weights 1; ``beta = 1`` corrects the bias of
    prioritised sampling fully, ``beta = 0`` not at all (PER anneals it from 0.4 to 1).
    """
    weights = (size * probs) ** -beta
    return weights / weights.max()


class PrioritizedReplayBuffer(ReplayBuffer):
    """A replay buffer sampled in proportion to ``priority ** alpha`` (proportional PER).

    A new transition gets the largest priority seen so far, so it is replayed at least once
    soon. ``sample`` splits ``[0, total)`` into ``batch_size`` equal strata and draws one
    value in each (less variance than independent draws), and returns importance-sampling
    weights for ``beta``; after the update, ``update_priorities(indices, td_errors)`` sets
    each priority to ``|td_error| + eps``.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        alpha: float = 0.6,
        eps: float = 1e-6,
        seed: int = 0,
    ) -> None:
        super().__init__(capacity, obs_shape, seed)
        if alpha < 0:
            raise ValueError(f"alpha={alpha}: the priority exponent must be >= 0")
        self.alpha = alpha
        self.eps = eps
        self.tree = SumTree(capacity)
        self.max_priority = 1.0
        self.rng = np.random.default_rng(seed)

    def add(
        self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, discount: float
    ) -> None:
        self.tree.update(np.array([self.next_slot]), np.array([self.max_priority**self.alpha]))
        super().add(obs, action, reward, next_obs, discount)

    def sample(self, batch_size: int, beta: float = 0.4) -> Transitions:
        if batch_size > self.size:
            raise ValueError(
                f"sampling {batch_size} transitions from a buffer holding {self.size}: "
                f"wait until it holds at least a batch (learning_starts >= batch_size)"
            )
        total = self.tree.total()
        edges = np.arange(batch_size) * (total / batch_size)
        values = edges + self.rng.uniform(0.0, total / batch_size, batch_size)
        slots = np.minimum(self.tree.find(np.minimum(values, total * (1 - 1e-12))), self.size - 1)
        probs = torch.as_tensor(self.tree.tree[slots + self.tree.leaves] / total)
        idx = torch.as_tensor(slots)
        return Transitions(
            self.obs[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_obs[idx],
            self.discounts[idx],
            idx,
            importance_weights(probs, self.size, beta).float(),
        )

    def update_priorities(self, indices: Tensor, td_errors: Tensor) -> None:
        """Priorities ``|td_error| + eps`` for the transitions at ``indices``."""
        priorities = td_errors.detach().abs().double().cpu().numpy() + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(indices.cpu().numpy(), priorities**self.alpha)
