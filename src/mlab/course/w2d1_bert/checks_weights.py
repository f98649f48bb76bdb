"""Checks for part 4 of w2d1: the name table, strict loading both ways and sentence embeddings.

A name map is right when HuggingFace's weights, renamed by it, make mlab's reference BERT give
HF's outputs; loading the other way goes through torch's own ``load_state_dict(strict=True)``
on the HF model. Sentence embeddings are compared with the ``sentence-transformers`` library's
mean pooling and normalisation (a dependency of the checkpoint's package), on random states and
on the real all-MiniLM-L6-v2 checkpoint."""

from __future__ import annotations

from functools import cache
from typing import Any

import torch
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
from torch import Tensor, nn

from mlab.course.engine.checks import Namespace, check
from mlab.course.w2d1_bert.checks_layers import f64, hf_bert, hf_config, padded, randomise
from mlab.errors import DataError, ShapeError, StateDictError
from mlab.models import bert
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_raises,
    case,
    expect,
    generator,
    randn,
)

SENTENCES = [
    "To be, or not to be, that is the question.",
    "A horse! a horse! my kingdom for a horse!",
    "Now is the winter of our discontent.",
]
HF_CLASSES = {
    "BertModel": (hf_bert.BertModel, bert.BertModel),
    "BertForMaskedLM": (hf_bert.BertForMaskedLM, bert.BertForMaskedLM),
    "BertForSequenceClassification": (
        hf_bert.BertForSequenceClassification,
        bert.BertForSequenceClassification,
    ),
}


