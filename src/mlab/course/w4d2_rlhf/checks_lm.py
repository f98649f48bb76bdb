r"""Checks for part 3 of w4d2: left padding against torch's ``pad_sequence``
(``padding_side="left"``); the response mask against a loop over each row; response log
probabilities against ``F.cross_entropy`` on the shifted logits; the KL estimators against
their formulas and, sampled, against the exact KL from ``F.kl_div`` (the unbiased ones must
agree with it on average, over a small vocabulary); the per-token rewards and the adaptive
coefficient against numbers worked by hand."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F
from torch.nn.utils.rnn import pad_sequence

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


@check("left_pad_prompts")
def left_pad_matches_torch(ns: Namespace) -> None:
    g = generator(0)
    for lengths, pad in (([3, 1, 5, 2], 0), ([4, 4], 7), ([1], 3), ([2, 6], 50)):
        prompts = [torch.randint(1, 100, (n,), generator=g).tolist() for n in lengths]
        with case(f"prompts of lengths {lengths}, pad_token_id={pad}"):
            ids, mask = ns.left_pad_prompts(prompts, pad)
            seqs = [torch.tensor(p) for p in prompts]
            want = pad_sequence(seqs, batch_first=True, padding_value=pad, padding_side="left")
            assert_equal(ids, want, what="ids")
            ones = [torch.ones(n, dtype=torch.long) for n in lengths]
            want_mask = pad_sequence(ones, batch_first=True, padding_value=0, padding_side="left")
            assert_equal(mask, want_mask, what="attention mask")
    with case("prompts given as tuples"):
        ids, _ = ns.left_pad_prompts([(1, 2), (3,)], 0)
        assert_equal(ids, torch.tensor([[1, 2], [0, 3]]), what="ids")


@check("left_pad_prompts")
def left_pad_refuses_bad_input(ns: Namespace) -> None:
    with case("no prompts"):
        assert_raises(ns.left_pad_prompts, [], 0, exc=ValueError, match="no prompts")
    with case("an empty prompt, the second of three"):
        assert_raises(ns.left_pad_prompts, [[1], [], [2]], 0, exc=ValueError, match="prompt 1")


def _mask_by_loop(responses: Tensor, eos: int) -> Tensor:
    out = torch.zeros(responses.shape)
    for r, row in enumerate(responses.tolist()):
        for t, token in enumerate(row):
            out[r, t] = 1.0
            if token == eos:
                break
    return out


@check("response_mask")
def response_mask_by_hand(ns: Namespace) -> None:
    with case("eos=2 in the middle, twice, first, and never"):
        responses = torch.tensor([[4, 2, 9, 9], [5, 2, 2, 8], [2, 6, 7, 8], [5, 6, 7, 8]])
        want = torch.tensor(
            [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0] * 4]
        )
        assert_equal(ns.response_mask(responses, 2), want)
    with case("eos_token_id=None: every token counts"):
        assert_equal(ns.response_mask(torch.tensor([[0, 2, 0]]), None), torch.ones(1, 3))
    with case("eos_token_id=0 (a valid id)"):
        assert_equal(
            ns.response_mask(torch.tensor([[3, 0, 5]]), 0), torch.tensor([[1.0, 1.0, 0.0]])
        )


@check("response_mask")
def response_mask_matches_a_loop(ns: Namespace) -> None:
    g = generator(1)
    responses = torch.randint(0, 4, (12, 9), generator=g)
    before = responses.clone()
    with case("12 random rows over 4 token ids, eos=3", responses=responses):
        assert_equal(ns.response_mask(responses, 3), _mask_by_loop(before, 3))
        assert_unchanged(responses, before, what="responses")


def _logits_case(seed: int, batch: int, seq: int, vocab: int) -> tuple[Tensor, Tensor]:
    g = generator(seed)
    return torch.randn(batch, seq, vocab, generator=g) * 2, torch.randint(
        0, vocab, (batch, seq), generator=g
    )


@check("response_log_probs")
def response_log_probs_match_cross_entropy(ns: Namespace) -> None:
    for seed, (batch, seq, vocab, prompt_len) in enumerate(
        [(3, 9, 11, 4), (2, 5, 7, 1), (1, 6, 5, 5)]
    ):
        logits, seqs = _logits_case(seed, batch, seq, vocab)
        with case(f"{batch} sequences of {seq} tokens, prompt_len={prompt_len}"):
            got = ns.response_log_probs(logits, seqs, prompt_len)
            scores = logits[:, prompt_len - 1 : -1]
            want = -F.cross_entropy(scores.transpose(1, 2), seqs[:, prompt_len:], reduction="none")
            assert_close(got, want, atol=1e-5)
    logits, seqs = _logits_case(5, 2, 7, 9)
    with case("bfloat16 logits: the log_softmax in float32"):
        got = ns.response_log_probs(logits.bfloat16(), seqs, 3)
        scores = logits.bfloat16().float()[:, 2:-1]
        want = scores.log_softmax(-1).gather(-1, seqs[:, 3:, None]).squeeze(-1)
        assert_close(got, want, atol=1e-5)


@check("response_log_probs")
def response_log_probs_refuse_bad_input(ns: Namespace) -> None:
    logits, seqs = _logits_case(0, 2, 5, 7)
    with case("prompt_len=0: nothing scores the first token"):
        assert_raises(ns.response_log_probs, logits, seqs, 0, exc=ValueError, match="prompt_len=0")
    with case("prompt_len=5 for sequences of 5: nothing generated"):
        assert_raises(ns.response_log_probs, logits, seqs, 5, exc=ValueError, match="prompt_len=5")
    with case("logits of 4 positions for sequences of 5"):
        assert_raises(ns.response_log_probs, logits[:, :4], seqs, 2, exc=ShapeError, match="(2, 5)")


@check("kl_estimate")
def kl_estimators_by_formula(ns: Namespace) -> None:
    g = generator(2)
    log_p = torch.randn(3, 5, generator=g, dtype=torch.float64) - 2
    log_ref = torch.randn(3, 5, generator=g, dtype=torch.float64) - 2
    saved = (log_p.clone(), log_ref.clone())
    log_r = saved[1] - saved[0]
    want = {"k1": -log_r, "k2": 0.5 * log_r**2, "k3": log_r.exp() - 1 - log_r}
    for kind, expected in want.items():
        with case(f"kind={kind!r} on 3x5 log probs", log_p=log_p, log_ref=log_ref):
            assert_close(ns.kl_estimate(log_p, log_ref, kind), expected)
            assert_unchanged(log_p, saved[0], what="log_p")
    with case("the default kind is 'k1'"):
        assert_close(ns.kl_estimate(log_p, log_ref), want["k1"])
    with case("log_p=-1, log_ref=-2, k3: e^-1 - 1 + 1 = 0.3679"):
        got = ns.kl_estimate(torch.tensor([-1.0]), torch.tensor([-2.0]), "k3")
        assert_close(got, torch.tensor([0.36787944]), atol=1e-6)


@check("kl_estimate")
def kl_estimators_are_unbiased(ns: Namespace) -> None:
    g = generator(3)
    for vocab in (2, 5):
        p = torch.randn(vocab, generator=g, dtype=torch.float64).mul(1.5).log_softmax(-1)
        q = torch.randn(vocab, generator=g, dtype=torch.float64).mul(1.5).log_softmax(-1)
        exact = F.kl_div(q, p, log_target=True, reduction="sum")
        tokens = torch.multinomial(p.exp(), 200_000, replacement=True, generator=g)
        for kind in ("k1", "k3"):
            with case(f"{kind} over 200,000 tokens sampled from a {vocab}-token policy"):
                est = ns.kl_estimate(p[tokens], q[tokens], kind)
                spread = 4 * float(est.std()) / 200_000**0.5
                expect(
                    abs(float(est.mean()) - float(exact)) < spread,
                    f"the mean estimate {float(est.mean()):.5f} should be the exact KL "
                    f"{float(exact):.5f} (within {spread:.5f}): {kind} is unbiased for tokens "
                    "drawn from the policy",
                )
        with case("k3 is never negative"):
            expect(
                bool((ns.kl_estimate(p[tokens], q[tokens], "k3") >= 0).all()),
                "k3 = (r - 1) - log r is never negative",
            )


@check("kl_estimate")
def kl_estimate_refuses_bad_input(ns: Namespace) -> None:
    a = torch.zeros(2, 3)
    with case("kind='k4'"):
        assert_raises(ns.kl_estimate, a, a, "k4", exc=ValueError, match="'k4'")
    with case("log_ref (3, 2) for log_p (2, 3)"):
        assert_raises(ns.kl_estimate, a, torch.zeros(3, 2), exc=ShapeError, match="(3, 2)")


@check("exact_kl")
def exact_kl_matches_kl_div(ns: Namespace) -> None:
    g = generator(4)
    for shape in ((6,), (4, 7), (2, 3, 5)):
        logits = torch.randn(shape, generator=g) * 2
        ref = torch.randn(shape, generator=g) * 2 + 1
        saved = (logits.clone(), ref.clone())
        with case(f"scores of shape {shape}", logits=logits, ref_logits=ref):
            want = F.kl_div(
                saved[1].log_softmax(-1), saved[0].log_softmax(-1), log_target=True,
                reduction="none",
            ).sum(-1)  # fmt: skip
            assert_close(ns.exact_kl(logits, ref), want, atol=1e-5)
            assert_unchanged(logits, saved[0], what="logits")
            assert_unchanged(ref, saved[1], what="ref_logits")
    with case("identical distributions (scores shifted by a constant): KL 0"):
        x = torch.randn(3, 8, generator=g)
        assert_close(ns.exact_kl(x, x + 4.0), torch.zeros(3), atol=1e-5)
    with case("tokens the policy cannot pick (-inf scores), also impossible for the reference"):
        logits = torch.tensor([[0.0, 1.0, float("-inf")], [2.0, float("-inf"), float("-inf")]])
        ref = torch.tensor([[1.0, 0.0, float("-inf")], [0.0, 0.0, float("-inf")]])
        want = F.kl_div(ref.log_softmax(-1), logits.log_softmax(-1), log_target=True,
                        reduction="none").nan_to_num().sum(-1)  # fmt: skip
        assert_close(ns.exact_kl(logits, ref), want, atol=1e-5)


@check("exact_kl")
def exact_kl_refuses_bad_shapes(ns: Namespace) -> None:
    with case("ref_logits (2, 6) for logits (2, 5)"):
        assert_raises(
            ns.exact_kl, torch.zeros(2, 5), torch.zeros(2, 6), exc=ShapeError, match="(2, 6)"
        )


@check("token_rewards")
def token_rewards_by_hand(ns: Namespace) -> None:
    log_p = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, -1.0]])
    log_ref = torch.tensor([[-2.0, -2.0, -1.5], [-0.5, -3.0, -1.0]])
    scores = torch.tensor([0.8, -0.4])
    with case("beta=0.1, every token counts: -0.1 * (log_p - log_ref), score at the last"):
        got = ns.token_rewards(scores, log_p, log_ref, torch.ones(2, 3), 0.1)
        want = torch.tensor([[-0.1, 0.0, -0.1 + 0.8], [0.05, -0.2, 0.0 - 0.4]])
        assert_close(got, want, atol=1e-6)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    with case("beta=0.1, the first row ends at token 1, the second at token 0", mask=mask):
        got = ns.token_rewards(scores, log_p, log_ref, mask, 0.1)
        want = torch.tensor([[-0.1, 0.0 + 0.8, 0.0], [0.05 - 0.4, 0.0, 0.0]])
        assert_close(got, want, atol=1e-6)
    with case("beta=0: only the score"):
        got = ns.token_rewards(scores, log_p, log_ref, torch.ones(2, 3), 0.0)
        assert_close(got, torch.tensor([[0.0, 0.0, 0.8], [0.0, 0.0, -0.4]]), atol=1e-6)


@check("token_rewards")
def token_rewards_are_data(ns: Namespace) -> None:
    g = generator(6)
    log_p = torch.randn(4, 6, generator=g).requires_grad_(True)
    log_ref = torch.randn(4, 6, generator=g)
    scores = torch.randn(4, generator=g)
    saved = (log_p.detach().clone(), log_ref.clone(), scores.clone())
    with case("log_p that requires grad, 4x6", log_p=log_p, log_ref=log_ref, scores=scores):
        got = ns.token_rewards(scores, log_p, log_ref, torch.ones(4, 6), 0.2)
        expect(not got.requires_grad, "the rewards should not carry a gradient: detach log_p")
        assert_unchanged(log_ref, saved[1], what="log_ref")
        assert_unchanged(scores, saved[2], what="scores")
        want = -0.2 * (saved[0] - saved[1])
        want[:, -1] += saved[2]
        assert_close(got, want, atol=1e-6)


@check("token_rewards")
def token_rewards_refuse_bad_input(ns: Namespace) -> None:
    a = torch.zeros(2, 3)
    with case("scores (3,) for 2 rows"):
        assert_raises(
            ns.token_rewards, torch.zeros(3), a, a, a + 1, 0.1, exc=ShapeError, match="(3,)"
        )
    with case("mask (2, 4) for log_p (2, 3)"):
        assert_raises(
            ns.token_rewards,
            torch.zeros(2),
            a,
            a,
            torch.ones(2, 4),
            0.1,
            exc=ShapeError,
            match="(2, 4)",
        )
    with case("log_ref (2, 4) for log_p (2, 3)"):
        assert_raises(
            ns.token_rewards,
            torch.zeros(2),
            a,
            torch.zeros(2, 4),
            a + 1,
            0.1,
            exc=ShapeError,
            match="(2, 4)",
        )
    with case("a row of the mask with no token that counts (row 1)"):
        mask = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
        assert_raises(
            ns.token_rewards, torch.zeros(2), a, a, mask, 0.1, exc=ValueError, match="row 1"
        )


@check("adaptive_beta")
def adaptive_beta_by_hand(ns: Namespace) -> None:
    # (beta, kl, target, n_steps, horizon) -> the new beta
    cases = [
        ((0.1, 12.0, 6.0, 256, 10_000), 0.1 * (1 + 0.2 * 256 / 10_000)),  # clipped at +0.2
        ((0.1, 6.6, 6.0, 256, 10_000), 0.1 * (1 + 0.1 * 256 / 10_000)),  # within the clip
        ((0.1, 5.4, 6.0, 256, 10_000), 0.1 * (1 - 0.1 * 256 / 10_000)),
        ((0.2, 0.0, 6.0, 64, 1_000), 0.2 * (1 - 0.2 * 64 / 1_000)),  # clipped at -0.2
        ((0.2, 6.0, 6.0, 64, 1_000), 0.2),  # on target: unchanged
        ((0.05, 9.0, 3.0, 1000, 1000), 0.05 * 1.2),
        ((0.1, 0.6, 0.5, 10, 1), 0.1 * (1 + 0.2 * 10)),  # a target and a horizon below 1
    ]
    for args, want in cases:
        beta, kl, target, n, horizon = args
        with case(f"beta={beta}, kl={kl}, target={target}, n_steps={n}, horizon={horizon}"):
            got = ns.adaptive_beta(beta, kl, target, n, horizon)
            assert_close(got, want, rtol=1e-9, atol=1e-12)


@check("adaptive_beta")
def adaptive_beta_refuses_bad_input(ns: Namespace) -> None:
    with case("target=0"):
        assert_raises(ns.adaptive_beta, 0.1, 1.0, 0.0, 10, 100, exc=ValueError, match="target=0")
    with case("horizon=0"):
        assert_raises(ns.adaptive_beta, 0.1, 1.0, 6.0, 10, 0, exc=ValueError, match="horizon=0")
