"""The ``mlab`` command: start a day, read it, check it, get hints, see progress."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from mlab.bughunt.cli import bughunt_app
from mlab.course.engine.manifest import Day, all_days, get_day
from mlab.course.engine.report import (
    STATUS_MARK,
    STATUS_STYLE,
    check_and_report,
    default_workspace,
    learner_file,
)
from mlab.course.engine.store import ProgressStore
from mlab.course.engine.stubgen import exercise_source, workspace_source
from mlab.errors import MlabError

__all__ = ["app", "main"]

app = typer.Typer(
    help="mlab: build your own deep learning. Start with `mlab start`, then `mlab check`.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
console = Console()

DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="The workspace folder (default: $MLAB_WORKSPACE or ./workspace)."),
]
DayArg = Annotated[str, typer.Argument(help="A day id such as w1d1 (`mlab list` shows them).")]


def _workspace(directory: Path | None) -> Path:
    return directory if directory is not None else default_workspace()


def _progress(day: Day, directory: Path | None) -> dict[str, str]:
    db = _workspace(directory) / ".mlab" / "progress.sqlite3"
    if not db.is_file():
        return {}
    return {name: p.status for name, p in ProgressStore(db).latest(day.id).items()}


def _current_day(directory: Path | None) -> Day:
    """The first day with an exercise not yet passing."""
    for day in all_days():
        progress = _progress(day, directory)
        if any(progress.get(ex.name) != "pass" for ex in day.exercises):
            return day
    return all_days()[-1]


@app.command("list")
def list_days(
    day: Annotated[str | None, typer.Argument(help="Show this day's exercises.")] = None,
    directory: DirOption = None,
) -> None:
    """The days of the course with their progress, or one day's exercises."""
    if day is None:
        table = Table(title="mlab: the course", title_justify="left")
        for col in ("day", "title", "exercises", "passing", "summary"):
            table.add_column(col)
        for d in all_days():
            progress = _progress(d, directory)
            passing = sum(progress.get(ex.name) == "pass" for ex in d.exercises)
            summary = d.summary.split(".")[0] + "."
            table.add_row(d.id, d.title, str(len(d.exercises)), f"{passing}", summary)
        console.print(table)
        console.print("`mlab list DAY` shows a day's exercises; `mlab start DAY` begins one.")
        return
    d = get_day(day)
    progress = _progress(d, directory)
    table = Table(title=f"{d.id} {d.title}", title_justify="left")
    for col in ("#", "exercise", "part", "difficulty", "importance", "min", "status"):
        table.add_column(col)
    for i, ex in enumerate(d.exercises, start=1):
        status = progress.get(ex.name, "not started")
        table.add_row(
            str(i),
            ex.name,
            f"{ex.part + 1}. {d.parts[ex.part].title}",
            "★" * ex.difficulty,
            "★" * ex.importance,
            str(ex.minutes),
            Text(f"{STATUS_MARK[status]} {status}", style=STATUS_STYLE[status]),
        )
    console.print(table)


