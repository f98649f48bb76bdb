"""Checks for part 3 of w1d2: pictures from a random network (CPPN). The coordinate grid is
compared with ``torch.linspace`` + ``torch.meshgrid``, the features with ``torch.hypot``, the
initialisation with ``torch.randn`` drawn in the documented order, and the forward pass and the
rendered picture with ``torch.nn.Sequential(Linear, Tanh, ..., Linear, Sigmoid)`` holding the
same weights."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_no_python_loop,
    assert_raises,
    case,
    expect,
    generator,
    randn,
)

# ----------------------------------------------------------------------------------------------
# What torch computes: the expected values of every check.


def _torch_grid(height: int, width: int) -> Tensor:
    """Pixel centres (x, y) from linspace + meshgrid: the longer side spans [-1, 1] with a
    half-pixel margin, the shorter one keeps the aspect ratio."""
    size = max(height, width)
    xs = torch.linspace(-(width - 1) / size, (width - 1) / size, width)
    ys = torch.linspace(-(height - 1) / size, (height - 1) / size, height)
    rows, cols = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((cols, rows), dim=-1)


def _torch_features(grid: Tensor, z: Tensor) -> Tensor:
    r = torch.hypot(grid[..., 0], grid[..., 1]).unsqueeze(-1)
    return torch.cat((grid, r, torch.broadcast_to(z, (*grid.shape[:-1], len(z)))), dim=-1)


def _torch_mlp(sizes: Sequence[int], seed: int, gain: float = 2.5) -> nn.Sequential:
    """nn.Sequential(Linear, Tanh, ..., Linear, Sigmoid) with weights large enough (std
    gain / sqrt(fan_in)) that tanh is far from linear, so every layer shows."""
    g = generator(seed)
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        linear = nn.Linear(fan_in, fan_out)
        nn.init.normal_(linear.weight, std=gain / fan_in**0.5, generator=g)
        nn.init.normal_(linear.bias, std=gain / fan_in**0.5, generator=g)
        layers += [linear, nn.Tanh()]
    layers[-1] = nn.Sigmoid()
    return nn.Sequential(*layers).requires_grad_(False)


def _params_of(mlp: nn.Sequential) -> list[tuple[Tensor, Tensor]]:
    return [(m.weight, m.bias) for m in mlp if isinstance(m, nn.Linear)]


def _torch_init(sizes: Sequence[int], scale: float, seed: int) -> list[tuple[Tensor, Tensor]]:
    """The documented order of draws: per layer, weight (fan_out, fan_in) then bias."""
    g = generator(seed)
    expected = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        weight = torch.randn(fan_out, fan_in, generator=g)
        bias = torch.randn(fan_out, generator=g)
        std = scale / math.sqrt(fan_in)
        expected.append((weight * std, bias * std))
    return expected


# ----------------------------------------------------------------------------------------------
# cppn_grid


@check("cppn_grid")
def grid_matches_linspace_meshgrid(ns: Namespace) -> None:
    for height, width in ((3, 5), (6, 4), (4, 4), (1, 6), (5, 1), (1, 1), (2, 9)):
        with case(f"a {height}x{width} image (height x width)", height=height, width=width):
            assert_close(ns.cppn_grid(height, width), _torch_grid(height, width))


@check("cppn_grid")
def grid_is_resolution_independent(ns: Namespace) -> None:
    for k in (3, 5):
        with case(
            f"the centre pixel of each {k}x{k} block of a {3 * k}x{5 * k} image against a 3x5 image"
        ):
            fine = ns.cppn_grid(3 * k, 5 * k)[k // 2 :: k, k // 2 :: k]
            assert_equal(fine, ns.cppn_grid(3, 5))


@check("cppn_grid")
def grid_rejects_empty_sizes(ns: Namespace) -> None:
    for height, width in ((0, 4), (4, 0), (-2, 3), (3, -1)):
        with case(f"height={height}, width={width}"):
            assert_raises(ns.cppn_grid, height, width, exc=ValueError)


@check("cppn_grid")
def grid_has_no_python_loop(ns: Namespace) -> None:
    with case("images of 8x11 and 200x203 pixels (counting Python lines run)"):
        assert_no_python_loop(ns.cppn_grid, lambda n: (n, n + 3))


# ----------------------------------------------------------------------------------------------
# cppn_features


@check("cppn_features")
def features_match_torch(ns: Namespace) -> None:
    f64 = torch.float64
    cases = [
        ("a 4x5 grid of random points, d_z=3", randn(4, 5, 2, seed=1), randn(3, seed=2)),
        ("7 points, no latent (d_z=0)", randn(7, 2, seed=3), torch.zeros(0)),
        ("a 2x3x4 batch of points, d_z=1", randn(2, 3, 4, 2, seed=4), randn(1, seed=5)),
        ("one point, no batch dimension", torch.tensor([-3.0, 4.0]), randn(2, seed=6)),
        ("transposed (non-contiguous)", randn(5, 3, 2, seed=7).transpose(0, 1), randn(2, seed=8)),
        ("float64", randn(3, 2, seed=9, dtype=f64), randn(2, seed=10, dtype=f64)),
    ]
    for what, grid, z in cases:
        with case(what, grid=grid, z=z):
            assert_close(ns.cppn_features(grid, z), _torch_features(grid, z))


@check("cppn_features")
def features_reject_bad_shapes(ns: Namespace) -> None:
    cases = [
        ("grid with 3 numbers per point", torch.zeros(4, 3), torch.zeros(2)),
        ("grid with 1 number per point", torch.zeros(4, 1), torch.zeros(2)),
        ("a 0-d grid", torch.tensor(1.0), torch.zeros(2)),
        ("a 2-D z", torch.zeros(4, 2), torch.zeros(2, 2)),
        ("a 0-d z", torch.zeros(4, 2), torch.tensor(0.5)),
    ]
    for what, grid, z in cases:
        with case(what, grid=grid, z=z):
            assert_raises(ns.cppn_features, grid, z, exc=ShapeError)


@check("cppn_features")
def features_have_no_python_loop(ns: Namespace) -> None:
    with case("8 and 200 points (counting Python lines run)"):
        assert_no_python_loop(ns.cppn_features, lambda n: (randn(n, 2, seed=n), randn(3, seed=0)))


# ----------------------------------------------------------------------------------------------
# cppn_init


@check("cppn_init")
def init_has_the_right_scale(ns: Namespace) -> None:
    sizes, scale = [300, 200, 2], 2.0
    with case(f"sizes={sizes}, scale={scale}"):
        params = list(ns.cppn_init(sizes, scale, generator(0)))
        expect(len(params) == 2, f"got {len(params)} layers, expected len(sizes) - 1 = 2")
        for layer, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            weight, bias = params[layer]
            shapes = (tuple(weight.shape), tuple(bias.shape))
            expect(
                shapes == ((fan_out, fan_in), (fan_out,)),
                f"layer {layer}: weight and bias have shapes {shapes}, expected "
                f"{((fan_out, fan_in), (fan_out,))} (weight is (fan_out, fan_in), as in nn.Linear)",
            )
            want = scale / fan_in**0.5
            std = float(weight.std())
            expect(
                abs(std - want) < 0.05 * want,
                f"layer {layer}: the weights have std {std:.4g}, expected "
                f"scale / sqrt(fan_in) = {want:.4g}",
            )


@check("cppn_init")
def init_matches_torch_randn(ns: Namespace) -> None:
    for sizes, scale, seed in (([5, 7, 6, 3], 2.5, 3), ([2, 1], 1.0, 4), ([3, 3], 0.5, 5)):
        with case(f"sizes={sizes}, scale={scale}, generator seeded with {seed}"):
            got = ns.cppn_init(sizes, scale, generator(seed))
            assert_close(list(map(tuple, got)), _torch_init(sizes, scale, seed))


@check("cppn_init")
def init_is_deterministic_by_seed(ns: Namespace) -> None:
    sizes = [5, 8, 3]
    with case(f"sizes={sizes}, scale=1.0, generators seeded 0, 0 and 1"):
        first = ns.cppn_init(sizes, 1.0, generator(0))
        again = ns.cppn_init(sizes, 1.0, generator(0))
        other = ns.cppn_init(sizes, 1.0, generator(1))
        assert_equal(list(map(tuple, again)), list(map(tuple, first)))
        expect(
            not torch.equal(first[0][0], other[0][0]),
            "seeds 0 and 1 gave the same weights: draw from the generator you are given",
        )


@check("cppn_init")
def init_rejects_bad_sizes(ns: Namespace) -> None:
    for sizes in ([], [3], [3, 0, 2], [4, -1]):
        with case(f"sizes={sizes}"):
            assert_raises(ns.cppn_init, sizes, 1.0, generator(0), exc=ValueError)


# ----------------------------------------------------------------------------------------------
# cppn_forward


@check("cppn_forward")
def forward_matches_nn_sequential(ns: Namespace) -> None:
    cases = [
        ([4, 6, 5, 3], randn(7, 4, seed=11), "7 points, layers 4-6-5-3"),
        ([4, 6, 5, 3], randn(3, 5, 4, seed=12), "a 3x5 image of points, layers 4-6-5-3"),
        ([3, 2], randn(6, 3, seed=13), "6 points, one layer 3-2 (sigmoid only)"),
        ([2, 9, 9, 9, 9, 1], randn(4, 2, seed=14), "4 points, 4 hidden layers, 1 output"),
        ([4, 6, 3], randn(8, 4, seed=15)[::2], "a stepped (non-contiguous) batch"),
        ([4, 6, 3], torch.zeros(0, 4), "no points"),
    ]
    for seed, (sizes, inputs, what) in enumerate(cases):
        mlp = _torch_mlp(sizes, seed)
        with case(what, inputs=inputs):
            assert_close(ns.cppn_forward(_params_of(mlp), inputs), mlp(inputs))


@check("cppn_forward")
def forward_rejects_wrong_feature_size(ns: Namespace) -> None:
    params = _params_of(_torch_mlp([4, 6, 3], 0))
    inputs = torch.zeros(5, 6)
    with case("6 features per point for a first layer of fan_in 4", inputs=inputs):
        assert_raises(ns.cppn_forward, params, inputs, exc=ShapeError)


@check("cppn_forward")
def forward_has_no_python_loop(ns: Namespace) -> None:
    params = _params_of(_torch_mlp([4, 6, 5, 3], 0))
    with case("8 and 200 points through 3 layers (counting Python lines run)"):
        assert_no_python_loop(ns.cppn_forward, lambda n: (params, randn(n, 4, seed=n)))


# ----------------------------------------------------------------------------------------------
# cppn_render


def _torch_picture(mlp: nn.Sequential, height: int, width: int, z: Tensor) -> Tensor:
    out: Tensor = mlp(_torch_features(_torch_grid(height, width), z))
    return out


@check("cppn_render")
def render_matches_torch(ns: Namespace) -> None:
    cases = [(5, 7, 2, 3), (7, 5, 2, 3), (1, 1, 2, 3), (4, 6, 0, 3), (3, 8, 1, 1)]
    for seed, (height, width, d_z, d_out) in enumerate(cases):
        mlp = _torch_mlp([3 + d_z, 8, 8, d_out], seed)
        z = randn(d_z, seed=seed)
        with case(f"a {height}x{width} picture (height x width), d_z={d_z}, {d_out} outputs", z=z):
            got = ns.cppn_render(_params_of(mlp), height, width, z)
            assert_close(got, _torch_picture(mlp, height, width, z))


@check("cppn_render")
def render_is_resolution_independent(ns: Namespace) -> None:
    mlp = _torch_mlp([5, 8, 8, 3], 1)
    params, z = _params_of(mlp), randn(2, seed=1)
    with case("the centre pixel of each 3x3 block of a 12x15 picture against a 4x5 picture"):
        fine = ns.cppn_render(params, 12, 15, z)[1::3, 1::3]
        assert_close(fine, ns.cppn_render(params, 4, 5, z))


@check("cppn_render")
def render_rejects_empty_sizes(ns: Namespace) -> None:
    params = _params_of(_torch_mlp([5, 8, 3], 0))
    for height, width in ((0, 4), (4, 0)):
        with case(f"height={height}, width={width}"):
            assert_raises(ns.cppn_render, params, height, width, torch.zeros(2), exc=ValueError)
