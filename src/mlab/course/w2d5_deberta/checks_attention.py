"""Checks for part 2 of w2d5: the content-to-position and position-to-content scores (against
the definition, computed with plain indexing and einsum), DeBERTa's attention mask and the
disentangled self-attention (against transformers 5.24's ``DisentangledSelfAttention``, over
configs varying ``pos_att_type``, ``position_buckets``, ``share_att_key`` and
``relative_attention``, HF's weights copied in, float64, padded batches: outputs and every
parameter's gradient). Also the helpers part 3's checks share."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from transformers.models.deberta_v2 import modeling_deberta_v2

from mlab.course.engine.checks import Namespace, check
from mlab.errors import MismatchError, ShapeError
from mlab.models.deberta import DebertaConfig, hf_deberta_key
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_raises,
    assert_unchanged,
    case,
    expect,
    generator,
    randn,
)

f64 = torch.float64
# transformers is untyped
hf: Any = modeling_deberta_v2
# HF computes the scale sqrt(d_head * factor) in float32 even in float64 (1e-7 relative)
RTOL, ATOL = 1e-5, 1e-6
HIDDEN, MAX_POS = 8, 16

# name: DebertaV2Config switches
CONFIGS: dict[str, dict[str, Any]] = {
    "c2p and p2c, 4 buckets": dict(pos_att_type=["c2p", "p2c"], position_buckets=4),
    "c2p only, no buckets, max_relative_positions=3": dict(
        pos_att_type=["c2p"], max_relative_positions=3
    ),
    "p2c only, 6 buckets, share_att_key": dict(
        pos_att_type=["p2c"], position_buckets=6, share_att_key=True
    ),
    "c2p and p2c, share_att_key, 8 buckets, max_relative_positions=10": dict(
        pos_att_type=["p2c", "c2p"],
        position_buckets=8,
        share_att_key=True,
        max_relative_positions=10,
    ),
    "relative_attention off (pos_att_type still sets the scale)": dict(
        relative_attention=False, pos_att_type=["c2p", "p2c"]
    ),
}


def hf_config(switches: dict[str, Any], heads: int = 2, layers: int = 1) -> Any:
    """A small DebertaV2Config with relative attention (unless switched off)."""
    values: dict[str, Any] = dict(
        relative_attention=True,
        position_buckets=-1,
        max_relative_positions=-1,
        share_att_key=False,
        norm_rel_ebd="layer_norm",
        position_biased_input=False,
    )
    return hf.DebertaV2Config(
        vocab_size=30,
        hidden_size=HIDDEN,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=12,
        max_position_embeddings=MAX_POS,
        hidden_dropout_prob=0.2,
        attention_probs_dropout_prob=0.2,
        **(values | switches),
    )


def randomise(module: Any, seed: int) -> Any:
    """Every parameter random (LayerNorm weights around 1), float64, eval mode."""
    g = generator(seed)
    module.double().eval()
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=f64) * 0.4
            p.copy_(noise + 1 if name.endswith("LayerNorm.weight") else noise)
    return module


def sub_key(hf_prefix: str, ours_prefix: str) -> Callable[[str], str | None]:
    """HF's name relative to ``hf_prefix`` to ours relative to ``ours_prefix`` (the table
    of ``mlab.models.deberta``), ``None`` outside the piece."""

    def key(name: str) -> str | None:
        ours = hf_deberta_key(hf_prefix + name)
        if ours is None or not ours.startswith(ours_prefix):
            return None
        return ours.removeprefix(ours_prefix)

    return key


def load_from_hf(ours: nn.Module, module: nn.Module, key: Callable[[str], str | None]) -> None:
    """HF's weights into ``ours`` (names compared first, then a strict load), float64."""
    expect(isinstance(ours, nn.Module), f"expected a torch.nn.Module, got {type(ours)}")
    mapped = {k2: v for k, v in module.state_dict().items() if (k2 := key(k)) is not None}
    assert_equal(sorted(ours.state_dict()), sorted(mapped), what="state dict names")
    ours.double()
    try:
        ours.load_state_dict(mapped, strict=True)
    except RuntimeError as err:
        raise MismatchError(f"HuggingFace's weights do not fit: {err}") from None


