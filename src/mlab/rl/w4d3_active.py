"""Active learning on Shakespeare's lines (w4d3, part 3's runs): VADER is the oracle (is
the line positive?), the classifier a logistic regression on w2d1's BERT features of the
line (our BERT with all-MiniLM-L6-v2's weights: its sentence embedding), trained anew
after every round of queries. (The Shakespeare GPT-2's own mean-pooled hidden states do
little better than the base rate here: 71% on 1500 labels against 69%.)

Strategies: ``random``, ``entropy`` (uncertainty), ``margin``, ``bald`` (an ensemble of
logistic regressions on bootstrap resamples of the labelled set stands in for samples of
the posterior), and ``kcenter`` (k-center greedy on the standardised features). Learning
curves are averaged over seeds, with bootstrap 95% intervals over the seeds.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mlab.rl.active import bald_scores, entropy_scores, k_center_greedy, margin_scores
from mlab.rl.sentiment import sentiment_scores

__all__ = [
    "STRATEGIES",
    "Curves",
    "labels_to_reach",
    "line_features",
    "run_curves",
    "shakespeare_lines",
]

STRATEGIES = ("random", "entropy", "margin", "bald", "kcenter")


@torch.no_grad()
def line_features(
    texts: list[str],
    batch: int = 200,
    score_fn: Callable[[list[str]], Tensor] = sentiment_scores,
) -> tuple[np.ndarray, np.ndarray]:
    """The lines' sentence embeddings from our BERT with MiniLM's weights ``(n, 384)`` and
    their VADER labels (1 if the compound score is > 0)."""
    from mlab.models.bert import load_minilm, minilm_tokenizer, sentence_embeddings

    bert, tokenizer = load_minilm().eval(), minilm_tokenizer()
    feats = []
    for start in range(0, len(texts), batch):
        enc = tokenizer(texts[start : start + batch], padding=True, return_tensors="pt")
        mask = enc["attention_mask"]
        feats.append(sentence_embeddings(bert(enc["input_ids"], mask), mask))
    labels = (score_fn(texts) > 0).long().numpy()
    return torch.cat(feats).numpy(), labels


def shakespeare_lines(n: int, seed: int = 0) -> list[str]:
    """``n`` random lines of Tiny Shakespeare with at least 8 words that are not a
    speaker's name."""
    from mlab.models.shakespeare import load_tiny_shakespeare

    lines = [s.strip() for s in load_tiny_shakespeare().splitlines()]
    usable = [s for s in lines if len(s.split()) >= 8 and not s.endswith(":")]
    return random.Random(seed).sample(usable, n)


def _fit(x: np.ndarray, y: np.ndarray, seed: int = 0) -> object:
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    if len(np.unique(y)) < 2:  # one class so far: a constant model
        from sklearn.dummy import DummyClassifier  # type: ignore[import-untyped]

        return DummyClassifier(strategy="constant", constant=int(y[0])).fit(x, y)
    return LogisticRegression(C=3.0, max_iter=300, random_state=seed).fit(x, y)


def _probs(model: object, x: np.ndarray) -> Tensor:
    p = model.predict_proba(x)  # type: ignore[attr-defined]
    if p.shape[1] == 1:  # a constant model knows one class
        p = np.concatenate([p, np.zeros_like(p)], 1)
    return torch.as_tensor(p, dtype=torch.float64)


def _pick(
    strategy: str,
    x: np.ndarray,
    y: np.ndarray,
    labelled: np.ndarray,
    model: object,
    step: int,
    rng: np.random.Generator,
) -> np.ndarray:
    pool = np.flatnonzero(~labelled)
    if strategy == "random":
        return rng.choice(pool, step, replace=False)
    if strategy == "kcenter":
        picked = k_center_greedy(torch.as_tensor(x), torch.as_tensor(labelled), step)
        return picked.numpy()
    if strategy == "bald":
        members = []
        idx = np.flatnonzero(labelled)
        for _ in range(4):
            boot = rng.choice(idx, len(idx), replace=True)
            members.append(_probs(_fit(x[boot], y[boot]), x[pool]))
        scores = bald_scores(torch.stack(members))
    elif strategy == "entropy":
        scores = entropy_scores(_probs(model, x[pool]))
    elif strategy == "margin":
        scores = -margin_scores(_probs(model, x[pool]))
    else:
        raise ValueError(f"strategy={strategy!r} is not one of {STRATEGIES}")
    chosen: np.ndarray = pool[scores.topk(step).indices.numpy()]
    return chosen


