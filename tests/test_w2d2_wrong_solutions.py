"""Realistic wrong solutions to w2d2's exercises: each must fail its exercise's checks with a
message that points at the mistake, while the reference passes (the meta-tests prove that).
These are the structured mistakes a learner makes, beyond the mutation engine's one-token
slips: the wrong layout, a missing scale, an inverted mask, post-LN, an untied head, ..."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from checkrun import assert_fails
from mlab.errors import DataError, MismatchError, ShapeError
from mlab.models import gpt2, gpt2_checkpoint
from mlab.nn.attention import attention_weights, merge_heads, split_heads

_fails = partial(assert_fails, "w2d2", exc=(MismatchError, ShapeError, TypeError, RuntimeError))


# ----------------------------------------------------------------------------------------------
# Part 1


def exact_gelu(x: Tensor) -> Tensor:
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


class LinearLayoutConv1D(gpt2.Conv1D):
    """nn.Linear's layout: weight (out, in), x @ weight.T."""

    def __init__(self, nf: int, nx: int) -> None:
        nn.Module.__init__(self)
        self.nf, self.nx = nf, nx
        self.weight = nn.Parameter(torch.randn(nf, nx) * 0.02)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.weight.T + self.bias


LinearLayoutConv1D.__name__ = "Conv1D"


def causal_mask_without_offset(seq_q: int, seq_k: int) -> Tensor:
    if not 0 <= seq_q <= seq_k:
        raise ShapeError("bad sizes")
    return torch.ones(seq_q, seq_k, dtype=torch.bool).tril()  # forgets the cached keys


def positions_by_column(attention_mask: Tensor, seq_q: int) -> Tensor:
    n = attention_mask.shape[1]
    return torch.arange(n - seq_q, n).expand(attention_mask.shape[0], seq_q)


def positions_with_minus_one_at_pads(attention_mask: Tensor, seq_q: int) -> Tensor:
    positions = attention_mask.long().cumsum(-1) - 1
    return positions[:, positions.shape[1] - seq_q :]


@pytest.mark.parametrize(
    ("exercise", "value", "message"),
    [
        ("gelu_new", exact_gelu, "differ"),
        ("Conv1D", LinearLayoutConv1D, r"\(nx, nf\) weight"),
        ("causal_mask", causal_mask_without_offset, "seq_q=1 new positions after 4 cached"),
        ("position_ids_from_mask", positions_by_column, "left padding"),
        ("position_ids_from_mask", positions_with_minus_one_at_pads, "expected 0, got -1"),
    ],
)
def test_part1_wrong_solutions_fail(exercise: str, value: Any, message: str) -> None:
    _fails(exercise, value, message)


# ----------------------------------------------------------------------------------------------
# Part 2


class UnscaledAttention(gpt2.GPT2Attention):
    """Forgets the 1 / sqrt(d_head)."""

    def forward(self, x: Tensor, mask: Tensor | None = None, past: Any = None) -> Any:
        q, k, v = self.c_attn(x).split(self.n_embd, dim=-1)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], -2), torch.cat([past[1], v], -2)
        weights = self.attn_dropout(attention_weights(q, k, mask, scale=1.0))
        return self.resid_dropout(self.c_proj(merge_heads(weights @ v))), (k, v)


class InvertedMaskAttention(gpt2.GPT2Attention):
    """Reads True as 'blocked'."""

    def forward(self, x: Tensor, mask: Tensor | None = None, past: Any = None) -> Any:
        return super().forward(x, None if mask is None else ~mask, past)


class KeysFirstAttention(gpt2.GPT2Attention):
    """Takes c_attn's output as k, q, v."""

    def forward(self, x: Tensor, mask: Tensor | None = None, past: Any = None) -> Any:
        k, q, v = self.c_attn(x).split(self.n_embd, dim=-1)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], -2), torch.cat([past[1], v], -2)
        weights = self.attn_dropout(attention_weights(q, k, mask))
        return self.resid_dropout(self.c_proj(merge_heads(weights @ v))), (k, v)


class HeadsInterleavedAttention(gpt2.GPT2Attention):
    """Splits the features into heads the other way round: feature i goes to head i % H."""

    def forward(self, x: Tensor, mask: Tensor | None = None, past: Any = None) -> Any:
        B, T, C = x.shape
        H = self.n_head

        def heads(t: Tensor) -> Tensor:
            return t.reshape(B, T, C // H, H).permute(0, 3, 1, 2)

        q, k, v = (heads(t) for t in self.c_attn(x).split(self.n_embd, dim=-1))
        if past is not None:
            k, v = torch.cat([past[0], k], -2), torch.cat([past[1], v], -2)
        out = self.attn_dropout(attention_weights(q, k, mask)) @ v
        out = out.permute(0, 2, 3, 1).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(out)), (k, v)


class PostLNBlock(gpt2.GPT2Block):
    """The original transformer's order: normalise after the residual addition."""

    def forward(self, x: Tensor, mask: Tensor | None = None, past: Any = None) -> Any:
        attn_out, present = self.attn(x, mask, past)
        x = self.ln_1(x + attn_out)
        return self.ln_2(x + self.mlp(x)), present


