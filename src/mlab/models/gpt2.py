"""GPT-2: a decoder-only transformer language model, equal to HuggingFace's ``GPT2LMHeadModel``.

Radford, Wu, Child, Luan, Amodei and Sutskever, "Language Models are Unsupervised Multitask
Learners" (2019). The architecture is the GPT decoder (Radford et al. 2018) with the layer
norms moved to the *input* of each sub-layer ("pre-LN") and one more after the last block:

    h = wte[ids] + wpe[positions]
    h = h + attn(ln_1(h))          for each block
    h = h + mlp(ln_2(h))
    logits = ln_f(h) @ wte^T       (the LM head is tied to the token embeddings)

The file reads bottom-up, as nanoGPT's ``model.py`` does: the activation, the ``Conv1D``
projection, masks and positions, attention, MLP, block, the stack, the LM head with its loss.
Weight loading and the ``save_pretrained`` format live in :mod:`mlab.models.gpt2_checkpoint`.

Names and layouts are HuggingFace's (``transformer.h.0.attn.c_attn.weight``, ...), and the
projections keep OpenAI's ``Conv1D`` layout ``(in, out)``, so HF's state dict loads into this
model, and ours into HF's, with no renaming and no transposes. The attention itself is
w2d1's (:mod:`mlab.nn.attention`).

A key/value cache makes generation cost one position per step instead of the whole prefix:
``past_key_values`` is a tuple with one ``(keys, values)`` pair per layer, each of shape
``(batch, n_head, past, d_head)``; the model returns the pairs extended by the new positions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from mlab.errors import ConfigError, ShapeError
from mlab.nn.attention import attention_weights, merge_heads, padding_mask, split_heads

__all__ = [
    "GPT2MLP",
    "CausalLMOutput",
    "Conv1D",
    "GPT2Attention",
    "GPT2Block",
    "GPT2Config",
    "GPT2LMHeadModel",
    "GPT2Model",
    "KVCache",
    "causal_lm_loss",
    "causal_mask",
    "gelu_new",
    "position_ids_from_mask",
]

# One (keys, values) pair per layer, each (batch, n_head, seq, d_head).
KVCache = tuple[tuple[Tensor, Tensor], ...]


@dataclass
class GPT2Config:
    """The shape of a GPT-2, with HuggingFace's ``GPT2Config`` field names and defaults
    (the 124M-parameter ``gpt2``). Only the fields this implementation uses. Mutable, as
    HuggingFace's is: ``Trainer`` sets ``use_cache`` on the model's config."""

    vocab_size: int = 50257
    n_positions: int = 1024  # the longest sequence: rows of the position embedding
    n_embd: int = 768  # d_model
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # the MLP's hidden width; None is 4 * n_embd
    layer_norm_epsilon: float = 1e-5
    embd_pdrop: float = 0.1  # dropout on the embeddings' sum
    attn_pdrop: float = 0.1  # dropout on the attention weights
    resid_pdrop: float = 0.1  # dropout on each sub-layer's output, before the residual add
    initializer_range: float = 0.02
    use_cache: bool = True  # whether forward returns the key/value cache by default

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} should be at least 1")
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}: each head "
                "gets n_embd / n_head features (768 = 12 heads x 64)"
            )

    @property
    def d_inner(self) -> int:
        """The MLP's hidden width."""
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @classmethod
    def from_hf(cls, config: Any) -> GPT2Config:
        """Our config from HuggingFace's: a ``transformers.GPT2Config`` or the dict of a
        ``config.json``. Options this implementation does not have raise ``ConfigError``."""
        d = config if isinstance(config, dict) else config.to_dict()
        unsupported = {
            "activation_function": (d.get("activation_function", "gelu_new"), "gelu_new"),
            "scale_attn_weights": (d.get("scale_attn_weights", True), True),
            "scale_attn_by_inverse_layer_idx": (
                d.get("scale_attn_by_inverse_layer_idx", False),
                False,
            ),
            "add_cross_attention": (d.get("add_cross_attention", False), False),
        }
        for name, (value, ours) in unsupported.items():
            if value != ours:
                raise ConfigError(f"{name}={value!r} is not supported: this GPT-2 has {ours!r}")
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def to_hf_dict(self) -> dict[str, Any]:
        """The fields of a ``config.json`` that transformers' ``GPT2Config`` reads."""
        end = 50256 if self.vocab_size > 50256 else None  # <|endoftext|>, when it exists
        return {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "activation_function": "gelu_new",
            "tie_word_embeddings": True,
            "bos_token_id": end,
            "eos_token_id": end,
            **asdict(self),
        }


