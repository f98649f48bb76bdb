"""Checks for part 3 of w2d5: the DeBERTa layer against transformers 5.24's
``DebertaV2Layer`` (with and without query states), and the enhanced mask decoder driving
HuggingFace's last layer as Microsoft's ``emd_context_layer`` does (HF's
``DebertaV2ForMaskedLM`` never runs it: its ``z_steps`` is 0)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.course.w2d5_deberta.checks_attention import (
    ATOL,
    CONFIGS,
    HIDDEN,
    RTOL,
    compare_grads,
    f64,
    hf,
    hf_config,
    hf_inputs,
    load_from_hf,
    padded_mask,
    randomise,
    sub_key,
)
from mlab.models.deberta import DebertaConfig
from mlab.testing import assert_close, assert_raises, case, expect, randn


@check("DebertaLayer")
def layer_matches_hf(ns: Namespace) -> None:
    for seed, name in enumerate(list(CONFIGS)[::2]):
        config = hf_config(CONFIGS[name], heads=2)
        torch.manual_seed(seed)
        module = randomise(hf.DebertaV2Layer(config), 100 + seed)
        key = sub_key("encoder.layer.0.", "layers.0.")
        mask = padded_mask()
        hf_mask = mask[:, None, :, None] * mask[:, None, None, :]
        rel_pos, rel = hf_inputs(config, 7, 110 + seed)
        x = randn(3, 7, HIDDEN, seed=120 + seed, dtype=f64)
        query = randn(3, 7, HIDDEN, seed=130 + seed, dtype=f64)
        for qs in (None, query):
            with case(
                f"{name}, padded batch" + (", query_states given" if qs is not None else ""),
                attention_mask=mask,
            ):
                ours = ns.DebertaLayer(DebertaConfig.from_hf(config))
                load_from_hf(ours, module, key)
                ours.eval()
                module.zero_grad()
                out = ours(x, hf_mask.bool(), rel_pos, rel, qs)
                ref = module(x, hf_mask, query_states=qs, relative_pos=rel_pos, rel_embeddings=rel)[
                    0
                ]
                assert_close(out, ref, rtol=RTOL, atol=ATOL)
                compare_grads(ours, module, key, out, ref)
                ours.train()
                with torch.no_grad():
                    first = ours(x, hf_mask.bool(), rel_pos, rel, qs)
                    second = ours(x, hf_mask.bool(), rel_pos, rel, qs)
                expect(not torch.equal(first, second), "train mode gave the same output twice")


@check("DebertaLayer")
def layer_dropout_after_each_sublayer(ns: Namespace) -> None:
    config = DebertaConfig(
        vocab_size=30,
        hidden_size=HIDDEN,
        num_attention_heads=2,
        intermediate_size=12,
        hidden_dropout_prob=0.999,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    layer = ns.DebertaLayer(config).double().train()
    x = randn(2, 4, HIDDEN, seed=140, dtype=f64)
    mask = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    with torch.no_grad():
        h = layer.attention_norm(x)
        want = layer.ffn_norm(h)
        got = layer(x, mask)
    with case("hidden_dropout_prob=0.999: both sublayers dropped (almost surely)"):
        assert_close(got, want, what="the output, ffn_norm(attention_norm(x))")


def hf_emd(
    layer: Any, hidden: Tensor, positions: Tensor, mask: Tensor, rel_pos: Any, rel: Any, steps: int
) -> Tensor:
    """Microsoft's emd_context_layer with HF's layer: queries start at hidden + positions,
    keys and values stay ``hidden``."""
    query = hidden + positions
    for _ in range(steps):
        query = layer(hidden, mask, query_states=query, relative_pos=rel_pos, rel_embeddings=rel)[0]
    return query


class Recorder:
    """HF's layer behind our layer's call signature, keeping every call's arguments."""

    def __init__(self, layer: Any) -> None:
        self.layer, self.calls = layer, list[tuple[Tensor, Tensor | None]]()

    def __call__(
        self,
        x: Tensor,
        mask: Tensor,
        relative_pos: Any = None,
        rel_embeddings: Any = None,
        query_states: Tensor | None = None,
    ) -> Tensor:
        self.calls.append((x, query_states))
        out: Tensor = self.layer(
            x,
            mask.long(),
            query_states=query_states,
            relative_pos=relative_pos,
            rel_embeddings=rel_embeddings,
        )[0]
        return out


@check("enhanced_mask_decoder")
def decoder_matches_emd_context_layer(ns: Namespace) -> None:
    for seed, (name, steps) in enumerate(
        [
            ("c2p and p2c, 4 buckets", 2),
            ("p2c only, 6 buckets, share_att_key", 1),
            ("c2p only, no buckets, max_relative_positions=3", 3),
        ]
    ):
        config = hf_config(CONFIGS[name], heads=2)
        torch.manual_seed(seed)
        module = randomise(hf.DebertaV2Layer(config), 150 + seed)
        mask = padded_mask(6)
        hf_mask = mask[:, None, :, None] * mask[:, None, None, :]
        rel_pos, rel = hf_inputs(config, 6, 160 + seed)
        hidden = randn(3, 6, HIDDEN, seed=170 + seed, dtype=f64).requires_grad_()
        positions = randn(1, 6, HIDDEN, seed=180 + seed, dtype=f64).requires_grad_()
        with case(f"{name}, steps={steps}", attention_mask=mask):
            layer = Recorder(module)
            got = ns.enhanced_mask_decoder(
                layer, hidden, positions, hf_mask.bool(), rel_pos, rel, steps
            )
            want = hf_emd(module, hidden, positions, hf_mask, rel_pos, rel, steps)
            assert_close(got, want, rtol=RTOL, atol=ATOL)
            expect(
                len(layer.calls) == steps,
                f"the layer ran {len(layer.calls)} times, expected steps={steps}",
            )
            expect(
                all(x is hidden for x, _ in layer.calls),
                "every step's keys and values "
                "should be `hidden` itself (the second-to-last layer's output)",
            )
            w = randn(*want.shape, seed=190, dtype=f64)
            grads = torch.autograd.grad((got * w).sum(), (hidden, positions))
            wanted = torch.autograd.grad((want * w).sum(), (hidden, positions))
            assert_close(grads[0], wanted[0], what="gradient of hidden", rtol=RTOL, atol=ATOL)
            assert_close(grads[1], wanted[1], what="gradient of positions", rtol=RTOL, atol=ATOL)
    with case("steps=2 by default"):
        layer = Recorder(module)
        ns.enhanced_mask_decoder(layer, hidden, positions, hf_mask.bool(), rel_pos, rel)
        expect(len(layer.calls) == 2, f"the layer ran {len(layer.calls)} times by default")
    for steps in (0, -1):
        with case(f"steps={steps}"):
            assert_raises(
                ns.enhanced_mask_decoder,
                layer,
                hidden,
                positions,
                hf_mask.bool(),
                rel_pos,
                rel,
                steps,
                exc=ValueError,
                match=str(steps),
            )
