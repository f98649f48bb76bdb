"""DeBERTa (v2/v3) from mlab's own layers, equal to HuggingFace's ``DebertaV2Model`` and
``DebertaV2ForMaskedLM`` (course day w2d5).

He, Liu, Gao and Chen, "DeBERTa: Decoding-enhanced BERT with Disentangled Attention" (2020,
https://arxiv.org/abs/2006.03654). Two ideas on top of BERT (w2d1):

- **Disentangled attention.** A token is represented by two vectors, its content ``h_i``
  and its position *relative to the other token*, ``P_{delta(i, j)}``, and the attention
  score sums three dot products: content-to-content (BERT's), content-to-position ("c2p":
  what the query looks for at that distance) and position-to-content ("p2c": what the key
  offers to a query at that distance), divided by ``sqrt(d_head * (1 + number of position
  terms))``. The relative distance ``i - j`` is clipped to ``(-k, k)``, or, in v2/v3,
  *log-bucketed*: exact near zero, logarithmically coarser far away.
- **The enhanced mask decoder (EMD).** Relative positions alone cannot tell "a new *store*
  opened beside the new *mall*" from the swap; DeBERTa adds the *absolute* positions only at
  the end, just before the masked-LM head, by running the last layer again with the absolute
  position embeddings added to its queries.

The file reads bottom-up: relative positions and their buckets, the c2p / p2c scores, the
disentangled self-attention, the layer, the embeddings, the model, the enhanced mask decoder,
the masked-LM model and the weight loaders. It reuses w2d1's ``Dropout``, ``Embedding``
and masked-LM head, and w1d3's ``LayerNorm`` and ``Linear``.
:data:`HF_LAYER_PARTS` and :data:`HF_TOP_LEVEL` are the one table between our names and
HuggingFace's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from mlab.errors import DataError, ShapeError, StateDictError
from mlab.models.bert import BertConfig, BertMLMHead, Dropout, Embedding
from mlab.models.resnet import load_checked_state_dict
from mlab.nn.attention import merge_heads, split_heads
from mlab.nn.layers import LayerNorm, Linear

__all__ = [
    "HF_LAYER_PARTS",
    "HF_TOP_LEVEL",
    "DebertaConfig",
    "DebertaEmbeddings",
    "DebertaForMaskedLM",
    "DebertaLayer",
    "DebertaModel",
    "DisentangledSelfAttention",
    "c2p_scores",
    "deberta_attention_mask",
    "enhanced_mask_decoder",
    "hf_deberta_key",
    "hf_state_dict",
    "load_hf_deberta_state_dict",
    "log_bucket_position",
    "p2c_scores",
    "relative_positions",
]

POS_ATT_TYPES = ("c2p", "p2c")


@dataclass(frozen=True)
class DebertaConfig:
    """The sizes and switches of a DeBERTa-v2, with HuggingFace ``DebertaV2Config``'s
    defaults (DeBERTa-v2-xlarge's sizes) except where noted.

    ``relative_attention`` turns disentangled attention on; ``pos_att_type`` names its
    position terms (``"c2p"``, ``"p2c"``, both or none); ``position_buckets > 0`` log-buckets
    the relative positions into ``2 * position_buckets`` embeddings (else
    ``2 * max_relative_positions`` of them, clipped); ``share_att_key`` projects the position
    embeddings with the content's ``key_proj`` / ``query_proj`` instead of projections of
    their own; ``norm_rel_ebd = "layer_norm"`` normalises the position embeddings;
    ``position_biased_input`` adds absolute position embeddings to the input (BERT's way;
    DeBERTa-v3 sets it off).
    """

    vocab_size: int = 128100
    hidden_size: int = 1536
    num_hidden_layers: int = 24
    num_attention_heads: int = 24
    intermediate_size: int = 6144
    max_position_embeddings: int = 512
    type_vocab_size: int = 0
    layer_norm_eps: float = 1e-7
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    pad_token_id: int = 0
    relative_attention: bool = False
    max_relative_positions: int = -1
    position_buckets: int = -1
    pos_att_type: tuple[str, ...] = ()
    share_att_key: bool = False
    norm_rel_ebd: str = "none"
    position_biased_input: bool = True

    def __post_init__(self) -> None:
        unknown = [t for t in self.pos_att_type if t not in POS_ATT_TYPES]
        if unknown:
            raise ValueError(
                f"pos_att_type={self.pos_att_type!r} holds {unknown[0]!r}: the position "
                "terms are 'c2p' (content to position) and 'p2c' (position to content)"
            )

    @property
    def max_relative(self) -> int:
        """The largest relative distance: ``max_relative_positions``, or
        ``max_position_embeddings`` when that is below 1 (HF's rule)."""
        if self.max_relative_positions < 1:
            return self.max_position_embeddings
        return self.max_relative_positions

    @property
    def att_span(self) -> int:
        """Half the number of relative-position embeddings: ``position_buckets`` when
        bucketing, else :attr:`max_relative`."""
        return self.position_buckets if self.position_buckets > 0 else self.max_relative

    @classmethod
    def from_hf(cls, config: Any) -> DebertaConfig:
        """Our config with the values of a transformers ``DebertaV2Config`` (or its dict).
        Raise ``ValueError`` for the variants this file does not build (another activation,
        a factorised ``embedding_size``, the convolution layer, the non-legacy MLM head)."""
        values = dict(config if isinstance(config, Mapping) else config.to_dict())
        unsupported = [
            ("hidden_act", "gelu"),
            ("embedding_size", values.get("hidden_size")),
            ("conv_kernel_size", 0),
            ("legacy", True),
        ]
        for name, wanted in unsupported:
            got = values.get(name)
            if got is not None and got != wanted:
                raise ValueError(f"{name}={got!r}: this DeBERTa is built for {name}={wanted!r}")
        pos = values.get("pos_att_type") or ()
        if isinstance(pos, str):
            pos = [p.strip() for p in pos.lower().split("|") if p.strip()]
        values["pos_att_type"] = tuple(pos)
        for name, default in [("position_buckets", -1), ("share_att_key", False)]:
            if values.get(name) is None:
                values[name] = default
        values["norm_rel_ebd"] = values.get("norm_rel_ebd") or "none"
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in values.items() if k in names})


