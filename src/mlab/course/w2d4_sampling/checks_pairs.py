"""Checks for part 3 of w2d4: decoding from a pair of contexts and scoring a suffix, against
the same quantities computed naively with transformers' GPT-2 (each context, each full
string, encoded from scratch), and a count of the model calls that proves the batching and
the cache reuse."""

from __future__ import annotations

from functools import cache
from typing import Any

import torch
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.course.w2d4_sampling.hf_reference import model_pair, ragged_batch
from mlab.errors import ShapeError
from mlab.testing import assert_close, assert_equal, assert_raises, case, expect, generator

VOCAB = 40


@cache
def _models() -> tuple[Any, Any]:
    return model_pair(seed=1, vocab_size=VOCAB)


class _Counting:
    """Our model, recording the (rows, new tokens, cached) of every call."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.config = model.config
        self.calls: list[tuple[int, int, int]] = []

    def __call__(self, input_ids: Tensor, *args: Any, **kwargs: Any) -> Any:
        past = kwargs.get("past_key_values")
        cached = 0 if past is None else int(past[0][0].shape[-2])
        self.calls.append((input_ids.shape[0], input_ids.shape[1], cached))
        return self.model(input_ids, *args, **kwargs)


def _combined(la: Tensor, lb: Tensor, mode: str, alpha: float) -> Tensor:
    return (la + lb if mode == "product" else la - alpha * lb).log_softmax(-1)


@check("combine_log_probs")
def combine_equals_the_formula(ns: Namespace) -> None:
    g = generator(1)
    la = torch.randn(3, 25, generator=g).log_softmax(-1)
    lb = (torch.randn(3, 25, generator=g) * 3).log_softmax(-1)
    for mode, alpha in (("product", 1.0), ("contrastive", 1.0), ("contrastive", 0.3)):
        with case(f"mode={mode!r}, alpha={alpha}"):
            got = ns.combine_log_probs(la, lb, mode, alpha)
            assert_close(got, _combined(la, lb, mode, alpha), atol=1e-6, what="log probs")
    with case("mode='contrastive' with the default alpha (1.0)"):
        got = ns.combine_log_probs(la, lb, "contrastive")
        assert_close(got, _combined(la, lb, "contrastive", 1.0), atol=1e-6)
    with case("mode='product' ignores alpha=5.0"):
        got = ns.combine_log_probs(la, lb, "product", 5.0)
        assert_close(got, _combined(la, lb, "product", 1.0), atol=1e-6)


@check("combine_log_probs")
def combine_refuses_bad_input(ns: Namespace) -> None:
    la = torch.zeros(2, 5)
    with case("mode='sum'"):
        assert_raises(ns.combine_log_probs, la, la, "sum", exc=ValueError, match="'sum'")
    with case("shapes (2, 5) and (2, 6)"):
        assert_raises(
            ns.combine_log_probs, la, torch.zeros(2, 6), "product", exc=ShapeError, match="(2, 6)"
        )


def _naive_paired(a: Tensor, b: Tensor, mode: str, alpha: float, n: int) -> Tensor:
    """Greedy: each context re-encoded in full by HF's model at every step."""
    hf = _models()[0]
    new = []
    with torch.no_grad():
        for _ in range(n):
            la = hf(a[None]).logits[:, -1].float().log_softmax(-1)
            lb = hf(b[None]).logits[:, -1].float().log_softmax(-1)
            token = _combined(la, lb, mode, alpha).argmax(-1)
            new.append(token[0])
            a, b = torch.cat([a, token]), torch.cat([b, token])
    return torch.stack(new)


# (mode, alpha, sampled, lengths of the contexts a, lengths of the contexts b)
CASES = (
    ("product", 1.0, False, (3, 6), (8, 2)),
    ("contrastive", 0.5, False, (9, 4), (2, 5)),
    ("contrastive", 2.0, True, (3, 6), (8, 2)),
    ("product", 1.0, False, (5, 5), (7, 7)),
)


def _contexts(la: tuple[int, ...], lb: tuple[int, ...]) -> tuple[Tensor, ...]:
    return (*ragged_batch(list(la), VOCAB, seed=20), *ragged_batch(list(lb), VOCAB, seed=21))


