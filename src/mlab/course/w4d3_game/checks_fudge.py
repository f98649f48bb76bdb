r"""Checks for part 2 of w4d3: FUDGE's distribution against the brute-force product
$p(x) P(a \mid x)^s$ over the whole vocabulary, normalised (and over the top $k$ tokens
only), computed entry by entry in float64; the candidate rows against a loop; the prefix
loss against ``F.binary_cross_entropy_with_logits`` on each real position, one at a time."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_raises,
    assert_unchanged,
    case,
    expect,
    generator,
)


def _brute_force(
    lm_logits: torch.Tensor, candidates: torch.Tensor, attr: torch.Tensor, strength: float
) -> torch.Tensor:
    """Probabilities over the vocabulary: $p(x) P(a|x)^s / Z$ on the candidates, 0 elsewhere."""
    out = torch.zeros(lm_logits.shape, dtype=torch.float64)
    for b in range(lm_logits.shape[0]):
        row = [math.exp(v) for v in lm_logits[b].double().tolist()]
        p = [v / sum(row) for v in row]
        for j, tok in enumerate(candidates[b].tolist()):
            out[b, tok] = p[tok] * math.exp(float(attr[b, j])) ** strength
        out[b] /= out[b].sum()
    return out


@check("fudge_log_probs")
def fudge_by_hand(ns: Namespace) -> None:
    lm = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    attr = torch.log(torch.tensor([[0.2, 0.9]]))
    with case(
        "p = [0.5, 0.3, 0.2], candidates [0, 1] with P(a) = [0.2, 0.9]: "
        "q = [0.1, 0.27] / 0.37 on the candidates, 0 on token 2"
    ):
        got = ns.fudge_log_probs(lm, torch.tensor([[0, 1]]), attr)
        assert_close(got.exp(), torch.tensor([[0.1 / 0.37, 0.27 / 0.37, 0.0]]), atol=1e-6)
        expect(
            bool(torch.isneginf(got[0, 2])),
            f"a token outside the candidates should get log probability -inf, got "
            f"{float(got[0, 2])}",
        )


@check("fudge_log_probs")
def fudge_matches_brute_force_product(ns: Namespace) -> None:
    g = generator(0)
    vocab = 7
    for batch, strength in ((3, 1.0), (2, 2.5), (1, 0.0)):
        lm = 3 * torch.randn(batch, vocab, generator=g, dtype=torch.float64) + 4.0
        everything = torch.stack([torch.randperm(vocab, generator=g) for _ in range(batch)])
        attr = F.logsigmoid(2 * torch.randn(batch, vocab, generator=g, dtype=torch.float64))
        before = lm.clone()
        with case(
            f"k = the whole vocabulary ({vocab}) in shuffled order, strength={strength}, "
            "raw logits (not normalised)",
            lm_logits=lm,
            candidates=everything,
        ):
            got = ns.fudge_log_probs(lm, everything, attr, strength)
            assert_close(got.exp(), _brute_force(before, everything, attr, strength), atol=1e-9)
            assert_unchanged(lm, before, what="lm_logits")
        top = lm.topk(3, dim=-1).indices
        with case(f"the top 3 tokens only, strength={strength}", candidates=top):
            got = ns.fudge_log_probs(lm, top, attr[:, :3], strength)
            assert_close(got.exp(), _brute_force(lm, top, attr[:, :3], strength), atol=1e-9)


@check("fudge_log_probs")
def fudge_default_strength_is_one(ns: Namespace) -> None:
    g = generator(1)
    lm = torch.randn(2, 5, generator=g)
    cand = torch.tensor([[4, 1], [0, 2]])
    attr = F.logsigmoid(torch.randn(2, 2, generator=g))
    with case("no strength given: the plain product p(x) P(a|x)"):
        got = ns.fudge_log_probs(lm, cand, attr)
        assert_close(got.exp(), _brute_force(lm, cand, attr, 1.0).float(), atol=1e-6)


@check("fudge_log_probs")
def fudge_refuses_bad_shapes(ns: Namespace) -> None:
    lm = torch.zeros(2, 5)
    with case("candidates (2, 3) and attr_log_probs (2, 2)"):
        assert_raises(
            ns.fudge_log_probs,
            lm,
            torch.zeros(2, 3, dtype=torch.long),
            torch.zeros(2, 2),
            exc=ShapeError,
            match="(2, 2)",
        )
    with case("candidates for a batch of 3, lm_logits for 2"):
        assert_raises(
            ns.fudge_log_probs,
            lm,
            torch.zeros(3, 2, dtype=torch.long),
            torch.zeros(3, 2),
            exc=ShapeError,
            match="(3, 2)",
        )


@check("candidate_inputs")
def candidate_inputs_match_a_loop(ns: Namespace) -> None:
    g = generator(2)
    for batch, seq, k in ((1, 2, 2), (3, 4, 5), (2, 1, 1), (4, 3, 2)):
        prefixes = torch.randint(0, 50, (batch, seq), generator=g)
        candidates = torch.randint(50, 99, (batch, k), generator=g)
        with case(
            f"{batch} prefixes of {seq} tokens, {k} candidates each",
            prefixes=prefixes,
            candidates=candidates,
        ):
            want = torch.tensor(
                [
                    [*prefixes[b].tolist(), int(candidates[b, j])]
                    for b in range(batch)
                    for j in range(k)
                ]
            )
            assert_equal(ns.candidate_inputs(prefixes, candidates), want)


@check("candidate_inputs")
def candidate_inputs_refuse_bad_batch(ns: Namespace) -> None:
    with case("prefixes for 2, candidates for 3"):
        assert_raises(
            ns.candidate_inputs,
            torch.zeros(2, 4, dtype=torch.long),
            torch.zeros(3, 2, dtype=torch.long),
            exc=ShapeError,
            match="(3, 2)",
        )


@check("prefix_classifier_loss")
def prefix_loss_matches_each_position(ns: Namespace) -> None:
    g = generator(3)
    logits = torch.randn(3, 5, generator=g, dtype=torch.float64)
    labels = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 1]])
    with case("3 left-padded rows of 5, 9 real prefixes", logits=logits, mask=mask):
        terms = [
            F.binary_cross_entropy_with_logits(logits[b, t], labels[b])
            for b in range(3)
            for t in range(5)
            if mask[b, t]
        ]
        want = torch.stack(terms).mean()
        assert_close(ns.prefix_classifier_loss(logits, labels, mask), want, atol=1e-9)
    with case("no padding: the mean over every position"):
        full = torch.ones(3, 5, dtype=torch.long)
        want = F.binary_cross_entropy_with_logits(logits, labels[:, None].expand(3, 5))
        assert_close(ns.prefix_classifier_loss(logits, labels, full), want, atol=1e-9)
    with case("by hand: logit 0 on one real position, label 1: log 2"):
        got = ns.prefix_classifier_loss(
            torch.tensor([[5.0, 0.0]]), torch.tensor([1.0]), torch.tensor([[0, 1]])
        )
        assert_close(got, torch.tensor(math.log(2)))


@check("prefix_classifier_loss")
def prefix_loss_ignores_padding(ns: Namespace) -> None:
    logits = torch.tensor([[3.0, -1.0, 0.5]], requires_grad=True)
    with case("the first position is padding: its gradient is 0"):
        loss = ns.prefix_classifier_loss(logits, torch.tensor([0.0]), torch.tensor([[0, 1, 1]]))
        loss.backward()
        grad = logits.grad
        expect(
            grad is not None and float(grad[0, 0]) == 0.0,
            f"the padded position got gradient {grad}: leave it out of the mean",
        )


@check("prefix_classifier_loss")
def prefix_loss_refuses_bad_shapes(ns: Namespace) -> None:
    logits = torch.zeros(2, 3)
    with case("mask (2, 4) for logits (2, 3)"):
        assert_raises(
            ns.prefix_classifier_loss,
            logits,
            torch.zeros(2),
            torch.ones(2, 4, dtype=torch.long),
            exc=ShapeError,
            match="(2, 4)",
        )
    with case("labels (3,) for 2 rows"):
        assert_raises(
            ns.prefix_classifier_loss,
            logits,
            torch.zeros(3),
            torch.ones(2, 3, dtype=torch.long),
            exc=ShapeError,
            match="(3,)",
        )
