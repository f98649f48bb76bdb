"""``mlab analyze RUN_A RUN_B``: compare two training runs in one HTML report
(:mod:`mlab.analysis.report`); ``mlab analyze SEARCH_FOLDER``: the two best runs of a
search (w3d2's ``runs/<search>/<job>/``). Imports numpy, scipy and matplotlib only when it
runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["analyze_command", "best_two_runs"]


def _last_val_loss(run: Path) -> float | None:
    from mlab.train.metrics import read_metrics

    losses = [m["val_loss"] for m in read_metrics(run / "metrics.jsonl") if "val_loss" in m]
    return float(losses[-1]) if losses else None


def best_two_runs(folder: Path) -> list[tuple[Path, float]]:
    """The runs in ``folder`` (its subfolders with a ``metrics.jsonl``: a search's runs, or
    any runs side by side) with their last validation loss, least first; raise
    ``DataError`` when fewer than two have one."""
    from mlab.errors import DataError

    runs = sorted(p for p in folder.iterdir() if (p / "metrics.jsonl").is_file())
    ranked = sorted(
        ((run, loss) for run in runs if (loss := _last_val_loss(run)) is not None),
        key=lambda pair: pair[1],
    )
    if len(ranked) < 2:
        raise DataError(
            f"{folder} holds {len(ranked)} run(s) with a validation loss: analyzing a folder "
            "compares its two best runs, so it needs two (or give two run folders)"
        )
    return ranked


def analyze_command(
    run_a: Annotated[
        Path,
        typer.Argument(
            help="Run folder A, written by mlab train; or, alone, a folder of runs (a "
            "search's runs/<search>/): its two best runs are compared."
        ),
    ],
    run_b: Annotated[
        Path | None, typer.Argument(help="Run folder B, evaluated on the same examples.")
    ] = None,
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
    self-contained HTML file. Given one folder of runs (a search's), compares its two runs
    with the lowest last validation loss."""
    from mlab.analysis.report import common_step, compare_losses, verdict, write_report
    from mlab.errors import MlabError
    from mlab.train.metrics import list_eval_examples, read_eval_examples

    console = Console()
    if run_b is None:
        if not run_a.is_dir():
            console.print(f"[red]error:[/red] {run_a} is not a folder of runs")
            raise typer.Exit(2)
        if (run_a / "metrics.jsonl").is_file():
            console.print(
                f"[red]error:[/red] {run_a} is one run: give a second run to compare it "
                "with, or the folder holding several runs"
            )
            raise typer.Exit(2)
        try:
            ranked = best_two_runs(run_a)
        except MlabError as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2) from None
        for i, (run, loss) in enumerate(ranked[:5], start=1):
            console.print(f"{i}. {run.name}  val_loss {loss:.4f}", highlight=False)
        console.print("Comparing the best two.", highlight=False)
        (run_a, _), (run_b, _) = ranked[:2]
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
