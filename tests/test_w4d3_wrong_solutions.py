"""Realistic wrong solutions of w4d3's exercises: each must fail its checks with a message
that points at the difference; the reference must pass. Runs the checks in process
(tests/checkrun.py). Most wrong solutions are the reference's source with one learner-sized
mistake written in (``_variant``), so they stay in step with it."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from checkrun import assert_fails, run_checks
from checkrun import variant as _variant
from mlab.rl import active, fudge, game

_run = partial(run_checks, "w4d3")


WRONG: dict[str, tuple[str, Any, str]] = {
    "td(lambda): starts from 0, forgetting the bootstrap value": (
        "td_lambda_targets",
        _variant(
            game,
            "td_lambda_targets",
            ("running = values[:, steps]", "running = 0.0 * values[:, steps]"),
        ),
        "bootstraps",
    ),
    "td(lambda): lambda and 1 - lambda swapped": (
        "td_lambda_targets",
        _variant(
            game,
            "td_lambda_targets",
            ("(1 - lam) * following + lam * running", "lam * following + (1 - lam) * running"),
        ),
        "lam=0",
    ),
    "td(lambda): the value of the state itself, not the next one": (
        "td_lambda_targets",
        _variant(
            game, "td_lambda_targets", ("following = values[:, t + 1]", "following = values[:, t]")
        ),
        "lam",
    ),
    "td(lambda): gamma not applied to the value term": (
        "td_lambda_targets",
        _variant(
            game,
            "td_lambda_targets",
            ("rewards[:, t] + gamma * ((1 - lam)", "rewards[:, t] + ((1 - lam)"),
        ),
        "gamma=0.5",
    ),
    "td(lambda): targets not detached": (
        "td_lambda_targets",
        _variant(game, "td_lambda_targets", ("values = values.detach()", "values = values")),
        "detach",
    ),
    "choose moves: argmax for both players": (
        "choose_moves",
        _variant(
            game, "choose_moves", ("(values * player[:, None]).argmax(1)", "values.argmax(1)")
        ),
        "negative",
    ),
    "fudge: the classifier's probability, not its log, added": (
        "fudge_log_probs",
        _variant(
            fudge,
            "fudge_log_probs",
            ("strength * attr_log_probs", "strength * attr_log_probs.exp()"),
        ),
        "P\\(a\\)",
    ),
    "fudge: normalised over the whole vocabulary, not the top k": (
        "fudge_log_probs",
        _variant(
            fudge,
            "fudge_log_probs",
            (
                "joint = (logits + strength * attr_log_probs).log_softmax(-1)",
                "joint = logits + strength * attr_log_probs"
                " - lm_logits.logsumexp(-1, keepdim=True)",
            ),
        ),
        "candidates",
    ),
    "fudge: zeros (log 1) outside the candidates instead of -inf": (
        "fudge_log_probs",
        _variant(
            fudge,
            "fudge_log_probs",
            ('torch.full_like(lm_logits, float("-inf"))', "torch.zeros_like(lm_logits)"),
        ),
        "token 2",
    ),
    "fudge: strength multiplies the LM's term": (
        "fudge_log_probs",
        _variant(
            fudge,
            "fudge_log_probs",
            ("(logits + strength * attr_log_probs)", "(strength * logits + attr_log_probs)"),
        ),
        "strength",
    ),
    "candidate rows: repeat cycles the batch instead of repeating each row": (
        "candidate_inputs",
        _variant(
            fudge,
            "candidate_inputs",
            ("prefixes.repeat_interleave(k, dim=0)", "prefixes.repeat(k, 1)"),
        ),
        "prefixes",
    ),
    "candidate rows: candidates transposed": (
        "candidate_inputs",
        _variant(
            fudge,
            "candidate_inputs",
            ("candidates.reshape(-1, 1)", "candidates.T.reshape(-1, 1)"),
        ),
        "candidates",
    ),
    "prefix loss: mean over padding too": (
        "prefix_classifier_loss",
        _variant(
            fudge,
            "prefix_classifier_loss",
            ("(losses * real).sum() / real.sum()", "(losses * real).mean()"),
        ),
        "padded",
    ),
    "prefix loss: the label only at the last position": (
        "prefix_classifier_loss",
        _variant(
            fudge,
            "prefix_classifier_loss",
            (
                "labels[:, None].expand_as(logits)",
                "torch.zeros_like(logits).index_fill(1, torch.tensor([logits.shape[1] - 1]), 1.0)"
                " * labels[:, None]",
            ),
        ),
        "real prefixes",
    ),
    "entropy: nan from 0 log 0": (
        "entropy_scores",
        _variant(
            active, "entropy_scores", ("torch.special.xlogy(probs, probs)", "probs * probs.log()")
        ),
        "0 log 0",
    ),
    "entropy: log base 2": (
        "entropy_scores",
        _variant(
            active,
            "entropy_scores",
            ("return -terms.sum(-1)", "return -terms.sum(-1) / 0.6931471805599453"),
        ),
        "log 2",
    ),
    "margin: top minus the smallest, not the runner-up": (
        "margin_scores",
        _variant(
            active,
            "margin_scores",
            ("return top[:, 0] - top[:, 1]", "return probs.max(-1).values - probs.min(-1).values"),
        ),
        "0.3",
    ),
    "bald: total entropy only (no minus the expected entropy)": (
        "bald_scores",
        _variant(active, "bald_scores", ("return each.mean(0) - total", "return -total")),
        "unsure alike",
    ),
    "bald: the sign flipped (expected entropy minus total)": (
        "bald_scores",
        _variant(
            active, "bald_scores", ("return each.mean(0) - total", "return total - each.mean(0)")
        ),
        "opposed",
    ),
    "k-center: the nearest distances never updated after a pick": (
        "k_center_greedy",
        _variant(
            active,
            "k_center_greedy",
            ("nearest = torch.minimum(nearest, distance)", "nearest = nearest"),
        ),
        "points in",
    ),
    "k-center: the farthest from the mean of the labelled points": (
        "k_center_greedy",
        _variant(
            active,
            "k_center_greedy",
            (
                "torch.cdist(features, features[labelled], compute_mode=exact).min(1).values",
                "(features - features[labelled].mean(0)).norm(dim=-1) + 0 * len(exact)",
            ),
        ),
        "labelled",
    ),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_solution_fails_its_checks(name: str) -> None:
    exercise, value, message = WRONG[name]
    assert_fails("w4d3", exercise, value, message)


def test_the_reference_passes() -> None:
    for exercise in ("td_lambda_targets", "fudge_log_probs", "k_center_greedy"):
        _run(exercise)
