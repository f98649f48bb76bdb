"""Activations and losses of the engine, each a single op with a hand-derived backward.

``log_softmax`` and ``cross_entropy`` could be composed from ``exp``, ``log``, ``sum`` and
indexing, but as single ops they are both numerically stable (the max-shift of the forward
never meets an ``exp`` that overflows) and cheap: the backward of the softmax family is a
one-liner in the output (see the derivations in Goodfellow, Bengio and Courville, *Deep
Learning*, 2016, §6.2.2.3).
"""

from __future__ import annotations

import torch

from mlab.autograd.engine import Variable, from_op
from mlab.errors import ShapeError

__all__ = ["cross_entropy", "log_softmax", "relu", "softmax"]


def relu(a: Variable) -> Variable:
    """``max(a, 0)`` elementwise; the gradient passes where ``a > 0`` (at 0 it is 0, as in
    torch)."""

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor]:
        return (grad * (a.data > 0),)

    return from_op(a.data.clamp(min=0), (a,), backward)


def softmax(a: Variable, dim: int) -> Variable:
    """``exp(a) / sum(exp(a))`` along ``dim``. With ``s`` the output, the Jacobian of one slice
    is ``diag(s) - s sᵀ``, so the backward is ``s * (grad - sum(grad * s))``."""
    out = a.data.softmax(dim=dim)

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor]:
        return (out * (grad - (grad * out).sum(dim=dim, keepdim=True)),)

    return from_op(out, (a,), backward)


def log_softmax(a: Variable, dim: int) -> Variable:
    """``log(softmax(a))`` along ``dim``, computed stably, with its backward.

    Forward: with ``m`` the max along ``dim``, ``(a - m) - log Σ_j exp(a_j - m)``, as torch
    computes it. After the shift every exponent is at most 0, so large logits neither
    overflow nor give ``log(0)``; and the largest log-probabilities, those near 0, come out
    accurate. ``a - logsumexp(a)`` is the same formula but loses them: at ``|a| ≈ 100`` in
    float32, ``logsumexp(a)`` is rounded to about 1e-5 (the spacing of floats near 100), and
    subtracting two numbers near 100 keeps that error in a result near 0.

    Backward: ``out_i = a_i - log Σ_j exp(a_j)`` gives ``∂out_i/∂a_k = [i = k] - softmax_k``,
    so the vector-Jacobian product is ``grad - softmax(a) * sum(grad)``, the sum along
    ``dim`` (kept as size 1 so it broadcasts); ``softmax(a)`` is ``exp(out)``.
    """
    shifted = a.data - a.data.amax(dim=dim, keepdim=True)
    out = shifted - shifted.exp().sum(dim=dim, keepdim=True).log()

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor]:
        return (grad - out.exp() * grad.sum(dim=dim, keepdim=True),)

    return from_op(out, (a,), backward)


def cross_entropy(logits: Variable, targets: torch.Tensor) -> Variable:
    """The mean over the batch of ``-log softmax(logits)[i, targets[i]]`` (what
    ``torch.nn.functional.cross_entropy`` computes), as a 0-d tensor, with its backward.

    Shapes: ``logits`` ``(batch, classes)``, ``targets`` ``(batch,)`` class indices (a plain
    int64 ``torch.Tensor``: no gradient goes to it). Anything else raises ``ShapeError``.

    Backward: the gradient of one example's loss with respect to its logits is
    ``softmax(logits) - onehot(target)``; the mean divides it by ``batch``, and the upstream
    ``grad`` (a 0-d tensor) scales it all.
    """
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ShapeError(
            f"cross_entropy wants logits of shape (batch, classes) and targets of shape "
            f"(batch,), got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    logp = logits.data.log_softmax(dim=1)
    rows = torch.arange(len(targets))

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor]:
        g = logp.exp()
        g[rows, targets] -= 1
        return (g * (grad / len(targets)),)

    return from_op(-logp[rows, targets].mean(), (logits,), backward)
