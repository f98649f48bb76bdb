"""BERT against transformers 5.24 (random-init BertModel, BertForMaskedLM and
BertForSequenceClassification, several configs, padded batches with token types) and the real
all-MiniLM-L6-v2 checkpoint; attention against torch's scaled_dot_product_attention."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import transformers
from torch import Tensor, nn

from mlab.errors import DataError, ShapeError, StateDictError
from mlab.models.bert import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    Dropout,
    Embedding,
    gelu,
    hf_bert_key,
    hf_state_dict,
    load_hf_bert_state_dict,
    load_minilm,
    minilm_dir,
    minilm_tokenizer,
    mlm_loss,
    sentence_embeddings,
)
from mlab.nn.attention import (
    attention_weights,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
)
from mlab.testing import assert_close, generator, randn

# (heads, hidden, intermediate, layers): one head, several, and BERT-base's 12 heads
CONFIGS = [(1, 8, 12, 1), (4, 16, 40, 2), (12, 24, 20, 2)]
VOCAB, MAX_POS = 40, 12
TOL = {"rtol": 1e-4, "atol": 2e-5}


def _hf_config(heads: int, hidden: int, intermediate: int, layers: int) -> Any:
    return transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=MAX_POS,
        type_vocab_size=3,
        initializer_range=0.3,  # BERT's 0.02 makes attention almost uniform: masks unseen
        num_labels=3,
    )


def _perturb(model: nn.Module, seed: int) -> nn.Module:
    """Fresh LayerNorms and the MLM bias are ones and zeros: make them random, so one in the
    wrong place shows."""
    g = generator(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("predictions.bias"):
                base = 1.0 if name.endswith("LayerNorm.weight") else 0.0
                p.copy_(base + 0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


def _batch(batch: int = 3, seq: int = 7, seed: int = 0) -> dict[str, Tensor]:
    """Token ids (some of them the pad id 0 inside real text too), token types, and an
    attention mask with a different amount of padding per row (none, 2, 4)."""
    g = generator(seed)
    ids = torch.randint(1, VOCAB, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    for row in range(1, batch):
        pad = min(2 * row, seq - 1)
        mask[row, seq - pad :] = 0
        ids[row, seq - pad :] = 0
    ids[0, 2] = 0  # a pad-id token that is attended to: its embedding row gets no gradient
    types = torch.randint(0, 3, (batch, seq), generator=g)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _compare_grads(ours: nn.Module, hf: nn.Module, tol: dict[str, float] = TOL) -> None:
    params = dict(ours.named_parameters())
    seen = set()
    for name, p in hf.named_parameters():
        key = hf_bert_key(name)
        assert key is not None, name
        seen.add(key)
        assert_close(params[key].grad, p.grad, what=f"grad of {key}", **tol)
    assert seen == set(params), set(params) ^ seen


# ----------------------------------------------------------------------------------------------
# attention


def test_attention_matches_torch_sdpa_with_both_mask_kinds() -> None:
    q, k = randn(2, 3, 5, 4, seed=1, dtype=torch.float64), randn(2, 3, 6, 4, seed=2).double()
    v = randn(2, 3, 6, 7, seed=3, dtype=torch.float64)
    g = generator(4)
    keep = torch.rand(2, 1, 5, 6, generator=g) > 0.4
    keep[..., 1] = True
    additive = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64)
    for mask in (None, keep, additive, torch.where(keep, 0.0, float("-inf")).double()):
        ours = scaled_dot_product_attention(q, k, v, mask)
        assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert_close(
        scaled_dot_product_attention(q, k, v, keep, scale=0.7),
        F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=0.7),
    )


def test_fully_masked_rows_give_zeros_and_finite_gradients() -> None:
    q = randn(1, 2, 3, 4, seed=5).requires_grad_()
    k, v = randn(1, 2, 3, 4, seed=6), randn(1, 2, 3, 4, seed=7)
    keep = torch.ones(1, 1, 3, 3, dtype=torch.bool)
    keep[0, 0, 1] = False  # query 1 may attend to nothing
    weights = attention_weights(q, k, keep)
    assert torch.equal(weights[0, :, 1], torch.zeros(2, 3))
    assert_close(weights.sum(-1)[0, :, [0, 2]], torch.ones(2, 2))
    out = scaled_dot_product_attention(q, k, v, torch.where(keep, 0.0, float("-inf")))
    assert torch.equal(out[0, :, 1], torch.zeros(2, 4))
    (out * randn(*out.shape, seed=8)).sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_heads_split_like_hf_view_transpose() -> None:
    x = randn(2, 5, 12, seed=9)
    assert_close(split_heads(x, 4), x.view(2, 5, 4, 3).transpose(1, 2))
    assert_close(merge_heads(split_heads(x, 4)), x)
    with pytest.raises(ShapeError, match="n_heads=5"):
        split_heads(x, 5)
    assert padding_mask(torch.tensor([[1, 0]])).tolist() == [[[[True, False]]]]


def test_attention_bad_shapes_name_the_shapes() -> None:
    q = torch.zeros(1, 2, 3, 4)
    with pytest.raises(ShapeError, match=r"\(1, 2, 3, 5\)"):
        attention_weights(q, torch.zeros(1, 2, 3, 5))
    with pytest.raises(ShapeError, match=r"\(1, 2, 4, 4\)"):
        scaled_dot_product_attention(q, q, torch.zeros(1, 2, 4, 4))
    with pytest.raises(ShapeError, match=r"\(2, 1, 1, 3\)"):
        attention_weights(q, q, torch.ones(2, 1, 1, 3, dtype=torch.bool))


# ----------------------------------------------------------------------------------------------
# parts


def test_gelu_dropout_embedding_match_torch() -> None:
    x = randn(1000, seed=10, dtype=torch.float64) * 4
    assert_close(gelu(x), F.gelu(x))
    emb = Embedding(7, 3, padding_idx=2)
    assert torch.equal(emb.weight[2], torch.zeros(3))
    ref = nn.Embedding(7, 3, padding_idx=2)
    ref.load_state_dict(emb.state_dict())
    ids = torch.tensor([[2, 0, 6], [2, 2, 1]])
    w = randn(2, 3, 3, seed=11)
    (emb(ids) * w).sum().backward()
    (ref(ids) * w).sum().backward()
    assert_close(emb.weight.grad, ref.weight.grad)
    with pytest.raises(ValueError, match=r"id 7 is out of range .* 7 rows"):
        emb(torch.tensor([7]))


def test_dropout_rate_scaling_and_eval() -> None:
    drop = Dropout(0.3)
    x = torch.full((200_000,), 2.0)
    torch.manual_seed(0)
    y = drop(x)
    zeros = (y == 0).double().mean().item()
    assert abs(zeros - 0.3) < 0.005, zeros
    assert_close(y[y != 0], torch.full_like(y[y != 0], 2.0 / 0.7))
    assert not torch.equal(drop(x), y)  # a fresh mask every call
    assert drop.eval()(x) is x
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))
    with pytest.raises(ValueError, match=r"p=1\.5"):
        Dropout(1.5)


# ----------------------------------------------------------------------------------------------
# whole models against HuggingFace


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: "heads{}-h{}-i{}-L{}".format(*c))
def hf_mlm(request: pytest.FixtureRequest) -> Any:
    torch.manual_seed(sum(request.param))
    return _perturb(transformers.BertForMaskedLM(_hf_config(*request.param)), seed=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_masked_lm_matches_hf_hidden_states_logits_loss_and_grads(
    hf_mlm: Any, dtype: torch.dtype
) -> None:
    """float32 to float32 tolerance, float64 (same weights) to 1e-10: every hidden state,
    the logits, the loss and every parameter's gradient."""
    config = BertConfig.from_hf(hf_mlm.config)
    ours = BertForMaskedLM(config).eval()
    load_hf_bert_state_dict(ours, hf_mlm.state_dict())
    hf = copy.deepcopy(hf_mlm).to(dtype)
    ours.to(dtype)
    tol = TOL if dtype == torch.float32 else {"rtol": 1e-9, "atol": 1e-10}
    batch = _batch()
    labels = torch.full_like(batch["input_ids"], -100)
    labels[0, 1], labels[1, 3], labels[2, 0] = 5, 17, 39
    hf_out = hf(**batch, labels=labels, output_hidden_states=True)
    states = ours.bert.hidden_states(**batch)
    assert len(states) == len(hf_out.hidden_states) == config.num_hidden_layers + 1
    for i, (got, want) in enumerate(zip(states, hf_out.hidden_states, strict=True)):
        assert_close(got, want, what=f"hidden state {i}", **tol)
    logits = ours(**batch)
    assert_close(logits, hf_out.logits, what="MLM logits", **tol)
    loss = mlm_loss(logits, labels)
    assert_close(loss, hf_out.loss, what="MLM loss", **tol)
    weights = randn(*logits.shape, seed=12, dtype=dtype)
    ((logits * weights).sum() + loss).backward()
    ((hf_out.logits * weights).sum() + hf_out.loss).backward()
    _compare_grads(ours, hf, tol if dtype == torch.float64 else {"rtol": 1e-3, "atol": 5e-5})


