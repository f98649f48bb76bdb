"""Realistic wrong solutions of w3d4's exercises: each must fail its checks with a message
naming what is wrong; the reference must pass. Runs the checks in process, as
tests/test_w3d1_wrong_solutions.py does."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

from checkrun import assert_fails, run_checks
from mlab.course.engine.manifest import get_day
from mlab.errors import ShapeError
from mlab.scaling import laws
from mlab.scaling.laws import PowerLawFit, fit_power_law, line_fit

_run = partial(run_checks, "w3d4")
_fails = partial(assert_fails, "w3d4")


@pytest.mark.parametrize("exercise", [e.name for p in get_day("w3d4").parts for e in p.exercises])
def test_the_reference_passes(exercise: str) -> None:
    _run(exercise)


# ----------------------------------------------------------------------------------------------
# fit_power_law


def log_log_line(n: Tensor, loss: Tensor, max_alpha: float = 3.0) -> PowerLawFit:
    """The classic shortcut: a straight line through log L against log N (no floor c)."""
    laws._check_points(n, loss)
    slope, intercept, _ = line_fit(n.double().log(), loss.double().log())
    a, alpha = math.exp(float(intercept)), -float(slope)
    sse = float(((loss.double() - a * n.double() ** -alpha) ** 2).sum())
    return PowerLawFit(a, alpha, 0.0, sse)


def float32_profile(n: Tensor, loss: Tensor, max_alpha: float = 3.0) -> PowerLawFit:
    """Forgets float64: the profile in the inputs' dtype."""
    laws._check_points(n, loss)

    def sse(alpha: float) -> float:
        return float(line_fit(n**-alpha, loss)[2])

    best = minimize_scalar(sse, bounds=(1e-3, max_alpha), method="bounded")
    slope, intercept, err = line_fit(n ** -float(best.x), loss)
    return PowerLawFit(float(slope), float(best.x), float(intercept), float(err))


def grid_only(n: Tensor, loss: Tensor, max_alpha: float = 3.0) -> PowerLawFit:
    """A coarse grid of alphas and no refinement."""
    laws._check_points(n, loss)
    n, loss = n.double(), loss.double()
    grid = torch.linspace(0.01, max_alpha, 300, dtype=torch.float64)
    errs = [float(line_fit(n**-a, loss)[2]) for a in grid]
    alpha = float(grid[int(np.argmin(errs))])
    slope, intercept, err = line_fit(n**-alpha, loss)
    return PowerLawFit(float(slope), alpha, float(intercept), float(err))


def no_input_checks(n: Tensor, loss: Tensor, max_alpha: float = 3.0) -> PowerLawFit:
    n, loss = n.double(), loss.double()

    def sse(alpha: float) -> float:
        return float(line_fit(n**-alpha, loss)[2])

    best = minimize_scalar(
        sse, bounds=(1e-3, max_alpha), method="bounded", options={"xatol": 1e-10}
    )
    slope, intercept, err = line_fit(n ** -float(best.x), loss)
    return PowerLawFit(float(slope), float(best.x), float(intercept), float(err))


def sse_in_log_space(n: Tensor, loss: Tensor, max_alpha: float = 3.0) -> PowerLawFit:
    """Returns the right fit but the sse of the log losses."""
    fit = fit_power_law(n, loss, max_alpha)
    res = loss.double().log() - fit.predict(n).log()
    return PowerLawFit(fit.a, fit.alpha, fit.c, float((res**2).sum()))


@pytest.mark.parametrize(
    "wrong, message",
    [
        (log_log_line, "alpha"),
        (float32_profile, "alpha"),
        (grid_only, "alpha"),
        (no_input_checks, "should raise"),
        (sse_in_log_space, "sse"),
    ],
)
def test_fit_power_law_wrong(wrong: object, message: str) -> None:
    _fails("fit_power_law", wrong, message)


# ----------------------------------------------------------------------------------------------
# bootstrap_power_law