# ----------------------------------------------------------------------------------------------
# Relative positions


def log_bucket_position(
    relative_pos: Int[Tensor, "*shape"], bucket_size: int, max_position: int
) -> Int[Tensor, "*shape"]:
    """DeBERTa-v2's log buckets of relative positions: distances below ``mid =
    bucket_size // 2`` (in absolute value) stay as they are; a longer distance ``d`` becomes
    ``sign(d) * (mid + ceil(log(|d| / mid) / log((max_position - 1) / mid) * (mid - 1)))``,
    so that ``|d| = max_position - 1`` lands on ``±(2 * mid - 1)`` and far distances share
    buckets. (A distance of exactly ``mid`` gives ``mid`` either way.) Returns ``torch.long``.

    >>> log_bucket_position(torch.tensor([-300, -5, 0, 3, 4, 9, 511]), 8, 512).tolist()
    [-7, -5, 0, 3, 4, 5, 7]

    Compute the logarithms in torch's default float dtype, as HuggingFace does (the ceiling
    of a value that float32 and float64 round to either side of an integer differs). Raise
    ``ValueError`` unless ``bucket_size >= 2`` and ``max_position > mid + 1`` (else the
    denominator ``log((max_position - 1) / mid)`` is zero or negative).
    """
    mid = bucket_size // 2
    if mid < 1 or max_position <= mid + 1:
        raise ValueError(
            f"bucket_size={bucket_size} and max_position={max_position}: log buckets need "
            "bucket_size >= 2 and max_position > bucket_size // 2 + 1"
        )
    distance = relative_pos.abs()
    # at distance 0 the log is -inf (and the bucket garbage): torch.where drops those, like
    # every distance up to mid. The default float dtype, as HF (float32 and float64 round
    # differently near integers, and the ceiling shows it).
    ratio = torch.log(distance / mid) / torch.log(torch.tensor((max_position - 1) / mid))
    bucketed = relative_pos.sign() * (torch.ceil(ratio * (mid - 1)).long() + mid)
    return torch.where(distance <= mid, relative_pos, bucketed)


def relative_positions(
    query_size: int, key_size: int, bucket_size: int = -1, max_position: int = -1
) -> Int[Tensor, "query_size key_size"]:
    """The relative position of every query to every key, ``delta(i, j) = i - j`` (query
    ``i`` minus key ``j``), log-bucketed with :func:`log_bucket_position` when both
    ``bucket_size`` and ``max_position`` are positive. Returns ``torch.long``.

    >>> relative_positions(2, 3).tolist()
    [[0, -1, -2], [1, 0, -1]]
    """
    rel = torch.arange(query_size)[:, None] - torch.arange(key_size)[None, :]
    if bucket_size > 0 and max_position > 0:
        return log_bucket_position(rel, bucket_size, max_position)
    return rel


