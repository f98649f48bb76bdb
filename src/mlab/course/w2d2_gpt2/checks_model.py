"""Checks for part 2 of w2d2: attention, MLP, block, the stack, the loss and the LM head, each
against its transformers twin (``GPT2Attention``, ``GPT2MLP``, ``GPT2Block``, ``GPT2Model``,
``ForCausalLMLoss``, ``GPT2LMHeadModel``; random init, random LayerNorms and biases, eager
attention, float64) with HF's weights loaded by name: outputs, the key/value cache, the
gradients of a non-uniform loss with respect to the input and every parameter. Dropout is
checked where it is deterministic: at rate 1 everything is dropped."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from transformers import GPT2LMHeadModel as HFModel
from transformers import GPT2Model as HFBaseModel
from transformers.loss.loss_utils import ForCausalLMLoss
from transformers.masking_utils import causal_mask_function
from transformers.models.gpt2.modeling_gpt2 import GPT2MLP as HFMLP
from transformers.models.gpt2.modeling_gpt2 import GPT2Attention as HFAttention
from transformers.models.gpt2.modeling_gpt2 import GPT2Block as HFBlock

from mlab.course.engine.checks import Namespace, check
from mlab.course.w2d2_gpt2.hf_reference import (
    F64,
    additive,
    compare_grads,
    dropout_rates,
    hf_cache,
    hf_config,
    load_into,
    ours_config,
    randomise,
)
from mlab.errors import ShapeError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_raises,
    assert_unchanged,
    case,
    expect,
    generator,
    randint,
    randn,
)

SMALL = dict(vocab_size=23, n_positions=16, n_embd=12, n_layer=2, n_head=3)


def _causal(seq_q: int, seq_k: int) -> Tensor:
    """HF's causal rule as a boolean (seq_q, seq_k) mask, queries after seq_k - seq_q cached."""
    off = seq_k - seq_q
    rows = [[causal_mask_function(0, 0, i + off, j) for j in range(seq_k)] for i in range(seq_q)]
    return torch.tensor(rows, dtype=torch.bool).reshape(seq_q, seq_k)


def _right_padding(lengths: list[int], seq: int) -> Tensor:
    return torch.tensor([[1] * n + [0] * (seq - n) for n in lengths])


def _pasts(
    batch: int, heads: int, past: int, d_head: int, seed: int
) -> list[tuple[Tensor, Tensor]]:
    return [
        (
            randn(batch, heads, past, d_head, seed=seed, dtype=F64),
            randn(batch, heads, past, d_head, seed=seed + 1, dtype=F64),
        )
    ]


def _same_structure(ours: nn.Module, hf: nn.Module, what: str) -> None:
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    want = {k: tuple(v.shape) for k, v in hf.state_dict().items()}
    assert_equal(shapes, want, what=f"{what}: parameter names and shapes")
    assert_equal(dropout_rates(ours), dropout_rates(hf), what=f"{what}: dropout layers and rates")


def _first(out: Any) -> Tensor:
    """The output tensor of a module that may also return its cache or attention weights."""
    return out[0] if isinstance(out, tuple) else out  # type: ignore[no-any-return]


def _forward_backward(
    ours: nn.Module,
    hf: nn.Module,
    x: Tensor,
    what: str,
    ours_args: tuple[Any, ...] = (),
    **hf_kwargs: Any,
) -> Any:
    """Run ``ours(x, *ours_args)`` and ``hf(x, **hf_kwargs)`` on copies of ``x``, compare
    outputs, then the gradients of the input and of every parameter for a random weighting
    of the output. Returns whatever ours returned besides its output (its cache)."""
    xo, xh = x.clone().requires_grad_(), x.clone().requires_grad_()
    got = ours(xo, *ours_args)
    out, ref = _first(got), _first(hf(xh, **hf_kwargs))
    assert_close(out, ref, what=f"{what} output")
    w = randn(*ref.shape, seed=123, dtype=F64)
    (out * w).sum().backward()  # type: ignore[no-untyped-call]
    (ref * w).sum().backward()  # type: ignore[no-untyped-call]
    assert_close(xo.grad, xh.grad, rtol=1e-6, atol=1e-9, what="gradient of the input")
    compare_grads(ours, hf, what)
    ours.zero_grad()
    hf.zero_grad()
    return got[1] if isinstance(got, tuple) else None


