"""w1d3: our ``conv2d`` and ``max_pool2d`` (``as_strided`` windows + ``einsum`` / ``amax``)
against ``torch.nn.functional.conv2d`` / ``max_pool2d`` on ResNet-shaped layers, forward and
forward + backward, float32, in the same process.

The layers are those of a ResNet18 on a batch of 8 (the stem on 112x112 images rather than
224x224 to keep the run short on 2 cores). Torch calls oneDNN / its own im2col kernels; ours
materialises the windows inside ``einsum`` (an im2col copy) and then does one matrix multiply,
so the forward pass should be within a small factor of torch's; the backward pass goes through
``as_strided``'s generic backward, which scatters gradients into overlapping windows and is
much slower than torch's dedicated convolution backward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import Row, best_time, print_table
from mlab.nn.functional import conv2d, max_pool2d

BATCH = 8
# name, in, out, size, kernel, stride, padding
CONVS = [
    ("stem 3->64 7x7 s2 on 112x112", 3, 64, 112, 7, 2, 3),
    ("64->64 3x3 on 56x56", 64, 64, 56, 3, 1, 1),
    ("128->128 3x3 on 28x28", 128, 128, 28, 3, 1, 1),
    ("256->256 3x3 on 14x14", 256, 256, 14, 3, 1, 1),
    ("downsample 64->128 1x1 s2 on 56x56", 64, 128, 56, 1, 2, 0),
]


def _forward_backward(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, **kw: Any) -> None:
    out = fn(*tensors, **kw)
    torch.autograd.grad(out.sum(), tensors)


def _rows(
    what: str,
    ours: Callable[..., torch.Tensor],
    theirs: Callable[..., torch.Tensor],
    tensors: tuple[torch.Tensor, ...],
    kw: dict[str, int],
) -> list[Row]:
    """Forward (no grad) and forward + backward timings of ours and torch's on one input."""
    with torch.no_grad():
        forward = (
            f"{ours.__name__} forward: {what}",
            best_time(lambda: ours(*tensors, **kw), repeat=3),
            best_time(lambda: theirs(*tensors, **kw), repeat=3),
            f"F.{ours.__name__}",
        )
    both = (
        f"{ours.__name__} fwd+bwd: {what}",
        best_time(lambda: _forward_backward(ours, *tensors, **kw), repeat=3),
        best_time(lambda: _forward_backward(theirs, *tensors, **kw), repeat=3),
        f"F.{ours.__name__}",
    )
    return [forward, both]


def main() -> None:
    gen = torch.Generator().manual_seed(0)
    rows: list[Row] = []
    for name, c_in, c_out, size, k, stride, padding in CONVS:
        x = torch.randn(BATCH, c_in, size, size, generator=gen, requires_grad=True)
        w = torch.randn(c_out, c_in, k, k, generator=gen, requires_grad=True)
        rows += _rows(name, conv2d, F.conv2d, (x, w), {"stride": stride, "padding": padding})
    x = torch.randn(BATCH, 64, 112, 112, generator=gen, requires_grad=True)
    pool = {"kernel_size": 3, "stride": 2, "padding": 1}
    rows += _rows("64x112x112, 3x3 s2 p1", max_pool2d, F.max_pool2d, (x,), pool)
    print_table(f"w1d3 conv2d / max_pool2d, batch {BATCH}, float32", rows)


if __name__ == "__main__":
    main()
