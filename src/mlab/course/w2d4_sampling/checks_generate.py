"""Checks for part 2 of w2d4: ``generate`` and ``beam_search`` against transformers'
``GPT2LMHeadModel.generate`` holding the same weights (hf_reference.py), token for token, on a
ragged left-padded batch: greedy with each option, sampling from the same seed (HF draws
with ``torch.multinomial`` from torch's global generator) and statistically (chi-squared
against HF's processed distribution), stop strings against ``StopStringCriteria``, beam
search with each option; then batched = unbatched, cached = uncached, and bad input.

HF's outputs are computed once per check process (``functools.cache``): they do not depend
on the code under check."""

from __future__ import annotations

from functools import cache
from typing import Any

import torch
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.course.w2d4_sampling.hf_reference import (
    EOS,
    PAD,
    hf_generate,
    hf_processed,
    model_pair,
    ragged_batch,
    stop_string_vocabulary,
)
from mlab.errors import ShapeError
from mlab.testing import assert_equal, assert_raises, case, chi_square_p_value, expect, generator

VOCAB = 40
LENGTHS = [4, 7, 1, 5]


class _Counting:
    """Our model, recording the (rows, new tokens, cached positions) of every call."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.config = model.config
        self.calls: list[tuple[int, int, int]] = []

    def __call__(self, input_ids: Tensor, *args: Any, **kwargs: Any) -> Any:
        past = kwargs.get("past_key_values")
        cached = 0 if past is None else int(past[0][0].shape[-2])
        self.calls.append((input_ids.shape[0], input_ids.shape[1], cached))
        return self.model(input_ids, *args, **kwargs)


def _hf_run(**kwargs: Any) -> tuple[Tensor, int]:
    """HF's output on the batch, and how many forward passes its generate made."""
    hf = _models()[0]
    calls: list[int] = []
    hook = hf.register_forward_hook(lambda *_: calls.append(1))
    try:
        torch.manual_seed(SEED)
        out = hf_generate(hf, *_batch(), **kwargs)
    finally:
        hook.remove()
    return out, len(calls)


def _uses_the_cache(calls: list[tuple[int, int, int]], steps: int, use_cache: bool) -> None:
    expect(
        len(calls) == steps,
        f"{len(calls)} model calls where HuggingFace made {steps}: one per step, and stop "
        "when every row has finished (beam search: when no running beam can win)",
    )
    if use_cache:
        expect(
            all(n == 1 and cached > 0 for _, n, cached in calls[1:]),
            "with use_cache=True every call after the first should feed one token per row "
            f"on top of the cache; got (new tokens, cached) = {[c[1:] for c in calls]}",
        )
    else:
        expect(
            all(cached == 0 for _, _, cached in calls),
            f"use_cache=False should pass no cache; got (new tokens, cached) = "
            f"{[c[1:] for c in calls]}",
        )


@cache
def _models() -> tuple[Any, Any]:
    return model_pair(seed=0, vocab_size=VOCAB)


@cache
def _batch() -> tuple[Tensor, Tensor]:
    return ragged_batch(LENGTHS, VOCAB, seed=3)


GREEDY: dict[str, dict[str, Any]] = {
    "greedy": {},
    "greedy, no eos_token_id": {"eos_token_id": None},
    "greedy, repetition_penalty=1.4": {"repetition_penalty": 1.4},
    "greedy, min_new_tokens=6": {"min_new_tokens": 6},
    "greedy, two eos tokens [3, 7]": {"eos_token_id": [EOS, 7]},
    "greedy, eos [7, 3], no pad_token_id (fill with 7)": {
        "eos_token_id": [7, EOS],
        "pad_token_id": None,
    },
    "sampling, temperature=0.7, top_k=5": {"do_sample": True, "temperature": 0.7, "top_k": 5},
    "sampling, top_p=0.8": {"do_sample": True, "top_p": 0.8},
    "sampling, temperature=1.5, repetition_penalty=1.2, min_new_tokens=4": {
        "do_sample": True,
        "temperature": 1.5,
        "repetition_penalty": 1.2,
        "min_new_tokens": 4,
    },
    "sampling, top_k=8, top_p=0.9, temperature=0.8": {
        "do_sample": True,
        "top_k": 8,
        "top_p": 0.9,
        "temperature": 0.8,
    },
}
SEED = 11


def _options(name: str) -> dict[str, Any]:
    return {"max_new_tokens": 9, "eos_token_id": EOS, "pad_token_id": PAD, **GREEDY[name]}


