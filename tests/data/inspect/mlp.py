"""A small MLP (Linear, BatchNorm, ReLU, a residual tanh block) trained with SGD on random
data: the working script of mlab.inspect's tests. Follows the ``mlab inspect`` protocol.

The upper-case settings are what the tests change to make broken variants.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

N_IN, N_HIDDEN, N_CLASSES, BATCH = 8, 16, 4, 32
LR = 0.1
MOMENTUM = 0.0
INIT_GAIN = 1.0  # scales every initial weight
LABEL_SHIFT = 0  # rolls the labels by this many places
SHUFFLE = False  # permutes each batch's rows (inputs and labels together)
DETACH_SKIP = False  # cuts the gradient through the residual's skip connection


class Residual(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x.detach() if DETACH_SKIP else x
        return skip + self.act(self.fc(x))


def build_model(seed: int) -> nn.Module:
    model = nn.Sequential(
        nn.Linear(N_IN, N_HIDDEN),
        nn.BatchNorm1d(N_HIDDEN),
        nn.ReLU(),
        Residual(N_HIDDEN),
        nn.Linear(N_HIDDEN, N_CLASSES),
    )
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(INIT_GAIN)
    return model


def batches(steps: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    teacher = torch.randn(N_IN, N_CLASSES, generator=gen)
    out = []
    for _ in range(steps):
        x = torch.randn(BATCH, N_IN, generator=gen)
        y = (x @ teacher).argmax(dim=1).roll(LABEL_SHIFT)
        if SHUFFLE:
            order = torch.randperm(BATCH, generator=gen)
            x, y = x[order], y[order]
        out.append((x, y))
    return out


def train(
    model: nn.Module, *, steps: int, seed: int, on_step: Callable[[float], None]
) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    model.train()
    losses = []
    for x, y in batches(steps, seed):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        on_step(loss.item())
        losses.append(loss.item())
    return losses
