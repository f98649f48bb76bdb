"""What the learner sees: workspace paths, check results as a table with diagnostics, the next
step. Shared by the ``mlab`` command and the notebook helper ``mlab.course.check``."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mlab.course.engine.manifest import Day, get_day
from mlab.course.engine.notebook import sync_from_notebook
from mlab.course.engine.runner import Result, Target, run_checks
from mlab.course.engine.store import ProgressStore
from mlab.errors import CourseError
from mlab.invocation import mlab_command

__all__ = [
    "STATUS_STYLE",
    "check_and_report",
    "command",
    "default_workspace",
    "find_workspace",
    "learner_file",
    "next_step",
    "results_table",
    "say",
    "wrap",
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


WORKSPACE = "workspace"  # the workspace's folder name in the project
MARKER = ".mlab"  # the folder that marks a workspace (it holds the progress database)


def find_workspace(start: Path) -> Path | None:
    """The workspace that ``start`` is in or beside, found as git finds ``.git``: the first of
    ``start`` and its parents that holds ``.mlab/`` (the workspace itself) or ``workspace/.mlab/``
    (the project folder above it). None when there is none."""
    start = start.absolute()
    for folder in (start, *start.parents):
        if (folder / MARKER).is_dir():
            return folder
        if (folder / WORKSPACE / MARKER).is_dir():
            return folder / WORKSPACE
    return None


def _relative(path: Path, cwd: Path) -> Path:
    """``path`` relative to ``cwd`` when it is ``cwd`` or above it (``.``, ``..``), so printed
    paths stay short; else as it is."""
    try:
        path.relative_to(cwd)
    except ValueError:
        if not cwd.is_relative_to(path):
            return path
    return Path(os.path.relpath(path, cwd))


def default_workspace(start: Path | None = None) -> Path:
    """The workspace when no ``--dir`` is given: ``$MLAB_WORKSPACE``; else the workspace found
    from ``start`` (default: the current folder) upwards, so every command run inside
    ``workspace/`` or below it uses that very workspace; else ``workspace/`` in the current
    folder, or the current folder itself when it is named ``workspace`` (never a workspace
    inside a workspace)."""
    if env := os.environ.get("MLAB_WORKSPACE"):
        return Path(env)
    cwd = Path.cwd()
    found = find_workspace(start if start is not None else cwd)
    if found is not None:
        return _relative(found, cwd)
    if cwd.name == WORKSPACE:
        return Path(os.curdir)
    return Path(WORKSPACE)


def learner_file(day: Day, file: str | Path | None, directory: Path | None) -> Path:
    """The file to check: ``file`` if given, else the day's file in the workspace (``--dir``
    when given, else :func:`default_workspace`)."""
    if file is not None:
        return Path(file)
    return (directory or default_workspace()) / day.workspace_filename


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _in_ipython() -> bool:
    """Whether we run in IPython (a Jupyter kernel): there, a shell command runs from a cell
    as ``!command``, in the kernel's folder."""
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None


def command(*words: str, options: tuple[str, ...] = ()) -> str:
    """A command to print, in backticks, that runs as printed from the current folder:
    ``command("check", "w1d1")`` is ```.venv/bin/mlab check w1d1``` when ``mlab`` is not on the
    PATH, and ```!.venv/bin/mlab check w1d1``` in a notebook, where a cell runs it so.
    ``options`` (``("--dir", "ws")``) follow the words."""
    bang = "!" if _in_ipython() else ""
    return "`" + bang + " ".join([mlab_command(), *words, *map(shlex.quote, options)]) + "`"


_WORDS = re.compile(r"`[^`]*`\S*|\S+")


def wrap(text: str, width: int, hang: str = "  ") -> str:
    """``text`` with each line longer than ``width`` wrapped between words, never inside a
    `command`, and its continuation lines indented under the line's own indent plus ``hang``,
    so a wrapped line reads as one. Lines that fit are left exactly as they are."""
    width = max(width, 20)
    out: list[str] = []
    for paragraph in text.split("\n"):
        if len(paragraph) <= width:
            out.append(paragraph)
            continue
        indent = paragraph[: len(paragraph) - len(paragraph.lstrip())]
        line = ""
        for word in _WORDS.findall(paragraph):
            if line.strip() and len(line) + 1 + len(word) > width:
                out.append(line)
                line = indent + hang + word
            else:
                line = f"{line} {word}" if line.strip() else indent + word
        out.append(line)
    return "\n".join(out)


