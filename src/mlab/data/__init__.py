"""Data: IDX files, the Fashion-MNIST / MNIST / digits loaders, and batching.

Loaders look in ``$MLAB_DATA_DIR``, then system packages, then the cache ``~/.cache/mlab``,
and only then download (with checksums, atomically); see :mod:`mlab.data.datasets`.
"""

from mlab.data.batching import minibatches, normalise_images, train_val_split
from mlab.data.datasets import (
    FASHION_MNIST,
    FASHION_MNIST_CLASSES,
    MNIST,
    IdxImageDataset,
    LabelledImages,
    load_digits,
    load_fashion_mnist,
    load_idx_images,
    load_mnist,
    locate_files,
    missing_data_hint,
)
from mlab.data.download import cache_dir, data_dir, download
from mlab.data.idx import (
    IDX_DTYPES,
    decode_idx,
    encode_idx,
    parse_idx_header,
    read_idx,
    write_idx,
)

__all__ = [
    "FASHION_MNIST",
    "FASHION_MNIST_CLASSES",
    "IDX_DTYPES",
    "MNIST",
    "IdxImageDataset",
    "LabelledImages",
    "cache_dir",
    "data_dir",
    "decode_idx",
    "download",
    "encode_idx",
    "load_digits",
    "load_fashion_mnist",
    "load_idx_images",
    "load_mnist",
    "locate_files",
    "minibatches",
    "missing_data_hint",
    "normalise_images",
    "parse_idx_header",
    "read_idx",
    "train_val_split",
    "write_idx",
]