# ----------------------------------------------------------------------------------------------
# GPT2Attention


def _attention_pair(ns: Namespace, seed: int, **cfg: object) -> tuple[Any, Any]:
    config = hf_config(**{**SMALL, **cfg})
    torch.manual_seed(seed)
    hf = randomise(HFAttention(config, layer_idx=0), seed).eval()  # type: ignore[no-untyped-call]
    ours = ns.GPT2Attention(ours_config(config))
    _same_structure(ours, hf, "GPT2Attention")
    load_into(ours, hf, "GPT2Attention")
    return ours.eval(), hf


@check("GPT2Attention")
def attention_matches_hf(ns: Namespace) -> None:
    cases = [
        ("causal mask, 3 heads of 4, batch 2, 5 positions", {}, 2, 5, None),
        ("causal + right padding (lengths 5, 3), 1 head of 12", {"n_head": 1}, 2, 5, [5, 3]),
        ("causal mask, 4 heads of 3, one position", {"n_head": 4}, 3, 1, None),
    ]
    for i, (name, cfg, batch, seq, lengths) in enumerate(cases):
        with case(name):
            ours, hf = _attention_pair(ns, i, **cfg)
            x = randn(batch, seq, 12, seed=10 + i, dtype=F64)
            mask = _causal(seq, seq)
            if lengths is not None:
                mask = mask & _right_padding(lengths, seq).bool()[:, None, None, :]
            hf_mask = additive(mask).expand(batch, 1, seq, seq)
            _forward_backward(ours, hf, x, "GPT2Attention", (mask,), attention_mask=hf_mask)


@check("GPT2Attention")
def attention_without_a_mask_attends_everywhere(ns: Namespace) -> None:
    with case("mask=None (as in a bidirectional use): HF's attention with no mask"):
        ours, hf = _attention_pair(ns, 5)
        x = randn(2, 4, 12, seed=5, dtype=F64)
        _forward_backward(ours, hf, x, "GPT2Attention")


@check("GPT2Attention")
def attention_extends_the_cache(ns: Namespace) -> None:
    for seq, past in [(1, 4), (3, 2)]:
        with case(f"{seq} new positions after {past} cached ones"):
            ours, hf = _attention_pair(ns, 7 + seq)
            config = hf_config(**SMALL)
            pasts = _pasts(2, 3, past, 4, seed=20 + seq)
            cache = hf_cache(pasts, config)
            x = randn(2, seq, 12, seed=30 + seq, dtype=F64)
            mask = _causal(seq, past + seq)
            hf_mask = additive(mask).expand(2, 1, seq, past + seq)
            present = _forward_backward(
                ours, hf, x, "GPT2Attention", (mask, pasts[0]), cache=cache, attention_mask=hf_mask
            )
            expect(
                isinstance(present, tuple) and len(present) == 2,
                f"the second output should be the (keys, values) pair, got {type(present)}",
            )
            layer = cache.layers[0]
            assert_close(present[0], layer.keys, what="the new cache's keys (past + new)")
            assert_close(present[1], layer.values, what="the new cache's values (past + new)")
    with case("no cache: the second output is this call's keys and values"):
        ours, hf = _attention_pair(ns, 3)
        config = hf_config(**SMALL)
        cache = hf_cache([], config)
        x = randn(1, 3, 12, seed=3, dtype=F64)
        _, present = ours(x, _causal(3, 3))
        hf(x, cache=cache, attention_mask=additive(_causal(3, 3)).expand(1, 1, 3, 3))
        assert_close(present[0], cache.layers[0].keys, what="keys")
        assert_close(present[1], cache.layers[0].values, what="values")


@check("GPT2Attention")
def attention_dropout_is_where_hf_has_it(ns: Namespace) -> None:
    x = randn(2, 3, 12, seed=40, dtype=F64)
    mask = _causal(3, 3)
    for which in ("attn_pdrop", "resid_pdrop"):
        with case(f"training mode with {which}=1.0 (everything it covers is dropped)"):
            ours, hf = _attention_pair(ns, 41, **{which: 1.0})
            ours.train()
            hf.train()
            out, _ = ours(x, mask)
            ref = hf(x, attention_mask=additive(mask).expand(2, 1, 3, 3))[0]
            assert_close(out, ref, what=f"output with {which}=1")


