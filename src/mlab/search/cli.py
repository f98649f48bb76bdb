"""``mlab search``: create a search's jobs, run workers, watch the queue, read the results.

    mlab search create shakespeare_lr_batch          the jobs of a space file (or shipped name)
    mlab search work --until-empty                   a worker (start several: one per core)
    mlab search work --queue redis://host:6379/0     a worker on another machine
    mlab search status --watch                       a live table; --dead: the tracebacks
    mlab search results --plot lr.png                the best runs; the metric vs the lr

The queue is ``--queue URL`` (also ``--backend``), else ``$MLAB_SEARCH_QUEUE``, else
``sqlite:///runs/search.db``. Exit codes: 0, or 2 with a message for bad input.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mlab.errors import MlabError

__all__ = ["search_app"]

DEFAULT_QUEUE = "sqlite:///runs/search.db"

search_app = typer.Typer(
    help="Hyperparameter search on a job queue (SQLite file or Redis server): create jobs "
    "from a space file, run workers, watch them, read the best runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

QueueOption = Annotated[
    str | None,
    typer.Option(
        "--queue",
        "--backend",
        help="The queue: sqlite:///path.db or redis://host:port/db (default: "
        "$MLAB_SEARCH_QUEUE, else sqlite:///runs/search.db).",
    ),
]


def _url(queue: str | None) -> str:
    return queue or os.environ.get("MLAB_SEARCH_QUEUE") or DEFAULT_QUEUE


@contextmanager
def _errors() -> Iterator[None]:
    """Bad input: the message and exit code 2, no traceback."""
    try:
        yield
    except MlabError as err:
        console.print(f"[red]error:[/red] {err}", highlight=False, markup=True)
        raise typer.Exit(2) from None


@search_app.command("create")
def create(
    space: Annotated[str, typer.Argument(help="A space file (.gin) or a shipped space's name.")],
    queue: QueueOption = None,
) -> None:
    """Add a search's jobs to the queue (jobs already there are not added again)."""
    from mlab.search import create_search_jobs, open_queue

    with _errors(), open_queue(_url(queue)) as q:
        jobs = create_search_jobs(space)
        added = q.submit(jobs)
        name = jobs[0].search if jobs else space
        console.print(
            f"search [bold]{name}[/bold]: {len(jobs)} jobs, {added} new, on {q.url}\n"
            f"run workers: mlab search work --queue {q.url} --until-empty",
            highlight=False,
        )


@search_app.command("work")
def work_command(
    queue: QueueOption = None,
    until_empty: Annotated[
        bool, typer.Option(help="Stop when no job is queued or running (else wait for more).")
    ] = False,
    lease: Annotated[
        float, typer.Option(help="Seconds a claim lasts without a heartbeat (beats: 1/3 of it).")
    ] = 60.0,
    max_jobs: Annotated[int | None, typer.Option(help="Stop after this many jobs.")] = None,
    poll: Annotated[float, typer.Option(help="Seconds between looks at an empty queue.")] = 1.0,
    retry_base: Annotated[
        float, typer.Option(help="Back-off base (seconds) before a failed job's next try.")
    ] = 5.0,
    runs_dir: Annotated[Path, typer.Option(help="Where training runs go.")] = Path("runs"),
) -> None:
    """Run jobs from the queue, one at a time, until stopped (or the queue is empty)."""
    from mlab.search import open_queue, work

    with _errors(), open_queue(_url(queue)) as q:
        done = work(
            q,
            lease_s=lease,
            poll_s=poll,
            until_empty=until_empty,
            max_jobs=max_jobs,
            retry_base_s=retry_base,
            runs_dir=runs_dir,
        )
        print(f"worker finished {done} jobs", file=sys.stderr)