def say(console: Console, text: str, style: str = "") -> None:
    """Print ``text`` wrapped at the console's width, never inside a `command`: a command in
    backticks moves to the next line whole, so it can be copied and runs as printed."""
    console.print(Text(wrap(text, console.width, hang=""), style=style), soft_wrap=True)


def results_table(day: Day, results: list[Result], title: str) -> Table:
    numbers = {ex.name: i for i, ex in enumerate(day.exercises, start=1)}
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("exercise", no_wrap=True)
    table.add_column("part", justify="right", style="dim", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("time", justify="right", style="dim", no_wrap=True)
    for r in results:
        ex = day.exercise(r.exercise)
        status = Text(f"{STATUS_MARK[r.status]} {r.status}", style=STATUS_STYLE[r.status])
        seconds = f"{r.seconds:.1f}s" if r.status != "not started" else ""
        table.add_row(str(numbers[r.exercise]), r.exercise, str(ex.part + 1), status, seconds)
    return table


_LINE = re.compile(r", line (\d+)")


def load_error_line(message: str) -> int | None:
    """The line of the learner's file that a load error points at (the innermost frame in
    the file), or None when it names none (a load that timed out)."""
    lines = _LINE.findall(message)
    return int(lines[-1]) if lines else None


def next_step(
    day: Day,
    results: list[Result],
    progress: Mapping[str, str] | None = None,
    *,
    options: tuple[str, ...] = (),
) -> str:
    """One sentence saying what to do next after a check run.

    ``progress`` holds the last known status of the exercises this run did not check, so that
    a run of one exercise can name the next one to do. ``options`` are the workspace options
    (``--dir``/``--file``) the printed commands must repeat to check the same file.
    """
    by_name = {r.exercise: r for r in results}
    check_all = command("check", day.id, options=options)
    failed_load = next((r for r in results if r.load_failed), None)
    if failed_load is not None:
        line = load_error_line(failed_load.message)
        what = f"fix line {line} (the error above)" if line else "fix the problem above"
        return (
            f"Next: your file does not load, so no exercise could be checked: {what}, then run "
            f"{check_all}. Your earlier results are kept."
        )
    checked = [ex for ex in day.exercises if ex.name in by_name]
    for ex in checked:
        r = by_name[ex.name]
        if r.passed or r.status == "skipped":
            continue
        if r.status == "not started":
            return (
                f"Next: implement `{ex.name}` (part {ex.part + 1}, about {ex.minutes} min) in "
                f"your file, then run "
                f"{command('check', day.id, '--exercise', ex.name, options=options)}. "
                f"{command('read', day.id)} explains the ideas."
            )
        return (
            f"Next: fix `{ex.name}` (see its diagnostic above). "
            f"Stuck? {command('hint', day.id, ex.name, options=_dir_only(options))} "
            "reveals a hint."
        )
    # Everything this run checked passes: what is left of the day, as far as is known?
    known = {**(progress or {}), **{r.exercise: r.status for r in results}}
    left = [ex for ex in day.exercises if known.get(ex.name, "not started") not in _DONE]
    if not left:
        return f"Every exercise of {day.id} passes. On to the next day: {command('list')}."
    head = ""
    if len(checked) < len(day.exercises):
        names = ", ".join(f"`{ex.name}`" for ex in checked if by_name[ex.name].passed)
        if names:
            head = f"{names} {'passes' if ',' not in names else 'pass'}. "
    # The first exercise that was tried and does not pass, as a whole-day check would say;
    # else the first not started after the last one checked (wrapping round to the start).
    tried = [ex for ex in left if known.get(ex.name, "not started") != "not started"]
    last = max((i for i, ex in enumerate(day.exercises) if ex.name in by_name), default=-1)
    after = [ex for ex in left if day.exercises.index(ex) > last] or left
    ex = (tried or after)[0]
    check_it = command("check", day.id, "--exercise", ex.name, options=options)
    if known.get(ex.name, "not started") == "not started":
        return (
            f"{head}Next: implement `{ex.name}` (part {ex.part + 1}, about {ex.minutes} min), "
            f"then run {check_it}. {len(left)} of {len(day.exercises)} exercises of {day.id} "
            "are left."
        )
    return (
        f"{head}Next: `{ex.name}` did not pass when last checked ({known[ex.name]}): "
        f"{check_it} shows why. {len(left)} of {len(day.exercises)} exercises of {day.id} "
        "are left."
    )


_DONE = ("pass", "skipped")


def _dir_only(options: tuple[str, ...]) -> tuple[str, ...]:
    """The ``--dir`` option among ``options`` (commands other than check take no ``--file``)."""
    if len(options) == 2 and options[0] == "--dir":
        return options
    return ()


def _diagnostic(day: Day, r: Result, options: tuple[str, ...] = (), width: int = 80) -> Panel:
    inside = width - 4  # the panel's borders and padding
    body = Text()
    body.append(wrap(r.message.rstrip() or "(no message)", inside))
    if r.output.strip():
        body.append("\n\nyour code printed:\n", style="dim")
        body.append(r.output.rstrip(), style="dim")
    if r.status in ("fail", "error"):
        hint = command("hint", day.id, r.exercise, options=_dir_only(options))
        body.append("\n\n" + wrap(f"Stuck? {hint} reveals a hint.", inside), style="cyan")
    title = f"{STATUS_MARK[r.status]} {r.exercise}: {r.status}"
    if r.check:
        title += f" (check `{r.check}`)"
    return Panel(body, title=escape(title), title_align="left", border_style=STATUS_STYLE[r.status])


def print_results(
    day: Day,
    results: list[Result],
    console: Console,
    title: str,
    *,
    options: tuple[str, ...] = (),
) -> None:
    # A file that does not load fails every exercise with the same message: say it once.
    failed_load = next((r for r in results if r.load_failed), None)
    if failed_load is not None:
        console.print(
            Panel(
                escape(failed_load.message),
                title="your file could not be loaded",
                title_align="left",
                border_style="bold red",
            )
        )
        return
    console.print(results_table(day, results, title))
    warning = next((r.warning for r in results if r.warning), "")
    if warning:
        console.print(
            Panel(
                escape(warning),
                title="top-level code of your file was skipped",
                title_align="left",
                border_style="yellow",
            )
        )
    for r in results:
        if r.status in ("fail", "error", "timeout"):
            console.print(_diagnostic(day, r, options, console.width))
    missing = [r.exercise for r in results if r.missing]
    if missing:
        shown = ", ".join(missing[:8]) + (
            f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        )
        new = command("start", day.id, "--new", options=_dir_only(options))
        console.print(
            f"[yellow]Not in the file:[/yellow] {escape(shown)}. Renamed or deleted? "
            f"{escape(new)} writes fresh stubs beside your file to copy from."
        )
    skipped = [r for r in results if r.status == "skipped"]
    if skipped:
        console.print(f"[cyan]Skipped {len(skipped)}:[/cyan] {escape(skipped[0].message)}")
    passed = sum(r.passed for r in results)
    style = "bold green" if passed == len(results) else "bold"
    console.print(Text(f"{passed}/{len(results)} passing.", style=style))


def _options(file: str | Path | None, directory: Path | None) -> tuple[str, ...]:
    """The options that make a printed command check the same file as this run."""
    if file is not None:
        return ("--file", str(file))
    if directory is not None:
        return ("--dir", str(directory))
    return ()


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
            start = command("start", day.id, options=_options(None, directory))
            other = "file=..." if _in_ipython() else "--file"
            raise CourseError(f"There is no {path}. Run {start} to create it, or pass {other}.")
        synced = sync_from_notebook(path)  # a paired notebook saved after the file
        if synced is not None and not as_json:
            console.print(Text(synced, style="dim"))
        target, label = Target.file(path), str(path)

    if as_json:
        results = run_checks(day, target, names, warm=True)
    else:
        with console.status(f"Checking {day.id} ({label})...") as status:

            def progress(i: int, r: Result) -> None:
                status.update(f"Checking {day.id} ({label}): {r.exercise} {r.status}")

            results = run_checks(day, target, names, on_result=progress, warm=True)

    known: dict[str, str] = {}  # the last known status of every exercise checked so far
    if path is not None:
        store = ProgressStore.for_workspace(path.parent)
        store.record(day.id, results, file_sha(path))
        known = {name: p.status for name, p in store.latest(day.id).items()}

    if as_json:
        payload = {
            "day": day.id,
            "file": str(path) if path else "reference",
            "warning": next((r.warning for r in results if r.warning), ""),
            "exercises": [
                {"name": r.exercise, "status": r.status, "message": r.message} for r in results
            ],
        }
        print(json.dumps(payload, indent=2))
    else:
        options = _options(file, directory)
        print_results(day, results, console, f"{day.id} {day.title}: {label}", options=options)
        if not reference:
            say(console, next_step(day, results, known, options=options))
    return all(r.passed or r.status == "skipped" for r in results)
