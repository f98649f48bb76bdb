"""Checks for part 1 of w4d1: the epsilon schedule (against ``torch.optim.lr_scheduler.LinearLR``
over 150 steps), epsilon-greedy actions (the same generator draws, replayed here with torch),
and the uniform replay buffer (what it holds after wrapping round, the rows a sample returns,
a chi-square test of uniformity, the errors)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.optim import lr_scheduler

from mlab.course.engine.checks import Namespace, check
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_raises,
    case,
    chi_square_p_value,
    expect,
    randn,
)

STEPS = 150


@check("linear_schedule")
def schedule_matches_linear_lr(ns: Namespace) -> None:
    for start, end, duration in ((1.0, 0.05, 100), (0.4, 1.0, 140), (1.0, 0.1, 1), (0.5, 0.5, 30)):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        sched = lr_scheduler.LinearLR(opt, start_factor=start, end_factor=end, total_iters=duration)
        expected = []
        for _ in range(STEPS):
            expected.append(float(opt.param_groups[0]["lr"]))
            opt.step()
            sched.step()
        with case(f"LinearLR from {start} to {end} over {duration} steps, steps 0..149"):
            got = [ns.linear_schedule(t, start, end, duration) for t in range(STEPS)]
            assert_close(got, expected, rtol=1e-9, atol=1e-12, what="value at each step")


@check("linear_schedule")
def schedule_edges(ns: Namespace) -> None:
    with case("going up from -2 to 6 over 4 steps: -2, 0, 2, 4, 6, 6"):
        got = [ns.linear_schedule(t, -2.0, 6.0, 4) for t in range(6)]
        assert_close(got, [-2.0, 0.0, 2.0, 4.0, 6.0, 6.0], rtol=1e-12, what="values")
    with case("duration 0: the end value from step 0"):
        assert_close(ns.linear_schedule(0, 1.0, 0.1, 0), 0.1, rtol=1e-12, what="value")
    with case("a negative step"):
        assert_raises(ns.linear_schedule, -1, 1.0, 0.1, 10, exc=ValueError, match="-1")
    with case("duration -1"):
        assert_raises(ns.linear_schedule, 3, 1.0, 0.1, -1, exc=ValueError, match="-1")


def _expected_actions(q: torch.Tensor, epsilon: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    explore = torch.rand(q.shape[0], generator=g) < epsilon
    random_actions = torch.randint(q.shape[1], (q.shape[0],), generator=g)
    return torch.where(explore, random_actions, torch.argmax(q, dim=1))


@check("epsilon_greedy")
def greedy_when_epsilon_is_zero(ns: Namespace) -> None:
    q = randn(50, 4, seed=0)
    q[3] = torch.tensor([1.0, 2.0, 2.0, 0.0])  # a tie: torch.argmax takes index 1
    with case("epsilon=0: the argmax of each row (ties to the lowest index)", q_values=q):
        got = ns.epsilon_greedy(q.clone(), 0.0, torch.Generator().manual_seed(1))
        assert_equal(got, torch.argmax(q, dim=1), what="actions")
    with case("a single action: always action 0", q_values=torch.ones(3, 1)):
        got = ns.epsilon_greedy(torch.ones(3, 1), 0.7, torch.Generator().manual_seed(2))
        assert_equal(got, torch.zeros(3, dtype=torch.int64), what="actions")


@check("epsilon_greedy")
def same_draws_as_torch(ns: Namespace) -> None:
    q = randn(400, 3, seed=1)
    for epsilon in (0.3, 1.0, 0.05):
        with case(f"epsilon={epsilon}: rand(batch) < epsilon, then randint(actions, (batch,))"):
            got = ns.epsilon_greedy(q, epsilon, torch.Generator().manual_seed(7))
            assert_equal(got, _expected_actions(q, epsilon, 7), what="actions")


@check("epsilon_greedy")
def uniform_exploration_and_bad_epsilon(ns: Namespace) -> None:
    q = torch.zeros(6000, 5)
    q[:, 2] = 1.0
    with case("epsilon=1 over 6000 rows with 5 actions: each action about 1/5 of the time"):
        got = ns.epsilon_greedy(q, 1.0, torch.Generator().manual_seed(3))
        counts = torch.bincount(got, minlength=5)
        p = chi_square_p_value(counts, torch.full((5,), 0.2))
        expect(p > 1e-4, f"action counts {counts.tolist()} are not uniform (p={p:.2g})")
    for bad in (1.5, -0.1):
        with case(f"epsilon={bad} is no probability"):
            assert_raises(
                ns.epsilon_greedy, q[:2], bad, torch.Generator(), exc=ValueError, match=str(bad)
            )


def _transition(k: int) -> tuple[Any, ...]:
    """Transition number k: every field says k, so a sample's rows can be traced."""
    obs = np.array([k, k + 0.5, -k], dtype=np.float64)
    return obs, k % 3, float(k) * 1.5, obs + 100.0, 0.9 if k % 2 else 0.0


