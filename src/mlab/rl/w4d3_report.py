"""w4d3's results over seeds: the FUDGE comparison's rows and the game's matchups pooled
over every seed's run (``mlab rl fudge --out`` and ``mlab rl game --out`` folders), as
Markdown tables for the day's README, and the score-against-KL figure.

Pooling: each seed draws its own prompts (and, for FUDGE, trains its own classifier; for
the game, fits its own value functions), so a method's pooled mean is over every prompt
(or game) of every seed, and its bootstrap 95% interval is over those pooled prompts
(games): it holds the prompts' spread, not the spread between classifiers. The seeds'
own means are listed beside it, for that."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mlab.figures import plt, save_figure

__all__ = [
    "fudge_table",
    "game_table",
    "load_runs",
    "plot_frontier",
    "pool_fudge",
    "pool_games",
]


def load_runs(folder: Path, name: str) -> list[dict[str, Any]]:
    """Every ``name`` (``fudge.json``, ``game.json``) one level under ``folder``, sorted
    by path; raise ``FileNotFoundError`` naming the pattern when there is none."""
    paths = sorted(Path(folder).glob(f"*/{name}"))
    if not paths:
        raise FileNotFoundError(f"no */{name} under {folder}: run mlab rl with --out there")
    return [json.loads(p.read_text()) for p in paths]


def _ci(x: np.ndarray) -> list[float]:
    from mlab.analysis.bootstrap import bootstrap_ci

    return list(bootstrap_ci(x))


def pool_fudge(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per method pooled over every run that has it: best-of-``n``, then FUDGE,
    then the rest (a tuned policy), each by rows per prompt, then in the order first met."""
    by_method: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        for row in result["rows"]:
            if "scores" not in row:
                raise ValueError(
                    f"{row['method']}'s row has no per-prompt scores: rerun mlab rl fudge"
                )
            by_method.setdefault(row["method"], []).append(row)

    def order(item: tuple[str, list[dict[str, Any]]]) -> tuple[int, int]:
        method, rows = item
        kind = 0 if method.startswith("best-of") else 1 if method.startswith("FUDGE") else 2
        return kind, rows[0]["rows_per_prompt"]

    pooled = []
    for method, rows in sorted(by_method.items(), key=order):  # stable: strengths in order
        scores = np.concatenate([r["scores"] for r in rows])
        ll = np.concatenate([r["log_likelihoods"] for r in rows])
        out: dict[str, Any] = {
            "method": method,
            "rows_per_prompt": rows[0]["rows_per_prompt"],
            "seeds": len(rows),
            "prompts": len(scores),
            "score": float(scores.mean()),
            "score_ci": _ci(scores),
            "seed_scores": [r["score"] for r in rows],
            "positive": float((scores > 0).mean()),
            "kl": float(np.concatenate([r["kls"] for r in rows]).mean()),
            "perplexity": math.exp(-float(ll.mean())),
            "ms_per_token": float(np.mean([r["ms_per_token"] for r in rows])),
        }
        if all("kl_sampled" in r for r in rows):
            out["kl_sampled"] = float(np.mean([r["kl_sampled"] for r in rows]))
        pooled.append(out)
    return pooled


