"""FUDGE on the Shakespeare GPT-2 (w4d3, part 2's runs): a prefix classifier trained on
VADER's labels of the base model's own continuations, decoding batched over the top-``k``
candidates with the key/value cache, and the comparison with best-of-``n`` at matched
samples (``k`` rows per prompt through the model at every step for both).

The classifier is a linear head on the frozen model's final hidden state (after ``ln_f``):
the forward step that scores the ``k`` candidate prefixes also yields the model's
next-token logits after whichever candidate is picked, so FUDGE costs one forward step of
``batch * k`` rows per token.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlab.models.gpt2 import GPT2LMHeadModel
from mlab.models.shakespeare import Tokenizer
from mlab.rl.fudge import fudge_log_probs, prefix_classifier_loss
from mlab.rl.kl import exact_kl
from mlab.rl.lm_policy import left_pad_prompts, response_log_probs
from mlab.rl.lm_ppo import sample_prompts
from mlab.rl.lm_value import best_of_n_kl
from mlab.rl.sentiment import sentiment_scores
from mlab.sampling import generate
from mlab.sampling.generate import reorder_cache

__all__ = [
    "DecodeResult",
    "LabelledSamples",
    "base_log_likelihood",
    "best_of_n_decode",
    "fudge_decode",
    "perplexity",
    "sample_labelled",
    "train_prefix_classifier",
]


@dataclass
class LabelledSamples:
    """Base-model continuations of random prompts, VADER-labelled: ``hidden`` is the frozen
    model's final hidden state after each generated token ``(n, gen, d)`` (the prefix ending
    at that token), ``labels`` 1 where the continuation's compound score is > 0."""

    hidden: Tensor
    labels: Tensor
    scores: Tensor
    texts: list[str]


@torch.no_grad()
def sample_labelled(
    model: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    lines: list[list[int]],
    n: int,
    gen_len: int = 16,
    batch: int = 64,
    seed: int = 0,
    score_fn: Callable[[list[str]], Tensor] = sentiment_scores,
) -> LabelledSamples:
    """``n`` continuations of ``gen_len`` tokens from the base model, their hidden states
    and VADER labels (the whole continuation's label for each of its prefixes)."""
    rng, g = random.Random(seed), torch.Generator().manual_seed(seed)
    hidden, scores, texts = [], [], []
    for start in range(0, n, batch):
        prompts = sample_prompts(lines, min(batch, n - start), rng)
        ids, mask = left_pad_prompts(prompts, pad_token_id=0)
        seq = generate(model, ids, mask, max_new_tokens=gen_len, do_sample=True, generator=g)
        full_mask = torch.cat([mask, torch.ones_like(seq[:, ids.shape[1] :])], 1)
        h, _ = model.transformer(seq, None, full_mask)
        hidden.append(h[:, ids.shape[1] :])
        batch_texts = [tokenizer.decode(r.tolist()) for r in seq[:, ids.shape[1] :]]
        scores.append(score_fn(batch_texts))
        texts += batch_texts
    s = torch.cat(scores)
    return LabelledSamples(torch.cat(hidden), (s > 0).float(), s, texts)


def train_prefix_classifier(
    data: LabelledSamples, epochs: int = 300, lr: float = 0.01, seed: int = 0
) -> tuple[nn.Linear, dict[str, float]]:
    """Fit a linear head on every prefix (FUDGE's loss) of 90% of ``data``; report held-out
    accuracy after the first and the last token, and the base rate of positives."""
    torch.manual_seed(seed)
    n, gen, d = data.hidden.shape
    split = int(0.9 * n)
    head = nn.Linear(d, 1)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    x, y = data.hidden[:split], data.labels[:split]
    mask = torch.ones(split, gen, dtype=torch.long)
    for _ in range(epochs):
        loss = prefix_classifier_loss(head(x).squeeze(-1), y, mask)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    with torch.no_grad():
        test = (head(data.hidden[split:]).squeeze(-1) > 0).float()
        right = test == data.labels[split:, None]
    return head, {
        "accuracy_first_token": float(right[:, 0].float().mean()),
        "accuracy_last_token": float(right[:, -1].float().mean()),
        "positive_rate": float(data.labels[split:].mean()),
        "train_loss": float(loss.detach()),
    }


@dataclass
class DecodeResult:
    """Continuations ``(batch, gen)``, their VADER scores and texts, the KL to the base
    model per continuation (exact per step and summed for FUDGE; best-of-n's closed form)
    and wall-clock seconds per generated token."""

    tokens: Tensor
    scores: Tensor
    texts: list[str]
    kl: Tensor
    seconds_per_token: float


