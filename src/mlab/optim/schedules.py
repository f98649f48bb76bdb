"""Learning-rate schedules: the learning rate as a function of the step, and a scheduler that
writes it into an optimizer's parameter groups.

Each schedule is a pure function ``lr(step, base_lr, ...)``: step ``0`` is the learning rate
before the first update, step ``t`` after ``t`` calls of ``scheduler.step()``. They give the
values ``torch.optim.lr_scheduler`` gives (``StepLR``, ``ExponentialLR``,
``CosineAnnealingLR``, and ``LinearLR`` followed by ``CosineAnnealingLR`` or ``LinearLR`` in a
``SequentialLR`` for warm-up), computed in closed form instead of torch's step-to-step updates.
Cosine annealing is SGDR's (Loshchilov & Hutter, 2017, https://arxiv.org/abs/1608.03983);
warm-up before decay is from Goyal et al., 2017 (https://arxiv.org/abs/1706.02677).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

__all__ = [
    "Scheduler",
    "cosine_annealing_lr",
    "exponential_lr",
    "step_decay_lr",
    "warmup_lr",
]


def step_decay_lr(step: int, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """``base_lr`` multiplied by ``gamma`` once every ``step_size`` steps (torch's ``StepLR``).

    >>> [step_decay_lr(t, 1.0, step_size=2, gamma=0.5) for t in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """
    return base_lr * gamma ** (step // step_size)


def exponential_lr(step: int, base_lr: float, gamma: float) -> float:
    """``base_lr`` multiplied by ``gamma`` at every step (torch's ``ExponentialLR``).

    >>> [exponential_lr(t, 1.0, gamma=0.5) for t in range(4)]
    [1.0, 0.5, 0.25, 0.125]
    """
    return base_lr * gamma**step


def cosine_annealing_lr(step: int, base_lr: float, t_max: int, eta_min: float = 0.0) -> float:
    """Half a cosine from ``base_lr`` at step 0 down to ``eta_min`` at step ``t_max``
    (torch's ``CosineAnnealingLR``):
    ``eta_min + (base_lr - eta_min) * (1 + cos(pi * step / t_max)) / 2``.

    Past ``t_max`` the formula goes on, as torch's does: the learning rate rises back to
    ``base_lr`` at ``2 * t_max``, and so on (a period of ``2 * t_max`` steps).

    >>> [round(cosine_annealing_lr(t, 1.0, t_max=4), 3) for t in range(5)]
    [1.0, 0.854, 0.5, 0.146, 0.0]
    """
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * step / t_max)) / 2


def warmup_lr(
    step: int,
    base_lr: float,
    warmup_steps: int,
    total_steps: int,
    start_factor: float = 0.01,
    decay: Literal["cosine", "linear"] = "cosine",
    eta_min: float = 0.0,
) -> float:
    """Linear warm-up, then decay to ``eta_min``.

    For ``step < warmup_steps`` the learning rate rises in a straight line from
    ``start_factor * base_lr`` at step 0 towards ``base_lr`` at ``warmup_steps`` (torch's
    ``LinearLR(start_factor, 1.0, total_iters=warmup_steps)``). From ``warmup_steps`` on,
    with ``d = step - warmup_steps`` steps into the decay of ``n = total_steps - warmup_steps``:

    - ``decay="cosine"``: ``cosine_annealing_lr(d, base_lr, n, eta_min)``;
    - ``decay="linear"``: a straight line from ``base_lr`` at ``d = 0`` to ``eta_min`` at
      ``d = n``, and ``eta_min`` after that (``LinearLR(1.0, eta_min / base_lr, n)``).

    Raise ``ValueError`` when ``decay`` is neither.

    >>> [round(warmup_lr(t, 1.0, 2, 6, start_factor=0.5, decay="linear"), 3) for t in range(7)]
    [0.5, 0.75, 1.0, 0.75, 0.5, 0.25, 0.0]
    """
    if step < warmup_steps:
        return base_lr * (start_factor + (1 - start_factor) * step / warmup_steps)
    d, n = step - warmup_steps, total_steps - warmup_steps
    if decay == "cosine":
        return cosine_annealing_lr(d, base_lr, n, eta_min)
    if decay == "linear":
        return base_lr + (eta_min - base_lr) * min(d, n) / n
    raise ValueError(f"decay={decay!r} is not a schedule: use 'cosine' or 'linear'")


class Scheduler:
    """Set every parameter group's ``"lr"`` from a schedule, step by step.

    Works with any optimizer that has torch's ``param_groups`` (a list of dicts with an
    ``"lr"`` key): ``torch.optim``'s and ``mlab.optim``'s. Each group's learning rate at
    construction is its ``base_lr``; the schedule is called as ``schedule(step, base_lr)``, so
    bind the other arguments with ``functools.partial``. Like torch's schedulers, construction
    sets step 0's value, and ``step()`` (called after ``optimizer.step()``) moves to the next.

    >>> import functools, torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = Scheduler(opt, functools.partial(exponential_lr, gamma=0.5))
    >>> sched.step(); opt.param_groups[0]["lr"]
    0.5
    """

    def __init__(self, optimizer: Any, schedule: Callable[[int, float], float]) -> None:
        self.optimizer = optimizer
        self.schedule = schedule
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def step(self) -> None:
        """Advance one step and write the new learning rates into the optimizer."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The learning rate of each group, as last set (torch's name)."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def _apply(self) -> None:
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = self.schedule(self.last_step, base_lr)
