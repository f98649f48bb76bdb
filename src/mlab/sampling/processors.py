"""Logit processors: what decoding does to the next-token scores before it picks a token.

Each function takes the scores of the last position, ``(batch, vocab)``, and returns new
scores without editing its input; a token that may not be picked gets ``-inf``. They compute
what HuggingFace's ``TemperatureLogitsWarper``, ``TopKLogitsWarper``, ``TopPLogitsWarper``
(Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration"),
``RepetitionPenaltyLogitsProcessor`` (Keskar et al. 2019, CTRL) and
``MinNewTokensLengthLogitsProcessor`` compute, with the same tie rules.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mlab.errors import ShapeError

__all__ = [
    "apply_temperature",
    "repetition_penalty",
    "suppress_tokens",
    "top_k_filter",
    "top_p_filter",
]


def apply_temperature(
    logits: Float[Tensor, "batch vocab"], temperature: float
) -> Float[Tensor, "batch vocab"]:
    """The logits divided by ``temperature``: below 1 sharpens the distribution (towards
    greedy), above 1 flattens it (towards uniform). Raise ``ValueError`` naming the value
    unless ``temperature > 0`` (greedy decoding is its own mode, not temperature 0)."""
    if not temperature > 0:
        raise ValueError(
            f"temperature={temperature} should be > 0: for greedy decoding use "
            "do_sample=False instead of temperature 0"
        )
    return logits / temperature


def top_k_filter(logits: Float[Tensor, "batch vocab"], k: int) -> Float[Tensor, "batch vocab"]:
    """Keep each row's ``k`` highest scores and set the rest to ``-inf``. A score tied with
    the k-th highest is kept too (so ties may keep more than k); ``k`` larger than the
    vocabulary keeps everything. Raise ``ValueError`` naming ``k`` unless ``k >= 1``.

    >>> top_k_filter(torch.tensor([[1.0, 3.0, 2.0, 3.0]]), 2).tolist()
    [[-inf, 3.0, -inf, 3.0]]
    """
    if k < 1:
        raise ValueError(f"top_k={k} should be at least 1 (it is how many tokens to keep)")
    kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(
    logits: Float[Tensor, "batch vocab"], p: float, min_tokens_to_keep: int = 1
) -> Float[Tensor, "batch vocab"]:
    """Nucleus filtering: keep the most likely tokens until their probabilities add up to
    at least ``p``. As HuggingFace computes it: sort the probabilities (softmax of the
    logits) in *ascending* order and drop every token whose cumulative sum is ``<= 1 - p``;
    always keep the ``min_tokens_to_keep`` most likely. Dropped tokens get ``-inf``. Raise
    ``ValueError`` naming ``p`` unless ``0 < p <= 1``.

    >>> top_p_filter(torch.tensor([[0.0, 1.0, 2.0]]).log(), 0.7).exp().tolist()
    [[0.0, 0.0, 2.0]]
    """
    if not 0 < p <= 1:
        raise ValueError(f"top_p={p} should be in (0, 1]: it is the probability mass kept")
    ascending, order = torch.sort(logits, dim=-1)
    cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
    drop = cumulative <= 1 - p
    drop[:, logits.shape[-1] - min_tokens_to_keep :] = False
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def repetition_penalty(
    logits: Float[Tensor, "batch vocab"],
    input_ids: Int[Tensor, "batch seq"],
    penalty: float,
    first_real: Int[Tensor, " batch"] | None = None,
) -> Float[Tensor, "batch vocab"]:
    """CTRL's repetition penalty: every token that occurs in a row's ``input_ids`` (at or
    after column ``first_real[row]``, so left padding does not count) has its score divided
    by ``penalty`` when positive and multiplied by it when negative: either way less likely
    for ``penalty > 1``. Each token is penalised once however often it occurs. Raise
    ``ValueError`` naming the value unless ``penalty > 0``.
    """
    if not penalty > 0:
        raise ValueError(f"repetition_penalty={penalty} should be > 0 (1.0 is no penalty)")
    if input_ids.shape[0] != logits.shape[0]:
        raise ShapeError(
            f"input_ids has {input_ids.shape[0]} rows but the logits {logits.shape[0]}: "
            "pass the sequences the logits were computed from"
        )
    real = torch.ones(input_ids.shape, dtype=torch.long, device=logits.device)
    if first_real is not None:
        real = (
            torch.arange(input_ids.shape[1], device=logits.device) >= first_real[:, None]
        ).long()
    counts = torch.zeros(logits.shape, dtype=torch.long, device=logits.device)
    seen = counts.scatter_add(-1, input_ids, real) > 0
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def suppress_tokens(
    logits: Float[Tensor, "batch vocab"], token_ids: list[int]
) -> Float[Tensor, "batch vocab"]:
    """The logits with every token in ``token_ids`` set to ``-inf``: how ``min_new_tokens``
    keeps the end-of-sequence tokens from being picked too early."""
    out = logits.clone()
    out[:, token_ids] = float("-inf")
    return out