@torch.no_grad()
def fudge_decode(
    model: GPT2LMHeadModel,
    head: nn.Module,
    tokenizer: Tokenizer,
    prompts: list[list[int]],
    gen_len: int,
    g: torch.Generator,
    k: int = 16,
    strength: float = 1.0,
    score_fn: Callable[[list[str]], Tensor] = sentiment_scores,
) -> DecodeResult:
    """FUDGE: at each step, the model's top ``k`` next tokens are each appended to their
    prefix (the prefix's cache repeated ``k`` times, one row per candidate), one forward
    step gives every candidate prefix's hidden state, the head its log probability of
    ending positive, and the token is drawn from :func:`fudge_log_probs`; the picked row's
    cache and logits carry on."""
    start = time.perf_counter()
    batch = len(prompts)
    ids, mask = left_pad_prompts(prompts, pad_token_id=0)
    hidden, cache = model.transformer(ids, None, mask)
    logits = model.lm_head(hidden[:, -1]).float()
    rows = torch.arange(batch).repeat_interleave(k)
    kl, tokens = torch.zeros(batch), []
    for _ in range(gen_len):
        candidates = logits.topk(k, dim=-1).indices
        wide_mask = torch.cat([mask[rows], torch.ones(batch * k, 1, dtype=mask.dtype)], 1)
        h, wide_cache = model.transformer(
            candidates.reshape(-1, 1), reorder_cache(cache, rows), wide_mask
        )
        attr = F.logsigmoid(head(h[:, -1]).view(batch, k))
        q = fudge_log_probs(logits, candidates, attr, strength)
        kl += exact_kl(q, logits)
        pick = torch.multinomial(q.exp(), 1, generator=g)[:, 0]
        tokens.append(pick)
        chosen = torch.arange(batch) * k + (candidates == pick[:, None]).long().argmax(1)
        cache, mask = reorder_cache(wide_cache, chosen), wide_mask[chosen]
        logits = model.lm_head(h[chosen, -1]).float()
    out = torch.stack(tokens, 1)
    texts = [tokenizer.decode(r.tolist()) for r in out]
    seconds = (time.perf_counter() - start) / (batch * gen_len)
    return DecodeResult(out, score_fn(texts), texts, kl, seconds)


@torch.no_grad()
def best_of_n_decode(
    model: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    prompts: list[list[int]],
    n: int,
    gen_len: int,
    g: torch.Generator,
    score_fn: Callable[[list[str]], Tensor] = sentiment_scores,
) -> DecodeResult:
    """Best-of-``n``: ``n`` samples per prompt (``n`` rows through the model at every
    step), keep the one VADER likes best. KL: $\\log n - (n-1)/n$."""
    start = time.perf_counter()
    many = [p for p in prompts for _ in range(n)]
    ids, mask = left_pad_prompts(many, pad_token_id=0)
    seq = generate(model, ids, mask, max_new_tokens=gen_len, do_sample=True, generator=g)
    responses = seq[:, ids.shape[1] :]
    texts = [tokenizer.decode(r.tolist()) for r in responses]
    scores = score_fn(texts).view(len(prompts), n)
    best = scores.argmax(1) + torch.arange(len(prompts)) * n
    seconds = (time.perf_counter() - start) / (len(prompts) * gen_len)
    kl = torch.full((len(prompts),), best_of_n_kl(n))
    return DecodeResult(
        responses[best], scores.max(1).values, [texts[int(i)] for i in best], kl, seconds
    )


@torch.no_grad()
def base_log_likelihood(model: GPT2LMHeadModel, prompts: list[list[int]], tokens: Tensor) -> Tensor:
    """The base model's mean log probability per token of each continuation ``(batch,)``
    (its exponent, negated, is the perplexity)."""
    ids, mask = left_pad_prompts(prompts, pad_token_id=0)
    seq = torch.cat([ids, tokens], 1)
    full_mask = torch.cat([mask, torch.ones_like(tokens)], 1)
    logits = model(seq, attention_mask=full_mask, use_cache=False).logits
    return response_log_probs(logits.float(), seq, ids.shape[1]).mean(1)


def perplexity(log_likelihood: Tensor) -> float:
    """$\\exp(-\\text{mean log probability per token})$ over every continuation."""
    return math.exp(-float(log_likelihood.mean()))
