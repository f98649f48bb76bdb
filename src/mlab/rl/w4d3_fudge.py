"""FUDGE on the Shakespeare GPT-2 (w4d3, part 2's runs): a prefix classifier trained on
VADER's labels of the base model's own continuations, decoding batched over the top-``k``
candidates with the key/value cache, and the comparison with best-of-``n`` at matched
samples (``k`` rows per prompt through the model at every step for both).

The classifier (:class:`PrefixHead`) reads the frozen model's final hidden state (after
``ln_f``) with a linear head, plus a learned number per token summed over the prefix
(VADER is close to a sum of word valences; w4d2's ``TokenValue`` does the same): the
forward step that scores the ``k`` candidate prefixes also yields the model's next-token
logits after whichever candidate is picked, so FUDGE costs one forward step of
``batch * k`` rows per token. A linear head on the hidden state alone learns little here
(68% held-out accuracy at a 68% base rate): the state after a token is about the next
token, not about the valence of the words so far.
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
from mlab.rl.lm_value import best_of_n_kl, best_of_n_samples
from mlab.rl.sentiment import sentiment_scores
from mlab.sampling import generate
from mlab.sampling.generate import reorder_cache

__all__ = [
    "DecodeResult",
    "LabelledSamples",
    "PrefixHead",
    "base_log_likelihood",
    "best_of_n_decode",
    "fudge_decode",
    "perplexity",
    "policy_decode",
    "sample_labelled",
    "train_prefix_classifier",
]


@dataclass
class LabelledSamples:
    """Base-model continuations of random prompts, VADER-labelled: ``hidden`` is the frozen
    model's final hidden state after each generated token ``(n, gen, d)`` (the prefix ending
    at that token), ``labels`` 1 where the continuation's compound score is > 0."""

    hidden: Tensor
    tokens: Tensor
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
    hidden, tokens, scores, texts = [], [], [], []
    for start in range(0, n, batch):
        prompts = sample_prompts(lines, min(batch, n - start), rng)
        ids, mask = left_pad_prompts(prompts, pad_token_id=0)
        seq = generate(model, ids, mask, max_new_tokens=gen_len, do_sample=True, generator=g)
        full_mask = torch.cat([mask, torch.ones_like(seq[:, ids.shape[1] :])], 1)
        h, _ = model.transformer(seq, None, full_mask)
        hidden.append(h[:, ids.shape[1] :])
        tokens.append(seq[:, ids.shape[1] :])
        batch_texts = [tokenizer.decode(r.tolist()) for r in seq[:, ids.shape[1] :]]
        scores.append(score_fn(batch_texts))
        texts += batch_texts
    s = torch.cat(scores)
    return LabelledSamples(torch.cat(hidden), torch.cat(tokens), (s > 0).float(), s, texts)


class PrefixHead(nn.Module):
    """$\\mathrm{logit}\\,P(a \\mid x_{\\le t}) = w \\cdot h_t + b + \\sum_{s \\le t}
    (\\alpha f_{x_s} + u_{x_s})$: a linear head on the hidden state after the prefix, plus
    one number per token of the continuation so far, from a fixed prior $f$ (each token's
    own VADER score, as w4d2's ``TokenValue``), a learned scale $\\alpha$ and learned
    corrections $u$."""

    def __init__(self, d: int, prior: Tensor) -> None:
        super().__init__()
        self.linear = nn.Linear(d, 1)
        self.register_buffer("prior", prior.float())
        self.u = nn.Parameter(torch.zeros(len(prior)))
        self.alpha = nn.Parameter(torch.ones(()))

    def token_terms(self) -> Tensor:
        """What each token adds to the logit, ``(vocab,)``."""
        return self.alpha * self.get_buffer("prior") + self.u

    def forward(self, hidden: Tensor, tokens: Tensor) -> Tensor:
        """The logit after every prefix of the continuations ``(batch, gen)``."""
        logits: Tensor = self.linear(hidden).squeeze(-1)
        return logits + self.token_terms()[tokens].cumsum(1)


