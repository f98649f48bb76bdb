"""Checks for part 3 of w1d6: Triton kernels, launched here and compared with torch.

Without a CUDA device the kernels run in Triton's interpreter on the CPU
(``mlab.gpu.kernels`` sets ``TRITON_INTERPRET=1`` before importing Triton); with one they run
on it. Every input lives inside a larger buffer filled with NaN, so a kernel that reads past
the end of its tensor (a missing or off-by-one mask) produces NaN; every output lives inside a
buffer filled with a sentinel value, so a kernel that writes past its output is caught. Sizes
are not multiples of the block sizes, so the last block of every launch is partial."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

import mlab.gpu.kernels  # noqa: F401  (sets TRITON_INTERPRET=1 without CUDA)
from mlab.course.engine.checks import Namespace, check
from mlab.testing import assert_close, assert_equal, case, expect

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
F32 = torch.float32
SENTINEL = 12345.0
PAD = 8


def _launch(kernel: Any, grid: tuple[int, ...], *args: Any, **constexprs: int) -> None:
    """``kernel[grid](*args, **constexprs)``; the interpreter wraps an error raised inside the
    kernel in ``InterpreterError``: re-raise the original (a stub's NotImplementedError says
    "not started", any other error points into the kernel's code)."""
    try:
        kernel[grid](*args, **constexprs)
    except Exception as exc:
        if type(exc).__name__ == "InterpreterError" and exc.__cause__ is not None:
            raise exc.__cause__ from None
        raise


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _in_nan(t: Tensor) -> Tensor:
    """A view equal to ``t`` (1-D or 2-D) inside a buffer of NaN, PAD more on every side."""
    buf = torch.full([s + 2 * PAD for s in t.shape], float("nan"), dtype=F32)
    index = tuple(slice(PAD, PAD + s) for s in t.shape)
    buf[index] = t
    return buf.to(DEVICE)[index]


def _out(*shape: int) -> tuple[Tensor, Tensor]:
    """An output view of ``shape`` inside a sentinel-filled buffer, and the buffer."""
    buf = torch.full([s + 2 * PAD for s in shape], SENTINEL, dtype=F32, device=DEVICE)
    return buf[tuple(slice(PAD, PAD + s) for s in shape)], buf


def _untouched(buf: Tensor, shape: tuple[int, ...]) -> None:
    """Everything in ``buf`` outside the output view still holds the sentinel."""
    outside = torch.ones(buf.shape, dtype=torch.bool)
    outside[tuple(slice(PAD, PAD + s) for s in shape)] = False
    bad = int((buf.cpu()[outside] != SENTINEL).sum())
    expect(bad == 0, f"the kernel wrote {bad} element(s) outside the output tensor: mask the store")


def _run_add(ns: Namespace, n: int, block: int, seed: int) -> None:
    g = _gen(seed)
    x, y = torch.randn(n, generator=g), torch.randn(n, generator=g)
    with case(f"{n} elements, BLOCK_SIZE={block}", x=x, y=y):
        out, buf = _out(n)
        _launch(ns.add_kernel, (_cdiv(n, block),), _in_nan(x), _in_nan(y), out, n, BLOCK_SIZE=block)
        assert_equal(out.cpu(), x + y)
        _untouched(buf, (n,))


@check("add_kernel")
def add_matches_torch(ns: Namespace) -> None:
    for n, block, seed in ((1000, 256, 0), (1000, 1024, 1), (512, 128, 2), (1, 16, 3), (17, 16, 4)):
        _run_add(ns, n, block, seed)


def _run_softmax(ns: Namespace, x: Tensor, block: int, what: str) -> None:
    rows, cols = x.shape
    with case(f"{what}: {rows}x{cols}, BLOCK_SIZE={block}", x=x):
        # the input's rows and the output's rows have different strides, both != cols
        inp = _in_nan(x)
        out, buf = _out(rows, cols + 3)
        out = out[:, :cols]
        _launch(
            ns.softmax_kernel,
            (rows,),
            out,
            inp,
            inp.stride(0),
            out.stride(0),
            cols,
            BLOCK_SIZE=block,
        )
        assert_close(out.cpu(), torch.softmax(x.double(), -1).float(), rtol=1e-5, atol=1e-6)
        _untouched(buf, (rows, cols))


@check("softmax_kernel")
def softmax_matches_torch(ns: Namespace) -> None:
    g = _gen(10)
    _run_softmax(ns, torch.randn(37, 129, generator=g) * 3, 256, "random rows")
    _run_softmax(ns, torch.randn(5, 128, generator=g), 128, "BLOCK_SIZE == n_cols")
    _run_softmax(ns, torch.randn(3, 1, generator=g), 16, "one column")


@check("softmax_kernel")
def softmax_is_stable_for_large_inputs(ns: Namespace) -> None:
    g = _gen(11)
    x = torch.randn(4, 50, generator=g) * 10
    x[0] += 1000.0  # exp overflows without subtracting the max
    x[1] -= 1000.0  # every exp underflows to 0 without it
    x[2] = -5.0  # all equal
    _run_softmax(ns, x, 64, "rows around +1000 and -1000, and a constant row")


def _run_matmul(ns: Namespace, m: int, k: int, n: int, blocks: tuple[int, int, int]) -> None:
    g = _gen(m * 1000 + k * 10 + n)
    a, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
    bm, bn, bk = blocks
    with case(f"({m}x{k}) @ ({k}x{n}), BLOCK_M={bm} BLOCK_N={bn} BLOCK_K={bk}", a=a, b=b):
        a_in = _in_nan(a)
        b_in = _in_nan(b.t().contiguous()).t()  # column-major B: strides (1, k + 2 * PAD)
        out, buf = _out(n, m)
        c = out.t()  # column-major C
        grid = (_cdiv(m, bm), _cdiv(n, bn))
        args: list[Any] = [*a_in.stride(), *b_in.stride(), *c.stride()]
        _launch(
            ns.matmul_kernel,
            grid,
            a_in,
            b_in,
            c,
            m,
            n,
            k,
            *args,
            BLOCK_M=bm,
            BLOCK_N=bn,
            BLOCK_K=bk,
        )
        assert_close(c.cpu(), (a.double() @ b.double()).float(), rtol=1e-4, atol=1e-4)
        _untouched(buf, (n, m))


@check("matmul_kernel")
def matmul_matches_torch(ns: Namespace) -> None:
    _run_matmul(ns, 37, 129, 45, (16, 32, 32))
    _run_matmul(ns, 5, 7, 3, (16, 16, 16))
    _run_matmul(ns, 33, 16, 20, (32, 16, 16))


def _run_sum(ns: Namespace, x: Tensor, block: int, what: str) -> None:
    n = x.numel()
    with case(f"{what}: {n} elements, BLOCK_SIZE={block}", x=x):
        out, buf = _out(1)
        out.zero_()
        _launch(ns.sum_kernel, (_cdiv(n, block),), _in_nan(x), out, n, BLOCK_SIZE=block)
        assert_close(out.cpu()[0], x.double().sum().float(), rtol=1e-5, atol=1e-4, what="sum")
        _untouched(buf, (1,))


@check("sum_kernel")
def sum_matches_torch(ns: Namespace) -> None:
    g = _gen(20)
    _run_sum(ns, torch.rand(1000, generator=g) + 0.5, 128, "positive values")
    _run_sum(ns, torch.randn(1000, generator=g), 1024, "one block")
    _run_sum(ns, torch.randn(512, generator=g), 128, "a multiple of the block")
    _run_sum(ns, torch.tensor([3.5]), 16, "one element")
