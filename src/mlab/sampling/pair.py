"""Decoding from a pair of contexts: the next token is drawn from a combination of two
next-token distributions, ``p(x | a)`` and ``p(x | b)``, and appended to both contexts.

- product of experts (Hinton 2002): ``log p(x | a) + log p(x | b)``, what both contexts
  find likely (e.g. a story prompt and a style prompt);
- contrastive: ``log p(x | a) - alpha * log p(x | b)``, what ``a`` makes likely *more than*
  ``b`` does (e.g. ``b`` the same prompt without the instruction; Li et al. 2023,
  "Contrastive Decoding"; classifier-free guidance for ``alpha < 0``... in reverse).

Both contexts run as one batch of ``2 * batch`` rows (every ``a`` then every ``b``, each
left-padded to the longer of the two), so each step is one forward pass, and each row keeps
its own cache: the rows of a batched cache never mix.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from torch.nn import functional as F

from mlab.errors import ShapeError
from mlab.sampling.generate import check_prompt

__all__ = ["combine_log_probs", "generate_paired", "left_pad"]


def combine_log_probs(
    log_p_a: Float[Tensor, "batch vocab"],
    log_p_b: Float[Tensor, "batch vocab"],
    mode: str,
    alpha: float = 1.0,
) -> Float[Tensor, "batch vocab"]:
    """The combined scores: ``log_p_a + log_p_b`` for ``mode="product"``, ``log_p_a - alpha
    * log_p_b`` for ``mode="contrastive"``, renormalised with ``log_softmax`` so they are
    log probabilities again. Raise ``ValueError`` naming ``mode`` otherwise, ``ShapeError``
    unless both have the same shape."""
    if log_p_a.shape != log_p_b.shape:
        raise ShapeError(
            f"the two contexts' log probabilities have shapes {tuple(log_p_a.shape)} and "
            f"{tuple(log_p_b.shape)}: they should be the same (batch, vocab)"
        )
    if mode == "product":
        combined = log_p_a + log_p_b
    elif mode == "contrastive":
        combined = log_p_a - alpha * log_p_b
    else:
        raise ValueError(f"mode={mode!r} should be 'product' or 'contrastive'")
    return combined.log_softmax(dim=-1)


def left_pad(
    ids: Int[Tensor, "batch seq"], mask: Int[Tensor, "batch seq"], length: int, pad: int
) -> tuple[Int[Tensor, "batch length"], Int[Tensor, "batch length"]]:
    """``ids`` and ``mask`` with ``length - seq`` more padding columns on the left."""
    extra = length - ids.shape[1]
    return F.pad(ids, (extra, 0), value=pad), F.pad(mask, (extra, 0), value=0)


@torch.no_grad()
def generate_paired(
    model: Any,
    ids_a: Int[Tensor, "batch seq_a"],
    ids_b: Int[Tensor, "batch seq_b"],
    mask_a: Int[Tensor, "batch seq_a"] | None = None,
    mask_b: Int[Tensor, "batch seq_b"] | None = None,
    *,
    mode: str = "product",
    alpha: float = 1.0,
    max_new_tokens: int = 20,
    do_sample: bool = False,
    generator: torch.Generator | None = None,
    pad_token_id: int = 0,
) -> Int[Tensor, "batch new"]:
    """The ``max_new_tokens`` tokens chosen from the combined distribution
    (:func:`combine_log_probs`), the argmax or a draw, each appended to both contexts.
    One forward pass per step over both contexts together, with the key/value cache."""
    if ids_a.shape[0] != ids_b.shape[0]:
        raise ShapeError(
            f"{ids_a.shape[0]} first contexts but {ids_b.shape[0]} second ones: pass one of "
            "each per row"
        )
    mask_a = check_prompt(model, ids_a, mask_a, max_new_tokens)
    mask_b = check_prompt(model, ids_b, mask_b, max_new_tokens)
    length = max(ids_a.shape[1], ids_b.shape[1])
    a, ma = left_pad(ids_a, mask_a, length, pad_token_id)
    b, mb = left_pad(ids_b, mask_b, length, pad_token_id)
    ids, mask = torch.cat([a, b]), torch.cat([ma, mb])
    batch = ids_a.shape[0]
    new = []
    out = model(ids, attention_mask=mask, use_cache=True)
    for step in range(max_new_tokens):
        log_probs = out.logits[:, -1].float().log_softmax(dim=-1)
        scores = combine_log_probs(log_probs[:batch], log_probs[batch:], mode, alpha)
        if do_sample:
            tokens = torch.multinomial(scores.exp(), 1, generator=generator).squeeze(1)
        else:
            tokens = scores.argmax(dim=-1)
        new.append(tokens)
        if step + 1 < max_new_tokens:
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            both = torch.cat([tokens, tokens])[:, None]
            out = model(both, past_key_values=out.past_key_values, attention_mask=mask)
    return torch.stack(new, dim=1)
