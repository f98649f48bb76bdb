"""The two-player sentiment game (w4d3, part 1's runs). Players take turns appending a move
of ``move_len`` tokens to a shared text that starts from a Shakespeare prompt; after
``moves`` moves VADER scores the players' text: the positive player wins (+1) if its
compound score is > 0, the negative player (-1) if < 0, a draw (0) otherwise.

Each move, the player to move samples ``candidates`` continuations from the frozen model
and picks one: ``random`` the first, ``greedy`` the one whose text so far VADER scores best
for it, ``value`` the one a learned $V(\\text{text})$ likes best (:func:`choose_moves`).
$V = \\tanh(\\cdot)$ of a :class:`~mlab.rl.w4d3_fudge.PrefixHead` (the model's hidden
state plus one number per token, from VADER's score of each token alone), fitted to
targets from self-play games by :func:`td_lambda_targets` ($\\lambda = 1$: Monte Carlo).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mlab.models.gpt2 import GPT2LMHeadModel
from mlab.models.shakespeare import Tokenizer
from mlab.rl.game import choose_moves, td_lambda_targets
from mlab.rl.lm_policy import left_pad_prompts
from mlab.rl.lm_ppo import sample_prompts
from mlab.rl.sentiment import sentiment_scores
from mlab.rl.w4d3_fudge import PrefixHead
from mlab.sampling import generate

__all__ = ["Games", "calibration", "fit_value", "play", "run", "self_play_data", "state_values"]

PLAYERS = ("random", "greedy", "value")


@dataclass
class Games:
    """Finished games: ``states[g][t]`` the players' tokens after ``t`` moves of game
    ``g`` (``moves + 1`` states from the empty text), ``prompts``, ``outcome`` (+1, 0, -1)
    and the players' texts."""

    prompts: list[list[int]]
    states: list[list[list[int]]]
    outcome: Tensor
    texts: list[str]


@torch.no_grad()
def state_values(
    model: GPT2LMHeadModel, head: PrefixHead, prompts: list[list[int]], moves: list[list[int]]
) -> Tensor:
    """$V$ of each text (prompt then the players' tokens so far), ``(len(prompts),)``."""
    return _values(model, head, prompts, moves)


def _values(
    model: GPT2LMHeadModel, head: PrefixHead, prompts: list[list[int]], moves: list[list[int]]
) -> Tensor:
    ids, mask = left_pad_prompts([p + m for p, m in zip(prompts, moves, strict=True)], 0)
    with torch.no_grad():
        hidden, _ = model.transformer(ids, None, mask)
    terms = head.token_terms()
    sums = torch.stack([terms[torch.tensor(m, dtype=torch.long)].sum() for m in moves])
    return torch.tanh(head.linear(hidden[:, -1]).squeeze(-1) + sums)


def play(
    model: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    prompts: list[list[int]],
    positive: str,
    negative: str,
    g: torch.Generator,
    head: PrefixHead | None = None,
    *,
    moves: int = 6,
    move_len: int = 3,
    candidates: int = 4,
    explore: float = 0.0,
    score_fn: Callable[[list[str]], Tensor] = sentiment_scores,
) -> Games:
    """Play one game per prompt, the positive player moving first. ``explore``: the chance
    that a value player picks a random candidate instead (for self-play data)."""
    n = len(prompts)
    texts: list[list[int]] = [[] for _ in range(n)]
    states: list[list[list[int]]] = [[[]] for _ in range(n)]
    rng = random.Random(int(torch.randint(0, 2**31, (1,), generator=g)))
    for move in range(moves):
        who = positive if move % 2 == 0 else negative
        sign = 1 if move % 2 == 0 else -1
        rows = [prompts[i] + texts[i] for i in range(n) for _ in range(candidates)]
        ids, mask = left_pad_prompts(rows, pad_token_id=0)
        seq = generate(model, ids, mask, max_new_tokens=move_len, do_sample=True, generator=g)
        options = seq[:, ids.shape[1] :].view(n, candidates, move_len).tolist()
        after = [texts[i] + options[i][j] for i in range(n) for j in range(candidates)]
        if who == "random":
            pick = torch.zeros(n, dtype=torch.long)
        elif who == "greedy":
            scores = score_fn([tokenizer.decode(t) for t in after]).view(n, candidates)
            pick = choose_moves(scores, torch.full((n,), sign))
        elif who == "value" and head is not None:
            many = [p for p in prompts for _ in range(candidates)]
            values = _values(model, head, many, after).view(n, candidates)
            pick = choose_moves(values, torch.full((n,), sign))
            wild = torch.tensor([rng.random() < explore for _ in range(n)])
            pick = torch.where(wild, torch.randint(0, candidates, (n,), generator=g), pick)
        else:
            raise ValueError(f"player {who!r} should be one of {PLAYERS} (value needs a head)")
        for i in range(n):
            texts[i] = texts[i] + options[i][int(pick[i])]
            states[i].append(list(texts[i]))
    decoded = [tokenizer.decode(t) for t in texts]
    outcome = torch.sign(score_fn(decoded))
    return Games(prompts, states, outcome, decoded)


