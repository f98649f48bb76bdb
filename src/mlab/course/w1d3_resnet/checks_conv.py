"""Checks for part 1 of w1d3: convolutions from strided windows, against
``torch.nn.functional.conv1d``/``conv2d`` (forward and gradients, float64)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_raises,
    assert_shares_storage,
    case,
    generator,
    randn,
)

__all__ = ["leaf", "matches_torch"]


def leaf(*shape: int, seed: int, layout: str = "contiguous") -> Tensor:
    """A float64 leaf tensor of ``shape`` that requires grad, laid out as asked:
    ``"contiguous"``, ``"channels_last"`` (a permuted 4-D layout) or ``"sliced"`` (every other
    column of a wider tensor, starting at a storage offset)."""
    if layout == "channels_last":
        x = randn(*shape, seed=seed, dtype=torch.float64).to(memory_format=torch.channels_last)
    elif layout == "sliced":
        wide = randn(*shape[:-1], 2 * shape[-1] + 1, seed=seed, dtype=torch.float64)
        x = wide[..., 1::2]
    else:
        x = randn(*shape, seed=seed, dtype=torch.float64)
    return x.detach().requires_grad_()


def matches_torch(
    ours: Callable[..., Any],
    theirs: Callable[..., Tensor],
    tensors: Sequence[Tensor | None],
    *,
    seed: int,
    **kwargs: Any,
) -> None:
    """Check ``ours(*tensors, **kwargs)`` against ``theirs`` on the same inputs: the output,
    then the gradients of every tensor input through the non-uniform loss ``(out * w).sum()``."""
    # detach() keeps each input's layout (strides, storage offset) for ours; torch gets copies
    mine = [None if t is None else t.detach().requires_grad_() for t in tensors]
    ref = [None if t is None else t.detach().clone().requires_grad_() for t in tensors]
    expected = theirs(*ref, **kwargs)
    got = ours(*mine, **kwargs)
    assert_close(got, expected, what="output")
    w = torch.randn(expected.shape, generator=generator(seed), dtype=expected.dtype)
    names = [n for n, t in zip(("x", "weight", "bias"), tensors, strict=False) if t is not None]
    got_inputs = [t for t in mine if t is not None]
    expected_grads = torch.autograd.grad((expected * w).sum(), [t for t in ref if t is not None])
    got_grads = torch.autograd.grad((got * w).sum(), got_inputs, allow_unused=True)
    for name, g, e in zip(names, got_grads, expected_grads, strict=True):
        assert_close(g, e, what=f"grad of {name}")


# ----------------------------------------------------------------------------------------------
# conv_output_size


@check("conv_output_size")
def output_size_matches_torch(ns: Namespace) -> None:
    for size in (1, 4, 7, 10):
        for kernel in (1, 2, 3, 5):
            for stride, padding, dilation in [
                (1, 0, 1),
                (2, 1, 1),
                (3, 2, 2),
                (1, 1, 3),
                (2, 0, 2),
            ]:
                span = dilation * (kernel - 1) + 1
                if span > size + 2 * padding:
                    continue
                out = F.conv1d(
                    torch.zeros(1, 1, size),
                    torch.zeros(1, 1, kernel),
                    None,
                    stride,
                    padding,
                    dilation,
                )
                with case(
                    f"size={size}, kernel_size={kernel}, stride={stride}, padding={padding}, "
                    f"dilation={dilation}"
                ):
                    got = ns.conv_output_size(size, kernel, stride, padding, dilation)
                    assert_equal(got, out.shape[-1], what="output size")


@check("conv_output_size")
def output_size_defaults(ns: Namespace) -> None:
    with case("conv_output_size(7, 3) with stride, padding and dilation left at their defaults"):
        assert_equal(ns.conv_output_size(7, 3), 5, what="output size")


@check("conv_output_size")
def output_size_rejects_bad_arguments(ns: Namespace) -> None:
    for size, kernel, stride, padding, dilation in [
        (5, 0, 1, 0, 1),
        (5, 3, 0, 0, 1),
        (5, 3, 1, -1, 1),
        (5, 3, 1, 0, 0),
    ]:
        with case(
            f"size={size}, kernel_size={kernel}, stride={stride}, padding={padding}, "
            f"dilation={dilation}"
        ):
            assert_raises(
                ns.conv_output_size,
                size,
                kernel,
                stride,
                padding,
                dilation,
                exc=ValueError,
                what="conv_output_size",
            )
    for size, kernel, padding, dilation in [(4, 5, 0, 1), (3, 4, 0, 1), (2, 4, 0, 2), (1, 5, 1, 1)]:
        with case(f"size={size}, kernel_size={kernel}, padding={padding}, dilation={dilation}"):
            assert_raises(
                ns.conv_output_size,
                size,
                kernel,
                1,
                padding,
                dilation,
                exc=ShapeError,
                what="conv_output_size (kernel larger than the padded input)",
            )


# ----------------------------------------------------------------------------------------------
# windows_1d


def _windows_1d_expected(x: Tensor, kernel: int, stride: int, dilation: int) -> Tensor:
    """The windows by advanced indexing (a copy): out[b, c, p, k] = x[b, c, p*stride + k*dil]."""
    n_out = (x.shape[-1] - dilation * (kernel - 1) - 1) // stride + 1
    index = torch.arange(n_out)[:, None] * stride + torch.arange(kernel) * dilation
    return x[:, :, index]


@check("windows_1d")
def windows_1d_match_indexing(ns: Namespace) -> None:
    base = torch.arange(2 * 3 * 23, dtype=torch.float64).view(2, 3, 23)
    inputs = [
        ("a contiguous 2x3x11 tensor", base[:, :, :11].contiguous()),
        ("a 1x2x9 tensor", torch.arange(18.0).view(1, 2, 9)),
        ("x[:, :, 3:] of a 2x3x23 tensor (storage offset)", base[:, :, 3:]),
        ("x[:, :, 1::2] of a 2x3x23 tensor (stride 2)", base[:, :, 1::2]),
        ("a 3x2x23 tensor, dims 0 and 1 swapped", base.transpose(0, 1)),
    ]
    for name, x in inputs:
        for kernel, stride, dilation in [(3, 1, 1), (2, 3, 1), (3, 2, 2), (1, 2, 1), (4, 1, 2)]:
            with case(f"{name}, kernel_size={kernel}, stride={stride}, dilation={dilation}", x=x):
                got = ns.windows_1d(x, kernel, stride, dilation)
                assert_equal(got, _windows_1d_expected(x, kernel, stride, dilation))
                assert_shares_storage(got, x)


@check("windows_1d")
def windows_1d_defaults(ns: Namespace) -> None:
    x = torch.arange(14.0).view(1, 2, 7)
    with case("a 1x2x7 tensor, kernel_size=3, stride and dilation left at 1", x=x):
        assert_equal(ns.windows_1d(x, 3), _windows_1d_expected(x, 3, 1, 1))


@check("windows_1d")
def windows_1d_rejects_bad_shapes(ns: Namespace) -> None:
    for x in (torch.zeros(7), torch.zeros(2, 7), torch.zeros(1, 2, 3, 7)):
        with case(f"x of shape {tuple(x.shape)}", x=x):
            assert_raises(ns.windows_1d, x, 3, exc=ShapeError, what="windows_1d")
    with case("kernel_size=4 with dilation 2 (span 7) on a width of 6"):
        assert_raises(ns.windows_1d, torch.zeros(1, 1, 6), 4, 1, 2, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# windows_2d


def _windows_2d_expected(
    x: Tensor, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> Tensor:
    def index(size: int, k: int, s: int, d: int) -> Tensor:
        n_out = (size - d * (k - 1) - 1) // s + 1
        return torch.arange(n_out)[:, None] * s + torch.arange(k) * d

    rows = index(x.shape[-2], kernel[0], stride[0], dilation[0])  # out_h kh
    cols = index(x.shape[-1], kernel[1], stride[1], dilation[1])  # out_w kw
    return x[:, :, rows[:, None, :, None], cols[None, :, None, :]]


@check("windows_2d")
def windows_2d_match_indexing(ns: Namespace) -> None:
    base = torch.arange(2 * 3 * 13 * 17, dtype=torch.float64).view(2, 3, 13, 17)
    inputs = [
        ("a contiguous 2x3x13x17 tensor", base),
        ("a 1x1x6x9 tensor", torch.arange(54.0).view(1, 1, 6, 9)),
        ("x[:, 1:, 2:, 1::2] of a 2x3x13x17 tensor (offset, stride)", base[:, 1:, 2:, 1::2]),
        ("a 2x3x13x17 tensor in channels-last layout", base.to(memory_format=torch.channels_last)),
        ("a 2x3x17x13 tensor (the last two dims swapped)", base.transpose(2, 3)),
    ]
    configs = [
        ((3, 2), (1, 1), (1, 1)),
        ((2, 3), (2, 1), (1, 1)),
        ((3, 1), (1, 3), (2, 1)),
        ((2, 2), (3, 2), (1, 2)),
        ((1, 4), (2, 3), (1, 1)),
    ]
    for name, x in inputs:
        for kernel, stride, dilation in configs:
            with case(f"{name}, kernel_size={kernel}, stride={stride}, dilation={dilation}", x=x):
                got = ns.windows_2d(x, kernel, stride, dilation)
                assert_equal(got, _windows_2d_expected(x, kernel, stride, dilation))
                assert_shares_storage(got, x)


@check("windows_2d")
def windows_2d_defaults(ns: Namespace) -> None:
    x = torch.arange(70.0).view(1, 2, 5, 7)
    with case("a 1x2x5x7 tensor, kernel_size=(2, 3), stride and dilation left at (1, 1)", x=x):
        assert_equal(ns.windows_2d(x, (2, 3)), _windows_2d_expected(x, (2, 3), (1, 1), (1, 1)))


@check("windows_2d")
def windows_2d_rejects_bad_shapes(ns: Namespace) -> None:
    for x in (torch.zeros(5, 7), torch.zeros(2, 5, 7), torch.zeros(1, 1, 2, 5, 7)):
        with case(f"x of shape {tuple(x.shape)}", x=x):
            assert_raises(ns.windows_2d, x, (2, 2), exc=ShapeError, what="windows_2d")
    for kernel, dilation in [((6, 2), (1, 1)), ((2, 8), (1, 1)), ((2, 5), (1, 2))]:
        with case(f"kernel_size={kernel}, dilation={dilation} on a 5x7 input"):
            assert_raises(
                ns.windows_2d, torch.zeros(1, 1, 5, 7), kernel, (1, 1), dilation, exc=ShapeError
            )


# ----------------------------------------------------------------------------------------------
# conv1d


@check("conv1d")
def conv1d_matches_torch(ns: Namespace) -> None:
    configs = [
        # batch, in, out, width, kernel, stride, padding, dilation, groups, bias, layout
        (2, 3, 4, 11, 3, 1, 0, 1, 1, True, "contiguous"),
        (1, 2, 5, 9, 2, 2, 1, 1, 1, True, "contiguous"),
        (3, 4, 2, 13, 3, 3, 2, 2, 1, False, "sliced"),
        (2, 6, 4, 10, 3, 2, 1, 1, 2, True, "contiguous"),
        (2, 6, 9, 12, 2, 1, 3, 3, 3, True, "sliced"),
        (1, 3, 3, 8, 5, 1, 2, 1, 3, False, "contiguous"),
    ]
    _check_conv(ns.conv1d, F.conv1d, configs, 0)


@check("conv1d")
def conv1d_defaults(ns: Namespace) -> None:
    x, weight = leaf(2, 3, 9, seed=1), leaf(4, 3, 3, seed=2)
    with case("x (2, 3, 9), weight (4, 3, 3), everything else left at its default"):
        assert_close(ns.conv1d(x, weight), F.conv1d(x, weight))


@check("conv1d")
def conv1d_rejects_bad_shapes(ns: Namespace) -> None:
    bad = [
        ("x is 2-D", torch.zeros(3, 9), torch.zeros(4, 3, 3), 1),
        ("x is 4-D", torch.zeros(1, 3, 9, 9), torch.zeros(4, 3, 3), 1),
        ("weight is 2-D", torch.zeros(1, 3, 9), torch.zeros(4, 3), 1),
        ("x has 3 channels, weight expects 2", torch.zeros(1, 3, 9), torch.zeros(4, 2, 3), 1),
        ("groups=2 does not divide 3 in-channels", torch.zeros(1, 3, 9), torch.zeros(4, 1, 3), 2),
        ("groups=2 does not divide 3 out-channels", torch.zeros(1, 4, 9), torch.zeros(3, 2, 3), 2),
        ("kernel 5 on a width of 4", torch.zeros(1, 3, 4), torch.zeros(4, 3, 5), 1),
    ]
    for name, x, weight, groups in bad:
        with case(f"{name}: x {tuple(x.shape)}, weight {tuple(weight.shape)}, groups={groups}"):
            assert_raises(ns.conv1d, x, weight, groups=groups, exc=ShapeError, what="conv1d")


# ----------------------------------------------------------------------------------------------
# conv2d

CONV2D_CONFIGS: list[tuple[Any, ...]] = [
    # batch, in, out, (h, w), (kh, kw), stride, padding, dilation, groups, bias, layout
    (2, 3, 4, (9, 7), (3, 2), 1, 0, 1, 1, True, "contiguous"),
    (1, 2, 5, (8, 11), (2, 3), 2, 1, 1, 1, True, "channels_last"),
    (3, 3, 2, (7, 10), (3, 3), (2, 1), (1, 2), 1, 1, False, "sliced"),
    (2, 2, 3, (10, 9), (2, 3), (1, 3), (2, 0), (2, 1), 1, True, "contiguous"),
    (1, 4, 3, (11, 8), (3, 2), 1, (0, 1), (1, 3), 1, True, "channels_last"),
]


def _check_conv(
    mine: Callable[..., Tensor],
    theirs: Callable[..., Tensor],
    configs: list[tuple[Any, ...]],
    seed0: int,
) -> None:
    """Compare ``mine`` with torch's ``theirs``, forward and backward, on each config:
    (batch, in, out, size, kernel, stride, padding, dilation, groups, bias, layout), where
    size and kernel are ints for conv1d and pairs for conv2d."""
    for seed, cfg in enumerate(configs, start=seed0):
        batch, c_in, c_out, size, kernel, stride, padding, dilation, groups, bias, layout = cfg
        sizes = size if isinstance(size, tuple) else (size,)
        kernels = kernel if isinstance(kernel, tuple) else (kernel,)
        x = leaf(batch, c_in, *sizes, seed=seed, layout=layout)
        weight = leaf(c_out, c_in // groups, *kernels, seed=100 + seed)
        b = leaf(c_out, seed=200 + seed) if bias else None
        desc = (
            f"x {tuple(x.shape)} ({layout}), weight {tuple(weight.shape)}, bias={bias}, "
            f"stride={stride}, padding={padding}, dilation={dilation}, groups={groups}"
        )
        with case(desc, x=x, weight=weight):
            matches_torch(
                mine,
                theirs,
                [x, weight, b],
                seed=300 + seed,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
            )


@check("conv2d")
def conv2d_matches_torch(ns: Namespace) -> None:
    _check_conv(ns.conv2d, F.conv2d, CONV2D_CONFIGS, 0)


@check("conv2d")
def conv2d_defaults(ns: Namespace) -> None:
    x, weight = leaf(2, 3, 6, 5, seed=1), leaf(4, 3, 3, 2, seed=2)
    with case("x (2, 3, 6, 5), weight (4, 3, 3, 2), everything else left at its default"):
        assert_close(ns.conv2d(x, weight), F.conv2d(x, weight))


@check("conv2d")
def conv2d_groups_match_torch(ns: Namespace) -> None:
    configs = [
        (2, 4, 6, (7, 9), (3, 2), 1, 1, 1, 2, True, "contiguous"),
        (1, 6, 3, (8, 6), (2, 3), (2, 1), (1, 0), 1, 3, False, "channels_last"),
        (2, 3, 6, (6, 7), (3, 3), 1, 1, (1, 2), 3, True, "sliced"),  # depthwise, x2 multiplier
    ]
    _check_conv(ns.conv2d, F.conv2d, configs, 10)


@check("conv2d")
def conv2d_rejects_bad_shapes(ns: Namespace) -> None:
    bad = [
        ("x is 3-D", torch.zeros(3, 9, 9), torch.zeros(4, 3, 3, 3), 1),
        ("x is 5-D", torch.zeros(1, 1, 3, 9, 9), torch.zeros(4, 3, 3, 3), 1),
        ("weight is 3-D", torch.zeros(1, 3, 9, 9), torch.zeros(4, 3, 3), 1),
        ("x has 3 channels, weight expects 2", torch.zeros(1, 3, 9, 9), torch.zeros(4, 2, 3, 3), 1),
        (
            "groups=2 does not divide 3 in-channels",
            torch.zeros(1, 3, 9, 9),
            torch.zeros(4, 1, 3, 3),
            2,
        ),
        (
            "groups=2 does not divide 3 out-channels",
            torch.zeros(1, 4, 9, 9),
            torch.zeros(3, 2, 3, 3),
            2,
        ),
        ("kernel height 5 on a 4x9 input", torch.zeros(1, 3, 4, 9), torch.zeros(4, 3, 5, 3), 1),
        ("kernel width 6 on a 9x5 input", torch.zeros(1, 3, 9, 5), torch.zeros(4, 3, 3, 6), 1),
    ]
    for name, x, weight, groups in bad:
        with case(f"{name}: x {tuple(x.shape)}, weight {tuple(weight.shape)}, groups={groups}"):
            assert_raises(ns.conv2d, x, weight, groups=groups, exc=ShapeError, what="conv2d")