# ----------------------------------------------------------------------------------------------
# Small parts


def gelu_new(x: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
    """GPT-2's GELU: the tanh approximation of ``x * Phi(x)`` (Hendrycks and Gimpel, 2016),
    as OpenAI's code computes it:

        0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))

    It differs from the exact GELU (``torch.nn.functional.gelu``) by up to about 5e-4, enough
    to break a comparison with a published checkpoint's logits. Elementwise; ``x`` unchanged.

    >>> gelu_new(torch.tensor([-1.0, 0.0, 1.0]))
    tensor([-0.1588,  0.0000,  0.8412])
    """
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


class Conv1D(nn.Module):
    """OpenAI GPT's projection layer: a linear layer whose weight is stored as
    ``(in_features, out_features)``, the transpose of ``torch.nn.Linear``'s, so that
    ``forward(x) = x @ weight + bias``. (Despite the name, it is no convolution: a
    convolution with kernel size 1.) GPT-2's checkpoints store every projection this way.

    ``Conv1D(nf, nx)`` takes HuggingFace's arguments in HuggingFace's order: ``nf`` output
    features, ``nx`` input features. Store both as attributes ``nf`` and ``nx``; register
    ``weight`` of shape ``(nx, nf)``, drawn from a normal with std 0.02, and ``bias`` of
    shape ``(nf,)``, zeros. ``forward`` maps ``(..., nx)`` to ``(..., nf)`` for any number
    of leading dims; raise ``ShapeError`` naming both sizes when the last dim is not ``nx``.
    """

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf = nf
        self.nx = nx
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: Float[Tensor, "*batch nx"]) -> Float[Tensor, "*batch nf"]:
        """``x @ weight + bias`` over the last dim."""
        if x.ndim == 0 or x.shape[-1] != self.nx:
            raise ShapeError(
                f"Conv1D(nf={self.nf}, nx={self.nx}) needs inputs of shape (..., {self.nx}) "
                f"but got {tuple(x.shape)}"
            )
        out = torch.addmm(self.bias, x.reshape(-1, self.nx), self.weight)
        return out.reshape(*x.shape[:-1], self.nf)

    def extra_repr(self) -> str:
        return f"nf={self.nf}, nx={self.nx}"


def causal_mask(seq_q: int, seq_k: int) -> Bool[Tensor, "seq_q seq_k"]:
    """The boolean causal mask for ``seq_q`` new positions that follow ``seq_k - seq_q``
    cached ones: ``True`` where query ``i`` may attend to key ``j``.

    Query ``i`` sits at absolute position ``seq_k - seq_q + i``, so it sees every key up to
    and including that position and none after. Without a cache (``seq_q == seq_k``) this is
    the lower triangle; with one, the triangle is shifted right by the cache's length.
    Raise ``ShapeError`` unless ``0 <= seq_q <= seq_k``.

    >>> causal_mask(2, 3).int().tolist()
    [[1, 1, 0], [1, 1, 1]]
    """
    if not 0 <= seq_q <= seq_k:
        raise ShapeError(
            f"seq_q={seq_q} new positions cannot follow seq_k - seq_q={seq_k - seq_q} cached "
            "ones: the keys include every query position, so 0 <= seq_q <= seq_k"
        )
    return torch.ones(seq_q, seq_k, dtype=torch.bool).tril(diagonal=seq_k - seq_q)


def position_ids_from_mask(
    attention_mask: Int[Tensor, "batch seq_k"], seq_q: int
) -> Int[Tensor, "batch seq_q"]:
    """The position of each of the last ``seq_q`` tokens of every row, counting only real
    tokens (``attention_mask == 1``), so that a left-padded sequence starts at position 0
    exactly as it would unpadded.

    ``attention_mask`` covers the cached positions and the new ones. A token's position is
    the number of real tokens before it; padding positions get 0 (their outputs are
    ignored), as HuggingFace's ``generate`` does. Return int64.

    >>> position_ids_from_mask(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]), 5).tolist()
    [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]
    """
    mask = attention_mask.long()
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    return positions[:, positions.shape[1] - seq_q :]


# ----------------------------------------------------------------------------------------------
# The transformer


