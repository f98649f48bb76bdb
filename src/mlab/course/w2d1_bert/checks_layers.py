"""Checks for part 2 of w2d1: GELU, dropout, embeddings, multi-head self-attention and the
encoder layer, each against its HuggingFace counterpart (transformers 5.24, random weights
with random LayerNorm parameters, eager attention), HF's weights copied in by the name table,
in float64: outputs and the gradients of a non-uniform loss for the input and every parameter,
on padded batches; dropout by its statistics. Also the helpers part 3's checks share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers.models.bert import modeling_bert

from mlab.course.engine.checks import Namespace, check
from mlab.errors import MismatchError, ShapeError
from mlab.models.bert import BertConfig, hf_bert_key
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
VOCAB = 30
KeyMap = Callable[[str], str | None]
Run = Callable[[Any], Tensor]
# transformers is untyped: its modules are Any here
hf_bert: Any = modeling_bert


def hf_config(
    heads: int = 2, hidden: int = 8, intermediate: int = 12, layers: int = 2, **kwargs: Any
) -> Any:
    """A small transformers BertConfig with eager attention and weights big enough
    (``initializer_range=0.3``) for attention to be far from uniform."""
    config = hf_bert.BertConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=10,
        type_vocab_size=3,
        initializer_range=0.3,
        num_labels=3,
        **kwargs,
    )
    config._attn_implementation = "eager"
    return config


def randomise(module: Any, seed: int) -> Any:
    """Every parameter random (LayerNorms around 1 and 0, the rest N(0, 0.3^2); HF's pad row
    stays zero as torch initialises it), in float64, eval mode."""
    g = generator(seed)
    module.double().eval()
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=f64) * 0.3
            p.copy_(noise + 1 if name.endswith("LayerNorm.weight") else noise)
    return module


def sub_key(hf_prefix: str, ours_prefix: str) -> KeyMap:
    """A name map for a piece of the model: HF's name relative to ``hf_prefix`` to ours
    relative to ``ours_prefix``, through the reference table; ``None`` for a tensor outside
    the piece (the LayerNorm after HF's attention output, which our attention lacks)."""

    def key(name: str) -> str | None:
        ours = hf_bert_key(hf_prefix + name)
        if ours is None or not ours.startswith(ours_prefix):
            return None
        return ours.removeprefix(ours_prefix)

    return key


def load_from_hf(ours: nn.Module, hf: nn.Module, key: KeyMap, what: str) -> None:
    """Copy HF's weights into ``ours`` with torch's strict ``load_state_dict``, after
    comparing the names (so a misnamed attribute is reported as such)."""
    mapped = {k2: v for k, v in hf.state_dict().items() if (k2 := key(k)) is not None}
    assert_equal(sorted(ours.state_dict()), sorted(mapped), what=f"{what}: state dict names")
    ours.double()
    try:
        ours.load_state_dict(mapped, strict=True)
    except RuntimeError as err:
        raise MismatchError(f"{what}: HuggingFace's weights do not fit: {err}") from None


def matches_hf(
    ours: nn.Module,
    hf: nn.Module,
    key: KeyMap,
    run_ours: Run,
    run_hf: Run,
    what: str,
    grad_input: Tensor | None = None,
    dropout: bool = True,
) -> Tensor:
    """Load HF's weights, compare the eval-mode outputs and every parameter's gradient (and
    ``grad_input``'s, a leaf both runs read, when given); then in train mode: two passes
    differ when the piece has ``dropout`` (else they equal the eval output); back in eval
    mode the output is the same again."""
    expect(isinstance(ours, nn.Module), f"{what} should be a torch.nn.Module, got {type(ours)}")
    load_from_hf(ours, hf, key, what)
    ours.eval()
    hf.eval()
    hf.zero_grad()
    out, ref = run_ours(ours), run_hf(hf)
    ours_input_grad = None
    assert_close(out, ref, what=f"{what} output (eval mode)")
    w = randn(*ref.shape, seed=99, dtype=f64)
    (out * w).sum().backward()  # type: ignore[no-untyped-call]
    if grad_input is not None:
        ours_input_grad = grad_input.grad
        grad_input.grad = None
    (ref * w).sum().backward()  # type: ignore[no-untyped-call]
    if grad_input is not None:
        assert_close(ours_input_grad, grad_input.grad, what="gradient of the input")
    params = dict(ours.named_parameters())
    for name, p in hf.named_parameters():
        ours_name = key(name)
        if ours_name is not None:
            assert_close(params[ours_name].grad, p.grad, what=f"gradient of {ours_name}")
    ours.zero_grad()
    ours.train()
    with torch.no_grad():
        first, second = run_ours(ours), run_ours(ours)
    if dropout:
        expect(
            not torch.equal(first, second),
            f"{what} in train mode gave the same output twice: is a dropout missing?",
        )
    else:
        assert_close(first, ref.detach(), what=f"{what} output in train mode (no dropout)")
    ours.eval()
    with torch.no_grad():
        assert_close(run_ours(ours), ref.detach(), what=f"{what} output, eval mode after train")
    return out


def padded(batch: int = 3, seq: int = 6, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """ids (pad id 0 at the padding, and once inside the text), token types, and a 0/1
    attention mask with 0, 2 and 4 padding positions."""
    g = generator(seed)
    ids = torch.randint(1, VOCAB, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    for row in range(1, batch):
        mask[row, seq - min(2 * row, seq - 1) :] = 0
    ids = ids * mask
    ids[0, 1] = 0
    types = torch.randint(0, 3, (batch, seq), generator=g)
    return ids, types, mask


def hf_additive(mask: Tensor) -> Tensor:
    """HF's eager 4-D additive mask from a 0/1 ``(batch, seq)`` mask."""
    return (1.0 - mask[:, None, None, :].to(f64)) * torch.finfo(f64).min


# ----------------------------------------------------------------------------------------------
# gelu


@check("gelu")
def gelu_matches_torch_erf_form(ns: Namespace) -> None:
    xs = [
        ("a 3-D tensor of values in [-6, 6]", randn(2, 3, 50, seed=1, dtype=f64) * 3),
        ("large magnitudes (-20, 20)", torch.tensor([-20.0, -8.0, 8.0, 20.0], dtype=f64)),
        ("a 0-d tensor", torch.tensor(0.7, dtype=f64)),
    ]
    for name, x in xs:
        before = x.clone()
        xo, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        with case(name, x=x):
            got = ns.gelu(xo)
            want = F.gelu(xr)
            assert_close(got, want)
            if want.ndim:
                w = randn(*want.shape, seed=2, dtype=f64)
                (got * w).sum().backward()
                (want * w).sum().backward()  # type: ignore[no-untyped-call]
                assert_close(xo.grad, xr.grad, what="gradient")
            assert_unchanged(x, before)
    x = torch.tensor([-1.5, -0.5, 1.0, 2.5], dtype=f64)
    with case("the tanh approximation is not BERT's GELU", x=x):
        got = ns.gelu(x)
        expect(
            not torch.allclose(got, F.gelu(x, approximate="tanh"), rtol=0, atol=1e-5),
            "these are the tanh approximation's values (GPT-2's); BERT uses the erf form",
        )


# ----------------------------------------------------------------------------------------------
# Dropout


@check("Dropout")
def dropout_statistics(ns: Namespace) -> None:
    x = torch.rand(400, 500, generator=generator(3), dtype=f64) + 0.5
    for p in (0.1, 0.5, 0.8):
        drop = ns.Dropout(p)
        expect(isinstance(drop, nn.Module), f"Dropout should be a torch.nn.Module: {type(drop)}")
        drop.train()
        xg = x.clone().requires_grad_()
        with case(f"Dropout({p}) in train mode on 200000 values in [0.5, 1.5]"):
            torch.manual_seed(0)
            y = drop(xg)
            dropped = float((y == 0).double().mean())
            expect(
                abs(dropped - p) < 0.01,
                f"expected a fraction {p} of zeros, got {dropped:.4f} (keep where rand >= p)",
            )
            kept = y != 0
            assert_close(y[kept], x[kept] / (1 - p), what="the kept values (scaled by 1/(1-p))")
            y.backward(torch.ones_like(y))
            assert_close(xg.grad, kept.to(f64) / (1 - p), what="gradient of x")
            expect(not torch.equal(drop(x), y), "two calls gave the same mask")
        with case(f"Dropout({p}) in eval mode"):
            drop.eval()
            assert_equal(drop(x), x, what="eval-mode output")


@check("Dropout")
def dropout_edges(ns: Namespace) -> None:
    x = randn(3, 4, seed=4, dtype=f64)
    with case("Dropout(0.0) in train mode", x=x):
        assert_equal(ns.Dropout(0.0).train()(x), x)
    with case("Dropout(1.0) in train mode: every element dropped", x=x):
        assert_equal(ns.Dropout(1.0).train()(x), torch.zeros_like(x))
    with case("the default p is 0.1"):
        assert_equal(ns.Dropout().p, 0.1, what="Dropout().p")
    for p in (-0.1, 1.5):
        with case(f"Dropout({p})"):
            assert_raises(ns.Dropout, p, exc=ValueError, match=str(p))


# ----------------------------------------------------------------------------------------------
# Embedding


@check("Embedding")
def embedding_matches_torch(ns: Namespace) -> None:
    for n, d, pad in [(7, 3, None), (9, 4, 2), (5, 2, 0)]:
        torch.manual_seed(n)
        emb = ns.Embedding(n, d, pad) if pad is not None else ns.Embedding(n, d)
        expect(isinstance(emb, nn.Module), f"Embedding should be a torch.nn.Module: {type(emb)}")
        with case(f"Embedding({n}, {d}, padding_idx={pad})"):
            for name, want in [("num_embeddings", n), ("embedding_dim", d), ("padding_idx", pad)]:
                assert_equal(getattr(emb, name, "missing"), want, what=f"attribute {name}")
            assert_equal(sorted(emb.state_dict()), ["weight"], what="state dict names")
            assert_equal(tuple(emb.weight.shape), (n, d), what="weight's shape")
            if pad is not None:
                assert_equal(emb.weight[pad], torch.zeros(d), what=f"row padding_idx={pad}")
        ref = nn.Embedding(n, d, padding_idx=pad).double()
        emb.double()
        with torch.no_grad():
            ref.weight.copy_(randn(n, d, seed=n, dtype=f64))
            emb.weight.copy_(ref.weight)
        for ids in [torch.tensor([[0, 1, 2], [2, 2, n - 1]]), torch.tensor([n - 1, 0, 1, 1])]:
            with case(f"Embedding({n}, {d}, padding_idx={pad}), ids of shape "
                      f"{tuple(ids.shape)}", ids=ids):  # fmt: skip
                got, want = emb(ids), ref(ids)
                assert_close(got, want)
                w = randn(*want.shape, seed=5, dtype=f64)
                (got * w).sum().backward()
                (want * w).sum().backward()
                assert_close(emb.weight.grad, ref.weight.grad, what="gradient of weight")
                emb.zero_grad()
                ref.zero_grad()


@check("Embedding")
def embedding_init_is_standard_normal(ns: Namespace) -> None:
    torch.manual_seed(0)
    w = ns.Embedding(500, 200).weight.detach()
    with case("Embedding(500, 200)'s weight"):
        mean, std = float(w.mean()), float(w.std())
        expect(
            abs(mean) < 0.01 and abs(std - 1) < 0.01,
            f"expected weights from N(0, 1) (torch.randn), got mean {mean:.4f}, std {std:.4f}",
        )


@check("Embedding")
def embedding_rejects_bad_ids(ns: Namespace) -> None:
    emb = ns.Embedding(6, 2)
    for bad in (6, -1, 100):
        ids = torch.tensor([[0, bad, 1]])
        with case(f"id {bad} in a table of 6 rows", ids=ids):
            assert_raises(emb, ids, exc=ValueError, match=str(bad))
    with case("float ids"):
        assert_raises(emb, torch.tensor([1.0, 2.0]), exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# BertEmbeddings


@check("BertEmbeddings")
def embeddings_match_hf(ns: Namespace) -> None:
    for i, with_types in enumerate((True, False)):
        config = hf_config(hidden=6)
        torch.manual_seed(i)
        hf = randomise(hf_bert.BertEmbeddings(config), seed=10 + i)
        ids, types, _ = padded(seed=20 + i)
        given = types if with_types else None
        with case(f"token_type_ids {'given' if with_types else 'left out'}", ids=ids):
            ours = ns.BertEmbeddings(BertConfig.from_hf(config))
            matches_hf(
                ours,
                hf,
                sub_key("embeddings.", "embeddings."),
                lambda m: m(ids, given),  # noqa: B023
                lambda m: m(input_ids=ids, token_type_ids=given),  # noqa: B023
                "BertEmbeddings",
            )
    config = hf_config(hidden=4)
    torch.manual_seed(2)
    hf = randomise(hf_bert.BertEmbeddings(config), seed=12)
    ids = torch.randint(0, VOCAB, (2, 10), generator=generator(13))
    with case("sequences of max_position_embeddings = 10 tokens", ids=ids):
        ours = ns.BertEmbeddings(BertConfig.from_hf(config))
        key = sub_key("embeddings.", "embeddings.")
        matches_hf(ours, hf, key, lambda m: m(ids), lambda m: m(input_ids=ids), "BertEmbeddings")


@check("BertEmbeddings")
def embeddings_reject_bad_input(ns: Namespace) -> None:
    ours = ns.BertEmbeddings(BertConfig.from_hf(hf_config(hidden=4)))
    too_long = torch.zeros(1, 11, dtype=torch.long)
    with case("11 tokens with max_position_embeddings=10"):
        assert_raises(ours, too_long, exc=ShapeError, match="10")
    with case("input_ids of shape (5,): no batch dim"):
        assert_raises(ours, torch.zeros(5, dtype=torch.long), exc=ShapeError)
    ids = torch.zeros(2, 4, dtype=torch.long)
    for shape in [(2, 3), (1, 4), (2, 4, 1)]:
        with case(f"token_type_ids of shape {shape} for input_ids of shape (2, 4)"):
            types = torch.zeros(shape, dtype=torch.long)
            assert_raises(ours, ids, types, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# MultiHeadSelfAttention


@check("MultiHeadSelfAttention")
def self_attention_matches_hf(ns: Namespace) -> None:
    for i, (heads, hidden) in enumerate([(1, 4), (2, 8), (4, 8)]):
        config = hf_config(heads=heads, hidden=hidden, attention_probs_dropout_prob=0.3)
        torch.manual_seed(i)
        hf = randomise(hf_bert.BertAttention(config), seed=30 + i)
        _, _, mask = padded(seed=31 + i)
        x = randn(3, 6, hidden, seed=32 + i, dtype=f64).requires_grad_()
        keep = mask.bool()[:, None, None, :]
        for kind, ours_mask in [("boolean", keep), ("additive", hf_additive(mask))]:
            x.grad = None
            with case(f"{heads} head(s), hidden {hidden}, a {kind} padding mask", x=x,
                      mask=mask):  # fmt: skip
                ours = ns.MultiHeadSelfAttention(hidden, heads, 0.3)
                matches_hf(
                    ours,
                    hf,
                    sub_key("encoder.layer.0.attention.", "layers.0.attention."),
                    lambda m: m(x, ours_mask),  # noqa: B023
                    lambda m: m.output.dense(m.self(x, attention_mask=hf_additive(mask))[0]),  # noqa: B023
                    "MultiHeadSelfAttention",
                    grad_input=x,
                )
    config = hf_config(heads=2, hidden=8)
    hf = randomise(hf_bert.BertAttention(config), seed=39)
    x = randn(2, 5, 8, seed=40, dtype=f64)
    with case("no mask, the default dropout 0.1", x=x):
        ours = ns.MultiHeadSelfAttention(8, 2)
        expect(ours.dropout.p == 0.1, f"the default dropout should be 0.1, got {ours.dropout.p}")
        matches_hf(
            ours,
            hf,
            sub_key("encoder.layer.0.attention.", "layers.0.attention."),
            lambda m: m(x),
            lambda m: m.output.dense(m.self(x)[0]),
            "MultiHeadSelfAttention",
        )


@check("MultiHeadSelfAttention")
def self_attention_rejects_indivisible_width(ns: Namespace) -> None:
    for hidden, heads in [(10, 4), (8, 0), (6, 12)]:
        with case(f"hidden_size={hidden}, num_heads={heads}"):
            assert_raises(ns.MultiHeadSelfAttention, hidden, heads, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# BertLayer


@check("BertLayer")
def layer_matches_hf(ns: Namespace) -> None:
    for i, (heads, hidden, inter) in enumerate([(2, 8, 12), (4, 8, 6), (1, 4, 16)]):
        config = hf_config(heads=heads, hidden=hidden, intermediate=inter)
        torch.manual_seed(i)
        hf = randomise(hf_bert.BertLayer(config), seed=50 + i)
        _, _, mask = padded(seed=51 + i)
        x = randn(3, 6, hidden, seed=52 + i, dtype=f64).requires_grad_()
        with case(f"{heads} head(s), hidden {hidden}, intermediate {inter}, padded batch",
                  x=x, mask=mask):  # fmt: skip
            ours = ns.BertLayer(BertConfig.from_hf(config))
            matches_hf(
                ours,
                hf,
                sub_key("encoder.layer.0.", "layers.0."),
                lambda m: m(x, mask.bool()[:, None, None, :]),  # noqa: B023
                lambda m: m(x, hf_additive(mask)),  # noqa: B023
                "BertLayer",
                grad_input=x,
            )
