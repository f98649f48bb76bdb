"""w4d2's figure: the reward/KL frontier of PPO at several fixed $\\beta$, adaptive $\\beta$,
best-of-n and value-guided decoding (left), and PPO's reward and KL over training (right).

Reads the folders ``mlab rl rlhf --out``, ``mlab rl rlhf-eval`` and ``mlab rl rlhf-decode
--out`` wrote: every ``result.json`` (PPO; its ``eval.json``, when there is one, is the big
dot) and ``decode.json`` under the given folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlab.figures import plt, save_figure

__all__ = ["plot_frontier"]


def _label(config: dict[str, Any]) -> str:
    if config.get("target_kl") is not None:
        return f"adaptive β (target {config['target_kl']:g}, horizon {config['horizon']:g})"
    return f"β = {config['beta']:g}"


def plot_frontier(runs: Path, out: Path) -> Path:
    """Draw every run under ``runs`` into one PNG at ``out``."""
    fig, (front, curve) = plt.subplots(1, 2, figsize=(12, 4.6))
    found = []
    for path in Path(runs).glob("*/result.json"):
        result = json.loads(path.read_text())
        evaluation = path.parent / "eval.json"
        result["eval"] = json.loads(evaluation.read_text()) if evaluation.is_file() else None
        found.append(result)
    results = sorted(
        found, key=lambda r: (r["config"].get("target_kl") is not None, -r["config"]["beta"])
    )
    if not results:
        raise FileNotFoundError(f"no */result.json under {runs}: run mlab rl rlhf --out first")
    for r in results:
        label = _label(r["config"])
        # every 5th iteration, as a trajectory through the reward/KL plane
        (line,) = front.plot(r["kl"][::5], r["score"][::5], ".-", alpha=0.45, label=label)
        if r["eval"] is not None:  # the tuned policy on fixed prompts, with 95% intervals
            e = r["eval"]
            front.errorbar(
                [e["exact_kl"]], [e["score"]], fmt="o", ms=9, color=line.get_color(),
                xerr=[[e["exact_kl"] - e["exact_kl_ci"][0]], [e["exact_kl_ci"][1] - e["exact_kl"]]],
                yerr=[[e["score"] - e["score_ci"][0]], [e["score_ci"][1] - e["score"]]],
            )  # fmt: skip
        else:
            last = 5
            kl = sum(r["kl"][-last:]) / last
            score = sum(r["score"][-last:]) / last
            front.plot([kl], [score], "o", ms=9, color=line.get_color())
        curve.plot(r["score"], color=line.get_color(), label=label)
        curve.plot([k / 10 for k in r["kl"]], "--", color=line.get_color(), alpha=0.6)
    for path in Path(runs).glob("*/decode.json"):
        d = json.loads(path.read_text())
        bon = d["best_of_n"]
        front.plot([b["kl"] for b in bon], [b["score"] for b in bon], "k^-", label="best-of-n")
        vg = d["value_guided"]
        front.plot(
            [v["kl"] for v in vg],
            [v["score"] for v in vg],
            "ks--",
            mfc="none",
            label="value-guided decoding",
        )
    front.set_xscale("symlog", linthresh=1.0)
    front.set_xlabel("KL(policy ‖ base) per continuation, nats (symlog)")
    front.set_ylabel("mean VADER compound")
    front.axhline(0.6, color="grey", lw=0.8, ls=":")
    front.axvline(6.0, color="grey", lw=0.8, ls=":")
    front.set_title("Reward against KL (big dots: each tuned policy, 95% CIs)")
    front.set_ylim(-0.45, 1.0)  # room for the legend below the curves
    front.legend(fontsize=7, loc="lower right", ncol=2)
    batches = sorted({r["config"]["batch"] for r in results})
    each = "/".join(str(b) for b in batches)
    curve.set_xlabel(f"PPO iteration ({each} continuations each)")
    curve.set_ylabel("mean VADER (solid); KL / 10 (dashed)")
    curve.set_title("PPO over training")
    curve.legend(fontsize=7, loc="upper left")
    return save_figure(fig, out)
