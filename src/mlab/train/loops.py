"""The training loop and its companions: accuracy, gradient-norm clipping, one epoch of
training, and evaluation.

``clip_grad_norm_`` is ``torch.nn.utils.clip_grad_norm_`` (global L2 norm over all gradients,
as in Pascanu et al., 2013, https://arxiv.org/abs/1211.5063). The loops work with any
``torch.nn.Module``, any optimizer with ``zero_grad``/``step`` and any iterable of
``(inputs, labels)`` batches, e.g. ``mlab.data.minibatches``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

__all__ = ["accuracy", "clip_grad_norm_", "evaluate", "train_epoch"]

Batches = Iterable[tuple[Tensor, Tensor]]
LossFn = Callable[[Tensor, Tensor], Tensor]


def accuracy(logits: Float[Tensor, "batch classes"], labels: Int[Tensor, " batch"]) -> float:
    """The fraction of rows whose largest logit is at the label's index.

    >>> accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), torch.tensor([1, 1, 1]))
    0.6666666865348816
    """
    return (logits.argmax(dim=-1) == labels).float().mean().item()


def clip_grad_norm_(parameters: Iterable[Tensor], max_norm: float) -> Tensor:
    """Scale all gradients, in place, so that their global L2 norm is at most ``max_norm``;
    return the norm they had before (a 0-dim tensor), as ``torch.nn.utils.clip_grad_norm_``.

    The global norm is the L2 norm of all gradient entries taken together: the norm of the
    vector of per-tensor norms. Parameters whose ``.grad`` is ``None`` are skipped (with none
    left, return ``torch.tensor(0.0)``). Every gradient is multiplied by
    ``max_norm / (total_norm + 1e-6)`` clamped to at most 1, so gradients already small enough
    are left as they are, and the direction of the update never changes.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total_norm: Tensor = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g) for g in grads])
    )
    scale = (max_norm / (total_norm + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale)
    return total_norm


def train_epoch(
    model: nn.Module,
    loader: Batches,
    optimizer: Any,
    loss_fn: LossFn,
    max_grad_norm: float | None = None,
) -> float:
    """One pass over ``loader``, one optimizer step per batch; return the mean training loss.

    Put the model in training mode first (dropout on, batch norm using batch statistics).
    For each batch ``(x, y)``: zero the gradients (stale ones from before must not leak into
    the step), compute ``loss_fn(model(x), y)``, backpropagate, clip the gradients with
    ``clip_grad_norm_(model.parameters(), max_grad_norm)`` when ``max_grad_norm`` is not
    ``None``, and step. The mean loss is weighted by batch size: the sum over batches of
    ``loss * len(x)`` divided by the number of examples, so a short last batch counts for what
    it holds.
    """
    model.train()
    total, count = 0.0, 0
    for x, y in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()  # type: ignore[no-untyped-call]
        if max_grad_norm is not None:
            clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        total += loss.item() * len(x)
        count += len(x)
    return total / count


def evaluate(model: nn.Module, loader: Batches, loss_fn: LossFn) -> tuple[float, float | None]:
    """Return ``(mean loss, accuracy)`` of ``model`` over every example in ``loader``, for
    any ``loss_fn``; the accuracy is ``None`` unless the targets are class labels.

    Put the model in evaluation mode (dropout off, batch norm using its running statistics)
    and leave it there; run under ``torch.no_grad()`` so no graph is built and no parameter's
    ``.grad`` changes. Both numbers are per example: weight each batch's mean loss and
    accuracy by its size, so a short last batch is not over-counted.

    Accuracy applies to class labels only: integer targets, one class index per row of the
    output (``accuracy(output, y)``). Float targets (regression with ``mse_loss``, soft
    labels) have no accuracy: when any batch's targets are floating point, return ``None`` in
    its place.
    """
    model.eval()
    total_loss, correct, count = 0.0, 0.0, 0
    labels = True
    with torch.no_grad():
        for x, y in loader:
            out = model(x)
            total_loss += loss_fn(out, y).item() * len(x)
            if y.is_floating_point():
                labels = False
            else:
                correct += accuracy(out, y) * len(x)
            count += len(x)
    return total_loss / count, correct / count if labels else None
