"""How long a learner waits for the ``mlab`` command: commands that run no check, and check
runs with a fresh worker process (``MLAB_WARM_WORKER=0``) against the warm worker
(:mod:`mlab.course.engine.warm`). Each command runs as a learner runs it, in a new process;
the best of a few runs is reported, beside the goal."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mlab.course.engine import warm

MLAB = str(Path(sys.executable).with_name("mlab"))
REPEAT = 3


def _seconds(args: list[str], env: dict[str, str], cwd: Path) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        subprocess.run([MLAB, *args], cwd=cwd, env=env, capture_output=True, check=False)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        # As on a learner's machine: Python caches compiled modules (some sandboxes turn
        # that off with PYTHONDONTWRITEBYTECODE, which would time compiling mlab instead).
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        base["COLUMNS"] = "100"
        cold = {**base, "MLAB_WARM_WORKER": "0"}
        hot = {**base, "MLAB_WARM_WORKER": "1"}
        subprocess.run([MLAB, "start", "w1d1"], cwd=cwd, env=cold, capture_output=True)

        table = Table(title="mlab command latency (s, best of 3)", title_justify="left")
        for col in ("command", "fresh worker", "warm worker", "warm / fresh", "goal"):
            table.add_column(col, justify="left" if col == "command" else "right")
        plain = [
            ["--help"],
            ["list"],
            ["list", "w1d1"],
            ["read", "w1d1"],
            ["hint", "w1d1", "element_offset"],
            ["solution", "w1d3", "conv1d"],
            ["status"],
        ]
        for args in plain:
            table.add_row(
                "mlab " + " ".join(args), f"{_seconds(args, cold, cwd):.2f}", "", "", "0.5"
            )
        checks = [
            (["check", "w1d1", "-e", "element_offset"], "2"),
            (["check", "w1d1"], "3"),
            (["check", "w1d1", "--reference"], "3"),
        ]
        for args, goal in checks:
            fresh = _seconds(args, cold, cwd)
            subprocess.run([MLAB, *args], cwd=cwd, env=hot, capture_output=True)  # warm up
            warmed = _seconds(args, hot, cwd)
            table.add_row(
                "mlab " + " ".join(args),
                f"{fresh:.2f}",
                f"{warmed:.2f}",
                f"{warmed / fresh:.2f}x",
                goal,
            )
        Console().print(table)
        warm.stop_all()


if __name__ == "__main__":
    main()