def _hf_options(name: str) -> dict[str, Any]:
    """HF fills with its config's pad token when pad_token_id is None: name ours' default."""
    options = _options(name)
    if options["pad_token_id"] is None:
        options["pad_token_id"] = options["eos_token_id"][0]
    return options


@cache
def _hf_decoded(name: str) -> tuple[Tensor, int]:
    return _hf_run(**_hf_options(name))


@check("generate")
def generate_equals_hf(ns: Namespace) -> None:
    ids, mask = _batch()
    ours = _models()[1]
    for name in GREEDY:
        options = _options(name)
        expected, steps = _hf_decoded(name)
        with case(f"{name}: prompts of lengths {LENGTHS} left-padded", **options):
            torch.manual_seed(SEED)
            model = _Counting(ours)
            assert_equal(ns.generate(model, ids, mask, **options), expected, what="sequences")
            _uses_the_cache(model.calls, steps, use_cache=True)


@cache
def _hf_eos_padded() -> Tensor:
    ids, mask = ragged_batch(LENGTHS, VOCAB, seed=3, pad=EOS)
    options = {"max_new_tokens": 9, "eos_token_id": EOS, "repetition_penalty": 3.0}
    return hf_generate(_models()[0], ids, mask, **options)


@check("generate")
def repetition_penalty_skips_the_padding(ns: Namespace) -> None:
    ids, mask = ragged_batch(LENGTHS, VOCAB, seed=3, pad=EOS)
    options = {"max_new_tokens": 9, "eos_token_id": EOS, "repetition_penalty": 3.0}
    with case("repetition_penalty=3.0, prompts left-padded with the eos token 3", **options):
        got = ns.generate(_models()[1], ids, mask, pad_token_id=PAD, **options)
        assert_equal(got, _hf_eos_padded(), what="sequences")


@cache
def _hf_probs(options: tuple[tuple[str, Any], ...]) -> Tensor:
    ids, mask = ragged_batch([5], VOCAB, seed=8)
    return hf_processed(_models()[0], ids, mask, do_sample=True, **dict(options)).softmax(-1)[0]


@check("generate")
def sampling_follows_the_filtered_distribution(ns: Namespace) -> None:
    ids, mask = ragged_batch([5], VOCAB, seed=8)
    n = 3000
    for options in ({"temperature": 0.6}, {"top_k": 4}, {"top_p": 0.7, "temperature": 1.3}):
        probs = _hf_probs(tuple(options.items()))
        with case(f"{n} draws of the first token, a generator of seed 4", **options):
            got = ns.generate(
                _models()[1],
                ids.expand(n, -1),
                mask.expand(n, -1),
                max_new_tokens=1,
                do_sample=True,
                generator=generator(4),
                **options,
            )[:, -1]
            counts = torch.bincount(got, minlength=VOCAB)
            outside = int(counts[probs == 0].sum())
            expect(outside == 0, f"{outside} draws are of tokens the filters remove")
            p = chi_square_p_value(counts, probs)
            expect(
                p > 1e-4,
                f"the draws do not follow HF's filtered distribution (chi-squared p={p:.2g}): "
                f"counts {counts.tolist()}, expected {(probs * n).round().long().tolist()}",
            )


@check("generate")
def sampling_is_reproducible_from_a_generator(ns: Namespace) -> None:
    ids, mask = _batch()
    options = {"max_new_tokens": 8, "do_sample": True, "temperature": 1.4}
    with case("two runs with generator(5), then one with generator(6)", **options):
        first = ns.generate(_models()[1], ids, mask, generator=generator(5), **options)
        again = ns.generate(_models()[1], ids, mask, generator=generator(5), **options)
        assert_equal(again, first, what="the second run")
        other = ns.generate(_models()[1], ids, mask, generator=generator(6), **options)
        expect(not torch.equal(other, first), "another seed gave the very same tokens")


@cache
def _hf_stopped(stops: tuple[str, ...], eos: int | None) -> Tensor:
    _, tokenizer = stop_string_vocabulary()
    ids, mask = ragged_batch([3, 5, 2], VOCAB, seed=12)
    return hf_generate(
        _models()[0],
        ids,
        mask,
        max_new_tokens=12,
        stop_strings=list(stops),
        tokenizer=tokenizer,
        eos_token_id=[] if eos is None else eos,
        pad_token_id=PAD if eos is not None else 0,
    )


