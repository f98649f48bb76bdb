"""Realistic wrong solutions of w4d2's exercises: each must fail its checks with a message
that points at the difference; the reference must pass. Runs the checks in process
(tests/checkrun.py). Most wrong solutions are the reference's source with one learner-sized
mistake written in (``_variant``), so they stay in step with it."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import torch
from torch import Tensor

from checkrun import assert_fails, run_checks
from checkrun import variant as _variant
from mlab.rl import kl, lm_policy, pg, ppo

_run = partial(run_checks, "w4d2")


def whiten_biased_variance(
    x: Tensor, mask: Tensor | None = None, shift_mean: bool = True
) -> Tensor:
    """torch.var(unbiased=False)-style scale: n instead of n - 1."""
    real = x if mask is None else x[mask == 1]
    out = (x - real.mean()) / torch.sqrt(real.var(unbiased=False) + 1e-8)
    return out if shift_mean else out + real.mean()


def whiten_ignores_mask(x: Tensor, mask: Tensor | None = None, shift_mean: bool = True) -> Tensor:
    """Statistics over every entry, padding included."""
    out = (x - x.mean()) / torch.sqrt(x.var() + 1e-8)
    return out if shift_mean else out + x.mean()


def gae_forgets_dones_in_recursion(
    rewards: Tensor, values: Tensor, dones: Tensor, next_value: Tensor, gamma: float, lam: float
) -> Tensor:
    """Cuts the bootstrap at episode ends but lets the advantage of the next episode leak back."""
    advantages = torch.zeros_like(rewards)
    last, following = torch.zeros_like(next_value), next_value
    for t in reversed(range(rewards.shape[1])):
        running = 1.0 - dones[:, t]
        delta = rewards[:, t] + gamma * running * following - values[:, t]
        last = delta + gamma * lam * last
        advantages[:, t] = last
        following = values[:, t]
    return advantages


def left_pad_on_the_right(prompts: Any, pad_token_id: int) -> tuple[Tensor, Tensor]:
    """Right padding: the prompts end in different columns."""
    if not prompts:
        raise ValueError("no prompts")
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for row, p in enumerate(prompts):
        if not p:
            raise ValueError(f"prompt {row} is empty")
        ids[row, : len(p)] = torch.tensor(list(p))
        mask[row, : len(p)] = 1
    return ids, mask


WRONG: dict[str, tuple[str, Any, str]] = {
    "returns: gamma applied to the current reward too": (
        "returns_to_go",
        _variant(
            pg,
            "returns_to_go",
            ("rewards[:, t] + gamma * running", "gamma * (rewards[:, t] + running)"),
        ),
        "gamma=0.5",
    ),
    "returns: forward cumulative sum": (
        "returns_to_go",
        _variant(
            pg, "returns_to_go", ("reversed(range(rewards.shape[1]))", "range(rewards.shape[1])")
        ),
        "gamma",
    ),
    "reinforce: the advantage not detached": (
        "reinforce_loss",
        _variant(pg, "reinforce_loss", ("(returns - baseline).detach()", "(returns - baseline)")),
        "gradient reached",
    ),
    "reinforce: the sign flipped (gradient ascent written as descent)": (
        "reinforce_loss",
        _variant(
            pg,
            "reinforce_loss",
            ("return -(log_p * advantage).mean()", "return (log_p * advantage).mean()"),
        ),
        "loss",
    ),
    "gae: the advantage recursion crosses episode ends": (
        "gae",
        gae_forgets_dones_in_recursion,
        "episode ending|lam=",
    ),
    "gae: lambda left out of the recursion": (
        "gae",
        _variant(ppo, "gae", ("gamma * lam * running * last", "gamma * running * last")),
        "lam=0.8|lam=",
    ),
    "gae: the value of the same step bootstrapped": (
        "gae",
        _variant(ppo, "gae", ("gamma * running * following", "gamma * running * values[:, t]")),
        "next_value",
    ),
    "whiten: biased variance": ("whiten", whiten_biased_variance, "x"),
    "whiten: the mask ignored": ("whiten", whiten_ignores_mask, "mask"),
    "policy loss: max instead of min": (
        "clipped_policy_loss",
        _variant(
            ppo,
            "clipped_policy_loss",
            ("-torch.min(unclipped, clipped)", "-torch.max(unclipped, clipped)"),
        ),
        "ratios",
    ),
    "policy loss: the ratio upside down": (
        "clipped_policy_loss",
        _variant(
            ppo,
            "clipped_policy_loss",
            ("torch.exp(log_p - old_log_p.detach())", "torch.exp(old_log_p.detach() - log_p)"),
        ),
        "ratios",
    ),
    "policy loss: a plain mean over padding": (
        "clipped_policy_loss",
        _variant(
            ppo,
            "clipped_policy_loss",
            (
                "masked_mean(-torch.min(unclipped, clipped), mask)",
                "(-torch.min(unclipped, clipped)).mean()",
            ),
        ),
        "a mask",
    ),
    "value loss: the minimum of the two errors": (
        "clipped_value_loss",
        _variant(
            ppo,
            "clipped_value_loss",
            ("torch.max((values - returns)", "torch.min((values - returns)"),
        ),
        "clip=0.2",
    ),
    "value loss: no one half": (
        "clipped_value_loss",
        _variant(ppo, "clipped_value_loss", ("return 0.5 * masked_mean", "return masked_mean")),
        "clip=0.2",
    ),
    "left padding: padded on the right": ("left_pad_prompts", left_pad_on_the_right, "lengths"),
    "response mask: the eos itself left out": (
        "response_mask",
        _variant(
            lm_policy,
            "response_mask",
            ("eos_before = is_eos.cumsum(1) - is_eos", "eos_before = is_eos.cumsum(1)"),
        ),
        "eos",
    ),
    "response log probs: each token scored by its own position": (
        "response_log_probs",
        _variant(
            lm_policy,
            "response_log_probs",
            ("logits[:, prompt_len - 1 : -1]", "logits[:, prompt_len:]"),
        ),
        "prompt_len",
    ),
    "response log probs: softmax over the positions": (
        "response_log_probs",
        _variant(
            lm_policy, "response_log_probs", (".float().log_softmax(-1)", ".float().log_softmax(1)")
        ),
        "prompt_len",
    ),
    "kl: k1 with the ratio upside down": (
        "kl_estimate",
        _variant(
            kl,
            "kl_estimate",
            ('if kind == "k1":\n        return -log_r', 'if kind == "k1":\n        return log_r'),
        ),
        "k1",
    ),
    "kl: k3 without the log term (biased)": (
        "kl_estimate",
        _variant(
            kl, "kl_estimate", ("return torch.expm1(log_r) - log_r", "return torch.expm1(log_r)")
        ),
        "k3",
    ),
    "exact kl: KL(ref || policy)": (
        "exact_kl",
        _variant(
            kl,
            "exact_kl",
            ("terms = log_p.exp() * (log_p - log_q)", "terms = log_q.exp() * (log_q - log_p)"),
        ),
        "shape",
    ),
    "exact kl: nan where both are impossible": (
        "exact_kl",
        _variant(kl, "exact_kl", ("torch.where(log_p.isneginf(), 0.0, terms)", "terms")),
        "-inf",
    ),
    "token rewards: the score on the last column, not the last real token": (
        "token_rewards",
        _variant(
            lm_policy,
            "token_rewards",
            ("rewards[rows, lengths - 1] += scores", "rewards[:, -1] += scores"),
        ),
        "ends at token",
    ),
    "token rewards: the KL paid on padding": (
        "token_rewards",
        _variant(
            lm_policy,
            "token_rewards",
            ("(log_p - log_ref).detach() * mask", "(log_p - log_ref).detach()"),
        ),
        "ends at token",
    ),
    "adaptive beta: no clip": (
        "adaptive_beta",
        _variant(
            lm_policy,
            "adaptive_beta",
            ("min(max(kl / target - 1.0, -0.2), 0.2)", "kl / target - 1.0"),
        ),
        "kl=12.0",
    ),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_solution_fails_its_checks(name: str) -> None:
    exercise, value, message = WRONG[name]
    assert_fails("w4d2", exercise, value, message)


def test_the_reference_passes() -> None:
    for exercise in ("gae", "kl_estimate", "token_rewards"):
        _run(exercise)