def test_base_model_and_pooler_match_hf(hf_mlm: Any) -> None:
    torch.manual_seed(3)
    hf = _perturb(transformers.BertModel(hf_mlm.config), seed=2)
    ours = BertModel(BertConfig.from_hf(hf.config)).eval()
    load_hf_bert_state_dict(ours, hf.state_dict())
    batch = _batch(seed=4)
    hf_out = hf(**batch)
    hidden = ours(**batch)
    assert_close(hidden, hf_out.last_hidden_state, **TOL)
    assert ours.pooler is not None
    pooled = ours.pooler(hidden)
    assert_close(pooled, hf_out.pooler_output, what="pooled output", **TOL)
    w = randn(*pooled.shape, seed=13)
    (pooled * w).sum().backward()
    (hf_out.pooler_output * w).sum().backward()
    _compare_grads(ours, hf)


def test_sequence_classification_matches_hf_and_round_trips(hf_mlm: Any) -> None:
    torch.manual_seed(5)
    hf = _perturb(transformers.BertForSequenceClassification(hf_mlm.config), seed=3)
    ours = BertForSequenceClassification(BertConfig.from_hf(hf.config)).eval()
    load_hf_bert_state_dict(ours, hf.state_dict())
    batch = _batch(seed=6)
    labels = torch.tensor([0, 2, 1])
    hf_out = hf(**batch, labels=labels)
    logits = ours(**batch)
    assert_close(logits, hf_out.logits, **TOL)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    hf_out.loss.backward()
    _compare_grads(ours, hf)
    # ours -> HF: a fresh model of ours loads into a fresh HF model, strictly
    torch.manual_seed(7)
    fresh = BertForSequenceClassification(BertConfig.from_hf(hf.config)).eval()
    hf2 = transformers.BertForSequenceClassification(hf.config).eval()
    hf2.load_state_dict(hf_state_dict(fresh), strict=True)
    assert_close(fresh(**batch), hf2(**batch).logits, **TOL)