def train_prefix_classifier(
    data: LabelledSamples,
    prior: Tensor,
    epochs: int = 300,
    lr: float = 0.03,
    l2: float = 1e-3,
    seed: int = 0,
) -> tuple[PrefixHead, dict[str, float]]:
    """Fit a :class:`PrefixHead` on every prefix (FUDGE's loss) of 90% of ``data`` (an L2
    penalty on the corrections: most tokens are seen a few times, if at all); report
    held-out accuracy after the first and the last token, and the base rate."""
    torch.manual_seed(seed)
    n, gen, d = data.hidden.shape
    split = int(0.9 * n)
    head = PrefixHead(d, prior)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    x, tokens, y = data.hidden[:split], data.tokens[:split], data.labels[:split]
    mask = torch.ones(split, gen, dtype=torch.long)
    for _ in range(epochs):
        fit = prefix_classifier_loss(head(x, tokens), y, mask)
        loss = fit + l2 * head.u.pow(2).sum()
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    with torch.no_grad():
        test = (head(data.hidden[split:], data.tokens[split:]) > 0).float()
        right = test == data.labels[split:, None]
    return head, {
        "accuracy_first_token": float(right[:, 0].float().mean()),
        "accuracy_last_token": float(right[:, -1].float().mean()),
        "positive_rate": float(data.labels[split:].mean()),
        "train_loss": float(fit.detach()),
    }


@dataclass
class DecodeResult:
    """Continuations ``(batch, gen)``, their VADER scores and texts, the KL to the base
    model per continuation (exact per step and summed for FUDGE; best-of-n's closed form)
    and wall-clock seconds per generated token; for a tuned policy also ``kl_sampled``, the
    sampled log ratio."""

    tokens: Tensor
    scores: Tensor
    texts: list[str]
    kl: Tensor
    seconds_per_token: float
    kl_sampled: Tensor | None = None


