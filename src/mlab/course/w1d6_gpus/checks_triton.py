"""Checks for part 3 of w1d6: Triton kernels, launched here and compared with torch.

Without a CUDA device the kernels run in Triton's interpreter on the CPU
(``mlab.gpu.kernels`` sets ``TRITON_INTERPRET=1`` before importing Triton); with one they run
on it. Every input lives inside a larger buffer filled with NaN, so a kernel that reads past
the end of its tensor (a missing or off-by-one mask) produces NaN; every output lives inside a
buffer filled with a sentinel value, so a kernel that writes past its output is caught. Sizes
are not multiples of the block sizes, so the last block of every launch is partial.

In the interpreter two things a GPU would expose are made visible (``_watched``): a masked
load without ``other`` gives NaN in its masked-off lanes (on a GPU they hold whatever was
there), and two programs storing different values to one address with a plain
``tl.store`` is reported as a race (on a GPU the programs run at the same time and one write
is lost; the interpreter runs them one after another, so the sum would come out right)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

import mlab.gpu.kernels  # noqa: F401  (sets TRITON_INTERPRET=1 without CUDA)
from mlab.course.engine.checks import Namespace, check
from mlab.testing import assert_close, assert_equal, case, expect

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
F32 = torch.float32
SENTINEL = 12345.0
PAD = 8


class _Watch:
    """What the interpreter saw during one launch (see ``_watched``)."""

    def __init__(self) -> None:
        self.races: list[tuple[tuple[int, ...], tuple[int, ...], int]] = []
        self.undefined_lanes = False  # a masked load without other= had masked-off lanes


@contextlib.contextmanager
def _watched() -> Iterator[_Watch]:
    """In Triton's interpreter: masked-off lanes of a load without ``other`` read NaN, and
    plain stores are recorded per program, two programs storing different values to one
    address being a race.
    Outside the interpreter (a real GPU) it does nothing."""
    watch = _Watch()
    if os.environ.get("TRITON_INTERPRET") != "1":
        yield watch
        return
    from triton.runtime import interpreter  # type: ignore[import-untyped, import-not-found, unused-ignore]

    builder = interpreter.InterpreterBuilder
    load, store = builder.create_masked_load, builder.create_masked_store
    writer: dict[int, tuple[tuple[int, ...], Any]] = {}

    def poisoned_load(self: Any, ptrs: Any, mask: Any, other: Any, *args: Any) -> Any:
        dtype = interpreter._get_np_dtype(ptrs.get_element_ty())
        if other is None and np.issubdtype(dtype, np.floating):
            watch.undefined_lanes |= not bool(np.all(mask.data))
            nan = np.full(ptrs.data.shape, np.nan, dtype=dtype)
            other = interpreter.TensorHandle(nan, ptrs.get_element_ty())
        return load(self, ptrs, mask, other, *args)

    def recorded_store(self: Any, ptrs: Any, value: Any, mask: Any, *args: Any) -> Any:
        # Storing the value another program stored is harmless (an edge tile writing a
        # wrapped row again); storing another one is a race whoever comes last.
        program = tuple(self.grid_idx)
        on = np.broadcast_to(np.asarray(mask.data, dtype=bool), np.shape(ptrs.data))
        values = np.broadcast_to(np.asarray(value.data), np.shape(ptrs.data))[on]
        for address, v in zip(np.asarray(ptrs.data)[on].ravel(), values.ravel(), strict=True):
            first, stored = writer.setdefault(int(address), (program, v))
            if first != program and stored != v and not watch.races:
                watch.races.append((first, program, int(address)))
        return store(self, ptrs, value, mask, *args)

    builder.create_masked_load, builder.create_masked_store = poisoned_load, recorded_store
    try:
        yield watch
    finally:
        builder.create_masked_load, builder.create_masked_store = load, store


def _where(kernel: Any, args: tuple[Any, ...], address: int) -> str:
    """``address`` as an element of one of the kernel's tensor arguments, by its name."""
    names = list(getattr(kernel, "arg_names", [])) or [f"argument {i}" for i in range(len(args))]
    for name, arg in zip(names, args, strict=False):
        if isinstance(arg, Tensor) and arg.numel():
            offset, rest = divmod(address - arg.data_ptr(), arg.element_size())
            if rest == 0 and 0 <= offset < arg.untyped_storage().nbytes() // arg.element_size():
                return f"{name} + {offset}"
    return f"address {address}"


def _launch(kernel: Any, grid: tuple[int, ...], *args: Any, **constexprs: int) -> _Watch:
    """``kernel[grid](*args, **constexprs)``, watched (``_watched``); the interpreter wraps an
    error raised inside the kernel in ``InterpreterError``: re-raise the original (a stub's
    NotImplementedError says "not started", any other error points into the kernel's code)."""
    with _watched() as watch:
        try:
            kernel[grid](*args, **constexprs)
        except Exception as exc:
            if type(exc).__name__ == "InterpreterError" and exc.__cause__ is not None:
                raise exc.__cause__ from None
            raise
    races = [
        f"programs {a} and {b} both wrote {_where(kernel, args, at)}" for a, b, at in watch.races
    ]
    expect(
        not races,
        "two programs wrote different values to the same memory with a plain tl.store "
        f"({'; '.join(races)}): on a GPU the programs run at the same time, so one reads "
        "the old value and its write overwrites the other's. Combine results across "
        "programs with an atomic (tl.atomic_add), or give each program its own part of "
        "the output",
    )
    return watch


@contextlib.contextmanager
def _explained(watch: _Watch) -> Iterator[None]:
    """A failure after a masked load without ``other=`` says what those lanes held."""
    try:
        yield
    except Exception as exc:
        if watch.undefined_lanes:
            exc.add_note(
                "a tl.load with a mask but no other= read NaN in its masked-off lanes here (on "
                "a GPU they hold whatever was in the registers): pass other= with the value "
                "that changes nothing (0.0 for a sum, -inf for a max)"
            )
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
        watch = _launch(
            ns.softmax_kernel,
            (rows,),
            out,
            inp,
            inp.stride(0),
            out.stride(0),
            cols,
            BLOCK_SIZE=block,
        )
        with _explained(watch):
            want = torch.softmax(x.double(), -1).float()
            assert_close(out.cpu(), want, rtol=1e-5, atol=1e-6)
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
        watch = _launch(
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
        with _explained(watch):
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
        watch = _launch(ns.sum_kernel, (_cdiv(n, block),), _in_nan(x), out, n, BLOCK_SIZE=block)
        with _explained(watch):
            want = x.double().sum().float()
            assert_close(out.cpu()[0], want, rtol=1e-5, atol=1e-4, what="sum")
        _untouched(buf, (1,))


@check("sum_kernel")
def sum_matches_torch(ns: Namespace) -> None:
    g = _gen(20)
    _run_sum(ns, torch.rand(1000, generator=g) + 0.5, 128, "positive values")
    _run_sum(ns, torch.randn(1000, generator=g), 1024, "one block")
    _run_sum(ns, torch.randn(512, generator=g), 128, "a multiple of the block")
    _run_sum(ns, torch.tensor([3.5]), 16, "one element")