# ----------------------------------------------------------------------------------------------
# Disentangled attention


def c2p_scores(
    q: Float[Tensor, "batch heads seq_q d_head"],
    pos_k: Float[Tensor, "heads span2 d_head"],
    relative_pos: Int[Tensor, "seq_q seq_k"],
) -> Float[Tensor, "batch heads seq_q seq_k"]:
    """Content-to-position scores: ``out[b, h, i, j] = q[b, h, i] · pos_k[h, c]`` with
    ``c = clamp(relative_pos[i, j] + span, 0, 2 * span - 1)`` and ``span2 = 2 * span``:
    relative position ``-span`` is row 0 of the position keys, ``0`` is row ``span``.

    Compute every query against every position key once (``q @ pos_k^T``, ``(batch, heads,
    seq_q, span2)``), then pick the column of each key with ``torch.gather`` along the last
    dim (the index expanded to ``(batch, heads, seq_q, seq_k)``): far cheaper than building
    a ``(seq_q, seq_k, d_head)`` tensor of position keys.

    Raise ``ShapeError`` unless ``pos_k`` has the heads and ``d_head`` of ``q`` and an even
    number of rows, and ``relative_pos`` has ``seq_q`` rows.
    """
    B, H, T, D = q.shape
    if pos_k.shape[0] != H or pos_k.shape[2] != D or pos_k.shape[1] % 2:
        raise ShapeError(
            f"pos_k of shape {tuple(pos_k.shape)} should be (heads, 2 * span, d_head) with "
            f"the heads and d_head of q, which has shape {tuple(q.shape)}"
        )
    if relative_pos.shape[0] != T:
        raise ShapeError(
            f"relative_pos of shape {tuple(relative_pos.shape)} should have one row per "
            f"query, seq_q={T}"
        )
    span = pos_k.shape[1] // 2
    index = (relative_pos + span).clamp(0, 2 * span - 1)
    scores = q @ pos_k.transpose(-1, -2)
    return scores.gather(-1, index.expand(B, H, *index.shape))


def p2c_scores(
    k: Float[Tensor, "batch heads seq_k d_head"],
    pos_q: Float[Tensor, "heads span2 d_head"],
    relative_pos: Int[Tensor, "seq_k seq_k"],
) -> Float[Tensor, "batch heads seq_k seq_k"]:
    """Position-to-content scores: ``out[b, h, i, j] = k[b, h, j] · pos_q[h, c]`` with
    ``c = clamp(-relative_pos[j, i] + span, 0, 2 * span - 1)``: key ``j`` against the
    position query of the distance seen from the key. (Queries and keys are the same
    positions here, so the scores are square.)

    As in :func:`c2p_scores`: every key against every position query (``k @ pos_q^T``), a
    ``gather`` along the last dim with the index ``clamp(-relative_pos + span, ...)``, which
    gives ``[b, h, j, i]``; transpose the last two dims.

    Raise ``ShapeError`` unless ``pos_q`` has the heads and ``d_head`` of ``k`` and an even
    number of rows, and ``relative_pos`` is ``(seq_k, seq_k)``.
    """
    B, H, T, D = k.shape
    if pos_q.shape[0] != H or pos_q.shape[2] != D or pos_q.shape[1] % 2:
        raise ShapeError(
            f"pos_q of shape {tuple(pos_q.shape)} should be (heads, 2 * span, d_head) with "
            f"the heads and d_head of k, which has shape {tuple(k.shape)}"
        )
    if relative_pos.shape != (T, T):
        raise ShapeError(
            f"relative_pos of shape {tuple(relative_pos.shape)} should be (seq_k, seq_k) = "
            f"({T}, {T}): position-to-content scores need as many queries as keys"
        )
    span = pos_q.shape[1] // 2
    index = (span - relative_pos).clamp(0, 2 * span - 1)
    scores = k @ pos_q.transpose(-1, -2)
    return scores.gather(-1, index.expand(B, H, T, T)).transpose(-1, -2)


