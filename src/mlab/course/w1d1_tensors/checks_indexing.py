"""Checks for part 2 of w1d1: creation, indexing, broadcasting and reshaping, against torch
and numpy computing the same things."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_no_python_loop,
    assert_not_shares_storage,
    assert_raises,
    assert_shares_storage,
    assert_unchanged,
    case,
    expect,
    generator,
)


def _matrices(seed: int) -> list[tuple[str, Tensor]]:
    """Matrices of varied shapes and layouts, values of both signs."""
    g = generator(seed)
    base = torch.randn(9, 12, generator=g)
    return [
        ("a 3x5 matrix", base[:3, :5].clone()),
        ("a 5x3 matrix", base[:5, :3].clone()),
        ("a 4x6 matrix, transposed (non-contiguous)", base[:4, :6].t()),
        ("x[1::2, ::3] of a 9x12 matrix (strided)", base[1::2, ::3]),
        ("a 1x7 matrix", base[:1, :7].clone()),
        ("a 6x1 matrix", base[:6, :1].clone()),
    ]


# ----------------------------------------------------------------------------------------------
# coordinate_grid


@check("coordinate_grid")
def grid_matches_meshgrid(ns: Namespace) -> None:
    for height, width in [(3, 4), (4, 3), (1, 5), (5, 1), (2, 2), (0, 3), (3, 0)]:
        rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        with case(f"height={height}, width={width}"):
            assert_equal(ns.coordinate_grid(height, width), torch.stack((rows, cols), dim=-1))


# ----------------------------------------------------------------------------------------------
# bin_centres


@check("bin_centres")
def centres_match_numpy_histogram_edges(ns: Namespace) -> None:
    for low, high, n_bins in [
        (0.0, 1.0, 4),
        (-3.0, 5.0, 7),
        (2.5, 3.0, 1),
        (-10.0, -2.0, 5),
        (0.0, 100.0, 10),
    ]:
        edges = np.histogram_bin_edges([], bins=n_bins, range=(low, high))
        expected = torch.from_numpy((edges[:-1] + edges[1:]) / 2).float()
        with case(f"low={low}, high={high}, n_bins={n_bins}"):
            assert_close(ns.bin_centres(low, high, n_bins), expected)


@check("bin_centres")
def centres_reject_bad_ranges(ns: Namespace) -> None:
    for low, high, n_bins in [(0.0, 1.0, 0), (0.0, 1.0, -2), (1.0, 1.0, 3), (2.0, 1.0, 3)]:
        with case(f"low={low}, high={high}, n_bins={n_bins}"):
            assert_raises(ns.bin_centres, low, high, n_bins, exc=ValueError)


# ----------------------------------------------------------------------------------------------
# outer_sum


@check("outer_sum")
def outer_sum_matches_numpy(ns: Namespace) -> None:
    g = generator(3)
    base = torch.randn(20, generator=g)
    for name, a, b in [
        ("a 3-vector and a 5-vector", base[:3].clone(), base[3:8].clone()),
        ("a 4-vector and a 1-vector", base[:4].clone(), base[8:9].clone()),
        ("strided inputs x[::2] and x[1::3]", base[::2], base[1::3]),
        ("an empty vector and a 3-vector", base[:0], base[:3]),
    ]:
        with case(name, a=a, b=b):
            expected = torch.from_numpy(np.add.outer(a.numpy(), b.numpy()))
            assert_close(ns.outer_sum(a, b), expected)


@check("outer_sum")
def outer_sum_rejects_non_vectors(ns: Namespace) -> None:
    v, m = torch.zeros(3), torch.zeros(3, 1)
    for name, a, b in [
        ("a matrix and a vector", m, v),
        ("a vector and a matrix", v, m),
        ("a 0-d tensor and a vector", v[0], v),
        ("a vector and a 0-d tensor", v, v[0]),
    ]:
        with case(name, a=a, b=b):
            assert_raises(ns.outer_sum, a, b, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# every_other


@check("every_other")
def every_other_is_a_strided_view(ns: Namespace) -> None:
    g = generator(4)
    x3 = torch.randn(5, 4, 7, generator=g)
    tensors = [
        ("a 5x4x7 tensor", x3),
        ("x[:, 1:, ::2] of a 5x4x7 tensor", x3[:, 1:, ::2]),
        ("a 7-vector", x3[0, 0]),
        ("a 4x5 matrix, transposed", x3[0, :, :5].t()),
    ]
    for name, x in tensors:
        for dim in range(-x.ndim, x.ndim):
            index = [slice(None)] * x.ndim
            index[dim] = slice(None, None, 2)
            with case(f"{name}, dim={dim}", x=x):
                got = ns.every_other(x, dim)
                assert_equal(got, torch.from_numpy(x.numpy()[tuple(index)].copy()))
                assert_shares_storage(got, x)


@check("every_other")
def every_other_defaults_to_last_dim(ns: Namespace) -> None:
    x = torch.arange(12).view(3, 4)
    with case("a 3x4 matrix, dim not given", x=x):
        assert_equal(ns.every_other(x), x[:, ::2])


@check("every_other")
def every_other_rejects_bad_dims(ns: Namespace) -> None:
    x = torch.zeros(3, 4)
    for dim in (2, -3, 5):
        with case(f"a 3x4 matrix, dim={dim}", x=x):
            assert_raises(ns.every_other, x, dim, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# pick_elements


@check("pick_elements")
def picks_match_numpy_fancy_indexing(ns: Namespace) -> None:
    g = generator(5)
    for name, x in _matrices(5):
        r, c = x.shape
        for shape in [(6,), (2, 3), (1,), (0,)]:
            rows = torch.randint(-r, r, shape, generator=g)
            cols = torch.randint(-c, c, shape, generator=g)
            before = x.clone()
            with case(f"{name}, indices of shape {shape}", x=x, rows=rows, cols=cols):
                got = ns.pick_elements(x, rows, cols)
                assert_equal(got, torch.from_numpy(x.numpy()[rows.numpy(), cols.numpy()]))
                assert_unchanged(x, before)
                if got.numel():
                    assert_not_shares_storage(got, x)


@check("pick_elements")
def picks_reject_mismatched_indices(ns: Namespace) -> None:
    x = torch.zeros(3, 4)
    i2, i3 = torch.tensor([0, 1]), torch.tensor([0, 1, 2])
    for name, t, rows, cols in [
        ("rows of 2, cols of 3", x, i2, i3),
        ("rows of 3, cols of 2", x, i3, i2),
        ("rows (2,), cols (1, 2)", x, i2, i2.view(1, 2)),
        ("a 3-D x", torch.zeros(3, 4, 2), i2, i2),
        ("a 1-D x", torch.zeros(4), i2, i2),
    ]:
        with case(name, x=t, rows=rows, cols=cols):
            assert_raises(ns.pick_elements, t, rows, cols, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# replace_masked


@check("replace_masked")
def replace_matches_numpy_where(ns: Namespace) -> None:
    g = generator(6)
    for name, x in [
        *_matrices(6),
        ("a 2x3x4 tensor", torch.randn(2, 3, 4, generator=g)),
        ("an empty 0x3 tensor", torch.zeros(0, 3)),
    ]:
        for value in (0.0, -7.5):
            mask = torch.rand(x.shape, generator=g) < 0.4
            before = x.clone()
            with case(f"{name}, value={value}", x=x, mask=mask):
                got = ns.replace_masked(x, mask, value)
                assert_equal(got, torch.from_numpy(np.where(mask.numpy(), value, x.numpy())))
                assert_unchanged(x, before)
                if got.numel():
                    assert_not_shares_storage(got, x)


@check("replace_masked")
def replace_rejects_mismatched_mask(ns: Namespace) -> None:
    x = torch.zeros(3, 4)
    for shape in [(4, 3), (3, 1), (4,), (3, 4, 1)]:
        mask = torch.ones(shape, dtype=torch.bool)
        with case(f"a 3x4 x with a mask of shape {shape}", x=x, mask=mask):
            assert_raises(ns.replace_masked, x, mask, 1.0, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# flatten_batch


@check("flatten_batch")
def flatten_matches_torch_flatten(ns: Namespace) -> None:
    g = generator(7)
    base = torch.randn(6, 4, 5, 2, generator=g)
    # (description, tensor, whether torch can flatten it without copying)
    cases = [
        ("a contiguous 6x4x5x2 tensor", base, True),
        ("a contiguous 4x6 matrix", base[0, 0].reshape(2, 5).t().contiguous(), True),
        ("x[::2] of a 6x4x5x2 tensor (strided batch, contiguous rows)", base[::2], True),
        ("x[2:5] of a 6x4x5x2 tensor (offset)", base[2:5], True),
        ("a 6x4x5x2 tensor with dims 1 and 2 swapped", base.transpose(1, 2), False),
        ("x[:, :, ::2] of a 6x4x5x2 tensor", base[:, :, ::2], False),
        ("a 5x2 matrix, transposed to 2x5", base[0, 0].t(), True),
        ("an empty batch of 0x3x4", torch.zeros(0, 3, 4), True),
        ("a batch of 3 empty 0x4 items", torch.zeros(3, 0, 4), True),
    ]
    for name, x, is_view in cases:
        with case(name, x=x):
            got = ns.flatten_batch(x)
            assert_equal(got, torch.flatten(x, 1))
            if x.numel():
                if is_view:
                    assert_shares_storage(got, x)
                else:
                    assert_not_shares_storage(got, x)


@check("flatten_batch")
def flatten_turns_vectors_into_columns(ns: Namespace) -> None:
    x = torch.arange(5.0)
    with case("a 5-vector", x=x):
        assert_equal(ns.flatten_batch(x), x.unsqueeze(1))


@check("flatten_batch")
def flatten_rejects_scalars(ns: Namespace) -> None:
    with case("a 0-d tensor"):
        assert_raises(ns.flatten_batch, torch.tensor(1.0), exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# column_major


@check("column_major")
def column_major_layout_and_values(ns: Namespace) -> None:
    for name, x in _matrices(8):
        rows, cols = x.shape
        with case(name, x=x):
            got = ns.column_major(x)
            assert_equal(got, x)
            expect(
                bool(got.t().is_contiguous()),
                f"stride {got.stride()} is not column-major for shape {tuple(got.shape)} "
                f"(expected {torch.empty(cols, rows).t().stride()})",
            )
            if x.t().is_contiguous():
                assert_shares_storage(got, x, what="output (x was already column-major)")
            else:
                assert_not_shares_storage(got, x)


@check("column_major")
def column_major_rejects_non_matrices(ns: Namespace) -> None:
    for shape in [(3,), (2, 3, 4)]:
        with case(f"shape {shape}"):
            assert_raises(ns.column_major, torch.zeros(shape), exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# normalise_rows


@check("normalise_rows")
def normalise_matches_torch_normalize(ns: Namespace) -> None:
    g = generator(9)
    extra = torch.randn(4, 3, generator=g) * 1000
    extra[1] = 0.0
    extra[2] = torch.tensor([1e-3, -2e-3, 0.0])
    for name, x in [*_matrices(9), ("a 4x3 matrix with a zero row, large and tiny rows", extra)]:
        before = x.clone()
        with case(name, x=x):
            assert_close(ns.normalise_rows(x), F.normalize(before, p=2.0, dim=1))
            assert_unchanged(x, before)


@check("normalise_rows")
def normalise_uses_eps(ns: Namespace) -> None:
    x = torch.tensor([[3.0, 4.0], [0.3, 0.4], [30.0, 40.0]])
    with case("rows of length 5, 0.5 and 50 with eps=2", x=x):
        assert_close(ns.normalise_rows(x, eps=2.0), F.normalize(x, p=2.0, dim=1, eps=2.0))


@check("normalise_rows")
def normalise_rejects_non_matrices(ns: Namespace) -> None:
    for shape in [(3,), (2, 3, 4)]:
        with case(f"shape {shape}"):
            assert_raises(ns.normalise_rows, torch.ones(shape), exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# shift_right


def _numpy_shift(x: np.ndarray, k: int, fill: float) -> np.ndarray:
    n = x.shape[-1]
    out = np.roll(x, k, axis=-1)
    positions = np.arange(n)
    out[..., (positions < k) | (positions >= n + k)] = fill
    return out


@check("shift_right")
def shift_matches_numpy_roll_and_fill(ns: Namespace) -> None:
    g = generator(10)
    base = torch.randn(3, 14, generator=g)
    tensors = [
        ("a 6-vector", base[0, :6].clone()),
        ("a 3x5 matrix", base[:, :5].clone()),
        ("x[:, ::2] of a 3x14 matrix (strided)", base[:, ::2]),
        ("a 2x2x4 tensor", base[:2, :8].reshape(2, 2, 4)),
    ]
    for name, x in tensors:
        n = x.shape[-1]
        for k in sorted({0, 1, 2, n - 1, n, n + 3, -1, -2, -(n - 1), -n, -n - 2}):
            for fill in (0.0, -9.0):
                before = x.clone()
                with case(f"{name}, k={k}, fill={fill}", x=x):
                    got = ns.shift_right(x, k, fill)
                    assert_equal(got, torch.from_numpy(_numpy_shift(x.numpy(), k, fill)))
                    assert_unchanged(x, before)


@check("shift_right")
def shift_fill_defaults_to_zero(ns: Namespace) -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    with case("[1, 2, 3, 4], k=1, fill not given", x=x):
        assert_equal(ns.shift_right(x, 1), torch.tensor([0.0, 1.0, 2.0, 3.0]))


@check("coordinate_grid")
def coordinate_grid_has_no_python_loop(ns: Namespace) -> None:
    with case("inputs of size 8 and of size 200 (counting Python lines and torch calls)"):
        assert_no_python_loop(ns.coordinate_grid, lambda n: (n, n), what="coordinate_grid")


@check("shift_right")
def shift_right_has_no_python_loop(ns: Namespace) -> None:
    with case("inputs of size 8 and of size 200 (counting Python lines and torch calls)"):
        assert_no_python_loop(
            ns.shift_right, lambda n: (torch.arange(float(n)), 3), what="shift_right"
        )
