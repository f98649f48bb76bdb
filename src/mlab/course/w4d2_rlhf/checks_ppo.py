r"""Checks for part 2 of w4d2: GAE against its definition as a sum,
$\hat A_t = \sum_l (\gamma\lambda)^l \delta_{t+l}$ (cut at episode ends), and its two limits;
whitening against ``torch.mean``/``torch.var`` on the real entries; the clipped policy and
value losses against the formulas written with torch, their gradients through autograd, and
numbers worked by hand."""

from __future__ import annotations

import torch
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import assert_close, assert_raises, assert_unchanged, case, expect, generator


def _gae_by_sum(r: Tensor, v: Tensor, d: Tensor, nv: Tensor, gamma: float, lam: float) -> Tensor:
    """Forward sums of discounted TD errors, in float64, one entry at a time."""
    r, v, d, nv = r.double(), v.double(), d.double(), nv.double()
    batch, steps = r.shape
    nxt = torch.cat([v[:, 1:], nv[:, None]], 1)
    delta = r + gamma * (1 - d) * nxt - v
    out = torch.zeros_like(r)
    for b in range(batch):
        for t in range(steps):
            total, weight = 0.0, 1.0
            for s in range(t, steps):
                total += weight * float(delta[b, s])
                weight *= gamma * lam * (1 - float(d[b, s]))
            out[b, t] = total
    return out.float()


def _episodes(seed: int, batch: int, steps: int, p_done: float) -> tuple[Tensor, ...]:
    g = generator(seed)
    r = torch.randn(batch, steps, generator=g)
    v = torch.randn(batch, steps, generator=g)
    d = (torch.rand(batch, steps, generator=g) < p_done).float()
    nv = torch.randn(batch, generator=g)
    return r, v, d, nv


@check("gae")
def gae_by_hand(ns: Namespace) -> None:
    r, v = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.5, 0.5]])
    with case("r=[1, 1], V=[0.5, 0.5], next_value 0.5, gamma=0.9, lam=0.8, no ends"):
        # delta = [1 + 0.45 - 0.5, 1 + 0.45 - 0.5] = [0.95, 0.95]; A0 = 0.95 + 0.72 * 0.95
        got = ns.gae(r, v, torch.zeros(1, 2), torch.tensor([0.5]), 0.9, 0.8)
        assert_close(got, torch.tensor([[0.95 + 0.72 * 0.95, 0.95]]))
    with case("the same with the episode ending at step 0: nothing crosses the end"):
        got = ns.gae(r, v, torch.tensor([[1.0, 0.0]]), torch.tensor([0.5]), 0.9, 0.8)
        assert_close(got, torch.tensor([[0.5, 0.95]]))


@check("gae")
def gae_matches_the_definition(ns: Namespace) -> None:
    for seed, (batch, steps, p_done) in enumerate([(3, 7, 0.0), (4, 10, 0.25), (1, 1, 0.5)]):
        for gamma, lam in ((0.99, 0.95), (1.0, 0.9), (0.9, 0.0), (0.8, 1.0)):
            r, v, d, nv = _episodes(seed, batch, steps, p_done)
            saved = [x.clone() for x in (r, v, d, nv)]
            with case(
                f"{batch} rows of {steps} steps, gamma={gamma}, lam={lam}", rewards=r, values=v,
                dones=d, next_value=nv,
            ):  # fmt: skip
                got = ns.gae(r, v, d, nv, gamma, lam)
                assert_close(
                    got, _gae_by_sum(saved[0], saved[1], saved[2], saved[3], gamma, lam), atol=1e-5
                )
                for x, was, name in zip(
                    (r, v, d, nv), saved, ("rewards", "values", "dones", "next_value"), strict=True
                ):
                    assert_unchanged(x, was, what=name)


@check("gae")
def gae_limits(ns: Namespace) -> None:
    r, v, d, nv = _episodes(7, 2, 6, 0.0)
    with case("lam=0: the one-step TD error r + gamma V' - V"):
        nxt = torch.cat([v[:, 1:], nv[:, None]], 1)
        assert_close(ns.gae(r, v, d, nv, 0.9, 0.0), r + 0.9 * nxt - v, atol=1e-6)
    with case("lam=1, gamma=1: the return (bootstrapped from next_value) minus V"):
        ret = r.flip(1).cumsum(1).flip(1) + nv[:, None]
        assert_close(ns.gae(r, v, d, nv, 1.0, 1.0), ret - v, atol=1e-5)


