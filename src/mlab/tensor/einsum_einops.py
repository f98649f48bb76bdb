"""Einsum and einops: tensor operations written as index patterns.

``torch.einsum("bij,bjk->bik", a, b)`` names every axis of every input; an index that appears
in the inputs but not after ``->`` is summed over. einops (Rogozhnikov, ICLR 2022) extends the
idea to reshaping: ``rearrange(x, "b s (h d) -> b h s d", h=12)`` splits an axis into two and
moves them, ``reduce`` pools over the axes that vanish, ``repeat`` creates new ones.
See https://einops.rocks and the PyTorch documentation of ``torch.einsum``.
"""

from __future__ import annotations

import math

import einops
import torch
from jaxtyping import Float, Num, Shaped
from torch import Tensor

from mlab.errors import ShapeError

__all__ = [
    "attention_output",
    "attention_scores",
    "batched_matmul",
    "bilinear_form",
    "channel_means",
    "images_to_grid",
    "max_pool",
    "merge_heads",
    "outer_product",
    "split_heads",
    "tile",
    "trace",
    "upsample_nearest",
]


def trace(a: Num[Tensor, "n n"]) -> Num[Tensor, ""]:
    """The sum of the diagonal of a square matrix, with one ``torch.einsum`` call.

    Returns a 0-dimensional tensor. Raise ``ShapeError`` unless ``a`` is a square matrix.

    >>> trace(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    tensor(5.)
    """
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ShapeError(f"a has shape {tuple(a.shape)}; the trace needs a square matrix (n, n)")
    return torch.einsum("ii->", a)


def batched_matmul(
    a: Float[Tensor, "batch i j"], b: Float[Tensor, "batch j k"]
) -> Float[Tensor, "batch i k"]:
    """Multiply matching matrices of two batches, ``out[n] = a[n] @ b[n]``, with
    ``torch.einsum``."""
    return torch.einsum("nij,njk->nik", a, b)


def outer_product(u: Float[Tensor, " m"], v: Float[Tensor, " n"]) -> Float[Tensor, "m n"]:
    """``out[i, j] = u[i] * v[j]``, with ``torch.einsum``."""
    return torch.einsum("i,j->ij", u, v)


def bilinear_form(
    x: Float[Tensor, "batch d1"], a: Float[Tensor, "d1 d2"], y: Float[Tensor, "batch d2"]
) -> Float[Tensor, " batch"]:
    """For each row, ``x[n] @ a @ y[n]``: ``out[n] = sum over i, j of x[n, i] a[i, j] y[n, j]``.

    One ``torch.einsum`` call with three operands.
    """
    return torch.einsum("ni,ij,nj->n", x, a, y)


def attention_scores(
    q: Float[Tensor, "batch heads q_seq d_head"], k: Float[Tensor, "batch heads k_seq d_head"]
) -> Float[Tensor, "batch heads q_seq k_seq"]:
    """Scaled dot-product attention scores (Vaswani et al. 2017): the dot product of every query
    with every key of the same batch element and head, divided by ``sqrt(d_head)``.

    ``out[b, h, i, j] = sum over d of q[b, h, i, d] * k[b, h, j, d] / sqrt(d_head)``
    """
    return torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(q.shape[-1])


def attention_output(
    pattern: Float[Tensor, "batch heads q_seq k_seq"], v: Float[Tensor, "batch heads k_seq d_head"]
) -> Float[Tensor, "batch heads q_seq d_head"]:
    """The attention-weighted sum of the values: each query position's output is the average of
    the value vectors, weighted by that query's row of the attention pattern.

    ``out[b, h, i, d] = sum over j of pattern[b, h, i, j] * v[b, h, j, d]``
    """
    return torch.einsum("bhij,bhjd->bhid", pattern, v)