def fit_value(
    model: GPT2LMHeadModel,
    games: Games,
    prior: Tensor,
    lam: float,
    epochs: int = 150,
    lr: float = 0.03,
    l2: float = 1e-3,
    seed: int = 0,
) -> PrefixHead:
    """Fit $V$ by regression on the $\\lambda$-return of every state of every game
    (reward = the outcome at the last move, $\\gamma = 1$, $V$ = 0 after the end),
    the targets recomputed from the current $V$ every epoch (fitted TD($\\lambda$))."""
    torch.manual_seed(seed)
    n, steps = len(games.prompts), len(games.states[0]) - 1
    flat_prompts = [p for p in games.prompts for _ in range(steps)]
    flat_moves = [s[t] for s in games.states for t in range(steps)]
    ids, mask = left_pad_prompts([p + m for p, m in zip(flat_prompts, flat_moves, strict=True)], 0)
    with torch.no_grad():
        hidden = model.transformer(ids, None, mask)[0][:, -1]
    width = max(1, max(len(m) for m in flat_moves))
    tokens = torch.tensor([m + [0] * (width - len(m)) for m in flat_moves], dtype=torch.long)
    real = torch.tensor([[1.0] * len(m) + [0.0] * (width - len(m)) for m in flat_moves])
    head = PrefixHead(hidden.shape[-1], prior)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    rewards = torch.zeros(n, steps)
    rewards[:, -1] = games.outcome
    for _ in range(epochs):
        logits = head.linear(hidden).squeeze(-1) + (head.token_terms()[tokens] * real).sum(1)
        v = torch.tanh(logits).view(n, steps)
        values = torch.cat([v, torch.zeros(n, 1)], 1)  # td_lambda_targets detaches
        targets = td_lambda_targets(rewards, values, 1.0, lam)
        loss = (v - targets).pow(2).mean() + l2 * head.u.pow(2).sum()
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    return head


def calibration(
    model: GPT2LMHeadModel, head: PrefixHead, games: Games, bins: int = 5
) -> dict[str, object]:
    """Held-out calibration: each state's $V$ against its game's outcome, binned by $V$;
    and the mean squared error against the outcome (Brier-like)."""
    steps = len(games.states[0]) - 1
    prompts = [p for p in games.prompts for _ in range(steps)]
    moves = [s[t] for s in games.states for t in range(steps)]
    v = state_values(model, head, prompts, moves).numpy()
    z = games.outcome.repeat_interleave(steps).numpy()
    edges = np.linspace(-1, 1, bins + 1)
    which = np.clip(np.digitize(v, edges) - 1, 0, bins - 1)
    table = [
        {
            "bin": [float(edges[b]), float(edges[b + 1])],
            "n": int((which == b).sum()),
            "mean_v": float(v[which == b].mean()) if (which == b).any() else None,
            "mean_outcome": float(z[which == b].mean()) if (which == b).any() else None,
        }
        for b in range(bins)
    ]
    return {"mse": float(((v - z) ** 2).mean()), "outcome_var": float(z.var()), "bins": table}


