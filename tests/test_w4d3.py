"""w4d3's library: FUDGE decoding with the key/value cache against the same steps recomputed
without a cache (no padding, one row per candidate from ``candidate_inputs``), best-of-n,
the prefix classifier's training, and the active-learning curves on a tiny separable pool.
Tiny models, one thread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlab.models.gpt2 import GPT2Config, GPT2LMHeadModel
from mlab.rl.fudge import candidate_inputs, fudge_log_probs
from mlab.rl.kl import exact_kl
from mlab.rl.lm_policy import response_log_probs
from mlab.rl.lm_value import best_of_n, best_of_n_kl
from mlab.rl.w4d3_active import labels_to_reach, run_curves, summarise
from mlab.rl.w4d3_fudge import (
    LabelledSamples,
    PrefixHead,
    best_of_n_decode,
    compare,
    fudge_decode,
    policy_decode,
    train_prefix_classifier,
)
from mlab.rl.w4d3_game import fit_value, play, state_values
from mlab.rl.w4d3_report import fudge_table, game_table, plot_frontier, pool_fudge, pool_games

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


def test_best_of_n_decode_is_w4d2s_best_of_n_timed(
    tiny: tuple[GPT2LMHeadModel, PrefixHead],
) -> None:
    model, _ = tiny
    prompts = [[1, 2], [3], [4, 5, 6]]
    r = best_of_n_decode(model, _Tok(), prompts, 4, 5, torch.Generator().manual_seed(3), _score)
    scores, texts = best_of_n(
        model, _Tok(), prompts, 4, 5, torch.Generator().manual_seed(3), _score
    )
    torch.testing.assert_close(r.scores, scores)
    assert r.texts == texts == [_Tok().decode(t.tolist()) for t in r.tokens]
    assert r.tokens.shape == (3, 5) and bool((r.kl == best_of_n_kl(4)).all())


def test_policy_decode_kl_against_the_base_recomputed(
    tiny: tuple[GPT2LMHeadModel, PrefixHead],
) -> None:
    """The exact per-step KL summed, and the sampled log ratio, recomputed one row and one
    step at a time without padding; 0 for the base model itself."""
    base, _ = tiny
    policy = GPT2LMHeadModel(base.config).eval()
    policy.load_state_dict(base.state_dict())
    with torch.no_grad():
        policy.lm_head.weight.add_(0.5 * torch.randn_like(policy.lm_head.weight))
    prompts = [[1, 2, 3], [4], [5, 6]]
    g = torch.Generator().manual_seed(4)
    r = policy_decode(policy, base, _Tok(), prompts, 6, g, _score)
    assert r.kl_sampled is not None and r.tokens.shape == (3, 6)
    with torch.no_grad():
        for b, prompt in enumerate(prompts):
            seq = torch.tensor([prompt + r.tokens[b].tolist()])
            lp, lr = policy(seq).logits.float(), base(seq).logits.float()
            steps = slice(len(prompt) - 1, -1)
            torch.testing.assert_close(r.kl[b], exact_kl(lp[0, steps], lr[0, steps]).sum())
            ratio = response_log_probs(lp, seq, len(prompt)) - response_log_probs(
                lr, seq, len(prompt)
            )
            torch.testing.assert_close(r.kl_sampled[b], ratio.sum())
    assert float(r.kl.min()) > 0.01
    same = policy_decode(base, base, _Tok(), prompts, 6, g, _score)
    assert same.kl_sampled is not None
    assert float(same.kl.abs().max()) < 1e-5 and float(same.kl_sampled.abs().max()) < 1e-5


def test_compare_policy_only_decodes_what_the_full_run_does(
    tiny: tuple[GPT2LMHeadModel, PrefixHead],
) -> None:
    model, _ = tiny
    lines = [list(range(i % 7 + 1, i % 7 + 9)) for i in range(20)]
    kw = {"samples": 8, "prompts": 3, "gen_len": 4, "ns": (1, 2), "ks": (3,)}
    full = compare(model, _Tok(), lines, strengths=(1.0,), policy=model, **kw)  # type: ignore[arg-type]
    only = compare(model, _Tok(), lines, policy=model, policy_only=True, **kw)  # type: ignore[arg-type]
    methods = [r["method"] for r in full["rows"]]  # type: ignore[attr-defined]
    assert methods == ["best-of-1", "best-of-2", "FUDGE k=3 s=1", "PPO policy"]
    (row,) = only["rows"]  # type: ignore[misc]
    assert "classifier" not in only and row["method"] == "PPO policy"
    assert row["scores"] == full["rows"][-1]["scores"]  # type: ignore[index]
    assert row["kls"] == full["rows"][-1]["kls"] == [0.0] * 3  # type: ignore[index]
    with pytest.raises(ValueError, match="needs a policy"):
        compare(model, _Tok(), lines, policy_only=True, **kw)  # type: ignore[arg-type]


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


def _fudge_run(seed: int, scores: list[float]) -> dict[str, object]:
    row = {"rows_per_prompt": 4, "ms_per_token": 2.0 + seed, "kls": [1.0, 3.0]}
    return {
        "seed": seed,
        "rows": [
            {**row, "method": m, "scores": scores, "score": float(np.mean(scores))}
            | {"log_likelihoods": [-1.0, -3.0]}
            for m in ("best-of-4", "FUDGE k=4 s=1")
        ],
    }


def test_the_report_pools_prompts_over_seeds(tmp_path: Path) -> None:
    pooled = pool_fudge([_fudge_run(0, [0.5, -0.5]), _fudge_run(1, [1.0, 0.0])])
    assert [r["method"] for r in pooled] == ["best-of-4", "FUDGE k=4 s=1"]
    r = pooled[0]
    assert r["seeds"] == 2 and r["prompts"] == 4
    assert r["score"] == pytest.approx(0.25) and r["seed_scores"] == [0.0, 0.5]
    assert r["positive"] == pytest.approx(0.5) and r["kl"] == pytest.approx(2.0)
    assert r["perplexity"] == pytest.approx(np.exp(2.0)) and r["ms_per_token"] == 2.5
    assert r["score_ci"][0] < 0.25 < r["score_ci"][1]
    assert "| best-of-4 | 4 | +0.250 [" in fudge_table(pooled)
    assert plot_frontier(pooled, tmp_path / "f.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="rerun mlab rl fudge"):
        pool_fudge([{"rows": [{"method": "best-of-1", "score": 0.0}]}])


def test_the_report_pools_games_and_rebuilds_outcomes_from_win_shares() -> None:
    bins = [{"bin": [-1.0, 0.0], "n": 2, "mean_v": -0.5, "mean_outcome": -1.0}]
    cal = {"1.0": {"mse": 0.5, "outcome_var": 0.6, "bins": bins}}
    kept = {"positive": "random", "negative": "greedy", "outcomes": [1.0, -1.0, -1.0, 0.0]}
    shares = {"positive": "random", "negative": "greedy"}
    shares |= {"positive_wins": 0.25, "negative_wins": 0.5}
    runs = [
        {"eval_games": 4, "matchups": [kept], "calibration": cal},
        {"matchups": [shares], "calibration": cal},  # an older run: no outcomes kept
    ]
    pooled = pool_games(runs, games=4)
    (m,) = pooled["matchups"]
    assert m["games"] == 8 and m["seed_scores"] == [-0.25, -0.25]
    assert m["positive_wins"] == 0.25 and m["negative_wins"] == 0.5
    c = pooled["calibration"]["1.0"]
    assert c["mse"] == 0.5 and c["bins"][0]["n"] == 4 and c["bins"][0]["mean_v"] == -0.5
    assert "| random | greedy | -0.250 [" in game_table(pooled)


def test_the_fudge_command_names_bad_options(tmp_path: Path) -> None:
    """Before any model loads: --policy-only without --policy, and a bad --top-k."""
    from typer.testing import CliRunner

    from mlab.rl.cli import rl_app

    out = str(tmp_path / "out")
    runner = CliRunner(env={"COLUMNS": "200"})  # rich wraps the message at the width
    result = runner.invoke(rl_app, ["fudge", "--out", out, "--policy-only"])
    assert result.exit_code == 2 and "--policy-only needs" in result.output
    result = runner.invoke(rl_app, ["fudge", "--out", out, "--top-k", "16,x"])
    assert result.exit_code == 2 and "give integers" in result.output
    result = runner.invoke(rl_app, ["fudge", "--out", out, "--best-of", "0"])
    assert result.exit_code == 2 and "at least 1" in result.output
