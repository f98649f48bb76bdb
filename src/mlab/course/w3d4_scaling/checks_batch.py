"""Checks for part 3 of w3d4: ``scale_learning_rate`` against the two rules' formulas written
out, with the published linear-rule example (Goyal et al.: 0.1 at 256 -> 3.2 at 8192);
``critical_batch_size`` recovering ``S_min`` and ``B_crit`` from McCandlish et al.'s model
exactly, and equal to ``scipy.stats.linregress`` of the steps on ``1 / B`` for noisy ones."""

from __future__ import annotations

import math

import torch
from scipy import stats

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import assert_close, assert_raises, case

F64 = torch.float64


@check("scale_learning_rate")
def rules_scale_as_published(ns: Namespace) -> None:
    with case("Goyal et al.: lr 0.1 at batch 256, linear rule, batch 8192"):
        assert_close(
            ns.scale_learning_rate(0.1, 256, 8192, "linear"), 3.2, rtol=1e-12, what="learning rate"
        )
    for base_lr, base, batch in (
        (1e-3, 32, 128),
        (3e-4, 64, 16),
        (0.5, 7, 7),
        (2e-3, 3, 100),
        (0.5, 1, 8),  # batch sizes of 1 are valid
        (1e-3, 4, 1),
        (0.1, 1, 1),
    ):
        k = batch / base
        with case(f"lr {base_lr} at batch {base}, scaled to batch {batch}"):
            assert_close(
                ns.scale_learning_rate(base_lr, base, batch, "linear"),
                base_lr * k,
                rtol=1e-12,
                what="linear rule",
            )
            assert_close(
                ns.scale_learning_rate(base_lr, base, batch, "sqrt"),
                base_lr * math.sqrt(k),
                rtol=1e-12,
                what="square-root rule",
            )


@check("scale_learning_rate")
def scale_rejects_bad_input(ns: Namespace) -> None:
    with case("rule='quadratic'"):
        assert_raises(
            ns.scale_learning_rate,
            1e-3,
            32,
            64,
            "quadratic",
            exc=ValueError,
            match="quadratic",
            what="scale_learning_rate",
        )
    for args in ((0.0, 32, 64), (1e-3, 0, 64), (1e-3, 32, 0), (-1e-3, 32, 64)):
        with case(f"base_lr, base_batch, batch = {args}"):
            assert_raises(
                ns.scale_learning_rate, *args, "sqrt", exc=ValueError, what="scale_learning_rate"
            )


@check("critical_batch_size")
def recovers_mccandlish_model(ns: Namespace) -> None:
    for s_min, b_crit, batches in (
        (1000.0, 64.0, [8, 16, 32, 64, 128, 256]),
        (250.0, 3.5, [1, 2, 4]),
        (40.0, 512.0, [64, 1024]),
    ):
        b = torch.tensor(batches, dtype=F64)
        steps = s_min * (1 + b_crit / b)
        with case(f"steps = {s_min} * (1 + {b_crit} / B) exactly", batch_sizes=b):
            got = ns.critical_batch_size(b, steps)
            assert_close(got[0], s_min, rtol=1e-9, what="S_min")
            assert_close(got[1], b_crit, rtol=1e-9, what="B_crit")


@check("critical_batch_size")
def critical_batch_matches_linregress(ns: Namespace) -> None:
    g = torch.Generator().manual_seed(0)
    b = torch.tensor([4.0, 8.0, 8.0, 16.0, 32.0, 64.0, 64.0], dtype=torch.float32)
    steps = 500 * (1 + 20 / b.double()) * (1 + 0.05 * torch.randn(len(b), generator=g, dtype=F64))
    fit = stats.linregress((1 / b.double()).numpy(), steps.numpy())
    with case("noisy steps, repeated batch sizes, float32 batch sizes", batch_sizes=b, steps=steps):
        got = ns.critical_batch_size(b, steps.float())
        assert_close(got[0], fit.intercept, rtol=1e-5, what="S_min (linregress' intercept)")
        assert_close(
            got[1], fit.slope / fit.intercept, rtol=1e-5, what="B_crit (slope / intercept)"
        )


@check("critical_batch_size")
def critical_batch_rejects_bad_input(ns: Namespace) -> None:
    b = torch.tensor([8.0, 16.0, 32.0])
    with case("lengths differ"):
        assert_raises(ns.critical_batch_size, b, b[:2], exc=ShapeError, what="critical_batch_size")
    with case("one batch size only"):
        assert_raises(
            ns.critical_batch_size,
            torch.tensor([8.0, 8.0]),
            torch.tensor([10.0, 11.0]),
            exc=ValueError,
            what="critical_batch_size",
        )
    with case("a batch size of 0"):
        assert_raises(
            ns.critical_batch_size,
            torch.tensor([0.0, 8.0]),
            torch.tensor([10.0, 11.0]),
            exc=ValueError,
            what="critical_batch_size",
        )
    b_valid = torch.tensor([10.0, 100.0, 1000.0], dtype=F64)
    with case("S_min = 0.5 (small but positive), B_crit = 100", batch_sizes=b_valid):
        got = ns.critical_batch_size(b_valid, 0.5 * (1 + 100 / b_valid))
        assert_close(got[0], 0.5, rtol=1e-9, what="S_min")
        assert_close(got[1], 100.0, rtol=1e-9, what="B_crit")
    with case("steps = -0.5 + 640 / B: S_min = -0.5 is not positive", batch_sizes=b_valid):
        assert_raises(
            ns.critical_batch_size,
            b_valid,
            -0.5 + 640 / b_valid,
            exc=ValueError,
            match="S_min",
            what="critical_batch_size",
        )
    with case("steps = 8 / B exactly (B = 1, 2, 4, 8): S_min = 0 is not positive"):
        b_pow = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=F64)
        assert_raises(
            ns.critical_batch_size,
            b_pow,
            8 / b_pow,
            exc=ValueError,
            match="S_min",
            what="critical_batch_size",
        )
    with case("steps that never level off: the intercept is negative"):
        steps = 10.0 * 64 / b - 5  # S = -5 + 640 / B
        assert_raises(
            ns.critical_batch_size,
            b,
            steps,
            exc=ValueError,
            match="larger",
            what="critical_batch_size",
        )