def deberta_attention_mask(
    attention_mask: Int[Tensor, "batch seq"],
) -> Bool[Tensor, "batch 1 seq seq"]:
    """DeBERTa's attention mask: ``True`` where query ``i`` and key ``j`` are both tokens
    (``attention_mask`` 1 at both), ``False`` elsewhere. Unlike BERT's (w2d1), a padding
    *query* has every key blocked; the attention fills the blocked scores with a large
    finite number, so a padding query's attention is uniform, not NaN (its output is
    ignored downstream).

    Raise ``ShapeError`` unless ``attention_mask`` is 2-D and ``ValueError`` if it holds
    values other than 0 and 1.

    >>> deberta_attention_mask(torch.tensor([[1, 0]]))[0, 0].tolist()
    [[True, False], [False, False]]
    """
    if attention_mask.ndim != 2:
        raise ShapeError(
            f"attention_mask should have shape (batch, seq) but got "
            f"{tuple(attention_mask.shape)}: one 1 (token) or 0 (padding) per id"
        )
    if ((attention_mask != 0) & (attention_mask != 1)).any():
        raise ValueError(
            f"attention_mask should hold only 0 (padding) and 1 (token), but holds "
            f"{attention_mask[(attention_mask != 0) & (attention_mask != 1)][0].item()}"
        )
    keep = attention_mask.bool()
    return keep[:, None, :, None] & keep[:, None, None, :]


class DisentangledSelfAttention(nn.Module):
    """DeBERTa's multi-head self-attention over content and relative position.

    Build ``query_proj``, ``key_proj``, ``value_proj`` (each ``Linear(hidden_size,
    hidden_size)``); when ``relative_attention`` and not ``share_att_key``, also
    ``pos_key_proj`` (if ``"c2p"`` is in ``pos_att_type``) and ``pos_query_proj`` (if
    ``"p2c"`` is); ``pos_dropout = Dropout(hidden_dropout_prob)`` (on the position
    embeddings) and ``dropout = Dropout(attention_probs_dropout_prob)`` (on the weights).
    There is no output projection here: the layer has it. Raise ``ShapeError`` if
    ``hidden_size`` is not divisible by ``num_attention_heads``.
    """

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        hidden, heads = config.hidden_size, config.num_attention_heads
        if heads < 1 or hidden % heads:
            raise ShapeError(
                f"hidden_size={hidden} is not divisible by num_attention_heads={heads}: "
                "each head gets hidden_size // num_attention_heads features"
            )
        self.config = config
        self.query_proj = Linear(hidden, hidden)
        self.key_proj = Linear(hidden, hidden)
        self.value_proj = Linear(hidden, hidden)
        if config.relative_attention and not config.share_att_key:
            if "c2p" in config.pos_att_type:
                self.pos_key_proj = Linear(hidden, hidden)
            if "p2c" in config.pos_att_type:
                self.pos_query_proj = Linear(hidden, hidden)
        self.pos_dropout = Dropout(config.hidden_dropout_prob)
        self.dropout = Dropout(config.attention_probs_dropout_prob)

    def forward(
        self,
        x: Float[Tensor, "batch seq hidden"],
        mask: Bool[Tensor, "batch 1 seq seq"],
        relative_pos: Int[Tensor, "seq seq"] | None = None,
        rel_embeddings: Float[Tensor, "span2 hidden"] | None = None,
        query_states: Float[Tensor, "batch seq hidden"] | None = None,
    ) -> Float[Tensor, "batch seq hidden"]:
        """Attention of ``query_states`` (default ``x``) over the keys and values of ``x``:

        ``scores = (q k^T + c2p + p2c) / sqrt(d_head * (1 + n))``, with ``n`` the number of
        position terms in ``pos_att_type`` and each position term only when
        ``relative_attention``; the blocked scores (``mask`` false) *set* (``masked_fill``,
        not added: no gradient may reach them) to ``torch.finfo(dtype).min``; softmax over
        the keys, ``dropout``, the weighted values, heads merged.

        The position keys / queries are ``rel_embeddings`` (after ``pos_dropout``) through
        ``pos_key_proj`` / ``pos_query_proj`` (or ``key_proj`` / ``query_proj`` when
        ``share_att_key``), split into heads; ``c2p_scores`` and ``p2c_scores`` do the rest.
        Raise ``ValueError`` if ``relative_attention`` is on and ``relative_pos`` or
        ``rel_embeddings`` is missing.
        """
        config, heads = self.config, self.config.num_attention_heads
        q = split_heads(self.query_proj(x if query_states is None else query_states), heads)
        k = split_heads(self.key_proj(x), heads)
        v = split_heads(self.value_proj(x), heads)
        terms = [t for t in POS_ATT_TYPES if t in config.pos_att_type]
        scale = 1 / math.sqrt(q.shape[-1] * (1 + len(terms)))
        scores = q @ k.transpose(-1, -2) * scale
        if config.relative_attention:
            if relative_pos is None or rel_embeddings is None:
                raise ValueError(
                    "relative_attention is on: pass relative_pos (relative_positions) and "
                    "rel_embeddings (the model's relative-position embeddings)"
                )
            rel = self.pos_dropout(rel_embeddings).unsqueeze(0)
            if "c2p" in terms:
                proj = self.key_proj if config.share_att_key else self.pos_key_proj
                pos_k = split_heads(proj(rel), heads)[0]
                scores = scores + c2p_scores(q, pos_k, relative_pos) * scale
            if "p2c" in terms:
                proj = self.query_proj if config.share_att_key else self.pos_query_proj
                pos_q = split_heads(proj(rel), heads)[0]
                scores = scores + p2c_scores(k, pos_q, relative_pos) * scale
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = self.dropout(torch.softmax(scores, dim=-1))
        return merge_heads(weights @ v)


