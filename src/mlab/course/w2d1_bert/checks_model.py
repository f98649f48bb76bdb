"""Checks for part 3 of w2d1: the encoder, its heads and the MLM loss against transformers'
``BertModel`` (every hidden state and the pooled output), ``BertLMPredictionHead``,
``BertForMaskedLM`` and ``BertForSequenceClassification`` (random weights with random
LayerNorms, eager attention), in float64 on padded batches with token types: outputs and every
parameter's gradient, dropout on in train mode; the loss against ``F.cross_entropy``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlab.course.engine.checks import Namespace, check
from mlab.course.w2d1_bert.checks_layers import (
    VOCAB,
    f64,
    hf_bert,
    hf_config,
    matches_hf,
    padded,
    randomise,
    sub_key,
)
from mlab.errors import ShapeError
from mlab.models.bert import BertConfig, hf_bert_key
from mlab.testing import assert_close, assert_equal, assert_raises, case, expect, randn

CONFIGS = [(2, 8, 12, 2), (1, 4, 6, 1), (4, 8, 16, 3)]  # heads, hidden, intermediate, layers


# ----------------------------------------------------------------------------------------------
# BertPooler


@check("BertPooler")
def pooler_matches_hf(ns: Namespace) -> None:
    for i, hidden in enumerate((4, 8)):
        torch.manual_seed(i)
        hf = randomise(hf_bert.BertPooler(hf_config(hidden=hidden)), seed=60 + i)
        h = randn(3, 5, hidden, seed=61 + i, dtype=f64).requires_grad_()
        with case(f"hidden states of shape (3, 5, {hidden})", hidden=h):
            matches_hf(
                ns.BertPooler(hidden),
                hf,
                sub_key("pooler.", "pooler."),
                lambda m: m(h),  # noqa: B023
                lambda m: m(h),  # noqa: B023
                "BertPooler",
                grad_input=h,
                dropout=False,
            )


# ----------------------------------------------------------------------------------------------
# BertModel


def _all_states(states: list[Tensor] | tuple[Tensor, ...], pooled: Tensor) -> Tensor:
    return torch.cat([torch.stack(list(states)).flatten(), pooled.flatten()])


@check("BertModel")
def model_matches_hf_hidden_states_and_pooler(ns: Namespace) -> None:
    for i, (heads, hidden, inter, layers) in enumerate(CONFIGS):
        config = hf_config(heads, hidden, inter, layers)
        torch.manual_seed(i)
        hf = randomise(hf_bert.BertModel(config), seed=70 + i)
        ids, types, mask = padded(seed=71 + i)
        with case(f"{layers} layer(s), {heads} head(s), hidden {hidden}, padded batch with "
                  "token types", ids=ids, mask=mask):  # fmt: skip
            ours_config = BertConfig.from_hf(config)
            ours = ns.BertModel(ours_config)
            stack = getattr(ours, "layers", None)
            expect(
                isinstance(stack, nn.ModuleList) and len(stack) == layers,
                f"layers should be an nn.ModuleList of {layers} BertLayer, got {stack!r}",
            )
            expect(
                getattr(ours, "config", None) is ours_config,
                "BertModel should keep its config as self.config",
            )

            def run_ours(m: Any) -> Tensor:
                states = m.hidden_states(ids, mask, types)  # noqa: B023
                expect(
                    len(states) == layers + 1,  # noqa: B023
                    f"hidden_states should give {layers + 1} tensors (the embeddings', then "  # noqa: B023
                    f"each layer's), got {len(states)}",
                )
                return _all_states(states, m.pooler(states[-1]))

            def run_hf(m: Any) -> Tensor:
                out = m(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)  # noqa: B023
                return _all_states(out.hidden_states, out.pooler_output)

            matches_hf(ours, hf, hf_bert_key, run_ours, run_hf, "BertModel")
            with torch.no_grad():
                last = ours.hidden_states(ids, mask, types)[-1]
                assert_close(ours(ids, mask, types), last, what="forward vs hidden_states[-1]")


@check("BertModel")
def model_without_mask_or_pooler(ns: Namespace) -> None:
    config = hf_config(2, 8, 12, 2)
    torch.manual_seed(5)
    hf = randomise(hf_bert.BertModel(config, add_pooling_layer=False), seed=75)
    ids, _, _ = padded(seed=76)
    with case("no attention_mask and no token_type_ids, add_pooler=False", ids=ids):
        ours = ns.BertModel(BertConfig.from_hf(config), add_pooler=False)
        expect(ours.pooler is None, f"add_pooler=False should leave pooler None: {ours.pooler}")
        matches_hf(
            ours, hf, hf_bert_key, lambda m: m(ids), lambda m: m(ids).last_hidden_state, "BertModel"
        )
    for shape in [(3, 5), (1, 6)]:
        with case(f"attention_mask of shape {shape} for input_ids of shape (3, 6)"):
            bad = torch.ones(shape, dtype=torch.long)
            assert_raises(ours, ids, bad, exc=ShapeError, match=str(shape))


# ----------------------------------------------------------------------------------------------
# BertMLMHead


@check("BertMLMHead")
def mlm_head_matches_hf(ns: Namespace) -> None:
    for i, hidden in enumerate((4, 8)):
        config = hf_config(hidden=hidden)
        torch.manual_seed(i)
        hf = randomise(hf_bert.BertLMPredictionHead(config), seed=80 + i)
        words = nn.Parameter(randn(VOCAB, hidden, seed=81 + i, dtype=f64))
        hf.decoder.weight = words  # tied: the same tensor for both runs
        h = randn(2, 5, hidden, seed=82 + i, dtype=f64)
        inner = sub_key("cls.predictions.", "mlm_head.")

        def key(name: str) -> str | None:
            return "bias" if name == "decoder.bias" else inner(name)  # noqa: B023

        hf.decoder.bias = hf.bias  # one bias, as a whole model ties them
        with case(f"hidden states (2, 5, {hidden}), a {VOCAB}-word embedding matrix", hidden=h):
            ours = ns.BertMLMHead(BertConfig.from_hf(config))
            bias = getattr(ours, "bias", None)
            expect(
                isinstance(bias, nn.Parameter)
                and tuple(bias.shape) == (VOCAB,)
                and not bias.detach().any(),
                f"bias should be a parameter of {VOCAB} zeros, got {bias!r}",
            )
            matches_hf(
                ours,
                hf,
                key,
                lambda m: m(h, words),  # noqa: B023
                lambda m: m(h),  # noqa: B023
                "BertMLMHead",
                grad_input=words,
                dropout=False,
            )


# ----------------------------------------------------------------------------------------------
# BertForMaskedLM


@check("BertForMaskedLM")
def masked_lm_matches_hf(ns: Namespace) -> None:
    for i, (heads, hidden, inter, layers) in enumerate(CONFIGS[:2]):
        config = hf_config(heads, hidden, inter, layers)
        torch.manual_seed(i)
        hf = randomise(hf_bert.BertForMaskedLM(config), seed=90 + i)
        expect(hf.cls.predictions.decoder.weight is hf.bert.embeddings.word_embeddings.weight,
               "internal: HF's decoder should be tied")  # fmt: skip
        ids, types, mask = padded(seed=91 + i)
        with case(f"{layers} layer(s), {heads} head(s), padded batch with token types",
                  ids=ids, mask=mask):  # fmt: skip
            ours = ns.BertForMaskedLM(BertConfig.from_hf(config))
            matches_hf(
                ours,
                hf,
                hf_bert_key,
                lambda m: m(ids, mask, types),  # noqa: B023
                lambda m: m(ids, attention_mask=mask, token_type_ids=types).logits,  # noqa: B023
                "BertForMaskedLM",
            )
            expect(
                ours.bert.pooler is None,
                "BertForMaskedLM's bert should have no pooler (HF's has none)",
            )


# ----------------------------------------------------------------------------------------------
# mlm_loss


@check("mlm_loss")
def mlm_loss_matches_cross_entropy(ns: Namespace) -> None:
    logits = randn(3, 5, VOCAB, seed=100, dtype=f64) * 3
    some = torch.full((3, 5), -100)
    some[0, 1], some[1, 4], some[2, 0], some[2, 3] = 0, VOCAB - 1, 7, 7
    one = torch.full((3, 5), -100)
    one[1, 2] = 3
    every = torch.randint(0, VOCAB, (3, 5), generator=torch.Generator().manual_seed(101))
    for name, labels in [("4 labelled positions", some), ("1 labelled position", one),
                         ("every position labelled", every)]:  # fmt: skip
        lo, lr = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        with case(name, labels=labels):
            got = ns.mlm_loss(lo, labels)
            want = F.cross_entropy(lr.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
            assert_close(got, want)
            got.backward()
            want.backward()  # type: ignore[no-untyped-call]
            assert_close(lo.grad, lr.grad, what="gradient of logits")


@check("mlm_loss")
def mlm_loss_rejects_bad_labels(ns: Namespace) -> None:
    logits = torch.zeros(2, 3, 5)
    with case("every label is -100: nothing to average"):
        assert_raises(ns.mlm_loss, logits, torch.full((2, 3), -100), exc=ValueError)
    for shape in [(2, 4), (6,), (2, 3, 5)]:
        with case(f"labels of shape {shape} for logits of shape (2, 3, 5)"):
            labels = torch.zeros(shape, dtype=torch.long)
            assert_raises(ns.mlm_loss, logits, labels, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# BertForSequenceClassification


@check("BertForSequenceClassification")
def classifier_matches_hf(ns: Namespace) -> None:
    for i, (heads, hidden, inter, layers) in enumerate(CONFIGS[:2]):
        config = hf_config(heads, hidden, inter, layers)
        torch.manual_seed(i)
        hf = randomise(hf_bert.BertForSequenceClassification(config), seed=110 + i)
        ids, types, mask = padded(seed=111 + i)
        with case(f"{layers} layer(s), {heads} head(s), 3 labels, padded batch",
                  ids=ids, mask=mask):  # fmt: skip
            ours = ns.BertForSequenceClassification(BertConfig.from_hf(config))
            matches_hf(
                ours,
                hf,
                hf_bert_key,
                lambda m: m(ids, mask, types),  # noqa: B023
                lambda m: m(ids, attention_mask=mask, token_type_ids=types).logits,  # noqa: B023
                "BertForSequenceClassification",
            )
    config = hf_config(2, 8, 12, 1, classifier_dropout=0.0, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0)  # fmt: skip
    with case("every dropout probability 0: train mode is eval mode"):
        ours = ns.BertForSequenceClassification(BertConfig.from_hf(config))
        assert_equal(ours.dropout.p, 0.0, what="dropout.p (config.hidden_dropout_prob)")