def compare_grads(
    ours: nn.Module, module: nn.Module, key: Callable[[str], str | None], out: Tensor, ref: Tensor
) -> None:
    """Backprop a non-uniform loss through both; every parameter's gradient must match."""
    w = randn(*ref.shape, seed=77, dtype=f64)
    (out * w).sum().backward()  # type: ignore[no-untyped-call]
    (ref * w).sum().backward()  # type: ignore[no-untyped-call]
    params = dict(ours.named_parameters())
    for name, p in module.named_parameters():
        ours_name = key(name)
        if ours_name is not None and p.grad is not None:
            assert_close(
                params[ours_name].grad,
                p.grad,
                what=f"gradient of {ours_name}",
                rtol=RTOL,
                atol=ATOL,
            )


def padded_mask(seq: int = 7) -> Tensor:
    """Three sequences: no padding, 2 padding tokens, a single token."""
    mask = torch.ones(3, seq, dtype=torch.long)
    mask[1, -2:] = 0
    mask[2, 1:] = 0
    return mask


def hf_inputs(config: Any, seq: int, seed: int) -> tuple[Tensor | None, Tensor | None]:
    """HF's relative positions and (layer-normed) relative embeddings for ``seq`` tokens."""
    if not config.relative_attention:
        return None, None
    torch.manual_seed(seed)
    encoder = randomise(hf.DebertaV2Encoder(config), seed)
    x = torch.zeros(1, seq, HIDDEN, dtype=f64)
    return encoder.get_rel_pos(x)[0], encoder.get_rel_embedding().detach()


# ----------------------------------------------------------------------------------------------
# c2p_scores and p2c_scores, against their definition


def c2p_definition(q: Tensor, pos_k: Tensor, rel: Tensor) -> Tensor:
    span = pos_k.shape[1] // 2
    rows = pos_k[:, (rel + span).clamp(0, 2 * span - 1)]  # (heads, seq_q, seq_k, d_head)
    return torch.einsum("bhid,hijd->bhij", q, rows)


def p2c_definition(k: Tensor, pos_q: Tensor, rel: Tensor) -> Tensor:
    span = pos_q.shape[1] // 2
    rows = pos_q[:, (span - rel.T).clamp(0, 2 * span - 1)]  # [h, i, j]: at -rel[j, i]
    return torch.einsum("bhjd,hijd->bhij", k, rows)


def _scores_match(ns: Namespace, name: str, definition: Callable[..., Tensor]) -> None:
    fn = getattr(ns, name)
    for seed, (B, H, T, D, span, bucket) in enumerate(
        [(2, 3, 6, 4, 4, 0), (1, 1, 9, 2, 3, 0), (2, 2, 12, 3, 4, 8), (3, 2, 1, 5, 2, 0)]
    ):
        x = randn(B, H, T, D, seed=seed, dtype=f64).requires_grad_()
        pos = randn(H, 2 * span, D, seed=10 + seed, dtype=f64).requires_grad_()
        rel = torch.arange(T)[:, None] - torch.arange(T)[None, :]
        if bucket:
            rel = hf.make_log_bucket_position(rel, bucket, 12).long()
        with case(
            f"{H} heads, {T} positions, span {span} (distances up to {T - 1}, "
            f"clamped beyond {span})",
            relative_pos=rel,
        ):
            before = x.detach().clone(), pos.detach().clone(), rel.clone()
            got = fn(x, pos, rel)
            want = definition(x, pos, rel)
            assert_close(got, want)
            for given, kept in zip((x, pos, rel), before, strict=True):
                assert_unchanged(given, kept)
            w = randn(*want.shape, seed=20 + seed, dtype=f64)
            grads = torch.autograd.grad((got * w).sum(), (x, pos))
            wanted = torch.autograd.grad((want * w).sum(), (x, pos))
            assert_close(grads[0], wanted[0], what="gradient of the content vectors")
            assert_close(grads[1], wanted[1], what="gradient of the position vectors")
    x = randn(2, 3, 5, 4, seed=30, dtype=f64).transpose(0, 1)  # non-contiguous (3, 2, 5, 4)
    pos = randn(4, 2, 6, seed=31, dtype=f64).transpose(0, 2).transpose(0, 1)  # (2, 6, 4)
    rel = (torch.arange(5)[:, None] - torch.arange(5)[None, :]) * 2  # distances up to 8
    with case("non-contiguous inputs, doubled distances", relative_pos=rel):
        assert_close(fn(x, pos, rel), definition(x, pos, rel))


