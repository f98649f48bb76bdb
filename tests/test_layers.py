"""Tests of mlab.nn.layers and mlab.nn.init beyond the course checks: the parameter-free layers,
a small network mixing every layer against its torch.nn twin (state dicts both ways, train and
eval, gradients), reprs, Sequential's indexing, device/dtype arguments, and the initialisers
that are not exercises."""

from __future__ import annotations

import copy
import math
from typing import Literal

import pytest
import torch
from torch import nn

from mlab.errors import ShapeError
from mlab.nn import init, layers
from mlab.testing import assert_close, assert_equal, generator, randn

F64 = torch.float64


def _ours() -> layers.Sequential:
    return layers.Sequential(
        layers.Conv2d(3, 6, 3, stride=2, padding=1, bias=False, dtype=F64),
        layers.BatchNorm2d(6, dtype=F64),
        layers.ReLU(),
        layers.MaxPool2d(2),
        layers.GroupNorm(2, 6, dtype=F64),
        layers.Conv2d(6, 4, (1, 2), groups=2, dtype=F64),
        layers.AdaptiveAvgPool2d((2, 1)),
        layers.Flatten(),
        layers.LayerNorm(8, dtype=F64),
        layers.Linear(8, 5, dtype=F64),
    )


def _theirs() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=False, dtype=F64),
        nn.BatchNorm2d(6, dtype=F64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.GroupNorm(2, 6, dtype=F64),
        nn.Conv2d(6, 4, (1, 2), groups=2, dtype=F64),
        nn.AdaptiveAvgPool2d((2, 1)),
        nn.Flatten(),
        nn.LayerNorm(8, dtype=F64),
        nn.Linear(8, 5, dtype=F64),
    )


def _randomise(module: nn.Module, seed: int) -> None:
    g = generator(seed)
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5)


def test_mixed_network_matches_torch_both_ways() -> None:
    ours, theirs = _ours(), _theirs()
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [
        (n, p.shape) for n, p in theirs.named_parameters()
    ]
    assert [(n, b.shape) for n, b in ours.named_buffers()] == [
        (n, b.shape) for n, b in theirs.named_buffers()
    ]
    _randomise(theirs, 0)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    for step in range(3):
        x = randn(4, 3, 9, 11, seed=step, dtype=F64)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, want = ours(xa), theirs(xb)
        assert_close(out, want)
        w = randn(*want.shape, seed=100 + step, dtype=F64)
        ours.zero_grad()
        theirs.zero_grad()
        (out * w).sum().backward()
        (want * w).sum().backward()
        assert_close(xa.grad, xb.grad, what="grad of x")
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
            assert_close(p.grad, q.grad, what=f"grad of {name}")
    assert_close(ours.state_dict(), theirs.state_dict())
    ours.eval()
    theirs.eval()
    x = randn(1, 3, 9, 11, seed=9, dtype=F64)
    assert_close(ours(x), theirs(x))
    # and back: our state dict into a fresh torch network
    fresh = _theirs().eval()
    fresh.load_state_dict(ours.state_dict(), strict=True)
    assert_close(fresh(x), ours(x))


def test_state_dict_round_trip_through_a_file(tmp_path: object) -> None:
    ours = _ours()
    _randomise(ours, 1)
    path = f"{tmp_path}/net.pt"
    torch.save(ours.state_dict(), path)
    theirs = _theirs()
    theirs.load_state_dict(torch.load(path), strict=True)
    assert_close(theirs.state_dict(), ours.state_dict())


def test_reprs_match_torch_where_torch_is_unconditional() -> None:
    pairs = [
        (layers.Linear(3, 4, bias=False), nn.Linear(3, 4, bias=False)),
        (layers.BatchNorm2d(5, momentum=None), nn.BatchNorm2d(5, momentum=None)),
        (layers.LayerNorm((2, 3)), nn.LayerNorm((2, 3))),
        (layers.GroupNorm(2, 4, affine=False), nn.GroupNorm(2, 4, affine=False)),
        (layers.Flatten(0, 2), nn.Flatten(0, 2)),
        (layers.ReLU(), nn.ReLU()),
        (layers.ReLU(inplace=True), nn.ReLU(inplace=True)),
        (layers.AdaptiveAvgPool2d(1), nn.AdaptiveAvgPool2d(1)),
    ]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)
    assert repr(layers.Conv2d(3, 8, 3, stride=2)) == (
        "Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(0, 0), dilation=(1, 1), "
        "groups=1, bias=True)"
    )
    assert repr(layers.MaxPool2d(3, 2, 1)) == "MaxPool2d(kernel_size=3, stride=2, padding=1)"
    assert repr(layers.Sequential(layers.ReLU())) == "Sequential(\n  (0): ReLU()\n)"


