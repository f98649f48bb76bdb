"""``mlab study NAME``: rerun a study from its config (the runs not yet finished), then fit,
test and draw it (:mod:`mlab.scaling.studies`, :mod:`mlab.scaling.analyse`). Imports torch
only when the command runs, so ``mlab --help`` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["study_command"]


def study_command(
    name: Annotated[
        str | None,
        typer.Argument(help="A shipped study (`mlab study` lists them) or a .toml file."),
    ] = None,
    tiny: Annotated[
        bool, typer.Option("--tiny", help="CI's version: a few tiny runs, seconds each.")
    ] = False,
    runs_dir: Annotated[
        Path, typer.Option(help="Run folders go to RUNS_DIR/NAME/ (tiny: RUNS_DIR/NAME-tiny/).")
    ] = Path("runs/studies"),
    queue: Annotated[
        str | None,
        typer.Option(
            help="The job queue: sqlite:///path.db or redis://host:port/db (default: "
            "sqlite:///RUNS_DIR/NAME/queue.db)."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes on the queue (1: this one).")] = 1,
    figure: Annotated[Path | None, typer.Option(help="Also copy the figure to this PNG.")] = None,
    analyse_only: Annotated[
        bool,
        typer.Option("--analyse-only", help="Train nothing: analyse the runs finished so far."),
    ] = False,
) -> None:
    """Run a study (a grid of training runs) and print what it shows, with its uncertainty;
    without NAME, list the shipped studies."""
    import shutil

    from mlab.scaling.analyse import analyse, collect
    from mlab.scaling.runner import (
        analysis_dir,
        default_queue,
        run_study,
        study_dir,
        study_jobs,
    )
    from mlab.scaling.studies import load_study, study_names
    from mlab.search import open_queue

    console = Console()
    if name is None:
        for shipped in study_names():
            console.print(f"{shipped}: {load_study(shipped).title}")
        return
    study = load_study(name, tiny=tiny)
    if tiny:
        study.name += "-tiny"
        study.search += "-tiny"
    if analyse_only:
        folder = study_dir(study, runs_dir)
        runs = [(r, folder / job.id) for r, job in study_jobs(study, runs_dir)]  # type: ignore[attr-defined]
    else:
        runs = run_study(study, runs_dir, queue=queue, workers=workers)
    with open_queue(queue or default_queue(study, runs_dir)) as q:
        done = {job.id for job in q.results(study.search)}
    results = collect([(run, folder) for run, folder in runs if folder.name in done])
    summary = analyse(study, results, analysis_dir(study, runs_dir), n_boot=200 if tiny else 1000)
    console.print(f"[bold]{study.title}[/bold] ({len(results)} of {len(runs)} runs)")
    for line in summary["lines"]:
        console.print("  " + line, highlight=False)
    if figure is not None:
        figure.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(summary["figure"], figure)
    console.print(f"Wrote {summary['figure']}" + (f" and {figure}" if figure else ""))
