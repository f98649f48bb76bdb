"""``mlab inspect SCRIPT [--against OTHER]``: record a training script, print what each layer
did, where it first differs from another script, and what looks unhealthy; write the report.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mlab.errors import MlabError
from mlab.inspect.compare import Comparison, compare
from mlab.inspect.health import Finding, health
from mlab.inspect.record import Run, StepRecord
from mlab.inspect.render import write_report
from mlab.inspect.script import run_script

__all__ = ["compact", "inspect_command", "layer_table", "wrap_name"]


# columns left out, in this order, when the table would be wider than the terminal
_OPTIONAL = ("sat.", "zero", "nan/inf")
_NOTHING = {"sat.": "0%", "nan/inf": "0/0", "zero": "0%"}
_NOTHING_SAID = {"sat.": "0% in every layer", "nan/inf": "none", "zero": "0% in every layer"}
_MIN_NAME = 12  # names fold onto more lines down to this width


def compact(x: float) -> str:
    """``x`` to 3 significant digits in as few characters as possible: a table never needs
    to cut a number.

    >>> [compact(v) for v in (0.0, 123456.0, 0.0117, -0.000123, 5.7e-08, float("nan"))]
    ['0', '1.23e5', '0.0117', '-1.23e-4', '5.7e-8', 'nan']
    """
    if not math.isfinite(x) or x == 0:
        return f"{x:g}"
    forms = [f"{x:.3g}", f"{x:.2e}"]
    short = []
    for form in forms:
        if "e" in form:
            mantissa, exponent = form.split("e")
            if "." in mantissa:
                mantissa = mantissa.rstrip("0").rstrip(".")
            form = f"{mantissa}e{int(exponent)}"
        short.append(form)
    return min(short, key=len)


def _cell_width(cell: str) -> int:
    return max(map(len, cell.split("\n")))


def _width(columns: dict[str, list[str]]) -> int:
    """Characters a rich table with these columns takes: each column as wide as its widest
    line, plus a space either side and a rule between columns and at both edges."""
    return sum(max([len(c), *map(_cell_width, cells)]) + 3 for c, cells in columns.items()) + 1


def wrap_name(name: str, width: int) -> str:
    """``name`` on lines of at most ``width`` characters, broken only after a ``.``: a layer
    name is what one searches the code for, so an identifier is never split (one longer
    than ``width`` stays whole on its own line).

    >>> print(wrap_name("blocks.0.attn.resid_drop", 16))
    blocks.0.attn.
    resid_drop
    """
    lines = [""]
    for part in re.findall(r"[^.]*\.|[^.]+$", name):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)


def _fit_names(columns: dict[str, list[str]], names: list[str], width: int) -> None:
    """Wrap the layer names (at dots) just enough for the table to fit ``width``, no narrower
    than _MIN_NAME; the names stay whole when they fit."""
    longest = max(map(len, names), default=0)
    for name_width in range(longest, _MIN_NAME - 1, -1):
        columns["layer"] = [wrap_name(name, name_width) for name in names]
        if _width(columns) <= width:
            return


def layer_table(
    run: Run, step: int = 0, highlight: str | None = None, width: int | None = None
) -> Table:
    """A rich table of ``run``'s layers at ``step``: output mean/std/norm, fraction zero and
    saturated, NaN/inf, and the gradient norm at the output; ``highlight`` in red.

    Numbers are never cut (3 significant digits, see ``compact``). When the table would be
    wider than ``width`` (default: the terminal's), optional columns that hold nothing (0%,
    0/0) go first, then long names wrap onto more lines (at dots only: see ``wrap_name``), then
    the other optional columns go;
    the caption names what is not shown."""
    width = width if width is not None else Console().width
    record = run.steps[step] if step < len(run.steps) else StepRecord(step)
    columns: dict[str, list[str]] = {
        c: [] for c in ("layer", "type", "mean", "std", "norm", "zero", "sat.", "nan/inf", "grad")
    }
    for name, s in record.activations.items():
        grad = record.gradients.get(name)
        row = (
            name,
            run.module_types.get(name, "?"),
            compact(s.mean),
            compact(s.std),
            compact(s.norm),
            f"{s.frac_zero:.0%}",
            f"{s.frac_saturated:.0%}",
            f"{s.n_nan}/{s.n_inf}",
            "—" if grad is None else compact(grad.norm),
        )
        for column, cell in zip(columns, row, strict=True):
            columns[column].append(cell)
    # Too wide: first leave out the optional columns that say nothing (0% or 0/0 in every
    # row); then let names fold onto more lines, down to _MIN_NAME characters; only then leave
    # out optional columns that have something to say.
    left_out = []
    for column in _OPTIONAL:
        if _width(columns) > width and set(columns[column]) <= {_NOTHING[column]}:
            del columns[column]
            left_out.append(f"{column} ({_NOTHING_SAID[column]})")
    names = list(columns["layer"])
    for column in _OPTIONAL:
        folded = {
            "layer": [wrap_name(name, _MIN_NAME) for name in names],
            "type": [cell[:_MIN_NAME] for cell in columns["type"]],
        }
        if column not in columns or _width({**columns, **folded}) <= width:
            continue
        del columns[column]
        left_out.append(f"{column} (widen the terminal to see it)")
    _fit_names(columns, names, width)
    caption = f"not shown: {', '.join(left_out)}" if left_out else None
    table = Table(
        title=f"{run.name}: layers at step {step} (forward order)",
        title_justify="left",
        caption=caption,
        caption_justify="left",
    )
    for column, cells in columns.items():
        number = column not in ("layer", "type")
        table.add_column(
            column,
            justify="right" if number else "left",
            no_wrap=column != "type",  # names come wrapped at dots (wrap_name)
            min_width=max([len(column), *map(len, cells)]) if number else None,
            overflow="fold",
        )
    for i, name in enumerate(names):
        style = "bold red" if name == highlight else None
        table.add_row(*(cells[i] for cells in columns.values()), style=style)
    return table


def _print_findings(console: Console, run: Run, findings: list[Finding]) -> None:
    if not findings:
        console.print(Text(f"{run.name}: no health problems found.", style="green"))
    for f in findings:
        style = "red" if f.severity == "error" else "yellow"
        console.print(Text(f"{run.name}: {f.severity}: ", style=style) + Text(f.message))


def _print_comparison(console: Console, comparison: Comparison) -> None:
    first = comparison.first
    style = "green" if first.kind == "none" else "bold red"
    console.print(Text(f"first divergence: {first.kind}", style=style))
    console.print(Text(first.detail))


def inspect_command(
    script: Path,
    against: Path | None,
    steps: int,
    seed: int,
    out: Path,
    timeout_s: float,
    console: Console | None = None,
) -> int:
    """Run ``script`` (and ``against``) for ``steps`` steps from ``seed`` under a recorder,
    each within ``timeout_s`` seconds; print the per-layer table, the first divergence and
    the health findings; write the report to ``out``. Return 0, or 2 after printing the
    message when the input is bad (a missing file, a script that does not follow the protocol
    or that fails or hangs)."""
    console = console or Console()
    try:
        a = run_script(script, steps=steps, seed=seed, timeout_s=timeout_s)
        b = None
        if against is not None:
            b = run_script(against, steps=steps, seed=seed, timeout_s=timeout_s)
            if b.name == a.name:
                a.name, b.name = f"{a.name} (a)", f"{b.name} (b)"
    except MlabError as err:
        message = Text("error: ", style="bold red") + Text(str(err))
        Console(stderr=True, soft_wrap=True).print(message)
        return 2
    comparison = compare(a, b) if b is not None else None
    step = comparison.first.step if comparison is not None else 0
    highlight = None
    if comparison is not None and comparison.first.kind in ("forward", "backward"):
        highlight = comparison.first.layer
    for run in (a,) if b is None else (a, b):
        console.print(layer_table(run, step, highlight, console.width))
    if comparison is not None:
        _print_comparison(console, comparison)
    for run in (a,) if b is None else (a, b):
        _print_findings(console, run, health(run))
    report = write_report(a, b, out, comparison)
    console.print(Text("Wrote ") + Text(str(report), style="bold"))
    return 0