class GPT2Attention(nn.Module):
    """Causal multi-head self-attention with one fused query/key/value projection.

    Register ``c_attn = Conv1D(3 * n_embd, n_embd)`` (its output is the queries, keys and
    values side by side, in that order), ``c_proj = Conv1D(n_embd, n_embd)``, and two
    dropouts: ``attn_dropout`` (``attn_pdrop``, on the attention weights) and
    ``resid_dropout`` (``resid_pdrop``, on the output). Keep ``n_head`` and ``n_embd``.

    ``forward(x, mask, past)``: split ``c_attn(x)`` into q, k, v, each into heads
    (``split_heads``); append the new keys and values to ``past``'s along the sequence dim
    when a cache is given; weights = ``attention_weights(q, k, mask)`` (scaled by
    ``1 / sqrt(d_head)``), dropped out; the heads' outputs ``weights @ v`` merged back
    (``merge_heads``) and projected by ``c_proj``, dropped out. ``mask`` is boolean,
    broadcasting to ``(batch, n_head, seq, past + seq)``. Return the output and the new
    ``(keys, values)``, each ``(batch, n_head, past + seq, d_head)``.
    """

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.c_attn = Conv1D(3 * config.n_embd, config.n_embd)
        self.c_proj = Conv1D(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(
        self,
        x: Float[Tensor, "batch seq n_embd"],
        mask: Bool[Tensor, "*mask"] | None = None,
        past: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Float[Tensor, "batch seq n_embd"], tuple[Tensor, Tensor]]:
        """The attention output and this layer's cache, ``past`` extended by ``x``'s keys
        and values."""
        q, k, v = self.c_attn(x).split(self.n_embd, dim=-1)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))
        if past is not None:
            k = torch.cat([past[0], k], dim=-2)
            v = torch.cat([past[1], v], dim=-2)
        weights = self.attn_dropout(attention_weights(q, k, mask))
        out = self.resid_dropout(self.c_proj(merge_heads(weights @ v)))
        return out, (k, v)