def test_state_dicts_round_trip_both_ways_for_mlm(hf_mlm: Any) -> None:
    torch.manual_seed(8)
    ours = BertForMaskedLM(BertConfig.from_hf(hf_mlm.config)).eval()
    hf = transformers.BertForMaskedLM(hf_mlm.config).eval()
    sd = hf_state_dict(ours)
    assert sorted(sd) == sorted(hf.state_dict())
    hf.load_state_dict(sd, strict=True)
    batch = _batch(seed=9)
    assert_close(ours(**batch), hf(**batch).logits, **TOL)
    # the tie survives the trip: HF's decoder is its word embedding
    assert hf.cls.predictions.decoder.weight is hf.bert.embeddings.word_embeddings.weight


def test_train_mode_dropout_is_random_and_unbiased() -> None:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=MAX_POS,
        hidden_dropout_prob=0.5,
        attention_probs_dropout_prob=0.5,
    )
    model = BertModel(config)
    ids = torch.randint(0, VOCAB, (2, 5))
    model.train()
    a, b = model(ids), model(ids)
    assert not torch.allclose(a, b)
    drops = [m for m in model.modules() if isinstance(m, Dropout)]
    assert len(drops) == 3 and all(d.p == 0.5 for d in drops)
    model.eval()
    assert torch.equal(model(ids), model(ids))


# ----------------------------------------------------------------------------------------------
# bad input


