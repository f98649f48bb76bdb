"""GPU kernels in Triton: vector add, fused row softmax, tiled matmul and a sum reduction.

Each ``*_kernel`` is the body of one *program*: Triton launches a grid of programs, each one
handling a block of the data (``tl.program_id`` says which). Without a CUDA device this module
sets ``TRITON_INTERPRET=1`` before importing Triton, so the kernels run on the CPU in Triton's
interpreter (slowly, but with the same semantics). The launchers (``vector_add``,
``softmax_rows``, ``matmul``, ``total``) allocate the output, choose the grid and call a kernel.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import triton  # type: ignore[import-untyped, import-not-found, unused-ignore]
import triton.language as tl  # type: ignore[import-untyped, import-not-found, unused-ignore]

from mlab.errors import ShapeError

__all__ = [
    "add_kernel",
    "matmul",
    "matmul_kernel",
    "softmax_kernel",
    "softmax_rows",
    "sum_kernel",
    "total",
    "vector_add",
]


@triton.jit  # type: ignore[untyped-decorator]
def add_kernel(
    x_ptr: Any, y_ptr: Any, out_ptr: Any, n_elements: Any, BLOCK_SIZE: tl.constexpr
) -> None:
    """out[i] = x[i] + y[i] for the BLOCK_SIZE elements of this program's block.

    Program ``pid = tl.program_id(axis=0)`` owns offsets ``pid * BLOCK_SIZE + [0, BLOCK_SIZE)``.
    The last block runs past ``n_elements`` when BLOCK_SIZE does not divide it: load and store
    under ``mask = offsets < n_elements`` so no program touches memory outside the tensors.
    """
    pid = tl.program_id(axis=0)
    offsets = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    x = tl.load(x_ptr + offsets, mask=mask)
    y = tl.load(y_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, x + y, mask=mask)


@triton.jit  # type: ignore[untyped-decorator]
def softmax_kernel(
    out_ptr: Any,
    in_ptr: Any,
    in_row_stride: Any,
    out_row_stride: Any,
    n_cols: Any,
    BLOCK_SIZE: tl.constexpr,
) -> None:
    """Softmax of one row: program ``tl.program_id(0)`` reads row ``row`` of the input (its
    elements at ``in_ptr + row * in_row_stride + col``, columns contiguous), and writes the
    softmax of it to ``out_ptr + row * out_row_stride + col``.

    BLOCK_SIZE is a power of two >= n_cols: the whole row is one block, so the max, the
    exponentials and their sum never leave the program (fused: one read, one write). Load the
    columns past ``n_cols`` as ``-inf`` (they then add exp(-inf) = 0 to the sum), subtract the
    row's max before ``tl.exp`` (so large inputs do not overflow), and store under the mask.
    """
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < n_cols
    x = tl.load(in_ptr + row * in_row_stride + cols, mask=mask, other=-float("inf"))
    x = x - tl.max(x, axis=0)
    numerator = tl.exp(x)
    denominator = tl.sum(numerator, axis=0)
    tl.store(out_ptr + row * out_row_stride + cols, numerator / denominator, mask=mask)


@triton.jit  # type: ignore[untyped-decorator]
def matmul_kernel(
    a_ptr: Any,
    b_ptr: Any,
    c_ptr: Any,
    M: Any,
    N: Any,
    K: Any,
    stride_am: Any,
    stride_ak: Any,
    stride_bk: Any,
    stride_bn: Any,
    stride_cm: Any,
    stride_cn: Any,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
) -> None:
    """One (BLOCK_M, BLOCK_N) tile of C = A @ B, A of shape (M, K) and B of shape (K, N).

    Program (``tl.program_id(0)``, ``tl.program_id(1)``) owns rows ``pid_m * BLOCK_M + [0,
    BLOCK_M)`` and columns ``pid_n * BLOCK_N + [0, BLOCK_N)`` of C. Take the row and column
    indices modulo M and N (the edge tiles then read valid rows and columns, and the store's
    mask drops what they compute). March along K in steps of BLOCK_K: load a (BLOCK_M, BLOCK_K)
    tile of A and a (BLOCK_K, BLOCK_N) tile of B, both masked to ``k < K`` with ``other=0.0``,
    and accumulate ``tl.dot(a, b, input_precision="ieee")`` in a float32 ``tl.zeros`` tile.
    Element (i, j) of a matrix X is at ``x_ptr + i * stride_xi + j * stride_xj``. Store the
    accumulator under the mask ``(rows < M) & (cols < N)``.
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)) % M
    cols = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)) % N
    ks = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, K, BLOCK_K):
        a_mask = (k + ks)[None, :] < K
        a = tl.load(
            a_ptr + rows[:, None] * stride_am + (k + ks)[None, :] * stride_ak,
            mask=a_mask,
            other=0.0,
        )
        b_mask = (k + ks)[:, None] < K
        b = tl.load(
            b_ptr + (k + ks)[:, None] * stride_bk + cols[None, :] * stride_bn,
            mask=b_mask,
            other=0.0,
        )
        acc += tl.dot(a, b, input_precision="ieee")
    out_rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    out_cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    c_mask = (out_rows[:, None] < M) & (out_cols[None, :] < N)
    tl.store(
        c_ptr + out_rows[:, None] * stride_cm + out_cols[None, :] * stride_cn, acc, mask=c_mask
    )