@check("c2p_scores")
def c2p_matches_definition(ns: Namespace) -> None:
    _scores_match(ns, "c2p_scores", c2p_definition)
    q = randn(1, 2, 3, 4, seed=40, dtype=f64)
    pos = randn(2, 8, 4, seed=41, dtype=f64)
    rel = torch.tensor([[0, -1, -2, -3, -4, -5], [1, 0, -1, -2, -3, -4], [2, 1, 0, -1, -2, -3]])
    with case("3 queries, 6 keys (c2p allows seq_q != seq_k)", relative_pos=rel):
        assert_close(ns.c2p_scores(q, pos, rel), c2p_definition(q, pos, rel))


@check("c2p_scores")
def c2p_rejects_bad_shapes(ns: Namespace) -> None:
    q = torch.zeros(1, 2, 4, 3)
    rel = torch.zeros(4, 4, dtype=torch.long)
    for desc, pos, r in [
        ("pos_k with 3 heads for q's 2", torch.zeros(3, 6, 3), rel),
        ("pos_k with d_head 4 for q's 3", torch.zeros(2, 6, 4), rel),
        ("pos_k with an odd number of rows, 5", torch.zeros(2, 5, 3), rel),
        ("relative_pos with 3 rows for 4 queries", torch.zeros(2, 6, 3), rel[:3]),
    ]:
        with case(desc):
            assert_raises(ns.c2p_scores, q, pos, r, exc=ShapeError)


@check("p2c_scores")
def p2c_matches_definition(ns: Namespace) -> None:
    _scores_match(ns, "p2c_scores", p2c_definition)


