"""Realistic wrong solutions of w2d5 (log buckets in float64 or without their sign, floor for
ceil, the relative positions transposed, c2p with p2c's index, p2c not transposed back, a
BERT-style key-only mask, the scale without its factor, masks added instead of set, -inf for
blocked scores, no dropout on the position embeddings, the residual from the keys' states,
a decoder whose keys follow the queries or that forgets the positions): each must fail its
exercise's checks with a message that points at the mistake. (That the reference passes the
same checks is test_course_meta's test_checks_pass_on_the_reference[w2d5].)"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import torch
from torch import Tensor

from checkrun import run_checks
from mlab.errors import MismatchError, ShapeError
from mlab.models import deberta
from mlab.nn.attention import merge_heads, split_heads

_run = partial(run_checks, "w2d5")


# ----------------------------------------------------------------------------------------------
# part 1


def buckets_in_float64(relative_pos: Tensor, bucket_size: int, max_position: int) -> Tensor:
    mid = bucket_size // 2
    if mid < 1 or max_position <= mid + 1:
        raise ValueError(f"bucket_size={bucket_size}")
    distance = relative_pos.abs()
    ratio = torch.log(distance.double() / mid) / math.log((max_position - 1) / mid)
    bucketed = relative_pos.sign() * (torch.ceil(ratio * (mid - 1)).long() + mid)
    return torch.where(distance <= mid, relative_pos, bucketed)


def buckets_without_sign(relative_pos: Tensor, bucket_size: int, max_position: int) -> Tensor:
    mid = bucket_size // 2
    if mid < 1 or max_position <= mid + 1:
        raise ValueError(f"bucket_size={bucket_size}")
    distance = relative_pos.abs()
    ratio = torch.log(distance / mid) / torch.log(torch.tensor((max_position - 1) / mid))
    bucketed = torch.ceil(ratio * (mid - 1)).long() + mid  # far left lands on the right
    return torch.where(distance <= mid, relative_pos, bucketed)


def buckets_with_floor(relative_pos: Tensor, bucket_size: int, max_position: int) -> Tensor:
    mid = bucket_size // 2
    if mid < 1 or max_position <= mid + 1:
        raise ValueError(f"bucket_size={bucket_size}")
    distance = relative_pos.abs()
    ratio = torch.log(distance / mid) / torch.log(torch.tensor((max_position - 1) / mid))
    bucketed = relative_pos.sign() * (torch.floor(ratio * (mid - 1)).long() + mid)
    return torch.where(distance <= mid, relative_pos, bucketed)


def positions_key_minus_query(
    query_size: int, key_size: int, bucket_size: int = -1, max_position: int = -1
) -> Tensor:
    rel = torch.arange(key_size)[None, :] - torch.arange(query_size)[:, None]  # j - i
    if bucket_size > 0 and max_position > 0:
        return deberta.log_bucket_position(rel, bucket_size, max_position)
    return rel


# ----------------------------------------------------------------------------------------------
# part 2


def c2p_with_p2c_index(q: Tensor, pos_k: Tensor, relative_pos: Tensor) -> Tensor:
    B, H = q.shape[:2]
    span = pos_k.shape[1] // 2
    index = (span - relative_pos).clamp(0, 2 * span - 1)  # the sign of delta flipped
    return (q @ pos_k.transpose(-1, -2)).gather(-1, index.expand(B, H, *index.shape))


def p2c_not_transposed(k: Tensor, pos_q: Tensor, relative_pos: Tensor) -> Tensor:
    B, H, T, _ = k.shape
    span = pos_q.shape[1] // 2
    index = (span - relative_pos).clamp(0, 2 * span - 1)
    return (k @ pos_q.transpose(-1, -2)).gather(-1, index.expand(B, H, T, T))


def p2c_with_c2p_index(k: Tensor, pos_q: Tensor, relative_pos: Tensor) -> Tensor:
    B, H, T, _ = k.shape
    span = pos_q.shape[1] // 2
    index = (relative_pos + span).clamp(0, 2 * span - 1)
    return (k @ pos_q.transpose(-1, -2)).gather(-1, index.expand(B, H, T, T)).transpose(-1, -2)


def mask_keys_only(attention_mask: Tensor) -> Tensor:
    if attention_mask.ndim != 2:
        raise ShapeError("2-D please")
    return attention_mask.bool()[:, None, None, :]  # BERT's (batch, 1, 1, seq)


class WrongAttention(deberta.DisentangledSelfAttention):
    """The reference forward with one mistake, chosen by the subclass."""

    scale_factor_forgotten = mask_added = mask_to_minus_inf = no_pos_dropout = False

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        mask: Tensor,
        relative_pos: Tensor | None = None,
        rel_embeddings: Tensor | None = None,
        query_states: Tensor | None = None,
    ) -> Tensor:
        config, heads = self.config, self.config.num_attention_heads
        q = split_heads(self.query_proj(x if query_states is None else query_states), heads)
        k = split_heads(self.key_proj(x), heads)
        v = split_heads(self.value_proj(x), heads)
        terms = [t for t in ("c2p", "p2c") if t in config.pos_att_type]
        factor = 1 if self.scale_factor_forgotten else 1 + len(terms)
        scale = 1 / math.sqrt(q.shape[-1] * factor)
        scores = q @ k.transpose(-1, -2) * scale
        if config.relative_attention:
            assert relative_pos is not None and rel_embeddings is not None
            rel = rel_embeddings if self.no_pos_dropout else self.pos_dropout(rel_embeddings)
            rel = rel.unsqueeze(0)
            if "c2p" in terms:
                proj = self.key_proj if config.share_att_key else self.pos_key_proj
                pos_k = split_heads(proj(rel), heads)[0]
                scores = scores + deberta.c2p_scores(q, pos_k, relative_pos) * scale
            if "p2c" in terms:
                proj = self.query_proj if config.share_att_key else self.pos_query_proj
                pos_q = split_heads(proj(rel), heads)[0]
                scores = scores + deberta.p2c_scores(k, pos_q, relative_pos) * scale
        if self.mask_added:
            blocked = torch.zeros_like(scores).masked_fill(~mask, torch.finfo(scores.dtype).min)
            scores = scores + blocked  # gradients still reach the blocked scores
        elif self.mask_to_minus_inf:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        return merge_heads(self.dropout(torch.softmax(scores, dim=-1)) @ v)


class AttentionScaleWithoutFactor(WrongAttention):
    scale_factor_forgotten = True


class AttentionMaskAdded(WrongAttention):
    mask_added = True


class AttentionMaskMinusInf(WrongAttention):
    mask_to_minus_inf = True


class AttentionNoPositionDropout(WrongAttention):
    no_pos_dropout = True


# ----------------------------------------------------------------------------------------------
# part 3


class LayerResidualFromKeys(deberta.DebertaLayer):
    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        mask: Tensor,
        relative_pos: Tensor | None = None,
        rel_embeddings: Tensor | None = None,
        query_states: Tensor | None = None,
    ) -> Tensor:
        att = self.attention(x, mask, relative_pos, rel_embeddings, query_states)
        h = self.attention_norm(x + self.dropout(self.attention_out(att)))  # x, not the queries
        ffn = self.ffn_out(torch.nn.functional.gelu(self.ffn_in(h)))
        return self.ffn_norm(h + self.dropout(ffn))  # type: ignore[no-any-return]


def decoder_keys_follow_queries(  # type: ignore[no-untyped-def]
    layer, hidden, positions, mask, relative_pos=None, rel_embeddings=None, steps=2
):
    if steps < 1:
        raise ValueError(f"steps={steps}")
    query = hidden + positions
    for _ in range(steps):
        query = layer(query, mask, relative_pos, rel_embeddings, query_states=query)
    return query


def decoder_without_positions(  # type: ignore[no-untyped-def]
    layer, hidden, positions, mask, relative_pos=None, rel_embeddings=None, steps=2
):
    if steps < 1:
        raise ValueError(f"steps={steps}")
    query = hidden
    for _ in range(steps):
        query = layer(hidden, mask, relative_pos, rel_embeddings, query_states=query)
    return query


WRONG: list[tuple[str, Callable[..., Any], str]] = [
    ("log_bucket_position", buckets_in_float64, "buckets"),
    ("log_bucket_position", buckets_without_sign, "buckets"),
    ("log_bucket_position", buckets_with_floor, "buckets"),
    ("relative_positions", positions_key_minus_query, "values differ"),
    ("c2p_scores", c2p_with_p2c_index, "values differ"),
    ("p2c_scores", p2c_not_transposed, "values differ"),
    ("p2c_scores", p2c_with_c2p_index, "values differ"),
    ("deberta_attention_mask", mask_keys_only, "shape"),
    ("DisentangledSelfAttention", AttentionScaleWithoutFactor, "output"),
    ("DisentangledSelfAttention", AttentionMaskAdded, "gradient of the hidden states"),
    ("DisentangledSelfAttention", AttentionMaskMinusInf, "NaN"),
    ("DisentangledSelfAttention", AttentionNoPositionDropout, "pos_dropout"),
    ("DebertaLayer", LayerResidualFromKeys, "query_states given"),
    ("enhanced_mask_decoder", decoder_keys_follow_queries, "values differ"),
    ("enhanced_mask_decoder", decoder_without_positions, "values differ"),
]


@pytest.mark.parametrize(
    ("exercise", "wrong", "message"), WRONG, ids=[w[1].__name__ for w in WRONG]
)
def test_wrong_solution_fails_with_a_pointed_message(
    exercise: str, wrong: Callable[..., Any], message: str
) -> None:
    with pytest.raises(MismatchError) as info:
        _run(exercise, wrong)
    text = str(info.value) + "\n".join(getattr(info.value, "__notes__", []))
    assert re.search(message, text, flags=re.DOTALL), text