@triton.jit  # type: ignore[untyped-decorator]
def sum_kernel(x_ptr: Any, out_ptr: Any, n_elements: Any, BLOCK_SIZE: tl.constexpr) -> None:
    """Add the sum of this program's block of x to the single float32 at ``out_ptr``.

    Program ``pid`` loads offsets ``pid * BLOCK_SIZE + [0, BLOCK_SIZE)`` masked to
    ``< n_elements`` with ``other=0.0``, reduces them with ``tl.sum(..., axis=0)`` and adds the
    result to ``*out_ptr`` with ``tl.atomic_add`` (programs run in any order, possibly at the
    same time: a plain load-add-store would lose updates). The launcher zeroes ``*out_ptr``.
    """
    pid = tl.program_id(0)
    offsets = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    x = tl.load(x_ptr + offsets, mask=offsets < n_elements, other=0.0)
    tl.atomic_add(out_ptr, tl.sum(x, axis=0))


def _check_vector(x: Tensor, name: str) -> None:
    if x.dim() != 1 or (x.stride(0) != 1 and x.numel() > 1):
        raise ShapeError(f"{name} must be a contiguous 1-D tensor, got shape {tuple(x.shape)}")


def vector_add(x: Tensor, y: Tensor, *, block_size: int = 256) -> Tensor:
    """x + y for 1-D contiguous tensors of the same length, with ``add_kernel``."""
    _check_vector(x, "x")
    _check_vector(y, "y")
    if x.shape != y.shape:
        raise ShapeError(f"x and y must have the same length, got {x.numel()} and {y.numel()}")
    out = torch.empty_like(x)
    n = x.numel()
    add_kernel[(triton.cdiv(n, block_size),)](x, y, out, n, BLOCK_SIZE=block_size)
    return out


def softmax_rows(x: Tensor) -> Tensor:
    """Softmax over the last dim of a 2-D tensor whose rows are contiguous, with one program
    per row of ``softmax_kernel``."""
    if x.dim() != 2 or x.stride(1) != 1:
        raise ShapeError(f"x must be 2-D with contiguous rows, got shape {tuple(x.shape)}")
    n_rows, n_cols = x.shape
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    block = triton.next_power_of_2(n_cols)
    softmax_kernel[(n_rows,)](out, x, x.stride(0), out.stride(0), n_cols, BLOCK_SIZE=block)
    return out


def matmul(
    a: Tensor, b: Tensor, *, block_m: int = 32, block_n: int = 32, block_k: int = 32
) -> Tensor:
    """a @ b for float32 matrices (any strides), with tiles of ``matmul_kernel``."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        raise ShapeError(f"cannot multiply shapes {tuple(a.shape)} and {tuple(b.shape)}")
    (m, k), n = a.shape, b.shape[1]
    c = torch.empty(m, n, dtype=torch.float32, device=a.device)
    grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n))
    matmul_kernel[grid](
        a,
        b,
        c,
        m,
        n,
        k,
        *a.stride(),
        *b.stride(),
        *c.stride(),
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_K=block_k,
    )
    return c


def total(x: Tensor, *, block_size: int = 256) -> Tensor:
    """The sum of a 1-D contiguous float32 tensor as a 0-d tensor, with ``sum_kernel``."""
    _check_vector(x, "x")
    out = torch.zeros((), dtype=torch.float32, device=x.device)
    n = x.numel()
    sum_kernel[(max(triton.cdiv(n, block_size), 1),)](x, out, n, BLOCK_SIZE=block_size)
    return out