class DebertaLayer(nn.Module):
    """One post-LN encoder layer, BERT's (w2d1) with disentangled attention.

    Build ``attention = DisentangledSelfAttention(config)``, ``attention_out =
    Linear(hidden_size, hidden_size)``, ``attention_norm``, ``ffn_in = Linear(hidden_size,
    intermediate_size)``, ``ffn_out = Linear(intermediate_size, hidden_size)``,
    ``ffn_norm`` (LayerNorms with ``eps=layer_norm_eps``) and ``dropout =
    Dropout(hidden_dropout_prob)``.
    """

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.attention = DisentangledSelfAttention(config)
        self.attention_out = Linear(hidden, hidden)
        self.attention_norm = LayerNorm(hidden, eps=config.layer_norm_eps)
        self.ffn_in = Linear(hidden, config.intermediate_size)
        self.ffn_out = Linear(config.intermediate_size, hidden)
        self.ffn_norm = LayerNorm(hidden, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        x: Float[Tensor, "batch seq hidden"],
        mask: Bool[Tensor, "batch 1 seq seq"],
        relative_pos: Int[Tensor, "seq seq"] | None = None,
        rel_embeddings: Float[Tensor, "span2 hidden"] | None = None,
        query_states: Float[Tensor, "batch seq hidden"] | None = None,
    ) -> Float[Tensor, "batch seq hidden"]:
        """With ``r = x if query_states is None else query_states`` (the residual follows
        the queries): ``h = attention_norm(r + dropout(attention_out(attention(...))))``,
        then ``ffn_norm(h + dropout(ffn_out(gelu(ffn_in(h)))))``, with torch's fused
        ``F.gelu`` (the erf form, w2d1's ``gelu``; its backward is one kernel, which makes
        the whole model's backward about 15% faster)."""
        residual = x if query_states is None else query_states
        att = self.attention(x, mask, relative_pos, rel_embeddings, query_states)
        h = self.attention_norm(residual + self.dropout(self.attention_out(att)))
        out: Tensor = self.ffn_norm(h + self.dropout(self.ffn_out(F.gelu(self.ffn_in(h)))))
        return out


# ----------------------------------------------------------------------------------------------
# Embeddings and the model


