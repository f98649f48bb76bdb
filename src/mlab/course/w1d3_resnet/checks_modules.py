"""Checks for part 3 of w1d3: modules and initialisation. Every module is compared with its
``torch.nn`` twin built with the same arguments: parameter and buffer names, shapes and dtypes,
state dicts loaded both ways with ``strict=True``, outputs and the gradients of a non-uniform
loss ``(out * w).sum()`` with respect to the input and every parameter, in training and
evaluation mode, and BatchNorm's running statistics step by step. Initialisers are compared
with ``torch.nn.init`` drawing from a generator with the same seed."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mlab.course.engine.checks import Namespace, check
from mlab.errors import MismatchError, ShapeError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_raises,
    case,
    expect,
    generator,
    randn,
)

F64 = torch.float64

# ----------------------------------------------------------------------------------------------
# Comparing a module with its torch twin


def _signature(module: nn.Module) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    named = [*module.named_parameters(), *module.named_buffers()]
    return {name: (tuple(t.shape), t.dtype) for name, t in named}


def _same_layout(ours: nn.Module, theirs: nn.Module) -> None:
    """Parameter and buffer names, shapes and dtypes as torch's, parameters as parameters."""
    params = [name for name, _ in ours.named_parameters()]
    expected = [name for name, _ in theirs.named_parameters()]
    expect(
        sorted(params) == sorted(expected),
        f"parameters (named_parameters) are {params} but torch's are {expected}: register "
        "each with nn.Parameter (or register_parameter(name, None) when it is absent); a "
        "plain tensor attribute is not a parameter",
    )
    buffers = [name for name, _ in ours.named_buffers()]
    expected = [name for name, _ in theirs.named_buffers()]
    expect(
        sorted(buffers) == sorted(expected),
        f"buffers (named_buffers) are {buffers} but torch's are {expected}: use "
        "self.register_buffer(name, tensor) (or register_buffer(name, None) when absent)",
    )
    got, want = _signature(ours), _signature(theirs)
    for name, (shape, dtype) in want.items():
        expect(
            got[name] == (shape, dtype),
            f"{name} has shape {got[name][0]} and dtype {got[name][1]} but torch's has shape "
            f"{shape} and dtype {dtype}",
        )


def _same_attributes(ours: nn.Module, theirs: nn.Module, names: Sequence[str]) -> None:
    for name in names:
        expect(hasattr(ours, name), f"the module has no attribute {name!r} (torch's has)")
        got, want = getattr(ours, name), getattr(theirs, name)
        if want is None or isinstance(want, Tensor):
            expect(
                (got is None) == (want is None),
                f"{name} is {'None' if got is None else 'a tensor'} but torch's is "
                f"{'None' if want is None else 'a tensor'}",
            )
        else:
            expect(
                got == want and type(got) is type(want),
                f"attribute {name} is {got!r} but torch's is {want!r}",
            )


def _randomise(module: nn.Module, seed: int) -> None:
    """Non-trivial parameters and buffers for torch's module: BatchNorm's ones and zeros would
    hide a swapped weight and bias. Float values are positive (a running variance must be)."""
    g = generator(seed)
    with torch.no_grad():
        for _, t in [*module.named_parameters(), *module.named_buffers()]:
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) * 1.5 + 0.25)
            else:
                t.fill_(3)


def _load(target: nn.Module, state: dict[str, Any], direction: str) -> None:
    try:
        target.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise MismatchError(f"loading {direction} with strict=True failed: {err}") from None


def _load_both_ways(ours: nn.Module, theirs: nn.Module, seed: int) -> None:
    """torch's (randomised) state dict into ours, then ours back into torch's."""
    _randomise(theirs, seed)
    _load(ours, theirs.state_dict(), "torch's state dict into yours")
    _load(theirs, ours.state_dict(), "your state dict into torch's")
    assert_close(ours.state_dict(), theirs.state_dict(), what="state dict after loading")


