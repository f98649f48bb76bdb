"""ResNet with basic blocks (ResNet18, ResNet34 and small variants) from mlab's own layers.

He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition" (2015),
https://arxiv.org/abs/1512.03385: each block learns a *residual* ``F(x)`` added to its input,
``relu(F(x) + shortcut(x))``, so a deep stack starts out close to the identity and gradients
reach early layers through the additions undamped.

The file reads bottom-up: the shortcut decision, the basic block, a stage of blocks, the
network, then the weight loaders. Parameter and buffer names are torchvision's
(``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``), so a
torchvision-format state dict loads with one loop and a shape check per key; transformers'
``ResNetModel`` / ``ResNetForImageClassification`` names go through one explicit table,
:func:`hf_resnet_key`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from jaxtyping import Float
from torch import Tensor
from torch.nn import Module

from mlab.errors import DataError, StateDictError
from mlab.nn.layers import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Conv2d,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
)

__all__ = [
    "HF_BLOCK_PARTS",
    "HF_STEM_AND_HEAD",
    "BasicBlock",
    "ResNet",
    "hf_resnet_key",
    "load_checked_state_dict",
    "load_hf_resnet_state_dict",
    "make_stage",
    "needs_downsample",
    "resnet18",
    "resnet34",
    "resnet_from_hf_config",
]


def needs_downsample(in_channels: int, out_channels: int, stride: int) -> bool:
    """Whether a block's shortcut needs a projection (a 1x1 convolution + BatchNorm) rather
    than the identity.

    The shortcut's output is added to the residual branch's ``(batch, out_channels, H', W')``
    output, so the identity works only when the block keeps both the channel count and the
    spatial size: ``in_channels == out_channels`` and ``stride == 1``.

    >>> needs_downsample(64, 64, 1), needs_downsample(64, 128, 2), needs_downsample(64, 64, 2)
    (False, True, True)
    """
    return stride != 1 or in_channels != out_channels


class BasicBlock(Module):
    """The basic residual block of ResNet18/34: ``relu(bn2(conv2(relu(bn1(conv1(x))))) +
    shortcut(x))``.

    Build, with exactly these attribute names (torchvision's, so checkpoints load):

    - ``conv1``: 3x3 ``Conv2d(in_channels, out_channels)``, stride ``stride``, padding 1, no
      bias (the BatchNorm after it has its own shift); ``bn1``: ``BatchNorm2d(out_channels)``;
    - ``relu``: ``ReLU()``;
    - ``conv2``: 3x3 ``Conv2d(out_channels, out_channels)``, stride 1, padding 1, no bias;
      ``bn2``: ``BatchNorm2d(out_channels)``;
    - ``downsample``: ``None`` (the shortcut is the identity) unless ``needs_downsample``
      says otherwise; then ``Sequential(Conv2d(in_channels, out_channels, 1, stride=stride,
      bias=False), BatchNorm2d(out_channels))``.

    ``forward`` maps ``(batch, in_channels, H, W)`` to ``(batch, out_channels, H', W')`` with
    ``H' = (H - 1) // stride + 1`` (both branches give that size). Note where the ReLUs are:
    one after ``bn1``, one after the addition, none between ``bn2`` and the addition.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(out_channels)
        self.relu = ReLU()
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        self.downsample = (
            Sequential(
                Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                BatchNorm2d(out_channels),
            )
            if needs_downsample(in_channels, out_channels, stride)
            else None
        )

    def forward(
        self, x: Float[Tensor, "batch in_channels height width"]
    ) -> Float[Tensor, "batch out_channels out_height out_width"]:
        """The block's output: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: Tensor = self.relu(out + identity)
        return result


def make_stage(in_channels: int, out_channels: int, depth: int, stride: int = 1) -> Sequential:
    """A stage of ``depth`` basic blocks as a ``Sequential`` (so its blocks are named ``0``,
    ``1``, ...): the first block goes from ``in_channels`` to ``out_channels`` with stride
    ``stride`` (it alone changes the shape), the others keep ``out_channels`` and stride 1.

    Maps ``(batch, in_channels, H, W)`` to ``(batch, out_channels, (H - 1) // stride + 1,
    (W - 1) // stride + 1)``. Raise ``ValueError`` when ``depth < 1``.

    >>> [type(b).__name__ for b in make_stage(8, 16, 3, stride=2)]
    ['BasicBlock', 'BasicBlock', 'BasicBlock']
    """
    if depth < 1:
        raise ValueError(f"depth={depth}: a stage needs at least one block")
    blocks = [BasicBlock(in_channels, out_channels, stride)]
    blocks += [BasicBlock(out_channels, out_channels) for _ in range(depth - 1)]
    return Sequential(*blocks)


class ResNet(Module):
    """A ResNet with basic blocks: a stem, one stage per entry of ``depths``, global average
    pooling and a linear classifier. ``ResNet()`` is ResNet18; ``depths=(3, 4, 6, 3)`` gives
    ResNet34.

    Build, with torchvision's attribute names:

    - the stem: ``conv1``, a ``stem_kernel`` x ``stem_kernel`` ``Conv2d(in_channels,
      stem_channels)`` with stride ``stem_stride``, padding ``stem_kernel // 2``, no bias;
      ``bn1 = BatchNorm2d(stem_channels)``; ``relu = ReLU()``; and ``maxpool``, a
      ``MaxPool2d(3, stride=2, padding=1)`` when ``stem_pool`` is true, else ``None``.
      ImageNet's stem (7x7 stride 2 + max pool) takes 224x224 to 56x56; on 28x28 images a 3x3
      stride-1 stem without pooling keeps the detail.
    - stages ``layer1``, ``layer2``, ... (``make_stage``): stage ``i`` has ``depths[i]``
      blocks and ``widths[i]`` output channels, taking the previous stage's width (the stem's
      for the first); the first stage has stride 1, every later one stride 2. Register each
      with ``self.add_module(f"layer{i + 1}", stage)`` and keep them, in order, in the list
      ``self.stages`` for ``forward``.
    - ``avgpool = AdaptiveAvgPool2d((1, 1))``, then ``fc = Linear(widths[-1], num_classes)``.

    ``forward`` maps ``(batch, in_channels, H, W)`` to logits ``(batch, num_classes)``:
    stem, stages in order, average pool, flatten to ``(batch, widths[-1])``, ``fc``.

    Raise ``ValueError`` unless ``depths`` and ``widths`` are non-empty and of equal length
    (``make_stage`` rejects a depth below 1).
    """

    def __init__(
        self,
        depths: Sequence[int] = (2, 2, 2, 2),
        widths: Sequence[int] = (64, 128, 256, 512),
        in_channels: int = 3,
        num_classes: int = 1000,
        *,
        stem_channels: int = 64,
        stem_kernel: int = 7,
        stem_stride: int = 2,
        stem_pool: bool = True,
    ) -> None:
        super().__init__()
        if not depths or len(depths) != len(widths):
            raise ValueError(
                f"depths={tuple(depths)} and widths={tuple(widths)} should be non-empty and "
                "of equal length: one entry per stage"
            )
        self.conv1 = Conv2d(
            in_channels,
            stem_channels,
            stem_kernel,
            stride=stem_stride,
            padding=stem_kernel // 2,
            bias=False,
        )
        self.bn1 = BatchNorm2d(stem_channels)
        self.relu = ReLU()
        self.maxpool = MaxPool2d(3, stride=2, padding=1) if stem_pool else None
        self.stages: list[Sequential] = []
        channels = stem_channels
        for i, width in enumerate(widths):
            stage = make_stage(channels, width, depths[i], stride=1 if i == 0 else 2)
            self.add_module(f"layer{i + 1}", stage)
            self.stages.append(stage)
            channels = width
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.fc = Linear(channels, num_classes)

    def forward(
        self, x: Float[Tensor, "batch in_channels height width"]
    ) -> Float[Tensor, "batch num_classes"]:
        """Logits: stem, stages, global average pool, flatten, ``fc``."""
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for stage in self.stages:
            x = stage(x)
        out: Tensor = self.fc(self.avgpool(x).flatten(1))
        return out


def resnet18(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet18: two basic blocks per stage, widths 64-128-256-512, ImageNet stem."""
    return ResNet((2, 2, 2, 2), (64, 128, 256, 512), in_channels, num_classes)


def resnet34(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet34: 3, 4, 6 and 3 basic blocks per stage, widths 64-128-256-512."""
    return ResNet((3, 4, 6, 3), (64, 128, 256, 512), in_channels, num_classes)


# ----------------------------------------------------------------------------------------------
# Loading weights


def load_checked_state_dict(model: Module, state_dict: Mapping[str, Tensor]) -> None:
    """Copy every tensor of ``state_dict`` into the parameter or buffer of ``model`` of the
    same name, all or nothing.

    First compare names and shapes with ``model.state_dict()``. If any name of the model is
    missing from ``state_dict``, any name of ``state_dict`` is unexpected (the model has no
    such parameter or buffer), or any shape differs, raise ``StateDictError`` naming every such
    key (with both shapes for a mismatch) and change nothing. Otherwise copy each value in
    place into the tensor of ``model.state_dict()`` of its name: those share storage with the
    model's parameters and buffers, detached from autograd, and ``copy_`` converts the dtype
    to the model's.
    """
    ours = model.state_dict()
    missing = sorted(ours.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - ours.keys())
    mismatched = [
        f"{name}: checkpoint {tuple(value.shape)}, model {tuple(ours[name].shape)}"
        for name, value in state_dict.items()
        if name in ours and value.shape != ours[name].shape
    ]
    if missing or unexpected or mismatched:
        raise StateDictError(
            f"the state dict does not fit {type(model).__name__}: missing keys {missing}, "
            f"unexpected keys {unexpected}, shape mismatches {mismatched}"
        )
    for name, value in state_dict.items():
        ours[name].copy_(value)


# transformers' ResNet module paths -> torchvision's. Inside stage s, block b, the HF paths
# are relative to "encoder.stages.{s}.layers.{b}." and ours to "layer{s + 1}.{b}.".
HF_BLOCK_PARTS = {
    "layer.0.convolution": "conv1",
    "layer.0.normalization": "bn1",
    "layer.1.convolution": "conv2",
    "layer.1.normalization": "bn2",
    "shortcut.convolution": "downsample.0",
    "shortcut.normalization": "downsample.1",
}
HF_STEM_AND_HEAD = {
    "embedder.embedder.convolution": "conv1",
    "embedder.embedder.normalization": "bn1",
    "classifier.1": "fc",
}


def hf_resnet_key(name: str) -> str:
    """Our (torchvision's) name for the parameter or buffer that transformers' ResNet (basic
    blocks) calls ``name``.

    A ``ResNetForImageClassification`` name starts with ``resnet.`` (drop it); a
    ``ResNetModel`` name does not. Split off the last component (``weight``, ``bias``,
    ``running_mean``, ``running_var``, ``num_batches_tracked``): it is kept as is. The module
    path before it is either in ``HF_STEM_AND_HEAD``, or is
    ``encoder.stages.{s}.layers.{b}.{part}`` with ``part`` in ``HF_BLOCK_PARTS``, which
    becomes ``layer{s + 1}.{b}.{HF_BLOCK_PARTS[part]}`` (HF counts stages from 0,
    torchvision's ``layer`` from 1). Raise ``DataError`` naming ``name`` for anything else.

    >>> hf_resnet_key("resnet.encoder.stages.1.layers.0.shortcut.normalization.running_var")
    'layer2.0.downsample.1.running_var'
    >>> hf_resnet_key("embedder.embedder.convolution.weight")
    'conv1.weight'
    """
    module, _, leaf = name.removeprefix("resnet.").rpartition(".")
    if module in HF_STEM_AND_HEAD:
        return f"{HF_STEM_AND_HEAD[module]}.{leaf}"
    match = re.fullmatch(r"encoder\.stages\.(\d+)\.layers\.(\d+)\.(.+)", module)
    if match is None or match[3] not in HF_BLOCK_PARTS:
        raise DataError(
            f"{name!r} is not a parameter or buffer of transformers' ResNet with basic blocks "
            "(bottleneck layers have a third conv, layer.2, which a BasicBlock lacks)"
        )
    return f"layer{int(match[1]) + 1}.{match[2]}.{HF_BLOCK_PARTS[match[3]]}.{leaf}"


def load_hf_resnet_state_dict(model: ResNet, hf_state_dict: Mapping[str, Tensor]) -> None:
    """Load the state dict of a transformers ``ResNetModel`` or
    ``ResNetForImageClassification`` (basic blocks) into ``model``: every key renamed by
    :func:`hf_resnet_key`, then :func:`load_checked_state_dict` (strict, shapes checked).

    A ``ResNetModel`` has no classifier: its state dict lacks ``fc.weight`` and ``fc.bias``,
    which are then reported as missing keys.
    """
    load_checked_state_dict(model, {hf_resnet_key(k): v for k, v in hf_state_dict.items()})


def resnet_from_hf_config(config: Any) -> ResNet:
    """A ResNet shaped like transformers' ``ResNetConfig`` ``config`` (basic blocks; the first
    stage does not downsample), with ``config.num_labels`` classes."""
    if config.layer_type != "basic" or config.downsample_in_first_stage:
        raise ValueError(
            f"layer_type={config.layer_type!r}, downsample_in_first_stage="
            f"{config.downsample_in_first_stage}: only basic blocks with a stride-1 first "
            "stage (torchvision's ResNet18/34) are supported"
        )
    return ResNet(
        config.depths,
        config.hidden_sizes,
        config.num_channels,
        config.num_labels,
        stem_channels=config.embedding_size,
    )
