"""The ``mlab`` command: start a day, read it, check it, get hints, see progress."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from mlab.analysis.cli import analyze_command
from mlab.bughunt.cli import bughunt_app
from mlab.course.engine.manifest import Day, all_days, get_day
from mlab.course.engine.notebook import (
    KERNEL_NAME,
    kernelspec,
    notebook_for,
    write_notebook,
)
from mlab.course.engine.report import (
    STATUS_MARK,
    STATUS_STYLE,
    check_and_report,
    command,
    default_workspace,
    learner_file,
    load_error_line,
    say,
)
from mlab.course.engine.store import ProgressStore
from mlab.course.engine.stubgen import exercise_source, workspace_source
from mlab.docsite.maths import maths_as_code
from mlab.errors import CourseError, MlabError
from mlab.invocation import script_command
from mlab.models.shakespeare_cli import pretrain_app, sample_command
from mlab.rl.cli import rl_app
from mlab.scaling.cli import study_command
from mlab.search.cli import search_app
from mlab.train.cli import TRAIN_CONTEXT, runs_command, train_command

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
    typer.Option(
        "--dir",
        help="The workspace folder (default: $MLAB_WORKSPACE, else the workspace found from "
        "the current folder upwards, else ./workspace).",
    ),
]
DayArg = Annotated[str, typer.Argument(help="A day id such as w1d1 (`mlab list` shows them).")]


def _workspace(directory: Path | None) -> Path:
    return directory if directory is not None else default_workspace()


def _store(directory: Path | None) -> ProgressStore | None:
    """The workspace's progress store, if anything was ever recorded (reading never makes one)."""
    db = _workspace(directory) / ".mlab" / "progress.sqlite3"
    return ProgressStore(db) if db.is_file() else None


def _progress(day: Day, directory: Path | None) -> dict[str, str]:
    store = _store(directory)
    if store is None:
        return {}
    return {name: p.status for name, p in store.latest(day.id).items()}


def _load_failure(day: Day, directory: Path | None) -> str | None:
    """The load error of the day's last check run, if the file did not load then."""
    store = _store(directory)
    return store.load_failure(day.id) if store is not None else None


def _current_day(directory: Path | None) -> Day:
    """The first day with an exercise not yet passing."""
    for day in all_days():
        progress = _progress(day, directory)
        if any(progress.get(ex.name) != "pass" for ex in day.exercises):
            return day
    return all_days()[-1]


def _dir_option(directory: Path | None) -> tuple[str, ...]:
    """``--dir`` as given, for the commands we print: they must check the same workspace."""
    return ("--dir", str(directory)) if directory is not None else ()


def _fitted(*variants: Callable[[], Table]) -> tuple[int, Table]:
    """The first of ``variants`` (richest first) that fits the terminal's width without
    wrapping, else the last (the leanest), with its index. Optional columns are left out in
    turn rather than cropping names."""
    for i, make in enumerate(variants):
        table = make()
        # Measured with room to spare: a measurement is capped at the width it is given.
        natural = console.measure(table, options=console.options.update_width(10_000))
        if natural.maximum <= console.width:
            return i, table
    return len(variants) - 1, table


