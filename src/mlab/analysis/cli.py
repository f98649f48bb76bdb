"""``mlab analyze RUN_A RUN_B``: compare two training runs in one HTML report
(:mod:`mlab.analysis.report`). Imports numpy, scipy and matplotlib only when it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["analyze_command"]


def analyze_command(
    run_a: Annotated[Path, typer.Argument(help="Run folder A, written by mlab train.")],
    run_b: Annotated[Path, typer.Argument(help="Run folder B, evaluated on the same examples.")],
    out: Annotated[
        Path | None, typer.Option(help="The HTML file to write (default: analysis-A-vs-B.html).")
    ] = None,
    step: Annotated[
        int | None, typer.Option(help="Compare at this step (default: the last both evaluated).")
    ] = None,
    k: Annotated[int, typer.Option(help="How many worst examples to show.")] = 6,
) -> None:
    """Compare two runs on the same validation examples: paired t-test, Wilcoxon, bootstrap
    interval, the unpaired tests for contrast, a verdict, the worst examples. Writes one
    self-contained HTML file."""
    from mlab.analysis.report import common_step, compare_losses, verdict, write_report
    from mlab.errors import MlabError
    from mlab.train.metrics import list_eval_examples, read_eval_examples

    console = Console()
    for run in (run_a, run_b):
        if not run.is_dir():
            console.print(f"[red]error:[/red] {run} is not a run folder (mlab runs lists them)")
            raise typer.Exit(2)
    target = out or Path(f"analysis-{run_a.name}-vs-{run_b.name}.html")
    try:
        at = common_step(run_a, run_b, step)
        path = write_report(run_a, run_b, target, step=at, k=k)
    except MlabError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    a, b = (read_eval_examples(dict(list_eval_examples(r))[at])["losses"] for r in (run_a, run_b))
    console.print(verdict(compare_losses(a, b), run_a.name, run_b.name), highlight=False)
    console.print(f"Wrote [bold]{path}[/bold]")
