"""Convolution and pooling written from strided views: ``as_strided`` + ``einsum``.

A convolution slides a small kernel over the input. Every position the kernel visits is a
*window* of the input; ``Tensor.as_strided`` can present all windows at once as one tensor
with two extra dimensions, without copying a byte, and a single ``einsum`` then contracts
each window with the kernel. Pooling reduces the same windows with ``max`` or ``mean``.
The signatures follow ``torch.nn.functional`` (``conv1d``, ``conv2d``, ``max_pool2d``,
``avg_pool2d``, ``adaptive_avg_pool2d``), and so does the arithmetic: these are
cross-correlations, as in every deep-learning library. See Dumoulin & Visin, "A guide to
convolution arithmetic for deep learning" (2016), for the output-size formula and pictures.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float
from torch import Tensor

from mlab.errors import ShapeError

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "conv1d",
    "conv2d",
    "conv_output_size",
    "max_pool2d",
    "windows_1d",
    "windows_2d",
]

IntPair = int | tuple[int, int]


def _pair(value: IntPair) -> tuple[int, int]:
    """``3 -> (3, 3)``; a pair is returned as a tuple."""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def _expect_ndim(x: Tensor, ndim: int, layout: str) -> None:
    """Raise ``ShapeError`` unless ``x`` has ``ndim`` dimensions, laid out as ``layout``."""
    if x.ndim != ndim:
        raise ShapeError(
            f"x has shape {tuple(x.shape)} ({x.ndim}-D) but a {ndim}-D {layout} tensor is "
            "needed: add a batch dimension with x.unsqueeze(0) if it is missing"
        )


def conv_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """How many positions a kernel visits along one dimension of a convolution or pooling.

    The input has ``size`` elements plus ``padding`` on each side. A kernel of
    ``kernel_size`` taps, ``dilation`` elements apart, spans ``dilation * (kernel_size - 1) + 1``
    elements; it starts at 0 and moves ``stride`` elements at a time, and must fit entirely
    inside the padded input. Return the number of positions (torch's formula, rounding down).

    Raise ``ValueError`` unless ``kernel_size >= 1``, ``stride >= 1``, ``dilation >= 1`` and
    ``padding >= 0``; raise ``ShapeError`` when the kernel's span is larger than the padded
    input, naming both and the fix.

    >>> conv_output_size(7, 3), conv_output_size(7, 3, stride=2, padding=1)
    (5, 4)
    """
    if kernel_size < 1 or stride < 1 or dilation < 1 or padding < 0:
        raise ValueError(
            f"kernel_size={kernel_size}, stride={stride}, dilation={dilation}, "
            f"padding={padding}: need kernel_size, stride and dilation >= 1 and padding >= 0"
        )
    span = dilation * (kernel_size - 1) + 1
    padded = size + 2 * padding
    if span > padded:
        raise ShapeError(
            f"a kernel of size {kernel_size} with dilation {dilation} spans {span} elements, "
            f"more than the {padded} of the padded input (size {size} + 2 * padding {padding}): "
            "use a smaller kernel or dilation, or pad more"
        )
    return (padded - span) // stride + 1


def windows_1d(
    x: Float[Tensor, "batch channels width"], kernel_size: int, stride: int = 1, dilation: int = 1
) -> Float[Tensor, "batch channels out_width kernel"]:
    """Every window a 1-D kernel of ``kernel_size`` taps visits, as a view of ``x`` made with
    ``x.as_strided`` (no copy, no padding):
    ``out[b, c, p, k] = x[b, c, p * stride + k * dilation]``.

    The number of windows is ``conv_output_size(width, kernel_size, stride, 0, dilation)``
    (which raises when the kernel does not fit). ``x`` need not be contiguous: build the view
    from ``x.stride()`` (``as_strided`` keeps ``x``'s storage offset unless told otherwise).
    Raise ``ShapeError`` unless ``x`` is 3-D (``_expect_ndim`` does it).

    >>> windows_1d(torch.arange(7.0).view(1, 1, 7), 3, stride=2)[0, 0]
    tensor([[0., 1., 2.],
            [2., 3., 4.],
            [4., 5., 6.]])
    """
    _expect_ndim(x, 3, "(batch, channels, width)")
    batch, channels, width = x.shape
    s_b, s_c, s_w = x.stride()
    out_width = conv_output_size(width, kernel_size, stride, 0, dilation)
    return x.as_strided(
        (batch, channels, out_width, kernel_size), (s_b, s_c, stride * s_w, dilation * s_w)
    )


def windows_2d(
    x: Float[Tensor, "batch channels height width"],
    kernel_size: Sequence[int],
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
) -> Float[Tensor, "batch channels out_height out_width kh kw"]:
    """Every window a ``kh x kw`` kernel visits, as a view of ``x`` made with ``x.as_strided``:
    ``out[b, c, p, q, i, j] = x[b, c, p * sh + i * dh, q * sw + j * dw]`` where
    ``kernel_size = (kh, kw)``, ``stride = (sh, sw)`` and ``dilation = (dh, dw)``.

    The 2-D version of ``windows_1d``: the output sizes come from ``conv_output_size`` along
    each of height and width (no padding here). ``x`` need not be contiguous. Raise
    ``ShapeError`` unless ``x`` is 4-D.

    >>> windows_2d(torch.zeros(2, 3, 8, 9), (3, 2), stride=(2, 1)).shape
    torch.Size([2, 3, 3, 8, 3, 2])
    """
    _expect_ndim(x, 4, "(batch, channels, height, width)")
    batch, channels, height, width = x.shape
    s_b, s_c, s_h, s_w = x.stride()
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    out_h = conv_output_size(height, kh, sh, 0, dh)
    out_w = conv_output_size(width, kw, sw, 0, dw)
    return x.as_strided(
        (batch, channels, out_h, out_w, kh, kw), (s_b, s_c, sh * s_h, sw * s_w, dh * s_h, dw * s_w)
    )


def _check_conv_shapes(x: Tensor, weight: Tensor, groups: int) -> None:
    """Raise ``ShapeError`` when ``x`` (batch, in_channels, ...) and ``weight``
    (out_channels, in_channels / groups, ...) do not fit together."""
    if weight.ndim != x.ndim:
        raise ShapeError(
            f"x has shape {tuple(x.shape)} but weight has shape {tuple(weight.shape)}: x "
            "(batch, in_channels, *spatial) and weight (out_channels, in_channels / groups, "
            "*kernel) need the same number of dims; add a batch dimension with x.unsqueeze(0) "
            "if it is missing"
        )
    in_channels, out_channels = x.shape[1], weight.shape[0]
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ShapeError(
            f"groups={groups} must be >= 1 and divide both in_channels={in_channels} (x "
            f"{tuple(x.shape)}) and out_channels={out_channels} (weight {tuple(weight.shape)})"
        )
    if weight.shape[1] * groups != in_channels:
        raise ShapeError(
            f"x has shape {tuple(x.shape)} ({in_channels} channels) but weight "
            f"{tuple(weight.shape)} expects {weight.shape[1]} * groups={groups} = "
            f"{weight.shape[1] * groups}: weight.shape[1] must be in_channels / groups"
        )


def conv1d(
    x: Float[Tensor, "batch in_channels width"],
    weight: Float[Tensor, "out_channels in_per_group kernel"],
    bias: Float[Tensor, " out_channels"] | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> Float[Tensor, "batch out_channels out_width"]:
    """1-D convolution (cross-correlation) like ``torch.nn.functional.conv1d``::

        out[b, o, p] = bias[o] + sum over c, k of
                       x_pad[b, g * C + c, p * stride + k * dilation] * weight[o, c, k]

    where ``x_pad`` is ``x`` with ``padding`` zeros on both ends, ``C = in_channels / groups``
    is ``weight.shape[1]`` and ``g = o // (out_channels / groups)`` is the group of output
    channel ``o``: with ``groups > 1`` the channels split into that many independent
    convolutions. Pad (``F.pad``), take ``windows_1d`` of the padded input, and contract the
    windows with the weight in one ``einsum``; add ``bias`` if given. No ``F.conv1d``/unfold.

    Raise ``ShapeError`` unless ``x`` is 3-D and ``weight`` 3-D, when ``groups`` does not
    divide both channel counts, and when ``x``'s channels differ from
    ``weight.shape[1] * groups`` (the helper ``_check_conv_shapes`` raises all but the first);
    too large a kernel raises through ``conv_output_size``, a wrong ``x`` through ``windows_1d``.
    """
    _check_conv_shapes(x, weight, groups)
    windows = windows_1d(F.pad(x, (padding, padding)), weight.shape[-1], stride, dilation)
    windows = rearrange(windows, "b (g c) p k -> b g c p k", g=groups)
    w = rearrange(weight, "(g o) c k -> g o c k", g=groups)
    out = rearrange(torch.einsum("bgcpk,gock->bgop", windows, w), "b g o p -> b (g o) p")
    return out if bias is None else out + bias[:, None]


def conv2d(
    x: Float[Tensor, "batch in_channels height width"],
    weight: Float[Tensor, "out_channels in_per_group kh kw"],
    bias: Float[Tensor, " out_channels"] | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Float[Tensor, "batch out_channels out_height out_width"]:
    """2-D convolution (cross-correlation) like ``torch.nn.functional.conv2d``.

    ``stride``, ``padding`` and ``dilation`` are each an int (same for height and width) or a
    ``(height, width)`` pair. ``padding`` adds zeros on all four sides (``ph`` rows above and
    below, ``pw`` columns left and right). With ``C = weight.shape[1] = in_channels / groups``::

        out[b, o, p, q] = bias[o] + sum over c, i, j of
                          x_pad[b, g * C + c, p * sh + i * dh, q * sw + j * dw] * weight[o, c, i, j]

    where ``g = o // (out_channels / groups)``. Pad, take ``windows_2d``, split the channels
    into groups and contract with one ``einsum``; add ``bias`` if given. No ``F.conv2d``/unfold.

    Raise ``ShapeError`` unless ``x`` and ``weight`` are 4-D, when ``groups`` does not divide
    both channel counts, and when ``x``'s channels differ from ``weight.shape[1] * groups``
    (the helper ``_check_conv_shapes`` raises all but the first); too large a kernel raises
    through ``conv_output_size``, a wrong ``x`` through ``windows_2d``.
    """
    _check_conv_shapes(x, weight, groups)
    ph, pw = _pair(padding)
    x_pad = F.pad(x, (pw, pw, ph, ph))
    windows = windows_2d(x_pad, weight.shape[2:], _pair(stride), _pair(dilation))
    windows = rearrange(windows, "b (g c) p q i j -> b g c p q i j", g=groups)
    w = rearrange(weight, "(g o) c i j -> g o c i j", g=groups)
    out = rearrange(torch.einsum("bgcpqij,gocij->bgopq", windows, w), "b g o p q -> b (g o) p q")
    return out if bias is None else out + bias[:, None, None]


def max_pool2d(
    x: Float[Tensor, "batch channels height width"],
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> Float[Tensor, "batch channels out_height out_width"]:
    """2-D max pooling like ``torch.nn.functional.max_pool2d``: the largest value of each
    ``kh x kw`` window.

    ``stride`` defaults to the kernel size (non-overlapping windows). ``padding`` adds
    ``-inf`` (never the maximum) on all four sides. Each of ``kernel_size``, ``stride`` and
    ``padding`` is an int or a ``(height, width)`` pair. Use ``windows_2d``; no ``F.*pool*``.
    Where a window holds equal maxima, the gradient goes to the first of them in row-major
    order, as torch's does (``amax`` would share it among them).
    Raise ``ShapeError`` unless ``x`` is 4-D.
    """
    kernel = _pair(kernel_size)
    ph, pw = _pair(padding)
    x_pad = F.pad(x, (pw, pw, ph, ph), value=-torch.inf)
    return windows_2d(x_pad, kernel, _pair(stride or kernel)).flatten(-2).max(-1).values


def avg_pool2d(
    x: Float[Tensor, "batch channels height width"],
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> Float[Tensor, "batch channels out_height out_width"]:
    """2-D average pooling like ``torch.nn.functional.avg_pool2d`` (with its default
    ``count_include_pad=True``): the mean of each ``kh x kw`` window of the zero-padded input,
    always dividing by ``kh * kw``.

    ``stride`` defaults to the kernel size. Each of ``kernel_size``, ``stride`` and ``padding``
    is an int or a ``(height, width)`` pair. Use ``windows_2d``; no ``F.*pool*``. Raise
    ``ShapeError`` unless ``x`` is 4-D.
    """
    kernel = _pair(kernel_size)
    ph, pw = _pair(padding)
    return windows_2d(F.pad(x, (pw, pw, ph, ph)), kernel, _pair(stride or kernel)).mean((-2, -1))


def adaptive_avg_pool2d(
    x: Float[Tensor, "batch channels height width"], output_size: IntPair
) -> Float[Tensor, "batch channels out_height out_width"]:
    """Average pooling to a fixed output size, like
    ``torch.nn.functional.adaptive_avg_pool2d``: the kernel and stride follow from the sizes.

    Output cell ``(p, q)`` of an ``out_h x out_w`` output (``output_size`` is an int or a pair)
    averages rows ``floor(p * H / out_h)`` up to (not including) ``ceil((p + 1) * H / out_h)``
    and likewise columns with ``W`` and ``out_w``. When ``H`` is a multiple of ``out_h`` this is
    a plain average pool with kernel = stride = ``H // out_h``; otherwise neighbouring ranges
    can overlap or differ in length. A loop over output rows and columns is fine: average the
    row ranges first, then the column ranges of that (a mean of equal-length means is the
    mean). Raise ``ShapeError`` unless ``x`` is 4-D.

    >>> adaptive_avg_pool2d(torch.arange(5.0).view(1, 1, 1, 5), (1, 3))
    tensor([[[[0.5000, 2.0000, 3.5000]]]])
    """
    _expect_ndim(x, 4, "(batch, channels, height, width)")
    (height, width), (out_h, out_w) = x.shape[2:], _pair(output_size)
    # -(-a // b) is ceil(a / b) in integer arithmetic
    rows = [x[:, :, p * height // out_h : -(-(p + 1) * height // out_h)] for p in range(out_h)]
    by_rows = torch.stack([r.mean(2) for r in rows], 2)  # batch channels out_h width
    cols = [by_rows[..., q * width // out_w : -(-(q + 1) * width // out_w)] for q in range(out_w)]
    return torch.stack([c.mean(-1) for c in cols], -1)