@torch.no_grad()
def fudge_decode(
    model: GPT2LMHeadModel,
    head: PrefixHead,
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
    terms, sums = head.token_terms(), torch.zeros(batch)
    for _ in range(gen_len):
        candidates = logits.topk(k, dim=-1).indices
        wide_mask = torch.cat([mask[rows], torch.ones(batch * k, 1, dtype=mask.dtype)], 1)
        h, wide_cache = model.transformer(
            candidates.reshape(-1, 1), reorder_cache(cache, rows), wide_mask
        )
        state = head.linear(h[:, -1]).view(batch, k)
        attr = F.logsigmoid(state + sums[:, None] + terms[candidates])
        q = fudge_log_probs(logits, candidates, attr, strength)
        kl += exact_kl(q, logits)
        pick = torch.multinomial(q.exp(), 1, generator=g)[:, 0]
        tokens.append(pick)
        sums += terms[pick]
        chosen = torch.arange(batch) * k + (candidates == pick[:, None]).long().argmax(1)
        cache, mask = reorder_cache(wide_cache, chosen), wide_mask[chosen]
        logits = model.lm_head(h[chosen, -1]).float()
    out = torch.stack(tokens, 1)
    texts = [tokenizer.decode(r.tolist()) for r in out]
    seconds = (time.perf_counter() - start) / (batch * gen_len)
    return DecodeResult(out, score_fn(texts), texts, kl, seconds)


def best_of_n_decode(
    model: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    prompts: list[list[int]],
    n: int,
    gen_len: int,
    g: torch.Generator,
    score_fn: Callable[[list[str]], Tensor] = sentiment_scores,
) -> DecodeResult:
    """Best-of-``n`` (w4d2's :func:`~mlab.rl.lm_value.best_of_n_samples`), timed, with its
    KL bound $\\log n - (n-1)/n$."""
    start = time.perf_counter()
    best = best_of_n_samples(model, tokenizer, prompts, n, gen_len, g, score_fn)
    seconds = (time.perf_counter() - start) / (len(prompts) * gen_len)
    kl = torch.full((len(prompts),), best_of_n_kl(n))
    return DecodeResult(best.tokens, best.scores, best.texts, kl, seconds)


@torch.no_grad()
def policy_decode(
    policy: GPT2LMHeadModel,
    base: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    prompts: list[list[int]],
    gen_len: int,
    g: torch.Generator,
    score_fn: Callable[[list[str]], Tensor] = sentiment_scores,
) -> DecodeResult:
    """Plain sampling (temperature 1, no top-``k``) from a tuned ``policy`` such as w4d2's
    PPO policy. The KL to ``base`` of each continuation is the exact KL of every step
    (both next-token distributions summed over the vocabulary, after the prefix sampled)
    summed over the steps, as :func:`fudge_decode`'s; ``kl_sampled`` is the sampled log
    ratio $\\sum_t \\log \\pi(y_t) - \\log \\rho(y_t)$ (w4d2's ``k1``). Both are unbiased
    estimates of the continuation's KL. The time per token is the sampling and scoring
    only (the KL is measurement, not part of decoding)."""
    start = time.perf_counter()
    ids, mask = left_pad_prompts(prompts, pad_token_id=0)
    seq = generate(policy, ids, mask, max_new_tokens=gen_len, do_sample=True, generator=g)
    tokens = seq[:, ids.shape[1] :]
    texts = [tokenizer.decode(r.tolist()) for r in tokens]
    scores = score_fn(texts)
    seconds = (time.perf_counter() - start) / (len(prompts) * gen_len)
    full_mask = torch.cat([mask, torch.ones_like(tokens)], 1)
    width = ids.shape[1]
    logits = policy(seq, attention_mask=full_mask, use_cache=False).logits.float()
    ref = base(seq, attention_mask=full_mask, use_cache=False).logits.float()
    kl = exact_kl(logits[:, width - 1 : -1], ref[:, width - 1 : -1]).sum(1)
    log_ratio = response_log_probs(logits, seq, width) - response_log_probs(ref, seq, width)
    return DecodeResult(tokens, scores, texts, kl, seconds, kl_sampled=log_ratio.sum(1))


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


def compare(
    model: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    lines: list[list[int]],
    *,
    samples: int = 2048,
    prompts: int = 64,
    gen_len: int = 16,
    ns: tuple[int, ...] = (1, 4, 16, 64),
    ks: tuple[int, ...] = (16, 64),
    strengths: tuple[float, ...] = (0.0, 1.0, 3.0, 10.0),
    policy: GPT2LMHeadModel | None = None,
    policy_only: bool = False,
    seed: int = 0,
    on_row: Callable[[dict[str, object]], None] | None = None,
) -> dict[str, object]:
    """Train the prefix classifier on ``samples`` base-model continuations, then decode the
    same ``prompts`` (drawn from ``seed`` alone) with best-of-``n`` for each of ``ns``,
    FUDGE (each ``k`` and strength) and, if given, plain sampling from a tuned ``policy``
    (its own generator, so a ``policy_only`` run, which skips the classifier and every
    other method, decodes what a full run would). One row per method: the mean VADER score
    and its bootstrap 95% CI over prompts, the share of positive texts, the KL to the base
    model, the perplexity of the continuations under the base model, seconds per generated
    token, and the per-prompt scores, KLs and log likelihoods (to pool seeds)."""
    from mlab.analysis.bootstrap import bootstrap_ci

    model.eval()
    test_prompts = sample_prompts(lines, prompts, random.Random(seed + 1))
    rows: list[dict[str, object]] = []

    def add(method: str, k: int, r: DecodeResult) -> None:
        low, high = bootstrap_ci(r.scores.double().numpy())
        ll = base_log_likelihood(model, test_prompts, r.tokens)
        row: dict[str, object] = {
            "method": method,
            "rows_per_prompt": k,
            "score": float(r.scores.mean()),
            "score_ci": [low, high],
            "positive": float((r.scores > 0).float().mean()),
            "kl": float(r.kl.mean()),
            "perplexity": perplexity(ll),
            "ms_per_token": 1000 * r.seconds_per_token,
            "example": r.texts[0],
            "scores": r.scores.tolist(),
            "kls": r.kl.tolist(),
            "log_likelihoods": ll.tolist(),
        }
        if r.kl_sampled is not None:
            row["kl_sampled"] = float(r.kl_sampled.mean())
        rows.append(row)
        if on_row is not None:
            on_row(row)

    result: dict[str, object] = {"rows": rows, "prompts": prompts, "gen_len": gen_len}
    result["seed"] = seed
    if not policy_only:
        start = time.perf_counter()
        data = sample_labelled(model, tokenizer, lines, samples, gen_len=gen_len, seed=seed)
        vocab = model.config.vocab_size
        prior = sentiment_scores([tokenizer.decode([i]) for i in range(vocab)])
        head, classifier = train_prefix_classifier(data, prior, seed=seed)
        classifier["seconds"] = time.perf_counter() - start
        result["classifier"] = classifier
        g = torch.Generator().manual_seed(seed)
        for n in ns:
            r = best_of_n_decode(model, tokenizer, test_prompts, n, gen_len, g)
            add(f"best-of-{n}", n, r)
        for k in ks:
            for s in strengths:
                r = fudge_decode(model, head, tokenizer, test_prompts, gen_len, g, k=k, strength=s)
                add(f"FUDGE k={k} s={s:g}", k, r)
    if policy is not None:
        policy.eval()
        # untimed warm-up (a first call pays for allocations), its own generator
        warm = torch.Generator().manual_seed(seed)
        policy_decode(policy, model, tokenizer, test_prompts[:2], 2, warm, sentiment_scores)
        g = torch.Generator().manual_seed(seed + 1000)
        add("PPO policy", 1, policy_decode(policy, model, tokenizer, test_prompts, gen_len, g))
    elif policy_only:
        raise ValueError("policy_only=True needs a policy: pass the tuned model")
    return result