# ----------------------------------------------------------------------------------------------
# GPT2MLP


@check("GPT2MLP")
def mlp_matches_hf(ns: Namespace) -> None:
    for i, cfg in enumerate([{}, {"n_inner": 7}, {"n_embd": 6, "n_head": 2}]):
        config = hf_config(**{**SMALL, **cfg})
        inner = config.n_inner or 4 * config.n_embd
        with case(f"n_embd={config.n_embd}, n_inner={config.n_inner} (hidden width {inner})"):
            torch.manual_seed(i)
            hf = randomise(HFMLP(inner, config), 50 + i).eval()  # type: ignore[no-untyped-call]
            ours = ns.GPT2MLP(ours_config(config))
            _same_structure(ours, hf, "GPT2MLP")
            load_into(ours, hf, "GPT2MLP")
            ours.eval()
            x = randn(2, 3, config.n_embd, seed=60 + i, dtype=F64) * 2
            _forward_backward(ours, hf, x, "GPT2MLP")
    config = hf_config(**SMALL, resid_pdrop=1.0)
    with case("training mode with resid_pdrop=1.0: the output is dropped"):
        ours = ns.GPT2MLP(ours_config(config)).double().train()
        assert_close(ours(randn(2, 3, 12, seed=7, dtype=F64)), torch.zeros(2, 3, 12, dtype=F64))


# ----------------------------------------------------------------------------------------------
# GPT2Block


def _block_pair(ns: Namespace, seed: int, **cfg: object) -> tuple[Any, Any]:
    config = hf_config(**{**SMALL, **cfg})
    torch.manual_seed(seed)
    hf = randomise(HFBlock(config, layer_idx=0), seed).eval()  # type: ignore[no-untyped-call]
    ours = ns.GPT2Block(ours_config(config))
    _same_structure(ours, hf, "GPT2Block")
    load_into(ours, hf, "GPT2Block")
    return ours.eval(), hf


@check("GPT2Block")
def block_matches_hf(ns: Namespace) -> None:
    cases: list[tuple[str, dict[str, Any], list[int] | None]] = [
        ("causal mask, layer_norm_epsilon=1e-5", {}, None),
        ("causal + right padding, layer_norm_epsilon=0.5", {"layer_norm_epsilon": 0.5}, [4, 2]),
        ("n_inner=5, 2 heads of 6", {"n_inner": 5, "n_head": 2}, None),
    ]
    for i, (name, cfg, lengths) in enumerate(cases):
        with case(name):
            ours, hf = _block_pair(ns, 70 + i, **cfg)
            x = randn(2, 4, 12, seed=80 + i, dtype=F64) * 3
            mask = _causal(4, 4)
            if lengths is not None:
                mask = mask & _right_padding(lengths, 4).bool()[:, None, None, :]
            hf_mask = additive(mask).expand(2, 1, 4, 4)
            _forward_backward(ours, hf, x, "GPT2Block", (mask,), attention_mask=hf_mask)


@check("GPT2Block")
def block_extends_the_cache(ns: Namespace) -> None:
    with case("2 new positions after 3 cached, layer_norm_epsilon=0.1"):
        ours, hf = _block_pair(ns, 90, layer_norm_epsilon=0.1)
        pasts = _pasts(2, 3, 3, 4, seed=91)
        cache = hf_cache(pasts, hf_config(**SMALL))
        x = randn(2, 2, 12, seed=92, dtype=F64)
        mask = _causal(2, 5)
        hf_mask = additive(mask).expand(2, 1, 2, 5)
        present = _forward_backward(
            ours, hf, x, "GPT2Block", (mask, pasts[0]), cache=cache, attention_mask=hf_mask
        )
        assert_close(present[0], cache.layers[0].keys, what="the new cache's keys")
        assert_close(present[1], cache.layers[0].values, what="the new cache's values")


