"""Data for the training loop, in an order fixed by the seed and the position alone.

- Language models read a *memory-mapped token file* (a ``.npy`` array of token ids, opened with
  ``np.load(mmap_mode="r")``: the corpus is never copied into memory). Batch ``i`` is
  ``batch_size`` random windows drawn from a generator seeded with ``(seed, i)``, so the data
  position is one integer and any batch can be produced again without replaying the others.
- Images come from a ``torch.utils.data.DataLoader`` (with worker processes) over a permutation
  of the training set drawn from ``(seed, epoch)``; the position is ``(epoch, batch index)``, and
  resuming starts the epoch's permutation at that batch.

A task also owns its loss and its evaluation, so the loop works with both. Two regularisers
(w3d4) are task options: ``label_smoothing`` (the *training* loss is
``F.cross_entropy(..., label_smoothing=eps)``; evaluation stays plain cross-entropy, so
validation losses are comparable across eps) and, for images, ``augment`` (a random crop after
zero padding and a random horizontal flip, drawn for each training batch from a generator
seeded by the batch's position, so a resumed run sees the same augmented batches; validation
images are never augmented).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from mlab.data.download import cache_dir
from mlab.errors import ConfigError, DataError, ShapeError

__all__ = [
    "ImageTask",
    "LanguageModelTask",
    "augment_images",
    "crop_images",
    "flip_images",
    "lm_batch",
    "open_token_file",
    "shakespeare_token_files",
    "write_token_file",
]

Batch = tuple[Tensor, Tensor]


def write_token_file(path: str | Path, ids: Any) -> Path:
    """Save token ids as a ``.npy`` file (uint16 when every id fits, else uint32), atomically."""
    path = Path(path)
    array = np.asarray(ids)
    dtype = np.uint16 if array.size == 0 or int(array.max()) < 2**16 else np.uint32
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array.astype(dtype))
    os.replace(tmp, path)
    return path


def open_token_file(path: str | Path) -> np.ndarray:
    """The token ids of a ``.npy`` file, memory-mapped (read-only)."""
    if not Path(path).is_file():
        raise DataError(f"token file {path} does not exist: write it with write_token_file")
    tokens: np.ndarray = np.load(path, mmap_mode="r")
    if tokens.ndim != 1:
        raise DataError(f"token file {path} holds shape {tokens.shape}: expected 1-D token ids")
    return tokens


def lm_batch(tokens: np.ndarray, index: int, batch_size: int, block_size: int, seed: int) -> Batch:
    """Batch number ``index``: ``batch_size`` windows of ``block_size`` tokens at offsets drawn
    from a generator seeded by ``(seed, index)``, and the same windows shifted by one."""
    if len(tokens) <= block_size:
        raise DataError(f"{len(tokens)} tokens are too few for windows of {block_size}")
    g = torch.Generator().manual_seed(seed * 1_000_003 + index)
    starts = torch.randint(len(tokens) - block_size, (batch_size,), generator=g).tolist()
    windows = np.stack([tokens[s : s + block_size + 1] for s in starts]).astype(np.int64)
    data = torch.from_numpy(windows)
    return data[:, :-1], data[:, 1:]


def shakespeare_token_files(tokenizer: str = "char") -> tuple[Path, Path]:
    """Tiny Shakespeare as token files (90% train, 10% validation), written once to the cache
    (``<cache>/tokens/``) and memory-mapped from there."""
    from mlab.models.shakespeare import CharTokenizer, load_tiny_shakespeare

    folder = cache_dir() / "tokens"
    train, val = (folder / f"shakespeare-{tokenizer}-{s}.npy" for s in ("train", "val"))
    if not (train.is_file() and val.is_file()):
        if tokenizer != "char":
            raise ConfigError(f"tokenizer={tokenizer!r}: only 'char' is shipped")
        text = load_tiny_shakespeare()
        ids = CharTokenizer(text).encode(text)
        n = int(0.9 * len(ids))
        write_token_file(train, ids[:n])
        write_token_file(val, ids[n:])
    return train, val


def _check_smoothing(label_smoothing: float) -> float:
    number = isinstance(label_smoothing, int | float) and not isinstance(label_smoothing, bool)
    if not number or not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(
            f"label_smoothing={label_smoothing}: use a weight in [0, 1) (0 is plain "
            "cross-entropy, 0.1 is the usual choice)"
        )
    return float(label_smoothing)


def crop_images(x: Tensor, padding: int, top: Tensor, left: Tensor) -> Tensor:
    """Pad ``x`` ``(batch, channels, h, w)`` with ``padding`` zeros on every side and cut each
    image's ``h x w`` window back out at row ``top[i]``, column ``left[i]`` of the padded image
    (offsets in ``[0, 2 * padding]``; ``padding`` for both is the image unchanged)."""
    if x.ndim != 4:
        raise ShapeError(f"images of shape {tuple(x.shape)}: crop needs (batch, channels, h, w)")
    h, w = x.shape[-2:]
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = top[:, None] + torch.arange(h)  # (batch, h)
    cols = left[:, None] + torch.arange(w)  # (batch, w)
    b = torch.arange(len(x))[:, None, None]
    # advanced indexing puts the indexed dims first: (batch, h, w, channels)
    return padded.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def flip_images(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` ``(batch, channels, h, w)`` with the images where ``mask`` is true mirrored left to
    right (the last dim reversed)."""
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def augment_images(x: Tensor, generator: torch.Generator, crop_padding: int, flip: bool) -> Tensor:
    """A random crop (:func:`crop_images`, both offsets uniform in ``[0, 2 * crop_padding]``,
    drawn first: rows, then columns) and, with ``flip``, a horizontal flip of each image with
    probability 1/2 (:func:`flip_images`, drawn after), all from ``generator``."""
    n = len(x)
    if crop_padding:
        top = torch.randint(0, 2 * crop_padding + 1, (n,), generator=generator)
        left = torch.randint(0, 2 * crop_padding + 1, (n,), generator=generator)
        x = crop_images(x, crop_padding, top, left)
    if flip:
        x = flip_images(x, torch.rand(n, generator=generator) < 0.5)
    return x


