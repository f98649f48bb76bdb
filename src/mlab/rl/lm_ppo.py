"""PPO on a language model: make the Shakespeare GPT-2 say positive things (VADER) while
staying close to what it was (a KL penalty to a frozen copy), as Ziegler et al. 2019 and trl's
``PPOTrainer`` do it.

One iteration:

1. draw ``batch`` prompts (the first 2 to 8 tokens of lines of tiny Shakespeare), left-pad
   them, and sample ``gen_len`` tokens each from the policy (``mlab.sampling.generate``,
   temperature 1, no filter, the key/value cache);
2. score: VADER on each continuation's text; the policy's and the frozen reference's log
   probabilities and the value head's values at every generated token (one forward each);
3. rewards per token (:func:`~mlab.rl.lm_policy.token_rewards`), advantages by GAE
   ($\\gamma = 1$), returns = advantages + values, advantages whitened;
4. ``epochs`` passes over shuffled minibatches: clipped policy loss + ``vf_coef`` times the
   clipped value loss, Adam;
5. $\\beta$ updated (adaptive) from the batch's mean KL per continuation.

Everything is measured on the samples of step 1, so the first iteration's numbers are the
base model's.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mlab.errors import ConfigError
from mlab.models.gpt2 import GPT2LMHeadModel
from mlab.models.shakespeare import Tokenizer, save_model
from mlab.rl.kl import exact_kl
from mlab.rl.lm_policy import (
    PolicyWithValue,
    adaptive_beta,
    left_pad_prompts,
    response_log_probs,
    response_mask,
    token_rewards,
)
from mlab.rl.ppo import clipped_policy_loss, clipped_value_loss, gae, masked_mean, whiten
from mlab.rl.sentiment import sentiment_scores
from mlab.sampling import generate

__all__ = [
    "Batch",
    "RLHFConfig",
    "RLHFResult",
    "evaluate_policy",
    "load_prompts",
    "rollout",
    "sample_prompts",
    "train_rlhf",
]


@dataclass
class RLHFConfig:
    """One PPO run on the language model (trl's names where it has them)."""

    iterations: int = 80
    batch: int = 128  # continuations per iteration
    minibatch: int = 32
    epochs: int = 4
    gen_len: int = 16  # tokens per continuation: the KL is per this many tokens
    lr: float = 5e-5
    clip: float = 0.2
    vf_clip: float = 0.2
    vf_coef: float = 0.1
    lam: float = 0.95
    max_grad_norm: float = 1.0
    beta: float = 0.05  # the KL coefficient (the initial one when adaptive)
    target_kl: float | None = None  # nats per continuation: adaptive beta when set
    horizon: int = 10_000  # samples, for the adaptive controller
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse values the loop cannot run with, naming the field and the fix."""
        for name in ("iterations", "batch", "minibatch", "epochs", "gen_len", "horizon"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)!r}: give a positive count")
        if self.minibatch > self.batch:
            raise ConfigError(
                f"minibatch={self.minibatch} is larger than batch={self.batch}: a gradient "
                "step cannot use more continuations than were sampled; lower minibatch"
            )
        for name in ("lr", "clip", "vf_clip"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}={getattr(self, name)!r}: give a positive number")
        if not self.beta >= 0:
            raise ConfigError(f"beta={self.beta!r}: give 0 (no KL penalty) or more")
        if self.target_kl is not None and not self.target_kl > 0:
            raise ConfigError(f"target_kl={self.target_kl!r}: give a positive KL in nats")


@dataclass
class RLHFResult:
    config: dict[str, Any]
    score: list[float] = field(default_factory=list)  # mean VADER per iteration
    kl: list[float] = field(default_factory=list)  # mean k1 KL per continuation
    exact_kl: list[float] = field(default_factory=list)  # mean exact KL per continuation
    beta: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # since the start, per iteration
    samples_before: list[str] = field(default_factory=list)
    samples_after: list[str] = field(default_factory=list)

    def final(self, last: int = 5) -> dict[str, float]:
        """Mean score and KLs over the last ``last`` iterations."""

        def mean(xs: list[float]) -> float:
            return sum(xs[-last:]) / len(xs[-last:])

        return {"score": mean(self.score), "kl": mean(self.kl), "exact_kl": mean(self.exact_kl)}


def load_prompts(text: str, tokenizer: Tokenizer) -> list[list[int]]:
    """The token ids of every line of ``text`` that is not a speaker's name (``ROMEO:``)
    and has at least 8 tokens."""
    lines = [s.strip() for s in text.splitlines()]
    encoded = [tokenizer.encode(s) for s in lines if s and not s.endswith(":")]
    return [ids for ids in encoded if len(ids) >= 8]


def sample_prompts(lines: list[list[int]], n: int, rng: random.Random) -> list[list[int]]:
    """``n`` prompts: the first 2 to 8 tokens of random lines."""
    return [rng.choice(lines)[: rng.randint(2, 8)] for _ in range(n)]


@dataclass
class Batch:
    """One batch of continuations and what PPO needs of them (``(batch, gen)`` tensors)."""

    sequences: Tensor  # (batch, prompt + gen): left-padded prompts, then continuations
    attention_mask: Tensor
    prompt_len: int
    mask: Tensor
    log_p: Tensor
    log_ref: Tensor
    values: Tensor
    exact_kl: Tensor  # (batch,): the exact KL summed over each continuation's tokens
    texts: list[str]
    scores: Tensor


def _forward(
    policy: PolicyWithValue, sequences: Tensor, attention_mask: Tensor, prompt_len: int
) -> tuple[Tensor, Tensor, Tensor]:
    logits, values = policy(sequences, attention_mask)
    log_p = response_log_probs(logits, sequences, prompt_len)
    return logits, log_p, values[:, prompt_len - 1 : -1]


@torch.no_grad()
def rollout(
    policy: PolicyWithValue,
    ref: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    prompts: list[list[int]],
    gen_len: int,
    g: torch.Generator,
    score_fn: Callable[[list[str]], Tensor] = sentiment_scores,
) -> Batch:
    """Sample a continuation of each prompt from the policy and score it (steps 1 and 2)."""
    ids, mask = left_pad_prompts(prompts, pad_token_id=0)
    sequences = generate(
        policy.model, ids, mask, max_new_tokens=gen_len, do_sample=True, generator=g
    )
    prompt_len = ids.shape[1]
    attention = torch.cat([mask, torch.ones_like(sequences[:, prompt_len:])], 1)
    logits, log_p, values = _forward(policy, sequences, attention, prompt_len)
    ref_logits = ref(sequences, attention_mask=attention).logits
    log_ref = response_log_probs(ref_logits, sequences, prompt_len)
    responses = sequences[:, prompt_len:]
    texts = [tokenizer.decode(r.tolist()) for r in responses]
    gen_mask = response_mask(responses, None)
    kl = exact_kl(
        logits[:, prompt_len - 1 : -1].float(), ref_logits[:, prompt_len - 1 : -1].float()
    )
    return Batch(
        sequences, attention, prompt_len, gen_mask, log_p, log_ref, values,
        (kl * gen_mask).sum(1), texts, score_fn(texts),
    )  # fmt: skip


def _dones(mask: Tensor) -> Tensor:
    """1 at each row's last token that counts: the episode ends there."""
    after = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], 1)
    return mask * (1 - after)