# ----------------------------------------------------------------------------------------------
# GPT2Model


def _model_pair(ns: Namespace, seed: int, **cfg: object) -> tuple[Any, Any]:
    config = hf_config(**{**SMALL, **cfg})
    torch.manual_seed(seed)
    hf = randomise(HFBaseModel(config), seed).eval()
    ours = ns.GPT2Model(ours_config(config))
    _same_structure(ours, hf, "GPT2Model")
    load_into(ours, hf, "GPT2Model")
    return ours.eval(), hf


def _generate_positions(mask: Tensor) -> Tensor:
    positions = mask.long().cumsum(-1) - 1  # transformers' generate, written out
    return positions.masked_fill(mask == 0, 0)


def _compare_caches(got: Any, want: Any, n_layer: int, real: Tensor | None = None) -> None:
    """Our tuple cache against HF's DynamicCache; only at the ``real`` positions when given
    (beyond layer 0, a padding position's keys come from a query with nothing to attend to,
    where HF averages every value and w2d1's attention gives zeros)."""
    expect(
        isinstance(got, tuple) and len(got) == n_layer,
        f"the cache should be a tuple of one (keys, values) pair per layer ({n_layer}), "
        f"got {type(got).__name__}",
    )
    for i, (k, v) in enumerate(got):
        keys, values = want.layers[i].keys, want.layers[i].values
        if real is not None:  # (batch, heads, seq, d) -> (real positions, heads, d)
            k, v = k.transpose(1, 2)[real], v.transpose(1, 2)[real]
            keys, values = keys.transpose(1, 2)[real], values.transpose(1, 2)[real]
        assert_close(k, keys, what=f"cached keys of layer {i}")
        assert_close(v, values, what=f"cached values of layer {i}")


@check("GPT2Model")
def model_matches_hf(ns: Namespace) -> None:
    cases = [
        ("2 layers, 3 heads, 7 tokens", {}, (2, 7)),
        (
            "3 layers, 1 head, n_inner=9, eps=0.2, the longest sequence (16)",
            {"n_layer": 3, "n_head": 1, "n_inner": 9, "layer_norm_epsilon": 0.2},
            (1, 16),
        ),
    ]
    for i, (name, cfg, shape) in enumerate(cases):
        ids = randint(0, 23, *shape, seed=100 + i)
        with case(name, input_ids=ids):
            ours, hf = _model_pair(ns, 100 + i, **cfg)
            hidden, cache = ours(ids)
            ref = hf(ids, use_cache=True)
            assert_close(hidden, ref.last_hidden_state, what="hidden states")
            _compare_caches(cache, ref.cache, hf.config.n_layer)
            w = randn(*hidden.shape, seed=7, dtype=F64)
            (hidden * w).sum().backward()
            (ref.last_hidden_state * w).sum().backward()
            compare_grads(ours, hf, "GPT2Model")


@check("GPT2Model")
def model_follows_left_padding(ns: Namespace) -> None:
    ids = randint(0, 23, 3, 6, seed=110)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1]])
    real = mask.bool()
    with case(
        "left padding by 2, 0 and 5 (positions from the mask)", input_ids=ids, attention_mask=mask
    ):
        ours, hf = _model_pair(ns, 110)
        hidden, _ = ours(ids, attention_mask=mask)
        ref = hf(ids, attention_mask=mask, position_ids=_generate_positions(mask))
        assert_close(hidden[real], ref.last_hidden_state[real], what="hidden states at real tokens")
        expect(bool(torch.isfinite(hidden).all()), "hidden states at padding should be finite")
    positions = torch.tensor([[3, 4, 5, 6, 7, 8]]).expand(3, 6)
    with case("explicit position_ids 3..8 win over the mask's", position_ids=positions):
        hidden, _ = ours(ids, attention_mask=mask, position_ids=positions)
        ref = hf(ids, attention_mask=mask, position_ids=positions)
        assert_close(hidden[real], ref.last_hidden_state[real], what="hidden states at real tokens")
    with case("explicit position_ids 3..8 without a mask", position_ids=positions):
        hidden, _ = ours(ids, position_ids=positions)
        assert_close(hidden, hf(ids, position_ids=positions).last_hidden_state)