@check("gae")
def gae_refuses_bad_shapes(ns: Namespace) -> None:
    r = torch.zeros(2, 3)
    with case("values (2, 4) for rewards (2, 3)"):
        assert_raises(
            ns.gae,
            r,
            torch.zeros(2, 4),
            r,
            torch.zeros(2),
            0.9,
            0.9,
            exc=ShapeError,
            match="(2, 4)",
        )
    with case("dones (3, 3) for rewards (2, 3)"):
        assert_raises(
            ns.gae,
            r,
            r,
            torch.zeros(3, 3),
            torch.zeros(2),
            0.9,
            0.9,
            exc=ShapeError,
            match="(3, 3)",
        )
    with case("next_value (3,) for 2 rows"):
        assert_raises(ns.gae, r, r, r, torch.zeros(3), 0.9, 0.9, exc=ShapeError, match="(3,)")


@check("whiten")
def whiten_matches_torch(ns: Namespace) -> None:
    g = generator(3)
    x = torch.randn(4, 6, generator=g) * 3 + 2
    before = x.clone()
    with case("no mask: every entry", x=x):
        want = (before - before.mean()) / torch.sqrt(before.var() + 1e-8)
        assert_close(ns.whiten(x), want, atol=1e-5)
        assert_unchanged(x, before, what="x")
    with case("no mask, shift_mean=False: only the scale changes"):
        want = (before - before.mean()) / torch.sqrt(before.var() + 1e-8) + before.mean()
        assert_close(ns.whiten(x, None, False), want, atol=1e-5)
    mask = (torch.rand(4, 6, generator=g) < 0.6).float()
    mask[0, :2] = 1.0
    real = before[mask == 1]
    with case("a mask: the mean and variance of the real entries only", mask=mask):
        got = ns.whiten(x, mask)
        want = (real - real.mean()) / torch.sqrt(real.var() + 1e-8)
        assert_close(got[mask == 1], want, atol=1e-5, what="the real entries")
    with case("a mask, shift_mean=False", mask=mask):
        got = ns.whiten(x, mask, shift_mean=False)
        want = (real - real.mean()) / torch.sqrt(real.var() + 1e-8) + real.mean()
        assert_close(got[mask == 1], want, atol=1e-5, what="the real entries")
    with case("a constant [2, 2, 2]: variance 0, so zeros (the 1e-8 keeps it finite)"):
        assert_close(ns.whiten(torch.full((3,), 2.0)), torch.zeros(3), atol=1e-6)
    with case("two entries [1, 3]: mean 2, unbiased variance 2"):
        got = ns.whiten(torch.tensor([1.0, 3.0]))
        assert_close(got, torch.tensor([-1.0, 1.0]) / 2**0.5, atol=1e-6)


@check("whiten")
def whiten_refuses_bad_input(ns: Namespace) -> None:
    with case("a mask of another shape"):
        assert_raises(
            ns.whiten, torch.zeros(2, 3), torch.ones(3, 2), exc=ShapeError, match="(3, 2)"
        )
    with case("one real entry: no variance"):
        mask = torch.tensor([0.0, 1.0, 0.0])
        assert_raises(ns.whiten, torch.ones(3), mask, exc=ValueError, match="1")
    with case("two real entries are enough"):
        got = ns.whiten(torch.tensor([5.0, 1.0, 3.0]), torch.tensor([0.0, 1.0, 1.0]))
        assert_close(got[1:], torch.tensor([-1.0, 1.0]) / 2**0.5, atol=1e-6)


