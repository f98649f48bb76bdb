"""mlab.sampling against transformers' generate on GPT2LMHeadModel with the same weights:
greedy and beam search token for token (ragged left-padded batches, several options),
sampling token for token from the same seed and statistically (chi-squared against HF's
processed distribution), the processors against HF's, batched = unbatched, cached =
uncached, stop strings against HF's StopStringCriteria, paired contexts and suffix scores
against naive recomputation, and bad input."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, decoders
from tokenizers import models as tokenizer_models
from torch import Tensor
from transformers import PreTrainedTokenizerFast
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from mlab.course.w2d4_sampling.hf_reference import (
    EOS,
    PAD,
    hf_generate,
    hf_processed,
    model_pair,
    ragged_batch,
)
from mlab.errors import ShapeError
from mlab.models.gpt2 import GPT2LMHeadModel
from mlab.sampling import beam_search, generate, repetition_penalty, top_k_filter, top_p_filter
from mlab.sampling.pair import combine_log_probs, generate_paired
from mlab.sampling.suffix import avoid_suffix, suffix_log_probs
from mlab.testing import assert_close, assert_equal, chi_square_p_value, generator

VOCAB = 40


@pytest.fixture(scope="module")
def models() -> tuple[Any, GPT2LMHeadModel]:
    return model_pair(seed=0, vocab_size=VOCAB)


@pytest.fixture(scope="module")
def batch() -> tuple[Tensor, Tensor]:
    return ragged_batch([4, 7, 1, 6], VOCAB, seed=3)


# ----------------------------------------------------------------------------------------------
# Processors against HF's


def _logits_with_ties(seed: int) -> Tensor:
    x = torch.randn(5, 30, generator=generator(seed)) * 2
    x[0, :4] = x[0].max()  # ties at the top
    x[1, 10:20] = 0.5  # a block of equal values
    return x


@pytest.mark.parametrize("k", [1, 3, 4, 11, 30, 100])
def test_top_k_equals_hf(k: int) -> None:
    x = _logits_with_ties(0)
    assert_equal(top_k_filter(x, k), TopKLogitsWarper(k)(None, x.clone()))


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.999, 1.0])
def test_top_p_equals_hf(p: float) -> None:
    x = _logits_with_ties(1)
    assert_equal(top_p_filter(x, p), TopPLogitsWarper(p)(None, x.clone()))
    assert_equal(
        top_p_filter(x, p, min_tokens_to_keep=3),
        TopPLogitsWarper(p, min_tokens_to_keep=3)(None, x.clone()),
    )


@pytest.mark.parametrize("penalty", [0.7, 1.0, 1.3, 4.0])
def test_repetition_penalty_equals_hf(penalty: float) -> None:
    x = _logits_with_ties(2)
    ids = torch.randint(0, 30, (5, 9), generator=generator(3))
    first = torch.tensor([0, 3, 8, 2, 0])
    theirs = RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=first)
    assert_equal(repetition_penalty(x, ids, penalty, first), theirs(ids, x.clone()))
    assert_equal(
        repetition_penalty(x, ids, penalty), RepetitionPenaltyLogitsProcessor(penalty)(ids, x)
    )


# ----------------------------------------------------------------------------------------------
# Token for token against HF generate

GREEDY = {
    "repetition penalty": dict(repetition_penalty=1.4),
    "min new tokens": dict(min_new_tokens=6),
    "two eos tokens": dict(eos_token_id=[EOS, 7]),
}


@pytest.mark.parametrize("name", list(GREEDY))
def test_greedy_equals_hf(name: str, models: Any, batch: Any) -> None:
    hf, ours = models
    kwargs = {"max_new_tokens": 12, "eos_token_id": EOS, "pad_token_id": PAD, **GREEDY[name]}
    assert_equal(generate(ours, *batch, **kwargs), hf_generate(hf, *batch, **kwargs))


BEAMS = {
    "4 beams, length_penalty 2, 2 returned": dict(
        num_beams=4, length_penalty=2.0, num_return_sequences=2
    ),
    "never, length_penalty 0.5": dict(num_beams=3, early_stopping="never", length_penalty=0.5),
    "early_stopping=True": dict(num_beams=3, early_stopping=True),
    "5 beams, penalties, min new tokens": dict(
        num_beams=5, length_penalty=-1.0, repetition_penalty=1.5, min_new_tokens=3
    ),
    "2 eos tokens, all returned": dict(num_beams=3, eos_token_id=[EOS, 9], num_return_sequences=3),
}


@pytest.mark.parametrize("name", list(BEAMS))
def test_beam_search_equals_hf(name: str, models: Any, batch: Any) -> None:
    hf, ours = models
    kwargs = {"max_new_tokens": 10, "eos_token_id": EOS, "pad_token_id": PAD, **BEAMS[name]}
    assert_equal(beam_search(ours, *batch, **kwargs), hf_generate(hf, *batch, **kwargs))


def test_beam_search_without_eos_runs_to_max_length(models: Any, batch: Any) -> None:
    hf, ours = models
    kwargs = dict(num_beams=3, max_new_tokens=5, pad_token_id=PAD, eos_token_id=None)
    got = beam_search(ours, *batch, **kwargs)
    assert_equal(got, hf_generate(hf, *batch, **kwargs))
    assert got.shape == (4, 7 + 5)


SAMPLING = {
    "temperature 0.7, top_k 5": dict(temperature=0.7, top_k=5),
    "everything": dict(temperature=0.8, top_k=8, top_p=0.9, repetition_penalty=1.2),
}


@pytest.mark.parametrize("name", list(SAMPLING))
def test_sampling_equals_hf_from_the_same_seed(name: str, models: Any, batch: Any) -> None:
    """HF draws with torch.multinomial from torch's global generator: so do we without one."""
    hf, ours = models
    kwargs = {"max_new_tokens": 10, "eos_token_id": EOS, "do_sample": True, **SAMPLING[name]}
    torch.manual_seed(11)
    theirs = hf_generate(hf, *batch, **kwargs)
    torch.manual_seed(11)
    assert_equal(generate(ours, *batch, pad_token_id=PAD, **kwargs), theirs)


