"""``mlab train`` and ``mlab runs`` (:mod:`mlab.train.main`, :mod:`mlab.train.runs`). Imports
torch and gin only when a command runs, so ``mlab --help`` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["TRAIN_CONTEXT", "runs_command", "train_command"]

# Every argument goes to main(argv)'s own parser (so `mlab train --help` is its help).
TRAIN_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def train_command(ctx: typer.Context) -> None:
    """Train from a gin config: mlab train CONFIG.gin [--bind 'AdamW.lr = 3e-4' ...]
    [--resume RUN] (see mlab train --help)."""
    from mlab.train.main import main

    raise typer.Exit(main(list(ctx.args)))


def runs_command(
    runs: Annotated[
        list[Path] | None, typer.Argument(help="Run folders to plot (default: list them all).")
    ] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where the run folders are.")] = Path("runs"),
    plot: Annotated[
        Path | None, typer.Option(help="Write the runs' curves (loss, val_loss) to this PNG.")
    ] = None,
) -> None:
    """List training runs with their last metrics; with --plot, draw their curves."""
    from mlab.train.runs import list_runs, plot_runs

    console = Console()
    if plot is not None:
        chosen = list(runs) if runs else [r.path for r in list_runs(runs_dir)]
        console.print(f"Wrote [bold]{plot_runs(list(chosen), plot)}[/bold]")
        return
    table = Table("run", "step", "checkpoint", "loss", "val_loss", "val_accuracy")
    for r in list_runs(runs_dir):
        cells = [r.metrics.get(k) for k in ("loss", "val_loss", "val_accuracy")]
        shown = [f"{v:.4f}" if isinstance(v, float) else "" for v in cells]
        table.add_row(r.name, str(r.step), str(r.checkpoint or ""), *shown)
    console.print(table if table.row_count else f"No runs in {runs_dir}.")