@check("p2c_scores")
def p2c_rejects_bad_shapes(ns: Namespace) -> None:
    k = torch.zeros(1, 2, 4, 3)
    rel = torch.zeros(4, 4, dtype=torch.long)
    for desc, pos, r in [
        ("pos_q with 1 head for k's 2", torch.zeros(1, 6, 3), rel),
        ("pos_q with d_head 2 for k's 3", torch.zeros(2, 6, 2), rel),
        ("pos_q with an odd number of rows, 7", torch.zeros(2, 7, 3), rel),
        ("relative_pos of shape (4, 5)", torch.zeros(2, 6, 3), torch.zeros(4, 5, dtype=torch.long)),
        ("relative_pos of shape (3, 4)", torch.zeros(2, 6, 3), rel[:3]),
    ]:
        with case(desc):
            assert_raises(ns.p2c_scores, k, pos, r, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# deberta_attention_mask


@check("deberta_attention_mask")
def attention_mask_matches_hf(ns: Namespace) -> None:
    encoder = hf.DebertaV2Encoder(hf_config({}, layers=0))
    masks = [padded_mask(), torch.ones(2, 4, dtype=torch.long), torch.tensor([[0, 1, 1, 0]])]
    for mask in [*masks, masks[0].bool()]:
        with case("an attention mask", attention_mask=mask):
            before = mask.clone()
            got = ns.deberta_attention_mask(mask)
            assert_equal(got, encoder.get_attention_mask(mask).bool())
            assert_unchanged(mask, before)


@check("deberta_attention_mask")
def attention_mask_rejects_bad_input(ns: Namespace) -> None:
    with case("a (2, 3, 4) mask"):
        assert_raises(ns.deberta_attention_mask, torch.ones(2, 3, 4), exc=ShapeError)
    with case("a mask holding 2"):
        assert_raises(
            ns.deberta_attention_mask, torch.tensor([[1, 2, 0]]), exc=ValueError, match="2"
        )


# ----------------------------------------------------------------------------------------------
# DisentangledSelfAttention


def attention_matches(ns: Namespace, name: str, switches: dict[str, Any], seed: int) -> None:
    config = hf_config(switches, heads=(1, 4, 2, 2, 4)[seed])
    torch.manual_seed(seed)
    module = randomise(hf.DisentangledSelfAttention(config), 50 + seed)
    key = sub_key("encoder.layer.0.attention.self.", "layers.0.attention.")
    mask = padded_mask()
    rel_pos, rel = hf_inputs(config, 7, 60 + seed)
    x = randn(3, 7, HIDDEN, seed=70 + seed, dtype=f64).requires_grad_()
    query = randn(3, 7, HIDDEN, seed=80 + seed, dtype=f64)
    hf_mask = mask[:, None, :, None] * mask[:, None, None, :]
    keep = hf_mask.bool()
    for with_query in (False, True):
        qs = query if with_query else None
        x.grad = None
        with case(
            f"{name}, {config.num_attention_heads} heads, padded batch"
            + (", query_states given" * with_query),
            attention_mask=mask,
        ):
            ours = ns.DisentangledSelfAttention(DebertaConfig.from_hf(config))
            load_from_hf(ours, module, key)
            ours.eval()
            module.zero_grad()
            out = ours(x, keep, rel_pos, rel, qs)
            grad_x = torch.autograd.grad((out * out).sum(), x, retain_graph=True)[0]
            ref = module(x, hf_mask, query_states=qs, relative_pos=rel_pos, rel_embeddings=rel)[0]
            assert_close(out, ref, rtol=RTOL, atol=ATOL)
            want_x = torch.autograd.grad((ref * ref).sum(), x, retain_graph=True)[0]
            assert_close(grad_x, want_x, what="gradient of the hidden states", rtol=RTOL, atol=ATOL)
            compare_grads(ours, module, key, out, ref)
            ours.train()
            with torch.no_grad():
                first, second = ours(x, keep, rel_pos, rel), ours(x, keep, rel_pos, rel)
            expect(
                not torch.equal(first, second),
                "train mode gave the same output twice: "
                "is the dropout on the attention weights missing?",
            )


@check("DisentangledSelfAttention")
def attention_matches_hf(ns: Namespace) -> None:
    for seed, (name, switches) in enumerate(CONFIGS.items()):
        attention_matches(ns, name, switches, seed)


@check("DisentangledSelfAttention")
def position_dropout_is_on_in_training_only(ns: Namespace) -> None:
    for relative in (True, False):
        switches = CONFIGS["c2p and p2c, 4 buckets"] | {"relative_attention": relative}
        config = dataclasses.replace(
            DebertaConfig.from_hf(hf_config(switches)),
            attention_probs_dropout_prob=0.0,
            hidden_dropout_prob=0.5,
        )
        ours = ns.DisentangledSelfAttention(config).double().train()
        x = randn(2, 5, HIDDEN, seed=90, dtype=f64)
        mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
        rel_pos, rel = hf_inputs(hf_config(switches), 5, 91)
        with torch.no_grad():
            first, second = ours(x, mask, rel_pos, rel), ours(x, mask, rel_pos, rel)
        if relative:
            with case("train mode, hidden_dropout_prob=0.5, no attention dropout"):
                expect(
                    not torch.equal(first, second),
                    "two passes gave the same output: "
                    "pos_dropout (p = hidden_dropout_prob) on rel_embeddings is missing",
                )
        else:
            with case("train mode, relative_attention off, no attention dropout"):
                assert_close(first, second, what="a second pass (nothing random is left)")


@check("DisentangledSelfAttention")
def attention_rejects_bad_input(ns: Namespace) -> None:
    config = DebertaConfig.from_hf(hf_config(CONFIGS["c2p and p2c, 4 buckets"]))
    ours = ns.DisentangledSelfAttention(config)
    x = torch.zeros(1, 3, HIDDEN)
    mask = torch.ones(1, 1, 3, 3, dtype=torch.bool)
    rel_pos, rel = hf_inputs(hf_config(CONFIGS["c2p and p2c, 4 buckets"]), 3, 0)
    cases = [("both", ()), ("rel_embeddings", (rel_pos, None)), ("relative_pos", (None, rel))]
    for missing, given in cases:
        with case(f"relative_attention on, {missing} missing"):
            assert_raises(ours, x, mask, *given, exc=ValueError)
    for heads in (3, 0):
        with case(f"hidden_size=8, num_attention_heads={heads}"):
            bad = DebertaConfig(vocab_size=30, hidden_size=8, num_attention_heads=heads)
            assert_raises(ns.DisentangledSelfAttention, bad, exc=ShapeError)
