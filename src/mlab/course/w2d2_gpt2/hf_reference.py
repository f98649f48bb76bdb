"""What w2d2's checks compare against: transformers' GPT-2 pieces, built small, in float64,
without dropout, with random LayerNorm parameters (fresh ones are the identity, so a
LayerNorm in the wrong place would go unnoticed) and eager attention fed explicit masks."""

from __future__ import annotations

from typing import Any

import torch
import transformers
from torch import Tensor, nn
from transformers import GPT2Config as HFConfig
from transformers.cache_utils import DynamicCache

from mlab.errors import MismatchError, StateDictError
from mlab.models.gpt2 import GPT2Config
from mlab.testing import assert_close, expect, generator

transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

F64 = torch.float64
NO_DROPOUT = {"embd_pdrop": 0.0, "attn_pdrop": 0.0, "resid_pdrop": 0.0}
# GPT-2's token 50256 is outside a small vocabulary: HF would warn on every config
SMALL_VOCAB = {"bos_token_id": 0, "eos_token_id": 0}


def hf_config(**kwargs: Any) -> HFConfig:
    """A transformers GPT2Config with eager attention (masks passed explicitly), no dropout
    unless asked."""
    config = HFConfig(**{**NO_DROPOUT, **SMALL_VOCAB, **kwargs})
    config._attn_implementation = "eager"
    return config


def ours_config(config: HFConfig) -> GPT2Config:
    return GPT2Config.from_hf(config)


def randomise(module: nn.Module, seed: int) -> nn.Module:
    """float64, random LayerNorm scales and shifts, random Conv1D biases (HF starts them at 0,
    which would hide a bias added twice or never)."""
    module.double()
    g = generator(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if ".ln_" in f".{name}" or name.endswith("bias"):
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.3 * torch.randn(p.shape, generator=g, dtype=F64))
    return module


def load_into(ours: nn.Module, hf: nn.Module, what: str) -> None:
    """Copy HF's weights into ``ours`` by name: both use GPT-2's names and layouts."""
    theirs = hf.state_dict()
    mine = ours.state_dict()
    missing, unexpected = sorted(theirs.keys() - mine.keys()), sorted(mine.keys() - theirs.keys())
    expect(
        not missing and not unexpected,
        f"{what} should have HuggingFace's parameter names; missing {missing}, "
        f"unexpected {unexpected}",
    )
    for name, value in theirs.items():
        expect(
            mine[name].shape == value.shape,
            f"{what}: {name} has shape {tuple(mine[name].shape)}, HuggingFace's "
            f"{tuple(value.shape)}",
        )
    ours.double()  # first: float64 values loaded into float32 would be rounded
    try:
        ours.load_state_dict(theirs)
    except (RuntimeError, StateDictError) as err:
        raise MismatchError(f"{what}: HuggingFace's weights do not load: {err}") from None


def additive(mask: Tensor) -> Tensor:
    """A boolean mask (True = attend) as the additive float mask HF's eager attention adds."""
    return torch.zeros(mask.shape, dtype=F64).masked_fill(~mask, torch.finfo(F64).min)


def hf_cache(pasts: list[tuple[Tensor, Tensor]], config: HFConfig) -> Any:
    cache = DynamicCache(config=config)
    for i, (k, v) in enumerate(pasts):
        cache.update(k.clone(), v.clone(), i)
    return cache


def compare_grads(ours: nn.Module, hf: nn.Module, what: str) -> None:
    mine = dict(ours.named_parameters())
    for name, p in hf.named_parameters():
        expect(mine[name].grad is not None, f"{what}: {name} got no gradient")
        assert_close(mine[name].grad, p.grad, rtol=1e-6, atol=1e-9, what=f"gradient of {name}")


def dropout_rates(module: nn.Module) -> dict[str, float]:
    return {n: m.p for n, m in module.named_modules() if isinstance(m, nn.Dropout)}
