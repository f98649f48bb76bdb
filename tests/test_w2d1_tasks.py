"""w2d1's uses of the real checkpoint: semantic search (``mlab demo similar``), fine-tuning
smoke run (``mlab demo who-said-it``), BERT's token masking, and a masked-LM run whose loss
falls. Small inputs written here: no data set needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mlab.models import bert_tasks
from mlab.models.bert import BertConfig, BertForMaskedLM

PLAY = """First Citizen:
Before we proceed any further, hear me speak.

ROMEO:
But, soft! what light through yonder window breaks?
It is the east, and Juliet is the sun.

MENENIUS:
There was a time when all the body's members
Rebell'd against the belly.

ROMEO:
O, she doth teach the torches to burn bright!

MENENIUS:
Note me this, good friend; your most grave belly was deliberate.

KING RICHARD III:
A horse! a horse! my kingdom for a horse!
"""


def test_speeches_and_lines_follow_the_layout() -> None:
    speeches = bert_tasks.speeches(PLAY)
    assert [s for s, _ in speeches] == [
        "First Citizen", "ROMEO", "MENENIUS", "ROMEO", "MENENIUS", "KING RICHARD III",
    ]  # fmt: skip
    assert speeches[1][1] == (
        "But, soft! what light through yonder window breaks? It is the east, and Juliet is the sun."
    )
    lines = bert_tasks.shakespeare_lines(PLAY)
    assert len(lines) == 8 and "ROMEO:" not in lines and lines[-1].startswith("A horse!")


def test_most_similar_finds_the_line_and_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLAB_CACHE_DIR", str(tmp_path))
    lines = bert_tasks.shakespeare_lines(PLAY)
    top = bert_tasks.most_similar("give me a horse and you can have my kingdom", lines, k=2)
    assert top[0][1] == "A horse! a horse! my kingdom for a horse!", top
    assert top[0][0] > top[1][0] and 0 < top[0][0] <= 1
    assert len(list((tmp_path / "minilm-embeddings").glob("*.pt"))) == 1
    again = bert_tasks.most_similar("give me a horse and you can have my kingdom", lines, k=2)
    assert again == top
    with pytest.raises(ValueError, match="k=0"):
        bert_tasks.most_similar("x", lines, k=0)


def test_mask_tokens_follows_berts_recipe() -> None:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (64, 200), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
    attention = torch.ones_like(ids)
    attention[:, 150:] = 0
    special = torch.tensor([0, 101, 102, 103])
    inputs, labels = bert_tasks.mask_tokens(ids, attention, 103, 30522, special, g)
    chosen = labels != -100
    candidates = attention.bool()
    candidates[:, 0] = False
    assert not chosen[~candidates].any()
    assert abs(float(chosen.sum()) / float(candidates.sum()) - 0.15) < 0.01
    assert torch.equal(labels[chosen], ids[chosen])
    masked = float((inputs[chosen] == 103).double().mean())
    kept = float((inputs[chosen] == ids[chosen]).double().mean())
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1) < 0.02, (masked, kept)
    assert torch.equal(inputs[~chosen], ids[~chosen])


def test_init_weights_is_berts() -> None:
    torch.manual_seed(0)
    model = bert_tasks.init_weights(BertForMaskedLM(BertConfig(hidden_size=64,
        num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)))  # fmt: skip
    words = model.bert.embeddings.word_embeddings.weight
    assert abs(float(words[1:].std()) - 0.02) < 1e-3 and not words[0].any()
    assert not model.bert.layers[0].ffn_in.bias.any()


@pytest.mark.slow
def test_mlm_loss_falls_on_shakespeare() -> None:
    lines = bert_tasks.shakespeare_lines(PLAY) * 20
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)  # fmt: skip
    losses = bert_tasks.mlm_run(lines, steps=15, batch_size=8, lr=5e-3, config=config)
    assert abs(losses[0] - torch.log(torch.tensor(30522.0)).item()) < 0.5  # ln(vocab) at init
    assert sum(losses[-5:]) / 5 < losses[0] - 1.0, losses  # measured: 10.4 -> about 8


@pytest.mark.slow
def test_who_said_it_runs_and_reports_both_models() -> None:
    play = PLAY * 6
    result = bert_tasks.who_said_it(play, ("ROMEO", "MENENIUS"), epochs=1, limit=8)
    assert result.speakers == ("ROMEO", "MENENIUS") and result.n_train == 8
    assert result.n_test > 0
    for accuracy in (result.pretrained, result.scratch, result.majority):
        assert 0.0 <= accuracy <= 1.0
