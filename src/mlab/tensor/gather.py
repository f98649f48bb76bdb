"""Gather, scatter and index_select: reading and writing a tensor at positions held in another
tensor.

In index notation, for a 2-D ``x`` and ``dim=1``:

- ``out = x.gather(1, index)``          ``out[i, j] = x[i, index[i, j]]``
- ``out = x.index_select(1, idx)``      ``out[i, j] = x[i, idx[j]]``
- ``out.scatter_(1, index, src)``       ``out[i, index[i, j]] = src[i, j]``
- ``out.index_add_(0, idx, src)``       ``out[idx[i], ...] += src[i, ...]``

These are the building blocks of embedding tables, cross-entropy, one-hot encodings and
segment reductions (graph networks, mixture-of-experts routing). See the PyTorch documentation
of ``torch.gather``, ``torch.Tensor.scatter_`` and ``torch.Tensor.scatter_reduce_``.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int, Num
from torch import Tensor

from mlab.errors import ShapeError

__all__ = [
    "embedding_lookup",
    "gather_positions",
    "label_logprobs",
    "one_hot_scatter",
    "segment_max",
    "segment_sum",
    "select_submatrix",
]


def label_logprobs(
    logprobs: Float[Tensor, "batch classes"], labels: Int[Tensor, " batch"]
) -> Float[Tensor, " batch"]:
    """The log-probability each row gives to its label: ``out[i] = logprobs[i, labels[i]]``.

    Use ``torch.gather`` (no Python loop, no advanced indexing). This is the heart of the
    cross-entropy loss. Raise ``ShapeError`` unless ``logprobs`` is 2-D and ``labels`` has
    shape ``(batch,)``.

    >>> label_logprobs(torch.tensor([[-0.1, -2.3], [-1.2, -0.4]]), torch.tensor([1, 0]))
    tensor([-2.3000, -1.2000])
    """
    if logprobs.ndim != 2 or labels.shape != logprobs.shape[:1]:
        raise ShapeError(
            f"logprobs has shape {tuple(logprobs.shape)} and labels {tuple(labels.shape)}; "
            "expected (batch, classes) and (batch,): one label per row"
        )
    return logprobs.gather(1, labels.unsqueeze(1)).squeeze(1)


def select_submatrix(
    x: Float[Tensor, "rows cols"], rows: Int[Tensor, " r"], cols: Int[Tensor, " c"]
) -> Float[Tensor, "r c"]:
    """The rows ``rows`` and columns ``cols`` of ``x``: ``out[i, j] = x[rows[i], cols[j]]``.

    Use ``index_select`` twice. Indices may repeat and come in any order.

    >>> select_submatrix(torch.arange(12).reshape(3, 4), torch.tensor([2, 0]), torch.tensor([1]))
    tensor([[9],
            [1]])
    """
    return x.index_select(0, rows).index_select(1, cols)


def embedding_lookup(
    weight: Float[Tensor, "vocab d_model"], ids: Int[Tensor, "*batch"]
) -> Float[Tensor, "*batch d_model"]:
    """Look up the embedding of every token id: ``out[..., :] = weight[ids[...], :]``.

    ``ids`` may have any shape (a batch of sequences is ``(batch, seq)``); the output has that
    shape plus a last dimension of size ``d_model``. Use ``index_select`` on the flattened ids
    and reshape; this is what ``torch.nn.functional.embedding`` does. Raise ``ValueError``
    naming the offending range if an id is negative or not below ``vocab``.
    """
    if ids.numel() and (ids.min() < 0 or ids.max() >= weight.shape[0]):
        raise ValueError(
            f"token ids range over [{int(ids.min())}, {int(ids.max())}] but the embedding "
            f"table has vocab={weight.shape[0]} rows: ids must be in [0, {weight.shape[0]})"
        )
    return weight.index_select(0, ids.reshape(-1)).reshape(*ids.shape, weight.shape[1])


def one_hot_scatter(labels: Int[Tensor, " n"], num_classes: int) -> Int[Tensor, "n num_classes"]:
    """One-hot encode ``labels`` with ``scatter_``: ``out[i, labels[i]] = 1``, zero elsewhere.

    The result is int64, like ``torch.nn.functional.one_hot``. Raise ``ValueError`` if a label
    is negative or not below ``num_classes``.

    >>> one_hot_scatter(torch.tensor([2, 0]), 3)
    tensor([[0, 0, 1],
            [1, 0, 0]])
    """
    if bool(((labels < 0) | (labels >= num_classes)).any()):
        raise ValueError(f"labels must be in [0, num_classes={num_classes}); got {labels.tolist()}")
    out = torch.zeros(len(labels), num_classes, dtype=torch.long)
    return out.scatter_(1, labels.unsqueeze(1), 1)


def segment_sum(
    values: Num[Tensor, "n ..."], segment_ids: Int[Tensor, " n"], num_segments: int
) -> Num[Tensor, "num_segments ..."]:
    """Sum the rows of ``values`` that share a segment id:
    ``out[s] = sum of values[i] over all i with segment_ids[i] == s``.

    Segments with no rows are zero. The output has the dtype of ``values``. Use ``index_add_``
    (or ``scatter_add_``). Raise ``ShapeError`` unless there is one segment id per row.

    >>> segment_sum(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1, 0, 1]), 3)
    tensor([2., 4., 0.])
    """
    if segment_ids.shape != values.shape[:1]:
        raise ShapeError(
            f"segment_ids has shape {tuple(segment_ids.shape)} but values has "
            f"{tuple(values.shape)}: give one segment id per row of values"
        )
    out = values.new_zeros((num_segments, *values.shape[1:]))
    return out.index_add_(0, segment_ids, values)


def segment_max(
    values: Float[Tensor, "n d"], segment_ids: Int[Tensor, " n"], num_segments: int
) -> Float[Tensor, "num_segments d"]:
    """The elementwise maximum of the rows of ``values`` in each segment:
    ``out[s, k] = max of values[i, k] over all i with segment_ids[i] == s``, and ``-inf`` for
    a segment with no rows.

    Use ``scatter_reduce_`` with ``reduce="amax"`` on a tensor filled with ``-inf``. Unlike
    ``index_add_``, scatter needs an index of the same shape as ``values``: expand the ids over
    the feature dimension.

    >>> segment_max(torch.tensor([[1.0, 7.0], [5.0, 2.0], [3.0, 3.0]]), torch.tensor([0, 0, 2]), 3)
    tensor([[5., 7.],
            [-inf, -inf],
            [3., 3.]])
    """
    index = segment_ids[:, None].expand_as(values)
    out = torch.full((num_segments, values.shape[1]), -torch.inf, dtype=values.dtype)
    return out.scatter_reduce_(0, index, values, reduce="amax")


def gather_positions(
    x: Float[Tensor, "batch seq d_model"], positions: Int[Tensor, "batch k"]
) -> Float[Tensor, "batch k d_model"]:
    """For each sequence, the vectors at some of its positions:
    ``out[b, j, :] = x[b, positions[b, j], :]``.

    Use ``torch.gather`` along the sequence dimension: its index must have as many dimensions
    as ``x``, so expand ``positions`` over ``d_model``. (Picking the last real token of each
    padded sequence, or the masked positions in BERT, is this operation.) Raise ``ShapeError``
    unless ``positions`` is 2-D with one row per sequence of ``x``.
    """
    if positions.ndim != 2 or positions.shape[0] != x.shape[0]:
        raise ShapeError(
            f"positions has shape {tuple(positions.shape)} but x has {tuple(x.shape)}: "
            "positions should be (batch, k) with the same batch as x"
        )
    index = positions.unsqueeze(-1).expand(-1, -1, x.shape[-1])
    return x.gather(1, index)