def _outputs(model: nn.Module, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    ids, types, mask = batch
    with torch.no_grad():
        out = model(ids, attention_mask=mask, token_type_ids=types)
    return out if isinstance(out, Tensor) else out[0]


@cache
def _minilm() -> tuple[dict[str, Tensor], Any, Any]:
    """The real checkpoint's tensors, HF's BertModel on it, and the tokenizer's batch."""
    from safetensors.torch import load_file

    path = bert.minilm_dir()
    hf = hf_bert.BertModel.from_pretrained(str(path)).eval()
    tokens = bert.minilm_tokenizer()(SENTENCES, padding=True, return_tensors="pt")
    return load_file(str(path / "model.safetensors")), hf, tokens


# ----------------------------------------------------------------------------------------------
# hf_bert_key


@check("hf_bert_key")
def key_examples(ns: Namespace) -> None:
    examples = {
        "embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
        "bert.embeddings.LayerNorm.bias": "bert.embeddings.layer_norm.bias",
        "encoder.layer.0.attention.self.query.weight": "layers.0.attention.query.weight",
        "bert.encoder.layer.11.attention.output.dense.bias": "bert.layers.11.attention.out.bias",
        "encoder.layer.3.attention.output.LayerNorm.weight": "layers.3.attention_norm.weight",
        "encoder.layer.2.intermediate.dense.weight": "layers.2.ffn_in.weight",
        "bert.encoder.layer.1.output.dense.bias": "bert.layers.1.ffn_out.bias",
        "encoder.layer.0.output.LayerNorm.bias": "layers.0.ffn_norm.bias",
        "bert.pooler.dense.weight": "bert.pooler.dense.weight",
        "cls.predictions.bias": "mlm_head.bias",
        "cls.predictions.transform.LayerNorm.weight": "mlm_head.layer_norm.weight",
        "classifier.bias": "classifier.bias",
    }
    for name, want in examples.items():
        with case(f"name {name!r}"):
            assert_equal(ns.hf_bert_key(name), want, what="our name")
    skipped = ["embeddings.position_ids", "bert.embeddings.token_type_ids",
               "cls.predictions.decoder.weight", "cls.predictions.decoder.bias"]  # fmt: skip
    for name in skipped:
        with case(f"name {name!r}: a tensor our model does not store"):
            assert_equal(ns.hf_bert_key(name), None, what="our name")


@check("hf_bert_key")
def key_map_loads_hf_models(ns: Namespace) -> None:
    config = hf_config(heads=2, hidden=4, intermediate=6, layers=11)
    batch = padded(seed=120)
    for i, (name, (hf_cls, ours_cls)) in enumerate(HF_CLASSES.items()):
        torch.manual_seed(i)
        hf = randomise(hf_cls(config), seed=121 + i)
        ours = ours_cls(bert.BertConfig.from_hf(config)).double().eval()
        with case(f"every name of an 11-layer {name}"):
            renamed = {}
            for key, value in hf.state_dict().items():
                new = ns.hf_bert_key(key)
                if new is not None:
                    renamed[new] = value
            assert_equal(sorted(renamed), sorted(ours.state_dict()), what="the renamed keys")
            ours.load_state_dict(renamed, strict=True)
            assert_close(_outputs(ours, batch), _outputs(hf, batch), what=f"{name}'s output")


@check("hf_bert_key")
def key_rejects_unknown_names(ns: Namespace) -> None:
    for name in ["encoder.layer.0.attention.self.querry.weight", "bert.decoder.weight",
                 "encoder.layers.0.output.dense.weight", "encoder.layer.x.output.dense.weight",
                 "layers.0.ffn_in.weight", "cls.predictions.transform.dense"]:  # fmt: skip
        with case(f"name {name!r}"):
            assert_raises(ns.hf_bert_key, name, exc=DataError, match=name)


# ----------------------------------------------------------------------------------------------
# load_hf_bert_state_dict


@check("load_hf_bert_state_dict")
def loader_reproduces_hf(ns: Namespace) -> None:
    config = hf_config(heads=2, hidden=8, intermediate=12, layers=2)
    batch = padded(seed=130)
    for i, (name, (hf_cls, ours_cls)) in enumerate(HF_CLASSES.items()):
        torch.manual_seed(i)
        hf = randomise(hf_cls(config), seed=131 + i)
        ours = ours_cls(bert.BertConfig.from_hf(config)).double().eval()
        with case(f"a random {name}'s state dict"):
            ns.load_hf_bert_state_dict(ours, hf.state_dict())
            assert_close(_outputs(ours, batch), _outputs(hf, batch), what=f"{name}'s output")


@check("load_hf_bert_state_dict")
def loader_is_strict(ns: Namespace) -> None:
    config = hf_config(heads=2, hidden=4, intermediate=6, layers=1)
    torch.manual_seed(0)
    hf = hf_bert.BertForMaskedLM(config)
    full = hf.state_dict()
    problems = [
        ("a missing key", "bert.layers.0.ffn_out.weight",
         {k: v for k, v in full.items() if k != "bert.encoder.layer.0.output.dense.weight"}),
        ("a key of the wrong shape", "(5, 4)",
         {**full, "cls.predictions.transform.dense.weight": torch.zeros(5, 4)}),
        ("an unexpected key", "bert.layers.0.ffn_out.scale",
         {**full, "bert.encoder.layer.0.output.dense.scale": torch.zeros(4)}),
    ]  # fmt: skip
    for name, word, state in problems:
        model = bert.BertForMaskedLM(bert.BertConfig.from_hf(config))
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with case(f"a checkpoint with {name}"):
            assert_raises(ns.load_hf_bert_state_dict, model, state, exc=StateDictError, match=word)
            for key, value in model.state_dict().items():
                assert_equal(value, before[key], what=f"{key} after a failed load")


@check("load_hf_bert_state_dict")
def loader_loads_real_minilm(ns: Namespace) -> None:
    tensors, hf, tokens = _minilm()
    ours = bert.BertModel(bert.BertConfig.from_hf(hf.config)).eval()
    with case("the real all-MiniLM-L6-v2 checkpoint (with its position_ids buffer)"):
        ns.load_hf_bert_state_dict(ours, tensors)
        with torch.no_grad():
            want = hf(**tokens).last_hidden_state
            got = ours(tokens["input_ids"], tokens["attention_mask"], tokens["token_type_ids"])
        real = tokens["attention_mask"].bool()
        assert_close(got[real], want[real], rtol=0, atol=1e-5, what="hidden states at tokens")


# ----------------------------------------------------------------------------------------------
# hf_state_dict


@check("hf_state_dict")
def state_dict_loads_into_hf(ns: Namespace) -> None:
    config = hf_config(heads=2, hidden=4, intermediate=6, layers=11)
    batch = padded(seed=140)
    for i, (name, (hf_cls, ours_cls)) in enumerate(HF_CLASSES.items()):
        torch.manual_seed(i)
        ours = randomise(ours_cls(bert.BertConfig.from_hf(config)), seed=141 + i)
        hf = hf_cls(config).double().eval()
        with case(f"a random 11-layer {name} of ours"):
            state = ns.hf_state_dict(ours)
            assert_equal(sorted(state), sorted(hf.state_dict()), what="HF's names")
            hf.load_state_dict(state, strict=True)
            assert_close(_outputs(hf, batch), _outputs(ours, batch), what=f"HF {name}'s output")


@check("hf_state_dict")
def state_dict_rejects_unknown_names(ns: Namespace) -> None:
    model = bert.BertModel(bert.BertConfig(vocab_size=5, hidden_size=4, num_hidden_layers=1,
                                           num_attention_heads=1, intermediate_size=4))  # fmt: skip
    model.extra = nn.Linear(2, 2)
    with case("a BertModel with an extra layer named extra"):
        assert_raises(ns.hf_state_dict, model, exc=StateDictError, match="extra")


# ----------------------------------------------------------------------------------------------
# sentence_embeddings


@check("sentence_embeddings")
def embeddings_match_sentence_transformers(ns: Namespace) -> None:
    g = generator(150)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    for i, hidden_size in enumerate((4, 7)):
        h = (torch.randn(3, 5, hidden_size, generator=g, dtype=f64) + 0.5).requires_grad_()
        hr = h.detach().clone().requires_grad_()
        with case(f"hidden states (3, 5, {hidden_size}); 5, 2 and 1 real tokens",
                  hidden=h, attention_mask=mask):  # fmt: skip
            got = ns.sentence_embeddings(h, mask)
            features = {"token_embeddings": hr, "attention_mask": mask}
            pooled = Pooling(hidden_size, pooling_mode="mean")(features)
            want = Normalize()(pooled)["sentence_embedding"]
            assert_close(got, want)
            w = randn(*want.shape, seed=151 + i, dtype=f64)
            (got * w).sum().backward()
            (want * w).sum().backward()
            assert_close(h.grad, hr.grad, what="gradient of hidden")
    with case("attention_mask of shape (3, 4) for hidden of shape (3, 5, 4)"):
        assert_raises(
            ns.sentence_embeddings, torch.zeros(3, 5, 4), torch.ones(3, 4), exc=ShapeError
        )


@check("sentence_embeddings")
def embeddings_of_real_sentences(ns: Namespace) -> None:
    from sentence_transformers import SentenceTransformer

    tensors, hf, tokens = _minilm()
    ours = bert.BertModel(bert.BertConfig.from_hf(hf.config)).eval()
    ours.load_state_dict({k2: v for k, v in tensors.items() if (k2 := bert.hf_bert_key(k))})
    st = SentenceTransformer(str(bert.minilm_dir()), device="cpu")
    want = st.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True)
    with case(f"all-MiniLM-L6-v2's hidden states for {len(SENTENCES)} padded sentences"):
        with torch.no_grad():
            hidden = ours(tokens["input_ids"], tokens["attention_mask"])
            got = ns.sentence_embeddings(hidden, tokens["attention_mask"])
        assert_close(got, want, rtol=0, atol=1e-5, what="sentence embeddings")
        similarity = got @ got.T
        expect(
            bool(torch.allclose(similarity.diagonal(), torch.ones(3), atol=1e-5)),
            f"each embedding should have length 1, got {similarity.diagonal().sqrt().tolist()}",
        )
