"""Realistic wrong solutions of w2d1 (a missing scale, the mask's sign flipped, softmax over the
wrong dim, interleaved heads, NaN patched after the softmax, the tanh GELU, dropout without its
rescaling, pre-LN instead of post-LN, a mean that counts padding, ...): each must fail its
exercise's checks with a message that points at the mistake. (That the reference passes the
same checks is test_course_meta's test_checks_pass_on_the_reference[w2d1].)"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import torch
from einops import rearrange
from torch import Tensor

from checkrun import run_checks
from mlab.errors import MismatchError
from mlab.models import bert
from mlab.nn import attention

_run = partial(run_checks, "w2d1")


# ----------------------------------------------------------------------------------------------
# wrong solutions


def weights_without_scale(q: Tensor, k: Tensor, mask: Tensor | None = None, scale: Any = None):  # type: ignore[no-untyped-def]
    scores = q @ k.transpose(-2, -1)  # forgot / sqrt(d_head)
    if mask is not None:
        scores = attention.apply_mask(scores, mask)
    return torch.softmax(scores, dim=-1)


def weights_over_queries(q: Tensor, k: Tensor, mask: Tensor | None = None, scale: Any = None):  # type: ignore[no-untyped-def]
    scores = q @ k.transpose(-2, -1) * (scale or q.shape[-1] ** -0.5)
    if mask is not None:
        scores = attention.apply_mask(scores, mask)
    return torch.softmax(scores, dim=-2)  # normalised over the queries


def weights_patched_after_softmax(  # type: ignore[no-untyped-def]
    q: Tensor, k: Tensor, mask: Tensor | None = None, scale: Any = None
):
    scores = q @ k.transpose(-2, -1) * (scale or q.shape[-1] ** -0.5)
    if mask is not None:
        scores = attention.apply_mask(scores, mask)
    return torch.softmax(scores, dim=-1).nan_to_num(0.0)  # forward fine, backward NaN


def mask_sign_flipped(scores: Tensor, mask: Tensor) -> Tensor:
    if mask.dtype == torch.bool:
        return scores.masked_fill(mask, float("-inf"))  # True read as "blocked"
    return scores + mask


def mask_in_place(scores: Tensor, mask: Tensor) -> Tensor:
    if mask.dtype == torch.bool:
        return scores.masked_fill_(~mask, float("-inf"))
    return scores.add_(mask)


def heads_interleaved(x: Tensor, n_heads: int) -> Tensor:
    return rearrange(x, "b s (d h) -> b h s d", h=n_heads)


def gelu_tanh(x: Tensor) -> Tensor:
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


class DropoutNoRescale(bert.Dropout):
    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        return x * (torch.rand_like(x) >= self.p)


class EmbeddingPadGetsGradient(bert.Embedding):
    def forward(self, ids: Tensor) -> Tensor:
        return self.weight[ids]


class EmbeddingsWithoutTokenTypes(bert.BertEmbeddings):
    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        positions = torch.arange(input_ids.shape[1])
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        return self.dropout(self.layer_norm(x))  # type: ignore[no-any-return]


class PreLNLayer(bert.BertLayer):
    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = x + self.dropout(self.attention(self.attention_norm(x), mask))
        return h + self.dropout(self.ffn_out(bert.gelu(self.ffn_in(self.ffn_norm(h)))))


class LayerSecondResidualFromInput(bert.BertLayer):
    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = self.attention_norm(x + self.dropout(self.attention(x, mask)))
        return self.ffn_norm(x + self.dropout(self.ffn_out(bert.gelu(self.ffn_in(h)))))  # type: ignore[no-any-return]


class AttentionKeysAsQueries(bert.MultiHeadSelfAttention):
    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        q = attention.split_heads(self.query(x), self.num_heads)
        k = attention.split_heads(self.key(x), self.num_heads)
        v = attention.split_heads(self.value(x), self.num_heads)
        weights = self.dropout(attention.attention_weights(k, q, mask))  # swapped
        return self.out(attention.merge_heads(weights @ v))  # type: ignore[no-any-return]


def loss_over_every_position(logits: Tensor, labels: Tensor) -> Tensor:
    lse = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return ((lse - picked) * (labels != -100)).mean()  # divides by batch * seq


def mean_with_padding(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    mean = hidden.mean(dim=1)
    return mean / mean.norm(dim=-1, keepdim=True)


def state_dict_without_tied_entries(model: torch.nn.Module) -> dict[str, Tensor]:
    state = bert.hf_state_dict(model)
    return {k: v for k, v in state.items() if not k.startswith("cls.predictions.decoder")}


def key_without_bert_prefix(name: str) -> str | None:
    return bert.hf_bert_key(name.removeprefix("bert."))


WRONG: list[tuple[str, Callable[..., Any] | type, str]] = [
    ("attention_weights", weights_without_scale, "attention weights"),
    ("attention_weights", weights_over_queries, "attention weights"),
    ("attention_weights", weights_patched_after_softmax, "gradient of q holds NaN"),
    ("apply_mask", mask_sign_flipped, "values differ"),
    ("apply_mask", mask_in_place, "changed in place|scores"),
    ("split_heads", heads_interleaved, "values differ"),
    ("gelu", gelu_tanh, "values differ"),
    ("Dropout", DropoutNoRescale, r"kept values \(scaled by 1/\(1-p\)\)"),
    ("Embedding", EmbeddingPadGetsGradient, "gradient of weight"),
    ("BertEmbeddings", EmbeddingsWithoutTokenTypes, "BertEmbeddings output"),
    ("BertLayer", PreLNLayer, "BertLayer output"),
    ("BertLayer", LayerSecondResidualFromInput, "BertLayer output"),
    ("MultiHeadSelfAttention", AttentionKeysAsQueries, "MultiHeadSelfAttention output"),
    ("mlm_loss", loss_over_every_position, "values differ|differ"),
    ("sentence_embeddings", mean_with_padding, "values differ"),
    ("hf_state_dict", state_dict_without_tied_entries, "cls.predictions.decoder"),
    ("hf_bert_key", key_without_bert_prefix, "our name"),
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
