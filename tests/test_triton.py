"""Triton kernels of mlab.gpu.kernels against torch (CPU interpreter without CUDA)."""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():  # before triton is imported: its own kernels read it then
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton", reason="triton is in the `gpu` extra: pip install -e '.[gpu]'")

from mlab.errors import ShapeError
from mlab.gpu import kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(DEVICE)


@pytest.mark.parametrize(("n", "block"), [(1, 16), (1000, 256), (1024, 256), (4097, 1024)])
def test_vector_add(n: int, block: int) -> None:
    x, y = _randn(n, seed=n), _randn(n, seed=n + 1)
    torch.testing.assert_close(kernels.vector_add(x, y, block_size=block), x + y)


@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (37, 129), (8, 256), (3, 1000)])
def test_softmax_rows(rows: int, cols: int) -> None:
    x = _randn(rows, cols, seed=rows * cols) * 5
    torch.testing.assert_close(kernels.softmax_rows(x), torch.softmax(x, -1))


def test_softmax_rows_of_a_non_contiguous_view() -> None:
    x = _randn(10, 300, seed=3)[:, 7:200] + 500.0
    torch.testing.assert_close(kernels.softmax_rows(x), torch.softmax(x, -1))


@pytest.mark.parametrize(("m", "k", "n"), [(1, 1, 1), (37, 129, 45), (64, 64, 64), (100, 3, 70)])
def test_matmul(m: int, k: int, n: int) -> None:
    a, b = _randn(m, k, seed=m), _randn(k, n, seed=n)
    torch.testing.assert_close(kernels.matmul(a, b), a @ b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        kernels.matmul(a, b.t().contiguous().t(), block_m=16, block_n=64, block_k=16),
        a @ b,
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.parametrize("n", [0, 1, 1000, 5000])
def test_total(n: int) -> None:
    x = _randn(n, seed=n)
    torch.testing.assert_close(kernels.total(x), x.sum(), rtol=1e-5, atol=1e-4)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ShapeError, match="same length"):
        kernels.vector_add(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ShapeError, match="cannot multiply"):
        kernels.matmul(torch.zeros(2, 3), torch.zeros(4, 2))
    with pytest.raises(ShapeError, match="contiguous rows"):
        kernels.softmax_rows(torch.zeros(3, 4).t())