@app.command("list")
def list_days(
    day: Annotated[str | None, typer.Argument(help="Show this day's exercises.")] = None,
    directory: DirOption = None,
) -> None:
    """The days of the course with their progress, or one day's exercises."""
    if day is None:
        table = Table(title="mlab: the course", title_justify="left")
        table.add_column("day", no_wrap=True)
        table.add_column("title")
        table.add_column("passing", no_wrap=True, justify="right")
        table.add_column("summary")  # whole, wrapped
        for d in all_days():
            progress = _progress(d, directory)
            passing = sum(progress.get(ex.name) == "pass" for ex in d.exercises)
            summary = " ".join(d.summary.split())
            table.add_row(d.id, Text(d.title), f"{passing}/{len(d.exercises)}", Text(summary))
        console.print(table)
        where = _dir_option(directory)
        say(
            console,
            f"{command('list', 'DAY', options=where)} shows a day's exercises; "
            f"{command('start', 'DAY', options=where)} begins one.",
        )
        return
    d = get_day(day)
    progress = _progress(d, directory)

    def exercises_table(
        part_titles: bool, importance: bool, minutes: bool, short: bool = False
    ) -> Callable[[], Table]:
        def make() -> Table:
            table = Table(title=f"{d.id} {d.title}", title_justify="left")
            table.add_column("#", justify="right", no_wrap=True)
            table.add_column("exercise", no_wrap=True)  # names are never cut
            table.add_column("part", no_wrap=not part_titles)
            table.add_column("diff." if short else "difficulty", no_wrap=True)
            if importance:  # what a learner short of time picks by (the READMEs say so)
                table.add_column("imp." if short else "importance", no_wrap=True)
            if minutes:
                table.add_column("min", justify="right", no_wrap=True)
            table.add_column("status", no_wrap=True)
            for i, ex in enumerate(d.exercises, start=1):
                status = progress.get(ex.name, "not started")
                part = f"{ex.part + 1}. {d.parts[ex.part].title}" if part_titles else ex.part + 1
                cells: list[str | Text] = [str(i), ex.name, str(part), "★" * ex.difficulty]
                if importance:
                    cells.append("★" * ex.importance)
                if minutes:
                    cells.append(str(ex.minutes))
                cells.append(Text(f"{STATUS_MARK[status]} {status}", style=STATUS_STYLE[status]))
                table.add_row(*cells)
            return table

        return make

    leaner, table = _fitted(
        exercises_table(part_titles=True, importance=True, minutes=True),
        exercises_table(part_titles=False, importance=True, minutes=True),
        exercises_table(part_titles=False, importance=True, minutes=True, short=True),
        exercises_table(part_titles=False, importance=True, minutes=False, short=True),
        exercises_table(part_titles=False, importance=False, minutes=False, short=True),
    )
    console.print(table)
    if leaner:  # part numbers only: say what they are
        parts = "; ".join(f"{i}. {p.title}" for i, p in enumerate(d.parts, start=1))
        console.print(Text(f"Parts: {parts}.", style="dim"))
    failure = _load_failure(d, directory)
    if failure is not None:
        line = load_error_line(failure)
        at = f" (line {line})" if line else ""
        check = command("check", d.id, options=_dir_option(directory))
        say(
            console,
            f"Your file did not load when last checked{at}, so these are the results from "
            f"before. {check} shows the error.",
            style="yellow",
        )


@app.command()
def start(
    day: Annotated[
        str | None, typer.Argument(help="The day to start (default: your first unfinished day).")
    ] = None,
    directory: DirOption = None,
    new: Annotated[
        bool, typer.Option("--new", help="Write fresh stubs beside your file (never over it).")
    ] = False,
    notebook: Annotated[
        bool,
        typer.Option(
            "--notebook",
            help="Also write a Jupyter notebook paired with your file (never over one).",
        ),
    ] = False,
) -> None:
    """Create your exercise file for a day (never overwriting your edits), then show its
    status and the next step."""
    d = get_day(day) if day else _current_day(directory)
    path = learner_file(d, None, directory)
    # The marker folder first: from now on every command run in the workspace, or anywhere
    # below the folder holding it, finds this workspace.
    (path.parent / ".mlab").mkdir(parents=True, exist_ok=True)
    fresh = workspace_source(d)
    dir_option = _dir_option(directory)
    if not path.exists():
        path.write_text(fresh, encoding="utf-8")
        console.print(
            f"Wrote [bold]{escape(str(path))}[/bold]: {len(d.exercises)} exercises for "
            f"{d.id} {d.title}."
        )
    elif new:
        n = 1
        while (beside := path.with_name(f"{path.stem}.new{'' if n == 1 else n}.py")).exists():
            n += 1
        beside.write_text(fresh, encoding="utf-8")
        console.print(
            f"Your file {escape(str(path))} is untouched; fresh stubs are in "
            f"[bold]{escape(str(beside))}[/bold]. Copy from it what you need."
        )
    elif path.read_text(encoding="utf-8") == fresh:
        console.print(f"{escape(str(path))} is already there, unchanged since it was written.")
    else:
        again = command("start", d.id, "--new", options=dir_option)
        console.print(
            f"{escape(str(path))} is already there with your edits, so it was left as it is. "
            f"({escape(again)} writes fresh stubs beside it.)"
        )
    paired = notebook_for(path)
    if notebook:
        if paired.exists():
            kernelspec()  # the kernel the notebook names, in case this environment is new
            console.print(f"{escape(str(paired))} is already there, so it was left as it is.")
        else:
            write_notebook(path)
            console.print(
                f"Wrote [bold]{escape(str(paired))}[/bold], a notebook paired with "
                f"{escape(path.name)}: the same cells, kept in step by Jupyter (jupytext)."
            )
    # The check run first, so that how to open the file is the last thing said.
    check_and_report(d, directory=directory, console=console)
    if paired.exists():
        lab = (
            f"`{script_command('jupyter', 'lab', str(paired))}`"
            if importlib.util.find_spec("jupyterlab") is not None
            else "JupyterLab"
        )
        say(
            console,
            f"Open the notebook with {lab}, or in VS Code with the kernel "
            f"`{KERNEL_NAME}`. Checks read the saved notebook: save it (Ctrl+S) before its "
            "last cell runs them.",
        )
    else:
        to_notebook = command("start", d.id, "--notebook", options=dir_option)
        say(
            console,
            f"Edit it in any editor; {to_notebook} pairs it with a Jupyter notebook.",
        )