def bootstrap_without_redraw(
    n: Tensor, loss: Tensor, n_boot: int, generator: torch.Generator
) -> Tensor:
    """Skips unfittable resamples instead of drawing again (fewer rows)."""
    rows = []
    for _ in range(n_boot):
        idx = torch.randint(len(n), (len(n),), generator=generator)
        if len(torch.unique(n[idx])) >= 3:
            fit = fit_power_law(n[idx], loss[idx])
            rows.append([fit.a, fit.alpha, fit.c])
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 3)


def bootstrap_without_replacement(
    n: Tensor, loss: Tensor, n_boot: int, generator: torch.Generator
) -> Tensor:
    """A permutation: every resample is the data again, so the intervals have no width."""
    rows = []
    for _ in range(n_boot):
        idx = torch.randperm(len(n), generator=generator)
        fit = fit_power_law(n[idx], loss[idx])
        rows.append([fit.a, fit.alpha, fit.c])
    return torch.tensor(rows, dtype=torch.float64)


def bootstrap_alpha_first(
    n: Tensor, loss: Tensor, n_boot: int, generator: torch.Generator
) -> Tensor:
    """Columns in the wrong order: (alpha, a, c)."""
    out = laws.bootstrap_power_law(n, loss, n_boot, generator)
    return out[:, [1, 0, 2]]


@pytest.mark.parametrize(
    "wrong, message",
    [
        (bootstrap_without_redraw, "shape|generator"),
        (bootstrap_without_replacement, "alpha|generator"),
        (bootstrap_alpha_first, "alpha"),
    ],
)
def test_bootstrap_wrong(wrong: object, message: str) -> None:
    _fails("bootstrap_power_law", wrong, message)


# ----------------------------------------------------------------------------------------------
# gpt_parameter_count, gpt_training_flops


def kaplan_approximation(
    n_layer: int, n_embd: int, vocab_size: int, n_positions: int, embeddings: bool = True
) -> int:
    """12 * n_layer * d^2: Kaplan's approximation, no biases or norms."""
    if min(n_layer, n_embd, vocab_size, n_positions) < 1:
        raise ValueError("sizes must be positive")
    total = 12 * n_layer * n_embd**2
    return total + ((vocab_size + n_positions) * n_embd if embeddings else 0)


def untied_head(
    n_layer: int, n_embd: int, vocab_size: int, n_positions: int, embeddings: bool = True
) -> int:
    """Counts the LM head as a separate vocab x d matrix."""
    from mlab.scaling.compute import gpt_parameter_count

    return gpt_parameter_count(n_layer, n_embd, vocab_size, n_positions, embeddings) + (
        vocab_size * n_embd
    )


def six_n_d(n_layer: int, n_embd: int, vocab_size: int, n_ctx: int, tokens: int) -> int:
    """Kaplan's 6ND with N the non-embedding parameters: no LM head, no attention."""
    if min(n_layer, n_embd, vocab_size, n_ctx, tokens) < 1 or tokens % n_ctx:
        raise ValueError("bad sizes; tokens must be whole windows of n_ctx")
    return 6 * 12 * n_layer * n_embd**2 * tokens


def causal_half_attention(
    n_layer: int, n_embd: int, vocab_size: int, n_ctx: int, tokens: int
) -> int:
    """Counts attention over half the context (the causal mask), as Kaplan's estimate does."""
    if min(n_layer, n_embd, vocab_size, n_ctx, tokens) < 1 or tokens % n_ctx:
        raise ValueError("bad sizes; tokens must be whole windows of n_ctx")
    weights = n_layer * 12 * n_embd**2 + vocab_size * n_embd
    return 3 * (2 * weights + n_layer * 2 * n_ctx * n_embd) * tokens


def forward_only(n_layer: int, n_embd: int, vocab_size: int, n_ctx: int, tokens: int) -> int:
    if min(n_layer, n_embd, vocab_size, n_ctx, tokens) < 1 or tokens % n_ctx:
        raise ValueError("bad sizes; tokens must be whole windows of n_ctx")
    weights = n_layer * 12 * n_embd**2 + vocab_size * n_embd
    return (2 * weights + n_layer * 4 * n_ctx * n_embd) * tokens


