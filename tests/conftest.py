"""Shared test settings and fixtures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

# Tests never reach the network: HuggingFace loads only what is cached or shipped in a package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Check runs start fresh workers: a warm server (mlab.course.engine.warm) would outlive the
# tests. tests/test_warm.py turns it on for its own servers.
os.environ["MLAB_WARM_WORKER"] = "0"

# Triton decides whether to interpret kernels on the CPU when triton.language is first
# imported, which torch itself may do early: decide before anything imports it.
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Under pytest-xdist each worker is a process with torch's default of one thread per core:
# N workers on N cores would run N*N threads and spend their time switching. Share the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))

import pytest

from mlab.data import (
    FASHION_MNIST,
    IdxImageDataset,
    LabelledImages,
    load_idx_images,
    locate_files,
    missing_data_hint,
)

# ----------------------------------------------------------------------------------------------
# Data sets that may be missing. Every test that needs Fashion-MNIST asks for one of these
# fixtures: on a machine without it they skip, naming the ways to get it (CI installs Debian's
# dataset-fashion-mnist). Tests never download: a file found nowhere is a skip, and a file
# found but corrupt is a failure, as it would be for a learner.


class Splits(NamedTuple):
    train: LabelledImages
    test: LabelledImages


def files_or_skip(spec: IdxImageDataset) -> dict[str, Path]:
    """Each file of ``spec`` where the loaders find it; skip the test when one is missing."""
    found = locate_files(spec)
    missing = [name for name, path in found.items() if path is None]
    if missing:
        some = f" (missing: {', '.join(missing)})" if len(missing) < len(found) else ""
        pytest.skip(missing_data_hint(spec) + some)
    return {name: path for name, path in found.items() if path is not None}


def load_or_skip(spec: IdxImageDataset) -> Splits:
    """Both splits of ``spec``, verified; skip the test when a file is missing."""
    files_or_skip(spec)
    return Splits(*(load_idx_images(spec, split, download=False) for split in ("train", "test")))


@pytest.fixture(scope="session")
def fashion_mnist_files() -> dict[str, Path]:
    """Fashion-MNIST's four files (by their names, e.g. ``"t10k-images-idx3-ubyte.gz"``) where
    the loaders find them: MLAB_DATA_DIR, /usr/share/datasets/fashion-mnist, or the cache."""
    return files_or_skip(FASHION_MNIST)


@pytest.fixture(scope="session")
def fashion_mnist(fashion_mnist_files: dict[str, Path]) -> Splits:
    """Fashion-MNIST's train and test splits, uint8 images and int64 labels."""
    return load_or_skip(FASHION_MNIST)