class ColumnPositionsModel(gpt2.GPT2Model):
    """Ignores left padding when numbering positions (as HF's GPT2Model does)."""

    def forward(
        self,
        input_ids: Tensor,
        past_key_values: Any = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> Any:
        if position_ids is None:
            past = 0 if past_key_values is None else past_key_values[0][0].shape[-2]
            position_ids = torch.arange(past, past + input_ids.shape[1])[None]
        return super().forward(input_ids, past_key_values, attention_mask, position_ids)


class UntiedLMHead(gpt2.GPT2LMHeadModel):
    """Copies the embedding into the head instead of sharing it."""

    def __init__(self, config: gpt2.GPT2Config) -> None:
        super().__init__(config)
        self.lm_head.weight = nn.Parameter(self.transformer.wte.weight.detach().clone())


def loss_without_shift(
    logits: Tensor, labels: Tensor, num_items_in_batch: Any = None, ignore_index: int = -100
) -> Tensor:
    return nn.functional.cross_entropy(
        logits.flatten(0, 1).float(), labels.flatten(), ignore_index=ignore_index
    )


def loss_shifting_labels_in_place(
    logits: Tensor, labels: Tensor, num_items_in_batch: Any = None, ignore_index: int = -100
) -> Tensor:
    labels[:, :-1] = labels[:, 1:].clone()  # the shift, written into the caller's tensor
    labels[:, -1] = ignore_index
    total = nn.functional.cross_entropy(
        logits.flatten(0, 1).double(), labels.flatten(), ignore_index=ignore_index, reduction="sum"
    )
    n = num_items_in_batch if num_items_in_batch is not None else (labels != ignore_index).sum()
    return total / n


@pytest.mark.parametrize(
    ("exercise", "value", "message"),
    [
        ("GPT2Attention", UnscaledAttention, "GPT2Attention output"),
        ("GPT2Attention", InvertedMaskAttention, "GPT2Attention output"),
        ("GPT2Attention", KeysFirstAttention, "GPT2Attention output"),
        ("GPT2Attention", HeadsInterleavedAttention, "3 heads of 4"),
        ("GPT2Block", PostLNBlock, "GPT2Block output"),
        ("GPT2Model", ColumnPositionsModel, "left padding by 2, 0 and 5"),
        ("GPT2LMHeadModel", UntiedLMHead, "tied"),
        ("causal_lm_loss", loss_without_shift, "loss"),
        ("causal_lm_loss", loss_shifting_labels_in_place, "modified in place"),
    ],
)
def test_part2_wrong_solutions_fail(exercise: str, value: Any, message: str) -> None:
    _fails(exercise, value, message)


# ----------------------------------------------------------------------------------------------
# Part 3


def key_dropping_every_attn_bias(name: str) -> str | None:
    """'attn.bias' in the name catches the real bias c_attn.bias too."""
    if name.endswith("attn.bias") or name.endswith("masked_bias"):
        return None
    return gpt2_checkpoint.hf_gpt2_key(name)


def load_key_by_key(model: gpt2.GPT2LMHeadModel, state_dict: dict[str, Tensor]) -> None:
    """Copies every tensor that fits as it goes, and checks the whole only at the end: a
    failed load leaves a half-loaded model."""
    ours = model.state_dict()
    for name, value in state_dict.items():
        new = gpt2_checkpoint.hf_gpt2_key(name)
        if new in ours and new != "lm_head.weight" and ours[new].shape == value.shape:
            ours[new].copy_(value)
    gpt2_checkpoint.load_hf_state_dict(model, state_dict)


def save_with_the_head(model: gpt2.GPT2LMHeadModel, directory: Any) -> Any:
    """Keeps lm_head.weight and hands safetensors the shared tensor."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(model.config.to_hf_dict(), indent=2))
    save_file(dict(model.state_dict()), str(path / "model.safetensors"))
    return path


def from_pretrained_trusting_the_file(name_or_path: Any) -> gpt2.GPT2LMHeadModel:
    """Lets safetensors' own exception through, and never calls eval()."""
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    path = Path(name_or_path)
    if not path.is_dir():
        raise DataError(f"{path} is not a directory")
    config = gpt2.GPT2Config.from_hf(json.loads((path / "config.json").read_text()))
    model = gpt2.GPT2LMHeadModel(config)
    gpt2_checkpoint.load_hf_state_dict(model, load_file(str(path / "model.safetensors")))
    return model


@pytest.mark.parametrize(
    ("exercise", "value", "message"),
    [
        ("hf_gpt2_key", key_dropping_every_attn_bias, "c_attn.bias"),
        ("load_hf_state_dict", load_key_by_key, "after a failed load"),
        ("save_pretrained", save_with_the_head, "."),
        ("from_pretrained", from_pretrained_trusting_the_file, "eval mode"),
    ],
)
def test_part3_wrong_solutions_fail(exercise: str, value: Any, message: str) -> None:
    _fails(exercise, value, message)
