r"""Checks for part 1 of w4d2: discounted returns against the closed form
$G_t = \sum_{s \ge t} \gamma^{s-t} r_s$ (a matrix product, not a recursion) and REINFORCE's
loss and gradient against torch's autograd of the textbook formula."""

from __future__ import annotations

import torch

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import assert_close, assert_raises, assert_unchanged, case, expect, generator


def _closed_form(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    steps = rewards.shape[1]
    t = torch.arange(steps, dtype=torch.float64)
    power = (t[None, :] - t[:, None]).clamp(min=0)
    weights = torch.where(t[None, :] >= t[:, None], gamma**power, 0.0)  # [t, s]
    return (rewards.double() @ weights.T).to(rewards.dtype)


@check("returns_to_go")
def returns_by_hand(ns: Namespace) -> None:
    with case("rewards [[1, 0, 2]], gamma=0.5: G = [1 + 0.5 * (0 + 0.5 * 2), 0 + 0.5 * 2, 2]"):
        got = ns.returns_to_go(torch.tensor([[1.0, 0.0, 2.0]]), 0.5)
        assert_close(got, torch.tensor([[1.5, 1.0, 2.0]]))
    with case("one step: G = r whatever gamma"):
        assert_close(
            ns.returns_to_go(torch.tensor([[3.0], [-1.0]]), 0.9), torch.tensor([[3.0], [-1.0]])
        )


@check("returns_to_go")
def returns_match_the_closed_form(ns: Namespace) -> None:
    g = generator(0)
    for gamma in (0.0, 0.5, 0.99, 1.0):
        rewards = torch.randn(4, 9, generator=g)
        before = rewards.clone()
        with case(f"4 episodes of 9 steps, gamma={gamma}", rewards=rewards):
            got = ns.returns_to_go(rewards, gamma)
            assert_close(got, _closed_form(before, gamma), atol=1e-5)
            assert_unchanged(rewards, before, what="rewards")
    with case("gamma=1: the reversed cumulative sum"):
        rewards = torch.randn(3, 6, generator=g)
        want = rewards.flip(1).cumsum(1).flip(1)
        assert_close(ns.returns_to_go(rewards, 1.0), want, atol=1e-5)


@check("returns_to_go")
def returns_refuse_bad_gamma(ns: Namespace) -> None:
    rewards = torch.ones(1, 3)
    for gamma in (1.5, -0.1):
        with case(f"gamma={gamma}"):
            assert_raises(ns.returns_to_go, rewards, gamma, exc=ValueError, match=str(gamma))


@check("reinforce_loss")
def reinforce_value_and_gradient(ns: Namespace) -> None:
    g = generator(1)
    for shape in ((5, 1), (3, 7)):
        logits = torch.randn(*shape, 4, generator=g, dtype=torch.float64)
        actions = torch.randint(0, 4, shape, generator=g)
        returns = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
        baseline = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
        with case(f"log probs, returns and baseline of shape {shape}"):
            leaf = logits.clone().requires_grad_(True)
            log_p = leaf.log_softmax(-1).gather(-1, actions[..., None]).squeeze(-1)
            loss = ns.reinforce_loss(log_p, returns, baseline)
            want = -(log_p * (returns - baseline)).mean()
            assert_close(loss, want.detach(), what="loss", check_dtype=False)
            expect(loss.dim() == 0, f"the loss should be a scalar, got shape {tuple(loss.shape)}")
            loss.backward()
            expected_leaf = logits.clone().requires_grad_(True)
            lp = expected_leaf.log_softmax(-1).gather(-1, actions[..., None]).squeeze(-1)
            (-(lp * (returns - baseline).detach()).mean()).backward()  # type: ignore[no-untyped-call]
            assert_close(leaf.grad, expected_leaf.grad, what="gradient of the logits")
            for name, t in (("returns", returns), ("baseline", baseline)):
                expect(
                    t.grad is None or not t.grad.any(),
                    f"a gradient reached the {name}: they are data (detach them), or a learned "
                    "baseline would be trained to make the policy loss small",
                )


@check("reinforce_loss")
def reinforce_refuses_bad_shapes(ns: Namespace) -> None:
    a, b = torch.zeros(2, 3), torch.zeros(2, 4)
    with case("returns (2, 4) for log_p (2, 3)"):
        assert_raises(ns.reinforce_loss, a, b, a, exc=ShapeError, match="(2, 4)")
    with case("baseline (2, 4) for log_p (2, 3)"):
        assert_raises(ns.reinforce_loss, a, a, b, exc=ShapeError, match="(2, 4)")