class GPT2MLP(nn.Module):
    """The position-wise feed-forward layer: ``c_fc = Conv1D(d_inner, n_embd)``, ``gelu_new``,
    ``c_proj = Conv1D(n_embd, d_inner)``, then ``dropout`` (``resid_pdrop``), where
    ``d_inner`` is ``config.d_inner`` (``4 * n_embd`` unless ``n_inner`` is set)."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.c_fc = Conv1D(config.d_inner, config.n_embd)
        self.c_proj = Conv1D(config.n_embd, config.d_inner)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x: Float[Tensor, "batch seq n_embd"]) -> Float[Tensor, "batch seq n_embd"]:
        """``dropout(c_proj(gelu_new(c_fc(x))))``."""
        out: Tensor = self.dropout(self.c_proj(gelu_new(self.c_fc(x))))
        return out


class GPT2Block(nn.Module):
    """A pre-LN transformer block: ``ln_1`` (``torch.nn.LayerNorm(n_embd, eps=
    layer_norm_epsilon)``), ``attn`` (``GPT2Attention``), ``ln_2``, ``mlp`` (``GPT2MLP``).

    ``forward(x, mask, past)``: ``x + attn(ln_1(x))``, then ``+ mlp(ln_2(...))``: each
    sub-layer reads a normalised copy and *adds* to the residual stream, which itself is never
    normalised until ``ln_f``. Return the output and the attention's new cache.
    """

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = GPT2Attention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(config)

    def forward(
        self,
        x: Float[Tensor, "batch seq n_embd"],
        mask: Bool[Tensor, "*mask"] | None = None,
        past: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Float[Tensor, "batch seq n_embd"], tuple[Tensor, Tensor]]:
        """The block's output and its attention's cache."""
        attn_out, present = self.attn(self.ln_1(x), mask, past)
        x = x + attn_out
        x = x + self.mlp(self.ln_2(x))
        return x, present


class GPT2Model(nn.Module):
    """The GPT-2 stack without a head (HuggingFace's ``GPT2Model``): ``wte``
    (``nn.Embedding(vocab_size, n_embd)``), ``wpe`` (``nn.Embedding(n_positions, n_embd)``),
    ``drop`` (``embd_pdrop``), ``h`` (an ``nn.ModuleList`` of ``n_layer`` blocks) and
    ``ln_f``.

    ``forward(input_ids, past_key_values, attention_mask, position_ids)``:

    - ``past`` is the cached length (0 without a cache); the new tokens sit at ``past`` to
      ``past + seq - 1``. Raise ``ShapeError`` when ``past + seq > n_positions`` (there is
      no position embedding beyond), ``ValueError`` naming the id when an id is negative or
      ``>= vocab_size``.
    - Positions: ``position_ids`` when given; else from ``attention_mask``
      (``position_ids_from_mask``, so left padding does not shift them); else
      ``past .. past + seq - 1``.
    - The mask: ``causal_mask(seq, past + seq)``, and with ``attention_mask`` (shape
      ``(batch, past + seq)``, else ``ShapeError``) also ``padding_mask(attention_mask)``.
    - ``drop(wte[ids] + wpe[positions])``, every block (each with its layer's cache), ``ln_f``.

    Return the final hidden states and the new cache, one ``(keys, values)`` per layer.
    """

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList([GPT2Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)

    def forward(
        self,
        input_ids: Int[Tensor, "batch seq"],
        past_key_values: KVCache | None = None,
        attention_mask: Int[Tensor, "batch past_and_seq"] | None = None,
        position_ids: Int[Tensor, "batch seq"] | None = None,
    ) -> tuple[Float[Tensor, "batch seq n_embd"], KVCache]:
        """Hidden states after ``ln_f``, and the cache extended by ``input_ids``."""
        batch, seq = input_ids.shape
        past = 0 if past_key_values is None else past_key_values[0][0].shape[-2]
        n_positions = self.config.n_positions
        if past + seq > n_positions:
            raise ShapeError(
                f"a sequence of {past + seq} positions ({past} cached + {seq} new) is longer "
                f"than n_positions={n_positions}: keep only its last {n_positions} tokens"
            )
        if seq and (input_ids.min() < 0 or input_ids.max() >= self.config.vocab_size):
            bad = input_ids[(input_ids < 0) | (input_ids >= self.config.vocab_size)]
            raise ValueError(
                f"token id {bad[0].item()} is outside the vocabulary of vocab_size="
                f"{self.config.vocab_size}: ids run from 0 to {self.config.vocab_size - 1} "
                "(was the text encoded with this model's tokenizer?)"
            )
        mask = causal_mask(seq, past + seq).to(input_ids.device)
        if attention_mask is not None:
            if attention_mask.shape != (batch, past + seq):
                raise ShapeError(
                    f"attention_mask has shape {tuple(attention_mask.shape)} but should be "
                    f"(batch, cached + new) = ({batch}, {past + seq}): with a cache, pass "
                    "the mask of every position so far"
                )
            mask = mask & padding_mask(attention_mask)
            if position_ids is None:
                position_ids = position_ids_from_mask(attention_mask, seq)
        if position_ids is None:
            position_ids = torch.arange(past, past + seq, device=input_ids.device)[None]
        x = self.drop(self.wte(input_ids) + self.wpe(position_ids))
        cache = []
        for i, block in enumerate(self.h):
            x, present = block(x, mask, None if past_key_values is None else past_key_values[i])
            cache.append(present)
        return self.ln_f(x), tuple(cache)


# ----------------------------------------------------------------------------------------------
# The language model


def causal_lm_loss(
    logits: Float[Tensor, "batch seq vocab"],
    labels: Int[Tensor, "batch seq"],
    num_items_in_batch: int | Tensor | None = None,
    ignore_index: int = -100,
) -> Float[Tensor, ""]:
    """The language-modelling loss: cross-entropy of the logits at position ``t`` against
    the label at ``t + 1`` (the shift happens here, so ``labels = input_ids`` is right), in
    float32 (or float64 for float64 logits).

    Labels equal to ``ignore_index`` (padding, prompts) count for nothing. The loss is the
    mean over the remaining predictions; with ``num_items_in_batch`` it is their *sum*
    divided by that number instead, as HuggingFace's ``Trainer`` asks under gradient
    accumulation (each micro-batch is divided by the token count of the whole step). Raise
    ``ShapeError`` unless ``labels`` has the logits' ``(batch, seq)``.
    """
    if labels.shape != logits.shape[:-1]:
        raise ShapeError(
            f"labels have shape {tuple(labels.shape)} but the logits {tuple(logits.shape)}: "
            "pass one label per input position (labels = input_ids; the shift is done here)"
        )
    logits = logits[:, :-1].flatten(0, 1)
    if logits.dtype != torch.float64:
        logits = logits.float()
    targets = labels[:, 1:].flatten().to(logits.device)
    if num_items_in_batch is None:
        return nn.functional.cross_entropy(logits, targets, ignore_index=ignore_index)
    total = nn.functional.cross_entropy(logits, targets, ignore_index=ignore_index, reduction="sum")
    return total / num_items_in_batch


class CausalLMOutput(dict[str, Any]):
    """What :class:`GPT2LMHeadModel` returns, in HuggingFace's ``ModelOutput`` conventions:
    a dict (``out["logits"]``) whose entries are also attributes (``out.logits``), holding
    only what was computed, in the order ``loss``, ``logits``, ``past_key_values``; an int
    index counts those (``out[0]`` is the loss when there is one), as ``Trainer`` expects."""

    def __init__(
        self,
        logits: Tensor,
        loss: Tensor | None = None,
        past_key_values: KVCache | None = None,
    ) -> None:
        super().__init__()
        if loss is not None:
            self["loss"] = loss
        self["logits"] = logits
        if past_key_values is not None:
            self["past_key_values"] = past_key_values

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, slice)):
            return self.to_tuple()[key]
        return super().__getitem__(key)

    def __getattr__(self, name: str) -> Any:
        if name in ("loss", "logits", "past_key_values"):
            return self.get(name)
        raise AttributeError(name)

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(self.values())


class GPT2LMHeadModel(nn.Module):
    """GPT-2 with its language-modelling head: ``transformer`` (``GPT2Model``) and
    ``lm_head``, a bias-free ``nn.Linear(n_embd, vocab_size)`` whose weight *is*
    ``transformer.wte.weight`` (tied: one tensor, so the input embedding also learns from the
    output side, and the 38M-parameter matrix is stored once).

    A drop-in for HuggingFace's model in a ``Trainer``: ``forward`` takes the keywords the
    trainer passes (``input_ids``, ``attention_mask``, ``labels``, ``num_items_in_batch``)
    and returns a :class:`CausalLMOutput` with ``loss`` (when ``labels`` are given, by
    :func:`causal_lm_loss`) and ``logits``, plus ``past_key_values`` when ``use_cache``.
    Parameters start as HuggingFace initialises them: normal with std ``initializer_range``
    (0.02), biases zero, LayerNorms the identity, and the two projections that write into the
    residual stream (``c_proj``) scaled by ``1 / sqrt(2 * n_layer)`` (the GPT-2 paper,
    section 2.3), so the stream's variance does not grow with depth.
    """

    accepts_loss_kwargs = True  # Trainer passes num_items_in_batch (gradient accumulation)

    def __init__(self, config: GPT2Config) -> None:
        super().__init__()
        self.config = config
        self.transformer = GPT2Model(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """HuggingFace's initialisation (see the class docstring), drawn from ``generator``."""
        std = self.config.initializer_range
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
                elif ".ln_" in name:
                    p.fill_(1.0)
                elif name.endswith("c_proj.weight"):
                    p.normal_(0.0, std / math.sqrt(2 * self.config.n_layer), generator=generator)
                else:
                    p.normal_(0.0, std, generator=generator)

    def forward(
        self,
        input_ids: Int[Tensor, "batch seq"],
        past_key_values: KVCache | None = None,
        attention_mask: Int[Tensor, "batch past_and_seq"] | None = None,
        position_ids: Int[Tensor, "batch seq"] | None = None,
        labels: Int[Tensor, "batch seq"] | None = None,
        use_cache: bool | None = None,
        num_items_in_batch: int | Tensor | None = None,
    ) -> CausalLMOutput:
        """Logits ``(batch, seq, vocab_size)``; the loss when ``labels`` are given; the new
        cache when ``use_cache`` (``config.use_cache`` when None, as in HuggingFace)."""
        hidden, cache = self.transformer(input_ids, past_key_values, attention_mask, position_ids)
        logits = self.lm_head(hidden)
        loss = None if labels is None else causal_lm_loss(logits, labels, num_items_in_batch)
        keep = self.config.use_cache if use_cache is None else use_cache
        return CausalLMOutput(logits, loss, cache if keep else None)

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Distinct parameters (the tied head counted once): 124,439,808 for ``gpt2``.
        HuggingFace's options: only those that require gradients; without the token and
        position embeddings (``Trainer`` counts FLOPs with ``6 * tokens * that``)."""
        skip = {"transformer.wte.weight", "transformer.wpe.weight"} if exclude_embeddings else set()
        return sum(
            p.numel()
            for name, p in self.named_parameters()
            if name not in skip and (p.requires_grad or not only_trainable)
        )
