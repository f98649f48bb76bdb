"""Checks for part 2 of w1d5: learning-rate schedules. Each schedule is run next to
``torch.optim.lr_scheduler`` over 150 steps for several hyper-parameter settings: torch steps a
real optimizer and its scheduler, and the learning rate it puts in the parameter group must
equal the learner's function at every step (within 1e-9 relative: torch updates the rate
step to step, the exercises compute it in closed form)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import lr_scheduler

from mlab.course.engine.checks import Namespace, check
from mlab.testing import assert_close, assert_raises, case

STEPS = 150
BASE_LRS = (0.1, 2.5)


def _torch_lrs(make: Callable[[torch.optim.Optimizer], Any], base_lr: float) -> list[float]:
    """The learning rate torch's scheduler sets at steps 0 .. STEPS-1."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    scheduler = make(opt)
    lrs = []
    for _ in range(STEPS):
        lrs.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        scheduler.step()
    return lrs


def _compare(fn: Callable[..., float], make: Callable[..., Any], **kwargs: Any) -> None:
    for base_lr in BASE_LRS:
        expected = _torch_lrs(make, base_lr)
        with case(f"base_lr={base_lr}, steps 0..{STEPS - 1}", **kwargs):
            got = [fn(t, base_lr, **kwargs) for t in range(STEPS)]
            assert_close(got, expected, rtol=1e-9, atol=1e-12, what="lr at each step")


@check("step_decay_lr")
def step_decay_matches_step_lr(ns: Namespace) -> None:
    for step_size, gamma in ((1, 0.9), (7, 0.5), (30, 0.1), (200, 0.3)):
        _compare(
            ns.step_decay_lr,
            lambda o, s=step_size, g=gamma: lr_scheduler.StepLR(o, s, gamma=g),
            step_size=step_size,
            gamma=gamma,
        )
    with case("the default gamma (0.1), step_size=10"):
        assert_close(ns.step_decay_lr(25, 3.0, 10), 3.0 * 0.1**2, rtol=1e-9, what="lr")


@check("exponential_lr")
def exponential_matches_exponential_lr(ns: Namespace) -> None:
    for gamma in (0.97, 0.5, 1.0, 1.01):
        _compare(
            ns.exponential_lr,
            lambda o, g=gamma: lr_scheduler.ExponentialLR(o, gamma=g),
            gamma=gamma,
        )


@check("cosine_annealing_lr")
def cosine_matches_cosine_annealing_lr(ns: Namespace) -> None:
    for t_max, eta_min in ((150, 0.0), (40, 0.01), (7, 0.05), (1, 0.0)):
        _compare(
            ns.cosine_annealing_lr,
            lambda o, t=t_max, e=eta_min: lr_scheduler.CosineAnnealingLR(o, T_max=t, eta_min=e),
            t_max=t_max,
            eta_min=eta_min,
        )
    with case("the default eta_min (0.0), t_max=10"):
        assert_close(ns.cosine_annealing_lr(10, 3.0, 10), 0.0, atol=1e-12, what="lr at t_max")


def _warmup(decay: str, warmup: int, total: int, start: float, eta_min: float, base: float) -> Any:
    def make(opt: torch.optim.Optimizer) -> Any:
        ramp = lr_scheduler.LinearLR(opt, start_factor=start, end_factor=1.0, total_iters=warmup)
        after: Any
        if decay == "cosine":
            after = lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=eta_min)
        else:
            after = lr_scheduler.LinearLR(
                opt, start_factor=1.0, end_factor=eta_min / base, total_iters=total - warmup
            )
        return lr_scheduler.SequentialLR(opt, [ramp, after], milestones=[warmup])

    return make


@check("warmup_lr")
def warmup_matches_sequential_lr(ns: Namespace) -> None:
    settings = (
        (10, 100, 0.01, 0.0),
        (5, 60, 0.2, 0.001),
        (1, 140, 0.5, 0.0),
        (25, 150, 0.1, 0.0),
        (0, 80, 0.3, 0.0),  # no warm-up at all: the decay starts at step 0
    )
    for decay in ("cosine", "linear"):
        for warmup, total, start, eta_min in settings:
            for base_lr in BASE_LRS:
                make = _warmup(decay, warmup, total, start, eta_min, base_lr)
                expected = _torch_lrs(make, base_lr)
                kwargs = dict(
                    warmup_steps=warmup,
                    total_steps=total,
                    start_factor=start,
                    decay=decay,
                    eta_min=eta_min,
                )
                what = "LinearLR then " + ("CosineAnnealingLR" if decay == "cosine" else "LinearLR")
                with case(f"{what} in a SequentialLR, base_lr={base_lr}", **kwargs):
                    got = [ns.warmup_lr(t, base_lr, **kwargs) for t in range(STEPS)]
                    assert_close(got, expected, rtol=1e-9, atol=1e-12, what="lr at each step")


@check("warmup_lr")
def warmup_defaults_and_bad_decay(ns: Namespace) -> None:
    with case("defaults: start_factor=0.01, cosine decay to eta_min=0.0"):
        got = [ns.warmup_lr(t, 1.0, 4, 12) for t in (0, 2, 8, 12)]
        assert_close(got, [0.01, 0.505, 0.5, 0.0], rtol=1e-9, atol=1e-12, what="lr")
    with case("decay='step' is not a schedule", decay="step"):
        assert_raises(ns.warmup_lr, 5, 1.0, 2, 10, decay="step", exc=ValueError, match="step")
