"""The w1d5 optimizer checks accept a correct update rule however it is written (plain
operators round differently in the last bit; the checks must not turn that into a failure)
and still reject a wrong one. Issue 12: ``grad = grad + weight_decay * param`` in RMSprop
failed by 2.3e-8 after 80 free-running steps."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from mlab.course.engine.checks import checks_for
from mlab.course.engine.manifest import get_day
from mlab.course.engine.worker import _reference_namespace
from mlab.errors import MismatchError

MODULE = "mlab.course.w1d5_optimizers.checks_optimizers"


def rmsprop_plain(
    param, grad, state, *, lr, alpha, eps, weight_decay, momentum, centered, maximize
):  # type: ignore[no-untyped-def]
    if not state:
        state["step"] = torch.tensor(0.0)
        state["square_avg"] = torch.zeros_like(param)
        if momentum > 0:
            state["momentum_buffer"] = torch.zeros_like(param)
        if centered:
            state["grad_avg"] = torch.zeros_like(param)
    state["step"] += 1
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    state["square_avg"] = alpha * state["square_avg"] + (1 - alpha) * grad**2
    if centered:
        state["grad_avg"] = alpha * state["grad_avg"] + (1 - alpha) * grad
        avg = torch.sqrt(state["square_avg"] - state["grad_avg"] ** 2) + eps
    else:
        avg = torch.sqrt(state["square_avg"]) + eps
    if momentum > 0:
        state["momentum_buffer"] = momentum * state["momentum_buffer"] + grad / avg
        param -= lr * state["momentum_buffer"]
    else:
        param -= lr * grad / avg


def sgd_plain(param, grad, state, *, lr, momentum, dampening, nesterov, weight_decay, maximize):  # type: ignore[no-untyped-def]
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    if momentum != 0:
        if "momentum_buffer" in state:
            buf = momentum * state["momentum_buffer"] + (1 - dampening) * grad
        else:
            buf = grad.clone()
        state["momentum_buffer"] = buf
        grad = grad + momentum * buf if nesterov else buf
    param -= lr * grad


def _adam(param, grad, state, *, lr, betas, eps, weight_decay, amsgrad, maximize, folded_eps):  # type: ignore[no-untyped-def]
    """Bias corrections folded into the step size (Kingma & Ba's efficient form); eps scaled
    by sqrt(1 - beta2^t) as it must be, or not (TensorFlow's eps-hat: a different rule)."""
    beta1, beta2 = betas
    if not state:
        state["step"] = torch.tensor(0.0)
        state["exp_avg"] = torch.zeros_like(param)
        state["exp_avg_sq"] = torch.zeros_like(param)
        if amsgrad:
            state["max_exp_avg_sq"] = torch.zeros_like(param)
    state["step"] += 1
    t = float(state["step"])
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    state["exp_avg"].mul_(beta1).add_(g, alpha=1 - beta1)
    state["exp_avg_sq"].mul_(beta2).add_(g * g * (1 - beta2))
    v = state["exp_avg_sq"]
    if amsgrad:
        torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        v = state["max_exp_avg_sq"]
    bc2 = math.sqrt(1 - beta2**t)
    param -= (
        lr * bc2 / (1 - beta1**t) * state["exp_avg"] / (v.sqrt() + eps * (bc2 if folded_eps else 1))
    )


def adam_folded(param, grad, state, **kw):  # type: ignore[no-untyped-def]
    _adam(param, grad, state, **kw, folded_eps=True)


def adam_eps_hat(param, grad, state, **kw):  # type: ignore[no-untyped-def]
    _adam(param, grad, state, **kw, folded_eps=False)


def adamw_subtract(param, grad, state, *, lr, weight_decay, **kw):  # type: ignore[no-untyped-def]
    param -= lr * weight_decay * param
    adam_folded(param, grad, state, lr=lr, weight_decay=0, **kw)


def _run(exercise: str, fn: Any) -> None:
    ns = _reference_namespace(get_day("w1d5")).replace(exercise, fn)
    for c in checks_for(MODULE, exercise):
        c.fn(ns)


@pytest.mark.parametrize(
    ("exercise", "fn"),
    [
        ("sgd_update", sgd_plain),
        ("rmsprop_update", rmsprop_plain),
        ("adam_update", adam_folded),
        ("adamw_update", adamw_subtract),
    ],
)
def test_a_correct_rule_written_another_way_passes(exercise: str, fn: Any) -> None:
    _run(exercise, fn)


def test_a_different_bias_correction_fails_at_its_first_step() -> None:
    with pytest.raises(MismatchError, match="the update of w1 at step 1"):
        _run("adam_update", adam_eps_hat)
