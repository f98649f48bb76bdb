"""Strides and views: how a tensor's shape, stride and offset address its storage.

A tensor is a view onto a flat, reference-counted storage. Element ``x[i0, i1, ...]`` lives at
``storage[offset + i0 * stride[0] + i1 * stride[1] + ...]``. Transposing, expanding, narrowing
and taking a diagonal only compute a new (shape, stride, offset): no data moves.
See PyTorch's "Tensor Views" notes and Edward Yang's "PyTorch internals" talk.
"""

from __future__ import annotations

from collections.abc import Sequence

from jaxtyping import Float
from torch import Tensor

from mlab.errors import ShapeError

__all__ = [
    "contiguous_strides",
    "diagonal_layout",
    "element_offset",
    "expand_layout",
    "is_contiguous",
    "narrow_layout",
    "patches_2d",
    "shares_storage",
    "sliding_windows",
    "transpose_layout",
]

Layout = tuple[tuple[int, ...], tuple[int, ...]]  # (shape, stride)
OffsetLayout = tuple[tuple[int, ...], tuple[int, ...], int]  # (shape, stride, storage offset)


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


def element_offset(index: Sequence[int], stride: Sequence[int], offset: int = 0) -> int:
    """The position in storage of the element at ``index`` of a tensor with this ``stride``
    and storage ``offset``: ``offset + index[0] * stride[0] + index[1] * stride[1] + ...``.

    Indices are non-negative. Raise ``ShapeError`` when ``index`` and ``stride`` have
    different lengths (one index per dimension is needed).

    >>> element_offset((1, 2), (4, 1), offset=3)  # x[1, 2] of a contiguous 3x4 view at 3
    9
    """
    if len(index) != len(stride):
        raise ShapeError(
            f"index {tuple(index)} has {len(index)} entries but stride {tuple(stride)} has "
            f"{len(stride)}: give one index per dimension"
        )
    return offset + sum(index[d] * stride[d] for d in range(len(index)))


def is_contiguous(shape: Sequence[int], stride: Sequence[int]) -> bool:
    """Whether a tensor of this ``shape`` and ``stride`` is contiguous, as
    ``Tensor.is_contiguous()`` decides it.

    Contiguous means its elements sit in storage in row-major order with no gaps, which is
    what ``contiguous_strides(shape)`` gives, with two relaxations that torch makes: the
    stride of a dimension of size 1 does not matter (only index 0 exists), and a tensor with
    no elements (a dimension of size 0) is always contiguous.

    Raise ``ShapeError`` when ``shape`` and ``stride`` have different lengths.

    >>> is_contiguous((2, 3), (3, 1)), is_contiguous((2, 3), (1, 2)), is_contiguous((2, 1), (1, 7))
    (True, False, True)
    """
    if len(shape) != len(stride):
        raise ShapeError(
            f"shape {tuple(shape)} and stride {tuple(stride)} have different lengths: "
            "a layout has one stride per dimension"
        )
    if 0 in shape:
        return True
    expected = 1
    for size, step in zip(reversed(shape), reversed(stride)):  # noqa: B905 (lengths checked)
        if size != 1 and step != expected:
            return False
        expected *= size
    return True


def shares_storage(a: Tensor, b: Tensor) -> bool:
    """Whether the non-empty tensors ``a`` and ``b`` are views of one storage, so that
    writing through one can change the other.

    Compare the storages themselves, not the tensors' first elements: ``x`` and ``x[1:]``
    share storage although they start at different addresses.
    """
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def transpose_layout(shape: Sequence[int], stride: Sequence[int], dim0: int, dim1: int) -> Layout:
    """The (shape, stride) of ``x.transpose(dim0, dim1)`` for ``x`` with this layout.

    Dimensions may be negative (``-1`` is the last). Raise ``ShapeError`` for a dimension
    out of range, naming the valid range.

    >>> transpose_layout((2, 3, 4), (12, 4, 1), 0, -1)
    ((4, 3, 2), (1, 4, 12))
    """
    n = len(shape)
    for dim in (dim0, dim1):
        if not -n <= dim < n:
            raise ShapeError(
                f"dim {dim} is out of range for a {n}-D tensor: need -{n} <= dim < {n}"
            )
    new_shape, new_stride = list(shape), list(stride)
    new_shape[dim0], new_shape[dim1] = shape[dim1], shape[dim0]
    new_stride[dim0], new_stride[dim1] = stride[dim1], stride[dim0]
    return tuple(new_shape), tuple(new_stride)


