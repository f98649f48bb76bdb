"""A multi-layer perceptron that classifies scikit-learn's 8x8 handwritten digits.

Each hidden layer is Linear -> BatchNorm -> ReLU -> Dropout (Ioffe & Szegedy 2015,
https://arxiv.org/abs/1502.03167; Srivastava et al. 2014). Training is mini-batch SGD with
Nesterov momentum and weight decay, a learning rate that warms up linearly and then decays along
a cosine, and gradient-norm clipping: the loop of day w1d5, written out in one file.

The script protocol of ``mlab inspect``: ``build_model(seed)`` returns the network and
``train(model, steps=, seed=, on_step=)`` trains it, calling ``on_step(loss)`` after every
optimizer step. ``python mlp.py`` trains for MAX_STEPS steps and prints the validation accuracy
(about 93%).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlab.data import load_digits

BATCH_SIZE = 64
PEAK_LR = 0.1
WARMUP_STEPS = 20  # the learning rate climbs from PEAK_LR / 20 to PEAK_LR over these steps
MAX_STEPS = 300  # ... and then decays to 0 along a cosine at this step
N_TRAIN = 1500  # the first 1500 digits train; the other 297 validate
# Mean and standard deviation of the digits' pixels (scaled to [0, 1]), over the whole set.
PIXEL_MEAN = 0.3053
PIXEL_STD = 0.3761


class MLP(nn.Module):
    """64 pixels -> 128 -> 64 -> 10 logits. Each hidden layer is Linear -> BatchNorm -> ReLU ->
    Dropout; the last layer gives one logit per class (the loss applies the softmax)."""

    def __init__(self, n_pixels: int = 64, n_classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_pixels, 128)
        self.bn1 = nn.BatchNorm1d(128)
        self.drop1 = nn.Dropout(p=0.1)
        self.fc2 = nn.Linear(128, 64)
        self.bn2 = nn.BatchNorm1d(64)
        self.drop2 = nn.Dropout(p=0.1)
        self.head = nn.Linear(64, n_classes)

    def forward(self, images: Tensor) -> Tensor:
        x = images.flatten(1)  # (batch, 8, 8) -> (batch, 64)
        x = self.drop1(F.relu(self.bn1(self.fc1(x))))
        x = self.drop2(F.relu(self.bn2(self.fc2(x))))
        return self.head(x)


def init_weights(module: nn.Module) -> None:
    """He initialisation for layers followed by a ReLU: weights ~ N(0, 2 / fan_in) keep the
    activations' variance the same from layer to layer (He et al. 2015,
    https://arxiv.org/abs/1502.01852). Biases start at zero."""
    if isinstance(module, nn.Linear):
        fan_in = module.weight.shape[1]
        nn.init.normal_(module.weight, std=math.sqrt(2 / fan_in))
        nn.init.zeros_(module.bias)


def build_model(seed: int) -> nn.Module:
    """The network, initialised from ``seed``."""
    torch.manual_seed(seed)
    model = MLP()
    model.apply(init_weights)
    return model


def load_data() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_val, y_val)``: standardised pixels (mean 0, std 1) and labels."""
    images, labels = load_digits()  # (1797, 8, 8) floats in [0, 1], labels 0..9
    x = (images - PIXEL_MEAN) / PIXEL_STD
    return x[:N_TRAIN], labels[:N_TRAIN], x[N_TRAIN:], labels[N_TRAIN:]


def batches(x: Tensor, y: Tensor, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    """Mini-batches without end: every epoch visits the examples in a new random order. The
    file's order is not random (it starts 0, 1, 2, ..., 9, 0, 1, ...), and a network fed the
    same batches in the same order every epoch learns that order's quirks."""
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
    optimizer = torch.optim.SGD(
        model.parameters(), lr=PEAK_LR, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    model.train()  # BatchNorm normalises with the batch's statistics; dropout is on
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        images, labels = next(data)
        optimizer.zero_grad()
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        # Rescale the gradients when their global norm is above 1: one bad batch cannot
        # throw the weights far (Pascanu et al. 2013, https://arxiv.org/abs/1211.5063).
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(loss.item())
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """The fraction of ``x`` that ``model`` (in eval mode) classifies correctly."""
    model.eval()  # BatchNorm uses its running statistics; dropout is off
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