@app.command()
def start(
    day: Annotated[
        str | None, typer.Argument(help="The day to start (default: your first unfinished day).")
    ] = None,
    directory: DirOption = None,
    new: Annotated[
        bool, typer.Option("--new", help="Write fresh stubs beside your file (never over it).")
    ] = False,
) -> None:
    """Create your exercise file for a day (never overwriting your edits), then show its
    status and the next step."""
    d = get_day(day) if day else _current_day(directory)
    path = learner_file(d, None, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = workspace_source(d)
    if not path.exists():
        path.write_text(fresh, encoding="utf-8")
        console.print(
            f"Wrote [bold]{path}[/bold]: {len(d.exercises)} exercises for {d.id} {d.title}."
        )
    elif new:
        n = 1
        while (beside := path.with_name(f"{path.stem}.new{'' if n == 1 else n}.py")).exists():
            n += 1
        beside.write_text(fresh, encoding="utf-8")
        console.print(
            f"Your file {path} is untouched; fresh stubs are in [bold]{beside}[/bold]. "
            "Copy from it what you need."
        )
    elif path.read_text(encoding="utf-8") == fresh:
        console.print(f"{path} is already there, unchanged since it was written.")
    else:
        console.print(
            f"{path} is already there with your edits, so it was left as it is. "
            f"(`mlab start {d.id} --new` writes fresh stubs beside it.)"
        )
    console.print(
        f"Open it in VS Code or Jupyter (it is a notebook of `# %%` cells); "
        f"`mlab read {d.id}` shows the instructions.\n"
    )
    check_and_report(d, directory=directory, console=console)


@app.command()
def read(day: DayArg) -> None:
    """The day's instructions, rendered in the terminal."""
    d = get_day(day)
    text = d.instructions.read_text(encoding="utf-8")
    for i, part in enumerate(d.parts, start=1):
        text += f"\n\n## Part {i}: {part.title}\n\n{part.intro}\n\n"
        text += "\n".join(
            f"- `{ex.name}` ({'★' * ex.difficulty}, about {ex.minutes} min)"
            for ex in part.exercises
        )
    console.print(Markdown(text))


@app.command()
def check(
    day: DayArg,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Check this file.")] = None,
    exercise: Annotated[
        str | None, typer.Option("--exercise", "-e", help="Check only this exercise.")
    ] = None,
    reference: Annotated[
        bool, typer.Option("--reference", help="Check the reference solution instead.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    directory: DirOption = None,
) -> None:
    """Run the day's checks on your file: a table of pass / fail / error / timeout / not
    started, and a diagnostic for each failure. Exit code 0 only when all pass."""
    ok = check_and_report(
        day,
        exercise=exercise,
        file=file,
        directory=directory,
        reference=reference,
        as_json=as_json,
        console=console,
    )
    raise typer.Exit(0 if ok else 1)


@app.command()
def hint(
    day: DayArg,
    exercise: Annotated[str, typer.Argument(help="The exercise's name.")],
    directory: DirOption = None,
) -> None:
    """Reveal the next hint for an exercise (earlier ones are shown again)."""
    d = get_day(day)
    ex = d.exercise(exercise)
    store = ProgressStore.for_workspace(_workspace(directory))
    already = store.hints_revealed(d.id, ex.name)
    revealed = store.reveal_hint(d.id, ex.name, len(ex.hints))
    for i, text in enumerate(ex.hints[:revealed], start=1):
        style = "bold" if i == revealed and revealed > already else "dim"
        console.print(Text(f"Hint {i}/{len(ex.hints)}: ", style="cyan") + Text(text, style=style))
    if revealed < len(ex.hints):
        console.print(f"Run the same command again for hint {revealed + 1}.")
    else:
        console.print(f"That was the last hint. `mlab solution {d.id} {ex.name}` shows the answer.")


@app.command()
def solution(
    day: DayArg, exercise: Annotated[str, typer.Argument(help="The exercise's name.")]
) -> None:
    """Print the reference solution of an exercise (its source in the library)."""
    d = get_day(day)
    src = exercise_source(d.exercise(exercise))
    console.print(f"[dim]{src.filename}, line {src.first_line}[/dim]")
    console.print(Syntax(src.source, "python", line_numbers=True, start_line=src.first_line))


@app.command()
def status(directory: DirOption = None) -> None:
    """Your progress over all days."""
    table = Table(title=f"progress in {_workspace(directory)}", title_justify="left")
    for col in ("day", "title", "passing", "failing", "not started", "file"):
        table.add_column(col)
    for d in all_days():
        progress = _progress(d, directory)
        n = len(d.exercises)
        passing = sum(progress.get(ex.name) == "pass" for ex in d.exercises)
        failing = sum(progress.get(ex.name) in ("fail", "error", "timeout") for ex in d.exercises)
        path = learner_file(d, None, directory)
        table.add_row(
            d.id,
            d.title,
            Text(f"{passing}/{n}", style="bold green" if passing == n else ""),
            str(failing),
            str(n - passing - failing),
            str(path) if path.exists() else f"(`mlab start {d.id}`)",
        )
    console.print(table)
    d = _current_day(directory)
    console.print(f"Next: `mlab start {d.id}` or `mlab check {d.id}`.")


@app.command()
def mutants(
    day: DayArg,
    exercise: Annotated[
        str | None, typer.Option("--exercise", "-e", help="Only this exercise's mutants.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
) -> None:
    """(For course authors.) Mutate the reference and report which mutants the checks kill."""
    from mlab.course.engine.mutation_report import (
        MIN_SCORE,
        mutation_report,
        print_mutation_report,
    )

    d = get_day(day)
    names = [d.exercise(exercise).name] if exercise else None
    report = mutation_report(d, names, workers=workers)
    print_mutation_report(report, console)
    raise typer.Exit(0 if report.score >= MIN_SCORE and not report.problems else 1)


@app.command("inspect")
def inspect_(
    script: Annotated[
        Path,
        typer.Argument(
            help="A training script defining `build_model(seed)` and "
            "`train(model, *, steps, seed, on_step)`."
        ),
    ],
    against: Annotated[
        Path | None,
        typer.Option("--against", help="Another script: find where the two first differ."),
    ] = None,
    steps: Annotated[int, typer.Option(help="Training steps to record.")] = 3,
    seed: Annotated[int, typer.Option(help="The seed both scripts start from.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for report.html and its PNGs.")] = Path(
        "inspect-report"
    ),
    timeout: Annotated[float, typer.Option(help="Seconds each script may run.")] = 60.0,
) -> None:
    """Record every layer's outputs and gradients while a script trains; with `--against`,
    say where two scripts first part ways. Writes an HTML report."""
    from mlab.inspect.cli import inspect_command  # lazy: matplotlib

    raise typer.Exit(inspect_command(script, against, steps, seed, out, timeout))


demo_app = typer.Typer(
    help="Demos that draw pictures from the library's code.", no_args_is_help=True
)
app.add_typer(demo_app, name="demo")
app.add_typer(bughunt_app, name="bughunt")


@demo_app.command("cppn")
def demo_cppn(
    seed: Annotated[
        int, typer.Option(help="Seed of the random network: the picture's identity.")
    ] = 0,
    size: Annotated[int, typer.Option(help="Width and height in pixels.")] = 512,
    out: Annotated[Path, typer.Option(help="The PNG file to write.")] = Path("cppn.png"),
) -> None:
    """Draw a picture with a randomly initialised network mapping (x, y, r) to RGB (a CPPN)."""
    from mlab.tensor.cppn import demo

    path = demo(seed=seed, size=size, out=out)
    console.print(f"Wrote [bold]{path}[/bold] ({size}x{size}, seed {seed}).")


@demo_app.command("raytrace")
def demo_raytrace(
    out: Annotated[Path, typer.Option(help="The PNG file to write.")] = Path("raytrace.png"),
    size: Annotated[int, typer.Option(help="Width and height in pixels.")] = 256,
    mesh: Annotated[
        str, typer.Option(help="A built-in mesh: icosphere, cube, or scene (several shapes).")
    ] = "scene",
    stl: Annotated[
        Path | None, typer.Option(help="Render this STL file (binary or ASCII) instead.")
    ] = None,
) -> None:
    """Render a mesh to a shaded depth image with the batched ray tracer."""
    from mlab.tensor.raytrace import demo

    path = demo(out=out, size=size, mesh=mesh, stl=stl)
    console.print(f"Wrote [bold]{path}[/bold] ({size}x{size}).")


def main() -> None:
    """Entry point: turn mlab's own errors into a message and exit code 2, not a traceback."""
    try:
        app()
    except MlabError as err:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/bold red] {err}")
        sys.exit(2)