@check("GPT2Model")
def model_continues_from_a_cache(ns: Namespace) -> None:
    ids = randint(0, 23, 2, 9, seed=120)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, :2] = 0
    real = mask.bool()
    with case("6 tokens (row 1 left-padded by 2), then 3 more one call at a time"):
        ours, hf = _model_pair(ns, 120)
        positions = _generate_positions(mask)
        full = hf(ids, attention_mask=mask, position_ids=positions, use_cache=True)
        hidden, cache = ours(ids[:, :6], attention_mask=mask[:, :6])
        pieces = [hidden]
        for t in range(6, 9):
            hidden, cache = ours(ids[:, t : t + 1], cache, mask[:, : t + 1])
            pieces.append(hidden)
        got = torch.cat(pieces, 1)
        assert_close(got[real], full.last_hidden_state[real], what="hidden states (cached)")
        _compare_caches(cache, full.cache, 2, real)
    with case("2 tokens after 5, no mask: positions continue at 5"):
        hidden, cache = ours(ids[:1, :5])
        hidden, cache = ours(ids[:1, 5:7], cache)
        ref = hf(ids[:1, :7]).last_hidden_state[:, 5:]
        assert_close(hidden, ref, what="hidden states of the new tokens")


@check("GPT2Model")
def model_embedding_dropout_is_there(ns: Namespace) -> None:
    ids = randint(0, 23, 1, 4, seed=130)
    with case("training mode with embd_pdrop=1.0: the blocks see zeros", input_ids=ids):
        ours, hf = _model_pair(ns, 130, embd_pdrop=1.0)
        ours.train()
        hf.train()
        assert_close(ours(ids)[0], hf(ids).last_hidden_state, what="hidden states")


@check("GPT2Model")
def model_rejects_bad_input(ns: Namespace) -> None:
    config = ours_config(hf_config(**SMALL))
    model = ns.GPT2Model(config)
    ok = torch.zeros(1, 10, dtype=torch.long)
    _, cache = model(ok)
    bad = [
        (
            "17 tokens with n_positions=16",
            (torch.zeros(1, 17, dtype=torch.long),),
            {},
            ShapeError,
            "16",
        ),
        (
            "7 new tokens after 10 cached (17 > 16)",
            (torch.zeros(1, 7, dtype=torch.long), cache),
            {},
            ShapeError,
            "16",
        ),
        ("token id 25 with vocab_size=23", (torch.tensor([[1, 25]]),), {}, ValueError, "25"),
        ("token id 23 with vocab_size=23", (torch.tensor([[1, 23]]),), {}, ValueError, "23"),
        ("token id -1 after a 0", (torch.tensor([[0, -1, 2]]),), {}, ValueError, "-1"),
        (
            "attention_mask of 2 columns for 3 tokens",
            (torch.zeros(1, 3, dtype=torch.long),),
            {"attention_mask": torch.ones(1, 2, dtype=torch.long)},
            ShapeError,
            "(1, 3)",
        ),
        (
            "attention_mask without the 10 cached columns",
            (torch.zeros(1, 1, dtype=torch.long), cache),
            {"attention_mask": torch.ones(1, 1, dtype=torch.long)},
            ShapeError,
            "(1, 11)",
        ),
    ]
    for name, args, kwargs, exc, word in bad:
        with case(name):
            err = assert_raises(lambda: model(*args, **kwargs), exc=exc)  # noqa: B023
            expect(word in str(err), f"the message should name {word!r}: {err}")
    with case("exactly n_positions=16 tokens (6 after 10 cached) is fine"):
        hidden, _ = model(torch.zeros(1, 6, dtype=torch.long), cache)
        assert_equal(tuple(hidden.shape), (1, 6, 12), what="shape")


# ----------------------------------------------------------------------------------------------
# causal_lm_loss