def _part_text(d: Day, i: int) -> str:
    part = d.parts[i - 1]
    text = f"## Part {i}: {part.title}\n\n{part.intro}\n\n"
    return text + "\n".join(
        f"- `{ex.name}` ({'★' * ex.difficulty}, about {ex.minutes} min)" for ex in part.exercises
    )


@app.command()
def read(
    day: DayArg,
    part: Annotated[
        int | None,
        typer.Option("--part", "-p", help="Show only this part: its introduction and exercises."),
    ] = None,
    no_pager: Annotated[
        bool, typer.Option("--no-pager", help="Print everything at once, even on a terminal.")
    ] = False,
    web: Annotated[
        bool,
        typer.Option(
            "--web",
            help="Open the day's page of the course web site in a browser instead (formulas, "
            "pictures, hints and solutions in collapsed blocks); builds the site if needed.",
        ),
    ] = False,
) -> None:
    """The day's instructions, rendered in the terminal (in a pager when the output is one)."""
    from rich.markdown import Markdown  # lazy: only this command renders markdown

    d = get_day(day)
    if web:
        _open_web(d, part)
        return
    if part is not None:
        if not 1 <= part <= len(d.parts):
            raise CourseError(
                f"{d.id} has parts 1 to {len(d.parts)}, so there is no part {part}. "
                f"{command('read', d.id)} shows them all."
            )
        text = f"# {d.id} {d.title}: part {part} of {len(d.parts)}\n\n" + _part_text(d, part)
    else:
        text = d.instructions.read_text(encoding="utf-8")
        for i in range(1, len(d.parts) + 1):
            text += "\n\n" + _part_text(d, i)
    text = maths_as_code(text)
    if no_pager or not console.is_terminal:
        console.print(Markdown(text))
        if part is None and len(d.parts) > 1:
            console.print(
                f"{command('read', d.id, '--part', 'N')} shows only part N (1 to {len(d.parts)}).",
                markup=False,
                highlight=False,
            )
        return
    # less shows colours only with -R; a pager the user chose is used as it is.
    os.environ.setdefault("LESS", "-R")
    styles = not (os.environ.get("PAGER") or os.environ.get("MANPAGER"))
    styles = styles and "r" in os.environ["LESS"].lower()
    with console.pager(styles=styles):
        console.print(Markdown(text))


def _open_web(d: Day, part: int | None) -> None:
    import webbrowser

    from mlab.docsite import build_site, day_page, default_site_dir, site_is_current

    site = default_site_dir()
    if not site_is_current(site):
        console.print(Text(f"Building the course web site into {site} ...", style="dim"))
        build_site(site)
    page = day_page(site, d.id)
    if part is not None:
        page = page.with_name(f"part{part}.html")
    url = page.as_uri()
    opened = webbrowser.open(url)
    where = "Opened" if opened else "No browser found here; open"
    console.print(f"{where} {url}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def docs(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write it (default: site/ in the checkout)."),
    ] = None,
    open_: Annotated[
        bool, typer.Option("--open", help="Open the course map in a browser afterwards.")
    ] = False,
) -> None:
    """Build the course web site: every day's pages with formulas, pictures, exercises, hints
    and solutions, a course map and search. It works from the files, with no server."""
    from mlab.docsite import build_site

    site = build_site(out)
    index = site / "index.html"
    say(console, f"Built the course web site in {site}. Open {index.as_uri()} in a browser.")
    if open_:
        import webbrowser

        webbrowser.open((site / "course.html").as_uri())


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
    day: Annotated[
        str | None, typer.Argument(help="A day id such as w1d1 (default: the day you are on).")
    ] = None,
    exercise: Annotated[
        str | None,
        typer.Argument(help="The exercise's name (default: the first one not passing yet)."),
    ] = None,
    directory: DirOption = None,
) -> None:
    """Reveal the next hint for an exercise (earlier ones are shown again)."""
    d = get_day(day) if day else _current_day(directory)
    if exercise is None:
        progress = _progress(d, directory)
        ex = next((e for e in d.exercises if progress.get(e.name) != "pass"), d.exercises[-1])
        console.print(Text(f"{d.id} {ex.name}, the first exercise not passing yet:", style="dim"))
    else:
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
        solution = command("solution", d.id, ex.name)
        say(console, f"That was the last hint. {solution} shows the answer.")