def _forward_backward(
    ours: nn.Module,
    theirs: nn.Module,
    x: Tensor,
    seed: int,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Same outputs, and the same gradients of ``(out * w).sum()`` w.r.t. the input and every
    parameter."""
    ours.zero_grad()
    theirs.zero_grad()
    x_ours = x.clone().requires_grad_()
    x_theirs = x.clone().requires_grad_()
    out = ours(x_ours)
    want = theirs(x_theirs)
    assert_close(out, want, rtol=rtol, atol=atol, what="output")
    expect(
        out.requires_grad,
        "the output does not require grad: it was computed outside autograd (under "
        "torch.no_grad(), or from .detach()/.data), so no gradient can flow back",
    )
    w = torch.randn(want.shape, generator=generator(seed), dtype=want.dtype)
    (out * w).sum().backward()
    (want * w).sum().backward()
    assert_close(x_ours.grad, x_theirs.grad, rtol=rtol, atol=atol, what="gradient w.r.t. x")
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(
            p.grad, theirs_params[name].grad, rtol=rtol, atol=atol, what=f"gradient of {name}"
        )


def _twin(
    make: Callable[..., nn.Module], twin: Callable[..., nn.Module], *args: Any, **kwargs: Any
) -> tuple[nn.Module, nn.Module]:
    return make(*args, **kwargs), twin(*args, **kwargs)


def _config(args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return ", ".join(shown)


# ----------------------------------------------------------------------------------------------
# init: fans, Kaiming, Xavier


WEIGHT_SHAPES = [(7, 3), (8, 3, 5, 7), (6, 2, 3), (4, 9, 1, 1), (5, 1, 2, 3, 4), (1, 6)]


@check("calculate_fan_in_and_fan_out")
def fans_match_torch(ns: Namespace) -> None:
    for shape in WEIGHT_SHAPES:
        t = torch.empty(shape)
        with case(f"a weight of shape {shape}", tensor=t):
            fans = ns.calculate_fan_in_and_fan_out(t)
            assert_equal(tuple(fans), nn.init._calculate_fan_in_and_fan_out(t))


@check("calculate_fan_in_and_fan_out")
def fans_reject_vectors(ns: Namespace) -> None:
    for shape in ((5,), ()):
        with case(f"a tensor of shape {shape} (a bias, a scalar)"):
            assert_raises(ns.calculate_fan_in_and_fan_out, torch.empty(shape), exc=ValueError)


KAIMING_CASES: list[tuple[tuple[int, ...], dict[str, Any]]] = [
    ((64, 48), {}),
    ((32, 12, 3, 5), {"mode": "fan_out", "nonlinearity": "relu"}),
    ((20, 30), {"a": 0.2, "mode": "fan_in", "nonlinearity": "leaky_relu"}),
    ((16, 6, 5, 3), {"a": math.sqrt(5)}),
    ((40, 10), {"mode": "fan_out", "nonlinearity": "tanh"}),
    ((9, 4, 2), {"nonlinearity": "linear"}),
]


@check("kaiming_uniform_")
def kaiming_uniform_matches_torch(ns: Namespace) -> None:
    for seed, (shape, kwargs) in enumerate(KAIMING_CASES):
        param = nn.Parameter(torch.zeros(shape))
        with case(f"kaiming_uniform_ of a {shape} parameter with {kwargs}, a seeded generator"):
            got = ns.kaiming_uniform_(param, **kwargs, generator=generator(seed))
            expect(got is param, "return the tensor you filled (the same object, in place)")
            want = nn.init.kaiming_uniform_(torch.zeros(shape), **kwargs, generator=generator(seed))
            assert_close(param.detach(), want)
            expect(param.grad_fn is None, "the fill must not be recorded by autograd")


@check("kaiming_uniform_")
def kaiming_uniform_rejects_bad_mode(ns: Namespace) -> None:
    with case("mode='fan_avg'"):
        assert_raises(ns.kaiming_uniform_, torch.zeros(4, 3), mode="fan_avg", exc=ValueError)


XAVIER_CASES: list[tuple[tuple[int, ...], float]] = [
    ((64, 48), 1.0),
    ((32, 12, 3, 5), 2.5),
    ((20, 30), math.sqrt(2)),
    ((9, 4, 2), 0.3),
]


@check("xavier_normal_")
def xavier_normal_matches_torch(ns: Namespace) -> None:
    for seed, (shape, gain) in enumerate(XAVIER_CASES):
        param = nn.Parameter(torch.zeros(shape))
        with case(f"xavier_normal_ of a {shape} parameter, gain={gain}, a seeded generator"):
            got = ns.xavier_normal_(param, gain, generator=generator(seed))
            expect(got is param, "return the tensor you filled (the same object, in place)")
            want = nn.init.xavier_normal_(torch.zeros(shape), gain, generator=generator(seed))
            assert_close(param.detach(), want)


# ----------------------------------------------------------------------------------------------
# Linear


LINEAR_CONFIGS: list[tuple[tuple[Any, ...], dict[str, Any], tuple[int, ...]]] = [
    ((6, 4), {"dtype": F64}, (3, 6)),
    ((5, 7), {"bias": False, "dtype": F64}, (2, 3, 5)),
    ((3, 2), {"dtype": F64}, (3,)),
    ((4, 1), {}, (2, 1, 3, 4)),
]


@check("Linear")
def linear_has_torchs_layout(ns: Namespace) -> None:
    for args, kwargs, _ in LINEAR_CONFIGS:
        with case(f"Linear({_config(args, kwargs)})"):
            ours, theirs = _twin(ns.Linear, nn.Linear, *args, **kwargs)
            _same_layout(ours, theirs)
            _same_attributes(ours, theirs, ["in_features", "out_features", "weight", "bias"])
            assert_equal(repr(ours), repr(theirs), what="repr")


@check("Linear")
def linear_default_init_is_torchs(ns: Namespace) -> None:
    for seed, (args, kwargs, _) in enumerate(LINEAR_CONFIGS):
        with case(f"torch.manual_seed({seed}); Linear({_config(args, kwargs)})"):
            torch.manual_seed(seed)
            theirs = nn.Linear(*args, **kwargs)
            torch.manual_seed(seed)
            ours = ns.Linear(*args, **kwargs)
            assert_close(ours.state_dict(), theirs.state_dict(), what="initial parameters")
            torch.manual_seed(seed + 10)
            theirs.reset_parameters()
            torch.manual_seed(seed + 10)
            ours.reset_parameters()
            assert_close(ours.state_dict(), theirs.state_dict(), what="after reset_parameters()")


@check("Linear")
def linear_matches_torch(ns: Namespace) -> None:
    for seed, (args, kwargs, x_shape) in enumerate(LINEAR_CONFIGS):
        x = randn(*x_shape, seed=seed, dtype=kwargs.get("dtype", torch.float32))
        with case(f"Linear({_config(args, kwargs)}) on an input of shape {x_shape}", x=x):
            ours, theirs = _twin(ns.Linear, nn.Linear, *args, **kwargs)
            _load_both_ways(ours, theirs, seed)
            _forward_backward(ours, theirs, x, seed)


@check("Linear")
def linear_rejects_wrong_features(ns: Namespace) -> None:
    layer = ns.Linear(6, 4)
    for shape in ((3, 5), (6, 3), (2, 6, 1), ()):
        with case(f"Linear(6, 4) on an input of shape {shape}"):
            assert_raises(layer, torch.zeros(shape), exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# Conv2d


CONV_CONFIGS: list[tuple[tuple[Any, ...], dict[str, Any], tuple[int, ...]]] = [
    ((3, 4, 3), {"dtype": F64}, (2, 3, 7, 6)),
    (
        (4, 6, (3, 2)),
        {"stride": (2, 1), "padding": (1, 2), "bias": False, "dtype": F64},
        (2, 4, 7, 5),
    ),
    ((6, 4, 2), {"groups": 2, "dilation": (2, 1), "stride": 2, "dtype": F64}, (3, 6, 8, 7)),
    ((3, 6, 1), {"groups": 3, "padding": 1, "dtype": F64}, (1, 3, 4, 5)),
    ((2, 5, 3), {"stride": (1, 3), "padding": (2, 0), "dilation": 2}, (2, 2, 9, 10)),
]


@check("Conv2d")
def conv_has_torchs_layout(ns: Namespace) -> None:
    names = ["in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation"]
    names += ["groups", "padding_mode", "weight", "bias"]
    for args, kwargs, _ in CONV_CONFIGS:
        with case(f"Conv2d({_config(args, kwargs)})"):
            ours, theirs = _twin(ns.Conv2d, nn.Conv2d, *args, **kwargs)
            _same_layout(ours, theirs)
            _same_attributes(ours, theirs, names)


@check("Conv2d")
def conv_repr_lists_every_setting(ns: Namespace) -> None:
    with case("Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), groups=2, bias=False)"):
        layer = ns.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), groups=2, bias=False)
        want = (
            "Conv2d(4, 6, kernel_size=(3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 1), "
            "groups=2, bias=False)"
        )
        assert_equal(repr(layer), want, what="repr")


@check("Conv2d")
def conv_default_init_is_torchs(ns: Namespace) -> None:
    for seed, (args, kwargs, _) in enumerate(CONV_CONFIGS):
        with case(f"torch.manual_seed({seed}); Conv2d({_config(args, kwargs)})"):
            torch.manual_seed(seed)
            theirs = nn.Conv2d(*args, **kwargs)
            torch.manual_seed(seed)
            ours = ns.Conv2d(*args, **kwargs)
            assert_close(ours.state_dict(), theirs.state_dict(), what="initial parameters")


@check("Conv2d")
def conv_matches_torch(ns: Namespace) -> None:
    for seed, (args, kwargs, x_shape) in enumerate(CONV_CONFIGS):
        x = randn(*x_shape, seed=seed, dtype=kwargs.get("dtype", torch.float32))
        with case(f"Conv2d({_config(args, kwargs)}) on an input of shape {x_shape}", x=x):
            ours, theirs = _twin(ns.Conv2d, nn.Conv2d, *args, **kwargs)
            _load_both_ways(ours, theirs, seed)
            _forward_backward(ours, theirs, x, seed, rtol=1e-5, atol=1e-5)


@check("Conv2d")
def conv_rejects_bad_settings_and_inputs(ns: Namespace) -> None:
    for args, kwargs in (
        ((4, 6, 3), {"groups": 3}),
        ((6, 4, 3), {"groups": 3}),
        ((3, 4, 3), {"padding_mode": "reflect"}),
    ):
        with case(f"Conv2d({_config(args, kwargs)})"):
            assert_raises(ns.Conv2d, *args, **kwargs, exc=ValueError)
    layer = ns.Conv2d(3, 4, 3)
    for shape in ((2, 4, 6, 6), (3, 6, 6)):
        with case(f"Conv2d(3, 4, 3) on an input of shape {shape}"):
            assert_raises(layer, torch.zeros(shape), exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# BatchNorm2d


BN_ATTRIBUTES = ["num_features", "eps", "momentum", "affine", "track_running_stats"]
BN_ATTRIBUTES += ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
BN_CONFIGS: list[dict[str, Any]] = [
    {"dtype": F64},
    {"momentum": None, "dtype": F64},
    {"momentum": 0.5, "eps": 0.05, "dtype": F64},
    {"affine": False, "dtype": F64},
    {"bias": False, "momentum": None, "dtype": F64},
    {"track_running_stats": False, "dtype": F64},
    {"affine": False, "track_running_stats": False, "eps": 0.1, "dtype": F64},
    {},
]


def _bn_input(seed: int, shape: tuple[int, ...] = (3, 5, 4, 6), dtype: torch.dtype = F64) -> Tensor:
    """Channels (dim 1) with their own mean and spread, some small so that eps matters."""
    per_channel = (shape[1],) + (1,) * (len(shape) - 2)
    scale = torch.linspace(0.05, 2.0, shape[1], dtype=dtype).reshape(per_channel)
    shift = torch.linspace(-1.0, 3.0, shape[1], dtype=dtype).reshape(per_channel)
    return randn(*shape, seed=seed, dtype=dtype) * scale + shift


@check("BatchNorm2d")
def batchnorm_has_torchs_layout(ns: Namespace) -> None:
    for kwargs in BN_CONFIGS:
        with case(f"BatchNorm2d(5, {_config((), kwargs)})"):
            ours, theirs = _twin(ns.BatchNorm2d, nn.BatchNorm2d, 5, **kwargs)
            _same_layout(ours, theirs)
            _same_attributes(ours, theirs, BN_ATTRIBUTES)
            assert_close(ours.state_dict(), theirs.state_dict(), what="initial state dict")
            assert_equal(repr(ours), repr(theirs), what="repr")


@check("BatchNorm2d")
def batchnorm_training_matches_torch(ns: Namespace) -> None:
    for index, kwargs in enumerate(BN_CONFIGS):
        dtype = kwargs.get("dtype", torch.float32)
        with case(
            f"BatchNorm2d(5, {_config((), kwargs)}) in training mode, 3 steps on (3, 5, 4, 6) "
            "batches, starting from torch's randomised state (num_batches_tracked=3)"
        ):
            ours, theirs = _twin(ns.BatchNorm2d, nn.BatchNorm2d, 5, **kwargs)
            _load_both_ways(ours, theirs, index)
            for step in range(3):
                with case(f"step {step + 1}"):
                    x = _bn_input(10 * index + step, dtype=dtype)
                    _forward_backward(ours, theirs, x, step, rtol=1e-4, atol=1e-5)
                    assert_close(ours.state_dict(), theirs.state_dict(), what="state dict")


@check("BatchNorm2d")
def batchnorm_eval_uses_running_stats(ns: Namespace) -> None:
    for index, kwargs in enumerate(BN_CONFIGS):
        dtype = kwargs.get("dtype", torch.float32)
        with case(
            f"BatchNorm2d(5, {_config((), kwargs)}): 2 training steps, then .eval() on new "
            "batches (one of a single sample)"
        ):
            ours, theirs = _twin(ns.BatchNorm2d, nn.BatchNorm2d, 5, **kwargs)
            _load_both_ways(ours, theirs, index)
            for step in range(2):
                _forward_backward(ours, theirs, _bn_input(step, dtype=dtype), step, 1e-4, 1e-5)
            ours.eval()
            theirs.eval()
            for seed, shape in enumerate(((4, 5, 3, 2), (1, 5, 2, 3))):
                with case(f"evaluation mode, input of shape {shape}"):
                    x = _bn_input(seed + 7, shape, dtype)
                    _forward_backward(ours, theirs, x, seed, rtol=1e-4, atol=1e-5)
                    assert_close(ours.state_dict(), theirs.state_dict(), what="state dict")


@check("BatchNorm2d")
def batchnorm_rejects_bad_input(ns: Namespace) -> None:
    layer = ns.BatchNorm2d(5)
    for shape in ((3, 4, 4, 6), (3, 5, 4), (5, 4, 6, 2, 2)):
        with case(f"BatchNorm2d(5) on an input of shape {shape}"):
            assert_raises(layer, torch.zeros(shape), exc=ShapeError)
    with case("BatchNorm2d(5) in training mode on (1, 5, 1, 1): one value per channel"):
        assert_raises(layer, torch.zeros(1, 5, 1, 1), exc=ValueError)
    with case("BatchNorm2d(5) in training mode on (1, 5, 1, 2): two values per channel"):
        x = _bn_input(3, (1, 5, 1, 2))
        ours, theirs = _twin(ns.BatchNorm2d, nn.BatchNorm2d, 5, dtype=F64)
        _forward_backward(ours, theirs, x, 3, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# LayerNorm and GroupNorm


LN_CONFIGS: list[tuple[Any, dict[str, Any], tuple[int, ...]]] = [
    (6, {"dtype": F64}, (3, 4, 6)),
    ((4, 6), {"eps": 0.1, "dtype": F64}, (3, 4, 6)),
    ([2, 3, 4], {"dtype": F64}, (2, 3, 4)),
    (torch.Size([5]), {"elementwise_affine": False, "dtype": F64}, (2, 5)),
    (5, {"bias": False, "dtype": F64}, (3, 2, 5)),
    ((3, 5), {"elementwise_affine": False, "bias": True, "dtype": F64}, (3, 5)),
    (7, {}, (2, 7)),
]


@check("LayerNorm")
def layernorm_has_torchs_layout(ns: Namespace) -> None:
    for shape, kwargs, _ in LN_CONFIGS:
        with case(f"LayerNorm({_config((shape,), kwargs)})"):
            ours, theirs = _twin(ns.LayerNorm, nn.LayerNorm, shape, **kwargs)
            _same_layout(ours, theirs)
            _same_attributes(
                ours, theirs, ["normalized_shape", "eps", "elementwise_affine", "weight", "bias"]
            )
            assert_close(ours.state_dict(), theirs.state_dict(), what="initial state dict")
            assert_equal(repr(ours), repr(theirs), what="repr")


@check("LayerNorm")
def layernorm_matches_torch(ns: Namespace) -> None:
    for seed, (shape, kwargs, x_shape) in enumerate(LN_CONFIGS):
        x = _bn_input(seed, x_shape, kwargs.get("dtype", torch.float32))
        with case(f"LayerNorm({_config((shape,), kwargs)}) on an input of shape {x_shape}", x=x):
            ours, theirs = _twin(ns.LayerNorm, nn.LayerNorm, shape, **kwargs)
            _load_both_ways(ours, theirs, seed)
            for mode in (True, False):
                ours.train(mode)
                theirs.train(mode)
                _forward_backward(ours, theirs, x, seed, rtol=1e-4, atol=1e-5)


@check("LayerNorm")
def layernorm_rejects_wrong_shape(ns: Namespace) -> None:
    layer = ns.LayerNorm((4, 6))
    for shape in ((3, 6, 4), (3, 4, 5), (6,), (2, 4, 6, 1)):
        with case(f"LayerNorm((4, 6)) on an input of shape {shape}"):
            assert_raises(layer, torch.zeros(shape), exc=ShapeError)


GN_CONFIGS: list[tuple[tuple[int, int], dict[str, Any], tuple[int, ...]]] = [
    ((2, 6), {"dtype": F64}, (3, 6, 4, 5)),
    ((3, 6), {"eps": 0.1, "dtype": F64}, (2, 6, 5)),
    ((1, 4), {"dtype": F64}, (3, 4, 2, 3)),
    ((5, 5), {"affine": False, "dtype": F64}, (2, 5, 3, 4)),
    ((2, 4), {"bias": False, "dtype": F64}, (3, 4)),
    ((4, 8), {}, (2, 8, 3, 3)),
]


@check("GroupNorm")
def groupnorm_has_torchs_layout(ns: Namespace) -> None:
    for args, kwargs, _ in GN_CONFIGS:
        with case(f"GroupNorm({_config(args, kwargs)})"):
            ours, theirs = _twin(ns.GroupNorm, nn.GroupNorm, *args, **kwargs)
            _same_layout(ours, theirs)
            _same_attributes(
                ours, theirs, ["num_groups", "num_channels", "eps", "affine", "weight", "bias"]
            )
            assert_close(ours.state_dict(), theirs.state_dict(), what="initial state dict")
            assert_equal(repr(ours), repr(theirs), what="repr")


@check("GroupNorm")
def groupnorm_matches_torch(ns: Namespace) -> None:
    for seed, (args, kwargs, x_shape) in enumerate(GN_CONFIGS):
        x = _bn_input(seed, x_shape, kwargs.get("dtype", torch.float32))
        with case(f"GroupNorm({_config(args, kwargs)}) on an input of shape {x_shape}", x=x):
            ours, theirs = _twin(ns.GroupNorm, nn.GroupNorm, *args, **kwargs)
            _load_both_ways(ours, theirs, seed)
            for mode in (True, False):
                ours.train(mode)
                theirs.train(mode)
                _forward_backward(ours, theirs, x, seed, rtol=1e-4, atol=1e-5)


@check("GroupNorm")
def groupnorm_handles_non_contiguous_inputs(ns: Namespace) -> None:
    # a group is a run of consecutive channels only in the (batch, channels, ...) order: a
    # view or as_strided built from the shape reads the wrong elements of these layouts
    layouts = [
        ("channels_last", _bn_input(21, (2, 6, 4, 5)).to(memory_format=torch.channels_last)),
        ("transposed: (2, 6, 5, 4).transpose(2, 3)", _bn_input(22, (2, 6, 5, 4)).transpose(2, 3)),
    ]
    for layout, x in layouts:
        with case(f"GroupNorm(3, 6, dtype=torch.float64) on a {layout} (2, 6, 4, 5) input", x=x):
            ours, theirs = _twin(ns.GroupNorm, nn.GroupNorm, 3, 6, dtype=F64)
            _load_both_ways(ours, theirs, 21)
            _forward_backward(ours, theirs, x, 21, rtol=1e-4, atol=1e-5)


@check("GroupNorm")
def groupnorm_rejects_bad_settings_and_inputs(ns: Namespace) -> None:
    with case("GroupNorm(4, 6): 4 groups do not divide 6 channels"):
        assert_raises(ns.GroupNorm, 4, 6, exc=ValueError)
    layer = ns.GroupNorm(2, 6)
    for shape in ((3, 4, 5, 5), (6,), (2, 5)):
        with case(f"GroupNorm(2, 6) on an input of shape {shape}"):
            assert_raises(layer, torch.zeros(shape), exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# Flatten


@check("Flatten")
def flatten_matches_torch(ns: Namespace) -> None:
    x = randn(2, 3, 4, 5, seed=0)
    for start in range(-5, 5):
        for end in range(-5, 5):
            with case(f"Flatten(start_dim={start}, end_dim={end}) on shape (2, 3, 4, 5)", x=x):
                layer = ns.Flatten(start, end)
                try:
                    want = torch.flatten(x, start, end)
                except IndexError:
                    assert_raises(layer, x, exc=IndexError)
                    continue
                except RuntimeError:
                    assert_raises(layer, x, exc=ValueError)
                    continue
                assert_equal(layer(x), want)


@check("Flatten")
def flatten_defaults_and_edge_cases(ns: Namespace) -> None:
    layer = ns.Flatten()
    expect(
        (layer.start_dim, layer.end_dim) == (1, -1),
        f"Flatten() should have start_dim=1, end_dim=-1, got {layer.start_dim}, {layer.end_dim}",
    )
    assert_equal(repr(layer), repr(nn.Flatten()), what="repr")
    cases = [
        ("a non-contiguous (3, 4, 2) input", randn(2, 4, 3, seed=1).transpose(0, 2), ()),
        ("an input with a zero-size dim, (2, 0, 3)", torch.zeros(2, 0, 3), ()),
        ("a (4, 3) input, start_dim=0", randn(4, 3, seed=2), (0,)),
        ("a 1-D input of 5, start_dim=0", randn(5, seed=3), (0, -1)),
        ("a (2, 3, 0, 4) input, dims 2..3", torch.zeros(2, 3, 0, 4), (2, 3)),
        ("an empty batch, (0, 3, 4), default dims", torch.zeros(0, 3, 4), ()),
        ("a (2, 3, 0) input, dims 0..1 (the empty dim after them)", torch.zeros(2, 3, 0), (0, 1)),
        ("a 1-element (1, 1, 1) input", randn(1, 1, 1, seed=4), ()),
    ]
    for what, x, args in cases:
        with case(what, x=x):
            assert_equal(ns.Flatten(*args)(x), nn.Flatten(*args)(x))


# ----------------------------------------------------------------------------------------------
# Sequential


def _children(seed: int) -> list[nn.Module]:
    torch.manual_seed(seed)
    square = nn.Linear(4, 4, dtype=F64)
    return [
        nn.Linear(3, 4, dtype=F64),
        nn.Tanh(),
        square,
        nn.ReLU(),
        square,
        nn.Linear(4, 2, dtype=F64),
    ]


@check("Sequential")
def sequential_registers_children_like_torch(ns: Namespace) -> None:
    children = _children(0)
    with case(
        "Sequential(Linear(3, 4), Tanh(), Linear(4, 4), ReLU(), <the same Linear(4, 4)>, "
        "Linear(4, 2))"
    ):
        ours, theirs = ns.Sequential(*children), nn.Sequential(*children)
        _same_layout(ours, theirs)
        names = [name for name, _ in ours.named_children()]
        want = [name for name, _ in theirs.named_children()]
        expect(names == want, f"children are named {names} but torch's are {want}")
        assert_close(ours.state_dict(), theirs.state_dict(), what="state dict")
        assert_equal(len(ours), len(children), what="len()")
        ours.eval()
        expect(
            not any(m.training for m in children),
            ".eval() did not reach the children: register them as submodules",
        )


@check("Sequential")
def sequential_indexes_like_a_list(ns: Namespace) -> None:
    children = _children(1)
    seq = ns.Sequential(*children)
    n = len(children)
    for index in range(-n, n):
        with case(f"sequential[{index}] of {n} modules"):
            expect(seq[index] is children[index], f"seq[{index}] is not the module at {index}")
    for index in (n, n + 1, -n - 1):
        with case(f"sequential[{index}] of {n} modules"):
            assert_raises(lambda i=index: seq[i], exc=IndexError)
    with case("Sequential() with no modules"):
        assert_equal(len(ns.Sequential()), 0, what="len()")


@check("Sequential")
def sequential_forward_matches_torch(ns: Namespace) -> None:
    children = _children(2)
    x = randn(5, 3, seed=4, dtype=F64)
    with case("Sequential(Linear, Tanh, Linear, ReLU, <the same Linear>, Linear) on (5, 3)", x=x):
        twins = copy.deepcopy(children)  # keeps the shared Linear shared
        _forward_backward(ns.Sequential(*children), nn.Sequential(*twins), x, 0)
    with case("Sequential() with no modules returns its input", x=x):
        assert_equal(ns.Sequential()(x), x)