def ppo_update(
    policy: PolicyWithValue,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    beta: float,
    config: RLHFConfig,
    g: torch.Generator,
) -> dict[str, float]:
    """Steps 3 and 4 on one batch; returns the mean policy and value losses."""
    mask = batch.mask
    rewards = token_rewards(batch.scores, batch.log_p, batch.log_ref, mask, beta)
    values = batch.values * mask
    zeros = torch.zeros(len(rewards))
    advantages = gae(rewards, values, _dones(mask), zeros, 1.0, config.lam)
    returns = advantages + values
    advantages = whiten(advantages, mask)
    n = len(rewards)
    losses: dict[str, list[float]] = {"policy": [], "value": []}
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=g)
        for start in range(0, n, config.minibatch):
            idx = order[start : start + config.minibatch]
            _, log_p, v = _forward(
                policy, batch.sequences[idx], batch.attention_mask[idx], batch.prompt_len
            )
            pg = clipped_policy_loss(
                log_p, batch.log_p[idx], advantages[idx], config.clip, mask[idx]
            )
            vl = clipped_value_loss(v, values[idx], returns[idx], config.vf_clip, mask[idx])
            optimizer.zero_grad()
            (pg + config.vf_coef * vl).backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            optimizer.step()
            losses["policy"].append(float(pg.detach()))
            losses["value"].append(float(vl.detach()))
    return {k: sum(v) / len(v) for k, v in losses.items()}


