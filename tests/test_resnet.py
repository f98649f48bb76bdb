"""ResNet18/34 against transformers' ResNet (random init, weights mapped in), loading a
torchvision-format state dict, and a small ResNet learning on Fashion-MNIST."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import ResNetConfig, ResNetForImageClassification, ResNetModel

from conftest import Splits
from mlab.data import normalise_images
from mlab.errors import DataError, StateDictError
from mlab.models.resnet import (
    ResNet,
    hf_resnet_key,
    load_checked_state_dict,
    load_hf_resnet_state_dict,
    resnet18,
    resnet34,
    resnet_from_hf_config,
)
from mlab.testing import assert_close, generator, randn

f64 = torch.float64
DEPTHS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}


def _hf_config(name: str, num_labels: int = 10) -> ResNetConfig:
    return ResNetConfig(
        layer_type="basic",
        depths=DEPTHS[name],
        hidden_sizes=[64, 128, 256, 512],
        embedding_size=64,
        num_labels=num_labels,  # type: ignore[call-arg]
    )


def _randomise_batchnorm(model: nn.Module, seed: int) -> None:
    """Fresh BatchNorms are the identity in eval mode: give them random statistics and affine
    parameters, so a BatchNorm in the wrong place changes the output."""
    g = generator(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.weight.copy_(torch.rand(m.weight.shape, generator=g, dtype=f64) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=f64) * 0.5)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g, dtype=f64))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g, dtype=f64) + 0.5)


def _compare_grads(ours: nn.Module, hf: nn.Module, prefix: str = "") -> None:
    ours_params = dict(ours.named_parameters())
    for name, p in hf.named_parameters():
        key = hf_resnet_key(prefix + name)
        assert_close(ours_params[key].grad, p.grad, what=f"grad of {key}", rtol=1e-7, atol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_logits_and_gradients_match_hf(name: str, train: bool) -> None:
    torch.manual_seed(0)
    hf = ResNetForImageClassification(_hf_config(name)).double()
    _randomise_batchnorm(hf, seed=1)
    ours = (resnet18 if name == "resnet18" else resnet34)(num_classes=10).double()
    load_hf_resnet_state_dict(ours, hf.state_dict())
    hf.train(train)
    ours.train(train)

    x = randn(2, 3, 64, 64, seed=2, dtype=f64)
    x_ours, x_hf = x.clone().requires_grad_(), x.clone().requires_grad_()
    logits, ref = ours(x_ours), hf(x_hf).logits
    assert_close(logits, ref, rtol=1e-9, atol=1e-10, what="logits")
    weights = randn(*ref.shape, seed=3, dtype=f64)
    (logits * weights).sum().backward()
    (ref * weights).sum().backward()
    assert_close(x_ours.grad, x_hf.grad, rtol=1e-7, atol=1e-10, what="grad of the input")
    _compare_grads(ours, hf)
    ours_buffers = dict(ours.named_buffers())
    for key, b in hf.named_buffers():  # running statistics after a train-mode forward
        assert_close(ours_buffers[hf_resnet_key(key)], b, what=hf_resnet_key(key))


@pytest.mark.slow
def test_pooled_features_match_hf_resnet_model() -> None:
    """ResNetModel (no classifier): its pooled features are what our fc reads."""
    torch.manual_seed(0)
    hf = ResNetModel(_hf_config("resnet18")).double().train()
    _randomise_batchnorm(hf, seed=4)
    ours = resnet18().double().train()
    state = {hf_resnet_key(k): v for k, v in hf.state_dict().items()}
    load_checked_state_dict(ours, {**state, "fc.weight": ours.fc.weight, "fc.bias": ours.fc.bias})
    features: list[Tensor] = []
    ours.fc.register_forward_hook(lambda _m, inputs, _out: features.append(inputs[0]))

    x = randn(2, 3, 64, 64, seed=5, dtype=f64)
    x_ours, x_hf = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours(x_ours)
    ref = hf(x_hf).pooler_output.flatten(1)  # (2, 512, 1, 1) -> (2, 512)
    assert_close(features[0], ref, rtol=1e-9, atol=1e-10, what="pooled features")
    weights = randn(*ref.shape, seed=6, dtype=f64)
    (features[0] * weights).sum().backward()  # type: ignore[no-untyped-call]
    (ref * weights).sum().backward()
    assert_close(x_ours.grad, x_hf.grad, rtol=1e-7, atol=1e-10, what="grad of the input")
    _compare_grads(ours, hf)


def test_resnet_from_hf_config_rejects_bottlenecks() -> None:
    with pytest.raises(ValueError, match="basic blocks"):
        resnet_from_hf_config(ResNetConfig(layer_type="bottleneck"))
    assert isinstance(resnet_from_hf_config(_hf_config("resnet34")), ResNet)


# ----------------------------------------------------------------------------------------------
# torchvision's format

# torchvision.models.resnet18().state_dict(): its names and shapes, written out as published.
# Per block: conv1, bn1, conv2, bn2 (and downsample.0 / downsample.1 in layer2-4's block 0).
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.{leaf}": () if leaf == "num_batches_tracked" else (channels,) for leaf in _BN
    }


def torchvision_resnet18_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    # (layer, in_channels, out_channels)
    for layer, cin, cout in [(1, 64, 64), (2, 64, 128), (3, 128, 256), (4, 256, 512)]:
        for block in (0, 1):
            p = f"layer{layer}.{block}"
            block_in = cin if block == 0 else cout
            shapes[f"{p}.conv1.weight"] = (cout, block_in, 3, 3)
            shapes.update(_bn(f"{p}.bn1", cout))
            shapes[f"{p}.conv2.weight"] = (cout, cout, 3, 3)
            shapes.update(_bn(f"{p}.bn2", cout))
            if block == 0 and layer > 1:
                shapes[f"{p}.downsample.0.weight"] = (cout, cin, 1, 1)
                shapes.update(_bn(f"{p}.downsample.1", cout))
    shapes["fc.weight"] = (1000, 512)
    shapes["fc.bias"] = (1000,)
    return shapes


def _torchvision_state(seed: int) -> dict[str, Tensor]:
    g = generator(seed)
    return {
        k: torch.randint(0, 5, s, generator=g)
        if k.endswith("num_batches_tracked")
        else torch.randn(s, generator=g)
        for k, s in torchvision_resnet18_shapes().items()
    }


def test_torchvision_resnet18_state_dict_loads_strictly() -> None:
    shapes = torchvision_resnet18_shapes()
    assert len(shapes) == 122  # 62 parameters + 20 BatchNorms x 3 buffers
    assert "layer2.0.downsample.0.weight" in shapes and "layer1.0.downsample.0.weight" not in shapes
    model = resnet18()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes
    state = _torchvision_state(0)
    load_checked_state_dict(model, state)
    assert_close(model.state_dict(), state, check_dtype=False, what="loaded state")
    # and torch's own strict loader agrees with ours
    model.load_state_dict(state, strict=True)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: s.pop("fc.bias"), ["missing", "fc.bias"]),
        (
            lambda s: s.update({"layer1.0.downsample.0.weight": torch.ones(64, 64, 1, 1)}),
            ["unexpected", "layer1.0.downsample.0.weight"],
        ),
        (
            lambda s: s.update({"layer2.0.conv1.weight": torch.ones(128, 64, 1, 1)}),
            ["layer2.0.conv1.weight", "(128, 64, 1, 1)", "(128, 64, 3, 3)"],
        ),
    ],
    ids=["missing", "unexpected", "mismatched"],
)
def test_bad_torchvision_state_dict_names_the_keys(change: object, words: list[str]) -> None:
    state = _torchvision_state(1)
    change(state)  # type: ignore[operator]
    model = resnet18()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(StateDictError) as info:
        load_checked_state_dict(model, state)
    for word in words:
        assert word in str(info.value)
    assert_close(model.state_dict(), before, what="model after a failed load")


def test_unknown_hf_name_raises() -> None:
    with pytest.raises(DataError, match=r"layer\.2"):
        hf_resnet_key("resnet.encoder.stages.0.layers.0.layer.2.convolution.weight")


# ----------------------------------------------------------------------------------------------
# It learns


@pytest.mark.slow
def test_small_resnet_loss_falls_on_fashion_mnist(fashion_mnist: Splits) -> None:
    data = fashion_mnist.train
    x = normalise_images(data.images[:512], 0.2860, 0.3530)[:, None]  # (512, 1, 28, 28)
    y = data.labels[:512]
    torch.manual_seed(0)
    model = ResNet(
        (1, 1),
        (8, 16),
        in_channels=1,
        num_classes=10,
        stem_channels=8,
        stem_kernel=3,
        stem_stride=2,
        stem_pool=False,
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):  # epochs of 8 batches of 64
        for idx in torch.split(torch.randperm(512, generator=generator(0)), 64):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            losses.append(loss.item())
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.6 * first, f"loss {first:.3f} -> {last:.3f}: the ResNet is not learning"