class DebertaEmbeddings(nn.Module):
    """DeBERTa's input: word embeddings, plus absolute position embeddings when
    ``position_biased_input``, plus token-type embeddings when ``type_vocab_size > 0``;
    then ``layer_norm``, padding positions zeroed, ``dropout``. Submodules named as
    BERT's (``word_embeddings``, ``position_embeddings``, ``token_type_embeddings``,
    ``layer_norm``, ``dropout``), the optional ones ``None`` when off."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.config = config
        self.word_embeddings = Embedding(config.vocab_size, hidden, config.pad_token_id)
        self.position_embeddings = (
            Embedding(config.max_position_embeddings, hidden)
            if config.position_biased_input
            else None
        )
        self.token_type_embeddings = (
            Embedding(config.type_vocab_size, hidden) if config.type_vocab_size > 0 else None
        )
        self.layer_norm = LayerNorm(hidden, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: Int[Tensor, "batch seq"],
        attention_mask: Int[Tensor, "batch seq"],
        token_type_ids: Int[Tensor, "batch seq"] | None = None,
    ) -> Float[Tensor, "batch seq hidden"]:
        """The embeddings of a batch, zero at the padding (``attention_mask == 0``)."""
        seq = input_ids.shape[-1]
        if input_ids.ndim != 2 or seq > self.config.max_position_embeddings:
            raise ShapeError(
                f"input_ids of shape {tuple(input_ids.shape)} should be (batch, seq) with "
                f"seq <= max_position_embeddings={self.config.max_position_embeddings}: "
                "add a batch dim, or truncate"
            )
        x = self.word_embeddings(input_ids)
        if self.position_embeddings is not None:
            x = x + self.position_embeddings(torch.arange(seq, device=input_ids.device))
        if self.token_type_embeddings is not None:
            types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
            x = x + self.token_type_embeddings(types)
        x = self.layer_norm(x) * attention_mask.unsqueeze(-1).to(x.dtype)
        out: Tensor = self.dropout(x)
        return out


class DebertaModel(nn.Module):
    """The DeBERTa encoder: ``embeddings = DebertaEmbeddings(config)``, ``layers`` (a
    ``ModuleList`` of ``num_hidden_layers`` ``DebertaLayer``s) and, when
    ``relative_attention``, ``rel_embeddings = Embedding(2 * att_span, hidden_size)``
    shared by every layer, with ``rel_norm = LayerNorm(hidden_size)`` when ``norm_rel_ebd``
    contains ``"layer_norm"`` (else ``None``)."""

    def __init__(self, config: DebertaConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = DebertaEmbeddings(config)
        self.layers = nn.ModuleList(DebertaLayer(config) for _ in range(config.num_hidden_layers))
        self.rel_embeddings = (
            Embedding(2 * config.att_span, config.hidden_size)
            if config.relative_attention
            else None
        )
        norm = "layer_norm" in config.norm_rel_ebd.lower().split("|")
        self.rel_norm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if norm else None

    def relative_inputs(self, seq: int) -> tuple[Tensor | None, Tensor | None]:
        """``(relative_pos, rel_embeddings)`` for a sequence of ``seq`` tokens, as every
        layer takes them (both ``None`` without ``relative_attention``)."""
        if self.rel_embeddings is None:
            return None, None
        config = self.config
        device = self.rel_embeddings.weight.device
        rel_pos = relative_positions(seq, seq, config.position_buckets, config.max_relative)
        rel = self.rel_embeddings.weight
        if self.rel_norm is not None:
            rel = self.rel_norm(rel)
        return rel_pos.to(device), rel

    def hidden_states(
        self,
        input_ids: Int[Tensor, "batch seq"],
        attention_mask: Int[Tensor, "batch seq"] | None = None,
        token_type_ids: Int[Tensor, "batch seq"] | None = None,
    ) -> list[Float[Tensor, "batch seq hidden"]]:
        """The embeddings' output and every layer's (``num_hidden_layers + 1`` tensors),
        as HuggingFace's ``output_hidden_states``."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if attention_mask.shape != input_ids.shape:
            raise ShapeError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has "
                f"{tuple(input_ids.shape)}: one 1 (token) or 0 (padding) per id"
            )
        states = [self.embeddings(input_ids, attention_mask, token_type_ids)]
        mask = deberta_attention_mask(attention_mask).to(states[0].device)
        rel_pos, rel = self.relative_inputs(input_ids.shape[1])
        for layer in self.layers:
            states.append(layer(states[-1], mask, rel_pos, rel))
        return states

    def forward(
        self,
        input_ids: Int[Tensor, "batch seq"],
        attention_mask: Int[Tensor, "batch seq"] | None = None,
        token_type_ids: Int[Tensor, "batch seq"] | None = None,
    ) -> Float[Tensor, "batch seq hidden"]:
        """The last hidden state (HuggingFace's ``last_hidden_state``)."""
        return self.hidden_states(input_ids, attention_mask, token_type_ids)[-1]


# ----------------------------------------------------------------------------------------------
# The enhanced mask decoder and the masked-LM model