def train_rlhf(
    model: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    prompt_lines: list[list[int]],
    config: RLHFConfig,
    *,
    score_fn: Callable[[list[str]], Tensor] = sentiment_scores,
    on_iteration: Callable[[int, RLHFResult], None] | None = None,
    out: Path | None = None,
) -> tuple[PolicyWithValue, RLHFResult]:
    """Tune a copy of ``model`` with PPO against ``score_fn`` minus the KL to ``model``
    (which stays frozen as the reference). With ``out``, writes ``metrics.jsonl`` (one
    line per iteration), ``result.json`` (rewritten after every iteration) and, at the
    end, the tuned language model in ``policy/`` (``load_pretrained(out / "policy")``
    loads it; so does ``mlab sample --model``)."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    g = torch.Generator().manual_seed(config.seed)
    ref = model.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    policy = PolicyWithValue(copy.deepcopy(ref)).eval()  # eval: no dropout, ratios start at 1
    for p in policy.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    result = RLHFResult(asdict(config))
    beta, start = config.beta, time.perf_counter()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.jsonl").write_text("")
    for it in range(config.iterations):
        prompts = sample_prompts(prompt_lines, config.batch, rng)
        batch = rollout(policy, ref, tokenizer, prompts, config.gen_len, g, score_fn)
        kl = float(masked_mean(batch.log_p - batch.log_ref, batch.mask) * config.gen_len)
        result.score.append(float(batch.scores.mean()))
        result.kl.append(kl)
        result.exact_kl.append(float(batch.exact_kl.mean()))
        result.beta.append(beta)
        texts = [tokenizer.decode(p) + " |" + t for p, t in zip(prompts, batch.texts, strict=True)]
        if it == 0:
            result.samples_before = texts[:8]
        result.samples_after = texts[:8]
        losses = ppo_update(policy, optimizer, batch, beta, config, g)
        if config.target_kl is not None:
            beta = adaptive_beta(beta, kl, config.target_kl, config.batch, config.horizon)
        result.seconds.append(time.perf_counter() - start)
        if out is not None:
            line = {
                "iteration": it, "score": result.score[-1], "kl": kl,
                "exact_kl": result.exact_kl[-1], "beta": result.beta[-1],
                "seconds": result.seconds[-1], **losses,
            }  # fmt: skip
            with (out / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(line) + "\n")
            # every iteration, so an interrupted run keeps its samples
            (out / "result.json").write_text(json.dumps(asdict(result), indent=1) + "\n")
        if on_iteration is not None:
            on_iteration(it, result)
    if out is not None:
        save_model(policy.model, tokenizer, out / "policy")
    return policy, result


def evaluate_policy(
    model: GPT2LMHeadModel,
    ref: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    prompts: list[list[int]],
    gen_len: int = 16,
    seed: int = 0,
    chunk: int = 128,
    score_fn: Callable[[list[str]], Tensor] = sentiment_scores,
) -> dict[str, Any]:
    """A tuned ``model`` measured on fixed ``prompts`` (one continuation each, temperature
    1): the mean score and the mean exact KL to ``ref`` per continuation, each with a
    bootstrap 95% interval over prompts, the mean sampled log ratio (k1), and 8 samples.
    The same prompts and seed for every model make the rows comparable."""
    from mlab.analysis.bootstrap import bootstrap_ci

    g = torch.Generator().manual_seed(seed)
    policy = PolicyWithValue(model).eval()
    scores, kls, k1s, texts = [], [], [], []
    for start in range(0, len(prompts), chunk):
        part = prompts[start : start + chunk]
        batch = rollout(policy, ref, tokenizer, part, gen_len, g, score_fn)
        scores.append(batch.scores.double())
        kls.append(batch.exact_kl.double())
        k1s.append(((batch.log_p - batch.log_ref) * batch.mask).sum(1).double())
        texts += [tokenizer.decode(p) + " |" + t for p, t in zip(part, batch.texts, strict=True)]
    score, kl, k1 = torch.cat(scores), torch.cat(kls), torch.cat(k1s)
    return {
        "prompts": len(prompts),
        "gen_len": gen_len,
        "score": float(score.mean()),
        "score_ci": list(bootstrap_ci(score.numpy())),
        "exact_kl": float(kl.mean()),
        "exact_kl_ci": list(bootstrap_ci(kl.numpy())),
        "kl": float(k1.mean()),
        "samples": texts[:8],
    }
