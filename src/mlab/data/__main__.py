"""``python -m mlab.data NAME``: download a data set once into the cache (``MLAB_CACHE_DIR``,
default ``~/.cache/mlab``), where every loader finds it, offline from then on.

    python -m mlab.data fashion-mnist     # about 30 MB
    python -m mlab.data mnist             # about 12 MB

A file already on this machine (``MLAB_DATA_DIR``, a system package, the cache) is verified,
not downloaded again.
"""

from __future__ import annotations

import sys

from mlab.data.datasets import FASHION_MNIST, MNIST, load_idx_images, locate_files
from mlab.errors import DataError

DATA_SETS = {spec.name: spec for spec in (FASHION_MNIST, MNIST)}


def main(argv: list[str]) -> int:
    """Download (or verify) every split of each named data set; 0 when all are there, 2 when
    a name is unknown or a file cannot be had (the message says why and what to do)."""
    names = argv or ["--help"]
    if names[0] in ("-h", "--help") or any(name not in DATA_SETS for name in names):
        unknown = [name for name in names if name not in DATA_SETS and not name.startswith("-")]
        if unknown:
            print(f"unknown data set {', '.join(unknown)}; known: {', '.join(DATA_SETS)}")
        print(f"usage: python -m mlab.data {{{','.join(DATA_SETS)}}} ...")
        return 2 if unknown else 0
    for name in names:
        spec = DATA_SETS[name]
        try:
            for split in spec.files:
                load_idx_images(spec, split)
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        folders = sorted({str(path.parent) for path in locate_files(spec).values() if path})
        print(f"{spec.title}: every file is there and verified, in {', '.join(folders)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