@cache
def _expected_paired(
    mode: str, alpha: float, sample: bool, la: tuple[int, ...], lb: tuple[int, ...]
) -> Tensor:
    ids_a, mask_a, ids_b, mask_b = _contexts(la, lb)
    rows = [(ids_a[r, mask_a[r] == 1], ids_b[r, mask_b[r] == 1]) for r in range(ids_a.shape[0])]
    if not sample:
        return torch.stack([_naive_paired(a, b, mode, alpha, 6) for a, b in rows])
    return _naive_sampled_batch(rows, mode, alpha, 6, generator(9))


def _naive_sampled_batch(
    rows: list[tuple[Tensor, Tensor]], mode: str, alpha: float, n: int, g: torch.Generator
) -> Tensor:
    """Sampled: every row's contexts re-encoded in full, one draw for all rows per step."""
    hf = _models()[0]
    contexts = [list(r) for r in rows]
    new = []
    with torch.no_grad():
        for _ in range(n):
            scores = torch.cat(
                [
                    _combined(
                        hf(a[None]).logits[:, -1].float().log_softmax(-1),
                        hf(b[None]).logits[:, -1].float().log_softmax(-1),
                        mode,
                        alpha,
                    )
                    for a, b in contexts
                ]
            )
            tokens = torch.multinomial(scores.exp(), 1, generator=g)[:, 0]
            new.append(tokens)
            for pair, t in zip(contexts, tokens, strict=True):
                pair[0], pair[1] = torch.cat([pair[0], t[None]]), torch.cat([pair[1], t[None]])
    return torch.stack(new, dim=1)


@check("generate_paired")
def paired_equals_naive(ns: Namespace) -> None:
    for mode, alpha, sample, la, lb in CASES:
        ids_a, mask_a, ids_b, mask_b = _contexts(la, lb)
        how = "sampled with generator(9)" if sample else "greedy"
        unpadded = la[0] == la[1] and lb[0] == lb[1]
        masks = "no masks" if unpadded else "left-padded"
        with case(
            f"{how}, mode={mode!r}, alpha={alpha}: contexts a of lengths {list(la)}, "
            f"b {list(lb)}, {masks}"
        ):
            model = _Counting(_models()[1])
            got = ns.generate_paired(
                model,
                ids_a,
                ids_b,
                None if unpadded else mask_a,
                None if unpadded else mask_b,
                mode=mode,
                alpha=alpha,
                max_new_tokens=6,
                do_sample=sample,
                generator=generator(9) if sample else None,
            )
            assert_equal(got, _expected_paired(mode, alpha, sample, la, lb), what="new tokens")
            _one_batch_per_step(model.calls, 6, 4)


def _one_batch_per_step(calls: list[tuple[int, int, int]], steps: int, rows: int) -> None:
    expect(
        len(calls) <= steps,
        f"{len(calls)} model calls for {steps} tokens: run both contexts in one batch, once "
        "per step (the last token needs no call)",
    )
    expect(
        all(r == rows for r, _, _ in calls),
        f"calls had {[r for r, _, _ in calls]} rows: each should hold every context a and b",
    )
    expect(
        all(n == 1 and cached > 0 for _, n, cached in calls[1:]),
        f"after the first call each should feed one new token on top of the cache; got "
        f"(new tokens, cached) = {[(n, c) for _, n, c in calls]}",
    )


@check("generate_paired")
def paired_refuses_mismatched_batches(ns: Namespace) -> None:
    ours = _models()[1]
    with case("2 contexts a, 3 contexts b"):
        assert_raises(
            ns.generate_paired,
            ours,
            torch.ones(2, 3, dtype=torch.long),
            torch.ones(3, 3, dtype=torch.long),
            exc=ShapeError,
            match="2 first contexts but 3",
        )
    with case("mask_a of shape (1, 4) for ids_a of shape (1, 3)"):
        assert_raises(
            ns.generate_paired,
            ours,
            torch.ones(1, 3, dtype=torch.long),
            torch.ones(1, 3, dtype=torch.long),
            torch.ones(1, 4, dtype=torch.long),
            exc=ShapeError,
            match="attention_mask",
        )
    with case("mask_b of shape (1, 2) for ids_b of shape (1, 3)"):
        assert_raises(
            ns.generate_paired,
            ours,
            torch.ones(1, 3, dtype=torch.long),
            torch.ones(1, 3, dtype=torch.long),
            None,
            torch.ones(1, 2, dtype=torch.long),
            exc=ShapeError,
            match="attention_mask",
        )
    with case("a context b of 48 tokens and max_new_tokens=2 (n_positions=48)"):
        assert_raises(
            ns.generate_paired,
            ours,
            torch.ones(1, 3, dtype=torch.long),
            torch.ones(1, 48, dtype=torch.long),
            max_new_tokens=2,
            exc=ShapeError,
            match="n_positions",
        )