def _filled(ns: Namespace, capacity: int, n: int, seed: int = 0) -> Any:
    buffer = ns.ReplayBuffer(capacity, (3,), seed=seed)
    for k in range(n):
        buffer.add(*_transition(k))
    return buffer


def _rows(batch: Any) -> list[int]:
    """The transition number behind each sampled row, after checking its fields agree."""
    ks = batch.obs[:, 0].round().long()
    k = ks.to(torch.float32)
    expect(batch.obs.dtype == torch.float32, f"obs dtype {batch.obs.dtype}, expected float32")
    expect(batch.actions.dtype == torch.int64, f"actions dtype {batch.actions.dtype}, not int64")
    fields = {
        "obs": (batch.obs, torch.stack([k, k + 0.5, -k], dim=1)),
        "actions": (batch.actions, ks % 3),
        "rewards": (batch.rewards, k * 1.5),
        "next_obs": (batch.next_obs, torch.stack([k, k + 0.5, -k], dim=1) + 100.0),
        "discounts": (batch.discounts, torch.where(ks % 2 == 1, 0.9, 0.0)),
        "weights": (batch.weights, torch.ones(len(ks))),
    }
    for name, (got, want) in fields.items():
        assert_close(got, want, what=f"sampled {name} (each row's fields from one transition)")
    return [int(k) for k in ks.tolist()]


@check("ReplayBuffer")
def holds_the_last_capacity_transitions(ns: Namespace) -> None:
    with case("capacity 5 after 3 adds"):
        buffer = _filled(ns, 5, 3)
        assert_equal(len(buffer), 3, what="len(buffer)")
        seen = {k for _ in range(40) for k in _rows(buffer.sample(3))}
        assert_equal(sorted(seen), [0, 1, 2], what="transitions sampled")
    with case("capacity 5 after 12 adds: transitions 7..11 remain"):
        buffer = _filled(ns, 5, 12)
        assert_equal(len(buffer), 5, what="len(buffer)")
        assert_equal(buffer.next_slot, 2, what="next_slot (12 % 5)")
        ks = []
        for _ in range(400):
            batch = buffer.sample(5)
            rows = _rows(batch)
            assert_equal(
                batch.indices.tolist(), [k % 5 for k in rows], what="indices (each row's slot)"
            )
            ks += rows
        assert_equal(sorted(set(ks)), [7, 8, 9, 10, 11], what="transitions sampled")
        counts = torch.bincount(torch.tensor(ks) - 7, minlength=5)
        p = chi_square_p_value(counts, torch.full((5,), 0.2))
        expect(p > 1e-4, f"sampled transitions {counts.tolist()} are not uniform (p={p:.2g})")
    with case("capacity 1: only the newest transition"):
        assert_equal(_rows(_filled(ns, 1, 4).sample(1)), [3], what="sampled")


@check("ReplayBuffer")
def samples_with_its_generator(ns: Namespace) -> None:
    with case("seed=11, 9 transitions, sample(8) three times: torch.randint(0, 9, (8,))"):
        buffer = _filled(ns, 20, 9, seed=11)
        g = torch.Generator().manual_seed(11)
        for _ in range(3):
            expected = torch.randint(0, 9, (8,), generator=g)
            batch = buffer.sample(8)
            assert_equal(batch.indices, expected, what="indices (from the buffer's generator)")
            assert_equal(_rows(batch), expected.tolist(), what="transitions")


@check("ReplayBuffer")
def errors_name_the_numbers(ns: Namespace) -> None:
    with case("sampling 6 from a buffer holding 5"):
        buffer = _filled(ns, 10, 5)
        err = assert_raises(buffer.sample, 6, exc=ValueError, match="6")
        expect("5" in str(err), f"the message {str(err)!r} should say the buffer holds 5")
    with case("sampling from an empty buffer"):
        assert_raises(ns.ReplayBuffer(4, (3,)).sample, 1, exc=ValueError)
    with case("capacity=0"):
        assert_raises(ns.ReplayBuffer, 0, (3,), exc=ValueError, match="0")