def _status_table(url: str, search: str | None) -> Table:
    from mlab.search import open_queue

    with open_queue(url) as q:
        jobs = q.jobs(search)
    table = Table("search", "queued", "running", "done", "dead", "tries", title=url)
    by_search: dict[str, list[int]] = {}
    for job in jobs:
        row = by_search.setdefault(job.search, [0, 0, 0, 0, 0])
        row[("queued", "running", "done", "dead").index(job.state)] += 1
        row[4] += job.attempts
    for name, row in by_search.items():
        table.add_row(name, *(str(v) for v in row))
    running = [j for j in jobs if j.state == "running"]
    for job in running:
        left = (job.lease_until or 0) - time.time()
        table.add_row(f"  {job.id}", "", job.worker or "", f"lease {left:.0f} s", "", "")
    return table


@search_app.command("status")
def status(
    queue: QueueOption = None,
    search: Annotated[str | None, typer.Option(help="Only this search.")] = None,
    watch: Annotated[
        bool, typer.Option(help="A live table, refreshed every second until nothing is left.")
    ] = False,
    dead: Annotated[bool, typer.Option(help="The dead-letter list with tracebacks.")] = False,
) -> None:
    """Jobs per search and state, the running ones with their worker and lease."""
    from mlab.search import open_queue

    url = _url(queue)
    with _errors():
        if dead:
            with open_queue(url) as q:
                jobs = q.dead(search)
            for job in jobs:
                console.rule(f"{job.search} {job.id} ({job.attempts} tries) {job.params}")
                console.print(job.error or "", highlight=False, markup=False)
            console.print(f"{len(jobs)} dead jobs")
            return
        if not watch:
            console.print(_status_table(url, search))
            return
        from rich.live import Live

        with Live(_status_table(url, search), console=console, refresh_per_second=2) as live:
            while True:
                time.sleep(1.0)
                live.update(_status_table(url, search))
                with open_queue(url) as q:
                    if q.unfinished() == 0:
                        break


@search_app.command("results")
def results(
    search: Annotated[str | None, typer.Argument(help="The search (default: the last).")] = None,
    queue: QueueOption = None,
    metric: Annotated[str, typer.Option(help="The metric to rank by (least first).")] = "val_loss",
    top: Annotated[int, typer.Option(help="How many runs to show.")] = 10,
    plot: Annotated[
        Path | None, typer.Option(help="Write the metric against a parameter to this PNG.")
    ] = None,
    x: Annotated[str | None, typer.Option(help="The plot's x parameter (default: lr).")] = None,
) -> None:
    """The best runs of a search, and the value of each parameter in the best one."""
    from mlab.search import open_queue
    from mlab.search.results import axes_of, best_runs, metric_of, plot_results

    with _errors(), open_queue(_url(queue)) as q:
        jobs = q.jobs()
        if search is None and jobs:
            search = jobs[-1].search
        jobs = [j for j in jobs if j.search == search]
        if not jobs:
            console.print(f"No jobs for search {search!r} in {q.url}.")
            raise typer.Exit(1)
        ranked = best_runs(jobs, metric)
        axes = axes_of(jobs)
        table = Table("#", "job", *axes, metric, "tries", title=f"{search}: best {metric}")
        for i, job in enumerate(ranked[:top], start=1):
            cells = [repr(job.params.get(a)) for a in axes]
            table.add_row(
                str(i), job.id, *cells, f"{metric_of(job, metric):.4f}", str(job.attempts)
            )
        console.print(table)
        counts = q.counts(search)
        console.print(
            f"{counts['done']} done, {counts['queued'] + counts['running']} to go, "
            f"{counts['dead']} dead",
            highlight=False,
        )
        if ranked:
            best = ranked[0]
            shown = ", ".join(f"{a} = {best.params[a]!r}" for a in axes if a != "seed")
            console.print(f"best: {shown} ({metric} {metric_of(best, metric):.4f})")
        if plot is not None:
            console.print(f"Wrote [bold]{plot_results(jobs, plot, metric, x)}[/bold]")
