"""Checks for part 2 of w1d3: pooling from strided windows, against
``torch.nn.functional.max_pool2d``/``avg_pool2d``/``adaptive_avg_pool2d`` (forward and
gradients, float64)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mlab.course.engine.checks import Namespace, check
from mlab.course.w1d3_resnet.checks_conv import leaf, matches_torch
from mlab.errors import ShapeError
from mlab.testing import assert_close, assert_raises, case, generator

POOL_CONFIGS: list[tuple[Any, ...]] = [
    # batch, channels, (h, w), kernel_size, stride, padding, layout
    (2, 3, (9, 7), 3, None, 0, "contiguous"),
    (1, 2, (8, 11), (3, 2), (2, 1), (1, 0), "channels_last"),
    (3, 2, (7, 10), 2, 1, 1, "sliced"),
    (2, 3, (11, 9), 3, 2, 1, "contiguous"),  # ResNet's stem pooling
    (1, 4, (10, 13), (2, 4), (3, 2), (1, 2), "sliced"),
    (2, 1, (6, 5), (1, 2), None, 0, "channels_last"),
]


def _check_pool(ns_fn: Any, torch_fn: Any, shift: float) -> None:
    for seed, (batch, channels, size, kernel, stride, padding, layout) in enumerate(POOL_CONFIGS):
        x = leaf(batch, channels, *size, seed=seed, layout=layout)
        with torch.no_grad():
            x.sub_(shift)  # in place keeps the layout
        desc = f"x {tuple(x.shape)} ({layout}), kernel_size={kernel}, stride={stride}"
        with case(f"{desc}, padding={padding}", x=x):
            matches_torch(
                ns_fn,
                torch_fn,
                [x],
                seed=100 + seed,
                kernel_size=kernel,
                stride=stride,
                padding=padding,
            )


def _rejects_bad_shapes(fn: Any, what: str, *args: Any) -> None:
    for shape in [(3, 9, 9), (9, 9), (1, 1, 3, 9, 9)]:
        with case(f"x of shape {shape}"):
            assert_raises(fn, torch.zeros(shape), *args, exc=ShapeError, what=what)


# ----------------------------------------------------------------------------------------------
# max_pool2d


@check("max_pool2d")
def max_pool_matches_torch(ns: Namespace) -> None:
    # all-negative inputs: padding must never win the max (it is -inf, not 0)
    _check_pool(ns.max_pool2d, F.max_pool2d, shift=4.0)


@check("max_pool2d")
def max_pool_ties_send_the_gradient_to_the_first(ns: Namespace) -> None:
    # values 0, 1, 2 only (as after a ReLU, or on images): most windows hold equal maxima,
    # and torch sends a window's gradient to the first of them, not a share to each
    values = torch.randint(0, 3, (2, 3, 7, 8), generator=generator(7)).double()
    configs = [(2, None, 0), (3, 1, 1), ((2, 3), (1, 2), (1, 1)), (3, 2, 1)]
    for seed, (kernel, stride, padding) in enumerate(configs):
        x = values.clone().requires_grad_()
        desc = f"x {tuple(x.shape)} of 0, 1 and 2 (ties), kernel_size={kernel}, stride={stride}"
        with case(f"{desc}, padding={padding}", x=x):
            matches_torch(
                ns.max_pool2d,
                F.max_pool2d,
                [x],
                seed=200 + seed,
                kernel_size=kernel,
                stride=stride,
                padding=padding,
            )


@check("max_pool2d")
def max_pool_defaults(ns: Namespace) -> None:
    x = leaf(2, 3, 7, 9, seed=1)
    with case("x (2, 3, 7, 9), kernel_size=(2, 3), stride and padding left at their defaults"):
        assert_close(ns.max_pool2d(x, (2, 3)), F.max_pool2d(x, (2, 3)))


@check("max_pool2d")
def max_pool_rejects_bad_shapes(ns: Namespace) -> None:
    _rejects_bad_shapes(ns.max_pool2d, "max_pool2d", 2)


# ----------------------------------------------------------------------------------------------
# avg_pool2d


@check("avg_pool2d")
def avg_pool_matches_torch(ns: Namespace) -> None:
    _check_pool(ns.avg_pool2d, F.avg_pool2d, shift=-1.5)


@check("avg_pool2d")
def avg_pool_defaults(ns: Namespace) -> None:
    x = leaf(2, 3, 7, 9, seed=1)
    with case("x (2, 3, 7, 9), kernel_size=(2, 3), stride and padding left at their defaults"):
        assert_close(ns.avg_pool2d(x, (2, 3)), F.avg_pool2d(x, (2, 3)))


@check("avg_pool2d")
def avg_pool_rejects_bad_shapes(ns: Namespace) -> None:
    _rejects_bad_shapes(ns.avg_pool2d, "avg_pool2d", 2)


# ----------------------------------------------------------------------------------------------
# adaptive_avg_pool2d


@check("adaptive_avg_pool2d")
def adaptive_pool_matches_torch(ns: Namespace) -> None:
    configs: list[tuple[Any, ...]] = [
        # batch, channels, (h, w), output_size, layout
        (2, 3, (12, 8), (3, 4), "contiguous"),  # divisible: a plain average pool
        (2, 3, (9, 7), (4, 3), "contiguous"),
        (1, 2, (8, 11), (3, 5), "channels_last"),
        (3, 2, (7, 10), 1, "sliced"),  # global average pooling, as in ResNet
        (2, 2, (5, 6), (7, 9), "contiguous"),  # larger than the input: overlapping ranges
        (1, 3, (10, 13), 4, "sliced"),
    ]
    for seed, (batch, channels, size, output_size, layout) in enumerate(configs):
        x = leaf(batch, channels, *size, seed=seed, layout=layout)
        with case(f"x {tuple(x.shape)} ({layout}), output_size={output_size}", x=x):
            matches_torch(
                ns.adaptive_avg_pool2d,
                F.adaptive_avg_pool2d,
                [x],
                seed=100 + seed,
                output_size=output_size,
            )


@check("adaptive_avg_pool2d")
def adaptive_pool_rejects_bad_shapes(ns: Namespace) -> None:
    _rejects_bad_shapes(ns.adaptive_avg_pool2d, "adaptive_avg_pool2d", 2)