@check("generate")
def stop_strings_equal_hf(ns: Namespace) -> None:
    words, _ = stop_string_vocabulary()
    ids, mask = ragged_batch([3, 5, 2], VOCAB, seed=12)
    for stops in (("hb",), ("bh", "jbl"), ("ea", "kbc", "zz"), ("b",), ("a<e",)):
        with case(f"stop_strings={list(stops)}, eos_token_id=2, token i's text is words[i]"):
            got = ns.generate(
                _models()[1],
                ids,
                mask,
                max_new_tokens=12,
                stop_strings=list(stops),
                token_strings=words,
                eos_token_id=2,
                pad_token_id=PAD,
            )
            assert_equal(got, _hf_stopped(stops, 2), what="sequences")
    stops = ("kbc", "hb")
    with case(f"stop_strings={list(stops)}, no eos_token_id, no pad_token_id: fill with 0"):
        got = ns.generate(
            _models()[1],
            ids,
            mask,
            max_new_tokens=12,
            stop_strings=list(stops),
            token_strings=words,
        )
        assert_equal(got, _hf_stopped(stops, None), what="sequences")


@check("generate")
def cache_batch_and_streaming_change_nothing(ns: Namespace) -> None:
    ids, mask = _batch()
    ours = _models()[1]
    options = {"max_new_tokens": 9, "eos_token_id": EOS, "pad_token_id": PAD}
    expected, steps = _hf_decoded("greedy")
    with case("use_cache=False", **options):
        model = _Counting(ours)
        assert_equal(ns.generate(model, ids, mask, use_cache=False, **options), expected)
        _uses_the_cache(model.calls, steps, use_cache=False)
    for row, n in enumerate(LENGTHS):
        with case(f"prompt {row} alone, {n} tokens, no padding and no mask", **options):
            alone = ns.generate(ours, ids[row : row + 1, ids.shape[1] - n :], **options)
            assert_equal(alone[0], expected[row, ids.shape[1] - n :][: alone.shape[1]])
    with case("on_step collects each step's tokens", **options):
        seen: list[Tensor] = []
        out = ns.generate(ours, ids, mask, on_step=seen.append, **options)
        expect(len(seen) > 0, "on_step was never called")
        assert_equal(torch.stack(seen, dim=1), out[:, ids.shape[1] :], what="streamed tokens")


@check("generate")
def generate_refuses_bad_options(ns: Namespace) -> None:
    ours = _models()[1]
    ids = torch.tensor([[5, 6]])
    bad: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"do_sample": True, "top_p": 0.0}, ValueError, "top_p=0.0"),
        ({"do_sample": True, "top_p": 1.5}, ValueError, "top_p=1.5"),
        ({"do_sample": True, "top_k": 0}, ValueError, "top_k=0"),
        ({"top_k": 0}, ValueError, "top_k=0"),
        ({"top_k": -2}, ValueError, "top_k=-2"),
        ({"top_p": 0.0}, ValueError, "top_p=0.0"),
        ({"top_p": -0.5}, ValueError, "top_p=-0.5"),
        ({"temperature": 0.0}, ValueError, "temperature=0.0"),
        ({"temperature": -0.5}, ValueError, "temperature=-0.5"),
        ({"do_sample": True, "temperature": 0.0}, ValueError, "temperature=0.0"),
        ({"temperature": -1.0}, ValueError, "temperature=-1.0"),
        ({"max_new_tokens": 48}, ShapeError, "n_positions=48"),
        ({"stop_strings": ["a"]}, ValueError, "token_strings"),
        ({"stop_strings": ["a"], "token_strings": ["a"] * 39}, ValueError, "39"),
    ]
    for options, exc, match in bad:
        short = {k: v if k != "token_strings" else f"{len(v)} strings" for k, v in options.items()}
        with case(f"{short}", **short):
            assert_raises(ns.generate, ours, ids, exc=exc, match=match, **options)
    with case("top_k=1 is a valid top-k (the greedy choice, sampled)"):
        out = ns.generate(ours, ids, do_sample=True, top_k=1, max_new_tokens=3)
        assert_equal(out, ns.generate(ours, ids, max_new_tokens=3), what="sequences")
    with case("max_new_tokens=47 fits n_positions=48 after a prompt of 2"):
        expect(ns.generate(ours, ids, max_new_tokens=47).shape[1] == 49, "wrong length")


