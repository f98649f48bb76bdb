"""Checks for part 4 of w1d3: the ResNet, against transformers' ResNet (``ResNetBasicLayer``,
``ResNetStage``, ``ResNetForImageClassification``, ``ResNetModel``; random init, BatchNorm
statistics and affine parameters randomised), with HF's weights copied in through the name
table. Forward outputs, the gradients of a non-uniform loss with respect to the input and
every parameter, and BatchNorm's running statistics, in eval and train mode, in float64.
The strict loader is compared with ``torch.nn.Module.load_state_dict(strict=True)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from transformers import ResNetConfig
from transformers.models.resnet.modeling_resnet import (
    ResNetBasicLayer,
    ResNetConvLayer,
    ResNetForImageClassification,
    ResNetModel,
    ResNetStage,
)

from mlab.course.engine.checks import Namespace, check
from mlab.errors import DataError, MismatchError, StateDictError
from mlab.models.resnet import hf_resnet_key, load_checked_state_dict
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_raises,
    case,
    expect,
    generator,
    randn,
)

f64 = torch.float64
KeyMap = Callable[[str], str]


def _randomise(module: nn.Module, seed: int) -> nn.Module:
    """Random BatchNorm affine parameters and running statistics (fresh ones are the identity
    map: a BatchNorm applied to the wrong tensor would go unnoticed), in float64."""
    g = generator(seed)
    module.double()
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.weight.copy_(torch.rand(m.weight.shape, generator=g, dtype=f64) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=f64))
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g, dtype=f64))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g, dtype=f64) + 0.5)
    return module


def _config(**kwargs: Any) -> ResNetConfig:
    return ResNetConfig(layer_type="basic", **kwargs)


def _block_key(prefix: str, ours_prefix: str) -> KeyMap:
    """A name map for a piece of the network: HF's name relative to ``prefix`` -> ours
    relative to ``ours_prefix``, through the reference table."""

    def key(name: str) -> str:
        return hf_resnet_key(prefix + name).removeprefix(ours_prefix)

    return key


def _load(ours: nn.Module, hf: nn.Module, key: KeyMap, what: str) -> None:
    expected = sorted(key(k) for k in hf.state_dict())
    got = sorted(ours.state_dict())
    # lists of names that differ: the message names only the missing and unexpected ones
    assert_equal(got, expected, what=f"{what}: parameter and buffer names (torchvision's)")
    try:
        load_checked_state_dict(ours, {key(k): v for k, v in hf.state_dict().items()})
    except StateDictError as err:
        raise MismatchError(f"{what}: HF's weights do not fit: {err}") from None


def _matches_hf(
    ours: nn.Module,
    hf: nn.Module,
    x: Tensor,
    key: KeyMap,
    hf_forward: Callable[[nn.Module, Tensor], Tensor],
    what: str,
) -> None:
    """Load HF's weights into ``ours``, then compare outputs, gradients and running
    statistics in eval mode, then in train mode."""
    ours.double()
    _load(ours, hf, key, what)
    ours_params = dict(ours.named_parameters())
    ours_buffers = dict(ours.named_buffers())
    for train in (False, True):
        mode = "train" if train else "eval"
        ours.train(train)
        hf.train(train)
        xo, xh = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, ref = ours(xo), hf_forward(hf, xh)
        assert_close(out, ref, what=f"{what} output in {mode} mode")
        weights = randn(*ref.shape, seed=99, dtype=f64)
        (out * weights).sum().backward()
        (ref * weights).sum().backward()  # type: ignore[no-untyped-call]
        assert_close(xo.grad, xh.grad, what=f"gradient of the input in {mode} mode")
        for name, p in hf.named_parameters():
            assert_close(
                ours_params[key(name)].grad, p.grad, what=f"gradient of {key(name)} ({mode})"
            )
        for name, b in hf.named_buffers():
            assert_close(ours_buffers[key(name)], b, what=f"{key(name)} after a {mode} forward")
        ours.zero_grad()
        hf.zero_grad()


# ----------------------------------------------------------------------------------------------
# needs_downsample


@check("needs_downsample")
def downsample_decision_matches_hf(ns: Namespace) -> None:
    cases = [(8, 8, 1), (8, 16, 1), (8, 8, 2), (8, 16, 2), (16, 8, 1), (4, 4, 3), (1, 1, 1)]
    cases += [(3, 3, 1), (64, 64, 1), (64, 128, 2)]
    for in_channels, out_channels, stride in cases:
        hf = ResNetBasicLayer(in_channels, out_channels, stride)
        want = not isinstance(hf.shortcut, nn.Identity)
        with case(f"in_channels={in_channels}, out_channels={out_channels}, stride={stride}"):
            got = ns.needs_downsample(in_channels, out_channels, stride)
            expect(
                got is want,
                f"expected {want} (transformers' ResNetBasicLayer uses "
                f"{type(hf.shortcut).__name__} there), got {got!r}",
            )


# ----------------------------------------------------------------------------------------------
# BasicBlock


def _hf_block_forward(hf: nn.Module, x: Tensor) -> Tensor:
    out: Tensor = hf(x)
    return out


@check("BasicBlock")
def basic_block_matches_hf(ns: Namespace) -> None:
    key = _block_key("encoder.stages.0.layers.0.", "layer1.0.")
    cases = [
        ("identity shortcut: 8 -> 8 channels, stride 1, 6x6", 8, 8, 1, (2, 8, 6, 6)),
        ("projection: 8 -> 16 channels, stride 2, odd 7x7 input", 8, 16, 2, (2, 8, 7, 7)),
        ("projection for channels only: 4 -> 8, stride 1", 4, 8, 1, (3, 4, 5, 6)),
        ("projection for stride only: 6 -> 6, stride 2, 8x5", 6, 6, 2, (2, 6, 8, 5)),
    ]
    for i, (name, cin, cout, stride, shape) in enumerate(cases):
        torch.manual_seed(i)
        hf = _randomise(ResNetBasicLayer(cin, cout, stride), seed=10 + i)
        x = randn(*shape, seed=20 + i, dtype=f64)
        with case(name, x=x):
            block = ns.BasicBlock(cin, cout, stride)
            expect(
                isinstance(block, nn.Module),
                f"BasicBlock should be a torch.nn.Module, got {type(block)}",
            )
            _matches_hf(block, hf, x, key, _hf_block_forward, "BasicBlock")


@check("BasicBlock")
def basic_block_default_stride_is_one(ns: Namespace) -> None:
    torch.manual_seed(5)
    hf = _randomise(ResNetBasicLayer(4, 4), seed=5)
    x = randn(2, 4, 5, 5, seed=6, dtype=f64)
    with case("BasicBlock(4, 4) with the default stride", x=x):
        block = ns.BasicBlock(4, 4)
        key = _block_key("encoder.stages.0.layers.0.", "layer1.0.")
        _matches_hf(block, hf, x, key, _hf_block_forward, "BasicBlock")


# ----------------------------------------------------------------------------------------------
# make_stage


@check("make_stage")
def stage_matches_hf(ns: Namespace) -> None:
    key = _block_key("encoder.stages.0.", "layer1.")
    cases = [
        ("3 blocks, 4 -> 8 channels, stride 2, 7x7", 4, 8, 3, 2, (2, 4, 7, 7)),
        ("1 block, 8 -> 8 channels, stride 1", 8, 8, 1, 1, (2, 8, 5, 5)),
        ("2 blocks, 8 -> 4 channels, stride 1", 8, 4, 2, 1, (2, 8, 4, 6)),
    ]
    for i, (name, cin, cout, depth, stride, shape) in enumerate(cases):
        torch.manual_seed(i)
        hf = _randomise(ResNetStage(_config(), cin, cout, stride=stride, depth=depth), seed=30 + i)
        x = randn(*shape, seed=40 + i, dtype=f64)
        with case(name, x=x):
            stage = ns.make_stage(cin, cout, depth, stride)
            _matches_hf(stage, hf, x, key, _hf_block_forward, "make_stage's result")


@check("make_stage")
def stage_default_stride_and_bad_depth(ns: Namespace) -> None:
    torch.manual_seed(3)
    hf = _randomise(ResNetStage(_config(), 4, 4, stride=1, depth=2), seed=3)
    x = randn(1, 4, 5, 5, seed=4, dtype=f64)
    with case("make_stage(4, 4, 2) with the default stride", x=x):
        stage = ns.make_stage(4, 4, 2)
        key = _block_key("encoder.stages.0.", "layer1.")
        _matches_hf(stage, hf, x, key, _hf_block_forward, "make_stage's result")
    for depth in (0, -1):
        with case(f"depth={depth}"):
            assert_raises(ns.make_stage, 4, 8, depth, 2, exc=ValueError)


# ----------------------------------------------------------------------------------------------
# ResNet


def _hf_logits(hf: nn.Module, x: Tensor) -> Tensor:
    out: Tensor = hf(x).logits
    return out


def _resnet_cases() -> list[tuple[str, dict[str, Any], dict[str, Any], tuple[int, ...]]]:
    """(description, HF config, our extra keyword arguments, input shape)."""
    return [
        (
            "ResNet18-shaped, widths 8-16-32-64, 32x32 RGB",
            dict(depths=[2, 2, 2, 2], hidden_sizes=[8, 16, 32, 64], embedding_size=8),
            {},
            (2, 3, 32, 32),
        ),
        (
            "depths 1-2-1, widths 6-12-8, stem 4 channels, 1 input channel, 29x27",
            dict(
                depths=[1, 2, 1],
                hidden_sizes=[6, 12, 8],
                embedding_size=4,
                num_channels=1,
                num_labels=7,
            ),
            {},
            (2, 1, 29, 27),
        ),
        (
            "one stage, depth 3, no max pool, 3x3 stride-1 stem, 12x12",
            dict(depths=[3], hidden_sizes=[8], embedding_size=8, num_channels=2, num_labels=3),
            dict(stem_kernel=3, stem_stride=1, stem_pool=False),
            (2, 2, 12, 12),
        ),
    ]


def _hf_resnet(config: ResNetConfig, ours_kwargs: dict[str, Any], seed: int) -> nn.Module:
    torch.manual_seed(seed)
    hf = ResNetForImageClassification(config)
    if "stem_kernel" in ours_kwargs:  # HF's building blocks, assembled with another stem
        embed = hf.resnet.embedder
        embed.embedder = ResNetConvLayer(
            config.num_channels,
            config.embedding_size,
            kernel_size=ours_kwargs["stem_kernel"],
            stride=ours_kwargs["stem_stride"],
        )
        embed.pooler = nn.Identity()  # type: ignore[assignment]
    return _randomise(hf, seed)


@check("ResNet")
def resnet_matches_hf(ns: Namespace) -> None:
    for i, (name, cfg, kwargs, shape) in enumerate(_resnet_cases()):
        config = _config(**cfg)
        hf = _hf_resnet(config, kwargs, seed=50 + i)
        x = randn(*shape, seed=60 + i, dtype=f64)
        with case(name, x=x, **cfg, **kwargs):
            model = ns.ResNet(
                config.depths,
                config.hidden_sizes,
                config.num_channels,
                config.num_labels,
                stem_channels=config.embedding_size,
                **kwargs,
            )
            _matches_hf(model, hf, x, hf_resnet_key, _hf_logits, "ResNet")


@check("ResNet")
def resnet_without_max_pool_matches_hf(ns: Namespace) -> None:
    config = _config(depths=[1, 1], hidden_sizes=[4, 8], embedding_size=4, num_labels=5)
    torch.manual_seed(7)
    hf = ResNetForImageClassification(config)
    hf.resnet.embedder.pooler = nn.Identity()  # type: ignore[assignment]
    _randomise(hf, seed=7)
    x = randn(2, 3, 16, 16, seed=8, dtype=f64)
    with case("stem_pool=False (HF's stem without its pooler), 16x16", x=x):
        model = ns.ResNet([1, 1], [4, 8], 3, 5, stem_channels=4, stem_pool=False)
        _matches_hf(model, hf, x, hf_resnet_key, _hf_logits, "ResNet")


@check("ResNet")
def resnet_defaults_are_resnet18(ns: Namespace) -> None:
    hf = ResNetForImageClassification(
        _config(depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512], num_labels=1000)
    )
    with case("ResNet() with every default"):
        model = ns.ResNet()
        names = {hf_resnet_key(k): tuple(v.shape) for k, v in hf.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        diff = sorted(set(got.items()) ^ set(names.items()))
        expect(
            got == names,
            "ResNet() should be ResNet18 for 3-channel images and 1000 classes; its "
            f"parameters differ from HF's ResNet18 in {diff}",
        )


@check("ResNet")
def resnet_rejects_bad_stage_lists(ns: Namespace) -> None:
    bad = [
        ("depths and widths of different lengths", [2, 2], [8]),
        ("widths longer than depths", [2], [8, 16]),
        ("no stages", [], []),
        ("a stage of depth 0", [2, 0], [8, 16]),
    ]
    for name, depths, widths in bad:
        with case(name, depths=depths, widths=widths):
            assert_raises(ns.ResNet, depths, widths, exc=ValueError)


# ----------------------------------------------------------------------------------------------
# hf_resnet_key


def _mapped_model(ns: Namespace, config: Any) -> tuple[nn.Module, nn.Module]:
    """HF's model and a reference ResNet loaded through the learner's name map."""
    from mlab.models.resnet import ResNet

    torch.manual_seed(0)
    hf = _randomise(ResNetForImageClassification(config), seed=1)
    ours = ResNet(
        config.depths,
        config.hidden_sizes,
        config.num_channels,
        config.num_labels,
        stem_channels=config.embedding_size,
    ).double()
    state = {}
    for name, value in hf.state_dict().items():
        new = ns.hf_resnet_key(name)
        expect(new not in state, f"two HF names map to {new!r}; the last was {name!r}")
        state[new] = value
    try:
        load_checked_state_dict(ours, state)
    except StateDictError as err:
        raise MismatchError(f"the renamed HF state dict does not fit the ResNet: {err}") from None
    return hf, ours


@check("hf_resnet_key")
def renamed_weights_reproduce_hf(ns: Namespace) -> None:
    cfg = dict(depths=[2, 1, 3], hidden_sizes=[8, 6, 12], embedding_size=4, num_labels=5)
    config = _config(**cfg)
    with case("ResNetForImageClassification, depths 2-1-3, widths 8-6-12, stem 4", **cfg):
        hf, ours = _mapped_model(ns, config)
        x = randn(2, 3, 24, 24, seed=2, dtype=f64)
        for train in (False, True):
            hf.train(train)
            ours.train(train)
            assert_close(ours(x), _hf_logits(hf, x), what=f"logits (train={train})")


@check("hf_resnet_key")
def resnet_model_names_have_no_prefix(ns: Namespace) -> None:
    config = _config(depths=[1, 2], hidden_sizes=[4, 8], embedding_size=4)
    base = ResNetModel(config)
    with case("the names of a ResNetModel (no 'resnet.' prefix, no classifier)"):
        for name in base.state_dict():
            want = ns.hf_resnet_key("resnet." + name)
            got = ns.hf_resnet_key(name)
            expect(
                got == want, f"{name!r} should map like 'resnet.{name}' to {want!r}, got {got!r}"
            )


@check("hf_resnet_key")
def unknown_names_raise(ns: Namespace) -> None:
    bad = [
        "resnet.encoder.stages.0.layers.0.layer.2.convolution.weight",  # bottleneck
        "resnet.encoder.stages.0.layers.0.shortcut.weight",
        "resnet.encoder.stages.x.layers.0.layer.0.convolution.weight",
        "classifier.0.weight",
        "resnet.pooler.weight",
        "weight",
    ]
    for name in bad:
        with case(f"name={name!r}"):
            assert_raises(ns.hf_resnet_key, name, exc=DataError)


# ----------------------------------------------------------------------------------------------
# load_checked_state_dict


def _small_torch_model(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Linear(4, 5)).to(dtype)


def _state_of(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@check("load_checked_state_dict")
def loads_like_torch(ns: Namespace) -> None:
    source = _small_torch_model()
    g = generator(0)
    with torch.no_grad():
        for t in source.state_dict().values():
            t.copy_(torch.randint(-9, 9, t.shape, generator=g))
    for dtype in (torch.float32, f64):
        ours, theirs = _small_torch_model(dtype), _small_torch_model(dtype)
        with torch.no_grad():  # different from source everywhere
            for t in [*ours.state_dict().values(), *theirs.state_dict().values()]:
                t.fill_(100)
        params_before = list(ours.parameters())
        theirs.load_state_dict(source.state_dict(), strict=True)
        with case(f"a valid state dict into a {dtype} Conv2d-BatchNorm2d-Linear model"):
            ns.load_checked_state_dict(ours, source.state_dict())
            assert_close(ours.state_dict(), theirs.state_dict(), what="state after loading")
            expect(
                all(a is b for a, b in zip(params_before, ours.parameters(), strict=True)),
                "the parameters should be updated in place, not replaced by new tensors",
            )
            expect(
                all(p.requires_grad for p in ours.parameters()),
                "the parameters should still require gradients after loading",
            )


@check("load_checked_state_dict")
def bad_state_dicts_raise_naming_keys(ns: Namespace) -> None:
    # values unlike the model's own, so a key copied before the error is seen
    good = {k: v + 1 for k, v in _state_of(_small_torch_model()).items()}
    missing = {k: v for k, v in good.items() if k != "1.running_var"}
    extra = {**good, "2.scale": torch.ones(5)}
    wrong = {**good, "0.weight": torch.ones(3, 2, 2, 3)}
    everything = {**missing, "2.scale": torch.ones(5), "0.weight": torch.ones(3, 2, 2, 3)}
    cases = [
        ("missing 1.running_var", missing, ["1.running_var"]),
        ("unexpected 2.scale", extra, ["2.scale"]),
        (
            "0.weight of shape (3, 2, 2, 3) instead of (3, 2, 3, 3)",
            wrong,
            ["0.weight", "(3, 2, 2, 3)", "(3, 2, 3, 3)"],
        ),
        ("all three problems at once", everything, ["1.running_var", "2.scale", "0.weight"]),
    ]
    for name, state, words in cases:
        model = _small_torch_model()
        before = _state_of(model)
        with case(name):
            err = assert_raises(ns.load_checked_state_dict, model, state, exc=StateDictError)
            for word in words:
                expect(word in str(err), f"the message should name {word!r}, got: {err}")
            assert_close(
                model.state_dict(),
                before,
                what="the model after a failed load (nothing may change)",
            )