def test_sequential_indexing_iteration_and_registration() -> None:
    a, b, c = layers.Linear(2, 3), layers.ReLU(), layers.Linear(3, 1)
    seq = layers.Sequential(a, b, c)
    assert len(seq) == 3
    assert seq[0] is a and seq[-1] is c and seq[-3] is a
    assert list(seq) == [a, b, c]  # iteration through __getitem__ stops at IndexError
    for bad in (3, -4):
        with pytest.raises(IndexError, match=str(bad)):
            seq[bad]
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    seq.eval()
    assert not a.training and not c.training


def test_parameter_free_layers_match_torch() -> None:
    x = randn(2, 3, 7, 6, seed=3)
    assert_equal(layers.ReLU()(x), nn.ReLU()(x))
    y = x.clone()
    out = layers.ReLU(inplace=True)(y)
    assert out is y and bool((y >= 0).all())
    for args in ((2,), (3, 2, 1), ((2, 3), (1, 2), (1, 0))):
        assert_equal(layers.MaxPool2d(*args)(x), nn.MaxPool2d(*args)(x))
    for size in (1, (3, 2), (7, 6), (4, 5)):
        assert_close(layers.AdaptiveAvgPool2d(size)(x), nn.AdaptiveAvgPool2d(size)(x))


def test_shape_errors_name_the_shapes() -> None:
    with pytest.raises(ShapeError, match=r"\(3, 4, 5, 6\)"):
        layers.BatchNorm2d(5)(torch.zeros(3, 4, 5, 6))
    with pytest.raises(ShapeError, match=r"\(2, 7\)"):
        layers.Linear(6, 4)(torch.zeros(2, 7))
    with pytest.raises(ShapeError, match=r"\(2, 3\)"):
        layers.LayerNorm(4)(torch.zeros(2, 3))
    with pytest.raises(ShapeError, match="GroupNorm"):
        layers.GroupNorm(2, 4)(torch.zeros(2, 6, 3))
    with pytest.raises(ShapeError):
        layers.Conv2d(3, 4, 3)(torch.zeros(3, 5, 5))


def test_factory_arguments_reach_every_tensor() -> None:
    bn = layers.BatchNorm2d(3, dtype=F64, device="cpu")
    assert bn.weight.dtype == bn.running_var.dtype == F64
    assert bn.num_batches_tracked.dtype == torch.int64
    assert layers.Conv2d(2, 4, 3, dtype=F64).bias.dtype == F64
    assert layers.LayerNorm(3, dtype=F64).weight.dtype == F64


def test_batchnorm_momentum_zero_keeps_running_stats() -> None:
    ours, theirs = layers.BatchNorm2d(4, momentum=0.0), nn.BatchNorm2d(4, momentum=0.0)
    x = randn(3, 4, 2, 2, seed=0)
    ours(x)
    theirs(x)
    assert_close(ours.state_dict(), theirs.state_dict())
    assert_equal(ours.running_mean, torch.zeros(4))


def test_init_functions_match_torch_with_a_generator() -> None:
    gains: list[tuple[Literal["relu", "leaky_relu", "tanh"], float]] = [
        ("relu", 0.0),
        ("leaky_relu", 0.1),
        ("tanh", 0.0),
    ]
    for shape in ((30, 20), (8, 3, 5, 5)):
        for mode in ("fan_in", "fan_out"):
            for nonlinearity, a in gains:
                got = init.kaiming_normal_(torch.empty(shape), a, mode, nonlinearity, generator(1))
                want = nn.init.kaiming_normal_(
                    torch.empty(shape), a, mode, nonlinearity, generator=generator(1)
                )
                assert_close(got, want)
        got = init.xavier_uniform_(torch.empty(shape), 1.7, generator(2))
        assert_close(got, nn.init.xavier_uniform_(torch.empty(shape), 1.7, generator(2)))
    for name in ("linear", "conv2d", "sigmoid", "tanh", "relu"):
        assert init.calculate_gain(name) == nn.init.calculate_gain(name)
    assert init.calculate_gain("leaky_relu", 0.3) == nn.init.calculate_gain("leaky_relu", 0.3)
    assert init.calculate_gain("leaky_relu") == nn.init.calculate_gain("leaky_relu")
    with pytest.raises(ValueError, match="selu2"):
        init.calculate_gain("selu2")


def test_default_init_bounds_and_spread() -> None:
    weight, bias = torch.empty(400, 50), torch.empty(400)
    init.default_init_(weight, bias, generator(0))
    bound = 1 / math.sqrt(50)
    assert float(weight.abs().max()) <= bound and float(bias.abs().max()) <= bound
    # U(-b, b) has standard deviation b / sqrt(3)
    assert abs(float(weight.std()) - bound / math.sqrt(3)) < 0.01 * bound
    torch.manual_seed(5)
    want = nn.Linear(50, 400)
    torch.manual_seed(5)
    got = layers.Linear(50, 400)
    assert_equal(got.weight, want.weight)
    assert_equal(got.bias, want.bias)


def test_layers_survive_deepcopy_and_train_eval_toggles() -> None:
    net = _ours()
    clone = copy.deepcopy(net)
    x = randn(2, 3, 9, 11, seed=4, dtype=F64)
    net.eval()
    clone.eval()
    assert_equal(net(x), clone(x))
