"""Timing helpers shared by the benchmarks, the data they train on, and how one is skipped."""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from mlab.data import (
    FASHION_MNIST,
    LabelledImages,
    load_fashion_mnist,
    locate_files,
    missing_data_hint,
)
from mlab.errors import DataError

__all__ = ["Row", "Skipped", "best_time", "fashion_mnist", "print_table", "run"]


class Skipped(Exception):
    """A benchmark cannot run on this machine; the message says why and what to do."""


def fashion_mnist() -> tuple[LabelledImages, LabelledImages]:
    """Fashion-MNIST's train and test splits, downloaded if need be (and possible); raise
    ``Skipped`` with the ways to get it when it is on this machine nowhere and cannot be
    downloaded. A file that is there but corrupt is an error, not a skip."""
    try:
        return load_fashion_mnist("train"), load_fashion_mnist("test")
    except DataError:
        if None in locate_files(FASHION_MNIST).values():
            raise Skipped(missing_data_hint(FASHION_MNIST)) from None
        raise


def run(name: str, main: Callable[[], Any]) -> None:
    """Run one benchmark's ``main``; when it is ``Skipped``, say so in one line and return."""
    try:
        main()
    except Skipped as why:
        print(f"{name}: skipped: {why}")


Row = tuple[str, float, float, str]  # (case, ours s, reference s, reference name)


def best_time(fn: Callable[[], Any], *, min_seconds: float = 0.2, repeat: int = 5) -> float:
    """Seconds per call: the best of ``repeat`` rounds, each long enough to time reliably."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(1, int(number * min_seconds / 0.2))
    return min(timer.repeat(repeat=repeat, number=number)) / number


def print_table(title: str, rows: list[Row]) -> None:
    table = Table(title=title, title_justify="left")
    for col in ("case", "ours", "reference", "ours / reference"):
        table.add_column(col, justify="right" if col != "case" else "left")
    for case, ours, ref, ref_name in rows:
        table.add_row(
            case, f"{ours * 1e6:,.1f} µs", f"{ref * 1e6:,.1f} µs ({ref_name})", f"{ours / ref:.2f}x"
        )
    Console().print(table)
