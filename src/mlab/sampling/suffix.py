"""Steering by a suffix: how likely is "-- and that was bad" after each continuation?

``log p(suffix | prompt + continuation)`` measures how well the continuation fits the
suffix: a continuation after which "-- and that was bad" is likely reads as bad. Scoring many
continuations naively re-encodes ``prompt + continuation + suffix`` for each; here the prompt
is encoded once, its cache is shared (``expand``, no copy) by every continuation, and the
continuations with the suffix run as one right-padded batch after it. Then
:func:`avoid_suffix` samples candidates and keeps those the suffix fits least.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from torch.nn import functional as F

from mlab.errors import ShapeError
from mlab.sampling.generate import generate

__all__ = ["avoid_suffix", "suffix_log_probs"]


@torch.no_grad()
def suffix_log_probs(
    model: Any,
    prompt: Int[Tensor, " seq"],
    continuations: Sequence[Tensor],
    suffix: Int[Tensor, " suffix"],
) -> Float[Tensor, " n"]:
    """``log p(suffix | prompt + continuation)`` for each continuation (the sum over the
    suffix's tokens), in float32, with the prompt encoded once.

    Continuations may differ in length, and be empty. Raise ``ShapeError`` when the prompt
    or the suffix is empty, or when prompt + continuation + suffix does not fit the model;
    ``ValueError`` when there is no continuation.
    """
    if prompt.ndim != 1 or suffix.ndim != 1 or len(prompt) == 0 or len(suffix) == 0:
        raise ShapeError(
            f"prompt {tuple(prompt.shape)} and suffix {tuple(suffix.shape)} should be "
            "non-empty 1-d tensors of token ids"
        )
    if not continuations:
        raise ValueError("no continuations to score: pass a list of at least one")
    lengths = [len(c) for c in continuations]
    longest = max(lengths)
    total = len(prompt) + longest + len(suffix)
    if total > model.config.n_positions:
        raise ShapeError(
            f"prompt ({len(prompt)}) + longest continuation ({longest}) + suffix "
            f"({len(suffix)}) = {total} tokens is longer than n_positions="
            f"{model.config.n_positions}"
        )
    n = len(continuations)
    out = model(prompt[None], use_cache=True)
    cache = tuple(
        (k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in out.past_key_values
    )
    width = longest + len(suffix)
    rows = [torch.cat([c.to(prompt), suffix]) for c in continuations]
    ids = torch.stack([F.pad(r, (0, width - len(r))) for r in rows])
    real = torch.stack([F.pad(torch.ones_like(r), (0, width - len(r))) for r in rows])
    mask = torch.cat([torch.ones(n, len(prompt), dtype=real.dtype), real], dim=1)
    logits = model(ids, past_key_values=cache, attention_mask=mask).logits
    # column j predicts token j of the row; the prompt's last position predicts token 0
    logits = torch.cat([out.logits[:, -1:].repeat(n, 1, 1), logits[:, :-1]], dim=1)
    log_probs = logits.float().log_softmax(dim=-1).gather(-1, ids[..., None]).squeeze(-1)
    at = torch.tensor(lengths)[:, None] + torch.arange(len(suffix))
    return log_probs.gather(1, at).sum(dim=1)


def avoid_suffix(
    model: Any,
    prompt: Int[Tensor, " seq"],
    suffix: Int[Tensor, " suffix"],
    *,
    n_candidates: int = 8,
    keep: int = 1,
    eos_token_id: int | None = None,
    **sampling: Any,
) -> tuple[list[Tensor], Float[Tensor, " keep"]]:
    """Sample ``n_candidates`` continuations of ``prompt`` (keywords as :func:`generate`'s,
    ``do_sample=True`` unless given), and return the ``keep`` that the suffix is least
    likely to follow (cut after their end-of-sequence token), with their suffix log probs,
    lowest first."""
    if not 1 <= keep <= n_candidates:
        raise ValueError(f"keep={keep} should be between 1 and n_candidates={n_candidates}")
    sampling.setdefault("do_sample", True)
    prompts = prompt[None].expand(n_candidates, -1)
    samples = generate(model, prompts, eos_token_id=eos_token_id, **sampling)[:, len(prompt) :]
    candidates = []
    for row in samples:
        ends = (row == eos_token_id).nonzero() if eos_token_id is not None else []
        candidates.append(row[: int(ends[0]) + 1] if len(ends) else row)
    scores = suffix_log_probs(model, prompt, candidates, suffix)
    order = scores.argsort()[:keep]
    return [candidates[i] for i in order.tolist()], scores[order]