@dataclass
class Curves:
    """Test accuracy ``(seeds, rounds + 1)`` of each strategy at each label count."""

    labels: list[int]
    accuracy: dict[str, np.ndarray]
    full_pool_accuracy: float
    base_rate: float


def run_curves(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    strategies: tuple[str, ...] = STRATEGIES,
    seeds: int = 10,
    start: int = 20,
    step: int = 20,
    rounds: int = 15,
    test_fraction: float = 0.25,
) -> Curves:
    """Learning curves: per seed, a random test split and ``start`` random labels, then
    ``rounds`` rounds of ``step`` queries each; every strategy starts from the same labels."""
    x = (features - features.mean(0)) / (features.std(0) + 1e-8)
    n = len(x)
    counts = [start + r * step for r in range(rounds + 1)]
    acc = {s: np.zeros((seeds, rounds + 1)) for s in strategies}
    split = np.random.default_rng(12345).permutation(n)
    n_test = int(test_fraction * n)
    full = _fit(x[split[n_test:]], labels[split[n_test:]])
    full_acc = float((full.predict(x[split[:n_test]]) == labels[split[:n_test]]).mean())  # type: ignore[attr-defined]
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        order = rng.permutation(n)
        test, train = order[:n_test], order[n_test:]
        xt, yt = x[train], labels[train]
        first = rng.choice(len(train), start, replace=False)
        for strategy in strategies:
            srng = np.random.default_rng(1000 + seed)
            labelled = np.zeros(len(train), dtype=bool)
            labelled[first] = True
            for r in range(rounds + 1):
                model = _fit(xt[labelled], yt[labelled], seed)
                pred = model.predict(x[test])  # type: ignore[attr-defined]
                acc[strategy][seed, r] = (pred == labels[test]).mean()
                if r < rounds:
                    labelled[_pick(strategy, xt, yt, labelled, model, step, srng)] = True
    return Curves(counts, acc, full_acc, float(labels.mean()))


def labels_to_reach(curves: Curves, target: float) -> dict[str, tuple[float, int]]:
    """For each strategy: the share of seeds whose curve reaches ``target`` accuracy, and
    the fewest labels at which the mean curve does (-1 if it never does)."""
    out = {}
    for strategy, acc in curves.accuracy.items():
        reached = (acc >= target).any(1).mean()
        mean = acc.mean(0)
        hit = np.flatnonzero(mean >= target)
        out[strategy] = (float(reached), curves.labels[int(hit[0])] if len(hit) else -1)
    return out


def summarise(curves: Curves) -> dict[str, object]:
    """Mean accuracy and bootstrap 95% CI over seeds at every label count, per strategy."""
    from mlab.analysis.bootstrap import bootstrap_ci

    out: dict[str, object] = {
        "labels": curves.labels,
        "full_pool_accuracy": curves.full_pool_accuracy,
        "base_rate": curves.base_rate,
    }
    for strategy, acc in curves.accuracy.items():
        cis = [bootstrap_ci(acc[:, r], n_resamples=2000) for r in range(acc.shape[1])]
        out[strategy] = {
            "mean": acc.mean(0).tolist(),
            "low": [c[0] for c in cis],
            "high": [c[1] for c in cis],
        }
    return out


def plot_curves(summary: dict[str, object], path: str, target: float | None = None) -> None:
    """The learning curves with their 95% bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    labels = summary["labels"]
    for strategy in STRATEGIES:
        if strategy in summary:
            s = summary[strategy]
            assert isinstance(s, dict)
            ax.plot(labels, s["mean"], label=strategy)  # type: ignore[arg-type]
            ax.fill_between(labels, s["low"], s["high"], alpha=0.2)  # type: ignore[arg-type]
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:.2f}")
    base_rate = summary["base_rate"]
    assert isinstance(base_rate, float)
    ax.axhline(1 - base_rate, color="black", ls=":", lw=1, label="always 'not positive'")
    ax.set_xlabel("labels bought from the oracle (VADER)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Active learning: is this Shakespeare line positive?")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
