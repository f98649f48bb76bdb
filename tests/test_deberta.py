"""DeBERTa against transformers 5.24's DebertaV2Model / DebertaV2ForMaskedLM (random init,
configs varying pos_att_type, position_buckets, share_att_key, relative_attention,
norm_rel_ebd, position_biased_input; padded batches), in float64: every hidden state, the
logits, every parameter's gradient, state dicts both ways; log buckets against HF's own
function; the enhanced mask decoder against HF's last layer driven with query states."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from torch import Tensor
from transformers.models.deberta_v2 import modeling_deberta_v2 as hf_deberta

from mlab.errors import DataError, ShapeError, StateDictError
from mlab.models.deberta import (
    DebertaConfig,
    DebertaForMaskedLM,
    DebertaModel,
    c2p_scores,
    deberta_attention_mask,
    enhanced_mask_decoder,
    hf_deberta_key,
    hf_state_dict,
    load_hf_deberta_state_dict,
    log_bucket_position,
    p2c_scores,
    relative_positions,
)
from mlab.models.deberta_figure import plot_deberta_attention
from mlab.testing import assert_close, generator, randn

f64 = torch.float64
VOCAB, MAX_POS = 40, 24
# HF computes the scale sqrt(d_head * factor) in float32 even in a float64 model: values
# differ from the exact float64 result by a few 1e-7 relative, 1e-5 after a few layers
TOL = {"rtol": 1e-4, "atol": 1e-5}

# name: DebertaV2Config keyword arguments beyond the sizes
CONFIGS: dict[str, dict[str, Any]] = {
    "c2p|p2c, buckets 4, layer-norm rel": dict(
        relative_attention=True, pos_att_type="p2c|c2p", position_buckets=4,
        norm_rel_ebd="layer_norm", position_biased_input=False, type_vocab_size=0,
    ),
    "c2p only, no buckets, max_relative 3": dict(
        relative_attention=True, pos_att_type=["c2p"], position_buckets=-1,
        max_relative_positions=3, type_vocab_size=2,
    ),
    "p2c only, shared keys, buckets 8": dict(
        relative_attention=True, pos_att_type=["p2c"], position_buckets=8, share_att_key=True,
        max_relative_positions=10,
    ),
    "both, shared keys, buckets 6": dict(
        relative_attention=True, pos_att_type=["c2p", "p2c"], position_buckets=6,
        share_att_key=True, norm_rel_ebd="layer_norm", type_vocab_size=3,
    ),
    "no relative attention": dict(relative_attention=False, pos_att_type=["c2p"]),
}  # fmt: skip


def hf_config(extra: dict[str, Any], heads: int = 2, layers: int = 2) -> Any:
    return transformers.DebertaV2Config(
        vocab_size=VOCAB,
        hidden_size=8,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=12,
        max_position_embeddings=MAX_POS,
        initializer_range=0.3,
        **{"position_buckets": -1, "type_vocab_size": 0, **extra},
    )


def randomise(model: Any, seed: int) -> Any:
    g = generator(seed)
    model.double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=f64) * 0.3
            p.copy_(noise + 1 if name.endswith("LayerNorm.weight") else noise)
    return model


def batch(seq: int = 20, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    g = generator(seed)
    ids = torch.randint(1, VOCAB, (3, seq), generator=g)
    mask = torch.ones(3, seq, dtype=torch.long)
    mask[1, -5:] = 0
    mask[2, 3:] = 0
    types = torch.randint(0, 2, (3, seq), generator=g)
    return ids * mask, types, mask


def built(name: str, mlm: bool) -> tuple[Any, Any]:
    config = hf_config(CONFIGS[name])
    torch.manual_seed(0)
    cls = transformers.DebertaV2ForMaskedLM if mlm else transformers.DebertaV2Model
    hf = randomise(cls(config), seed=len(name))
    ours = (DebertaForMaskedLM if mlm else DebertaModel)(DebertaConfig.from_hf(config))
    load_hf_deberta_state_dict(ours, hf.state_dict())
    return ours.double().eval(), hf


@pytest.mark.parametrize("name", list(CONFIGS))
def test_model_hidden_states_and_gradients_match_hf(name: str) -> None:
    ours, hf = built(name, mlm=False)
    ids, types, mask = batch(seed=len(name))
    types = types if hf.config.type_vocab_size else None
    got = ours.hidden_states(ids, mask, types)
    want = hf(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    assert len(got) == len(want.hidden_states) == 3
    for i, (g, w) in enumerate(zip(got, want.hidden_states, strict=True)):
        assert_close(g, w, what=f"hidden state {i}", **TOL)
    weights = randn(*got[-1].shape, seed=1, dtype=f64)
    (got[-1] * weights).sum().backward()
    (want.last_hidden_state * weights).sum().backward()
    ours_params = dict(ours.named_parameters())
    for hf_name, p in hf.named_parameters():
        key = hf_deberta_key(hf_name)
        assert key is not None
        assert_close(ours_params[key].grad, p.grad, what=f"gradient of {key}", **TOL)


@pytest.mark.parametrize("name", list(CONFIGS)[:3])
def test_masked_lm_logits_gradients_and_state_dicts_match_hf(name: str) -> None:
    ours, hf = built(name, mlm=True)
    ids, types, mask = batch(seq=9, seed=7)
    types = types if hf.config.type_vocab_size else None
    got, want = ours(ids, mask, types), hf(ids, attention_mask=mask, token_type_ids=types).logits
    assert_close(got, want, what="logits", **TOL)
    weights = randn(*got.shape, seed=2, dtype=f64)
    (got * weights).sum().backward()
    (want * weights).sum().backward()
    ours_params = dict(ours.named_parameters())
    for hf_name, p in hf.named_parameters():
        key = hf_deberta_key(hf_name)
        assert key is not None
        assert_close(ours_params[key].grad, p.grad, what=f"gradient of {key}", **TOL)
    # ours -> HF, strictly, into a fresh model: same logits
    fresh = transformers.DebertaV2ForMaskedLM(hf.config).double().eval()
    fresh.load_state_dict(hf_state_dict(ours), strict=True)
    assert_close(fresh(ids, attention_mask=mask, token_type_ids=types).logits, want.detach(), **TOL)
    assert sorted(hf_state_dict(ours)) == sorted(hf.state_dict())


def test_default_mask_train_mode_and_dropout() -> None:
    ours, hf = built("c2p|p2c, buckets 4, layer-norm rel", mlm=False)
    ids = torch.randint(1, VOCAB, (2, MAX_POS), generator=generator(3))
    assert_close(ours(ids), hf(ids).last_hidden_state, what="no attention mask, full length", **TOL)
    ours.train()
    with torch.no_grad():
        assert not torch.equal(ours(ids), ours(ids))


def test_enhanced_mask_decoder_matches_hf_last_layer_with_query_states() -> None:
    """HF's DebertaV2ForMaskedLM never runs the decoder (z_steps = 0); Microsoft's
    emd_context_layer runs the last layer twice with query_states. Compare with HF's layer."""
    config = hf_config(CONFIGS["c2p|p2c, buckets 4, layer-norm rel"], layers=3)
    torch.manual_seed(1)
    hf = randomise(transformers.DebertaV2ForMaskedLM(config), seed=5)
    ours = DebertaForMaskedLM(DebertaConfig.from_hf(config), enhanced_mask_decoder=True)
    state = {k: v for k, v in ours.state_dict().items() if k.startswith("emd_")}
    state |= {hf_deberta_key(k): v for k, v in hf.state_dict().items() if hf_deberta_key(k)}
    ours.load_state_dict(state)
    ours.double().eval()
    positions = randn(MAX_POS, 8, seed=6, dtype=f64)
    with torch.no_grad():
        ours.emd_positions.weight.copy_(positions)  # type: ignore[union-attr]
    ids, _, mask = batch(seq=10, seed=8)
    got = ours(ids, mask)
    encoder = hf.deberta.encoder
    states = hf.deberta(ids, attention_mask=mask, output_hidden_states=True).hidden_states
    hidden = states[-2]
    query = hidden + positions[:10]
    hf_mask = encoder.get_attention_mask(mask)
    rel_pos = encoder.get_rel_pos(hidden)
    for _ in range(2):
        query = encoder.layer[-1](
            hidden, hf_mask, query_states=query, relative_pos=rel_pos,
            rel_embeddings=encoder.get_rel_embedding(),
        )[0]  # fmt: skip
    want = hf.cls(query)
    assert_close(got, want, what="logits through the enhanced mask decoder", **TOL)
    assert not torch.allclose(got, hf(ids, attention_mask=mask).logits)
    with pytest.raises(StateDictError, match="emd_positions"):
        hf_state_dict(ours)