@app.command()
def solution(
    day: DayArg, exercise: Annotated[str, typer.Argument(help="The exercise's name.")]
) -> None:
    """Print the reference solution of an exercise (its source in the library)."""
    d = get_day(day)
    src = exercise_source(d.exercise(exercise))
    console.print(Text(f"{src.filename}, line {src.first_line}", style="dim"))
    # Code is never cut: soft wrap leaves long lines whole (the terminal folds them), so
    # they read and copy as written.
    code = Syntax(
        src.source.rstrip("\n"),
        "python",
        line_numbers=True,
        start_line=src.first_line,
        background_color="default",
    )
    console.print(code, soft_wrap=True)


@app.command()
def status(directory: DirOption = None) -> None:
    """Your progress over all days."""
    where = _dir_option(directory)
    rows = []
    for d in all_days():
        progress = _progress(d, directory)
        passing = sum(progress.get(ex.name) == "pass" for ex in d.exercises)
        failing = sum(progress.get(ex.name) in ("fail", "error", "timeout") for ex in d.exercises)
        path = learner_file(d, None, directory)
        file = path.name if path.exists() else "(none yet)"  # in the folder of the title
        rows.append((d, passing, failing, file))

    table = Table(title=f"progress in {_workspace(directory)}", title_justify="left")
    table.add_column("day", no_wrap=True)
    table.add_column("title")
    table.add_column("passing", no_wrap=True, justify="right")
    table.add_column("failing", no_wrap=True, justify="right")
    table.add_column("not started", justify="right")
    table.add_column("file", overflow="fold")  # a long name folds, never cut
    for d, passing, failing, file in rows:
        n = len(d.exercises)
        table.add_row(
            d.id,
            Text(d.title),
            Text(f"{passing}/{n}", style="bold green" if passing == n else ""),
            str(failing),
            str(n - passing - failing),
            Text(file),
        )
    console.print(table)
    for d, *_ in rows:
        failure = _load_failure(d, directory)
        if failure is not None:
            line = load_error_line(failure)
            at = f" (line {line})" if line else ""
            say(
                console,
                f"{d.id}: your file did not load when last checked{at}, so the results "
                f"above are from before. {command('check', d.id, options=where)} shows the "
                "error.",
                style="yellow",
            )
    d = _current_day(directory)
    path = learner_file(d, None, directory)
    say(
        console,
        f"Next: {command('check' if path.exists() else 'start', d.id, options=where)}"
        + (f", after editing {path}." if path.exists() else "."),
    )


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
app.add_typer(pretrain_app, name="pretrain")
app.add_typer(rl_app, name="rl")
app.add_typer(search_app, name="search")
app.command("sample")(sample_command)
app.command("train", context_settings=TRAIN_CONTEXT)(train_command)
app.command("runs")(runs_command)
app.command("analyze")(analyze_command)
app.command("study")(study_command)


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


@demo_app.command("similar")
def demo_similar(
    query: Annotated[str, typer.Argument(help="A sentence to find lines like.")],
    k: Annotated[int, typer.Option("-k", help="How many lines to show.")] = 5,
) -> None:
    """Rank tiny Shakespeare's lines by similarity to QUERY with all-MiniLM-L6-v2 loaded into
    the course's own BERT (w2d1). The first run embeds every line (a progress bar; a few
    minutes on a laptop CPU) and caches them."""
    from mlab.models.bert_tasks import most_similar, shakespeare_lines
    from mlab.models.shakespeare import load_tiny_shakespeare

    for score, line in most_similar(query, shakespeare_lines(load_tiny_shakespeare()), k=k):
        console.print(f"{score:6.3f}  {line}", markup=False, highlight=False)


@demo_app.command("who-said-it")
def demo_who_said_it(
    first: Annotated[str, typer.Option(help="One speaker of tiny Shakespeare.")] = "ROMEO",
    second: Annotated[str, typer.Option(help="The other speaker.")] = "MENENIUS",
    epochs: Annotated[int, typer.Option(help="Training epochs for each model.")] = 3,
) -> None:
    """Fine-tune MiniLM (in the course's BERT, w2d1) to tell two speakers' lines apart, and
    train the same model from scratch; print both test accuracies (held-out speeches)."""
    from mlab.models.bert_tasks import who_said_it
    from mlab.models.shakespeare import load_tiny_shakespeare

    r = who_said_it(load_tiny_shakespeare(), (first, second), epochs=epochs)
    console.print(
        f"{first} or {second}? {r.n_train} training lines, {r.n_test} test lines\n"
        f"  MiniLM fine-tuned: {r.pretrained:.1%}\n  from scratch:      {r.scratch:.1%}\n"
        f"  always the commoner speaker: {r.majority:.1%}",
        markup=False,
        highlight=False,
    )


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
