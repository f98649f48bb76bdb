"""``mlab bughunt``: play a bug hunt from the terminal.

    mlab bughunt list                            targets and the kinds of bugs there are
    mlab bughunt new --target mlp --seed 3       write workspace/bughunt/mlp.py, bug inside
    mlab bughunt inspect                         where it first differs from the reference
    mlab bughunt guess bughunt/mlp.py:42         found / close / not here
    mlab bughunt reveal                          the diff and the explanation
    mlab bughunt status                          the hunt so far

Exit codes: 0 done (a guess that found the bug), 1 a guess that did not, 2 bad input (the
message says what and how to fix it; no traceback).
"""

from __future__ import annotations

import ast
import difflib
import shlex
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mlab.bughunt import game
from mlab.bughunt.catalogue import Bug, applicable, kinds, sites, target_path, targets
from mlab.course.engine.report import default_workspace
from mlab.errors import MlabError
from mlab.invocation import mlab_command, python_command

__all__ = ["bughunt_app"]

bughunt_app = typer.Typer(
    help="Bug hunts: a working training script with one meaningful bug hidden in it. Find "
    "it with `mlab bughunt inspect`, name its line with `mlab bughunt guess FILE:LINE`.",
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


def _workspace(directory: Path | None) -> Path:
    return directory if directory is not None else default_workspace()


def _cmd(words: str, directory: Path | None = None) -> str:
    """A command to print, runnable as printed from here (with the same ``--dir``)."""
    where = f" --dir {shlex.quote(str(directory))}" if directory is not None else ""
    return f"`{mlab_command()} bughunt {words}{where}`"


@contextmanager
def _bad_input() -> Iterator[None]:
    """Turn mlab's own errors into a message on stderr and exit code 2."""
    try:
        yield
    except MlabError as err:
        message = Text("error: ", style="bold red") + Text(str(err))
        Console(stderr=True, soft_wrap=True).print(message)
        raise typer.Exit(2) from None


def _hanging(first: str, text: str) -> str:
    """``text`` wrapped to the console's width after ``first``, its later lines indented to
    line up under its first (a hanging indent); words are never split."""
    width = max(console.width, len(first) + 20)
    indent = " " * len(first)
    return textwrap.fill(
        text,
        width,
        initial_indent=first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


_DIFF_STYLES = {"+": "green", "-": "red", "@": "cyan"}


def _print_code(diff: str) -> None:
    """A unified diff, line by line as it is: code is never wrapped or cut (a wrapped line
    of a diff would lose its +/-/space prefix); a long line runs past the terminal's edge."""
    for line in diff.splitlines():
        style = _DIFF_STYLES.get(line[:1], "")
        if line.startswith(("+++", "---")):
            style = "bold"
        console.print(Text(line, style=style), soft_wrap=True, crop=False)


def _summary(target: str) -> str:
    """The first sentence of a target's module docstring."""
    doc = ast.get_docstring(ast.parse(target_path(target).read_text(encoding="utf-8"))) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


@bughunt_app.command("list")
def list_() -> None:
    """The targets, and the kinds of bug a hunt may hide (not which one is in play)."""
    table = Table(title="targets", title_justify="left")
    for column in ("target", "what it is", "kinds of bug that fit"):
        table.add_column(column)
    for target in targets():
        table.add_row(target, _summary(target), str(len(applicable(target))))
    console.print(table)
    table = Table(title=f"the catalogue: {len(kinds())} kinds of bug", title_justify="left")
    for column in ("kind", "title", "targets"):
        table.add_column(column)
    for k in kinds():
        fits = ", ".join(t for t in targets() if sites(k.id, t))
        table.add_row(k.id, k.title, fits)
    console.print(table)
    start = _cmd("new --target mlp --seed 0")
    console.print(f"Start a hunt: {start} (any seed).", markup=False, highlight=False)


@bughunt_app.command()
def new(
    target: Annotated[str, typer.Option("--target", help="The script to hunt in (see `list`).")],
    seed: Annotated[int, typer.Option("--seed", help="Picks the bug: any integer.")] = 0,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            metavar="",  # a flag: it takes no value
            help="Start even if a hunt is unfinished or the file has your edits.",
        ),
    ] = False,
    directory: DirOption = None,
) -> None:
    """Copy a reference training script into the workspace with one bug hidden in it."""
    workspace = _workspace(directory)
    with _bad_input():
        if target not in targets():
            close = difflib.get_close_matches(target, targets(), n=1, cutoff=0.5)
            maybe = f" Did you mean {close[0]}?" if close else ""
            raise MlabError(
                f"no bug-hunt target {target!r}.{maybe} The targets are {', '.join(targets())}."
            )
        started = game.new(workspace, target, seed, force=force)
    for copy in started.kept:
        console.print(f"Your edited file was kept as [bold]{copy}[/bold].")
    if started.resumed:
        console.print(f"This hunt is already in progress in [bold]{started.path}[/bold].")
    else:
        console.print(
            f"Wrote [bold]{started.path}[/bold]: {_summary(target)} One meaningful bug is "
            "hidden in it. It runs without an error, and it even trains; it just does not do "
            "what the code around it says it should."
        )
    rel = started.hunt.file
    steps = [
        f"`{python_command()} {shlex.quote(str(started.path))}`: watch it train (the "
        "docstring says what to expect)",
        f"{_cmd('inspect', directory)}: where it first differs from the reference, layer by layer",
        f"{_cmd(f'guess {rel}:LINE', directory)}: name the line of the bug",
        f"{_cmd('reveal', directory)}: give up and see the answer",
    ]
    console.print("\nHow to hunt:")
    for i, step in enumerate(steps, start=1):
        console.print(_hanging(f"  {i}. ", step), highlight=False, markup=False, soft_wrap=True)


