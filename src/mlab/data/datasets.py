"""Image classification data sets as tensors: Fashion-MNIST, MNIST and scikit-learn's digits.

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, https://github.com/zalandoresearch/fashion-mnist)
and MNIST (LeCun, Cortes & Burges) are 28x28 greyscale images in IDX files, 60000 to train
and 10000 to test. Each file is looked for, in order, in

1. ``$MLAB_DATA_DIR/<name>/`` and ``$MLAB_DATA_DIR/`` (or the ``data_dir`` argument instead);
2. system packages: Debian's ``dataset-fashion-mnist`` installs ``/usr/share/datasets/
   fashion-mnist`` (MNIST has no such package);
3. the cache ``$MLAB_CACHE_DIR/<name>/`` (default ``~/.cache/mlab/<name>/``);

and otherwise downloaded into the cache (``download=False`` forbids that). Files may be
gzipped or plain, named with or without ``.gz``. A file that fails verification is an error
naming the file and the fix; it is never used, and never silently skipped either.

Verification. Fashion-MNIST: the SHA-256 of each file's *decompressed* IDX bytes (Debian
re-gzipped the files, so the hashes of the ``.gz`` files differ between Debian and upstream;
the IDX bytes inside are the same). MNIST: the MD5s torchvision publishes for the ``.gz`` files
its mirror serves are checked on download; a local copy (perhaps re-gzipped or unpacked) is
checked for structure only: IDX magic, uint8, 60000/10000 images of 28x28, labels 0-9, and not
one of Fashion-MNIST's files (which have the same names).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from jaxtyping import Int64, Shaped
from torch import Tensor

from mlab.data.batching import normalise_images
from mlab.data.download import cache_dir, data_dir, download
from mlab.data.idx import decode_idx, read_bytes
from mlab.errors import DataError

__all__ = [
    "FASHION_MNIST",
    "FASHION_MNIST_CLASSES",
    "MNIST",
    "IdxImageDataset",
    "LabelledImages",
    "load_digits",
    "load_fashion_mnist",
    "load_idx_images",
    "load_mnist",
    "locate_files",
    "missing_data_hint",
]

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class LabelledImages(NamedTuple):
    """Images and their labels; unpacks as ``images, labels = ...``."""

    images: Shaped[Tensor, "n height width"]  # uint8 0..255, or float32 in [0, 1]
    labels: Int64[Tensor, " n"]


@dataclass(frozen=True)
class IdxImageDataset:
    """Where an MNIST-style data set lives and how to check it."""

    name: str  # folder name under $MLAB_DATA_DIR and the cache
    title: str
    base_url: str  # the files' URLs are base_url + file name
    classes: tuple[str, ...]
    sizes: Mapping[str, int]  # split -> number of examples
    # file name -> SHA-256 of the decompressed IDX bytes; empty when not known
    sha256: Mapping[str, str] = field(default_factory=dict)
    # file name -> MD5 of the file exactly as base_url serves it (checked on download)
    download_md5: Mapping[str, str] = field(default_factory=dict)
    system_dirs: tuple[Path, ...] = ()
    system_package: str | None = None
    download_mb: int = 0
    files: Mapping[str, tuple[str, str]] = field(default_factory=lambda: dict(_SPLIT_FILES))
    image_shape: tuple[int, int] = (28, 28)


FASHION_MNIST = IdxImageDataset(
    name="fashion-mnist",
    title="Fashion-MNIST",
    base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    classes=FASHION_MNIST_CLASSES,
    sizes={"train": 60000, "test": 10000},
    # computed from the decompressed files of Debian's dataset-fashion-mnist
    sha256={
        "train-images-idx3-ubyte.gz": (
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
        ),
        "train-labels-idx1-ubyte.gz": (
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
        ),
    },
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    system_package="dataset-fashion-mnist",
    download_mb=30,
)

MNIST = IdxImageDataset(
    name="mnist",
    title="MNIST",
    base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirror
    classes=tuple(str(d) for d in range(10)),
    sizes={"train": 60000, "test": 10000},
    # torchvision.datasets.MNIST.resources: MD5s of the .gz files as the mirror serves them
    download_md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    download_mb=12,
)

# SHA-256 of decompressed bytes -> (data set title, file): recognises a file of another data set
_KNOWN_FILES = {
    digest: (spec.title, filename)
    for spec in (FASHION_MNIST, MNIST)
    for filename, digest in spec.sha256.items()
}


def _search_dirs(spec: IdxImageDataset, root: Path | None) -> list[Path]:
    root = root if root is not None else data_dir()
    first = [root / spec.name, root] if root is not None else []
    return [*first, *spec.system_dirs, cache_dir() / spec.name]


def _find(spec: IdxImageDataset, filename: str, dirs: list[Path]) -> Path | None:
    for folder in dirs:
        for name in (filename, filename.removesuffix(".gz")):
            if (folder / name).is_file():
                return folder / name
    return None


def locate_files(
    spec: IdxImageDataset, splits: tuple[str, ...] | None = None, *, data_dir: Path | None = None
) -> dict[str, Path | None]:
    """Where each file of ``splits`` (default: every split) is on this machine, in the order a
    loader looks (see the module docstring), or None for a file found nowhere: what a load with
    ``download=False`` would read, before it verifies anything.

    >>> found = locate_files(MNIST, ("test",), data_dir=Path("/nonexistent"))
    >>> list(found)
    ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']
    """
    dirs = _search_dirs(spec, data_dir)
    wanted = [name for split in splits or tuple(spec.files) for name in spec.files[split]]
    return {name: _find(spec, name, dirs) for name in wanted}


def missing_data_hint(spec: IdxImageDataset) -> str:
    """One line saying that ``spec``'s files are not on this machine and the ways to get them:
    what tests and benchmarks print when they skip for want of data.

    >>> print(missing_data_hint(FASHION_MNIST))  # doctest: +NORMALIZE_WHITESPACE
    Fashion-MNIST is not on this machine: install it (sudo apt-get install
    dataset-fashion-mnist), set MLAB_DATA_DIR to a folder holding its files, or download it
    once (about 30 MB): python -m mlab.data fashion-mnist
    """
    ways = (
        [f"install it (sudo apt-get install {spec.system_package})"] if spec.system_package else []
    )
    ways.append("set MLAB_DATA_DIR to a folder holding its files")
    ways.append(f"download it once (about {spec.download_mb} MB): python -m mlab.data {spec.name}")
    return f"{spec.title} is not on this machine: {', '.join(ways[:-1])}, or {ways[-1]}"


def _fix(spec: IdxImageDataset, path: Path) -> str:
    if path.parent in spec.system_dirs and spec.system_package:
        return (
            f"Reinstall it (sudo apt install --reinstall {spec.system_package}), or set "
            "MLAB_DATA_DIR to a folder with a good copy."
        )
    return f"Delete {path} and run again: the data will be found elsewhere or downloaded."


def _check_structure(spec: IdxImageDataset, x: Tensor, split: str, is_labels: bool) -> str:
    """What is wrong with the decoded tensor ``x``, or "" when it looks right."""
    n = spec.sizes[split]
    shape = (n,) if is_labels else (n, *spec.image_shape)
    if x.dtype != torch.uint8:
        return f"it holds {x.dtype} numbers but uint8 was expected"
    if tuple(x.shape) != shape:
        return f"its shape is {tuple(x.shape)} but the {split} split should be {shape}"
    if is_labels and int(x.max()) >= len(spec.classes):
        return f"it has label {int(x.max())} but there are only {len(spec.classes)} classes"
    return ""


def _load_verified(spec: IdxImageDataset, filename: str, path: Path, split: str) -> Tensor:
    """Read ``path`` (a copy of ``filename``), verify it, and decode it."""
    data = read_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    expected = spec.sha256.get(filename)
    problem = ""
    if expected is not None and digest != expected:
        problem = f"the SHA-256 of its decompressed bytes is {digest}, expected {expected}"
    elif _KNOWN_FILES.get(digest, (spec.title, filename)) != (spec.title, filename):
        other_title, other_file = _KNOWN_FILES[digest]
        problem = f"it is {other_title}'s {other_file}, not {spec.title}'s {filename}"
    x = None
    if not problem:
        try:
            x = decode_idx(data)
            problem = _check_structure(spec, x, split, "labels" in filename)
        except DataError as err:
            problem = str(err)
    if problem or x is None:
        raise DataError(
            f"{path} is not a good copy of {spec.title}'s {filename}: {problem}. {_fix(spec, path)}"
        )
    return x


def _how_to_get(spec: IdxImageDataset, filename: str, dirs: list[Path]) -> str:
    ways = [
        "set MLAB_DATA_DIR to a folder holding the files (directly, or in a subfolder "
        f"{spec.name}/)"
    ]
    if spec.system_package:
        ways.append(f"sudo apt install {spec.system_package} (Debian and Ubuntu)")
    ways.append(
        f"connect to the internet and run again: the files (about {spec.download_mb} MB) are "
        f"downloaded once to {cache_dir() / spec.name}"
    )
    searched = ", ".join(str(d) for d in dirs)
    listed = "\n".join(f"  - {way}" for way in ways)
    return (
        f"{spec.title}'s {filename} is not in {searched}. Get the data in one of these ways:"
        f"\n{listed}"
    )


def _load_file(
    spec: IdxImageDataset, filename: str, split: str, root: Path | None, allow_download: bool
) -> Tensor:
    dirs = _search_dirs(spec, root)
    path = _find(spec, filename, dirs)
    if path is None:
        if not allow_download:
            raise DataError(_how_to_get(spec, filename, dirs) + "\n(download=False was given)")
        path = download(
            spec.base_url + filename,
            cache_dir() / spec.name / filename,
            verify=lambda tmp: _verify_download(spec, filename, tmp, split),
            offline_help=_how_to_get(spec, filename, dirs),
        )
    return _load_verified(spec, filename, path, split)


def _verify_download(spec: IdxImageDataset, filename: str, tmp: Path, split: str) -> None:
    expected = spec.download_md5.get(filename)
    if expected is not None:
        digest = hashlib.md5(tmp.read_bytes(), usedforsecurity=False).hexdigest()
        if digest != expected:
            raise DataError(f"its MD5 is {digest}, expected {expected}")
    _load_verified(spec, filename, tmp, split)


def load_idx_images(
    spec: IdxImageDataset,
    split: str = "train",
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    as_float: bool = False,
) -> LabelledImages:
    """Load one split (``"train"`` or ``"test"``) of an MNIST-style data set: images
    ``(n, 28, 28)`` uint8 (float32 in [0, 1] with ``as_float``) and int64 labels ``(n,)``.
    See the module docstring for where files are looked for and how they are verified."""
    if split not in spec.files:
        raise ValueError(f"split={split!r}; {spec.title} has splits {sorted(spec.files)}")
    root = None if data_dir is None else Path(data_dir).expanduser()
    images_file, labels_file = spec.files[split]
    images = _load_file(spec, images_file, split, root, download)
    labels = _load_file(spec, labels_file, split, root, download).long()
    return LabelledImages(normalise_images(images) if as_float else images, labels)


def load_fashion_mnist(
    split: str = "train",
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    as_float: bool = False,
) -> LabelledImages:
    """Fashion-MNIST: 28x28 greyscale photos of clothes in 10 classes
    (``FASHION_MNIST_CLASSES``), 60000 to train and 10000 to test, 6000/1000 per class.

    >>> images, labels = load_fashion_mnist("test")  # doctest: +SKIP
    >>> images.shape, images.dtype, labels.dtype  # doctest: +SKIP
    (torch.Size([10000, 28, 28]), torch.uint8, torch.int64)
    """
    return load_idx_images(
        FASHION_MNIST, split, data_dir=data_dir, download=download, as_float=as_float
    )


def load_mnist(
    split: str = "train",
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    as_float: bool = False,
) -> LabelledImages:
    """MNIST: 28x28 greyscale handwritten digits 0-9, 60000 to train and 10000 to test.
    Downloaded (about 12 MB) unless found: no system package provides it."""
    return load_idx_images(MNIST, split, data_dir=data_dir, download=download, as_float=as_float)


def load_digits() -> LabelledImages:
    """scikit-learn's digits (UCI "optical recognition of handwritten digits", bundled with
    scikit-learn, so always available offline): 1797 images of 8x8 float32 in [0, 1] (the
    original counts 0..16 divided by 16) and int64 labels 0-9."""
    # imported here: scikit-learn takes a second to import and only this function needs it
    from sklearn.datasets import load_digits as sklearn_load_digits  # type: ignore[import-untyped]

    bunch = sklearn_load_digits()
    images = torch.from_numpy(bunch.images).to(torch.float32) / 16
    return LabelledImages(images, torch.from_numpy(bunch.target).long())
