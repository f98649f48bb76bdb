"""Checks for part 1 of w1d1: strides and views, against the layouts torch itself computes."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import (
    assert_equal,
    assert_raises,
    assert_shares_storage,
    case,
    expect,
)

SHAPES = [(), (5,), (2, 3), (2, 3, 4), (1, 7, 1), (4, 0, 3), (3, 1, 2, 5)]


def _strided(shape: Sequence[int], stride: Sequence[int], offset: int = 0) -> Tensor:
    """A tensor with exactly this layout whose storage holds 0, 1, 2, ...: each element's value
    is its own position in storage."""
    extent = offset + 1 + sum((n - 1) * abs(s) for n, s in zip(shape, stride, strict=True) if n)
    return torch.arange(extent).as_strided(tuple(shape), tuple(stride), offset)


def _call(fn: str, **args: Any) -> str:
    """The call as the check makes it, ``fn(name=value, ...)``, for ``case``'s description;
    broken after a comma where a line would pass the 76 columns inside a panel at 80 (the
    first line follows "while checking: ")."""
    lines = [f"{fn}("]
    parts = [f"{name}={value!r}" for name, value in args.items()]
    for i, part in enumerate(parts):
        part += ", " if i < len(parts) - 1 else ")"
        room = 60 if len(lines) == 1 else 76
        if len(lines[-1]) + len(part.rstrip()) > room and lines[-1].strip():
            lines.append("    ")
        lines[-1] += part
    return "\n".join(line.rstrip() for line in lines)


def _layouts() -> list[tuple[str, Tensor]]:
    """Tensors with varied layouts, each made by a torch operation."""
    base = torch.empty(6, 5, 4)
    return [
        ("a fresh 6x5x4 tensor", base),
        ("a fresh 2x3 tensor", torch.empty(2, 3)),
        ("a 5-vector", torch.empty(5)),
        ("a 0-d tensor", torch.empty(())),
        ("a 6x5x4 tensor transposed (0, 2)", base.transpose(0, 2)),
        ("a 6x5x4 tensor permuted (1, 0, 2)", base.permute(1, 0, 2)),
        ("x[::2] of a 6x5x4 tensor", base[::2]),
        ("x[:, :, 1:3] of a 6x5x4 tensor", base[:, :, 1:3]),
        ("x[1:3] of a 6x5x4 tensor (contiguous, offset)", base[1:3]),
        ("x[:, ::3] of a 6x5x4 tensor", base[:, ::3]),
        ("a 3-vector expanded to 4x3", torch.empty(3).expand(4, 3)),
        ("a 4x1 column expanded to 4x3", torch.empty(4, 1).expand(4, 3)),
        ("x[:, 2:3] of a 6x5x4 tensor (size-1 dim)", base[:, 2:3]),
        ("x[:, 2:3, 1:2] (two size-1 dims)", base[:, 2:3, 1:2]),
        ("a 1x5 row with stride (7, 1)", torch.empty_strided((1, 5), (7, 1))),
        ("a 5x1 column with stride (1, 1)", torch.empty_strided((5, 1), (1, 1))),
        ("a 5x1 column with stride (1, 3)", torch.empty_strided((5, 1), (1, 3))),
        ("a 2x1x3 tensor with stride (3, 99, 1)", torch.empty_strided((2, 1, 3), (3, 99, 1))),
        ("a 2x1x3 tensor with stride (4, 99, 1)", torch.empty_strided((2, 1, 3), (4, 99, 1))),
        ("an empty 0x3 tensor with stride (1, 5)", torch.empty_strided((0, 3), (1, 5))),
        ("an empty 4x0x3 tensor, transposed", torch.empty(4, 0, 3).transpose(0, 2)),
        ("a 3x4 tensor with stride (1, 3) (column-major)", torch.empty(4, 3).t()),
        ("a 2x2 tensor with stride (2, 2) (overlapping)", torch.empty_strided((2, 2), (2, 2))),
        ("a 2x3 tensor with stride (4, 1) (gaps)", torch.empty_strided((2, 3), (4, 1))),
        ("a 2x3 tensor with stride (3, 2)", torch.empty_strided((2, 3), (3, 2))),
    ]


# ----------------------------------------------------------------------------------------------
# contiguous_strides


@check("contiguous_strides")
def strides_match_fresh_tensors(ns: Namespace) -> None:
    for shape in SHAPES:
        with case(_call("contiguous_strides", shape=shape)):
            got = ns.contiguous_strides(shape)
            assert_equal(tuple(got), torch.empty(shape).stride(), what="strides")


# ----------------------------------------------------------------------------------------------
# element_offset


@check("element_offset")
def offsets_match_torch_indexing(ns: Namespace) -> None:
    for name, t in _layouts():
        for storage_offset in (0, 3):
            x = _strided(t.shape, t.stride(), storage_offset)
            for index in itertools.islice(itertools.product(*map(range, x.shape)), 0, None, 3):
                element = ", ".join(map(str, index)) or "()"
                call = _call(
                    "element_offset", index=index, stride=x.stride(), offset=storage_offset
                )
                with case(f"{call}\n  (x[{element}] of {name})"):
                    got = ns.element_offset(index, x.stride(), storage_offset)
                    assert_equal(got, int(x[index]), what="storage position")


@check("element_offset")
def offset_defaults_to_zero(ns: Namespace) -> None:
    with case(_call("element_offset", index=(1, 2), stride=(4, 1)) + " (offset not given)"):
        assert_equal(ns.element_offset((1, 2), (4, 1)), 6, what="storage position")


@check("element_offset")
def offset_rejects_mismatched_index(ns: Namespace) -> None:
    for index, stride in [((1, 2), (4,)), ((1,), (12, 4, 1)), ((), (1,))]:
        with case(_call("element_offset", index=index, stride=stride)):
            assert_raises(ns.element_offset, index, stride, exc=ShapeError, what="element_offset")


# ----------------------------------------------------------------------------------------------
# is_contiguous


@check("is_contiguous")
def contiguity_matches_torch(ns: Namespace) -> None:
    for name, t in _layouts():
        with case(
            _call("is_contiguous", shape=tuple(t.shape), stride=t.stride()) + f"\n  ({name})"
        ):
            got = ns.is_contiguous(tuple(t.shape), t.stride())
            assert_equal(got, t.is_contiguous(), what="is_contiguous")


@check("is_contiguous")
def contiguity_rejects_mismatched_layout(ns: Namespace) -> None:
    for shape, stride in [((2, 3), (1,)), ((3,), (3, 1))]:
        with case(_call("is_contiguous", shape=shape, stride=stride)):
            assert_raises(ns.is_contiguous, shape, stride, exc=ShapeError, what="is_contiguous")


# ----------------------------------------------------------------------------------------------
# shares_storage


@check("shares_storage")
def storage_sharing_matches_construction(ns: Namespace) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, generator=g)
    y = torch.randn(4, 6, generator=g)
    cases: list[tuple[str, Tensor, Tensor, bool]] = [
        ("x and itself", x, x, True),
        ("x and x.t()", x, x.t(), True),
        ("x and x[1:] (a later start)", x, x[1:], True),
        ("x[2:] and x[:, 3] (different starts)", x[2:], x[:, 3], True),
        ("x and x[::2, 1::3]", x, x[::2, 1::3], True),
        ("x and x.view(24)", x, x.view(24), True),
        ("x[3] expanded and x", x[3].expand(5, 6), x, True),
        ("x and x.clone()", x, x.clone(), False),
        ("x and an unrelated tensor of equal values", x, y.copy_(x), False),
        ("x.t() and x.t().contiguous() (a copy)", x.t(), x.t().contiguous(), False),
        ("x and x[[0, 2]] (indexing with a list copies)", x, x[[0, 2]], False),
    ]
    for name, a, b, expected in cases:
        with case(name, a=a, b=b):
            assert_equal(ns.shares_storage(a, b), expected, what="shares_storage")
            assert_equal(ns.shares_storage(b, a), expected, what="shares_storage (swapped)")


# ----------------------------------------------------------------------------------------------
# transpose_layout


@check("transpose_layout")
def transpose_matches_torch(ns: Namespace) -> None:
    for name, t in _layouts():
        n = t.dim()
        for dim0, dim1 in itertools.product(range(-n, n), repeat=2):
            expected = t.transpose(dim0, dim1)
            call = _call(
                "transpose_layout", shape=tuple(t.shape), stride=t.stride(), dim0=dim0, dim1=dim1
            )
            with case(f"{call}\n  ({name})"):
                got = ns.transpose_layout(tuple(t.shape), t.stride(), dim0, dim1)
                assert_equal(tuple(map(tuple, got)), (tuple(expected.shape), expected.stride()))


@check("transpose_layout")
def transpose_rejects_bad_dims(ns: Namespace) -> None:
    for dim0, dim1 in [(3, 0), (0, 3), (-4, 1), (1, -4), (7, 7)]:
        call = _call("transpose_layout", shape=(2, 3, 4), stride=(12, 4, 1), dim0=dim0, dim1=dim1)
        with case(call):
            assert_raises(
                ns.transpose_layout,
                (2, 3, 4),
                (12, 4, 1),
                dim0,
                dim1,
                exc=ShapeError,
                what="transpose_layout",
            )


# ----------------------------------------------------------------------------------------------
# narrow_layout


@check("narrow_layout")
def narrow_matches_torch(ns: Namespace) -> None:
    for name, t in _layouts():
        if t.dim() == 0:
            continue
        x = _strided(t.shape, t.stride(), 5)
        for dim in range(-x.dim(), x.dim()):
            size = x.shape[dim]
            for start, length in {
                (0, size),
                (0, 0),
                (min(1, size), max(size - 2, 0)),
                (size, 0),
                (size // 2, size - size // 2),
            }:
                expected = x.narrow(dim, start, length)
                call = _call(
                    "narrow_layout",
                    shape=tuple(x.shape),
                    stride=x.stride(),
                    offset=5,
                    dim=dim,
                    start=start,
                    length=length,
                )
                with case(f"{call}\n  (the layout of {name})"):
                    got = ns.narrow_layout(tuple(x.shape), x.stride(), 5, dim, start, length)
                    assert_equal(
                        (tuple(got[0]), tuple(got[1]), got[2]),
                        (tuple(expected.shape), expected.stride(), expected.storage_offset()),
                        what="(shape, stride, offset)",
                    )


@check("narrow_layout")
def narrow_rejects_bad_arguments(ns: Namespace) -> None:
    shape, stride = (4, 5), (5, 1)
    for dim in (2, -3, 5):
        with case(
            _call("narrow_layout", shape=shape, stride=stride, offset=0, dim=dim, start=0, length=1)
        ):
            assert_raises(ns.narrow_layout, shape, stride, 0, dim, 0, 1, exc=ShapeError)
    for dim, start, length in [(1, 3, 3), (0, 0, 5), (1, -1, 2), (0, 2, -1), (1, 6, 0)]:
        call = _call(
            "narrow_layout",
            shape=shape,
            stride=stride,
            offset=0,
            dim=dim,
            start=start,
            length=length,
        )
        with case(call):
            assert_raises(ns.narrow_layout, shape, stride, 0, dim, start, length, exc=ValueError)


# ----------------------------------------------------------------------------------------------
# expand_layout


def _expected_expand(
    shape: tuple[int, ...], stride: tuple[int, ...], new_shape: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """torch's layout for the expand, except that new leading dims get stride 0 (as the
    docstring asks; torch gives a new leading dim of size 1 a stride that is never used)."""
    t = torch.empty_strided(shape, stride).expand(new_shape)
    n_new = len(new_shape) - len(shape)
    return tuple(t.shape), tuple(0 if i < n_new else s for i, s in enumerate(t.stride()))


@check("expand_layout")
def expand_matches_torch(ns: Namespace) -> None:
    cases: list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = [
        ((3,), (1,), (4, 3)),
        ((3,), (2,), (2, 5, 3)),
        ((3, 1), (1, 1), (2, 3, 4)),
        ((3, 1), (5, 3), (3, 6)),
        ((1, 4), (9, 2), (5, 4)),
        ((1, 4), (9, 2), (-1, -1)),
        ((1, 4), (9, 2), (3, -1)),
        ((1, 4), (9, 2), (2, 1, -1)),
        ((2, 1, 3), (3, 3, 1), (2, 4, 3)),
        ((2, 1, 3), (3, 3, 1), (5, 2, 7, 3)),
        ((2, 3), (3, 1), (2, 3)),
        ((2, 3), (1, 2), (1, 2, 3)),
        ((1,), (1,), (0,)),
        ((1, 1), (1, 1), (2, 0, 3)),
        ((), (), (3, 2)),
        ((4, 0), (1, 1), (2, 4, 0)),
    ]
    for shape, stride, new_shape in cases:
        expected = _expected_expand(shape, stride, new_shape)
        with case(_call("expand_layout", shape=shape, stride=stride, new_shape=new_shape)):
            got = ns.expand_layout(shape, stride, new_shape)
            assert_equal(tuple(map(tuple, got)), expected, what="(shape, stride)")


@check("expand_layout")
def expand_rejects_impossible_shapes(ns: Namespace) -> None:
    cases: list[tuple[tuple[int, ...], tuple[int, ...]]] = [
        ((3,), (4,)),
        ((2, 3), (3,)),
        ((2, 3), (2,)),
        ((1, 3), (3,)),
        ((2, 3), (3, 3)),
        ((3,), (-1, 3)),
        ((3,), (-2,)),
        ((1,), (-2,)),
        ((2, 1), (2, -3)),
        ((0,), (2,)),
    ]
    for shape, new_shape in cases:
        stride = torch.empty(shape).stride()
        with case(_call("expand_layout", shape=shape, stride=stride, new_shape=new_shape)):
            err = assert_raises(ns.expand_layout, shape, stride, new_shape, exc=ShapeError)
            expect(
                str(new_shape) in str(err) or str(list(new_shape)) in str(err),
                f"the error should name the requested shape {new_shape}: {err}",
            )


# ----------------------------------------------------------------------------------------------
# diagonal_layout


@check("diagonal_layout")
def diagonal_matches_torch(ns: Namespace) -> None:
    matrices = [
        ("a 3x4 matrix", torch.empty(3, 4)),
        ("a 5x2 matrix", torch.empty(5, 2)),
        ("a 4x4 matrix", torch.empty(4, 4)),
        ("a 3x5 matrix transposed", torch.empty(3, 5).t()),
        ("x[::2, 1::3] of a 8x12 matrix", torch.empty(8, 12)[::2, 1::3]),
        ("a 1x6 matrix", torch.empty(1, 6)),
    ]
    for name, t in matrices:
        x = _strided(t.shape, t.stride(), 7)
        rows, cols = x.shape
        for k in range(-rows - 2, cols + 3):
            expected = x.diagonal(k)
            call = _call("diagonal_layout", shape=tuple(x.shape), stride=x.stride(), offset=7, k=k)
            with case(f"{call}\n  (the layout of {name})"):
                shape, stride, offset = ns.diagonal_layout(tuple(x.shape), x.stride(), 7, k)
                assert_equal(tuple(shape), tuple(expected.shape), what="shape")
                if expected.numel():
                    assert_equal(
                        (tuple(stride), offset),
                        (expected.stride(), expected.storage_offset()),
                        what="(stride, offset)",
                    )


@check("diagonal_layout")
def diagonal_defaults_to_main(ns: Namespace) -> None:
    with case(_call("diagonal_layout", shape=(3, 4), stride=(4, 1), offset=2) + " (k not given)"):
        got = ns.diagonal_layout((3, 4), (4, 1), 2)
        assert_equal((tuple(got[0]), tuple(got[1]), got[2]), ((3,), (5,), 2))


@check("diagonal_layout")
def diagonal_rejects_non_matrices(ns: Namespace) -> None:
    for shape, stride in [((3,), (1,)), ((2, 3, 4), (12, 4, 1))]:
        with case(_call("diagonal_layout", shape=shape, stride=stride, offset=0)):
            assert_raises(ns.diagonal_layout, shape, stride, 0, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# sliding_windows


def _vectors() -> list[tuple[str, Tensor]]:
    g = torch.Generator().manual_seed(1)
    base = torch.randn(40, generator=g)
    return [
        ("a 10-vector", base[:10].clone()),
        ("x[3::2] of a 40-vector (strided, offset)", base[3::2]),
        ("a column x[:, 1] of a 7x3 matrix", base[:21].view(7, 3)[:, 1]),
        ("a 5-vector", base[:5].clone()),
    ]


@check("sliding_windows")
def windows_match_unfold(ns: Namespace) -> None:
    for name, x in _vectors():
        n = x.shape[0]
        for size, step in {(1, 1), (3, 1), (3, 2), (2, 3), (n, 1), (n - 1, 2), (2, n + 1)}:
            with case(f"{name}, size={size}, step={step}", x=x):
                got = ns.sliding_windows(x, size, step)
                assert_equal(got, x.unfold(0, size, step), what="windows")
                assert_shares_storage(got, x, what="windows")


@check("sliding_windows")
def windows_step_defaults_to_one(ns: Namespace) -> None:
    x = torch.arange(6.0)
    with case("arange(6), size 4, step not given", x=x):
        assert_equal(ns.sliding_windows(x, 4), x.unfold(0, 4, 1))


@check("sliding_windows")
def windows_reject_bad_arguments(ns: Namespace) -> None:
    x = torch.arange(5.0)
    with case("a 2-D input", x=x.view(1, 5)):
        assert_raises(ns.sliding_windows, x.view(1, 5), 2, exc=ShapeError)
    with case("a 0-d input", x=x[0]):
        assert_raises(ns.sliding_windows, x[0], 1, exc=ShapeError)
    for size, step in [(0, 1), (6, 1), (2, 0), (2, -1)]:
        with case(f"a 5-vector, size={size}, step={step}", x=x):
            assert_raises(ns.sliding_windows, x, size, step, exc=ValueError)


# ----------------------------------------------------------------------------------------------
# patches_2d


@check("patches_2d")
def patches_match_unfold(ns: Namespace) -> None:
    g = torch.Generator().manual_seed(2)
    base = torch.randn(12, 14, generator=g)
    images = [
        ("a 5x7 image", base[:5, :7].clone()),
        ("x[1::2, 2::3] of a 12x14 image (strided, offset)", base[1::2, 2::3]),
        ("a 7x5 image, transposed", base[:5, :7].t()),
        ("a 1x6 image", base[:1, :6].clone()),
    ]
    for name, x in images:
        h, w = x.shape
        for kernel, step in {
            ((1, 1), 1),
            ((2, 3), 1),
            ((3, 2), 2),
            ((h, w), 1),
            ((1, w), 3),
            ((h, 1), 2),
            ((min(2, h), 2), 4),
        }:
            if kernel[0] > h or kernel[1] > w:
                continue
            expected = x.unfold(0, kernel[0], step).unfold(1, kernel[1], step)
            with case(f"{name}, kernel={kernel}, step={step}", x=x):
                got = ns.patches_2d(x, kernel, step)
                assert_equal(got, expected, what="patches")
                assert_shares_storage(got, x, what="patches")


@check("patches_2d")
def patches_step_defaults_to_one(ns: Namespace) -> None:
    x = torch.arange(20.0).view(4, 5)
    with case("a 4x5 image, kernel (2, 3), step not given", x=x):
        assert_equal(ns.patches_2d(x, (2, 3)), x.unfold(0, 2, 1).unfold(1, 3, 1))


@check("patches_2d")
def patches_reject_bad_arguments(ns: Namespace) -> None:
    x = torch.zeros(4, 5)
    for bad in (torch.zeros(5), torch.zeros(2, 4, 5)):
        with case(f"a {bad.dim()}-D input", x=bad):
            assert_raises(ns.patches_2d, bad, (1, 1), exc=ShapeError)
    for kernel, step in [((0, 1), 1), ((1, 0), 1), ((5, 1), 1), ((1, 6), 1), ((2, 2), 0)]:
        with case(f"a 4x5 image, kernel={kernel}, step={step}", x=x):
            assert_raises(ns.patches_2d, x, kernel, step, exc=ValueError)
