"""GPT-2 against transformers' GPT2LMHeadModel (random init, several configs): logits, loss,
every gradient, left padding, the key/value cache, state dicts both ways, the save_pretrained
format, bad input, and a drop-in run in transformers.Trainer."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file
from torch import Tensor
from transformers import GPT2Config as HFConfig
from transformers import GPT2LMHeadModel as HFModel
from transformers import GPT2Model as HFBaseModel
from transformers.activations import NewGELUActivation
from transformers.cache_utils import DynamicCache
from transformers.pytorch_utils import Conv1D as HFConv1D

from mlab.errors import ConfigError, DataError, ShapeError, StateDictError
from mlab.models.gpt2 import (
    CausalLMOutput,
    Conv1D,
    GPT2Config,
    GPT2LMHeadModel,
    causal_mask,
    gelu_new,
    position_ids_from_mask,
)
from mlab.models.gpt2_checkpoint import (
    from_pretrained,
    hf_gpt2_key,
    load_hf_state_dict,
    save_pretrained,
)
from mlab.testing import assert_close, generator, randn

f64 = torch.float64
transformers.logging.set_verbosity_error()

CONFIGS: dict[str, dict[str, Any]] = {
    "2 layers, 3 heads of 8": dict(vocab_size=50, n_positions=20, n_embd=24, n_layer=2, n_head=3),
    "3 layers, 1 head, n_inner=20, eps=1e-3": dict(
        vocab_size=31,
        n_positions=16,
        n_embd=12,
        n_layer=3,
        n_head=1,
        n_inner=20,
        layer_norm_epsilon=1e-3,
    ),
    "1 layer, 4 heads of 2": dict(vocab_size=17, n_positions=12, n_embd=8, n_layer=1, n_head=4),
}
NO_DROPOUT = dict(embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)


def _hf(cfg: dict[str, Any], seed: int = 0, eager: bool = False) -> HFModel:
    torch.manual_seed(seed)
    config = HFConfig(**cfg, **NO_DROPOUT)
    if eager:
        config._attn_implementation = "eager"
    model = HFModel(config).double().eval()
    with torch.no_grad():  # LayerNorms start as the identity: make them matter
        g = generator(seed + 1)
        for name, p in model.named_parameters():
            if ".ln_" in name:
                p.copy_(torch.randn(p.shape, generator=g, dtype=f64) * 0.3 + (name[-1] == "t"))
    return model


def _ours(hf: HFModel) -> GPT2LMHeadModel:
    model = GPT2LMHeadModel(GPT2Config.from_hf(hf.config)).double().eval()
    model.load_state_dict(hf.state_dict())
    return model


def _ids(cfg: dict[str, Any], *shape: int, seed: int) -> Tensor:
    return torch.randint(0, cfg["vocab_size"], shape, generator=generator(seed))


def _generate_positions(mask: Tensor) -> Tensor:
    """The position ids transformers' generate gives a padded batch (GPT2Model itself
    counts from 0 at the first column, padding included)."""
    hf = HFModel(HFConfig(vocab_size=2, n_positions=2, n_embd=2, n_layer=1, n_head=1))
    return hf._prepare_position_ids_for_generation(mask, {"attention_mask": mask})  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------------------------
# Parts


def test_gelu_new_matches_hf_and_torch_tanh_gelu() -> None:
    x = randn(1000, seed=0, dtype=f64) * 4
    assert_close(gelu_new(x), NewGELUActivation()(x))
    assert_close(gelu_new(x), torch.nn.functional.gelu(x, approximate="tanh"))
    assert (gelu_new(x) - torch.nn.functional.gelu(x)).abs().max() > 1e-5  # not the exact GELU


def test_conv1d_matches_hf_layout_and_values() -> None:
    torch.manual_seed(0)
    hf = HFConv1D(7, 5).double()
    ours = Conv1D(7, 5).double()
    assert ours.weight.shape == hf.weight.shape == (5, 7)
    ours.load_state_dict(hf.state_dict())
    x = randn(2, 3, 5, seed=1, dtype=f64)
    assert_close(ours(x), hf(x))
    assert_close(ours(x[0, 0]), hf(x[0, 0]))
    with pytest.raises(ShapeError, match="nx=5"):
        ours(randn(2, 7, seed=2, dtype=f64))
    torch.manual_seed(3)
    w = Conv1D(200, 300).weight
    assert abs(w.std().item() - 0.02) < 1e-3 and abs(w.mean().item()) < 1e-3


def test_causal_mask_and_positions() -> None:
    assert torch.equal(causal_mask(4, 4), torch.ones(4, 4, dtype=torch.bool).tril())
    assert causal_mask(1, 5).all()
    with pytest.raises(ShapeError):
        causal_mask(3, 2)
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])
    assert torch.equal(position_ids_from_mask(mask, 5), _generate_positions(mask))
    assert torch.equal(position_ids_from_mask(mask, 2), _generate_positions(mask)[:, -2:])


# ----------------------------------------------------------------------------------------------
# The whole model against HF


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_loss_and_every_gradient_match_hf(name: str) -> None:
    cfg = CONFIGS[name]
    hf = _hf(cfg)
    ours = _ours(hf)
    ids = _ids(cfg, 3, cfg["n_positions"] - 1, seed=1)
    labels = ids.clone()
    labels[0, :4] = -100  # a prompt that does not count
    a, b = ours(ids, labels=labels), hf(ids, labels=labels)
    assert_close(a.logits, b.logits, what="logits")
    assert_close(a.loss, b.loss.double(), rtol=1e-6, atol=1e-7, what="loss")
    weights = randn(*b.logits.shape, seed=2, dtype=f64)
    (a.loss + (a.logits * weights).sum()).backward()
    (b.loss + (b.logits * weights).sum()).backward()
    ours_params = dict(ours.named_parameters())
    for key, p in hf.named_parameters():  # the tied head appears once in each
        assert_close(ours_params[key].grad, p.grad, rtol=1e-6, atol=1e-9, what=f"grad of {key}")
    assert ours.lm_head.weight is ours.transformer.wte.weight


@pytest.mark.parametrize("eager", [False, True], ids=["sdpa", "eager"])
def test_left_padding_matches_hf_and_the_unpadded_rows(eager: bool) -> None:
    cfg = CONFIGS["2 layers, 3 heads of 8"]
    hf = _hf(cfg, seed=3, eager=eager)
    ours = _ours(hf)
    ids = _ids(cfg, 3, 9, seed=4)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[0, :4] = 0
    mask[2, :1] = 0
    got = ours(ids, attention_mask=mask).logits
    want = hf(ids, attention_mask=mask, position_ids=_generate_positions(mask)).logits
    real = mask.bool()
    assert_close(got[real], want[real], what="logits at real tokens")
    for row in range(3):  # each row as if alone, without its padding
        alone = ours(ids[row : row + 1, real[row]]).logits[0]
        assert_close(got[row, real[row]], alone, what=f"row {row} padded vs alone")
    assert torch.isfinite(got).all()


def test_kv_cache_gives_the_uncached_logits_and_hf_cache() -> None:
    cfg = CONFIGS["3 layers, 1 head, n_inner=20, eps=1e-3"]
    hf = _hf(cfg, seed=5)
    ours = _ours(hf)
    ids = _ids(cfg, 2, 10, seed=6)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, :3] = 0
    full = ours(ids, attention_mask=mask).logits
    out = ours(ids[:, :6], attention_mask=mask[:, :6], use_cache=True)
    pieces, cache = [out.logits], out.past_key_values
    for t in range(6, 10):  # then one token at a time, as a sampler does
        out = ours(ids[:, t : t + 1], past_key_values=cache, attention_mask=mask[:, : t + 1])
        pieces.append(out.logits)
        cache = out.past_key_values
    real = mask.bool()
    assert_close(torch.cat(pieces, 1)[real], full[real], what="cached logits")
    assert len(cache) == cfg["n_layer"] and cache[0][0].shape == (2, 1, 10, 12)

    hf_cache = DynamicCache(config=hf.config)
    positions = _generate_positions(mask)
    hf(ids, attention_mask=mask, position_ids=positions, cache=hf_cache, use_cache=True)
    for i, (k, v) in enumerate(cache):
        layer = hf_cache.layers[i]
        # pads too: both models get the same position ids there
        assert_close(k, layer.keys, what=f"layer {i} keys")
        assert_close(v, layer.values, what=f"layer {i} values")


def test_dropout_modules_and_rates_match_hf() -> None:
    cfg = dict(CONFIGS["2 layers, 3 heads of 8"], embd_pdrop=0.1, attn_pdrop=0.2, resid_pdrop=0.3)
    hf = HFModel(HFConfig(**cfg))
    ours = GPT2LMHeadModel(GPT2Config.from_hf(hf.config))

    def rates(model: torch.nn.Module) -> dict[str, float]:
        return {n: m.p for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout)}

    assert rates(ours) == rates(hf)


def test_initialisation_follows_hf() -> None:
    config = GPT2Config(vocab_size=500, n_positions=64, n_embd=96, n_layer=6, n_head=4)
    model = GPT2LMHeadModel(config)
    torch.manual_seed(0)
    hf = HFModel(HFConfig(**{k: v for k, v in vars(config).items() if k != "use_cache"}))
    ours_params = dict(model.named_parameters())
    for name, p in hf.named_parameters():
        mine = ours_params[name]
        assert abs(mine.std().item() - p.std().item()) < 0.15 * p.std().item() + 1e-6, name
        assert abs(mine.mean().item() - p.mean().item()) < 0.003, name
    assert model.num_parameters() == hf.num_parameters()
    assert model.num_parameters(exclude_embeddings=True) == hf.num_parameters(
        exclude_embeddings=True
    )


# ----------------------------------------------------------------------------------------------
# Weights in and out


def test_state_dicts_load_both_ways() -> None:
    cfg = CONFIGS["1 layer, 4 heads of 2"]
    hf = _hf(cfg, seed=7)
    ours = GPT2LMHeadModel(GPT2Config.from_hf(hf.config)).double().eval()
    ours.load_state_dict(hf.state_dict(), strict=True)
    back = HFModel(HFConfig(**cfg, **NO_DROPOUT)).double().eval()
    back.load_state_dict(ours.state_dict(), strict=True)
    ids = _ids(cfg, 2, 8, seed=8)
    assert_close(ours(ids).logits, hf(ids).logits)
    assert_close(back(ids).logits, hf(ids).logits)


def test_save_pretrained_directories_read_and_write(tmp_path: Path) -> None:
    cfg = CONFIGS["2 layers, 3 heads of 8"]
    hf = _hf(cfg, seed=9).float()
    hf.save_pretrained(tmp_path / "hf")
    ours = from_pretrained(tmp_path / "hf")
    ids = _ids(cfg, 2, 11, seed=10)
    assert_close(ours(ids).logits, hf(ids).logits)
    assert not ours.training

    save_pretrained(ours, tmp_path / "ours")
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    assert sorted(load_file(tmp_path / "ours" / "model.safetensors")) == sorted(
        load_file(tmp_path / "hf" / "model.safetensors")
    )
    again = HFModel.from_pretrained(tmp_path / "ours").eval()
    assert again.config.n_layer == 2 and again.config.n_head == 3
    assert_close(again(ids).logits, hf(ids).logits)


def test_a_gpt2model_checkpoint_with_mask_buffers_loads(tmp_path: Path) -> None:
    """The hub's ``gpt2`` is a GPT2Model checkpoint (no prefix, no head) that still carries
    the causal-mask buffers h.N.attn.bias and h.N.attn.masked_bias."""
    cfg = CONFIGS["2 layers, 3 heads of 8"]
    torch.manual_seed(11)
    base = HFBaseModel(HFConfig(**cfg, **NO_DROPOUT)).eval()
    state = dict(base.state_dict())
    for i in range(cfg["n_layer"]):
        state[f"h.{i}.attn.bias"] = torch.ones(1, 1, 20, 20).tril()
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    (tmp_path / "gpt2").mkdir()
    save_file(state, str(tmp_path / "gpt2" / "model.safetensors"))
    base.config.to_json_file(tmp_path / "gpt2" / "config.json")
    ours = from_pretrained(tmp_path / "gpt2")
    ids = _ids(cfg, 2, 7, seed=12)
    assert_close(ours.transformer(ids)[0], base(ids).last_hidden_state)
    assert_close(ours(ids).logits, base(ids).last_hidden_state @ base.wte.weight.T)
    assert hf_gpt2_key("h.0.attn.c_attn.weight") == "transformer.h.0.attn.c_attn.weight"
    assert hf_gpt2_key("transformer.h.0.attn.bias") is None
    with pytest.raises(DataError, match=r"score\.weight"):
        hf_gpt2_key("score.weight")


# ----------------------------------------------------------------------------------------------
# Bad input


def test_bad_input_gets_clear_errors(tmp_path: Path) -> None:
    model = GPT2LMHeadModel(GPT2Config(**CONFIGS["1 layer, 4 heads of 2"]))
    with pytest.raises(ShapeError, match="longer than n_positions=12"):
        model(torch.zeros(1, 13, dtype=torch.long))
    out = model(torch.zeros(1, 8, dtype=torch.long), use_cache=True)
    with pytest.raises(ShapeError, match=r"13 positions \(8 cached \+ 5 new\)"):
        model(torch.zeros(1, 5, dtype=torch.long), past_key_values=out.past_key_values)
    with pytest.raises(ValueError, match="token id 17 is outside the vocabulary"):
        model(torch.tensor([[1, 17, 2]]))
    with pytest.raises(ValueError, match="token id -1"):
        model(torch.tensor([[-1]]))
    with pytest.raises(ShapeError, match=r"\(batch, cached \+ new\) = \(1, 9\)"):
        model(torch.zeros(1, 1, dtype=torch.long), out.past_key_values, torch.ones(1, 1))
    with pytest.raises(ConfigError, match="n_embd=10 is not divisible by n_head=4"):
        GPT2Config(n_embd=10, n_head=4)
    with pytest.raises(ConfigError, match="activation_function='relu'"):
        GPT2Config.from_hf(HFConfig(activation_function="relu"))

    big = HFModel(HFConfig(**dict(CONFIGS["1 layer, 4 heads of 2"], n_layer=3)))
    with pytest.raises(StateDictError, match="the checkpoint has 3 layers but the model 1"):
        load_hf_state_dict(model, big.state_dict())
    untied = dict(HFModel(HFConfig(**CONFIGS["1 layer, 4 heads of 2"])).state_dict())
    untied["lm_head.weight"] = untied["lm_head.weight"] + 1
    with pytest.raises(StateDictError, match="untied head"):
        load_hf_state_dict(model, untied)

    save_pretrained(model, tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(DataError, match="corrupt or was cut short"):
        from_pretrained(tmp_path / "m")
    weights.unlink()
    with pytest.raises(DataError, match=r"model\.safetensors is missing"):
        from_pretrained(tmp_path / "m")
    with pytest.raises(DataError, match="not a directory"):
        from_pretrained(tmp_path / "nowhere" / "m")
    with pytest.raises(DataError, match="go online once"):  # HF_HUB_OFFLINE=1 in the tests
        from_pretrained("gpt2")


def test_output_follows_model_output_conventions() -> None:
    logits, loss = torch.zeros(1, 2, 3), torch.tensor(1.5)
    out = CausalLMOutput(logits, loss)
    assert out.loss is loss and out["logits"] is logits and out[0] is loss
    assert list(out) == ["loss", "logits"] and out.past_key_values is None
    assert CausalLMOutput(logits)[0] is logits and "loss" not in CausalLMOutput(logits)


# ----------------------------------------------------------------------------------------------
# A drop-in for HuggingFace's model in Trainer


@pytest.mark.slow
def test_trainer_runs_agree_step_by_step_with_hf(tmp_path: Path) -> None:
    from transformers import Trainer, TrainingArguments

    logging.getLogger("transformers").setLevel(logging.ERROR)
    cfg = dict(vocab_size=40, n_positions=16, n_embd=16, n_layer=2, n_head=2)
    torch.manual_seed(0)
    hf = HFModel(HFConfig(**cfg, **NO_DROPOUT))
    ours = GPT2LMHeadModel(GPT2Config.from_hf(hf.config))
    ours.load_state_dict(hf.state_dict())
    # A learnable pattern (each token follows its predecessor + 1), some rows right-padded.
    starts = torch.randint(0, 40, (160, 1), generator=generator(1))
    rows = (starts + torch.arange(12)) % 40
    data = []
    for i, row in enumerate(rows):
        mask = torch.ones(12, dtype=torch.long)
        mask[12 - i % 3 :] = 0
        data.append(
            {"input_ids": row, "attention_mask": mask, "labels": row.masked_fill(mask == 0, -100)}
        )

    def losses(model: torch.nn.Module) -> list[float]:
        args = TrainingArguments(
            output_dir=str(tmp_path),
            max_steps=60,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=2,
            learning_rate=3e-3,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            seed=0,
            disable_tqdm=True,
            use_cpu=True,
        )
        trainer = Trainer(model=model, args=args, train_dataset=data)
        trainer.train()
        return [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]

    theirs, mine = losses(hf), losses(ours)
    assert len(theirs) == len(mine) == 60
    assert max(abs(a - b) for a, b in zip(theirs, mine, strict=True)) < 1e-4  # float32
    assert mine[-1] < mine[0] - 0.5  # it learned the pattern
