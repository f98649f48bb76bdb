"""Checks for part 1 of w2d4: the logit processors, against transformers' own
(``TopKLogitsWarper``, ``TopPLogitsWarper``, ``RepetitionPenaltyLogitsProcessor``) on random
scores with ties, plain and left-padded inputs, and the bad values each must refuse."""

from __future__ import annotations

import torch
from torch import Tensor
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from mlab.course.engine.checks import Namespace, check
from mlab.testing import assert_equal, assert_raises, assert_unchanged, case, generator


def _scores(seed: int, vocab: int = 30, dtype: torch.dtype = torch.float32) -> Tensor:
    """Five rows of scores: ties at the top, a block of equal values, a peaked row."""
    x = torch.randn(5, vocab, generator=generator(seed), dtype=dtype) * 2
    x[0, :4] = x[0].max()
    x[1, 10:20] = 0.5
    x[2, 7] = 12.0
    return x


@check("top_k_filter")
def top_k_equals_hf(ns: Namespace) -> None:
    for k in (1, 2, 3, 4, 11, 29, 30, 100):
        x = _scores(k)
        before = x.clone()
        with case(f"k={k} on 5 rows of 30 scores, ties at the top of row 0", k=k):
            assert_equal(ns.top_k_filter(x, k), TopKLogitsWarper(k)(None, before.clone()))
            assert_unchanged(x, before)
    with case("float64 scores, k=2"):
        x = _scores(3, dtype=torch.float64)
        assert_equal(ns.top_k_filter(x, 2), TopKLogitsWarper(2)(None, x.clone()))


@check("top_k_filter")
def top_k_refuses_k_below_one(ns: Namespace) -> None:
    for k in (0, -3):
        with case(f"k={k}", k=k):
            assert_raises(ns.top_k_filter, _scores(0), k, exc=ValueError, match=f"top_k={k}")


@check("top_p_filter")
def top_p_equals_hf(ns: Namespace) -> None:
    for p in (0.01, 0.2, 0.5, 0.75, 0.9, 0.99, 1.0):
        for keep in (1, 3):
            x = _scores(int(p * 100))
            before = x.clone()
            with case(f"p={p}, min_tokens_to_keep={keep}", p=p):
                expected = TopPLogitsWarper(p, min_tokens_to_keep=keep)(None, before.clone())
                assert_equal(ns.top_p_filter(x, p, keep), expected)
                assert_unchanged(x, before)
    uniform = torch.zeros(1, 8)  # probabilities 1/8: cumulative sums exactly 1 - p
    for p in (0.5, 0.75, 0.125):
        with case(f"8 equal scores, p={p}: the cumulative mass hits 1 - p exactly", p=p):
            expected = TopPLogitsWarper(p)(None, uniform.clone())
            assert_equal(ns.top_p_filter(uniform, p), expected)
    with case("the default min_tokens_to_keep (1), p=0.3, one row"):
        x = _scores(4)[3:4]
        assert_equal(ns.top_p_filter(x, 0.3), TopPLogitsWarper(0.3)(None, x.clone()))


@check("top_p_filter")
def top_p_refuses_values_outside_0_1(ns: Namespace) -> None:
    for p in (0.0, -0.5, 1.5):
        with case(f"p={p}", p=p):
            assert_raises(ns.top_p_filter, _scores(0), p, exc=ValueError, match=f"top_p={p}")


@check("repetition_penalty")
def repetition_penalty_equals_hf(ns: Namespace) -> None:
    g = generator(7)
    ids = torch.randint(0, 30, (5, 9), generator=g)
    ids[0, :5] = 4  # one token many times: penalised once
    for penalty in (0.6, 1.0, 1.3, 3.0):
        x = _scores(int(penalty * 10))
        before = x.clone()
        with case(f"penalty={penalty}, no padding", penalty=penalty):
            expected = RepetitionPenaltyLogitsProcessor(penalty)(ids, before.clone())
            assert_equal(ns.repetition_penalty(x, ids, penalty), expected)
            assert_unchanged(x, before)
        first = torch.tensor([0, 3, 9, 2, 5])
        with case(f"penalty={penalty}, rows left-padded up to columns {first.tolist()}"):
            theirs = RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=first)
            assert_equal(ns.repetition_penalty(x, ids, penalty, first), theirs(ids, x.clone()))


@check("repetition_penalty")
def repetition_penalty_refuses_bad_input(ns: Namespace) -> None:
    x, ids = _scores(0), torch.zeros(5, 3, dtype=torch.long)
    for penalty in (0.0, -1.0):
        with case(f"penalty={penalty}", penalty=penalty):
            assert_raises(
                ns.repetition_penalty, x, ids, penalty, exc=ValueError, match=f"={penalty}"
            )
    with case("input_ids with 4 rows for 5 rows of scores"):
        assert_raises(ns.repetition_penalty, x, ids[:4], 1.2, exc=ValueError, match="4 rows")
