"""A study's figure, drawn from its summary (:func:`mlab.scaling.analyse.analyse`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import ScalarFormatter

from mlab.figures import plt, save_figure

__all__ = ["plot_study"]


def plot_study(summary: dict[str, Any], path: Path) -> Path:
    """Two panels per kind of study; written to ``path``."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    kind = summary["kind"]
    if kind in ("size", "data"):
        _power_law(summary, left, right)
    elif kind == "factor":
        _factor(summary, left, right)
    elif kind == "early_stopping":
        _early_stopping(summary, left, right)
    else:
        _batch(summary, left, right)
    fig.suptitle(summary["title"], fontsize=11)
    return save_figure(fig, path)


def _power_law(summary: dict[str, Any], left: Any, right: Any) -> None:
    size = summary["kind"] == "size"
    runs = summary["runs"]
    x = np.array([r["n_params"] if size else r["params"]["data.tokens"] for r in runs], float)
    y = np.array([r["final_val_loss" if size else "best_val_loss"] for r in runs])
    label = "non-embedding parameters N" if size else "training tokens D"
    left.scatter(x, y, color="k", zorder=3, label="runs")
    fit = summary.get("fit")
    if fit is not None:
        grid = np.geomspace(x.min() / 1.5, x.max() * 3, 200)
        lo, hi = fit["alpha_ci"]
        left.plot(
            grid,
            fit["a"] * grid ** -fit["alpha"] + fit["c"],
            label=f"fit: alpha={fit['alpha']:.3f} [{lo:.3f}, {hi:.3f}], c={fit['c']:.2f}",
        )
        h = fit.get("holdout")
        if h is not None:
            left.plot(
                grid,
                h["a"] * grid ** -h["alpha"] + h["c"],
                "--",
                label=f"fit without the largest (alpha={h['alpha']:.3f})",
            )
            left.scatter(
                h["x"],
                h["predicted"],
                marker="x",
                s=60,
                color="C1",
                zorder=4,
                label="its prediction",
            )
        k = fit["kaplan"]
        right.loglog(x, y, "ko", label="runs")
        right.loglog(grid, k["a"] * grid ** -k["alpha"], label=f"no floor: slope -{k['alpha']:.3f}")
        right.set_ylabel("validation loss (log scale)")
        right.yaxis.set_major_formatter(ScalarFormatter())
        right.yaxis.set_minor_formatter(ScalarFormatter())
        right.set_title("Kaplan et al.'s form, L = a x^-alpha", fontsize=9)
        right.legend(fontsize=8)
    left.set_xscale("log")
    left.set_xlabel(label)
    right.set_xlabel(label)
    left.set_ylabel("validation loss (nats per character)")
    left.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)


def _factor(summary: dict[str, Any], left: Any, right: Any) -> None:
    factor = summary["factor"]
    labels: list[str] = []
    diffs: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    unit = "windows"
    for i, row in enumerate(factor["table"]):
        name = f"{factor['name']}={row['value']}"
        left.plot(row["curve_steps"], row["curve"], color=f"C{i}", label=f"{name}: validation")
        if row.get("train_curve"):
            left.plot(
                row["train_steps"],
                row["train_curve"],
                "--",
                color=f"C{i}",
                alpha=0.6,
                label=f"{name}: training",
            )
        if "vs_baseline" in row:
            d = row["vs_baseline"]
            x = len(labels)
            labels.append(str(row["value"]))
            diffs.append(d["mean"])
            lows.append(d["mean"] - d["low"])
            highs.append(d["high"] - d["mean"])
            unit = "images" if "accuracy_vs_baseline" in row else "windows"
            seeds = row.get("final_val_loss_by_seed", {}).get("by_seed", [])
            right.plot(
                [x + 0.12] * len(seeds),
                seeds,
                "o",
                ms=4,
                color="0.5",
                label="each seed (same seed at the baseline)" if x == 0 else None,
            )
    left.set_xlabel("step")
    left.set_ylabel("loss (mean over seeds)")
    left.legend(fontsize=8)
    left.grid(True, alpha=0.3)
    right.axhline(0, color="k", lw=0.8)
    if labels:
        right.errorbar(
            range(len(labels)),
            diffs,
            yerr=[lows, highs],
            fmt="o",
            capsize=4,
            label=f"mean, 95% paired bootstrap CI over {unit}",
        )
        right.set_xticks(range(len(labels)), labels)
        right.set_xlim(-0.5, len(labels) - 0.5)
        right.legend(fontsize=8)
    right.set_xlabel(factor["name"])
    right.set_ylabel(f"final val loss minus {factor['name']}={factor['baseline']}")
    right.set_title("the difference from the baseline", fontsize=9)
    right.grid(True, alpha=0.3)


