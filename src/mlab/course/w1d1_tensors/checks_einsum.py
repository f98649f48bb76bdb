"""Checks for part 5 of w1d1: einsum and einops, against matmul, ``torch.trace``,
``scaled_dot_product_attention``, ``max_pool2d``, ``interpolate`` and view/permute chains."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import assert_close, assert_equal, assert_raises, case


def _randn(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ----------------------------------------------------------------------------------------------
# einsum


@check("trace")
def trace_matches_torch(ns: Namespace) -> None:
    cases = [
        ("a 4x4 matrix", _randn(4, 4, seed=0)),
        ("a 1x1 matrix", torch.tensor([[-3.0]])),
        ("an integer matrix", torch.arange(9).reshape(3, 3)),
        ("a non-contiguous 3x3 (every other column of 3x6)", _randn(3, 6, seed=1)[:, ::2]),
    ]
    for what, a in cases:
        with case(what, a=a):
            assert_close(ns.trace(a), torch.trace(a))


@check("trace")
def trace_rejects_non_square(ns: Namespace) -> None:
    for a in (torch.zeros(3, 4), torch.zeros(4, 3), torch.zeros(3), torch.zeros(2, 2, 2)):
        with case("not a square matrix", a=a):
            assert_raises(ns.trace, a, exc=ShapeError)


@check("batched_matmul")
def batched_matmul_matches_bmm(ns: Namespace) -> None:
    cases = [
        ("3 x (2x4 @ 4x5)", _randn(3, 2, 4, seed=10), _randn(3, 4, 5, seed=11)),
        ("1 x (1x1 @ 1x1)", _randn(1, 1, 1, seed=12), _randn(1, 1, 1, seed=13)),
        (
            "transposed (non-contiguous) inputs",
            _randn(2, 3, 5, seed=14).transpose(1, 2),
            _randn(2, 6, 3, seed=15).transpose(1, 2),
        ),
    ]
    for what, a, b in cases:
        with case(what, a=a, b=b):
            assert_close(ns.batched_matmul(a, b), torch.bmm(a, b))


@check("outer_product")
def outer_matches_torch(ns: Namespace) -> None:
    cases = [
        ("lengths 3 and 5", _randn(3, seed=20), _randn(5, seed=21)),
        ("a stepped (non-contiguous) slice", _randn(8, seed=22)[::3], torch.tensor([2.0])),
        ("an empty v", _randn(2, seed=23), torch.zeros(0, dtype=torch.float64)),
    ]
    for what, u, v in cases:
        with case(what, u=u, v=v):
            assert_close(ns.outer_product(u, v), torch.outer(u, v))


@check("bilinear_form")
def bilinear_matches_matmul(ns: Namespace) -> None:
    cases = [
        (
            "batch 4, d1 3, d2 5",
            _randn(4, 3, seed=30),
            _randn(3, 5, seed=31),
            _randn(4, 5, seed=32),
        ),
        (
            "batch 1, d1 1, d2 2",
            _randn(1, 1, seed=33),
            _randn(1, 2, seed=34),
            _randn(1, 2, seed=35),
        ),
        (
            "a transposed (non-contiguous) a",
            _randn(2, 3, seed=36),
            _randn(4, 3, seed=37).t(),
            _randn(2, 4, seed=38),
        ),
    ]
    for what, x, a, y in cases:
        with case(what, x=x, a=a, y=y):
            expected = ((x @ a) * y).sum(dim=1)
            assert_close(ns.bilinear_form(x, a, y), expected)


@check("attention_scores")
def attention_scores_match_matmul(ns: Namespace) -> None:
    cases = [
        (
            "batch 2, heads 3, q_seq 4, k_seq 5, d_head 6",
            _randn(2, 3, 4, 6, seed=40),
            _randn(2, 3, 5, 6, seed=41),
        ),
        ("d_head 1", _randn(1, 2, 3, 1, seed=42), _randn(1, 2, 2, 1, seed=43)),
        (
            "d_head 4 (sqrt is 2), transposed keys",
            _randn(1, 1, 2, 4, seed=44),
            _randn(1, 1, 4, 3, seed=45).transpose(2, 3),
        ),
    ]
    for what, q, k in cases:
        with case(what, q=q, k=k):
            expected = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            assert_close(ns.attention_scores(q, k), expected)


@check("attention_scores")
def softmax_of_scores_is_torch_attention(ns: Namespace) -> None:
    q, k, v = _randn(2, 3, 4, 5, seed=46), _randn(2, 3, 6, 5, seed=47), _randn(2, 3, 6, 2, seed=48)
    with case("softmax(scores) @ v against scaled_dot_product_attention", q=q, k=k, v=v):
        got = ns.attention_scores(q, k).softmax(dim=-1) @ v
        assert_close(got, F.scaled_dot_product_attention(q, k, v))


@check("attention_output")
def attention_output_matches_matmul(ns: Namespace) -> None:
    cases = [
        (
            "batch 2, heads 3, q_seq 4, k_seq 5, d_head 6",
            _randn(2, 3, 4, 5, seed=50).softmax(-1),
            _randn(2, 3, 5, 6, seed=51),
        ),
        ("k_seq 1", torch.ones(1, 2, 3, 1, dtype=torch.float64), _randn(1, 2, 1, 4, seed=52)),
        (
            "transposed (non-contiguous) values",
            _randn(1, 2, 2, 3, seed=53),
            _randn(1, 2, 5, 3, seed=54).transpose(2, 3),
        ),
    ]
    for what, pattern, v in cases:
        with case(what, pattern=pattern, v=v):
            assert_close(ns.attention_output(pattern, v), pattern @ v)


# ----------------------------------------------------------------------------------------------
# einops


@check("split_heads")
def split_heads_matches_view(ns: Namespace) -> None:
    x = _randn(2, 5, 12, seed=60)
    for n_heads in (3, 4, 1, 12):
        with case(f"(batch 2, seq 5, d_model 12), n_heads={n_heads}", x=x):
            expected = x.view(2, 5, n_heads, 12 // n_heads).transpose(1, 2)
            assert_equal(ns.split_heads(x, n_heads), expected)
    xt = _randn(6, 3, 2, seed=61).transpose(0, 2)
    with case("a transposed (non-contiguous) x, n_heads=2", x=xt):
        assert_equal(ns.split_heads(xt, 2), xt.reshape(2, 3, 2, 3).transpose(1, 2))


@check("split_heads")
def split_heads_rejects_indivisible(ns: Namespace) -> None:
    x = torch.zeros(2, 6, 12)
    for n_heads in (5, 8):
        with case(f"d_model=12, n_heads={n_heads}", x=x):
            assert_raises(ns.split_heads, x, n_heads, exc=ShapeError, match="12")


@check("merge_heads")
def merge_heads_matches_reshape(ns: Namespace) -> None:
    cases = [
        ("batch 2, heads 3, seq 4, d_head 5", _randn(2, 3, 4, 5, seed=70)),
        ("one head", _randn(2, 1, 3, 2, seed=71)),
        ("a permuted (non-contiguous) input", _randn(4, 3, 2, 2, seed=72).permute(2, 3, 1, 0)),
    ]
    for what, x in cases:
        with case(what, x=x):
            b, h, s, d = x.shape
            assert_equal(ns.merge_heads(x), x.transpose(1, 2).reshape(b, s, h * d))


@check("images_to_grid")
def grid_places_each_image(ns: Namespace) -> None:
    images = _randn(6, 3, 2, 4, seed=80)
    for n_rows in (2, 3, 1, 6):
        n_cols = 6 // n_rows
        expected = torch.zeros(3, n_rows * 2, n_cols * 4, dtype=images.dtype)
        for i in range(6):
            r, c = divmod(i, n_cols)
            expected[:, r * 2 : (r + 1) * 2, c * 4 : (c + 1) * 4] = images[i]
        with case(f"6 images of 3x2x4 in {n_rows} rows", images=images, n_rows=n_rows):
            assert_equal(ns.images_to_grid(images, n_rows), expected)


@check("images_to_grid")
def grid_rejects_indivisible(ns: Namespace) -> None:
    images = torch.zeros(6, 1, 2, 2)
    for n_rows in (4, 5):
        with case(f"6 images, n_rows={n_rows}", images=images):
            assert_raises(ns.images_to_grid, images, n_rows, exc=ShapeError)


@check("max_pool")
def max_pool_matches_torch(ns: Namespace) -> None:
    cases = [
        ("2x3x4x6, kernel 2", _randn(2, 3, 4, 6, seed=90), 2),
        ("1x2x6x9, kernel 3", _randn(1, 2, 6, 9, seed=91), 3),
        ("kernel 1", _randn(1, 1, 2, 3, seed=92), 1),
        (
            "a transposed (non-contiguous) 1x1x4x2, kernel 2",
            _randn(1, 1, 2, 4, seed=93).transpose(2, 3),
            2,
        ),
    ]
    for what, x, kernel in cases:
        with case(what, x=x, kernel=kernel):
            assert_equal(ns.max_pool(x, kernel), F.max_pool2d(x, kernel))


@check("max_pool")
def max_pool_rejects_indivisible(ns: Namespace) -> None:
    for shape, kernel in (((1, 1, 5, 4), 2), ((1, 1, 4, 5), 2), ((1, 1, 6, 4), 3)):
        x = torch.zeros(shape)
        with case(f"height x width {shape[2]}x{shape[3]}, kernel {kernel}", x=x):
            assert_raises(ns.max_pool, x, kernel, exc=ShapeError)


@check("channel_means")
def channel_means_match_torch(ns: Namespace) -> None:
    for what, images in [
        ("2x3x4x5 images", _randn(2, 3, 4, 5, seed=100)),
        ("a permuted (non-contiguous) 1x2x3x1", _randn(3, 1, 2, 1, seed=101).permute(1, 2, 0, 3)),
    ]:
        with case(what, images=images):
            assert_close(ns.channel_means(images), images.mean(dim=(0, 2, 3)))


@check("upsample_nearest")
def upsample_matches_interpolate(ns: Namespace) -> None:
    cases = [
        ("2x3x4x5, scale 2", _randn(2, 3, 4, 5, seed=110), 2),
        ("1x1x2x3, scale 3", _randn(1, 1, 2, 3, seed=111), 3),
        ("scale 1", _randn(1, 2, 2, 2, seed=112), 1),
    ]
    for what, x, scale in cases:
        with case(what, x=x, scale=scale):
            expected = F.interpolate(x, scale_factor=scale, mode="nearest")
            assert_equal(ns.upsample_nearest(x, scale), expected)


@check("tile")
def tile_matches_torch(ns: Namespace) -> None:
    x = torch.arange(6).reshape(2, 3)
    for reps in ((3, 2), (1, 4), (2, 1), (1, 1)):
        with case(f"a 2x3 matrix, reps {reps}", x=x):
            assert_equal(ns.tile(x, *reps), torch.tile(x, reps))
    xt = _randn(3, 2, seed=120).t()
    with case("a transposed (non-contiguous) 2x3, reps (2, 3)", x=xt):
        assert_equal(ns.tile(xt, 2, 3), torch.tile(xt, (2, 3)))
