"""Examples made readable: images in a captioned grid (PNG), text with each token's loss as
its background colour (HTML), and PNG files as ``data:`` URIs so one HTML file holds all.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from jaxtyping import Float

from mlab.errors import ShapeError

__all__ = ["image_grid_png", "png_data_uri", "token_loss_html"]


def image_grid_png(
    images: Float[np.ndarray, "n height width"],
    captions: Sequence[str],
    path: str | Path,
    columns: int = 8,
) -> Path:
    """Grey-scale images in a grid, each with its caption above it (a label, the loss, what
    each model predicted), saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim != 3 or len(images) != len(captions) or len(images) == 0:
        raise ShapeError(
            f"images of shape {images.shape} with {len(captions)} captions: pass (n, height, "
            "width) images, n >= 1, and one caption per image"
        )
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions, strict=False):
        ax.imshow(image, cmap="gray_r")
        ax.set_title(caption, fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def token_loss_html(
    tokens: Sequence[str], losses: Float[np.ndarray, " n"], vmax: float | None = None
) -> str:
    """The tokens as HTML ``<span>``s whose red background deepens with the token's loss (0 is
    white, ``vmax`` and above full red; default: the largest loss), with the loss in the
    tooltip. Newlines show as ``↵`` and break the line."""
    losses = np.asarray(losses, dtype=np.float64)
    if losses.shape != (len(tokens),):
        raise ShapeError(f"{len(tokens)} tokens and losses of shape {losses.shape}: one each")
    top = float(vmax if vmax is not None else max(float(losses.max(initial=0.0)), 1e-9))
    spans = []
    for token, loss in zip(tokens, losses, strict=True):
        alpha = min(1.0, max(0.0, float(loss) / top))
        shown = html.escape(token).replace("\n", "↵<br>").replace(" ", "&nbsp;")
        spans.append(
            f'<span title="loss {loss:.3f}" style="background: rgba(220, 38, 38, '
            f'{alpha:.2f})">{shown}</span>'
        )
    return '<span class="tokens">' + "".join(spans) + "</span>"


def png_data_uri(path: str | Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI, to inline in HTML."""
    data = Path(path).read_bytes()
    if not data.startswith(b"\x89PNG"):
        raise ValueError(f"{path} is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
