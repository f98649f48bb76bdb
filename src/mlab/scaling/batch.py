"""Batch size: how to scale the learning rate with it, and where larger batches stop paying.

The linear rule (Goyal et al., 2017, "Accurate, Large Minibatch SGD",
https://arxiv.org/abs/1706.02677): multiply the batch by ``k``, multiply the learning rate by
``k``: for SGD, ``k`` small steps are then about one big step. The square-root rule (Hoffer et
al., 2017, https://arxiv.org/abs/1705.08741; Malladi et al., 2022, for Adam): multiply it by
``sqrt(k)``, which keeps the noise of the update the same size.

The critical batch size (McCandlish et al., 2018, "An Empirical Model of Large-Batch
Training", https://arxiv.org/abs/1812.06162): the steps ``S`` to reach a given loss fall with
the batch ``B`` as ``S = S_min * (1 + B_crit / B)``. Below ``B_crit`` doubling the batch
nearly halves the steps (perfect scaling); above it, steps barely fall and the extra examples
are wasted. At ``B = B_crit`` a run takes twice the minimum steps and twice the minimum
examples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from mlab.errors import ShapeError

__all__ = ["critical_batch_size", "scale_learning_rate", "steps_to_target"]

RULES = ("linear", "sqrt")


def scale_learning_rate(base_lr: float, base_batch: int, batch: int, rule: str) -> float:
    """The learning rate for ``batch``, given that ``base_lr`` suits ``base_batch``:
    ``base_lr * k`` with ``k = batch / base_batch`` for ``rule="linear"``,
    ``base_lr * sqrt(k)`` for ``rule="sqrt"``.

    Raise ``ValueError`` for another rule (naming the valid ones), or a batch size or
    learning rate that is not positive.

    >>> scale_learning_rate(1e-3, 32, 128, "sqrt")
    0.002
    """
    if rule not in RULES:
        raise ValueError(f"rule={rule!r}: use 'linear' or 'sqrt'")
    if base_lr <= 0 or base_batch < 1 or batch < 1:
        raise ValueError(
            f"base_lr={base_lr}, base_batch={base_batch}, batch={batch}: all must be positive"
        )
    k = batch / base_batch
    return base_lr * (k if rule == "linear" else math.sqrt(k))


def critical_batch_size(
    batch_sizes: Float[Tensor, " runs"], steps: Float[Tensor, " runs"]
) -> tuple[float, float]:
    """Fit McCandlish et al.'s ``steps = S_min * (1 + B_crit / batch)`` to measured steps to
    reach a target loss; return ``(S_min, B_crit)``.

    The model is a straight line in ``1 / batch``: ``steps = S_min + (S_min * B_crit) / batch``.
    Fit it by least squares (in float64) on ``x = 1 / batch``, ``y = steps``: the intercept is
    ``S_min``, the slope over the intercept is ``B_crit``.

    Raise ``ShapeError`` unless both are 1-d of the same length, and ``ValueError`` when fewer
    than 2 batch sizes are distinct, a batch size is not positive, or the intercept is not
    positive (the steps do not level off: every batch size tried is far below ``B_crit``; try
    larger ones).
    """
    if batch_sizes.ndim != 1 or batch_sizes.shape != steps.shape:
        raise ShapeError(
            f"batch_sizes has shape {tuple(batch_sizes.shape)} and steps "
            f"{tuple(steps.shape)}: pass two 1-d tensors of the same length"
        )
    if bool((batch_sizes <= 0).any()) or len(torch.unique(batch_sizes)) < 2:
        raise ValueError(
            f"batch_sizes={batch_sizes.tolist()}: need positive sizes, at least 2 distinct"
        )
    x, y = 1 / batch_sizes.double(), steps.double()
    xm, ym = x.mean(), y.mean()
    slope = ((x - xm) * y).sum() / ((x - xm) ** 2).sum()
    s_min = float(ym - slope * xm)
    if s_min <= 0:
        raise ValueError(
            f"the fitted S_min={s_min:.4g} is not positive: the steps have not levelled off "
            f"over batch sizes {batch_sizes.tolist()}; add larger batch sizes"
        )
    return s_min, float(slope) / s_min


def steps_to_target(steps: Sequence[int], losses: Sequence[float], target: float) -> float | None:
    """The first step whose loss is at or below ``target``, linearly interpolated between
    that evaluation and the one before it; ``None`` when no evaluation reaches it."""
    for i, (step, loss) in enumerate(zip(steps, losses, strict=True)):
        if loss <= target:
            if i == 0 or losses[i - 1] == loss:
                return float(step)
            s0, l0 = steps[i - 1], losses[i - 1]
            return s0 + (step - s0) * (l0 - target) / (l0 - loss)
    return None
