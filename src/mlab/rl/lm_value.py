""" "Or maybe just train a value function": steer the frozen model at decoding time instead of
changing it.

- **Best-of-n**: sample ``n`` continuations, keep the one with the highest reward. Its KL to
  the base model is at most $\\log n - (n - 1)/n$ nats (Stiennon et al. 2020, appendix; the
  bound is tight when the rewards have no ties).
- **Value-guided decoding**: a value function $V(\\text{prefix})$ trained by regression on
  (prefix, final reward) pairs sampled from the base model predicts the reward a prefix will
  end with. At each step every possible next token is scored by the value of the prefix it
  makes, and the token is drawn from
  $q(a) \\propto p(a) \\exp(V(\\text{prefix} + a) / \\tau)$ (FUDGE, Yang and Klein 2021, with
  a regression on the reward instead of a classifier, over the whole vocabulary). The KL
  of each step is exact (both distributions are at hand); summed over the steps it is an
  unbiased estimate of the KL of the whole continuation.

Both are compared with PPO at the same KL in the day's frontier figure.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from mlab.models.gpt2 import GPT2LMHeadModel
from mlab.models.shakespeare import Tokenizer
from mlab.rl.kl import exact_kl
from mlab.rl.lm_policy import left_pad_prompts
from mlab.rl.lm_ppo import sample_prompts
from mlab.rl.sentiment import sentiment_scores
from mlab.sampling import generate

__all__ = [
    "BestOfN",
    "TokenValue",
    "best_of_n",
    "best_of_n_kl",
    "best_of_n_samples",
    "train_prefix_value",
    "value_guided_decode",
]


def best_of_n_kl(n: int) -> float:
    """The KL (nats) of best-of-``n`` sampling to the base model: $\\log n - (n-1)/n$."""
    return math.log(n) - (n - 1) / n


class BestOfN(NamedTuple):
    """The winners of best-of-``n``, one per prompt: their tokens ``(batch, gen_len)``,
    scores ``(batch,)`` and texts."""

    tokens: Tensor
    scores: Tensor
    texts: list[str]


@torch.no_grad()
def best_of_n_samples(
    model: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    prompts: list[list[int]],
    n: int,
    gen_len: int,
    g: torch.Generator,
    score_fn: Callable[[list[str]], Tensor] = sentiment_scores,
) -> BestOfN:
    """Sample ``n`` continuations of ``gen_len`` tokens per prompt (``n`` rows through the
    model at every step) and keep the one ``score_fn`` scores highest."""
    many = [p for p in prompts for _ in range(n)]
    ids, mask = left_pad_prompts(many, pad_token_id=0)
    seq = generate(model, ids, mask, max_new_tokens=gen_len, do_sample=True, generator=g)
    responses = seq[:, ids.shape[1] :]
    texts = [tokenizer.decode(r.tolist()) for r in responses]
    scores = score_fn(texts).view(len(prompts), n)
    best = scores.argmax(1) + torch.arange(len(prompts)) * n
    return BestOfN(responses[best], scores.max(1).values, [texts[int(i)] for i in best])


def best_of_n(
    model: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    prompts: list[list[int]],
    n: int,
    gen_len: int,
    g: torch.Generator,
    score_fn: Callable[[list[str]], Tensor] = sentiment_scores,
) -> tuple[Tensor, list[str]]:
    """The best score of ``n`` samples per prompt, and the winning texts
    (:func:`best_of_n_samples` without the tokens)."""
    best = best_of_n_samples(model, tokenizer, prompts, n, gen_len, g, score_fn)
    return best.scores, best.texts


class TokenValue(nn.Module):
    """$V(y_{\\le t}) = \\tanh(b + \\sum_{s \\le t} (a f_{y_s} + w_{y_s}))$: a value for every
    prefix of a continuation from one number per token (VADER itself is close to a sum of
    word valences squashed into $[-1, 1]$). $f$ is a fixed prior, the score of each token's
    text on its own (InstructGPT likewise starts its value function from the reward model);
    $a$, $b$ and the corrections $w$ are learned. The value of every possible next token is
    one vector operation, so decoding can tilt the whole vocabulary at once."""

    def __init__(self, prior: Tensor) -> None:
        super().__init__()
        self.register_buffer("prior", prior.float())
        self.w = nn.Parameter(torch.zeros(len(prior)))
        self.a = nn.Parameter(torch.ones(()))
        self.b = nn.Parameter(torch.zeros(()))

    def token_values(self) -> Tensor:
        """What each token adds inside the tanh, ``(vocab,)``."""
        prior = self.get_buffer("prior")
        return self.a * prior + self.w

    def forward(self, tokens: Tensor) -> Tensor:
        """The values of every prefix of ``tokens`` ``(batch, gen)``: ``(batch, gen + 1)``,
        from the empty one to the whole."""
        added = self.token_values()[tokens]
        sums = torch.cat([torch.zeros_like(added[:, :1]), added], 1)
        return torch.tanh(self.b + sums.cumsum(1))


def train_prefix_value(
    model: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    lines: list[list[int]],
    *,
    samples: int = 2048,
    batch: int = 64,
    gen_len: int = 16,
    epochs: int = 200,
    seed: int = 0,
    score_fn: Callable[[list[str]], Tensor] = sentiment_scores,
) -> tuple[TokenValue, float]:
    """Fit a :class:`TokenValue` by regression of every prefix's value on the final score of
    the base model's continuation (samples from the frozen model: no policy changes).
    Returns it and the held-out squared error of the whole continuations' values as a
    fraction of the scores' variance (1 would be no better than the mean)."""
    torch.manual_seed(seed)
    rng, g = random.Random(seed), torch.Generator().manual_seed(seed)
    continuations, targets = [], []
    for _ in range(samples // batch):
        ids, mask = left_pad_prompts(sample_prompts(lines, batch, rng), pad_token_id=0)
        seq = generate(model, ids, mask, max_new_tokens=gen_len, do_sample=True, generator=g)
        responses = seq[:, ids.shape[1] :]
        continuations.append(responses)
        targets.append(score_fn([tokenizer.decode(r.tolist()) for r in responses]))
    x, y = torch.cat(continuations), torch.cat(targets)
    split = int(0.9 * len(x))
    vocab = model.config.vocab_size
    value = TokenValue(score_fn([tokenizer.decode([i]) for i in range(vocab)]))
    optimizer = torch.optim.Adam(value.parameters(), lr=0.05)
    for _ in range(epochs):  # an L2 penalty: most tokens are seen a few times, if at all
        error = (value(x[:split]) - y[:split, None]).pow(2).mean()
        loss = error + 1e-3 * value.w.pow(2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        test = (value(x[split:])[:, -1] - y[split:]).pow(2).mean() / y[split:].var()
    return value, float(test)


@torch.no_grad()
def value_guided_decode(
    model: GPT2LMHeadModel,
    value: TokenValue,
    prompts: list[list[int]],
    gen_len: int,
    g: torch.Generator,
    tau: float = 0.1,
) -> tuple[Tensor, Tensor]:
    """Decode each prompt drawing every token from $q(a) \\propto p(a) \\exp(V(\\text{prefix}
    + a) / \\tau)$ over the whole vocabulary; return the continuations ``(batch, gen_len)``
    and each one's KL to the model, the sum of the exact per-step KLs ``(batch,)``. A large
    ``tau`` is plain sampling (KL 0); a small one follows the value greedily."""
    ids, mask = left_pad_prompts(prompts, pad_token_id=0)
    hidden, cache = model.transformer(ids, None, mask)
    logits = model.lm_head(hidden[:, -1]).float()
    sums = torch.full((len(prompts),), float(value.b))
    added = value.token_values()
    kl, tokens = torch.zeros(len(prompts)), []
    for _ in range(gen_len):
        log_p = logits.log_softmax(-1)
        q_logits = log_p + torch.tanh(sums[:, None] + added[None]) / tau
        kl += exact_kl(q_logits, log_p)
        choice = torch.multinomial(q_logits.softmax(-1), 1, generator=g)
        sums += added[choice[:, 0]]
        mask = torch.cat([mask, torch.ones_like(choice)], 1)
        hidden, cache = model.transformer(choice, cache, mask)
        logits = model.lm_head(hidden[:, -1]).float()
        tokens.append(choice[:, 0])
    return torch.stack(tokens, 1), kl
