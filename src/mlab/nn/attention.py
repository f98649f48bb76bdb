"""Scaled dot-product attention with masks, and the head reshapes of multi-head attention
(course day w2d1, part 1; reused by GPT-2 on w2d2).

Vaswani et al., "Attention Is All You Need" (2017, https://arxiv.org/abs/1706.03762),
section 3.2: every query position takes a weighted average of the value vectors, with weights
``softmax(q · k / sqrt(d_head))`` over the key positions. Dividing by ``sqrt(d_head)`` keeps
the scores' variance near 1 whatever the head size, so the softmax does not saturate.

Shapes use one glossary: ``batch``, ``heads`` (the number of attention heads), ``seq_q`` /
``seq_k`` (query and key positions; equal in self-attention), ``d_head`` (features per head)
and ``d_model = heads * d_head``.

Masks. A mask says which keys each query may attend to, and broadcasts to
``(batch, heads, seq_q, seq_k)`` (a padding mask is ``(batch, 1, 1, seq_k)``, a causal mask
``(seq_q, seq_k)``). Two forms are accepted:

- **boolean**: ``True`` where attention is allowed, ``False`` where it is blocked (the
  convention of ``torch.nn.functional.scaled_dot_product_attention``);
- **additive** (a float tensor): added to the scores before the softmax: ``0`` keeps a key,
  ``-inf`` (or a large negative number such as HuggingFace's ``torch.finfo(dtype).min``)
  blocks it.

A query row whose keys are *all* blocked (every entry ``False``, or every score ``-inf``) has
no distribution to take: a plain softmax would compute 0/0 = NaN there, and the NaN would
spread through every later layer and into the gradients. Here such a row gets attention
weights of zero and therefore an output of zero (gradients zero too, never NaN). A large
finite negative number is not "blocked" in this sense: a row masked everywhere with
``finfo.min`` gives the uniform average, as HuggingFace's eager attention does.
"""

from __future__ import annotations

import torch
from einops import rearrange
from jaxtyping import Bool, Float, Int
from torch import Tensor

from mlab.errors import ShapeError

__all__ = [
    "apply_mask",
    "attention_weights",
    "merge_heads",
    "padding_mask",
    "scaled_dot_product_attention",
    "split_heads",
]


def split_heads(
    x: Float[Tensor, "batch seq d_model"], n_heads: int
) -> Float[Tensor, "batch n_heads seq d_head"]:
    """Cut the last dim of ``x`` into ``n_heads`` heads of ``d_head = d_model // n_heads``
    features and move the heads before the positions: ``(batch, seq, n_heads * d_head)`` to
    ``(batch, n_heads, seq, d_head)``. Head ``h`` gets features ``h * d_head`` to
    ``(h + 1) * d_head - 1``, as in every published checkpoint. Use einops' ``rearrange``.

    Raise ``ShapeError`` unless ``x`` is 3-D and ``d_model`` is divisible by ``n_heads``
    (which must be at least 1).

    >>> split_heads(torch.zeros(2, 5, 12), 4).shape
    torch.Size([2, 4, 5, 3])
    """
    if x.ndim != 3 or n_heads < 1 or x.shape[-1] % n_heads != 0:
        raise ShapeError(
            f"split_heads needs x of shape (batch, seq, d_model) with d_model divisible by "
            f"n_heads, but got x of shape {tuple(x.shape)} and n_heads={n_heads}: pick "
            "n_heads >= 1 that divides the model width (e.g. 768 = 12 heads x 64)"
        )
    return rearrange(x, "batch seq (heads d_head) -> batch heads seq d_head", heads=n_heads)


def merge_heads(
    x: Float[Tensor, "batch n_heads seq d_head"],
) -> Float[Tensor, "batch seq n_heads*d_head"]:
    """The inverse of :func:`split_heads`: ``(batch, n_heads, seq, d_head)`` to
    ``(batch, seq, n_heads * d_head)``, head ``h``'s features at ``h * d_head`` onwards.
    Use einops' ``rearrange``. Raise ``ShapeError`` unless ``x`` is 4-D.

    >>> merge_heads(torch.zeros(2, 4, 5, 3)).shape
    torch.Size([2, 5, 12])
    """
    if x.ndim != 4:
        raise ShapeError(
            f"merge_heads needs x of shape (batch, heads, seq, d_head) but got shape "
            f"{tuple(x.shape)}: pass the output of the attention, before any reshape"
        )
    return rearrange(x, "batch heads seq d_head -> batch seq (heads d_head)")


def padding_mask(
    attention_mask: Int[Tensor, "batch seq_k"] | Bool[Tensor, "batch seq_k"],
) -> Bool[Tensor, "batch 1 1 seq_k"]:
    """The boolean attention mask for a padded batch: HuggingFace's ``attention_mask``
    (``1`` or ``True`` at real tokens, ``0`` or ``False`` at padding) as a ``(batch, 1, 1,
    seq_k)`` boolean tensor, ``True`` where a key may be attended to. It broadcasts over
    heads and query positions: no query attends to a padding key, and the padding positions
    themselves still attend to the real tokens (their outputs are ignored downstream).

    Raise ``ShapeError`` unless ``attention_mask`` is 2-D, and ``ValueError`` if it holds
    values other than 0 and 1.

    >>> padding_mask(torch.tensor([[1, 1, 0]])).tolist()
    [[[[True, True, False]]]]
    """
    if attention_mask.ndim != 2:
        raise ShapeError(
            f"attention_mask should have shape (batch, seq) but got {tuple(attention_mask.shape)}"
            ": one row of 1s (tokens) and 0s (padding) per sequence"
        )
    bad = (attention_mask != 0) & (attention_mask != 1)
    if bad.any():
        raise ValueError(
            f"attention_mask should hold only 0 (padding) and 1 (token), but holds "
            f"{attention_mask[bad][0].item()}: pass the tokenizer's mask as it is"
        )
    return rearrange(attention_mask.bool(), "batch seq_k -> batch 1 1 seq_k")