@pytest.mark.parametrize(
    "options", [dict(top_k=4, temperature=0.6), dict(top_p=0.7, temperature=1.3)]
)
def test_sampling_follows_the_filtered_distribution(options: dict[str, Any], models: Any) -> None:
    hf, ours = models
    ids, mask = ragged_batch([5], VOCAB, seed=8)
    probs = hf_processed(hf, ids, mask, do_sample=True, **options)[0].softmax(-1)
    n = 3000
    got = generate(
        ours,
        ids.expand(n, -1),
        mask.expand(n, -1),
        max_new_tokens=1,
        do_sample=True,
        generator=generator(4),
        **options,
    )[:, -1]
    counts = torch.bincount(got, minlength=VOCAB)
    assert counts[probs == 0].sum() == 0, "drew a token the filters remove"
    assert chi_square_p_value(counts, probs) > 1e-3


def test_seeded_sampling_is_reproducible(models: Any, batch: Any) -> None:
    _, ours = models
    kwargs = dict(max_new_tokens=8, do_sample=True, temperature=1.4)
    first = generate(ours, *batch, generator=generator(5), **kwargs)
    assert_equal(generate(ours, *batch, generator=generator(5), **kwargs), first)
    assert not torch.equal(generate(ours, *batch, generator=generator(6), **kwargs), first)


def test_batched_equals_unbatched_and_cached_equals_uncached(models: Any, batch: Any) -> None:
    _, ours = models
    ids, mask = batch
    for method, kwargs in (
        (generate, dict(max_new_tokens=9, eos_token_id=EOS, pad_token_id=PAD)),
        (beam_search, dict(num_beams=3, max_new_tokens=7, eos_token_id=EOS, pad_token_id=PAD)),
    ):
        together = method(ours, ids, mask, **kwargs)  # type: ignore[operator]
        assert_equal(method(ours, ids, mask, use_cache=False, **kwargs), together)  # type: ignore[operator]
        for row in range(ids.shape[0]):
            alone = method(ours, ids[row : row + 1, mask[row] == 1], **kwargs)  # type: ignore[operator]
            width = ids.shape[1] - int(mask[row].sum())
            mine = together[row, width : width + alone.shape[1]]
            assert_equal(mine, alone[0], what=f"{method.__name__} row {row}")
            assert (together[row, width + alone.shape[1] :] == PAD).all()


def test_on_step_streams_every_token(models: Any, batch: Any) -> None:
    _, ours = models
    seen: list[Tensor] = []
    out = generate(ours, *batch, max_new_tokens=6, on_step=seen.append)
    assert_equal(torch.stack(seen, dim=1), out[:, batch[0].shape[1] :])


# ----------------------------------------------------------------------------------------------
# Stop strings against HF's StopStringCriteria


def test_stop_strings_equal_hf(models: Any) -> None:
    hf, ours = models
    # HF cleans the vocabulary by decoding each token after "abcdef": it must be one token,
    # and the decoder must join tokens as they are (Fuse)
    letters = [a + b for a in "abcdefghijkl" for b in ("", "a", "b")]
    words = ["<pad>", "<x>", "abcdef", "<eos>", *letters]
    vocab = {word: i for i, word in enumerate(words)}
    tokenizer_object = Tokenizer(tokenizer_models.WordLevel(vocab, "<x>"))
    tokenizer_object.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer_object)
    ids, mask = ragged_batch([3, 5, 2], VOCAB, seed=12)
    # eos 2 (not 3, which this model likes): let the stop strings end the rows
    for stops in (["hb"], ["bh", "jbl"], ["ea", "kbc", "zz"], ["b"]):
        kwargs = dict(max_new_tokens=12, stop_strings=stops, pad_token_id=PAD, eos_token_id=2)
        theirs = hf_generate(hf, ids, mask, tokenizer=tokenizer, **kwargs)
        mine = generate(ours, ids, mask, token_strings=words, **kwargs)
        assert_equal(mine, theirs, what=f"stop_strings={stops}")


# ----------------------------------------------------------------------------------------------
# Two contexts; suffixes