@pytest.mark.parametrize(
    "exercise, wrong, message",
    [
        ("gpt_parameter_count", kaplan_approximation, "parameters"),
        ("gpt_parameter_count", untied_head, "parameters"),
        ("gpt_training_flops", six_n_d, "FLOPs"),
        ("gpt_training_flops", causal_half_attention, "FLOPs"),
        ("gpt_training_flops", forward_only, "FLOPs"),
    ],
)
def test_compute_wrong(exercise: str, wrong: object, message: str) -> None:
    _fails(exercise, wrong, message)


# ----------------------------------------------------------------------------------------------
# scale_learning_rate, critical_batch_size


def sqrt_of_the_lr(base_lr: float, base_batch: int, batch: int, rule: str) -> float:
    """Takes the square root of the scaled learning rate instead of the ratio."""
    if rule not in ("linear", "sqrt") or base_lr <= 0 or base_batch < 1 or batch < 1:
        raise ValueError(f"rule={rule!r}: use 'linear' or 'sqrt'")
    k = batch / base_batch
    return base_lr * k if rule == "linear" else math.sqrt(base_lr * k)


def ratio_upside_down(base_lr: float, base_batch: int, batch: int, rule: str) -> float:
    if rule not in ("linear", "sqrt") or base_lr <= 0 or base_batch < 1 or batch < 1:
        raise ValueError(f"rule={rule!r}: use 'linear' or 'sqrt'")
    k = base_batch / batch
    return base_lr * (k if rule == "linear" else math.sqrt(k))


def fit_on_batch_not_inverse(batch_sizes: Tensor, steps: Tensor) -> tuple[float, float]:
    """Regresses steps on B instead of 1/B."""
    if batch_sizes.shape != steps.shape or batch_sizes.ndim != 1:
        raise ShapeError("shapes")
    if bool((batch_sizes <= 0).any()) or len(torch.unique(batch_sizes)) < 2:
        raise ValueError("need 2 distinct positive batch sizes")
    slope, intercept, _ = line_fit(batch_sizes.double(), steps.double())
    if float(intercept) <= 0:
        raise ValueError("S_min not positive: try larger batch sizes")
    return float(intercept), float(slope) / float(intercept)


def b_crit_is_the_slope(batch_sizes: Tensor, steps: Tensor) -> tuple[float, float]:
    """Forgets to divide the slope by S_min."""
    if batch_sizes.shape != steps.shape or batch_sizes.ndim != 1:
        raise ShapeError("shapes")
    if bool((batch_sizes <= 0).any()) or len(torch.unique(batch_sizes)) < 2:
        raise ValueError("need 2 distinct positive batch sizes")
    slope, intercept, _ = line_fit(1 / batch_sizes.double(), steps.double())
    if float(intercept) <= 0:
        raise ValueError("S_min not positive: try larger batch sizes")
    return float(intercept), float(slope)


@pytest.mark.parametrize(
    "exercise, wrong, message",
    [
        ("scale_learning_rate", sqrt_of_the_lr, "square-root rule"),
        ("scale_learning_rate", ratio_upside_down, "learning rate|linear rule"),
        ("critical_batch_size", fit_on_batch_not_inverse, "S_min|B_crit"),
        ("critical_batch_size", b_crit_is_the_slope, "B_crit"),
    ],
)
def test_batch_wrong(exercise: str, wrong: object, message: str) -> None:
    _fails(exercise, wrong, message)


# ----------------------------------------------------------------------------------------------
# label_smoothed_cross_entropy, early_stopping


def _smoothing_checks(logits: Tensor, targets: Tensor, smoothing: float, ignore_index: int) -> None:
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ShapeError("logits (batch, classes), targets (batch,)")
    if not 0 <= smoothing <= 1:
        raise ValueError(f"smoothing={smoothing}")
    kept = targets[targets != ignore_index]
    if bool(((kept < 0) | (kept >= logits.shape[1])).any()):
        raise ValueError("target out of range")