def test_enhanced_mask_decoder_function_and_errors() -> None:
    ours, _ = built("c2p only, no buckets, max_relative 3", mlm=False)
    x = randn(2, 5, 8, seed=9, dtype=f64)
    mask = deberta_attention_mask(torch.ones(2, 5, dtype=torch.long))
    rel_pos, rel = ours.relative_inputs(5)
    layer = ours.layers[-1]
    zero = torch.zeros_like(x)
    once = enhanced_mask_decoder(layer, x, zero, mask, rel_pos, rel, steps=1)
    assert_close(once, layer(x, mask, rel_pos, rel))
    with pytest.raises(ValueError, match="steps=0"):
        enhanced_mask_decoder(layer, x, zero, mask, rel_pos, rel, steps=0)
    config = DebertaConfig(vocab_size=5, hidden_size=4, num_hidden_layers=2, num_attention_heads=1)
    with pytest.raises(ValueError, match="position_biased_input"):
        DebertaForMaskedLM(config, enhanced_mask_decoder=True)


def test_log_buckets_match_hf_exhaustively() -> None:
    rel = torch.arange(-1500, 1501)
    for bucket in (2, 4, 5, 8, 64, 256):
        for max_pos in (bucket // 2 + 2, 24, 128, 512, 1024):
            if max_pos > bucket // 2 + 1:
                want = hf_deberta.make_log_bucket_position(rel, bucket, max_pos).long()
                assert torch.equal(log_bucket_position(rel, bucket, max_pos), want)
    for bucket, max_pos in [(1, 10), (8, 5)]:
        with pytest.raises(ValueError, match=f"bucket_size={bucket}"):
            log_bucket_position(rel, bucket, max_pos)


def test_relative_positions_match_hf() -> None:
    for q, k, b, m in [(5, 5, -1, -1), (7, 4, -1, -1), (30, 30, 8, 24), (3, 9, 4, 100)]:
        want = hf_deberta.build_relative_position(
            torch.zeros(q, 1), torch.zeros(k, 1), bucket_size=b, max_position=m
        )[0]
        assert torch.equal(relative_positions(q, k, b, m), want)


def test_c2p_p2c_shapes_are_checked() -> None:
    q = torch.zeros(1, 2, 4, 3)
    with pytest.raises(ShapeError, match="pos_k"):
        c2p_scores(q, torch.zeros(2, 5, 3), relative_positions(4, 4))
    with pytest.raises(ShapeError, match="relative_pos"):
        c2p_scores(q, torch.zeros(2, 6, 3), relative_positions(3, 4))
    with pytest.raises(ShapeError, match="pos_q"):
        p2c_scores(q, torch.zeros(3, 6, 3), relative_positions(4, 4))
    with pytest.raises(ShapeError, match="seq_k"):
        p2c_scores(q, torch.zeros(2, 6, 3), relative_positions(4, 5))


def test_config_and_loader_errors() -> None:
    with pytest.raises(ValueError, match="'c2q'"):
        DebertaConfig(pos_att_type=("c2q",))
    for name, value in [("hidden_act", "relu"), ("embedding_size", 4), ("legacy", False)]:
        with pytest.raises(ValueError, match=name):
            DebertaConfig.from_hf(hf_config({name: value}))
    with pytest.raises(DataError, match="conv"):
        hf_deberta_key("deberta.encoder.conv.conv.weight")
    ours, hf = built("no relative attention", mlm=False)
    state = copy.copy(hf.state_dict())
    del state["encoder.layer.0.output.dense.bias"]
    with pytest.raises(StateDictError, match=r"ffn_out\.bias"):
        load_hf_deberta_state_dict(ours, state)
    with pytest.raises(ShapeError):
        ours(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ShapeError, match="max_position_embeddings"):
        ours(torch.zeros(1, MAX_POS + 1, dtype=torch.long))


def test_teaching_figure_is_a_png(tmp_path: Path) -> None:
    path = plot_deberta_attention(tmp_path / "deberta.png", seq=16, buckets=4)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
