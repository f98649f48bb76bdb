"""Creating, indexing, broadcasting and reshaping tensors.

Creation (``arange``, ``linspace``, ``full``), basic indexing (slices, ``None``, ``...``:
always views), advanced indexing (integer or boolean tensors: always copies), broadcasting
(aligning shapes from the right; size-1 dims stretch with stride 0) and reshaping (``view``
never copies and fails on incompatible strides; ``reshape`` copies only when it must).
See the NumPy indexing and broadcasting guides, which torch follows.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from mlab.errors import ShapeError

__all__ = [
    "bin_centres",
    "column_major",
    "coordinate_grid",
    "every_other",
    "flatten_batch",
    "normalise_rows",
    "outer_sum",
    "pick_elements",
    "replace_masked",
    "shift_right",
]


def coordinate_grid(height: int, width: int) -> Int[Tensor, "height width 2"]:
    """The integer coordinates of every cell of a ``height x width`` grid:
    ``out[i, j] = (i, j)``, as int64.

    Build it from two ``torch.arange`` and broadcasting (no Python loop), then stack the two
    coordinate planes on a new last dimension.

    >>> coordinate_grid(2, 3)[1, 2]
    tensor([1, 2])
    """
    rows = torch.arange(height)[:, None].expand(height, width)
    cols = torch.arange(width)[None, :].expand(height, width)
    return torch.stack((rows, cols), dim=-1)


def bin_centres(low: float, high: float, n_bins: int) -> Float[Tensor, " n_bins"]:
    """The centres of ``n_bins`` equal-width bins covering ``[low, high]``, as float32.

    Hint of the method: ``torch.linspace`` gives the ``n_bins + 1`` bin edges; each centre is
    the mean of two neighbouring edges. Raise ``ValueError`` unless ``n_bins >= 1`` and
    ``low < high``.

    >>> bin_centres(0.0, 1.0, 4)
    tensor([0.1250, 0.3750, 0.6250, 0.8750])
    """
    if n_bins < 1 or not low < high:
        raise ValueError(
            f"bin_centres({low}, {high}, n_bins={n_bins}): need n_bins >= 1 and low < high"
        )
    edges = torch.linspace(low, high, n_bins + 1)
    return (edges[:-1] + edges[1:]) / 2


def outer_sum(a: Float[Tensor, " n"], b: Float[Tensor, " m"]) -> Float[Tensor, "n m"]:
    """All pairwise sums ``out[i, j] = a[i] + b[j]``, by broadcasting a column against a row.

    Raise ``ShapeError`` unless both inputs are 1-D.

    >>> outer_sum(torch.tensor([0.0, 10.0]), torch.tensor([1.0, 2.0, 3.0]))
    tensor([[ 1.,  2.,  3.],
            [11., 12., 13.]])
    """
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(
            f"a has shape {tuple(a.shape)} and b {tuple(b.shape)}; outer_sum needs two 1-D tensors"
        )
    return a[:, None] + b[None, :]


def every_other(x: Tensor, dim: int = -1) -> Tensor:
    """The elements of ``x`` at even positions (0, 2, 4, ...) along ``dim``, all of every
    other dimension, as a view (no copy).

    ``dim`` may be negative. Raise ``ShapeError`` when it is out of range. For a 2-D ``x``,
    ``every_other(x, 0)`` is ``x[::2, :]`` and ``every_other(x, 1)`` is ``x[:, ::2]``.

    >>> every_other(torch.arange(6).view(2, 3))
    tensor([[0, 2],
            [3, 5]])
    """
    if not -x.ndim <= dim < x.ndim:
        raise ShapeError(
            f"dim {dim} is out of range for a tensor of shape {tuple(x.shape)}: "
            f"need -{x.ndim} <= dim < {x.ndim}"
        )
    index = [slice(None)] * x.ndim
    index[dim] = slice(0, None, 2)
    return x[tuple(index)]


def pick_elements(
    x: Float[Tensor, "rows cols"], rows: Int[Tensor, "*idx"], cols: Int[Tensor, "*idx"]
) -> Float[Tensor, "*idx"]:
    """The elements at paired positions: ``out[k] = x[rows[k], cols[k]]`` (for any shape of
    index tensors, the output has that shape).

    Indexing with integer tensors is *advanced* indexing: the result is a new tensor (a
    copy), unlike slicing. Negative indices count from the end, as usual. Raise
    ``ShapeError`` unless ``x`` is 2-D and ``rows`` and ``cols`` have the same shape.

    >>> pick_elements(torch.arange(12.0).view(3, 4), torch.tensor([0, 2]), torch.tensor([3, 1]))
    tensor([3., 9.])
    """
    if x.ndim != 2 or rows.shape != cols.shape:
        raise ShapeError(
            f"x has shape {tuple(x.shape)}, rows {tuple(rows.shape)} and cols "
            f"{tuple(cols.shape)}; need a 2-D x and one row index per column index"
        )
    return x[rows, cols]


def replace_masked(
    x: Float[Tensor, "*shape"], mask: Bool[Tensor, "*shape"], value: float
) -> Float[Tensor, "*shape"]:
    """A copy of ``x`` with every element where ``mask`` is True replaced by ``value``.

    ``x`` itself must not change (``x[mask] = value`` would write into the caller's
    tensor). Raise ``ShapeError`` unless ``mask`` has the shape of ``x``.

    >>> replace_masked(torch.tensor([1.0, -2.0, 3.0]), torch.tensor([False, True, False]), 0.0)
    tensor([1., 0., 3.])
    """
    if mask.shape != x.shape:
        raise ShapeError(
            f"mask has shape {tuple(mask.shape)} but x has {tuple(x.shape)}; they must match"
        )
    return torch.where(mask, value, x)


def flatten_batch(x: Float[Tensor, "batch ..."]) -> Float[Tensor, "batch features"]:
    """``x`` with every dimension after the first merged into one:
    shape ``(batch, d1, d2, ...)`` becomes ``(batch, d1 * d2 * ...)``; a 1-D ``x`` becomes
    ``(batch, 1)``.

    Return a view whenever the strides allow it and a copy only when they do not (that is
    what ``reshape`` does; ``view`` would raise instead). Work for an empty batch too
    (``reshape(0, -1)`` cannot infer the ``-1``). Raise ``ShapeError`` for a 0-d ``x``.

    >>> flatten_batch(torch.zeros(8, 3, 4, 4)).shape
    torch.Size([8, 48])
    """
    if x.ndim < 1:
        raise ShapeError("x is 0-d (a scalar); flatten_batch needs a batch dimension")
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


def column_major(x: Float[Tensor, "rows cols"]) -> Float[Tensor, "rows cols"]:
    """``x``'s values laid out in storage column by column (stride ``(1, rows)``).

    Like ``.contiguous()``, which does this for row-major order: return ``x`` itself (no
    copy) when it already has that layout, and a copy otherwise. Raise ``ShapeError`` unless
    ``x`` is 2-D.

    >>> column_major(torch.zeros(3, 4)).stride()
    (1, 3)
    """
    if x.ndim != 2:
        raise ShapeError(f"x has shape {tuple(x.shape)}; column_major needs a matrix")
    return x.t().contiguous().t()


def normalise_rows(x: Float[Tensor, "rows cols"], eps: float = 1e-12) -> Float[Tensor, "rows cols"]:
    """Each row of ``x`` divided by its Euclidean (L2) length, so every row has length 1.

    Divide by ``max(length, eps)`` so that a row of zeros stays zeros instead of becoming
    NaN (as ``torch.nn.functional.normalize`` does). Raise ``ShapeError`` unless ``x`` is
    2-D.

    >>> normalise_rows(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    tensor([[0.6000, 0.8000],
            [0.0000, 0.0000]])
    """
    if x.ndim != 2:
        raise ShapeError(f"x has shape {tuple(x.shape)}; normalise_rows needs a matrix")
    return x / (x * x).sum(dim=1, keepdim=True).sqrt().clamp_min(eps)


def shift_right(
    x: Float[Tensor, "*batch n"], k: int, fill: float = 0.0
) -> Float[Tensor, "*batch n"]:
    """``x`` shifted ``k`` places to the right along its last dimension, with ``fill`` in the
    places nothing shifts into: ``out[..., i] = x[..., i - k]`` where ``0 <= i - k < n``,
    else ``fill``. A negative ``k`` shifts left; ``|k| >= n`` gives all ``fill``.

    Unlike ``torch.roll`` nothing wraps around. Write it without a Python loop: compute for
    every output position the index it reads from, and mask the ones that fall outside.
    ``x`` must not change.

    >>> shift_right(torch.tensor([1.0, 2.0, 3.0, 4.0]), 1)
    tensor([0., 1., 2., 3.])
    """
    n = x.shape[-1]
    source = torch.arange(n) - k
    inside = (source >= 0) & (source < n)
    return torch.where(inside, x[..., source % n], fill)
