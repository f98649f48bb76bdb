"""What the learner sees: workspace paths, check results as a table with diagnostics, the next
step. Shared by the ``mlab`` command and the notebook helper ``mlab.course.check``."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mlab.course.engine.manifest import Day, get_day
from mlab.course.engine.runner import Result, Target, run_checks
from mlab.course.engine.store import ProgressStore
from mlab.errors import CourseError

__all__ = [
    "STATUS_STYLE",
    "check_and_report",
    "default_workspace",
    "learner_file",
    "next_step",
    "results_table",
]

STATUS_STYLE = {
    "pass": "bold green",
    "fail": "bold red",
    "error": "bold magenta",
    "timeout": "bold yellow",
    "not started": "dim",
    "skipped": "cyan",
}
STATUS_MARK = {
    "pass": "✓",
    "fail": "✗",
    "error": "!",
    "timeout": "⏱",
    "not started": "·",
    "skipped": "-",
}


def default_workspace() -> Path:
    """``$MLAB_WORKSPACE``, else ``workspace/`` in the current folder."""
    return Path(os.environ.get("MLAB_WORKSPACE", "workspace"))


def learner_file(day: Day, file: str | Path | None, directory: Path | None) -> Path:
    """The file to check: ``file`` if given, else the day's file in the workspace."""
    if file is not None:
        return Path(file)
    return (directory or default_workspace()) / day.workspace_filename


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def results_table(day: Day, results: list[Result], title: str) -> Table:
    numbers = {ex.name: i for i, ex in enumerate(day.exercises, start=1)}
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("exercise")
    table.add_column("part", justify="right", style="dim")
    table.add_column("status")
    table.add_column("time", justify="right", style="dim")
    for r in results:
        ex = day.exercise(r.exercise)
        status = Text(f"{STATUS_MARK[r.status]} {r.status}", style=STATUS_STYLE[r.status])
        seconds = f"{r.seconds:.1f}s" if r.status != "not started" else ""
        table.add_row(str(numbers[r.exercise]), r.exercise, str(ex.part + 1), status, seconds)
    return table


def next_step(day: Day, results: list[Result]) -> str:
    """One sentence saying what to do next."""
    by_name = {r.exercise: r for r in results}
    for ex in day.exercises:
        r = by_name.get(ex.name)
        if r is None or r.passed or r.status == "skipped":
            continue
        if r.status == "not started":
            return (
                f"Next: implement `{ex.name}` (part {ex.part + 1}, about {ex.minutes} min) in "
                f"your file, then run `mlab check {day.id} --exercise {ex.name}`. "
                f"`mlab read {day.id}` explains the ideas."
            )
        return (
            f"Next: fix `{ex.name}` (see its diagnostic above). "
            f"Stuck? `mlab hint {day.id} {ex.name}` reveals a hint."
        )
    return f"Every exercise of {day.id} passes. On to the next day: `mlab list`."


def _diagnostic(day: Day, r: Result) -> Panel:
    body = Text()
    body.append(r.message.rstrip() or "(no message)")
    if r.output.strip():
        body.append("\n\nyour code printed:\n", style="dim")
        body.append(r.output.rstrip(), style="dim")
    if r.status in ("fail", "error"):
        body.append(f"\n\nStuck? `mlab hint {day.id} {r.exercise}` reveals a hint.", style="cyan")
    title = f"{STATUS_MARK[r.status]} {r.exercise}: {r.status}"
    if r.check:
        title += f" (check `{r.check}`)"
    return Panel(body, title=escape(title), title_align="left", border_style=STATUS_STYLE[r.status])


def print_results(day: Day, results: list[Result], console: Console, title: str) -> None:
    # A file that does not load fails every exercise with the same message: say it once.
    first = results[0] if results else None
    if (
        first is not None
        and len(results) > 1
        and all(r.status in ("error", "timeout") and r.message == first.message for r in results)
    ):
        console.print(
            Panel(
                escape(results[0].message),
                title="your file could not be loaded",
                title_align="left",
                border_style="bold red",
            )
        )
        return
    console.print(results_table(day, results, title))
    for r in results:
        if r.status in ("fail", "error", "timeout"):
            console.print(_diagnostic(day, r))
    missing = [r.exercise for r in results if r.missing]
    if missing:
        shown = ", ".join(missing[:8]) + (
            f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        )
        console.print(
            f"[yellow]Not in the file:[/yellow] {shown}. Renamed or deleted? "
            f"`mlab start {day.id} --new` writes fresh stubs beside your file to copy from."
        )
    skipped = [r for r in results if r.status == "skipped"]
    if skipped:
        console.print(f"[cyan]Skipped {len(skipped)}:[/cyan] {skipped[0].message}")
    passed = sum(r.passed for r in results)
    style = "bold green" if passed == len(results) else "bold"
    console.print(Text(f"{passed}/{len(results)} passing.", style=style))


def check_and_report(
    day: str | Day,
    *,
    exercise: str | None = None,
    file: str | Path | None = None,
    directory: Path | None = None,
    reference: bool = False,
    as_json: bool = False,
    console: Console | None = None,
) -> bool:
    """Run a day's checks, record them, print the table, diagnostics and next step.
    Returns True when every exercise checked passes."""
    day = get_day(day) if isinstance(day, str) else day
    console = console or Console()
    names = [day.exercise(exercise).name] if exercise else None
    if reference:
        target, label = Target.reference(), "the reference solution"
        path = None
    else:
        path = learner_file(day, file, directory)
        if not path.is_file():
            raise CourseError(
                f"There is no {path}. Run `mlab start {day.id}` to create it"
                + (f" (with --dir {directory})" if directory else "")
                + ", or pass --file."
            )
        target, label = Target.file(path), str(path)

    if as_json:
        results = run_checks(day, target, names)
    else:
        with console.status(f"Checking {day.id} ({label})...") as status:

            def progress(i: int, r: Result) -> None:
                status.update(f"Checking {day.id} ({label}): {r.exercise} {r.status}")

            results = run_checks(day, target, names, on_result=progress)

    if path is not None:
        ProgressStore.for_workspace(path.parent).record(day.id, results, file_sha(path))

    if as_json:
        payload = {
            "day": day.id,
            "file": str(path) if path else "reference",
            "exercises": [
                {"name": r.exercise, "status": r.status, "message": r.message} for r in results
            ],
        }
        print(json.dumps(payload, indent=2))
    else:
        print_results(day, results, console, f"{day.id} {day.title}: {label}")
        if not reference:
            console.print(next_step(day, results))
    return all(r.passed or r.status == "skipped" for r in results)