BEAMS: dict[str, dict[str, Any]] = {
    "num_beams=3": {"num_beams": 3},
    "num_beams=4, length_penalty=2.0, num_return_sequences=2": {
        "num_beams": 4,
        "length_penalty": 2.0,
        "num_return_sequences": 2,
    },
    "num_beams=3, early_stopping=True": {"num_beams": 3, "early_stopping": True},
    "num_beams=3, early_stopping='never', length_penalty=0.5": {
        "num_beams": 3,
        "early_stopping": "never",
        "length_penalty": 0.5,
    },
    "num_beams=2, early_stopping='never', length_penalty=-1.0": {
        "num_beams": 2,
        "early_stopping": "never",
        "length_penalty": -1.0,
    },
    "num_beams=5, length_penalty=-1, repetition_penalty=1.5, min_new_tokens=3": {
        "num_beams": 5,
        "length_penalty": -1.0,
        "repetition_penalty": 1.5,
        "min_new_tokens": 3,
    },
    "num_beams=3, eos_token_id=[3, 9], num_return_sequences=3": {
        "num_beams": 3,
        "eos_token_id": [EOS, 9],
        "num_return_sequences": 3,
    },
    "num_beams=4, eos [9, 3], no pad_token_id (fill with 9), 3 returned": {
        "num_beams": 4,
        "eos_token_id": [9, EOS],
        "pad_token_id": None,
        "num_return_sequences": 3,
    },
    "num_beams=3, 12 eos tokens": {"num_beams": 3, "eos_token_id": [EOS, *range(10, 21)]},
    "num_beams=3, no eos_token_id, max_new_tokens=5": {
        "num_beams": 3,
        "eos_token_id": None,
        "max_new_tokens": 5,
    },
}


def _beam_options(name: str) -> dict[str, Any]:
    return {"max_new_tokens": 10, "eos_token_id": EOS, "pad_token_id": PAD, **BEAMS[name]}


@cache
def _hf_beams(name: str) -> tuple[Tensor, int]:
    options = _beam_options(name)
    if options["pad_token_id"] is None:
        options["pad_token_id"] = options["eos_token_id"][0]
    return _hf_run(**options)


@check("beam_search")
def beam_search_equals_hf(ns: Namespace) -> None:
    ids, mask = _batch()
    for name in BEAMS:
        options = _beam_options(name)
        with case(f"{name}: prompts of lengths {LENGTHS} left-padded", **options):
            expected, steps = _hf_beams(name)
            model = _Counting(_models()[1])
            got = ns.beam_search(model, ids, mask, **options)
            assert_equal(got, expected, what="sequences")
            _uses_the_cache(model.calls, steps, use_cache=True)


@check("beam_search")
def beam_search_batched_equals_unbatched_and_uncached(ns: Namespace) -> None:
    ids, mask = _batch()
    name = "num_beams=4, length_penalty=2.0, num_return_sequences=2"
    options = _beam_options(name)
    expected, steps = _hf_beams(name)
    with case(f"use_cache=False, {name}", **options):
        model = _Counting(_models()[1])
        got = ns.beam_search(model, ids, mask, use_cache=False, **options)
        assert_equal(got, expected, what="sequences")
        _uses_the_cache(model.calls, steps, use_cache=False)
    for row, n in enumerate(LENGTHS):
        with case(f"prompt {row} alone, {n} tokens, no mask, {name}", **options):
            alone = ns.beam_search(_models()[1], ids[row : row + 1, ids.shape[1] - n :], **options)
            mine = expected[2 * row : 2 * row + 2, ids.shape[1] - n :][:, : alone.shape[1]]
            assert_equal(alone, mine, what="sequences")


@check("beam_search")
def beam_search_refuses_bad_options(ns: Namespace) -> None:
    ours = _models()[1]
    ids = torch.tensor([[5, 6]])
    bad: list[tuple[dict[str, Any], str]] = [
        ({"num_beams": 41}, "num_beams=41"),
        ({"num_beams": 0}, "num_beams=0 should be between 1 and the vocabulary"),
        ({"num_beams": 2, "num_return_sequences": 3}, "num_return_sequences=3"),
        ({"num_beams": 2, "num_return_sequences": 0}, "num_return_sequences=0"),
        ({"num_beams": 2, "early_stopping": "sometimes"}, "early_stopping='sometimes'"),
    ]
    for options, match in bad:
        with case(f"{options}", **options):
            assert_raises(ns.beam_search, ours, ids, exc=ValueError, match=match, **options)
    with case("num_beams=1, 3 new tokens"):
        out = ns.beam_search(ours, ids, num_beams=1, max_new_tokens=3, pad_token_id=PAD)
        expect(out.shape == (1, 5), f"shape {tuple(out.shape)}, expected (1, 5)")
    with case("num_beams=40, the whole vocabulary, 2 new tokens"):
        out = ns.beam_search(ours, ids, num_beams=40, max_new_tokens=2, pad_token_id=PAD)
        expect(out.shape == (1, 4), f"shape {tuple(out.shape)}, expected (1, 4)")
