"""The teaching figure of w2d5 (library code, not an exercise): DeBERTa's relative-position
bucket map and one head's content-to-position and position-to-content scores.

``python -m mlab.models.deberta_figure [PATH]`` writes it (default
``docs/images/deberta_attention.png``, the figure of the day's README and web page).

The scores come from a random-init ``mlab.models.deberta.DebertaModel`` whose
relative-position embeddings are made smooth in the distance (a random walk), as trained
ones are; that shows the structure c2p and p2c scores have: constant along diagonals near
the middle (one relative position, one score for a given query content) and banded far
away, where the log buckets share one embedding.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from mlab.figures import plt, save_figure
from mlab.models.deberta import (
    DebertaConfig,
    DebertaModel,
    c2p_scores,
    p2c_scores,
)
from mlab.nn.attention import split_heads

__all__ = ["plot_deberta_attention"]

DEFAULT_PATH = Path("docs/images/deberta_attention.png")


def plot_deberta_attention(
    path: str | Path = DEFAULT_PATH, seq: int = 64, buckets: int = 8, seed: int = 0
) -> Path:
    """Draw the bucket map of ``seq`` tokens with ``buckets`` buckets (max distance
    ``seq``) and head 0's c2p and p2c scores of the first layer of a random-init DeBERTa
    over a random sequence; write the PNG to ``path`` and return it."""
    torch.manual_seed(seed)
    config = DebertaConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=seq, relative_attention=True,
        position_buckets=buckets, pos_att_type=("c2p", "p2c"), norm_rel_ebd="layer_norm",
    )  # fmt: skip
    model = DebertaModel(config).eval()
    with torch.no_grad():
        steps = torch.randn(2 * buckets, config.hidden_size) * 0.4
        model.rel_embeddings.weight.copy_(steps.cumsum(0))  # type: ignore[union-attr]
        ids = torch.randint(1, config.vocab_size, (1, seq))
        x = model.embeddings(ids, torch.ones_like(ids))
        rel_pos, rel = model.relative_inputs(seq)
        assert rel_pos is not None and rel is not None  # relative_attention is on
        attention: Any = model.layers[0].attention  # nn.ModuleList items are Module to mypy
        q = split_heads(attention.query_proj(x), 2)
        k = split_heads(attention.key_proj(x), 2)
        pos_k = split_heads(attention.pos_key_proj(rel[None]), 2)[0]
        pos_q = split_heads(attention.pos_query_proj(rel[None]), 2)[0]
        c2p = c2p_scores(q, pos_k, rel_pos)[0, 0]
        p2c = p2c_scores(k, pos_q, rel_pos)[0, 0]
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.4))
    panels = [
        (rel_pos, f"bucket of i - j ({buckets} buckets, exact up to {buckets // 2})", "coolwarm"),
        (c2p, "head 0, content to position: $Q^c_i \\cdot K^r_{\\delta(i,j)}$", "viridis"),
        (p2c, "head 0, position to content: $K^c_j \\cdot Q^r_{\\delta(j,i)}$", "viridis"),
    ]
    for ax, (values, title, cmap) in zip(axes, panels, strict=True):
        image = ax.imshow(values.numpy(), cmap=cmap, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("key position j")
        ax.set_ylabel("query position i")
        fig.colorbar(image, ax=ax, shrink=0.8)
    return save_figure(fig, path)


if __name__ == "__main__":
    print(plot_deberta_attention(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_PATH))