def apply_mask(
    scores: Float[Tensor, "batch heads seq_q seq_k"],
    mask: Bool[Tensor, "*mask_shape"] | Float[Tensor, "*mask_shape"],
) -> Float[Tensor, "batch heads seq_q seq_k"]:
    """The attention scores with ``mask`` applied, as a new tensor (``scores`` unchanged).

    A boolean ``mask`` sets the blocked scores (``False``) to ``-inf`` and keeps the others;
    a float ``mask`` is added to the scores. Either way ``mask`` broadcasts to
    ``scores.shape``; raise ``ShapeError`` naming both shapes if it does not (broadcasting
    must not grow ``scores``).
    """
    try:
        shape = torch.broadcast_shapes(mask.shape, scores.shape)  # type: ignore[no-untyped-call]
    except RuntimeError:
        shape = None
    if shape != scores.shape:
        raise ShapeError(
            f"a mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
            f"{tuple(scores.shape)} (batch, heads, seq_q, seq_k): a padding mask is "
            "(batch, 1, 1, seq_k), a causal mask (seq_q, seq_k)"
        )
    if mask.dtype == torch.bool:
        return scores.masked_fill(~mask, float("-inf"))
    return scores + mask


def attention_weights(
    q: Float[Tensor, "batch heads seq_q d_head"],
    k: Float[Tensor, "batch heads seq_k d_head"],
    mask: Tensor | None = None,
    scale: float | None = None,
) -> Float[Tensor, "batch heads seq_q seq_k"]:
    """The attention pattern ``softmax(q @ k^T * scale + mask)`` over the key positions
    (the last dim): each row sums to 1, or is all zero when every key of that row is blocked.

    ``scale`` defaults to ``1 / sqrt(d_head)``. ``mask`` (optional) is boolean or additive,
    as :func:`apply_mask` applies it. A row whose scores are all ``-inf`` after masking gets
    weights of zero, not the NaN that softmax gives: find those rows first (their maximum is
    ``-inf``), and only when there are any, put a finite value in their scores before the
    softmax (so no NaN appears, in the forward pass or in the gradients) and zero their
    weights after it. (Most batches have none: skipping the two extra passes over the
    ``seq_q x seq_k`` scores then saves time.)

    Raise ``ShapeError`` unless ``q`` and ``k`` are 4-D with equal batch, heads and
    ``d_head`` dims.
    """
    if q.ndim != 4 or k.ndim != 4 or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ShapeError(
            f"q of shape {tuple(q.shape)} and k of shape {tuple(k.shape)} should both be "
            "(batch, heads, seq, d_head) with the same batch, heads and d_head: split the "
            "heads first (split_heads)"
        )
    if scale is None:
        scale = q.shape[-1] ** -0.5
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        scores = apply_mask(scores, mask)
    blocked = scores.amax(dim=-1, keepdim=True).isneginf()
    if not blocked.any():
        return torch.softmax(scores, dim=-1)
    weights = torch.softmax(scores.masked_fill(blocked, 0.0), dim=-1)
    return weights.masked_fill(blocked, 0.0)


def scaled_dot_product_attention(
    q: Float[Tensor, "batch heads seq_q d_head"],
    k: Float[Tensor, "batch heads seq_k d_head"],
    v: Float[Tensor, "batch heads seq_k d_v"],
    mask: Tensor | None = None,
    scale: float | None = None,
) -> Float[Tensor, "batch heads seq_q d_v"]:
    """Attention: ``softmax(q @ k^T / sqrt(d_head) + mask) @ v``, each query's output the
    average of the value vectors weighted by :func:`attention_weights` (same ``mask`` and
    ``scale``). A query whose keys are all blocked gets an output of zeros.

    Equal to ``torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask,
    scale=scale)`` (which also gives zeros for a fully blocked boolean row in torch 2.13).

    Raise ``ShapeError`` unless ``v`` is 4-D with the batch, heads and ``seq_k`` of ``k``.

    >>> q = k = v = torch.ones(1, 2, 3, 4)
    >>> scaled_dot_product_attention(q, k, v).shape
    torch.Size([1, 2, 3, 4])
    """
    weights = attention_weights(q, k, mask, scale)
    if v.ndim != 4 or v.shape[:3] != k.shape[:3]:
        raise ShapeError(
            f"v of shape {tuple(v.shape)} should be (batch, heads, seq_k, d_v) with the "
            f"batch, heads and seq_k of k, which has shape {tuple(k.shape)}: keys and values "
            "come in pairs, one per key position"
        )
    return weights @ v
