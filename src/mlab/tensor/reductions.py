"""Elementwise operations and reductions: sums, means, maxima and the numerically stable
log-sum-exp and softmax built from them.

A reduction along ``dim`` removes that dimension (or keeps it with size 1 when
``keepdim=True``, which is what you want before broadcasting the result back against the
input). Exponentials overflow float32 above about 88, so ``log(sum(exp(x)))`` and softmax
subtract the maximum first: ``logsumexp(x) = m + log(sum(exp(x - m)))`` for any ``m``.
See "Accurately computing the log-sum-exp and softmax functions" (Blanchard, Higham and
Higham, 2021).
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from mlab.errors import ShapeError

__all__ = [
    "argmax_one_hot",
    "column_mean_std",
    "log_softmax",
    "logsumexp",
    "masked_mean",
    "pairwise_sq_distances",
    "running_mean",
    "softmax",
    "standardise",
]


def column_mean_std(
    x: Float[Tensor, "rows cols"],
) -> tuple[Float[Tensor, "1 cols"], Float[Tensor, "1 cols"]]:
    """The mean and the standard deviation of every column of ``x``, each of shape
    ``(1, cols)`` (the reduced dim kept, so ``(x - mean) / std`` broadcasts).

    The standard deviation is the population one: divide the summed squared deviations by
    ``rows`` (``ddof=0`` in numpy, ``correction=0`` in torch), not by ``rows - 1``. Compute
    it from deviations from the mean, not as ``E[x^2] - E[x]^2``, which loses every digit
    when the mean is large compared with the spread. Raise ``ShapeError`` unless ``x`` is
    2-D with at least one row.

    >>> column_mean_std(torch.tensor([[1.0, 10.0], [3.0, 10.0]]))
    (tensor([[ 2., 10.]]), tensor([[1., 0.]]))
    """
    if x.ndim != 2 or x.shape[0] < 1:
        raise ShapeError(
            f"x has shape {tuple(x.shape)}; column_mean_std needs a matrix with at least one row"
        )
    mean = x.mean(dim=0, keepdim=True)
    std = ((x - mean) ** 2).mean(dim=0, keepdim=True).sqrt()
    return mean, std


def masked_mean(
    x: Float[Tensor, "batch seq"], mask: Bool[Tensor, "batch seq"]
) -> Float[Tensor, " batch"]:
    """The mean of each row of ``x`` over the positions where ``mask`` is True, e.g. the mean
    over the real tokens of a padded batch of sequences.

    Masked-out positions must not matter at all, even when they hold ``inf`` or ``NaN``
    (padding can be garbage; note that ``0 * inf`` is NaN). A row with no True gives 0.
    Raise ``ShapeError`` unless ``x`` is 2-D and ``mask`` has its shape.

    >>> masked_mean(torch.tensor([[1.0, 2.0, 9.0]]), torch.tensor([[True, True, False]]))
    tensor([1.5000])
    """
    if x.ndim != 2 or mask.shape != x.shape:
        raise ShapeError(
            f"x has shape {tuple(x.shape)} and mask {tuple(mask.shape)}; "
            "need a 2-D x and a mask of the same shape"
        )
    total = torch.where(mask, x, 0.0).sum(dim=1)
    return total / mask.sum(dim=1).clamp_min(1)


def running_mean(x: Float[Tensor, "*batch n"]) -> Float[Tensor, "*batch n"]:
    """The mean of the first ``i + 1`` elements, for every ``i``, along the last dimension:
    ``out[..., i] = x[..., :i + 1].mean(-1)``. No Python loop: one cumulative sum.

    >>> running_mean(torch.tensor([2.0, 4.0, 0.0, 6.0]))
    tensor([2., 3., 2., 3.])
    """
    n = x.shape[-1]
    return x.cumsum(dim=-1) / torch.arange(1, n + 1)


def argmax_one_hot(x: Float[Tensor, "rows cols"]) -> Int[Tensor, "rows cols"]:
    """A one-hot int64 matrix marking where each row of ``x`` takes its maximum:
    ``out[i, j] = 1`` if ``j`` is the argmax of row ``i``, else ``0``.

    With ties, only the first maximal position gets the 1 (as ``torch.argmax`` does), so
    every row has exactly one 1. Raise ``ShapeError`` unless ``x`` is 2-D.

    >>> argmax_one_hot(torch.tensor([[0.1, 0.7, 0.2], [5.0, 5.0, -1.0]]))
    tensor([[0, 1, 0],
            [1, 0, 0]])
    """
    if x.ndim != 2:
        raise ShapeError(f"x has shape {tuple(x.shape)}; argmax_one_hot needs a matrix")
    winners = x.argmax(dim=1, keepdim=True)
    return (torch.arange(x.shape[1]) == winners).long()


def pairwise_sq_distances(a: Float[Tensor, "n d"], b: Float[Tensor, "m d"]) -> Float[Tensor, "n m"]:
    """The squared Euclidean distance between every row of ``a`` and every row of ``b``:
    ``out[i, j] = sum_k (a[i, k] - b[j, k]) ** 2``, by broadcasting (no Python loop).

    Raise ``ShapeError`` unless both are 2-D with the same number of columns.

    >>> pairwise_sq_distances(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [1.0, 0.0]]))
    tensor([[25.,  1.]])
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ShapeError(
            f"a has shape {tuple(a.shape)} and b {tuple(b.shape)}; need (n, d) and (m, d)"
        )
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(dim=-1)