def _logits(out: Any) -> Tensor:
    logits: Tensor = out.logits if hasattr(out, "logits") else out
    return logits


class LanguageModelTask:
    """Next-token prediction on memory-mapped token files (``corpus="shakespeare_char"``, or
    ``train_file`` and ``val_file``). ``label_smoothing``: the training loss's (evaluation's is
    plain cross-entropy)."""

    def __init__(
        self,
        batch_size: int = 12,
        block_size: int = 64,
        corpus: str = "shakespeare_char",
        train_file: str | None = None,
        val_file: str | None = None,
        eval_batches: int = 20,
        seed: int = 0,
        label_smoothing: float = 0.0,
    ) -> None:
        self.label_smoothing = _check_smoothing(label_smoothing)
        if (train_file is None) != (val_file is None):
            raise ConfigError("give both train_file and val_file, or neither (for corpus)")
        if train_file is None or val_file is None:
            if corpus != "shakespeare_char":
                raise ConfigError(f"corpus={corpus!r}: use 'shakespeare_char' or token files")
            train_path, val_path = shakespeare_token_files("char")
        else:
            train_path, val_path = Path(train_file), Path(val_file)
        self.train_tokens = open_token_file(train_path)
        self.val_tokens = open_token_file(val_path)
        self.batch_size, self.block_size = batch_size, block_size
        self.eval_batches, self.seed = eval_batches, seed
        self.index = 0
        self.examples_per_batch = batch_size * block_size  # throughput is in tokens

    def position(self) -> dict[str, int]:
        return {"index": self.index}

    def set_position(self, position: dict[str, int]) -> None:
        self.index = position["index"]

    def next_batch(self) -> Batch:
        batch = lm_batch(self.train_tokens, self.index, self.batch_size, self.block_size, self.seed)
        self.index += 1
        return batch

    def loss(self, model: Any, batch: Batch) -> Tensor:
        x, y = batch
        logits = _logits(model(x))
        return F.cross_entropy(
            logits.flatten(0, 1).float(), y.flatten(), label_smoothing=self.label_smoothing
        )

    @torch.no_grad()
    def evaluate(self, model: Any, device: torch.device) -> dict[str, float]:
        """Mean loss over ``eval_batches`` fixed validation batches."""
        return self.evaluate_examples(model, device)[0]

    @torch.no_grad()
    def evaluate_examples(
        self, model: Any, device: torch.device
    ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """:meth:`evaluate`'s metrics, and per example (one validation window; the same
        windows at every evaluation and in every run): ``inputs`` and ``targets`` (token ids,
        ``(n, block_size)``), ``token_losses`` (each target token's cross-entropy) and
        ``losses`` (their mean per window), for ``mlab analyze``'s paired tests."""
        losses, inputs, targets, token_losses = [], [], [], []
        for i in range(self.eval_batches):
            x, y = lm_batch(self.val_tokens, i, self.batch_size, self.block_size, seed=-1)
            logits = _logits(model(x.to(device))).float()
            flat, flat_y = logits.flatten(0, 1), y.to(device).flatten()
            losses.append(float(F.cross_entropy(flat, flat_y)))
            per_token = F.cross_entropy(flat, flat_y, reduction="none").view(y.shape)
            inputs.append(x.numpy())
            targets.append(y.numpy())
            token_losses.append(per_token.cpu().numpy())
        per_window = np.concatenate(token_losses)
        return {"val_loss": sum(losses) / len(losses)}, {
            "inputs": np.concatenate(inputs),
            "targets": np.concatenate(targets),
            "token_losses": per_window,
            "losses": per_window.mean(axis=1),
        }


def _image_data(dataset: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    from mlab.data.datasets import load_digits, load_fashion_mnist

    if dataset == "digits":
        d = load_digits()
        g = torch.Generator().manual_seed(0)
        perm = torch.randperm(len(d.labels), generator=g)
        x, y = d.images[perm].unsqueeze(1), d.labels[perm]
        n = int(0.8 * len(y))
        return x[:n], y[:n], x[n:], y[n:]
    if dataset == "fashion_mnist":
        train = load_fashion_mnist("train", as_float=True)
        test = load_fashion_mnist("test", as_float=True)
        return train.images.unsqueeze(1), train.labels, test.images.unsqueeze(1), test.labels
    raise ConfigError(f"dataset={dataset!r}: use 'digits' or 'fashion_mnist'")


class ImageTask:
    """Image classification: a DataLoader with ``num_workers`` workers over a per-epoch
    permutation of the training images (digits, or Fashion-MNIST).

    ``train_examples`` / ``val_examples``: only the first that many training / validation
    images (all when ``None``). ``label_smoothing``: the training loss's (evaluation's is plain
    cross-entropy). ``augment``: each training batch (never a validation one) gets a random
    crop after ``crop_padding`` pixels of zero padding and, with ``flip``, a random horizontal
    flip (:func:`augment_images`), from a generator seeded by ``(seed, epoch, batch index)``.
    """

    def __init__(
        self,
        dataset: str = "digits",
        batch_size: int = 64,
        num_workers: int = 2,
        seed: int = 0,
        eval_batch_size: int = 1000,
        train_examples: int | None = None,
        val_examples: int | None = None,
        label_smoothing: float = 0.0,
        augment: bool = False,
        crop_padding: int = 2,
        flip: bool = True,
    ) -> None:
        self.label_smoothing = _check_smoothing(label_smoothing)
        if not isinstance(augment, bool) or not isinstance(flip, bool):
            raise ConfigError(
                f"augment={augment!r}, flip={flip!r}: both are True or False (gin: True/False)"
            )
        if not isinstance(crop_padding, int) or crop_padding < 0:
            raise ConfigError(
                f"crop_padding={crop_padding!r}: a number of pixels >= 0 (0: no crop; 2 or 4 "
                "for 28x28 images)"
            )
        self.augment, self.crop_padding, self.flip = augment, crop_padding, flip
        x, y, self.val_x, self.val_y = _image_data(dataset)
        for what, n, have in (
            ("train_examples", train_examples, len(y)),
            ("val_examples", val_examples, len(self.val_y)),
        ):
            if n is not None and not 0 < n <= have:
                raise ConfigError(f"{what}={n}: {dataset} has {have}; use 1 to {have} or None")
        if train_examples is not None:
            x, y = x[:train_examples], y[:train_examples]
        if val_examples is not None:
            self.val_x, self.val_y = self.val_x[:val_examples], self.val_y[:val_examples]
        self.train_set = TensorDataset(x, y)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.eval_batch_size = eval_batch_size
        self.epoch, self.index = 0, 0
        self.examples_per_batch = batch_size
        self._iter: Iterator[Batch] | None = None

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def set_position(self, position: dict[str, int]) -> None:
        self.epoch, self.index = position["epoch"], position["index"]
        self._iter = None

    def _epoch_batches(self) -> Iterator[Batch]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.train_set), generator=g).tolist()
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        loader = DataLoader(
            self.train_set,
            batch_sampler=batches[self.index :],
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),  # never the global RNG
        )
        yield from loader

    def next_batch(self) -> Batch:
        if self._iter is None:
            self._iter = self._epoch_batches()
        batch = next(self._iter, None)
        if batch is None:
            self.epoch, self.index = self.epoch + 1, 0
            self._iter = self._epoch_batches()
            batch = next(self._iter)
        if self.augment:
            seed = (self.seed * 1_000_003 + self.epoch) * 1_000_033 + self.index
            g = torch.Generator().manual_seed(seed)
            batch = (augment_images(batch[0], g, self.crop_padding, self.flip), batch[1])
        self.index += 1
        return batch

    def loss(self, model: Any, batch: Batch) -> Tensor:
        x, y = batch
        return F.cross_entropy(_logits(model(x)).float(), y, label_smoothing=self.label_smoothing)

    @torch.no_grad()
    def evaluate(self, model: Any, device: torch.device) -> dict[str, float]:
        """Loss and accuracy on the whole validation set."""
        return self.evaluate_examples(model, device)[0]

    @torch.no_grad()
    def evaluate_examples(
        self, model: Any, device: torch.device
    ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """:meth:`evaluate`'s metrics, and per validation image (in the validation set's
        order): ``losses`` (cross-entropy), ``labels`` and ``predictions``, for
        ``mlab analyze``'s paired tests."""
        total, correct = 0.0, 0
        losses, predictions = [], []
        for i in range(0, len(self.val_y), self.eval_batch_size):
            x = self.val_x[i : i + self.eval_batch_size].to(device)
            y = self.val_y[i : i + self.eval_batch_size].to(device)
            logits = _logits(model(x)).float()
            per_example = F.cross_entropy(logits, y, reduction="none")
            total += float(per_example.sum())
            correct += int((logits.argmax(-1) == y).sum())
            losses.append(per_example.cpu().numpy())
            predictions.append(logits.argmax(-1).cpu().numpy())
        n = len(self.val_y)
        return {"val_loss": total / n, "val_accuracy": correct / n}, {
            "losses": np.concatenate(losses),
            "labels": self.val_y.numpy(),
            "predictions": np.concatenate(predictions),
        }
