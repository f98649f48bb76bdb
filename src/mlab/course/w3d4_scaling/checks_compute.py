"""Checks for part 2 of w3d4: ``gpt_parameter_count`` against ``sum(p.numel())`` of
HuggingFace's ``GPT2LMHeadModel`` (random init) at several sizes, with and without the
embedding tables; ``gpt_training_flops`` against ``torch.utils.flop_counter.FlopCounterMode``
counting a real forward and backward pass of that model."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import GPT2Config
from transformers import GPT2LMHeadModel as HFModel
from transformers.utils import logging as hf_logging

from mlab.course.engine.checks import Namespace, check
from mlab.testing import assert_equal, assert_raises, case

hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
# small vocabularies make HF warn about GPT-2's eos id

# (n_layer, n_embd, vocab_size, n_positions, n_head)
SIZES = [(1, 8, 10, 4, 2), (2, 12, 65, 16, 3), (3, 16, 37, 9, 4), (4, 32, 101, 64, 4)]


def _hf(n_layer: int, n_embd: int, vocab: int, positions: int, heads: int) -> HFModel:
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=n_layer,
        n_embd=n_embd,
        vocab_size=vocab,
        n_positions=positions,
        n_head=heads,
        bos_token_id=0,
        eos_token_id=0,
    )
    config._attn_implementation = "eager"  # products FlopCounterMode sees one by one
    return HFModel(config)


@check("gpt_parameter_count")
def counts_like_huggingface(ns: Namespace) -> None:
    for n_layer, d, vocab, positions, heads in SIZES:
        model = _hf(n_layer, d, vocab, positions, heads)
        total = sum(p.numel() for p in model.parameters())  # the tied head is counted once
        tables = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
        what = f"n_layer={n_layer}, n_embd={d}, vocab_size={vocab}, n_positions={positions}"
        with case(f"HF GPT2LMHeadModel with {what}"):
            got = ns.gpt_parameter_count(n_layer, d, vocab, positions)
            assert_equal(got, total, what="parameters (sum of numel over HF's parameters)")
            got = ns.gpt_parameter_count(n_layer, d, vocab, positions, embeddings=False)
            assert_equal(got, total - tables, what="non-embedding parameters (Kaplan's N)")


@check("gpt_parameter_count")
def parameter_count_rejects_bad_sizes(ns: Namespace) -> None:
    for args in ((0, 8, 10, 4), (2, 0, 10, 4), (2, 8, 0, 4), (2, 8, 10, -1)):
        with case(f"sizes {args}"):
            assert_raises(ns.gpt_parameter_count, *args, exc=ValueError, what="gpt_parameter_count")


def _counted_flops(model: HFModel, batch: int, n_ctx: int, vocab: int) -> int:
    x = torch.randint(vocab, (batch, n_ctx), generator=torch.Generator().manual_seed(1))
    with FlopCounterMode(display=False) as counter:
        logits = model(x).logits
        (
            logits * torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))
        ).sum().backward()
    return int(counter.get_total_flops())


@check("gpt_training_flops")
def flops_match_torch_flop_counter(ns: Namespace) -> None:
    for (n_layer, d, vocab, positions, heads), batch in zip(SIZES, (3, 2, 1, 2), strict=True):
        model = _hf(n_layer, d, vocab, positions, heads)
        want = _counted_flops(model, batch, positions, vocab)
        with case(
            f"forward + backward of HF GPT-2 (n_layer={n_layer}, n_embd={d}, "
            f"vocab={vocab}) on {batch} windows of {positions} tokens"
        ):
            got = ns.gpt_training_flops(n_layer, d, vocab, positions, batch * positions)
            assert_equal(got, want, what="FLOPs (torch.utils.flop_counter's count)")


@check("gpt_training_flops")
def flops_grow_linearly_with_tokens(ns: Namespace) -> None:
    with case("1 window vs 1000 windows of 8 tokens"):
        one = ns.gpt_training_flops(2, 16, 50, 8, 8)
        many = ns.gpt_training_flops(2, 16, 50, 8, 8000)
        assert_equal(many, 1000 * one, what="FLOPs for 1000 windows")
    with case("tokens not a whole number of windows (10 tokens, n_ctx=4)"):
        assert_raises(
            ns.gpt_training_flops,
            1,
            8,
            10,
            4,
            10,
            exc=ValueError,
            match="n_ctx",
            what="gpt_training_flops",
        )
    for args in ((0, 8, 10, 4, 8), (1, 8, 10, 0, 8), (1, 8, 10, 4, 0), (1, -8, 10, 4, 8)):
        with case(f"sizes {args}"):
            assert_raises(ns.gpt_training_flops, *args, exc=ValueError, what="gpt_training_flops")