def logsumexp(x: Tensor, dim: int) -> Tensor:
    """``log(sum(exp(x)))`` along ``dim`` (which is removed), without overflow or underflow.

    Subtract the maximum along ``dim`` before exponentiating and add it back after the log,
    so the largest exponential is ``exp(0) = 1``. Inputs in the thousands must work. Infinite
    maxima need care: a slice of all ``-inf`` gives ``-inf`` and one holding ``+inf`` gives
    ``+inf`` (as ``torch.logsumexp`` does), never NaN. Raise ``ShapeError`` when ``dim`` has
    size 0.

    >>> logsumexp(torch.tensor([1000.0, 1000.0]), dim=0)  # 1000 + log 2
    tensor(1000.6932)
    """
    if x.shape[dim] < 1:
        raise ShapeError(f"x has shape {tuple(x.shape)}: dim {dim} is empty, nothing to reduce")
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(m.isinf(), 0.0, m)
    return ((x - m).exp().sum(dim=dim, keepdim=True).log() + m).squeeze(dim)


def softmax(x: Tensor, dim: int) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``, without overflow: subtract the maximum along
    ``dim`` first (softmax does not change when a constant is added to a slice).

    Entries of ``-inf`` (masked positions) get probability 0. Inputs in the thousands must
    work.

    >>> softmax(torch.tensor([1000.0, 1000.0, -torch.inf]), dim=0)
    tensor([0.5000, 0.5000, 0.0000])
    """
    e = (x - x.amax(dim=dim, keepdim=True)).exp()
    return e / e.sum(dim=dim, keepdim=True)


def log_softmax(x: Tensor, dim: int) -> Tensor:
    """``log(softmax(x))`` along ``dim``, computed stably: ``x - logsumexp(x)``.

    Taking the log of a softmax that has underflowed to 0 gives ``-inf``; this must instead
    give the exact, finite answer (``log_softmax([0, -1000]) = [0, -1000]``). Inputs in the
    thousands must work.

    >>> log_softmax(torch.tensor([0.0, -1000.0]), dim=0)
    tensor([    0., -1000.])
    """
    shifted = x - x.amax(dim=dim, keepdim=True)
    return shifted - shifted.exp().sum(dim=dim, keepdim=True).log()


def standardise(x: Tensor, dim: int, eps: float = 1e-5) -> Tensor:
    """``x`` shifted and scaled to mean 0 and variance 1 along ``dim``:
    ``(x - mean) / sqrt(var + eps)`` with the population variance (divide by the size of
    ``dim``). With ``dim=-1`` this is layer normalisation without its learned scale and
    shift.

    >>> standardise(torch.tensor([[1.0, 3.0]]), dim=1, eps=0.0)
    tensor([[-1.,  1.]])
    """
    mean = x.mean(dim=dim, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dim, keepdim=True)
    return (x - mean) / (var + eps).sqrt()
