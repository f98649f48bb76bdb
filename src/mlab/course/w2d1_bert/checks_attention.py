"""Checks for part 1 of w2d1: attention, against ``torch.nn.functional.
scaled_dot_product_attention`` and HuggingFace BERT's ``eager_attention_forward`` (which
returns the weights too), in float64, with boolean, additive and broadcast masks; the head
reshapes against HuggingFace's ``view(...).transpose(1, 2)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers.models.bert.modeling_bert import eager_attention_forward

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
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


def _qkv(
    batch: int, heads: int, seq_q: int, seq_k: int, d: int, d_v: int, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    # scaled by 2 so the scores are far from uniform: a missing scale or mask shows
    q = randn(batch, heads, seq_q, d, seed=seed, dtype=f64) * 2
    k = randn(batch, heads, seq_k, d, seed=seed + 1, dtype=f64) * 2
    v = randn(batch, heads, seq_k, d_v, seed=seed + 2, dtype=f64)
    return q, k, v


def _keep_mask(shape: tuple[int, ...], seed: int, p: float = 0.4) -> Tensor:
    """A random boolean mask (True = attend) with key 0 always allowed: no row fully masked."""
    keep = torch.rand(shape, generator=generator(seed)) > p
    keep[..., 0] = True
    return keep


def _hf_weights(q: Tensor, k: Tensor, v: Tensor, additive: Tensor | None, scale: float | None):  # type: ignore[no-untyped-def]
    module = nn.Module().eval()
    out, weights = eager_attention_forward(module, q, k, v, additive, scaling=scale)
    return out.transpose(1, 2), weights  # HF's output is (batch, seq, heads, d)


# ----------------------------------------------------------------------------------------------
# split_heads / merge_heads


@check("split_heads")
def split_heads_matches_hf_view(ns: Namespace) -> None:
    cases = [(2, 5, 4, 3), (1, 3, 1, 8), (3, 2, 6, 1), (2, 1, 12, 2)]
    for i, (batch, seq, heads, d_head) in enumerate(cases):
        x = randn(batch, seq, heads * d_head, seed=i, dtype=f64)
        with case(f"x of shape {tuple(x.shape)}, n_heads={heads}", x=x):
            want = x.view(batch, seq, heads, d_head).transpose(1, 2)
            assert_close(ns.split_heads(x, heads), want)
    x = randn(4, 3, 6, seed=9, dtype=f64).transpose(0, 1)
    with case("a non-contiguous x (transposed), n_heads=2", x=x):
        assert_close(ns.split_heads(x, 2), x.reshape(3, 4, 2, 3).transpose(1, 2))


@check("split_heads")
def split_heads_rejects_bad_shapes(ns: Namespace) -> None:
    for shape, heads in [((2, 5, 12), 5), ((2, 5, 12), 0), ((5, 12), 4), ((1, 2, 5, 12), 4)]:
        x = torch.zeros(shape)
        with case(f"x of shape {shape}, n_heads={heads}"):
            assert_raises(ns.split_heads, x, heads, exc=ShapeError)


@check("merge_heads")
def merge_heads_matches_hf_reshape(ns: Namespace) -> None:
    for i, (batch, heads, seq, d_head) in enumerate([(2, 4, 5, 3), (1, 1, 3, 8), (3, 6, 2, 1)]):
        x = randn(batch, heads, seq, d_head, seed=10 + i, dtype=f64)
        with case(f"x of shape {tuple(x.shape)}", x=x):
            want = x.transpose(1, 2).reshape(batch, seq, heads * d_head)
            assert_close(ns.merge_heads(x), want)
    for shape in [(2, 5, 12), (1, 2, 3, 4, 5)]:
        with case(f"x of shape {shape}, not 4-D"):
            assert_raises(ns.merge_heads, torch.zeros(shape), exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# padding_mask


@check("padding_mask")
def padding_mask_broadcasts_over_heads_and_queries(ns: Namespace) -> None:
    ints = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    for name, mask in [("an int mask", ints), ("a bool mask", ints.bool())]:
        with case(f"{name} of 3 rows with 2, 0 and 4 padding positions", attention_mask=mask):
            got = ns.padding_mask(mask)
            assert_equal(got, ints.bool()[:, None, None, :])
    with case("one row, no padding"):
        assert_equal(ns.padding_mask(torch.ones(1, 3)), torch.ones(1, 1, 1, 3, dtype=torch.bool))


@check("padding_mask")
def padding_mask_rejects_bad_masks(ns: Namespace) -> None:
    for mask in [torch.ones(4, dtype=torch.long), torch.ones(1, 2, 3, dtype=torch.long)]:
        with case(f"attention_mask of shape {tuple(mask.shape)}, not 2-D"):
            assert_raises(ns.padding_mask, mask, exc=ShapeError)
    for bad in (2, -1):
        mask = torch.tensor([[1, 1, bad]])
        with case(f"an attention mask holding {bad}", attention_mask=mask):
            assert_raises(ns.padding_mask, mask, exc=ValueError, match=str(bad))


# ----------------------------------------------------------------------------------------------
# apply_mask


@check("apply_mask")
def apply_mask_blocks_and_adds(ns: Namespace) -> None:
    scores = randn(2, 3, 4, 5, seed=20, dtype=f64)
    before = scores.clone()
    for shape in [(2, 1, 1, 5), (4, 5), (2, 3, 4, 5), (1, 3, 1, 1)]:
        keep = _keep_mask(shape, seed=21)
        keep[..., -1] = False
        with case(f"a boolean mask of shape {shape}", scores=scores, mask=keep):
            got = ns.apply_mask(scores, keep)
            assert_close(got, scores.masked_fill(~keep, float("-inf")), equal_nan=False)
            assert_unchanged(scores, before, what="scores")
        additive = randn(*shape, seed=22, dtype=f64)
        with case(f"an additive mask of shape {shape}", scores=scores, mask=additive):
            assert_close(ns.apply_mask(scores, additive), scores + additive)
            assert_unchanged(scores, before, what="scores")


@check("apply_mask")
def apply_mask_rejects_masks_that_do_not_broadcast(ns: Namespace) -> None:
    scores = torch.zeros(2, 3, 4, 5)
    for shape in [(3, 1, 1, 5), (2, 1, 1, 4), (2, 2, 3, 4, 5), (1, 1, 4, 6)]:
        with case(f"a mask of shape {shape} for scores of shape (2, 3, 4, 5)"):
            err = assert_raises(
                ns.apply_mask, scores, torch.ones(shape, dtype=torch.bool), exc=ShapeError
            )
            expect(
                str(shape) in str(err),
                f"the message should name the mask's shape {shape}: {err}",
            )


# ----------------------------------------------------------------------------------------------
# attention_weights


@check("attention_weights")
def weights_match_hf_eager_attention(ns: Namespace) -> None:
    cases = [
        ("no mask, 2 heads, seq 4, d_head 3", (2, 2, 4, 4, 3), None, None),
        (
            "a padding mask (batch, 1, 1, seq_k), seq_q != seq_k",
            (2, 3, 3, 5, 4),
            (2, 1, 1, 5),
            None,
        ),
        (
            "a full mask (batch, heads, seq_q, seq_k), scale 0.25",
            (1, 2, 4, 4, 8),
            (1, 2, 4, 4),
            0.25,
        ),
        ("a causal-shaped mask (seq_q, seq_k), one head", (2, 1, 5, 5, 2), (5, 5), None),
    ]
    for i, (name, (b, h, sq, sk, d), mask_shape, scale) in enumerate(cases):
        q, k, v = _qkv(b, h, sq, sk, d, d, seed=30 + 3 * i)
        keep = None if mask_shape is None else _keep_mask(mask_shape, seed=40 + i)
        for kind in ("boolean", "additive"):
            mask = keep
            additive = None if keep is None else torch.where(keep, 0.0, -1e4).to(f64)
            if kind == "additive":
                if keep is None:
                    continue
                mask = additive
            qg, kg = q.clone().requires_grad_(), k.clone().requires_grad_()
            qh, kh = q.clone().requires_grad_(), k.clone().requires_grad_()
            with case(f"{name}, {kind} mask", q=q, k=k, mask=mask):
                got = ns.attention_weights(qg, kg, mask, scale)
                _, want = _hf_weights(qh, kh, v, additive, scale)
                assert_close(got, want, what="attention weights")
                w = randn(*want.shape, seed=50 + i, dtype=f64)
                (got * w).sum().backward()
                (want * w).sum().backward()
                assert_close(qg.grad, qh.grad, what="gradient of q")
                assert_close(kg.grad, kh.grad, what="gradient of k")


@check("attention_weights")
def fully_blocked_rows_get_zero_weights_and_no_nan(ns: Namespace) -> None:
    q, k, _ = _qkv(2, 2, 4, 3, 4, 4, seed=60)
    keep = torch.ones(2, 1, 4, 3, dtype=torch.bool)
    keep[0, 0, 1] = False  # batch 0, query 1: nothing to attend to
    keep[1, 0, 3] = False
    keep[1, 0, 0, 1:] = False  # only key 0 left
    for kind, mask in [("boolean", keep), ("additive -inf", torch.where(keep, 0.0, -torch.inf))]:
        qg, kg = q.clone().requires_grad_(), k.clone().requires_grad_()
        with case(f"a {kind} mask blocking every key of two query rows", mask=mask):
            got = ns.attention_weights(qg, kg, mask.to(f64) if kind != "boolean" else mask)
            expect(
                bool(torch.isfinite(got).all()),
                f"the weights hold NaN or inf: {got[~torch.isfinite(got)].tolist()[:4]}; "
                "a fully blocked row should give zeros",
            )
            assert_equal(got[0, :, 1], torch.zeros(2, 3, dtype=f64), what="blocked row (0, 1)")
            assert_equal(got[1, :, 3], torch.zeros(2, 3, dtype=f64), what="blocked row (1, 3)")
            assert_close(got[1, :, 0, 0], torch.ones(2, dtype=f64), what="row with one key")
            others = got.sum(-1)[0, :, [0, 2, 3]]
            assert_close(others, torch.ones_like(others), what="sums of the other rows")
            (got * randn(*got.shape, seed=61, dtype=f64)).sum().backward()
            for name, t in [("q", qg), ("k", kg)]:
                grad = t.grad
                expect(
                    grad is not None and bool(torch.isfinite(grad).all()),
                    f"the gradient of {name} holds NaN or inf: set the blocked rows' scores "
                    "to a finite value *before* the softmax, not only its output after",
                )


@check("attention_weights")
def weights_reject_bad_shapes(ns: Namespace) -> None:
    shapes = [
        ((1, 2, 3, 4), (1, 2, 3, 5)),
        ((1, 2, 3, 4), (1, 3, 3, 4)),
        ((2, 2, 3, 4), (1, 2, 3, 4)),
        ((2, 3, 4), (2, 3, 4)),
        ((1, 2, 3, 4), (2, 3, 4)),
    ]
    for qs, ks in shapes:
        with case(f"q of shape {qs}, k of shape {ks}"):
            assert_raises(ns.attention_weights, torch.zeros(qs), torch.zeros(ks), exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# scaled_dot_product_attention


@check("scaled_dot_product_attention")
def sdpa_matches_torch(ns: Namespace) -> None:
    cases = [
        ("no mask, d_v != d_head", (2, 2, 4, 4, 3, 5), None, None),
        ("padding mask, seq_q != seq_k", (2, 3, 3, 6, 4, 4), "pad", None),
        ("additive mask, scale 0.5", (1, 2, 4, 4, 8, 2), "add", 0.5),
        ("a query row with every key blocked", (1, 1, 3, 3, 2, 2), "blocked", None),
    ]
    for i, (name, (b, h, sq, sk, d, dv), kind, scale) in enumerate(cases):
        q, k, v = _qkv(b, h, sq, sk, d, dv, seed=70 + 3 * i)
        mask: Tensor | None = None
        if kind == "pad":
            mask = _keep_mask((b, 1, 1, sk), seed=80)
        elif kind == "add":
            mask = randn(b, h, sq, sk, seed=81, dtype=f64) * 3
        elif kind == "blocked":
            mask = torch.ones(b, h, sq, sk, dtype=torch.bool)
            mask[0, 0, 1] = False
        ours_in = [t.clone().requires_grad_() for t in (q, k, v)]
        ref_in = [t.clone().requires_grad_() for t in (q, k, v)]
        with case(name, q=q, k=k, v=v, mask=mask):
            got = ns.scaled_dot_product_attention(*ours_in, mask, scale)
            qr, kr, vr = ref_in
            want = F.scaled_dot_product_attention(qr, kr, vr, attn_mask=mask, scale=scale)
            assert_close(got, want)
            w = randn(*want.shape, seed=90 + i, dtype=f64)
            (got * w).sum().backward()
            (want * w).sum().backward()  # type: ignore[no-untyped-call]
            for label, a, r in zip("qkv", ours_in, ref_in, strict=True):
                assert_close(a.grad, r.grad, what=f"gradient of {label}")


@check("scaled_dot_product_attention")
def sdpa_rejects_values_that_do_not_pair_with_keys(ns: Namespace) -> None:
    q = k = torch.zeros(1, 2, 3, 4)
    for shape in [(1, 2, 4, 4), (1, 1, 3, 4), (2, 2, 3, 4), (2, 3, 4)]:
        with case(f"v of shape {shape}, k of shape (1, 2, 3, 4)"):
            assert_raises(ns.scaled_dot_product_attention, q, k, torch.zeros(shape), exc=ShapeError)