def _ratio_case(seed: int, shape: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    g = generator(seed)
    old = torch.randn(shape, generator=g, dtype=torch.float64) - 1
    new = old + torch.randn(shape, generator=g, dtype=torch.float64) * 0.4  # ratios 0.3 to 3
    adv = torch.randn(shape, generator=g, dtype=torch.float64)
    mask = (torch.rand(shape, generator=g) < 0.7).double()
    mask[:, 0] = 1.0
    return new, old, adv, mask


def _policy_loss(new: Tensor, old: Tensor, adv: Tensor, clip: float, mask: Tensor) -> Tensor:
    ratio = (new - old).exp()
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    return -(surrogate * mask).sum() / mask.sum()


@check("clipped_policy_loss")
def policy_loss_by_hand(ns: Namespace) -> None:
    log = torch.log(torch.tensor([[0.5, 1.0, 1.5, 1.5, 0.5]]))
    adv = torch.tensor([[1.0, 2.0, 1.0, -1.0, -1.0]])
    with case("ratios [0.5, 1, 1.5, 1.5, 0.5], advantages [1, 2, 1, -1, -1], clip=0.2"):
        # min(rA, clip(r)A): [0.5, 2, 1.2, -1.5, -0.8]; the loss is minus their mean
        got = ns.clipped_policy_loss(log, torch.zeros(1, 5), adv, 0.2)
        assert_close(got, torch.tensor(-(0.5 + 2 + 1.2 - 1.5 - 0.8) / 5), atol=1e-6)


@check("clipped_policy_loss")
def policy_loss_and_gradient(ns: Namespace) -> None:
    for seed, clip in ((0, 0.2), (1, 0.1), (2, 0.5)):
        new, old, adv, mask = _ratio_case(seed, (4, 8))
        for m in (None, mask):
            with case(f"4x8 ratios, clip={clip}, {'no mask' if m is None else 'a mask'}", mask=m):
                leaf = new.clone().requires_grad_(True)
                old_leaf = old.clone().requires_grad_(True)
                adv_leaf = adv.clone().requires_grad_(True)
                got = ns.clipped_policy_loss(leaf, old_leaf, adv_leaf, clip, m)
                ones = torch.ones_like(new)
                want_leaf = new.clone().requires_grad_(True)
                want = _policy_loss(want_leaf, old, adv, clip, ones if m is None else m)
                assert_close(got, want.detach(), what="loss")
                got.backward()
                want.backward()  # type: ignore[no-untyped-call]
                assert_close(leaf.grad, want_leaf.grad, what="gradient of log_p")
                for name, t in (("old_log_p", old_leaf), ("advantages", adv_leaf)):
                    expect(
                        t.grad is None or not t.grad.any(),
                        f"a gradient reached {name}: it is data from the rollout (detach it)",
                    )


@check("clipped_policy_loss")
def policy_loss_refuses_bad_input(ns: Namespace) -> None:
    a = torch.zeros(2, 3)
    with case("advantages (2, 4) for log_p (2, 3)"):
        assert_raises(
            ns.clipped_policy_loss, a, a, torch.zeros(2, 4), 0.2, exc=ShapeError, match="(2, 4)"
        )
    with case("mask (3, 2) for log_p (2, 3)"):
        assert_raises(
            ns.clipped_policy_loss, a, a, a, 0.2, torch.ones(3, 2), exc=ShapeError, match="(3, 2)"
        )
    with case("clip=0"):
        assert_raises(ns.clipped_policy_loss, a, a, a, 0.0, exc=ValueError, match="clip=0")


def _value_loss(v: Tensor, old: Tensor, ret: Tensor, clip: float, mask: Tensor) -> Tensor:
    clipped = torch.clamp(v, old - clip, old + clip)
    worst = torch.maximum((v - ret) ** 2, (clipped - ret) ** 2)
    return 0.5 * (worst * mask).sum() / mask.sum()


@check("clipped_value_loss")
def value_loss_by_hand(ns: Namespace) -> None:
    v = torch.tensor([[1.0, 0.0, 0.5]])
    old = torch.tensor([[0.0, 0.0, 0.0]])
    ret = torch.tensor([[2.0, 1.0, -1.0]])
    with case("V=[1, 0, 0.5], old V=[0, 0, 0], returns [2, 1, -1], clip=0.2"):
        # clipped V = [0.2, 0, 0.2]; max of squared errors: [3.24, 1, 2.25]
        got = ns.clipped_value_loss(v, old, ret, 0.2)
        assert_close(got, torch.tensor(0.5 * (3.24 + 1 + 2.25) / 3), atol=1e-6)


@check("clipped_value_loss")
def value_loss_and_gradient(ns: Namespace) -> None:
    g = generator(5)
    for clip in (0.2, 1.0):
        v = torch.randn(3, 6, generator=g, dtype=torch.float64)
        old = v + torch.randn(3, 6, generator=g, dtype=torch.float64) * 0.5
        ret = torch.randn(3, 6, generator=g, dtype=torch.float64)
        mask = (torch.rand(3, 6, generator=g) < 0.7).double()
        mask[:, 0] = 1.0
        for m in (None, mask):
            with case(f"3x6 values, clip={clip}, {'no mask' if m is None else 'a mask'}", mask=m):
                leaf = v.clone().requires_grad_(True)
                old_leaf = old.clone().requires_grad_(True)
                got = ns.clipped_value_loss(leaf, old_leaf, ret, clip, m)
                want_leaf = v.clone().requires_grad_(True)
                want = _value_loss(
                    want_leaf, old, ret, clip, torch.ones_like(v) if m is None else m
                )
                assert_close(got, want.detach(), what="loss")
                got.backward()
                want.backward()  # type: ignore[no-untyped-call]
                assert_close(leaf.grad, want_leaf.grad, what="gradient of values")
                expect(
                    old_leaf.grad is None or not old_leaf.grad.any(),
                    "a gradient reached old_values: they are data from the rollout (detach them)",
                )


@check("clipped_value_loss")
def value_loss_refuses_bad_input(ns: Namespace) -> None:
    a = torch.zeros(2, 3)
    with case("returns (2, 4) for values (2, 3)"):
        assert_raises(
            ns.clipped_value_loss, a, a, torch.zeros(2, 4), 0.2, exc=ShapeError, match="(2, 4)"
        )
    with case("clip=-0.1"):
        assert_raises(ns.clipped_value_loss, a, a, a, -0.1, exc=ValueError, match="clip=-0.1")
    with case("clip=0"):
        assert_raises(ns.clipped_value_loss, a, a, a, 0.0, exc=ValueError, match="clip=0")