def _naive_paired(model: Any, a: Tensor, b: Tensor, mode: str, alpha: float, n: int) -> Tensor:
    new = []
    for _ in range(n):
        la = model(a[None]).logits[0, -1].log_softmax(-1)
        lb = model(b[None]).logits[0, -1].log_softmax(-1)
        score = la + lb if mode == "product" else la - alpha * lb
        token = score.argmax()
        new.append(token)
        a, b = torch.cat([a, token[None]]), torch.cat([b, token[None]])
    return torch.stack(new)


@pytest.mark.parametrize("mode, alpha", [("product", 1.0), ("contrastive", 0.5)])
def test_paired_generation_equals_naive(mode: str, alpha: float, models: Any) -> None:
    _, ours = models
    ids_a, mask_a = ragged_batch([3, 6], VOCAB, seed=20)
    ids_b, mask_b = ragged_batch([8, 2], VOCAB, seed=21)
    got = generate_paired(
        ours, ids_a, ids_b, mask_a, mask_b, mode=mode, alpha=alpha, max_new_tokens=7
    )
    with torch.no_grad():
        for row in range(2):
            expected = _naive_paired(
                ours, ids_a[row, mask_a[row] == 1], ids_b[row, mask_b[row] == 1], mode, alpha, 7
            )
            assert_equal(got[row], expected, what=f"{mode} row {row}")


def test_combine_log_probs_is_normalised() -> None:
    a = torch.randn(3, 10, generator=generator(1)).log_softmax(-1)
    b = torch.randn(3, 10, generator=generator(2)).log_softmax(-1)
    out = combine_log_probs(a, b, "contrastive", 0.3)
    assert_close(out.exp().sum(-1), torch.ones(3), atol=1e-6)
    assert_close(out, (a - 0.3 * b).log_softmax(-1))
    with pytest.raises(ValueError, match="mode="):
        combine_log_probs(a, b, "sum")


def test_suffix_log_probs_equal_naive(models: Any) -> None:
    _, ours = models
    g = generator(30)
    prompt = torch.randint(4, VOCAB, (5,), generator=g)
    suffix = torch.randint(4, VOCAB, (4,), generator=g)
    conts = [torch.randint(4, VOCAB, (n,), generator=g) for n in (0, 3, 1, 9, 3)]
    with torch.no_grad():
        expected = []
        for c in conts:
            full = torch.cat([prompt, c, suffix])
            lp = ours(full[None]).logits[0].log_softmax(-1)
            start = len(prompt) + len(c) - 1
            expected.append(lp[start + torch.arange(4), suffix].sum())
    assert_close(suffix_log_probs(ours, prompt, conts, suffix), torch.stack(expected), atol=1e-5)


def test_avoid_suffix_keeps_the_least_likely(models: Any) -> None:
    _, ours = models
    prompt, suffix = torch.tensor([5, 9, 12]), torch.tensor([20, 21])
    kept, scores = avoid_suffix(
        ours,
        prompt,
        suffix,
        n_candidates=6,
        keep=2,
        eos_token_id=EOS,
        max_new_tokens=5,
        generator=generator(1),
    )
    assert len(kept) == 2 and bool(scores[0] <= scores[1])
    assert_close(suffix_log_probs(ours, prompt, kept, suffix), scores, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(do_sample=True, top_p=0.0), ValueError, "top_p=0.0"),
        (dict(do_sample=True, top_p=1.5), ValueError, "top_p=1.5"),
        (dict(do_sample=True, top_k=0), ValueError, "top_k=0"),
        (dict(do_sample=True, temperature=0.0), ValueError, "temperature=0.0"),
        (dict(max_new_tokens=0), ValueError, "max_new_tokens=0"),
        (dict(max_new_tokens=3, min_new_tokens=4), ValueError, "min_new_tokens=4"),
        (dict(max_new_tokens=60), ShapeError, "n_positions=48"),
        (dict(stop_strings=["a"]), ValueError, "token_strings"),
    ],
)
def test_bad_options_raise(kwargs: dict[str, Any], error: type, match: str, models: Any) -> None:
    _, ours = models
    with pytest.raises(error, match=match):
        generate(ours, torch.tensor([[5, 6]]), **kwargs)


def test_bad_beams_and_prompts_raise(models: Any) -> None:
    _, ours = models
    ids = torch.tensor([[5, 6]])
    with pytest.raises(ValueError, match="num_beams=41"):
        beam_search(ours, ids, num_beams=41)
    with pytest.raises(ValueError, match="num_return_sequences=3"):
        beam_search(ours, ids, num_beams=2, num_return_sequences=3)
    with pytest.raises(ValueError, match="early_stopping='sometimes'"):
        beam_search(ours, ids, num_beams=2, early_stopping="sometimes")
    with pytest.raises(ShapeError, match="n_positions"):
        generate(ours, torch.full((1, 49), 5))
    with pytest.raises(ShapeError, match="attention_mask"):
        generate(ours, ids, torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ShapeError, match="ids\\[None\\]"):
        generate(ours, torch.tensor([5, 6]))
