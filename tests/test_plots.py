"""The showcase plots of w1d5 (Rosenbrock paths, learning curves) write valid PNGs, and the
learning-rate ``Scheduler`` drives torch optimizers as ``torch.optim.lr_scheduler`` does."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import Splits
from mlab.optim.schedules import Scheduler, cosine_annealing_lr, step_decay_lr
from mlab.train.plots import optimizer_path, plot_learning_curves, plot_rosenbrock


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.width > 200 and image.height > 200, image.size


def test_rosenbrock_plot(tmp_path: Path) -> None:
    _assert_png(plot_rosenbrock(tmp_path / "r.png", steps=20))


def test_momentum_gets_closer_to_the_minimum_than_sgd() -> None:
    def end(make: object) -> float:
        p = optimizer_path(make, steps=300)[-1]  # type: ignore[arg-type]
        return float((p - torch.tensor([1.0, 1.0], dtype=p.dtype)).norm())

    sgd = end(lambda p: torch.optim.SGD(p, lr=1e-3))
    momentum = end(lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9))
    assert momentum < sgd / 2, (momentum, sgd)


def test_learning_curves_plot(tmp_path: Path, fashion_mnist: Splits) -> None:
    opts = {"Adam": lambda p: torch.optim.Adam(p, lr=1e-3)}
    out = plot_learning_curves(
        tmp_path / "c.png",
        optimizers=opts,
        n_train=256,
        n_val=128,
        epochs=2,
        batch_size=64,
        data=tuple(fashion_mnist),
    )
    _assert_png(out)


def test_scheduler_matches_torch_on_two_groups() -> None:
    def groups() -> list[dict[str, object]]:
        return [
            {"params": [torch.zeros(2, requires_grad=True)], "lr": 0.1},
            {"params": [torch.zeros(3, requires_grad=True)], "lr": 0.02},
        ]

    ours_opt, torch_opt = torch.optim.SGD(groups()), torch.optim.SGD(groups())
    ours = Scheduler(ours_opt, functools.partial(cosine_annealing_lr, t_max=30, eta_min=1e-3))
    theirs = torch.optim.lr_scheduler.CosineAnnealingLR(torch_opt, T_max=30, eta_min=1e-3)
    for _ in range(100):
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-9)
        ours_opt.step()
        torch_opt.step()
        ours.step()
        theirs.step()


def test_scheduler_step_decay() -> None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = Scheduler(opt, functools.partial(step_decay_lr, step_size=2, gamma=0.5))
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        sched.step()
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25]