@bughunt_app.command("inspect")
def inspect_(
    steps: Annotated[int, typer.Option(help="Training steps to record.")] = 3,
    seed: Annotated[
        int | None, typer.Option(help="The seed both runs start from (default: the hunt's).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for report.html (default: bughunt/report in the workspace)."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds each script may run.")] = 60.0,
    directory: DirOption = None,
) -> None:
    """Run the hunt file and the reference script side by side under `mlab inspect`: print
    where they first differ and write an HTML report."""
    from mlab.inspect.cli import layer_table  # matplotlib: only when needed
    from mlab.inspect.health import health
    from mlab.inspect.render import write_report

    workspace = _workspace(directory)
    with _bad_input():
        hunt, _ = game.current(workspace)
        comparison = game.inspect_hunt(
            hunt.target,
            workspace / hunt.file,
            steps=steps,
            seed=hunt.seed if seed is None else seed,
            timeout_s=timeout,
        )
    first = comparison.first
    highlight = first.layer if first.kind in ("forward", "backward") else None
    console.print(layer_table(comparison.b, first.step, highlight, console.width))
    style = "green" if first.kind == "none" else "bold red"
    console.print(Text(f"first divergence from the reference: {first.kind}", style=style))
    console.print(Text(first.detail))
    for finding in health(comparison.b):
        console.print(Text(f"{finding.severity}: ", style="yellow") + Text(finding.message))
    report = write_report(
        comparison.a, comparison.b, out or workspace / "bughunt" / "report", comparison
    )
    console.print(Text("Wrote ") + Text(str(report), style="bold"))
    if first.kind == "none":
        console.print(
            f"The runs agree: did you fix the bug already? {_cmd('guess FILE:LINE', directory)}.",
            markup=False,
        )


@bughunt_app.command()
def guess(
    spec: Annotated[str, typer.Argument(help="FILE:LINE, e.g. bughunt/mlp.py:42.")],
    directory: DirOption = None,
) -> None:
    """Name the line of the bug: found (exit 0), close or not here (exit 1)."""
    with _bad_input():
        result = game.guess(_workspace(directory), spec)
    where = f"line {result.line}"
    if result.original != result.line:
        where += f" (line {result.original} of the hunt as written: you added lines)"
    elif result.edited:
        where += " (your edits leave its number unchanged)"
    if result.outcome == "found":
        console.print(
            Text(f"Found it: {where} is the bug ", style="bold green")
            + Text(f"({result.n_guesses} guess{'es' if result.n_guesses > 1 else ''}).")
        )
        _explain(result.bug)
        console.print(
            f"{_cmd('reveal', directory)} shows the diff against the reference.", markup=False
        )
    elif result.outcome == "close":
        console.print(
            Text(f"Close: the bug is within {game.CLOSE} lines of {where}.", style="yellow")
        )
    else:
        console.print(Text(f"Not here: {where} is not the bug.", style="red"))
        if result.n_guesses >= 3 and not result.already_finished:
            console.print(
                f"Tip: {_cmd('inspect', directory)} says where the hunt first differs from the "
                "reference: a layer, the input, the loss, the gradients or the update.",
                markup=False,
            )
    if result.already_finished:
        console.print("(This hunt was already finished; the guess was recorded all the same.)")
    raise typer.Exit(0 if result.outcome == "found" else 1)


def _explain(bug: Bug) -> None:
    console.print(Text(bug.kind.title, style="bold") + Text(f" ({bug.kind.id})"))
    console.print(Text(bug.kind.why))


@bughunt_app.command()
def reveal(
    no_inspect: Annotated[
        bool, typer.Option("--no-inspect", metavar="", help="Skip running the comparison.")
    ] = False,
    directory: DirOption = None,
) -> None:
    """Show the bug: the diff against the reference, why it is a bug, and what `mlab
    bughunt inspect` shows for it. Ends the hunt."""
    workspace = _workspace(directory)
    with _bad_input():
        shown = game.reveal(workspace)
    hunt, bug = shown.hunt, shown.bug
    lines = ", ".join(str(n) for n in bug.lines)
    console.print(f"The bug is in {hunt.file}, line{'s' if len(bug.lines) > 1 else ''} {lines}:")
    _print_code(shown.diff)
    _explain(bug)
    expected = " or ".join(e.describe() for e in bug.expected)
    console.print(Text("What the comparison with the reference should show: ") + Text(expected))
    if not no_inspect:
        pristine = workspace / game.PRISTINE / f"{hunt.target}.py"
        with _bad_input():
            comparison = game.inspect_hunt(hunt.target, pristine, seed=hunt.seed)
        shows = Text(f"What it shows (seed {hunt.seed}): ") + Text(comparison.first.detail)
        console.print(shows)
    found = "found" if hunt.found else "not found"
    console.print(f"Guesses: {len(hunt.guesses)} ({found}).")


@bughunt_app.command()
def status(directory: DirOption = None) -> None:
    """The hunt in the workspace: target, seed, file, guesses, and whether it is over."""
    workspace = _workspace(directory)
    with _bad_input():
        state = game.status(workspace)
    hunt = state.hunt
    if hunt is None:
        console.print(
            f"No bug hunt in {workspace}. "
            f"Start one: {_cmd('new --target mlp --seed 0', directory)}.",
            markup=False,
        )
        return
    over = "found" if hunt.found else "revealed" if hunt.revealed else "in progress"
    file_note = " (edited)" if state.edited else "" if state.exists else " (missing)"
    console.print(
        f"Bug hunt in [bold]{workspace / hunt.file}[/bold]{file_note}: target {hunt.target}, "
        f"seed {hunt.seed}, started {hunt.started}, {over}."
    )
    if hunt.guesses:
        table = Table(title="guesses", title_justify="left")
        for column in ("#", "guess", "line as written", "result"):
            table.add_column(column)
        for i, g in enumerate(hunt.guesses, start=1):
            table.add_row(str(i), g.spec, str(g.line), g.outcome)
        console.print(table)
    if over == "in progress":
        console.print(
            f"Next: {_cmd('inspect', directory)}, then {_cmd('guess FILE:LINE', directory)}.",
            markup=False,
        )