def self_play_data(
    model: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    lines: list[list[int]],
    n: int,
    seed: int,
    head: PrefixHead | None = None,
    batch: int = 64,
) -> Games:
    """``n`` games for training: random players, or value players exploring 30% of moves."""
    rng, g = random.Random(seed), torch.Generator().manual_seed(seed)
    parts = []
    for start in range(0, n, batch):
        prompts = sample_prompts(lines, min(batch, n - start), rng)
        kind = "random" if head is None else "value"
        parts.append(play(model, tokenizer, prompts, kind, kind, g, head, explore=0.3))
    return Games(
        [p for x in parts for p in x.prompts],
        [s for x in parts for s in x.states],
        torch.cat([x.outcome for x in parts]),
        [t for x in parts for t in x.texts],
    )


def run(
    model: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    lines: list[list[int]],
    *,
    train_games: int = 512,
    eval_games: int = 128,
    lams: tuple[float, ...] = (1.0, 0.5, 0.0),
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, object]:
    """Self-play data from random players, $V$ fitted with each $\\lambda$, calibration on
    held-out games, then win rates: each value player against random in both seats, and
    value, greedy and random against each other. A matchup's score is the mean outcome
    (+1 the positive player won, -1 the negative), with a bootstrap 95% CI over games."""
    from mlab.analysis.bootstrap import bootstrap_ci

    model.eval()
    prior = sentiment_scores([tokenizer.decode([i]) for i in range(model.config.vocab_size)])
    train = self_play_data(model, tokenizer, lines, train_games, seed)
    held = self_play_data(model, tokenizer, lines, eval_games, seed + 1)
    wins = float((train.outcome > 0).float().mean())
    log(f"self-play: {train_games} games, positive wins {wins:.2f}")
    heads: dict[float, PrefixHead] = {}
    calibrations: dict[str, object] = {}
    matchups: list[dict[str, object]] = []
    samples: list[str] = []
    for lam in lams:
        heads[lam] = fit_value(model, train, prior, lam, seed=seed)
        cal = calibration(model, heads[lam], held)
        calibrations[str(lam)] = cal
        mse, var = cal["mse"], cal["outcome_var"]
        log(f"lambda={lam}: held-out MSE {mse:.3f} (outcome variance {var:.3f})")
    g = torch.Generator().manual_seed(seed + 2)
    rng = random.Random(seed + 2)
    prompts = sample_prompts(lines, eval_games, rng)
    pairs = [(f"value(lam={lam})", "random") for lam in lams]
    pairs += [("random", f"value(lam={lam})") for lam in lams]
    pairs += [
        ("value(lam=1.0)", "greedy"),
        ("greedy", "value(lam=1.0)"),
        ("greedy", "random"),
        ("random", "greedy"),
        ("random", "random"),
    ]
    for pos, neg in pairs:

        def kind(name: str) -> tuple[str, PrefixHead | None]:
            if name.startswith("value"):
                return "value", heads[float(name.split("=")[1].rstrip(")"))]
            return name, None

        (pk, ph), (nk, nh) = kind(pos), kind(neg)
        if pk == "value" and nk == "value":
            raise ValueError("one value function per game")
        games = play(model, tokenizer, prompts, pk, nk, g, ph or nh)
        z = games.outcome.double().numpy()
        low, high = bootstrap_ci(z, n_resamples=2000)
        row = {
            "positive": pos,
            "negative": neg,
            "score": float(z.mean()),
            "ci": [low, high],
            "positive_wins": float((z > 0).mean()),
            "negative_wins": float((z < 0).mean()),
            "outcomes": z.tolist(),
        }
        matchups.append(row)
        log(
            f"{pos:16s} vs {neg:16s} score {z.mean():+.3f} [{low:+.3f}, {high:+.3f}]  "
            f"positive wins {row['positive_wins']:.2f}, negative {row['negative_wins']:.2f}"
        )
        if pos.startswith("value") and neg == "greedy":
            samples = games.texts[:4]
    return {
        "seed": seed,
        "eval_games": eval_games,
        "calibration": calibrations,
        "matchups": matchups,
        "samples": samples,
    }