@check("causal_lm_loss")
def loss_matches_hf(ns: Namespace) -> None:
    cases = [
        ("batch 2, 5 positions, no ignored labels", (2, 5, 7), [], None, F64),
        ("a prompt of 2 tokens set to -100", (2, 5, 7), [(0, 0), (0, 1), (1, 0)], None, F64),
        ("num_items_in_batch=11 (gradient accumulation)", (2, 6, 4), [(1, 5)], 11, F64),
        (
            "num_items_in_batch as a tensor, float32 logits",
            (3, 4, 5),
            [],
            torch.tensor(20),
            torch.float32,
        ),
        ("a single sequence of 2 tokens", (1, 2, 3), [], None, F64),
        ("bfloat16 logits (the loss is computed in float32)", (2, 3, 6), [], None, torch.bfloat16),
    ]
    for i, (name, shape, ignored, items, dtype) in enumerate(cases):
        logits = randn(*shape, seed=140 + i, dtype=dtype) * 2
        labels = randint(0, shape[-1], *shape[:2], seed=150 + i)
        for row, col in ignored:
            labels[row, col] = -100
        with case(name, logits=logits, labels=labels):
            lo, lh = logits.clone().requires_grad_(), logits.clone().requires_grad_()
            kept = labels.clone()
            got = ns.causal_lm_loss(lo, labels, items)
            assert_unchanged(labels, kept)
            want = ForCausalLMLoss(lh, labels, shape[-1], num_items_in_batch=items)  # type: ignore[arg-type]
            want_dtype = F64 if dtype == F64 else torch.float32
            expect(
                got.dtype == want_dtype,
                f"the loss of {dtype} logits should be {want_dtype} (float32 at least, so "
                f"half-precision logits lose nothing), got {got.dtype}",
            )
            assert_close(got, want.to(got.dtype), rtol=1e-6, atol=1e-7, what="loss")
            got.backward()
            want.backward()  # type: ignore[no-untyped-call]
            want_grad = lh.grad.to(dtype)  # type: ignore[union-attr]
            tol = 1e-2 if dtype == torch.bfloat16 else 1e-5
            assert_close(lo.grad, want_grad, rtol=tol, atol=1e-7, what="gradient of logits")


