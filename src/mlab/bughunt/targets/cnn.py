"""A small ResNet that classifies scikit-learn's 8x8 handwritten digits.

He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition" (2015),
https://arxiv.org/abs/1512.03385: each block learns a residual ``F(x)`` added to its input,
``relu(F(x) + shortcut(x))``, so the network starts close to the identity and gradients reach
the first layers through the additions. The network is day w1d3's ResNet, shrunk: a stem, two
residual blocks (the second halves the image and doubles the channels), global average pooling
and a linear classifier. Training is AdamW (Loshchilov & Hutter 2017,
https://arxiv.org/abs/1711.05101) with a linear warm-up and cosine decay.

The script protocol of ``mlab inspect``: ``build_model(seed)`` returns the network and
``train(model, steps=, seed=, on_step=)`` trains it, calling ``on_step(loss)`` after every
optimizer step. ``python cnn.py`` trains for MAX_STEPS steps and prints the validation accuracy
(about 95%).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlab.data import load_digits

BATCH_SIZE = 64
PEAK_LR = 3e-3
WARMUP_STEPS = 20  # the learning rate climbs from PEAK_LR / 20 to PEAK_LR over these steps
MAX_STEPS = 300  # ... and then decays to 0 along a cosine at this step
N_TRAIN = 1500  # the first 1500 digits train; the other 297 validate
# Mean and standard deviation of the digits' pixels (scaled to [0, 1]), over the whole set.
PIXEL_MEAN = 0.3053
PIXEL_STD = 0.3761


class ResidualBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``. The shortcut is the identity
    when the block keeps the shape, else a strided 1x1 convolution + BatchNorm that brings
    ``x`` to the block's output shape. Convolutions before a BatchNorm need no bias: the
    BatchNorm's shift replaces it."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """(batch, 8, 8) images -> 10 logits: a 3x3 conv stem with 16 channels, a block at 16
    channels on 8x8, a block at 32 channels on 4x4, global average pooling, a linear layer."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.layer1 = ResidualBlock(16, 16, stride=1)
        self.layer2 = ResidualBlock(16, 32, stride=2)
        self.fc = nn.Linear(32, n_classes)

    def forward(self, images: Tensor) -> Tensor:
        x = images.unsqueeze(1)  # (batch, 8, 8) -> (batch, 1, 8, 8): one input channel
        x = F.relu(self.bn(self.stem(x)))
        x = self.layer2(self.layer1(x))
        x = x.mean(dim=(2, 3))  # global average pooling: (batch, 32, 4, 4) -> (batch, 32)
        return self.fc(x)


def init_weights(module: nn.Module) -> None:
    """He initialisation: weights ~ N(0, 2 / fan_in), where a convolution's fan-in is
    in_channels * kernel height * kernel width (He et al. 2015,
    https://arxiv.org/abs/1502.01852). The classifier's bias starts at zero."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        fan_in = module.weight[0].numel()
        nn.init.normal_(module.weight, std=math.sqrt(2 / fan_in))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_model(seed: int) -> nn.Module:
    """The network, initialised from ``seed``."""
    torch.manual_seed(seed)
    model = SmallResNet()
    model.apply(init_weights)
    return model


def load_data() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_val, y_val)``: standardised pixels (mean 0, std 1) and labels."""
    images, labels = load_digits()  # (1797, 8, 8) floats in [0, 1], labels 0..9
    x = (images - PIXEL_MEAN) / PIXEL_STD
    return x[:N_TRAIN], labels[:N_TRAIN], x[N_TRAIN:], labels[N_TRAIN:]


def batches(x: Tensor, y: Tensor, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    """Mini-batches without end: every epoch visits the examples in a new random order (the
    file's own order starts 0, 1, 2, ..., 9, 0, 1, ...: not random at all)."""
    while True:
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x) - BATCH_SIZE + 1, BATCH_SIZE):
            idx = order[start : start + BATCH_SIZE]
            yield x[idx], y[idx]


def learning_rate(step: int) -> float:
    """Linear warm-up to PEAK_LR over WARMUP_STEPS steps, then cosine decay to 0 at MAX_STEPS
    (Loshchilov & Hutter 2016, https://arxiv.org/abs/1608.03983)."""
    if step < WARMUP_STEPS:
        return PEAK_LR * (step + 1) / WARMUP_STEPS
    progress = min(1.0, (step - WARMUP_STEPS) / (MAX_STEPS - WARMUP_STEPS))
    return PEAK_LR * 0.5 * (1 + math.cos(math.pi * progress))


def train(
    model: nn.Module,
    *,
    steps: int,
    seed: int,
    on_step: Callable[[float], None] | None = None,
) -> list[float]:
    """Train ``model`` for ``steps`` optimizer steps; return the loss of every step."""
    x_train, y_train, _, _ = load_data()
    data = batches(x_train, y_train, torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=PEAK_LR, betas=(0.9, 0.999), weight_decay=0.01
    )
    model.train()  # BatchNorm normalises with the batch's statistics
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        images, labels = next(data)
        optimizer.zero_grad()
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(loss.item())
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """The fraction of ``x`` that ``model`` (in eval mode) classifies correctly."""
    model.eval()  # BatchNorm uses its running statistics
    return (model(x).argmax(dim=-1) == y).float().mean().item()


def main() -> None:
    model = build_model(seed=0)
    losses = train(model, steps=MAX_STEPS, seed=0)
    _, _, x_val, y_val = load_data()
    for step in range(0, MAX_STEPS, 50):
        print(f"step {step:4d}  loss {sum(losses[step : step + 50]) / 50:.4f}")
    print(f"validation accuracy {accuracy(model, x_val, y_val):.1%}")


if __name__ == "__main__":
    main()
