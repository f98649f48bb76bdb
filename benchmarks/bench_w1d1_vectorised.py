"""w1d1: the vectorised reference solutions against torch's built-ins (the ratio says what a
from-scratch vectorised version costs), and a Python loop against the vectorised version (the
ratio says why we vectorise)."""

from __future__ import annotations

import torch

from benchmarks.common import Row, best_time, print_table
from mlab.tensor.strides import sliding_windows
from mlab.tensor.vectorised import bincount, count_uniques, pairwise_distances, running_max


def _loop_bincount(x: torch.Tensor, n: int) -> torch.Tensor:
    counts = [0] * n
    for v in x.tolist():
        counts[v] += 1
    return torch.tensor(counts)


def main() -> None:
    g = torch.Generator().manual_seed(0)
    ints = torch.randint(0, 1000, (100_000,), generator=g)
    floats = torch.randn(100_000, generator=g)
    short = torch.randn(2_000, generator=g)  # running_max without cummax is O(n^2) memory
    a, b = torch.randn(500, 64, generator=g), torch.randn(400, 64, generator=g)
    rows: list[Row] = [
        (
            "bincount, 100k ints",
            best_time(lambda: bincount(ints)),
            best_time(lambda: torch.bincount(ints)),
            "torch.bincount",
        ),
        (
            "count_uniques, 100k ints",
            best_time(lambda: count_uniques(ints)),
            best_time(lambda: torch.unique(ints, return_counts=True)),
            "torch.unique",
        ),
        (
            "running_max, 2k floats (O(n^2))",
            best_time(lambda: running_max(short)),
            best_time(lambda: torch.cummax(short, 0)),
            "torch.cummax",
        ),
        (
            "pairwise_distances, 500x400x64",
            best_time(lambda: pairwise_distances(a, b)),
            best_time(lambda: torch.cdist(a, b)),
            "torch.cdist",
        ),
        (
            "sliding_windows, 100k, size 64",
            best_time(lambda: sliding_windows(floats, 64)),
            best_time(lambda: floats.unfold(0, 64, 1)),
            "Tensor.unfold",
        ),
    ]
    print_table("w1d1 vectorised solutions vs torch built-ins", rows)
    loop = best_time(lambda: _loop_bincount(ints, 1000), repeat=3)
    vec = best_time(lambda: bincount(ints))
    print_table(
        "why vectorise: a Python loop vs our vectorised bincount (100k ints)",
        [("Python loop vs vectorised", loop, vec, "our bincount")],
    )


if __name__ == "__main__":
    main()