def split_heads(
    x: Float[Tensor, "batch seq d_model"], n_heads: int
) -> Float[Tensor, "batch heads seq d_head"]:
    """Split the last axis into ``n_heads`` heads of size ``d_head = d_model // n_heads`` and
    move the head axis before the sequence axis, with ``einops.rearrange``.

    Head ``h`` holds features ``h * d_head`` to ``(h + 1) * d_head - 1``. Raise ``ShapeError``
    if ``d_model`` is not divisible by ``n_heads``.
    """
    if x.shape[-1] % n_heads != 0:
        raise ShapeError(
            f"d_model={x.shape[-1]} is not divisible by n_heads={n_heads}; "
            "choose n_heads that divides the last dimension"
        )
    return einops.rearrange(x, "b s (h d) -> b h s d", h=n_heads)


def merge_heads(
    x: Float[Tensor, "batch heads seq d_head"],
) -> Float[Tensor, "batch seq heads*d_head"]:
    """Undo :func:`split_heads`: concatenate the heads of each position into one vector of size
    ``heads * d_head``, head 0 first, with ``einops.rearrange``."""
    return einops.rearrange(x, "b h s d -> b s (h d)")


def images_to_grid(
    images: Float[Tensor, "n channels height width"], n_rows: int
) -> Float[Tensor, "channels grid_height grid_width"]:
    """Lay out ``n`` images as one big image of ``n_rows`` rows, filled row by row, with
    ``einops.rearrange``: image ``r * n_cols + c`` goes to grid row ``r``, column ``c``, where
    ``n_cols = n // n_rows``.

    The output has shape ``(channels, n_rows * height, n_cols * width)``. Raise ``ShapeError``
    if ``n`` is not divisible by ``n_rows``.
    """
    if images.shape[0] % n_rows != 0:
        raise ShapeError(
            f"{images.shape[0]} images do not fill a grid of n_rows={n_rows}; "
            "pass an n_rows that divides the number of images"
        )
    return einops.rearrange(images, "(r c) ch h w -> ch (r h) (c w)", r=n_rows)


def max_pool(
    x: Float[Tensor, "batch channels height width"], kernel: int
) -> Float[Tensor, "batch channels out_height out_width"]:
    """Non-overlapping ``kernel x kernel`` max pooling with ``einops.reduce``: each output pixel
    is the largest of a ``kernel x kernel`` block of input pixels.

    Raise ``ShapeError`` if the height or the width is not divisible by ``kernel``.
    """
    if x.shape[2] % kernel or x.shape[3] % kernel:
        raise ShapeError(
            f"height x width = {x.shape[2]} x {x.shape[3]} is not divisible by "
            f"kernel={kernel}; crop or pad the image first"
        )
    return einops.reduce(x, "b c (h kh) (w kw) -> b c h w", "max", kh=kernel, kw=kernel)


def channel_means(
    images: Float[Tensor, "batch channels height width"],
) -> Float[Tensor, " channels"]:
    """The mean of each channel over all images and pixels, with ``einops.reduce`` (the
    statistic you normalise a data set's images with)."""
    return einops.reduce(images, "b c h w -> c", "mean")


def upsample_nearest(
    x: Float[Tensor, "batch channels height width"], scale: int
) -> Float[Tensor, "batch channels out_height out_width"]:
    """Nearest-neighbour upsampling with ``einops.repeat``: every pixel becomes a
    ``scale x scale`` block of copies, so ``out[b, c, i, j] = x[b, c, i // scale, j // scale]``."""
    return einops.repeat(x, "b c h w -> b c (h sh) (w sw)", sh=scale, sw=scale)


def tile(x: Shaped[Tensor, "height width"], reps_h: int, reps_w: int) -> Shaped[Tensor, "h2 w2"]:
    """Tile a matrix ``reps_h`` times downwards and ``reps_w`` times across, with
    ``einops.repeat``: ``out[i, j] = x[i % height, j % width]``.

    >>> tile(torch.tensor([[1, 2]]), 2, 2)
    tensor([[1, 2, 1, 2],
            [1, 2, 1, 2]])
    """
    return einops.repeat(x, "h w -> (rh h) (rw w)", rh=reps_h, rw=reps_w)