def fudge_table(pooled: list[dict[str, Any]]) -> str:
    """The pooled FUDGE comparison as a Markdown table."""
    lines = [
        "| method | rows | score [95% CI] | seeds' means | positive | KL | perplexity | ms/token |",
        "|---|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in pooled:
        low, high = r["score_ci"]
        seeds = ", ".join(f"{s:+.2f}" for s in r["seed_scores"])
        lines.append(
            f"| {r['method']} | {r['rows_per_prompt']} | {r['score']:+.3f} [{low:+.3f}, "
            f"{high:+.3f}] | {seeds} | {r['positive']:.2f} | {r['kl']:.2f} | "
            f"{r['perplexity']:.0f} | {r['ms_per_token']:.1f} |"
        )
    return "\n".join(lines)


def plot_frontier(pooled: list[dict[str, Any]], path: str | Path) -> Path:
    """Mean VADER (with its 95% interval) against KL to the base model: best-of-``n``, FUDGE
    at each top-``k`` over its strengths, and the tuned policy's point if pooled has it."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))

    def draw(rows: list[dict[str, Any]], fmt: str, label: str, note: str, ms: float = 6) -> None:
        if not rows:
            return
        kl = [r["kl"] for r in rows]
        score = [r["score"] for r in rows]
        err = np.array(
            [[r["score"] - r["score_ci"][0], r["score_ci"][1] - r["score"]] for r in rows]
        )
        ax.errorbar(kl, score, yerr=err.T, fmt=fmt, ms=ms, capsize=3, label=label)
        for r, x, y in zip(rows, kl, score, strict=True):
            ax.annotate(
                r["method"].split()[-1] if note else "",
                (x, y),
                fontsize=8,
                xytext=(4, -10),
                textcoords="offset points",
            )

    draw([r for r in pooled if r["method"].startswith("best-of")], "k^-", "best-of-n", "n")
    ks = sorted({r["rows_per_prompt"] for r in pooled if r["method"].startswith("FUDGE")})
    for k in ks:
        rows = [r for r in pooled if r["method"].startswith(f"FUDGE k={k} ")]
        draw(rows, "o-", f"FUDGE, top-{k} (s = 0, 1, 3, 10)", "s")
    draw([r for r in pooled if r["method"] == "PPO policy"], "r*", "w4d2's PPO policy", "", ms=12)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("KL(decoder ‖ base model) per 16-token continuation, nats (symlog)")
    ax.set_ylabel("mean VADER compound (95% CI)")
    seeds = max(r["seeds"] for r in pooled)
    plural = "s" if seeds > 1 else ""
    ax.set_title(f"Score against KL: {pooled[0]['prompts']} prompts ({seeds} seed{plural})")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _outcomes(row: dict[str, Any], games: int) -> np.ndarray:
    """A matchup's outcomes; from the win shares when the run did not keep them."""
    if "outcomes" in row:
        return np.asarray(row["outcomes"], dtype=np.float64)
    wins, losses = round(row["positive_wins"] * games), round(row["negative_wins"] * games)
    return np.array([1.0] * wins + [-1.0] * losses + [0.0] * (games - wins - losses))


def pool_games(results: list[dict[str, Any]], games: int = 96) -> dict[str, Any]:
    """Each matchup's outcomes pooled over the runs (``games`` per matchup for a run that
    did not keep its outcomes), and each $\\lambda$'s held-out calibration: the mean
    squared error averaged over runs, the bins merged (weighted by their states)."""
    by_pair: dict[tuple[str, str], list[np.ndarray]] = {}
    for result in results:
        n = int(result.get("eval_games", games))
        for row in result["matchups"]:
            pair = (row["positive"], row["negative"])
            by_pair.setdefault(pair, []).append(_outcomes(row, n))
    matchups = []
    for (pos, neg), parts in by_pair.items():
        z = np.concatenate(parts)
        matchups.append(
            {
                "positive": pos,
                "negative": neg,
                "seeds": len(parts),
                "games": len(z),
                "score": float(z.mean()),
                "ci": _ci(z),
                "seed_scores": [float(p.mean()) for p in parts],
                "positive_wins": float((z > 0).mean()),
                "negative_wins": float((z < 0).mean()),
            }
        )
    calibration: dict[str, Any] = {}
    for lam in results[0]["calibration"]:
        cals = [r["calibration"][lam] for r in results]
        bins = []
        for b in range(len(cals[0]["bins"])):
            cells = [c["bins"][b] for c in cals if c["bins"][b]["n"]]
            n = sum(c["n"] for c in cells)
            mean_v = sum(c["n"] * c["mean_v"] for c in cells) / n if n else None
            mean_z = sum(c["n"] * c["mean_outcome"] for c in cells) / n if n else None
            bins.append(
                {"bin": cals[0]["bins"][b]["bin"], "n": n, "mean_v": mean_v, "mean_outcome": mean_z}
            )
        calibration[lam] = {
            "mse": float(np.mean([c["mse"] for c in cals])),
            "seed_mse": [c["mse"] for c in cals],
            "outcome_var": float(np.mean([c["outcome_var"] for c in cals])),
            "bins": bins,
        }
    return {"matchups": matchups, "calibration": calibration}


def game_table(pooled: dict[str, Any]) -> str:
    """The pooled win rates and calibration as two Markdown tables."""
    lines = [
        "| positive player | negative player | mean outcome [95% CI] | seeds' means "
        "| positive wins | negative wins |",
        "|---|---|---|---|---:|---:|",
    ]
    for m in pooled["matchups"]:
        low, high = m["ci"]
        seeds = ", ".join(f"{s:+.2f}" for s in m["seed_scores"])
        lines.append(
            f"| {m['positive']} | {m['negative']} | {m['score']:+.3f} [{low:+.3f}, "
            f"{high:+.3f}] | {seeds} | {m['positive_wins']:.2f} | {m['negative_wins']:.2f} |"
        )
    first = next(iter(pooled["calibration"].values()))["bins"]
    edges = [f"V in [{b['bin'][0]:.1f}, {b['bin'][1]:.1f})" for b in first]
    edges[-1] = edges[-1][:-1] + "]"  # the last bin holds V = 1
    lines += [
        "",
        "| $\\lambda$ | held-out MSE (seeds) | outcome variance | " + " | ".join(edges) + " |",
        "|---|---|---:|" + "---|" * len(edges),
    ]
    for lam, c in pooled["calibration"].items():
        seeds = ", ".join(f"{s:.3f}" for s in c["seed_mse"])
        cells = " | ".join(
            f"{b['mean_v']:+.2f} → {b['mean_outcome']:+.2f} ({b['n']})" if b["n"] else "-"
            for b in c["bins"]
        )
        lines.append(f"| {lam} | {c['mse']:.3f} ({seeds}) | {c['outcome_var']:.3f} | {cells} |")
    return "\n".join(lines)