def narrow_layout(
    shape: Sequence[int],
    stride: Sequence[int],
    offset: int,
    dim: int,
    start: int,
    length: int,
) -> OffsetLayout:
    """The (shape, stride, storage offset) of ``x.narrow(dim, start, length)``, i.e. of
    ``x[..., start:start + length, ...]`` with the slice at ``dim``, for ``x`` with this
    layout.

    ``dim`` may be negative. Raise ``ShapeError`` when ``dim`` is out of range, and
    ``ValueError`` unless ``0 <= start`` and ``0 <= length`` and ``start + length`` is at
    most the size of ``dim``.

    >>> narrow_layout((4, 5), (5, 1), 0, 1, 2, 3)  # x[:, 2:5]
    ((4, 3), (5, 1), 2)
    """
    n = len(shape)
    if not -n <= dim < n:
        raise ShapeError(f"dim {dim} is out of range for a {n}-D tensor: need -{n} <= dim < {n}")
    if not 0 <= start <= start + length <= shape[dim]:
        raise ValueError(
            f"start={start}, length={length} do not fit in dim {dim} of size {shape[dim]}: "
            f"need 0 <= start and 0 <= length and start + length <= {shape[dim]}"
        )
    new_shape = list(shape)
    new_shape[dim] = length
    return tuple(new_shape), tuple(stride), offset + start * stride[dim]


def expand_layout(shape: Sequence[int], stride: Sequence[int], new_shape: Sequence[int]) -> Layout:
    """The (shape, stride) of ``x.expand(*new_shape)`` for ``x`` with this layout.

    Broadcasting without copying: a dimension of size 1 may grow to any size by giving it
    stride 0, so every index along it reads the same element. Torch's rules, aligning the
    shapes from the right:

    - ``new_shape`` may have more dimensions than ``shape``; the new ones go in front, act
      like dimensions of size 1 and get stride 0 (whatever their size);
    - ``-1`` keeps the existing size (not allowed for a new leading dimension);
    - a dimension whose size does not change keeps its stride; one of size 1 takes the new
      size with stride 0; any other change raises ``ShapeError`` saying which dimension.

    (Torch gives a new leading dimension of size 1 some other stride; it never matters,
    since only index 0 exists.)

    >>> expand_layout((3, 1), (1, 1), (2, 3, 4))
    ((2, 3, 4), (0, 1, 0))
    """
    n_new = len(new_shape) - len(shape)
    if n_new < 0:
        raise ShapeError(
            f"cannot expand shape {tuple(shape)} to {tuple(new_shape)}: expand can add "
            "dimensions in front but never remove them"
        )
    old_shape = [1] * n_new + list(shape)
    old_stride = [0] * n_new + list(stride)
    out_shape, out_stride = [], []
    # the three lists have equal lengths by construction
    for i, (size, step, target) in enumerate(zip(old_shape, old_stride, new_shape)):  # noqa: B905
        if target == -1 and i >= n_new:
            target = size
        if target < 0 or size not in (1, target):
            raise ShapeError(
                f"cannot expand shape {tuple(shape)} to {tuple(new_shape)}: at dimension {i} "
                f"size {size} can only become {size} or -1 (sizes of 1 can become anything "
                "non-negative; new leading dimensions need an explicit size)"
            )
        out_shape.append(target)
        out_stride.append(step if size == target else 0)
    return tuple(out_shape), tuple(out_stride)


