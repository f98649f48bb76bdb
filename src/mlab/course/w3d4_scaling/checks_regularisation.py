"""Checks for part 4 of w3d4: ``label_smoothed_cross_entropy`` against
``torch.nn.functional.cross_entropy(label_smoothing=...)`` (values and gradients; large
logits, ignored rows, a single class, smoothing 0 and 1, inputs left unchanged);
``early_stopping`` against runs whose stop is known by hand and against Keras' rule written
as a loop over "wait" counters."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import assert_close, assert_equal, assert_raises, assert_unchanged, case, randn

F64 = torch.float64


def _compare_smoothing(
    ns: Namespace,
    logits: torch.Tensor,
    targets: torch.Tensor,
    smoothing: float,
    ignore_index: int = -100,
) -> None:
    mine = logits.clone().requires_grad_(True)
    theirs = logits.clone().requires_grad_(True)
    before = logits.clone(), targets.clone()
    got = ns.label_smoothed_cross_entropy(mine, targets, smoothing, ignore_index)
    want = F.cross_entropy(theirs, targets, ignore_index=ignore_index, label_smoothing=smoothing)
    assert_close(got, want, what="loss (F.cross_entropy with label_smoothing)")
    (got * 1.7).backward()
    (want * 1.7).backward()  # type: ignore[no-untyped-call]
    assert_close(mine.grad, theirs.grad, what="gradient of the logits")
    assert_unchanged(logits, before[0], what="logits")
    assert_unchanged(targets, before[1], what="targets")


@check("label_smoothed_cross_entropy")
def matches_torch_cross_entropy(ns: Namespace) -> None:
    logits = randn(6, 5, seed=0, dtype=F64)
    targets = torch.tensor([0, 4, 2, 2, 1, 3])
    for smoothing in (0.0, 0.1, 0.37, 1.0):
        with case(f"6 rows, 5 classes, smoothing={smoothing}", logits=logits, targets=targets):
            _compare_smoothing(ns, logits, targets, smoothing)
    big = randn(4, 7, seed=1) * 200  # float32 logits far past exp's range
    with case("float32 logits of size ~500", logits=big):
        _compare_smoothing(ns, big, torch.tensor([6, 0, 3, 3]), 0.2)
    with case("one row, two classes"):
        _compare_smoothing(ns, randn(1, 2, seed=2, dtype=F64), torch.tensor([1]), 0.25)


@check("label_smoothed_cross_entropy")
def ignored_rows_count_for_nothing(ns: Namespace) -> None:
    logits = randn(7, 4, seed=3, dtype=F64)
    targets = torch.tensor([1, -100, 3, -100, 0, 2, -100])
    with case("3 of 7 rows ignored (-100), smoothing 0.3", logits=logits, targets=targets):
        _compare_smoothing(ns, logits, targets, 0.3)
    other = torch.tensor([1, 5, 3, 5, 0, 2, 5])
    with case("ignore_index=5 (a number past the classes)", targets=other):
        _compare_smoothing(ns, logits, other, 0.1, ignore_index=5)
    with case("every row ignored: nan, as torch"):
        got = ns.label_smoothed_cross_entropy(logits[:2], torch.tensor([-100, -100]), 0.1)
        expect_nan = F.cross_entropy(logits[:2], torch.tensor([-100, -100]), label_smoothing=0.1)
        assert_close(got, expect_nan, equal_nan=True, what="loss")


@check("label_smoothed_cross_entropy")
def smoothing_rejects_bad_input(ns: Namespace) -> None:
    logits = randn(3, 4, seed=4)
    with case("smoothing=1.5"):
        assert_raises(
            ns.label_smoothed_cross_entropy,
            logits,
            torch.tensor([0, 1, 2]),
            1.5,
            exc=ValueError,
            match="1.5",
            what="label_smoothed_cross_entropy",
        )
    with case("smoothing=-0.1"):
        assert_raises(
            ns.label_smoothed_cross_entropy,
            logits,
            torch.tensor([0, 1, 2]),
            -0.1,
            exc=ValueError,
            what="label_smoothed_cross_entropy",
        )
    with case("a (batch, seq, classes) tensor"):
        assert_raises(
            ns.label_smoothed_cross_entropy,
            logits[None],
            torch.tensor([[0, 1, 2]]),
            0.1,
            exc=ShapeError,
            what="label_smoothed_cross_entropy",
        )
    with case("targets of another length"):
        assert_raises(
            ns.label_smoothed_cross_entropy,
            logits,
            torch.tensor([0, 1]),
            0.1,
            exc=ShapeError,
            what="label_smoothed_cross_entropy",
        )
    for bad in (4, -1):
        with case(f"a target of {bad} with 4 classes"):
            assert_raises(
                ns.label_smoothed_cross_entropy,
                logits,
                torch.tensor([0, bad, 2]),
                0.1,
                exc=ValueError,
                what="label_smoothed_cross_entropy",
            )


def _keras(losses: list[float], patience: int, min_delta: float) -> tuple[int, int]:
    """Keras' EarlyStopping (mode="min") as a loop: ``wait`` counts epochs since the best."""
    best, best_epoch, wait = float("inf"), 0, 0
    for epoch, current in enumerate(losses):
        wait += 1
        if current + min_delta < best:  # Keras: monitor_op(current - (-min_delta), best)
            best, best_epoch, wait = current, epoch, 0
        if wait >= patience and epoch > 0:
            return epoch, best_epoch
    return len(losses) - 1, best_epoch


