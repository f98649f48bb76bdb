"""w4d3's library: FUDGE decoding with the key/value cache against the same steps recomputed
without a cache (no padding, one row per candidate from ``candidate_inputs``), best-of-n,
the prefix classifier's training, and the active-learning curves on a tiny separable pool.
Tiny models, one thread."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlab.models.gpt2 import GPT2Config, GPT2LMHeadModel
from mlab.rl.fudge import candidate_inputs, fudge_log_probs
from mlab.rl.kl import exact_kl
from mlab.rl.w4d3_active import labels_to_reach, run_curves, summarise
from mlab.rl.w4d3_fudge import (
    LabelledSamples,
    PrefixHead,
    best_of_n_decode,
    fudge_decode,
    train_prefix_classifier,
)
from mlab.rl.w4d3_game import fit_value, play, state_values

VOCAB = 40


class _Tok:
    def decode(self, ids: list[int]) -> str:
        return " ".join(map(str, ids))


def _score(texts: list[str]) -> torch.Tensor:
    """A made-up sentiment: the share of even tokens minus a half."""
    return torch.tensor([np.mean([int(t) % 2 == 0 for t in s.split()]) - 0.5 for s in texts])


@pytest.fixture(scope="module")
def tiny() -> tuple[GPT2LMHeadModel, PrefixHead]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=16, n_layer=2, n_head=2)
    model = GPT2LMHeadModel(config).eval()
    head = PrefixHead(16, torch.randn(VOCAB))
    with torch.no_grad():
        head.linear.weight.normal_()
        head.u.normal_()
    return model, head


def test_fudge_with_the_cache_matches_recomputing_each_step(
    tiny: tuple[GPT2LMHeadModel, PrefixHead],
) -> None:
    model, head = tiny
    prompts = [[1, 2, 3], [4, 5], [6]]  # left padding on two rows
    g = torch.Generator().manual_seed(0)
    k, strength, gen = 7, 2.0, 5
    r = fudge_decode(model, head, _Tok(), prompts, gen, g, k=k, strength=strength, score_fn=_score)
    assert r.tokens.shape == (3, gen)
    terms = head.token_terms().detach()
    with torch.no_grad():
        for b, prompt in enumerate(prompts):
            kl = torch.zeros(())
            for t in range(gen):
                seq = torch.tensor([prompt + r.tokens[b, :t].tolist()])
                logits = model(seq).logits[0, -1]
                cand = logits.topk(k).indices[None]
                assert int(r.tokens[b, t]) in cand[0].tolist()
                hidden, _ = model.transformer(candidate_inputs(seq, cand))
                so_far = terms[r.tokens[b, :t]].sum()
                attr = F.logsigmoid(head.linear(hidden[:, -1]).view(1, k) + so_far + terms[cand])
                q = fudge_log_probs(logits[None], cand, attr, strength)
                kl += exact_kl(q, logits[None])[0]
            torch.testing.assert_close(r.kl[b], kl, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(r.scores, _score(r.texts))


def test_best_of_n_keeps_the_best(tiny: tuple[GPT2LMHeadModel, PrefixHead]) -> None:
    model, _ = tiny
    g = torch.Generator().manual_seed(1)
    one = best_of_n_decode(model, _Tok(), [[1, 2]] * 6, 1, 6, g, score_fn=_score)
    many = best_of_n_decode(model, _Tok(), [[1, 2]] * 6, 8, 6, g, score_fn=_score)
    torch.testing.assert_close(many.scores, _score(many.texts))
    assert float(many.scores.mean()) > float(one.scores.mean())
    assert float(one.kl.max()) == 0.0


def test_the_prefix_classifier_learns_a_token_rule() -> None:
    """Label 1 when token 3 appears: the token terms should find it."""
    torch.manual_seed(0)
    tokens = torch.randint(4, VOCAB, (200, 6))
    tokens[torch.randperm(200)[:100], 2] = 3
    labels = (tokens == 3).any(1).float()
    data = LabelledSamples(torch.randn(200, 6, 8), tokens, labels, labels, [""] * 200)
    head, info = train_prefix_classifier(data, torch.zeros(VOCAB), epochs=150)
    assert info["accuracy_last_token"] >= 0.9
    assert float(head.token_terms().detach()[3]) > 1.0


def test_active_learning_curves_on_separable_blobs() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 240)
    x = rng.normal(size=(240, 5)) + 3.0 * y[:, None]
    curves = run_curves(x, y, seeds=2, start=4, step=6, rounds=2)
    assert curves.labels == [4, 10, 16]
    for acc in curves.accuracy.values():
        assert acc.shape == (2, 3)
        assert acc[:, -1].mean() > 0.9
    reach = labels_to_reach(curves, 0.9)
    assert all(share == 1.0 and 4 <= labels <= 16 for share, labels in reach.values())
    summary = summarise(curves)
    assert summary["labels"] == [4, 10, 16]


def test_the_game_plays_and_its_value_fits(tiny: tuple[GPT2LMHeadModel, PrefixHead]) -> None:
    model, head = tiny
    g = torch.Generator().manual_seed(2)
    prompts = [[1, 2], [3], [4, 5, 6], [7]]
    kw = {"moves": 2, "move_len": 2, "candidates": 3, "score_fn": _score}
    for pos, neg in (("random", "greedy"), ("value", "random"), ("greedy", "value")):
        games = play(model, _Tok(), prompts, pos, neg, g, head, **kw)  # type: ignore[arg-type]
        assert [len(s) for s in games.states] == [3] * 4
        assert all(len(s[-1]) == 4 for s in games.states)
        torch.testing.assert_close(games.outcome, torch.sign(_score(games.texts)))
    with pytest.raises(ValueError, match="value needs a head"):
        play(model, _Tok(), prompts, "value", "random", g, None, **kw)  # type: ignore[arg-type]
    fitted = fit_value(model, games, torch.zeros(VOCAB), lam=1.0, epochs=3)
    values = state_values(model, fitted, prompts, [s[1] for s in games.states])
    assert values.shape == (4,) and bool((values.abs() <= 1).all())
