"""From a data set in memory to what a training loop eats: pixels as floats, a random
train/validation split, and shuffled minibatches.

``minibatches`` gives the batches ``torch.utils.data.DataLoader`` gives over a
``TensorDataset(x, y)``, without the machinery (workers, samplers, collation) that data
already in one tensor does not need. These three functions are exercises of day w1d2.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from jaxtyping import Float32, Int64, Shaped, UInt8
from torch import Tensor

from mlab.errors import DataError, ShapeError

__all__ = ["minibatches", "normalise_images", "train_val_split"]


def normalise_images(
    images: UInt8[Tensor, "*shape"], mean: float = 0.0, std: float = 1.0
) -> Float32[Tensor, "*shape"]:
    """Pixels 0..255 (uint8) to float32: scale to [0, 1] by dividing by 255, then standardise
    with the given ``mean`` and ``std`` (of the scaled pixels): ``(images / 255 - mean) / std``.
    The defaults leave the values in [0, 1].

    Raise ``DataError`` when ``images`` is not uint8 (floats were probably normalised
    already; normalising twice is a classic silent bug), and ``ValueError`` when ``std`` is
    not positive.

    >>> normalise_images(torch.tensor([0, 51, 255], dtype=torch.uint8))
    tensor([0.0000, 0.2000, 1.0000])
    """
    if images.dtype != torch.uint8:
        raise DataError(
            f"normalise_images expects uint8 pixels 0..255, got {images.dtype}: were they "
            "normalised already?"
        )
    if std <= 0:
        raise ValueError(f"std={std} must be positive: it divides the pixels")
    # uint8 / int is true division in float32 (torch's default float type)
    return (images / 255 - mean) / std


def train_val_split(
    n: int, val_fraction: float, generator: torch.Generator | None = None
) -> tuple[Int64[Tensor, " n_train"], Int64[Tensor, " n_val"]]:
    """Split the indices ``0 .. n-1`` at random into ``(train_idx, val_idx)``.

    Draw one permutation ``torch.randperm(n, generator=generator)``; its first
    ``round(n * val_fraction)`` entries are the validation indices and the rest the training
    indices, both in the permutation's order. The same seed gives the same split.

    Raise ``ValueError`` unless ``0 <= val_fraction <= 1``.

    >>> train, val = train_val_split(10, 0.3, torch.Generator().manual_seed(0))
    >>> len(train), len(val), sorted(train.tolist() + val.tolist()) == list(range(10))
    (7, 3, True)
    """
    if not 0 <= val_fraction <= 1:
        raise ValueError(f"val_fraction={val_fraction} should be between 0 and 1")
    order = torch.randperm(n, generator=generator)
    n_val = round(n * val_fraction)
    return order[n_val:], order[:n_val]


def minibatches(
    x: Shaped[Tensor, " n *x"],
    y: Shaped[Tensor, " n *y"],
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[Shaped[Tensor, " batch *x"], Shaped[Tensor, " batch *y"]]]:
    """Yield ``(x[idx], y[idx])`` for consecutive chunks ``idx`` of ``batch_size`` example
    indices: one pass (an epoch) over the data.

    The order is ``torch.randperm(n, generator=generator)`` when ``shuffle`` (drawn when the
    iteration starts, so each epoch gets a new order), else ``0 .. n-1``. The last chunk may
    be smaller than ``batch_size``; with ``drop_last`` it is left out. These are the batches
    ``DataLoader(TensorDataset(x, y), batch_size, sampler=order, drop_last=drop_last)``
    yields. (``shuffle=True`` in a DataLoader draws an extra seed from the generator first,
    so its order differs from this one for the same seed.)

    Raise ``ShapeError`` when ``x`` and ``y`` hold different numbers of examples (dim 0),
    ``ValueError`` when ``batch_size < 1`` (as a generator, it raises when iteration starts).
    """
    if len(x) != len(y):
        raise ShapeError(
            f"x has {len(x)} examples (shape {tuple(x.shape)}) but y has {len(y)} "
            f"(shape {tuple(y.shape)}): they must match along dim 0"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    order = torch.randperm(len(x), generator=generator) if shuffle else torch.arange(len(x))
    stop = len(x) - len(x) % batch_size if drop_last else len(x)
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield x[idx], y[idx]