def test_bad_input_names_the_value_and_the_fix() -> None:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=8,
        max_position_embeddings=6,
    )
    model = BertForMaskedLM(config).eval()
    with pytest.raises(ValueError, match=f"id {VOCAB} is out of range.*vocab"):
        model(torch.tensor([[1, VOCAB]]))
    with pytest.raises(ShapeError, match="7 tokens is longer than max_position_embeddings=6"):
        model(torch.ones(1, 7, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"attention_mask has shape \(1, 3\).*\(1, 4\)"):
        model(torch.ones(1, 4, dtype=torch.long), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ShapeError, match="token_type_ids"):
        model(torch.ones(1, 4, dtype=torch.long), None, torch.zeros(1, 3, dtype=torch.long))
    sd = hf_state_dict(model)
    del sd["bert.encoder.layer.0.output.dense.weight"]
    sd["bert.encoder.layer.0.output.dense.weigth"] = torch.zeros(1)
    with pytest.raises(StateDictError, match=r"unexpected keys \['bert.layers.0.ffn_out.weigth'"):
        load_hf_bert_state_dict(model, sd)
    del sd["bert.encoder.layer.0.output.dense.weigth"]
    sd["bert.encoder.layer.0.output.dens.weight"] = torch.zeros(1)
    with pytest.raises(DataError, match=r"output\.dens\.weight"):
        load_hf_bert_state_dict(model, sd)
    del sd["bert.encoder.layer.0.output.dens.weight"]
    with pytest.raises(StateDictError, match=r"missing keys \['bert.layers.0.ffn_out.weight'\]"):
        load_hf_bert_state_dict(model, sd)
    sd["bert.encoder.layer.0.output.dense.weight"] = torch.zeros(3, 3)
    with pytest.raises(StateDictError, match=r"bert.layers.0.ffn_out.weight: checkpoint \(3, 3\)"):
        load_hf_bert_state_dict(model, sd)
    with pytest.raises(ValueError, match="-100"):
        mlm_loss(torch.zeros(1, 2, 5), torch.full((1, 2), -100))


# ----------------------------------------------------------------------------------------------
# the real checkpoint


SENTENCES = [
    "To be, or not to be, that is the question.",
    "Now is the winter of our discontent made glorious summer by this sun of York.",
    "A horse! a horse! my kingdom for a horse!",
    "The quick brown fox jumps over the lazy dog.",
]


@pytest.fixture(scope="module")
def minilm() -> tuple[BertModel, Any, dict[str, Tensor]]:
    tokenizer = minilm_tokenizer()
    batch = dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))
    return load_minilm(), tokenizer, batch


def test_minilm_hidden_states_equal_hf(minilm: tuple[BertModel, Any, dict[str, Tensor]]) -> None:
    ours, _, batch = minilm
    hf = transformers.BertModel.from_pretrained(str(minilm_dir())).eval()
    assert int(batch["attention_mask"].sum(1).min()) < batch["input_ids"].shape[1]  # padded
    with torch.no_grad():
        want = hf(**batch, output_hidden_states=True)
        got = ours.hidden_states(**batch)
        real = batch["attention_mask"].bool()
        for i, (a, b) in enumerate(zip(got, want.hidden_states, strict=True)):
            # at real tokens to 1e-5 (measured: 5e-6); a padding position's state is used by
            # nothing, and float32 rounding differs more there (measured: 4e-5)
            assert_close(a[real], b[real], rtol=0, atol=1e-5, what=f"MiniLM hidden state {i}")
            assert_close(a, b, rtol=0, atol=1e-4, what=f"MiniLM hidden state {i}, padding")
        assert ours.pooler is not None
        assert_close(ours.pooler(got[-1]), want.pooler_output, rtol=0, atol=1e-5)


def test_minilm_sentence_embeddings_equal_sentence_transformers(
    minilm: tuple[BertModel, Any, dict[str, Tensor]],
) -> None:
    from sentence_transformers import SentenceTransformer  # the nlp extra pins it

    ours, _, batch = minilm
    st = SentenceTransformer(str(minilm_dir()), device="cpu")
    want = st.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True)
    with torch.no_grad():
        got = sentence_embeddings(ours(**batch), batch["attention_mask"])
    assert_close(got, want, rtol=0, atol=1e-5)
    similarity = got @ got.T
    assert_close(similarity.diagonal(), torch.ones(4), atol=1e-6, rtol=0)


def test_checkpoint_with_a_missing_key_is_refused() -> None:
    from safetensors.torch import load_file

    sd = load_file(str(minilm_dir() / "model.safetensors"))
    del sd["pooler.dense.bias"]
    config = BertConfig(hidden_size=384, num_hidden_layers=6, intermediate_size=1536)
    with pytest.raises(StateDictError, match=r"missing keys \['pooler.dense.bias'\]"):
        load_hf_bert_state_dict(BertModel(config), sd)
