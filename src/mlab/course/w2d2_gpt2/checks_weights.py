"""Checks for part 3 of w2d2: GPT-2's weights in and out. Names come from transformers' own
``GPT2LMHeadModel`` and ``GPT2Model``; directories are written by transformers'
``save_pretrained`` and read back by its ``from_pretrained``; the hub's layout (a
``GPT2Model`` checkpoint with the old ``attn.bias`` / ``attn.masked_bias`` buffers) is
rebuilt from a ``GPT2Model``'s state dict."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor
from transformers import GPT2LMHeadModel as HFModel
from transformers import GPT2Model as HFBaseModel

from mlab.course.engine.checks import Namespace, check
from mlab.course.w2d2_gpt2.hf_reference import F64, hf_config, ours_config, randomise
from mlab.errors import ConfigError, DataError, StateDictError
from mlab.models.gpt2 import GPT2LMHeadModel
from mlab.testing import assert_close, assert_equal, assert_raises, case, expect, randint

SMALL = dict(vocab_size=19, n_positions=12, n_embd=8, n_layer=2, n_head=2)


@contextmanager
def _tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mlab-w2d2-") as d:
        yield Path(d)


def _hf(seed: int, **cfg: Any) -> Any:
    torch.manual_seed(seed)
    return randomise(HFModel(hf_config(**{**SMALL, **cfg})), seed).eval()


def _hub_layout(seed: int, **cfg: Any) -> tuple[Any, dict[str, Tensor]]:
    """A GPT2Model and its state dict as the hub's ``gpt2`` stores it: no prefix, no head,
    and the causal-mask buffers of older transformers."""
    torch.manual_seed(seed)
    base: Any = randomise(HFBaseModel(hf_config(**{**SMALL, **cfg})), seed).eval()
    state = dict(base.state_dict())
    n = base.config.n_positions
    for i in range(base.config.n_layer):
        state[f"h.{i}.attn.bias"] = torch.ones(1, 1, n, n, dtype=torch.uint8).tril()
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return base, state


def _ours(hf: Any) -> GPT2LMHeadModel:
    return GPT2LMHeadModel(ours_config(hf.config)).double().eval()


# ----------------------------------------------------------------------------------------------
# hf_gpt2_key


@check("hf_gpt2_key")
def keys_map_hf_names(ns: Namespace) -> None:
    lm = HFModel(hf_config(**{**SMALL, "n_layer": 12}))
    with case("every name of a 12-layer GPT2LMHeadModel (already ours)"):
        for name in lm.state_dict():
            assert_equal(ns.hf_gpt2_key(name), name, what=f"hf_gpt2_key({name!r})")
    base = HFBaseModel(hf_config(**{**SMALL, "n_layer": 12}))
    with case("every name of a 12-layer GPT2Model (no 'transformer.' prefix)"):
        for name in base.state_dict():
            want = "transformer." + name
            assert_equal(ns.hf_gpt2_key(name), want, what=f"hf_gpt2_key({name!r})")
    buffers = ["h.0.attn.bias", "h.11.attn.masked_bias", "transformer.h.3.attn.bias"]
    buffers += ["transformer.h.10.attn.masked_bias"]
    for name in buffers:
        with case(f"the old causal-mask buffer {name!r}"):
            got = ns.hf_gpt2_key(name)
            expect(got is None, f"a mask buffer holds no weights: expected None, got {got!r}")


@check("hf_gpt2_key")
def keys_reject_other_names(ns: Namespace) -> None:
    bad = [
        "score.weight",  # GPT2ForSequenceClassification's head
        "transformer.score.weight",
        "multiple_choice_head.summary.weight",
        "lm_head.bias",
        "transformer.lm_head.weight",
        "h.x.ln_1.weight",
        "transformer.wte",
        "wpe",
        "encoder.h.0.ln_1.weight",
        "",
    ]
    for name in bad:
        with case(f"name={name!r}"):
            assert_raises(ns.hf_gpt2_key, name, exc=DataError)


# ----------------------------------------------------------------------------------------------
# load_hf_state_dict


def _state(model: torch.nn.Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@check("load_hf_state_dict")
def loads_hf_state_dicts(ns: Namespace) -> None:
    ids = randint(0, 19, 2, 7, seed=1)
    hf = _hf(1)
    with case("a GPT2LMHeadModel's state dict (with lm_head.weight)", input_ids=ids):
        ours = _ours(hf)
        params = list(ours.parameters())
        ns.load_hf_state_dict(ours, hf.state_dict())
        assert_close(ours(ids).logits, hf(ids).logits, what="logits after loading")
        expect(
            all(a is b for a, b in zip(params, ours.parameters(), strict=True)),
            "load the values into the model's parameters in place, do not replace them",
        )
        expect(
            ours.lm_head.weight is ours.transformer.wte.weight,
            "after loading, lm_head.weight should still be transformer.wte.weight (tied)",
        )
    with case("the same without lm_head.weight (as save_pretrained writes it)"):
        ours = _ours(hf)
        state = {k: v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
        ns.load_hf_state_dict(ours, state)
        assert_close(ours(ids).logits, hf(ids).logits, what="logits after loading")
    base, state = _hub_layout(2, n_layer=3)
    with case("the hub's layout: GPT2Model names and attn.bias/attn.masked_bias buffers"):
        ours = _ours(base)
        ns.load_hf_state_dict(ours, state)
        hidden = ours.transformer(ids)[0]
        assert_close(hidden, base(ids).last_hidden_state, what="hidden states after loading")
        assert_close(ours(ids).logits, hidden @ base.wte.weight.T, what="logits (tied head)")


@check("load_hf_state_dict")
def refuses_what_does_not_fit(ns: Namespace) -> None:
    small = _hf(3)
    wide = _hf(3, n_embd=12, n_head=2)
    _, deep = _hub_layout(4, n_layer=4)
    untied = dict(small.state_dict())
    untied["lm_head.weight"] = untied["lm_head.weight"] + 1
    missing = {k: v for k, v in small.state_dict().items() if k != "transformer.h.1.ln_2.bias"}
    extra = {**small.state_dict(), "score.weight": torch.zeros(3, 8)}
    cases = [
        ("a 4-layer checkpoint into a 2-layer model", deep, ["4 layers", "2"], StateDictError),
        ("n_embd 12 into n_embd 8", wide.state_dict(), ["wte.weight"], StateDictError),
        ("an untied head (lm_head.weight != wte.weight)", untied, ["lm_head"], StateDictError),
        ("transformer.h.1.ln_2.bias missing", missing, ["h.1.ln_2.bias"], StateDictError),
        ("a classification head's score.weight", extra, ["score.weight"], DataError),
    ]
    for name, state, words, exc in cases:
        ours = _ours(small)
        before = _state(ours)
        with case(name):
            err = assert_raises(ns.load_hf_state_dict, ours, state, exc=exc)
            for word in words:
                expect(word in str(err), f"the message should name {word!r}: {err}")
            assert_close(_state(ours), before, what="the model after a failed load (unchanged)")


# ----------------------------------------------------------------------------------------------
# save_pretrained


@check("save_pretrained")
def saved_directories_load_in_transformers(ns: Namespace) -> None:
    hf = _hf(5, n_inner=6, layer_norm_epsilon=0.01)
    ids = randint(0, 19, 2, 6, seed=5)
    with _tmp() as tmp, case("a GPT-2 with n_inner=6, eps=0.01, saved to a new folder"):
        ours = _ours(hf)
        ours.load_state_dict(hf.state_dict())
        target = tmp / "nested" / "gpt2-small"
        got = ns.save_pretrained(ours, target)
        assert_equal(Path(got), target, what="the returned path")
        assert_equal(
            sorted(p.name for p in target.iterdir()),
            ["config.json", "model.safetensors"],
            what="files written",
        )
        hf.save_pretrained(tmp / "hf")
        assert_equal(
            sorted(load_file(str(target / "model.safetensors"))),
            sorted(load_file(str(tmp / "hf" / "model.safetensors"))),
            what="tensor names in model.safetensors (as HF's save_pretrained writes them)",
        )
        back: Any = HFModel.from_pretrained(target)
        back.eval()
        for key in ("n_layer", "n_head", "n_embd", "n_inner", "layer_norm_epsilon"):
            assert_equal(getattr(back.config, key), getattr(hf.config, key), what=key)
        assert_close(back(ids).logits, hf(ids).logits, what="logits of HF's model loaded from it")
        text = (target / "config.json").read_text()
        config = json.loads(text)
        assert_equal(config.get("model_type"), "gpt2", what="config.json's model_type")
        second = text.splitlines()[1]
        expect(
            second.startswith("  ") and not second.startswith("   "),
            f"config.json should be indented by 2 spaces, as HF writes it; got {second!r}",
        )
    with _tmp() as tmp, case("saving twice into the same folder (the second overwrites)"):
        ours = _ours(hf)
        ns.save_pretrained(ours, tmp)
        with torch.no_grad():
            ours.transformer.ln_f.bias.fill_(0.5)
        ns.save_pretrained(ours, tmp)
        saved = load_file(str(tmp / "model.safetensors"))["transformer.ln_f.bias"]
        assert_close(saved, torch.full((8,), 0.5, dtype=F64), what="ln_f.bias as saved")


# ----------------------------------------------------------------------------------------------
# from_pretrained


@check("from_pretrained")
def reads_save_pretrained_directories(ns: Namespace) -> None:
    hf = _hf(6, n_layer=3, n_head=4, layer_norm_epsilon=0.02).float()
    ids = randint(0, 19, 2, 9, seed=6)
    with _tmp() as tmp, case("a directory written by transformers' save_pretrained"):
        hf.save_pretrained(tmp)
        ours = ns.from_pretrained(tmp)
        expect(not ours.training, "from_pretrained should return the model in eval mode")
        assert_equal(ours.config.n_layer, 3, what="config.n_layer")
        assert_equal(ours.config.layer_norm_epsilon, 0.02, what="config.layer_norm_epsilon")
        assert_close(ours(ids).logits, hf(ids).logits, what="logits")
    base, state = _hub_layout(7)
    with _tmp() as tmp, case("the hub's layout (GPT2Model names, mask buffers), a str path"):
        save_file(state, str(tmp / "model.safetensors"))
        base.config.to_json_file(tmp / "config.json")
        ours = ns.from_pretrained(str(tmp))
        want = base(ids).last_hidden_state  # float64, ours float32 as HF's from_pretrained
        assert_close(ours.transformer(ids)[0], want.float(), rtol=1e-5, atol=1e-6)


@check("from_pretrained")
def bad_directories_get_clear_errors(ns: Namespace) -> None:
    hf = _hf(8).float()
    with _tmp() as tmp:
        hf.save_pretrained(tmp / "ok")
        weights = (tmp / "ok" / "model.safetensors").read_bytes()
        config = (tmp / "ok" / "config.json").read_text()

        def folder(name: str, files: dict[str, bytes]) -> Path:
            path = tmp / name
            path.mkdir()
            for file, data in files.items():
                (path / file).write_bytes(data)
            return path

        relu = json.dumps({**json.loads(config), "activation_function": "relu"}).encode()
        bad = [
            ("no model.safetensors", {"config.json": config.encode()}, DataError,
             "model.safetensors"),
            ("no config.json", {"model.safetensors": weights}, DataError, "config.json"),
            ("a safetensors file cut short", {"config.json": config.encode(),
             "model.safetensors": weights[: len(weights) // 2]}, DataError, "model.safetensors"),
            ("a safetensors file of zeros", {"config.json": config.encode(),
             "model.safetensors": bytes(len(weights))}, DataError, "model.safetensors"),
            ("config.json that is not JSON", {"config.json": b"{n_layer: 2",
             "model.safetensors": weights}, ConfigError, "config.json"),
            ("n_embd given as a string", {"config.json": json.dumps({"n_embd": "8"}).encode(),
             "model.safetensors": weights}, ConfigError, "config.json"),
            ("activation_function='relu'", {"config.json": relu, "model.safetensors": weights},
             ConfigError, "relu"),
        ]  # fmt: skip
        for i, (name, files, exc, word) in enumerate(bad):
            path = folder(f"case{i}", files)
            with case(name):
                err = assert_raises(ns.from_pretrained, path, exc=exc)
                expect(word in str(err), f"the message should name {word!r}: {err}")
        with case("a path that is a file, not a directory"):
            assert_raises(ns.from_pretrained, tmp / "ok" / "config.json", exc=DataError)
        with case("a directory that does not exist"):
            assert_raises(ns.from_pretrained, tmp / "missing", exc=DataError)