def smooth_over_the_other_classes(
    logits: Tensor, targets: Tensor, smoothing: float, ignore_index: int = -100
) -> Tensor:
    """Spreads eps over the K-1 wrong classes only (another common definition)."""
    _smoothing_checks(logits, targets, smoothing, ignore_index)
    keep = targets != ignore_index
    logp = torch.log_softmax(logits[keep], dim=-1)
    k = logits.shape[1]
    q = torch.full_like(logp, smoothing / max(k - 1, 1))
    q.scatter_(1, targets[keep][:, None], 1 - smoothing)
    return -(q * logp).sum(-1).mean()


def mean_over_all_rows(
    logits: Tensor, targets: Tensor, smoothing: float, ignore_index: int = -100
) -> Tensor:
    """Zeroes ignored rows but divides by every row."""
    _smoothing_checks(logits, targets, smoothing, ignore_index)
    keep = targets != ignore_index
    safe = torch.where(keep, targets, 0)
    logp = torch.log_softmax(logits, dim=-1)
    row = (1 - smoothing) * -logp.gather(1, safe[:, None]).squeeze(1) + smoothing * -logp.mean(-1)
    return (row * keep).sum() / len(targets)


def log_of_softmax(
    logits: Tensor, targets: Tensor, smoothing: float, ignore_index: int = -100
) -> Tensor:
    """log(softmax(x)): -inf for large logits."""
    _smoothing_checks(logits, targets, smoothing, ignore_index)
    keep = targets != ignore_index
    logp = torch.softmax(logits[keep], dim=-1).log()
    nll = -logp.gather(1, targets[keep][:, None]).squeeze(1)
    return ((1 - smoothing) * nll + smoothing * -logp.mean(-1)).mean()


def stop_on_ties_improving(
    val_losses: Sequence[float], patience: int, min_delta: float = 0.0
) -> tuple[int, int]:
    """<= instead of <: a tie counts as an improvement."""
    if not val_losses or patience < 1 or min_delta < 0:
        raise ValueError("bad input")
    best, best_loss, bad = 0, float("inf"), 0
    for i, loss in enumerate(val_losses):
        if loss <= best_loss - min_delta:
            best, best_loss, bad = i, loss, 0
        else:
            bad += 1
            if bad >= patience:
                return i, best
    return len(val_losses) - 1, best


def patience_off_by_one(
    val_losses: Sequence[float], patience: int, min_delta: float = 0.0
) -> tuple[int, int]:
    """Stops only after more than patience bad evaluations."""
    if not val_losses or patience < 1 or min_delta < 0:
        raise ValueError("bad input")
    best, best_loss, bad = 0, float("inf"), 0
    for i, loss in enumerate(val_losses):
        if loss < best_loss - min_delta:
            best, best_loss, bad = i, loss, 0
        else:
            bad += 1
            if bad > patience:
                return i, best
    return len(val_losses) - 1, best


def small_improvements_become_best(
    val_losses: Sequence[float], patience: int, min_delta: float = 0.0
) -> tuple[int, int]:
    """Any lower loss becomes the best; only the counter uses min_delta."""
    if not val_losses or patience < 1 or min_delta < 0:
        raise ValueError("bad input")
    best, best_loss, bad = 0, float("inf"), 0
    for i, loss in enumerate(val_losses):
        if loss < best_loss - min_delta:
            bad = 0
        else:
            bad += 1
        if loss < best_loss:
            best, best_loss = i, loss
        if bad >= patience:
            return i, best
    return len(val_losses) - 1, best


@pytest.mark.parametrize(
    "exercise, wrong, message",
    [
        ("label_smoothed_cross_entropy", smooth_over_the_other_classes, "loss"),
        ("label_smoothed_cross_entropy", mean_over_all_rows, "ignored|loss"),
        ("label_smoothed_cross_entropy", log_of_softmax, "loss|gradient|nan|inf"),
        ("early_stopping", stop_on_ties_improving, r"\(stop, best\)"),
        ("early_stopping", patience_off_by_one, r"\(stop, best\)"),
        ("early_stopping", small_improvements_become_best, r"\(stop, best\)"),
    ],
)
def test_regularisation_wrong(exercise: str, wrong: object, message: str) -> None:
    _fails(exercise, wrong, message)