def diagonal_layout(
    shape: Sequence[int], stride: Sequence[int], offset: int, k: int = 0
) -> OffsetLayout:
    """The (shape, stride, storage offset) of ``x.diagonal(k)`` for a 2-D ``x`` with this
    layout: the elements ``x[i, i + k]`` (``k > 0`` above the main diagonal, ``k < 0``
    below it), as a 1-D view.

    Stepping along a diagonal moves one row down and one column right at once. A diagonal
    that misses the matrix entirely has length 0 (its offset is then not checked). Raise
    ``ShapeError`` unless ``shape`` is 2-D.

    >>> diagonal_layout((3, 4), (4, 1), 0, k=1)  # x[0, 1], x[1, 2], x[2, 3]
    ((3,), (5,), 1)
    """
    if len(shape) != 2:
        raise ShapeError(f"shape {tuple(shape)} is not a matrix: diagonal_layout needs 2 dims")
    rows, cols = shape
    row0, col0 = max(-k, 0), max(k, 0)  # where the diagonal starts: x[row0, col0]
    length = max(min(rows - row0, cols - col0), 0)
    return (length,), (stride[0] + stride[1],), offset + row0 * stride[0] + col0 * stride[1]


def sliding_windows(
    x: Float[Tensor, " n"], size: int, step: int = 1
) -> Float[Tensor, "windows size"]:
    """All windows of ``size`` consecutive elements of the 1-D ``x``, starting every ``step``
    elements, as a view made with ``x.as_strided`` (no copy): ``out[w, j] = x[w * step + j]``.

    There are ``(n - size) // step + 1`` windows; a last partial window is dropped. ``x`` need
    not be contiguous. Raise ``ShapeError`` unless ``x`` is 1-D, and ``ValueError`` unless
    ``1 <= size <= n`` and ``step >= 1``. (``x.unfold(0, size, step)`` does the same.)

    >>> sliding_windows(torch.arange(6), 3, step=2)
    tensor([[0, 1, 2],
            [2, 3, 4]])
    """
    if x.ndim != 1:
        raise ShapeError(f"x has shape {tuple(x.shape)}; sliding_windows needs a 1-D tensor")
    (n,) = x.shape
    if not 1 <= size <= n or step < 1:
        raise ValueError(
            f"size={size}, step={step} for {n} elements: need 1 <= size <= {n} and step >= 1"
        )
    (s,) = x.stride()
    return x.as_strided(((n - size) // step + 1, size), (step * s, s))


def patches_2d(
    x: Float[Tensor, "height width"], kernel: tuple[int, int], step: int = 1
) -> Float[Tensor, "rows cols kh kw"]:
    """All ``kh x kw`` patches of the 2-D ``x``, taken every ``step`` pixels in both
    directions, as a view made with ``x.as_strided``:
    ``out[r, c, i, j] = x[r * step + i, c * step + j]``.

    This is the heart of a convolution written with strides (a later day). ``x`` need not be
    contiguous. Raise ``ShapeError`` unless ``x`` is 2-D, and ``ValueError`` unless each
    kernel size is between 1 and the size of ``x`` along it and ``step >= 1``.

    >>> patches_2d(torch.arange(12).reshape(3, 4), (2, 3)).shape  # 2 x 2 patches of 2x3
    torch.Size([2, 2, 2, 3])
    """
    if x.ndim != 2:
        raise ShapeError(f"x has shape {tuple(x.shape)}; patches_2d needs a 2-D tensor")
    (height, width), (kh, kw) = x.shape, kernel
    if not (1 <= kh <= height and 1 <= kw <= width and step >= 1):
        raise ValueError(
            f"kernel {tuple(kernel)}, step={step} for a {height}x{width} input: need each kernel "
            "size between 1 and the input's size along it, and step >= 1"
        )
    s_row, s_col = x.stride()
    rows, cols = (height - kh) // step + 1, (width - kw) // step + 1
    return x.as_strided((rows, cols, kh, kw), (step * s_row, step * s_col, s_row, s_col))
