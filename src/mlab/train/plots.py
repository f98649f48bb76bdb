"""Two pictures of optimizers at work (day w1d5's showcase, library code, not exercises).

- ``plot_rosenbrock``: each optimizer's path down Rosenbrock's banana-shaped valley
  (``(1 - x)^2 + 100 (y - x^2)^2``, minimum at ``(1, 1)``) from the same start, over its
  contour lines. A narrow curved valley is the textbook case where plain gradient descent
  crawls and momentum or per-coordinate scaling help.
- ``plot_learning_curves``: the same MLP trained on a Fashion-MNIST subset with each optimizer,
  training loss and validation accuracy per epoch.

The optimizers are ``mlab.optim``'s own (part 1 of w1d5), which equal ``torch.optim``'s step
for step; pass other factories to compare anything with a ``step()``. Plots use matplotlib's
Agg backend (no display needed).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlab.data import LabelledImages, load_fashion_mnist, minibatches, normalise_images
from mlab.figures import plt, save_figure
from mlab.optim import optimizers as mlab_optim
from mlab.optim.schedules import Scheduler, cosine_annealing_lr
from mlab.train.loops import evaluate, train_epoch

__all__ = [
    "ROSENBROCK_OPTIMIZERS",
    "TRAINING_OPTIMIZERS",
    "compare_on_fashion_mnist",
    "optimizer_path",
    "plot_learning_curves",
    "plot_rosenbrock",
    "rosenbrock",
]

MakeOptimizer = Callable[[Iterable[Tensor]], Any]

ROSENBROCK_OPTIMIZERS: dict[str, MakeOptimizer] = {
    "SGD (lr 1e-3)": lambda p: mlab_optim.SGD(p, lr=1e-3),
    "SGD + momentum 0.9 (lr 1e-3)": lambda p: mlab_optim.SGD(p, lr=1e-3, momentum=0.9),
    "RMSprop (lr 1e-2)": lambda p: mlab_optim.RMSprop(p, lr=1e-2),
    "Adam (lr 5e-2)": lambda p: mlab_optim.Adam(p, lr=5e-2),
}

TRAINING_OPTIMIZERS: dict[str, MakeOptimizer] = {
    "SGD (lr 0.05)": lambda p: mlab_optim.SGD(p, lr=0.05),
    "SGD + momentum 0.9 (lr 0.05)": lambda p: mlab_optim.SGD(p, lr=0.05, momentum=0.9),
    "RMSprop (lr 1e-3)": lambda p: mlab_optim.RMSprop(p, lr=1e-3),
    "Adam (lr 1e-3)": lambda p: mlab_optim.Adam(p, lr=1e-3),
    "AdamW (lr 1e-3, wd 0.05)": lambda p: mlab_optim.AdamW(p, lr=1e-3, weight_decay=0.05),
}


def rosenbrock(xy: Tensor) -> Tensor:
    """Rosenbrock's function of ``xy[..., 0], xy[..., 1]``; its minimum is 0 at (1, 1)."""
    x, y = xy[..., 0], xy[..., 1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def optimizer_path(
    make: MakeOptimizer, start: tuple[float, float] = (-1.5, 2.0), steps: int = 500
) -> Tensor:
    """The points ``(steps + 1, 2)`` an optimizer visits minimising ``rosenbrock`` from
    ``start``."""
    xy = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = make([xy])
    path = [xy.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        rosenbrock(xy).backward()  # type: ignore[no-untyped-call]
        opt.step()
        path.append(xy.detach().clone())
    return torch.stack(path)


def plot_rosenbrock(
    path: str | Path,
    optimizers: dict[str, MakeOptimizer] | None = None,
    steps: int = 500,
    start: tuple[float, float] = (-1.5, 2.0),
) -> Path:
    """Draw each optimizer's path over Rosenbrock's contour lines; save a PNG at ``path``."""
    optimizers = optimizers or ROSENBROCK_OPTIMIZERS
    xs, ys = torch.linspace(-2, 2, 300), torch.linspace(-1, 3, 300)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    fig, ax = plt.subplots(figsize=(7, 6), dpi=90)
    levels = torch.logspace(-1, 3.5, 16).tolist()
    ax.contour(xs, ys, rosenbrock(grid), levels=levels, colors="0.75", linewidths=0.7)
    for i, (name, make) in enumerate(optimizers.items()):
        p = optimizer_path(make, start, steps).clamp(-2.5, 3.5)
        final = rosenbrock(p[-1]).item()
        width = 3.5 - 0.8 * i  # later paths drawn thinner, on top, so all stay visible
        (line,) = ax.plot(
            p[:, 0], p[:, 1], "-", lw=width, alpha=0.8, label=f"{name}: f = {final:.2g}"
        )
        ax.plot(*p[-1], "o", ms=9, color=line.get_color(), mec="k", zorder=5)
    ax.plot(*start, "ko", ms=6)
    ax.plot(1, 1, "k*", ms=12, label="minimum (1, 1)")
    ax.set(xlim=(-2, 2), ylim=(-1, 3), xlabel="x", ylabel="y")
    ax.set_title(f"Rosenbrock: {steps} steps from {start} (circles: where each ends)")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def compare_on_fashion_mnist(
    optimizers: dict[str, MakeOptimizer] | None = None,
    n_train: int = 10000,
    n_val: int = 2000,
    epochs: int = 6,
    batch_size: int = 64,
    seed: int = 0,
    data: tuple[LabelledImages, LabelledImages] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Train one MLP (784-256-10, dropout 0.2) per optimizer from the same initial weights on
    the first ``n_train`` Fashion-MNIST training images; validate on the first ``n_val`` test
    images after each epoch. Return ``{name: {"train_loss", "val_loss", "val_acc"}}``. The
    learning rate follows a cosine schedule to 0 over the run. ``data``: the (train, test)
    splits when already loaded (default: ``load_fashion_mnist``)."""
    optimizers = optimizers or TRAINING_OPTIMIZERS
    train, test = data or (load_fashion_mnist("train"), load_fashion_mnist("test"))
    x = normalise_images(train.images[:n_train]).flatten(1)
    y = train.labels[:n_train]
    val = [(normalise_images(test.images[:n_val]).flatten(1), test.labels[:n_val])]
    torch.manual_seed(seed)
    init = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 10))
    steps = epochs * -(-n_train // batch_size)
    results = {}
    for name, make in optimizers.items():
        model = copy.deepcopy(init)
        opt = make(model.parameters())
        sched = Scheduler(opt, functools.partial(cosine_annealing_lr, t_max=steps))
        gen = torch.Generator().manual_seed(seed)
        curves: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_acc": []}
        for _ in range(epochs):
            batches = list(minibatches(x, y, batch_size, generator=gen))
            stepping = _StepEach(opt, sched)
            curves["train_loss"].append(train_epoch(model, batches, stepping, F.cross_entropy))
            val_loss, val_acc = evaluate(model, val, F.cross_entropy)
            assert val_acc is not None  # class labels: evaluate measures the accuracy
            curves["val_loss"].append(val_loss)
            curves["val_acc"].append(val_acc)
        results[name] = curves
    return results


def plot_learning_curves(path: str | Path, **kwargs: Any) -> Path:
    """Run ``compare_on_fashion_mnist(**kwargs)`` and plot training loss and validation
    accuracy per epoch, one line per optimizer; save a PNG at ``path``."""
    results = compare_on_fashion_mnist(**kwargs)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=90)
    for name, curves in results.items():
        epochs = range(1, len(curves["train_loss"]) + 1)
        ax_loss.plot(epochs, curves["train_loss"], "o-", ms=3, label=name)
        ax_acc.plot(epochs, curves["val_acc"], "o-", ms=3, label=name)
    ax_loss.set(xlabel="epoch", ylabel="mean training loss", yscale="log")
    ax_loss.set_title("Training loss (cross-entropy)")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy")
    ax_acc.set_title("Validation accuracy (held-out test images)")
    ax_acc.legend(loc="lower right", fontsize=8)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.suptitle("MLP on a Fashion-MNIST subset, cosine learning-rate schedule")
    return save_figure(fig, path)


class _StepEach:
    """An optimizer whose ``step`` also advances a scheduler (one schedule step per batch)."""

    def __init__(self, optimizer: Any, scheduler: Scheduler) -> None:
        self.optimizer, self.scheduler = optimizer, scheduler

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def step(self) -> None:
        self.optimizer.step()
        self.scheduler.step()
