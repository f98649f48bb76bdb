"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["Row", "best_time", "print_table"]

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
