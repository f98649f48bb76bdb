"""Matplotlib for files, not screens: the ``Agg`` backend (no display needed, so plots work
over ssh and in CI) and :func:`save_figure`. Import ``plt`` from here so that the backend is
chosen before pyplot is first imported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["plt", "save_figure"]


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lay ``fig`` out, write it to ``path`` (the format from the suffix, parent folders
    created), close it so it frees its memory, and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
