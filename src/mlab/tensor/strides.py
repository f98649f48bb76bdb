"""Strides and views: how a tensor's shape, stride and offset address its storage.

A tensor is a view onto a flat, reference-counted storage. Element ``x[i0, i1, ...]`` lives at
``storage[offset + i0 * stride[0] + i1 * stride[1] + ...]``. Transposing, expanding, narrowing
and taking a diagonal only compute a new (shape, stride, offset): no data moves.
See PyTorch's "Tensor Views" notes and Edward Yang's "PyTorch internals" talk.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["contiguous_strides"]


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """The strides of a freshly allocated (row-major, C-contiguous) tensor of ``shape``.

    The last dimension has stride 1; each earlier one steps over a whole row of the later ones.

    >>> contiguous_strides((2, 3, 4))
    (12, 4, 1)
    """
    strides = []
    step = 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))