def enhanced_mask_decoder(
    layer: DebertaLayer,
    hidden: Float[Tensor, "batch seq hidden"],
    positions: Float[Tensor, "batch seq hidden"],
    mask: Bool[Tensor, "batch 1 seq seq"],
    relative_pos: Int[Tensor, "seq seq"] | None = None,
    rel_embeddings: Float[Tensor, "span2 hidden"] | None = None,
    steps: int = 2,
) -> Float[Tensor, "batch seq hidden"]:
    """DeBERTa's enhanced mask decoder (the paper's section 3.3, Microsoft's
    ``emd_context_layer``): absolute positions enter only here, just before the MLM head.

    Start from the queries ``hidden + positions`` (the second-to-last layer's output plus the
    absolute position embeddings); ``steps`` times, run ``layer`` (the model's last layer)
    with ``query_states`` the current queries and keys / values from ``hidden`` (the same
    every step), and take its output as the next queries. Return the last output.

    Raise ``ValueError`` unless ``steps >= 1``.
    """
    if steps < 1:
        raise ValueError(f"steps={steps}: the decoder runs the layer at least once")
    query = hidden + positions
    for _ in range(steps):
        query = layer(hidden, mask, relative_pos, rel_embeddings, query_states=query)
    return query


class DebertaForMaskedLM(nn.Module):
    """DeBERTa with the masked-LM head: ``deberta = DebertaModel(config)`` and ``mlm_head``,
    w2d1's ``BertMLMHead`` (dense, GELU, LayerNorm, the decoder tied to the word
    embeddings, a bias of its own), as HuggingFace's ``DebertaV2ForMaskedLM`` (legacy head).

    With ``enhanced_mask_decoder=True`` the head reads the output of
    :func:`enhanced_mask_decoder` (2 steps of the last layer) instead of the last hidden
    state, with absolute positions from ``emd_positions = Embedding(max_position_embeddings,
    hidden_size)``. That needs ``position_biased_input=False`` (else the input has the
    absolute positions already) and ``num_hidden_layers >= 2``: raise ``ValueError``
    otherwise. (HuggingFace's ``DebertaV2ForMaskedLM`` never runs the decoder.)
    """

    def __init__(self, config: DebertaConfig, enhanced_mask_decoder: bool = False) -> None:
        super().__init__()
        if enhanced_mask_decoder and (config.position_biased_input or config.num_hidden_layers < 2):
            raise ValueError(
                "enhanced_mask_decoder=True needs position_biased_input=False (absolute "
                "positions enter at the decoder only) and num_hidden_layers >= 2, got "
                f"position_biased_input={config.position_biased_input}, "
                f"num_hidden_layers={config.num_hidden_layers}"
            )
        self.config = config
        self.deberta = DebertaModel(config)
        self.emd_positions = (
            Embedding(config.max_position_embeddings, config.hidden_size)
            if enhanced_mask_decoder
            else None
        )
        head_config = BertConfig(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            layer_norm_eps=config.layer_norm_eps,
        )
        self.mlm_head = BertMLMHead(head_config)

    def forward(
        self,
        input_ids: Int[Tensor, "batch seq"],
        attention_mask: Int[Tensor, "batch seq"] | None = None,
        token_type_ids: Int[Tensor, "batch seq"] | None = None,
    ) -> Float[Tensor, "batch seq vocab"]:
        """The logits of every position over the vocabulary."""
        states = self.deberta.hidden_states(input_ids, attention_mask, token_type_ids)
        hidden = states[-1]
        if self.emd_positions is not None:
            mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
            seq = input_ids.shape[1]
            rel_pos, rel = self.deberta.relative_inputs(seq)
            last: DebertaLayer = self.deberta.layers[-1]  # type: ignore[assignment]
            hidden = enhanced_mask_decoder(
                last,
                states[-2],
                self.emd_positions(torch.arange(seq, device=input_ids.device)).unsqueeze(0),
                deberta_attention_mask(mask).to(hidden.device),
                rel_pos,
                rel,
            )
        word = self.deberta.embeddings.word_embeddings.weight
        logits: Tensor = self.mlm_head(hidden, word)
        return logits


# ----------------------------------------------------------------------------------------------
# Loading weights

