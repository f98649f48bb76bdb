"""What a gin config names to build a run: models and the learning-rate schedule.

Each is a plain function (or class) with keyword defaults, so every knob can be bound from a
config file or ``--bind`` (registered in :mod:`mlab.train.config`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from mlab.errors import ConfigError

__all__ = ["WarmupCosine", "gpt", "mlp", "resnet"]


def mlp(
    in_features: int = 64,
    hidden: Sequence[int] = (128,),
    num_classes: int = 10,
    dropout: float = 0.0,
) -> nn.Module:
    """Flatten, then ``Linear -> ReLU -> Dropout`` per hidden width, then a linear classifier."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def resnet(
    depths: Sequence[int] = (1, 1, 1),
    widths: Sequence[int] = (16, 32, 64),
    in_channels: int = 1,
    num_classes: int = 10,
) -> Any:
    """The course's own ResNet (w1d3) with a 3x3 stride-1 stem and no max pool: small images
    (28x28) keep their detail."""
    from mlab.models.resnet import ResNet

    return ResNet(
        depths,
        widths,
        in_channels,
        num_classes,
        stem_channels=widths[0],
        stem_kernel=3,
        stem_stride=1,
        stem_pool=False,
    )


def gpt(
    vocab_size: int = 65,
    block_size: int = 64,
    n_layer: int = 4,
    n_head: int = 4,
    n_embd: int = 128,
    dropout: float = 0.0,
) -> nn.Module:
    """The course's GPT-2 (w2d2) at the given size."""
    from mlab.models.gpt2 import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=block_size,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        resid_pdrop=dropout,
    )
    return GPT2LMHeadModel(config)


class WarmupCosine:
    """The learning-rate multiplier at a step: linear warm-up from ``1 / (warmup_steps + 1)``
    to 1 over ``warmup_steps`` steps, then cosine decay to ``min_ratio`` at ``total_steps``
    (nanoGPT's schedule). Used through ``torch.optim.lr_scheduler.LambdaLR``; its attributes
    are what LambdaLR saves in its state dict."""

    def __init__(self, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.1) -> None:
        if not 0 <= warmup_steps < total_steps:
            raise ConfigError(
                f"warmup_steps={warmup_steps} should be in [0, total_steps={total_steps})"
            )
        self.total_steps, self.warmup_steps, self.min_ratio = total_steps, warmup_steps, min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_ratio + 0.5 * (1 + math.cos(math.pi * progress)) * (1 - self.min_ratio)