@check("causal_lm_loss")
def loss_rejects_mismatched_labels(ns: Namespace) -> None:
    logits = randn(2, 5, 7, seed=1)
    for shape in [(2, 4), (5, 2), (10,)]:
        labels = torch.zeros(shape, dtype=torch.long)
        with case(f"logits (2, 5, 7), labels of shape {shape}", labels=labels):
            assert_raises(ns.causal_lm_loss, logits, labels, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# GPT2LMHeadModel


def _lm_pair(ns: Namespace, seed: int, **cfg: object) -> tuple[Any, Any]:
    config = hf_config(**{**SMALL, **cfg})
    torch.manual_seed(seed)
    hf = randomise(HFModel(config), seed).eval()
    ours = ns.GPT2LMHeadModel(ours_config(config))
    _same_structure(ours, hf, "GPT2LMHeadModel")
    load_into(ours, hf, "GPT2LMHeadModel")
    return ours.eval(), hf


@check("GPT2LMHeadModel")
def lm_matches_hf(ns: Namespace) -> None:
    ids = randint(0, 23, 2, 8, seed=160)
    labels = ids.clone()
    labels[0, :3] = -100
    with case("logits, loss with a prompt masked by -100, every gradient", input_ids=ids):
        ours, hf = _lm_pair(ns, 160)
        expect(
            ours.lm_head.weight is ours.transformer.wte.weight,
            "lm_head.weight should be the very tensor transformer.wte.weight (tied), not a copy",
        )
        assert_equal(repr(ours.lm_head), repr(hf.lm_head), what="lm_head")
        out = ours(input_ids=ids, labels=labels, use_cache=False)
        ref = hf(input_ids=ids, labels=labels)
        expect(isinstance(out, dict), f"forward should return a CausalLMOutput, got {type(out)}")
        assert_equal(list(out), ["loss", "logits"], what="the output's keys")
        assert_close(out.logits, ref.logits, what="logits")
        assert_close(out.loss, ref.loss.double(), rtol=1e-6, atol=1e-7, what="loss")
        w = randn(*ref.logits.shape, seed=161, dtype=F64)
        (out.loss + (out.logits * w).sum()).backward()
        (ref.loss + (ref.logits * w).sum()).backward()
        compare_grads(ours, hf, "GPT2LMHeadModel")


@check("GPT2LMHeadModel")
def lm_takes_what_trainer_and_samplers_pass(ns: Namespace) -> None:
    ids = randint(0, 23, 2, 6, seed=170)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    labels = ids.masked_fill(mask == 0, -100)  # as HF's data collators pad labels
    with case("right padding, labels -100 there, num_items_in_batch=7 (as Trainer passes)"):
        ours, hf = _lm_pair(ns, 170)
        out = ours(input_ids=ids, attention_mask=mask, labels=labels, num_items_in_batch=7)
        ref = hf(input_ids=ids, attention_mask=mask, labels=labels, num_items_in_batch=7)
        real = mask.bool()
        assert_close(out.logits[real], ref.logits[real], what="logits at real tokens")
        assert_close(out.loss, ref.loss.double(), rtol=1e-6, atol=1e-7, what="loss")
    with case("use_cache: config.use_cache (True) by default, then False, then a cache in"):
        out = ours(ids)
        expect("past_key_values" in out, "with use_cache=None the config's True should hold")
        expect(len(out.past_key_values) == 2, "one (keys, values) pair per layer")
        expect("past_key_values" not in ours(ids, use_cache=False), "use_cache=False: no cache")
        ours.config.use_cache = False
        expect("past_key_values" not in ours(ids), "config.use_cache=False: no cache")
        first = ours(ids[:, :4], use_cache=True)
        nxt = ours(ids[:, 4:], past_key_values=first.past_key_values, use_cache=True)
        assert_close(nxt.logits, hf(ids).logits[:, 4:], what="logits after the cache")
        assert_close(
            nxt.past_key_values[1][0],
            hf(ids, use_cache=True).cache.layers[1].keys,
            what="the cache's keys of layer 1",
        )


@check("GPT2LMHeadModel")
def lm_initialises_like_hf(ns: Namespace) -> None:
    cfg = dict(vocab_size=300, n_positions=64, n_embd=64, n_layer=8, n_head=4)
    config = hf_config(**cfg, initializer_range=0.05)
    with case("n_embd=64, n_layer=8, initializer_range=0.05"):
        torch.manual_seed(0)
        hf = HFModel(config)
        ours = ns.GPT2LMHeadModel(ours_config(config))
        mine = dict(ours.named_parameters())
        for name, p in hf.named_parameters():
            got, want = mine[name], p.detach()
            if want.std() == 0:
                assert_close(got.detach(), want, what=f"initial {name}")
                continue
            ratio = got.std().item() / want.std().item()
            expect(
                abs(ratio - 1) < 0.15 and abs(got.mean().item()) < 0.01,
                f"initial {name}: mean {got.mean().item():.3g}, std {got.std().item():.3g}; "
                f"HuggingFace's has std {want.std().item():.3g}",
            )
        assert_equal(ours.num_parameters(), hf.num_parameters(), what="num_parameters()")
        assert_equal(
            ours.num_parameters(exclude_embeddings=True),
            hf.num_parameters(exclude_embeddings=True),
            what="num_parameters(exclude_embeddings=True)",
        )
        ours.transformer.wpe.weight.requires_grad_(False)
        assert_equal(
            ours.num_parameters(only_trainable=True),
            hf.num_parameters() - 64 * 64,
            what="num_parameters(only_trainable=True) with wpe frozen",
        )
    with case("reset_parameters(generator) after training moved every parameter"):
        with torch.no_grad():
            for p in ours.parameters():
                p.fill_(5.0)
        ours.reset_parameters(generator(3))
        for name, p in ours.named_parameters():
            if name.endswith("bias"):
                assert_close(p.detach(), torch.zeros_like(p), what=f"{name} after reset")
            elif ".ln_" in name:
                assert_close(p.detach(), torch.ones_like(p), what=f"{name} after reset")
            else:
                expect(bool(p.std() > 0), f"{name} should be drawn again, got a constant")
    with case("reset_parameters(generator) twice with the same seed"):
        first = {k: v.clone() for k, v in ours.state_dict().items()}
        ours.reset_parameters(generator(3))
        assert_close(ours.state_dict(), first, what="parameters")