# transformers' module paths inside encoder layer i -> ours, relative to
# "encoder.layer.{i}." and "layers.{i}." respectively.
HF_LAYER_PARTS = {
    "attention.self.query_proj": "attention.query_proj",
    "attention.self.key_proj": "attention.key_proj",
    "attention.self.value_proj": "attention.value_proj",
    "attention.self.pos_key_proj": "attention.pos_key_proj",
    "attention.self.pos_query_proj": "attention.pos_query_proj",
    "attention.output.dense": "attention_out",
    "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "ffn_in",
    "output.dense": "ffn_out",
    "output.LayerNorm": "ffn_norm",
}
# Every other module path (inside "deberta." for the masked-LM model). The buffer
# embeddings.position_ids and the tied decoder cls.predictions.decoder.* have no copy here.
HF_TOP_LEVEL = {
    "embeddings.word_embeddings": "embeddings.word_embeddings",
    "embeddings.position_embeddings": "embeddings.position_embeddings",
    "embeddings.token_type_embeddings": "embeddings.token_type_embeddings",
    "embeddings.LayerNorm": "embeddings.layer_norm",
    "encoder.rel_embeddings": "rel_embeddings",
    "encoder.LayerNorm": "rel_norm",
}
HF_HEAD = {
    "cls.predictions.transform.dense": "mlm_head.dense",
    "cls.predictions.transform.LayerNorm": "mlm_head.layer_norm",
}
_HF_SKIPPED = {"embeddings.position_ids", "cls.predictions.decoder.weight"}


def hf_deberta_key(name: str) -> str | None:
    """Our name for the tensor that transformers' DeBERTa-v2 calls ``name``, or ``None``
    for those we do not store (the position-id buffer, the tied decoder weight).

    >>> hf_deberta_key("deberta.encoder.layer.1.attention.self.pos_key_proj.bias")
    'deberta.layers.1.attention.pos_key_proj.bias'
    """
    rest = name.removeprefix("deberta.")
    prefix = name[: len(name) - len(rest)]
    if rest in _HF_SKIPPED:
        return None
    if rest in ("cls.predictions.bias", "cls.predictions.decoder.bias"):
        return "mlm_head.bias"
    module, _, leaf = rest.rpartition(".")
    if module in HF_HEAD:
        return f"{HF_HEAD[module]}.{leaf}"
    if module in HF_TOP_LEVEL:
        return f"{prefix}{HF_TOP_LEVEL[module]}.{leaf}"
    match = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", module)
    if match is None or match[2] not in HF_LAYER_PARTS:
        raise DataError(f"{name!r} is not a parameter of transformers' DeBERTa-v2 that mlab knows")
    return f"{prefix}layers.{match[1]}.{HF_LAYER_PARTS[match[2]]}.{leaf}"


def load_hf_deberta_state_dict(model: nn.Module, hf_state_dict: Mapping[str, Tensor]) -> None:
    """Load a transformers ``DebertaV2Model`` / ``DebertaV2ForMaskedLM`` state dict into
    ``model``: every key renamed by :func:`hf_deberta_key`, then ``load_checked_state_dict``
    (strict; every missing, unexpected or misshapen key named in one ``StateDictError``)."""
    renamed = {}
    for name, value in hf_state_dict.items():
        ours = hf_deberta_key(name)
        if ours is not None:
            renamed[ours] = value
    load_checked_state_dict(model, renamed)


def hf_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """``model``'s state dict under transformers' names (the inverse of
    :func:`load_hf_deberta_state_dict`), loadable with ``strict=True``; a masked-LM model
    also gets the tied decoder's entries. The decoder's absolute positions
    (``emd_positions``) have no place in HuggingFace's model: ``StateDictError``."""
    layer_parts = {ours: hf for hf, ours in HF_LAYER_PARTS.items()}
    top_level = {ours: hf for hf, ours in HF_TOP_LEVEL.items()}
    head = {ours: hf for hf, ours in HF_HEAD.items()}
    out: dict[str, Tensor] = {}
    for name, value in model.state_dict().items():
        rest = name.removeprefix("deberta.")
        prefix = name[: len(name) - len(rest)]
        module, _, leaf = rest.rpartition(".")
        match = re.fullmatch(r"layers\.(\d+)\.(.+)", module)
        if name == "mlm_head.bias":
            out["cls.predictions.bias"] = out["cls.predictions.decoder.bias"] = value
        elif module in head:
            out[f"{head[module]}.{leaf}"] = value
        elif match is not None and match[2] in layer_parts:
            out[f"{prefix}encoder.layer.{match[1]}.{layer_parts[match[2]]}.{leaf}"] = value
        elif module in top_level:
            out[f"{prefix}{top_level[module]}.{leaf}"] = value
        else:
            raise StateDictError(f"{name!r} has no name in transformers' DeBERTa-v2")
    if "cls.predictions.bias" in out:
        out["cls.predictions.decoder.weight"] = out["deberta.embeddings.word_embeddings.weight"]
    return out
