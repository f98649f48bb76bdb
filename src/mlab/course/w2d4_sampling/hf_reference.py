"""What w2d4's checks and tests compare against: transformers' ``GPT2LMHeadModel.generate``
and its logits processors, on a small random GPT-2 whose weights are also loaded into ours.

The models are float32 (HF's decoding scores are float32 whatever the model) with every
parameter pushed away from its initial value (fresh LayerNorms are the identity and fresh
logits nearly uniform, which would make every decoding method look alike)."""

from __future__ import annotations

import warnings
from typing import Any

import torch
import transformers
from torch import Tensor
from transformers import GPT2Config as HFConfig
from transformers import GPT2LMHeadModel as HFModel

from mlab.models.gpt2 import GPT2Config, GPT2LMHeadModel
from mlab.testing import generator

transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

PAD = 1
EOS = 3
NO_DROPOUT: dict[str, Any] = {"embd_pdrop": 0.0, "attn_pdrop": 0.0, "resid_pdrop": 0.0}


def model_pair(
    seed: int = 0,
    vocab_size: int = 40,
    n_positions: int = 48,
    n_embd: int = 16,
    n_layer: int = 2,
    n_head: int = 2,
    spread: float = 0.3,
) -> tuple[HFModel, GPT2LMHeadModel]:
    """HF's GPT-2 and ours with the same random weights, in eval mode."""
    config = HFConfig(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=EOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
        **NO_DROPOUT,
    )
    torch.manual_seed(seed)
    hf = HFModel(config)
    hf.eval()  # type: ignore[no-untyped-call]
    g = generator(seed + 1)
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn(p.shape, generator=g) * spread)
    ours = GPT2LMHeadModel(GPT2Config.from_hf(config)).eval()
    ours.load_state_dict(hf.state_dict())
    return hf, ours


def ragged_batch(
    lengths: list[int], vocab_size: int, seed: int, pad: int = PAD
) -> tuple[Tensor, Tensor]:
    """Prompts of the given lengths, left-padded to the longest: ids (no EOS, no PAD inside)
    and the attention mask."""
    g = generator(seed)
    width = max(lengths)
    ids = torch.randint(4, vocab_size, (len(lengths), width), generator=g)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, width - n :] = 1
    return ids.masked_fill(mask == 0, pad), mask


def hf_generate(hf: HFModel, ids: Tensor, mask: Tensor | None, **kwargs: Any) -> Tensor:
    """``hf.generate`` with our keyword names: ``top_k=None`` is HF's ``top_k=0`` (its
    default is 50), ``do_sample`` defaults to False, stop strings take ``tokenizer``."""
    kwargs.setdefault("do_sample", False)
    kwargs.setdefault("pad_token_id", PAD)
    if kwargs.get("top_k") is None:
        kwargs["top_k"] = 0
    kwargs.pop("token_strings", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out: Tensor = hf.generate(ids, attention_mask=mask, **kwargs)
    return out


def hf_processed(hf: HFModel, ids: Tensor, mask: Tensor, **kwargs: Any) -> Tensor:
    """The processed float32 scores of the next token as HF's sampling computes them (its
    ``output_scores``), for one decoding step."""
    out = hf_generate(
        hf,
        ids,
        mask,
        max_new_tokens=1,
        return_dict_in_generate=True,
        output_scores=True,
        **kwargs,
    )
    return out.scores[0]  # type: ignore[attr-defined,no-any-return]


def stop_string_vocabulary() -> tuple[list[str], Any]:
    """The text of each of 40 token ids and a HF tokenizer with that vocabulary, for
    ``StopStringCriteria``. HF cleans the vocabulary by decoding each token after "abcdef",
    so that must be one token, and the decoder must join tokens as they are (``Fuse``)."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    letters = [a + b for a in "abcdefghijkl" for b in ("", "a", "b")]
    words = ["<pad>", "<x>", "abcdef", "<eos>", *letters]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, "<x>"))
    tokenizer.decoder = decoders.Fuse()
    return words, PreTrainedTokenizerFast(tokenizer_object=tokenizer)  # type: ignore[no-untyped-call]