@cache
def _suffix_case() -> tuple[Tensor, list[Tensor], Tensor, Tensor]:
    g = generator(30)
    prompt = torch.randint(4, VOCAB, (5,), generator=g)
    suffix = torch.randint(4, VOCAB, (4,), generator=g)
    conts = [torch.randint(4, VOCAB, (n,), generator=g) for n in (0, 3, 1, 9, 3)]
    hf = _models()[0]
    expected = []
    with torch.no_grad():
        for c in conts:
            lp = hf(torch.cat([prompt, c, suffix])[None]).logits[0].float().log_softmax(-1)
            start = len(prompt) + len(c) - 1
            expected.append(lp[start + torch.arange(len(suffix)), suffix].sum())
    return prompt, conts, suffix, torch.stack(expected)


@check("suffix_log_probs")
def suffix_equals_naive(ns: Namespace) -> None:
    prompt, conts, suffix, expected = _suffix_case()
    with case("prompt of 5 tokens, continuations of 0, 3, 1, 9, 3 tokens, suffix of 4"):
        model = _Counting(_models()[1])
        got = ns.suffix_log_probs(model, prompt, conts, suffix)
        assert_close(got, expected, atol=1e-4, what="log p(suffix | prompt + continuation)")
        expect(
            len(model.calls) == 2 and model.calls[0][0] == 1 and model.calls[1][0] == len(conts),
            f"calls (rows, new tokens, cached) {model.calls}: encode the prompt once, then "
            "every continuation with the suffix in one batch on top of its cache",
        )
        expect(
            model.calls[1][2] == len(prompt),
            f"the batch of continuations saw {model.calls[1][2]} cached positions: it should "
            f"reuse the prompt's {len(prompt)}",
        )
    with case("one continuation, a suffix of one token"):
        got = ns.suffix_log_probs(_models()[1], prompt, conts[3:4], suffix[:1])
        with torch.no_grad():
            full = torch.cat([prompt, conts[3], suffix[:1]])[None]
            lp = _models()[0](full).logits[0, -2].float().log_softmax(-1)[suffix[0]]
        assert_close(got, lp[None], atol=1e-4, what="log p(suffix | prompt + continuation)")


@check("suffix_log_probs")
def suffix_refuses_bad_input(ns: Namespace) -> None:
    ours = _models()[1]
    prompt = torch.tensor([5, 6, 7])
    with case("an empty suffix"):
        assert_raises(
            ns.suffix_log_probs, ours, prompt, [prompt], prompt[:0], exc=ShapeError, match="(0,)"
        )
    with case("an empty prompt"):
        assert_raises(
            ns.suffix_log_probs, ours, prompt[:0], [prompt], prompt, exc=ShapeError, match="(0,)"
        )
    with case("prompt 3 + continuations of 43 and 2 + suffix 3 = 49 > n_positions=48"):
        assert_raises(
            ns.suffix_log_probs,
            ours,
            prompt,
            [torch.full((43,), 5), prompt[:2]],
            prompt,
            exc=ShapeError,
            match="longest continuation (43)",
        )
    with case("no continuations"):
        assert_raises(ns.suffix_log_probs, ours, prompt, [], prompt, exc=ValueError, match="no")


@check("suffix_log_probs")
def suffix_fits_the_context_exactly(ns: Namespace) -> None:
    ours, hf = _models()[1], _models()[0]
    prompt, suffix = torch.tensor([5, 6, 7]), torch.tensor([8, 9, 10])
    cont = torch.arange(42) % 30 + 4
    with case("prompt 3 + continuation 42 + suffix 3 = n_positions=48"):
        got = ns.suffix_log_probs(ours, prompt, [cont], suffix)
        with torch.no_grad():
            lp = hf(torch.cat([prompt, cont, suffix])[None]).logits[0].float().log_softmax(-1)
        expected = lp[44 + torch.arange(3), suffix].sum()
        assert_close(got, expected[None], atol=1e-4, what="log p(suffix | prompt + continuation)")