def _early_stopping(summary: dict[str, Any], left: Any, right: Any) -> None:
    early = summary["early_stopping"]
    table = early["table"]
    middle = table[len(table) // 2] if table else None
    for i, curve in enumerate(early["curves"]):
        left.plot(curve["steps"], curve["val"], color=f"C{i}", label=f"run {i + 1}: validation")
        if curve["train"]:
            left.plot(curve["train_steps"], curve["train"], "--", color=f"C{i}", alpha=0.5)
        if middle is not None:
            stop = middle["stop_steps"][i]
            best = middle["best_steps"][i]
            left.axvline(stop, color=f"C{i}", ls=":", lw=1)
            left.plot([best], [curve["val"][curve["steps"].index(best)]], "*", ms=12, color=f"C{i}")
    if middle is not None:
        left.set_title(
            f"dotted: where patience {middle['patience']} stops; star: the model it keeps; "
            "dashed: training loss",
            fontsize=8,
        )
    left.set_xlabel("step")
    left.set_ylabel("loss")
    left.legend(fontsize=8)
    left.grid(True, alpha=0.3)
    right.axhline(0, color="k", lw=0.8)
    for row in table:
        d = row["vs_end"]
        right.errorbar(
            [row["patience"]],
            [d["mean"]],
            yerr=[[d["mean"] - d["low"]], [d["high"] - d["mean"]]],
            fmt="o",
            capsize=4,
            color="C0",
        )
        right.annotate(
            f"{100 * row['saved']:.0f}% of steps saved",
            (row["patience"], d["mean"]),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    right.set_xticks([row["patience"] for row in table])
    right.set_xlabel("patience (evaluations)")
    right.set_ylabel("val loss of the kept model minus the final model's")
    right.set_title("paired difference, 95% bootstrap CI over examples", fontsize=9)
    right.grid(True, alpha=0.3)


def _batch(summary: dict[str, Any], left: Any, right: Any) -> None:
    batch = summary["batch"]
    for i, rule in enumerate(("linear", "sqrt")):
        rows = sorted((t for t in batch["table"] if t["rule"] == rule), key=lambda t: t["batch"])
        done = [t for t in rows if t["steps"] is not None]
        b = np.array([t["batch"] for t in done], float)
        left.loglog(b, [t["steps"] for t in done], "o-", color=f"C{i}", label=f"lr {rule}")
        right.loglog(b, [t["tokens"] for t in done], "o-", color=f"C{i}", label=f"lr {rule}")
        fit = batch["fits"].get(rule)
        if fit is not None and len(b):
            grid = np.geomspace(b.min(), b.max(), 50)
            left.loglog(
                grid,
                fit["s_min"] * (1 + fit["b_crit"] / grid),
                ":",
                color=f"C{i}",
                label=f"S_min(1 + B_crit/B), B_crit={fit['b_crit']:.0f}",
            )
    left.set_xlabel("batch size (windows of 64 characters)")
    left.set_ylabel(f"steps to val loss {batch['target']}")
    right.set_xlabel("batch size (windows)")
    right.set_ylabel(f"tokens to val loss {batch['target']}")
    for ax in (left, right):
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(ScalarFormatter())
            axis.set_minor_formatter(ScalarFormatter())