@check("early_stopping")
def stops_where_known(ns: Namespace) -> None:
    known = [
        ([3.0, 2.0, 2.5, 1.9, 2.0, 2.1], 2, 0.0, (5, 3)),
        ([3.0, 2.0, 2.5, 1.9, 2.0, 2.1], 3, 0.0, (5, 3)),  # never stops: the last eval
        ([1.0, 1.0, 1.0], 2, 0.0, (2, 0)),  # ties do not improve
        ([1.0, 0.96, 0.97, 0.91], 2, 0.05, (2, 0)),  # improving by less than min_delta: no reset
        ([1.0, 0.94, 0.93, 0.87], 2, 0.05, (3, 3)),
        ([5.0], 1, 0.0, (0, 0)),
        ([2.0, 3.0], 1, 0.0, (1, 0)),
        ([4.0, 3.0, 2.0, 1.0], 1, 0.0, (3, 3)),
        ([math.inf, math.inf, 3.0], 2, 0.0, (1, 0)),  # a diverged start never improves
        ([math.nan, 2.0, 2.5, 2.6], 2, 0.0, (3, 1)),  # nor does nan
    ]
    for losses, patience, min_delta, want in known:
        with case(f"val losses {losses}, patience={patience}, min_delta={min_delta}"):
            got = ns.early_stopping(losses, patience, min_delta)
            assert_equal(got, want, what="(stop, best)")


@check("early_stopping")
def matches_keras_rule(ns: Namespace) -> None:
    g = torch.Generator().manual_seed(0)
    for trial in range(40):
        n = int(torch.randint(1, 30, (1,), generator=g))
        drift = torch.linspace(3.0, 2.0, n, dtype=F64)
        noise = torch.randn(n, generator=g, dtype=F64) * 0.05
        losses = (drift + noise + torch.linspace(0, 1, n, dtype=F64) ** 4).tolist()
        patience = int(torch.randint(1, 6, (1,), generator=g))
        min_delta = [0.0, 0.01, 0.05][trial % 3]
        with case(
            f"{n} noisy val losses that fall then rise, patience={patience}, min_delta={min_delta}"
        ):
            assert_equal(
                ns.early_stopping(losses, patience, min_delta),
                _keras(losses, patience, min_delta),
                what="(stop, best)",
            )


@check("early_stopping")
def early_stopping_rejects_bad_input(ns: Namespace) -> None:
    for losses, patience, min_delta in (([], 2, 0.0), ([1.0], 0, 0.0), ([1.0], 2, -0.1)):
        with case(f"losses={losses}, patience={patience}, min_delta={min_delta}"):
            assert_raises(
                ns.early_stopping,
                losses,
                patience,
                min_delta,
                exc=ValueError,
                what="early_stopping",
            )
