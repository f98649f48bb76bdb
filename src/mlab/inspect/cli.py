"""``mlab inspect SCRIPT [--against OTHER]``: record a training script, print what each layer
did, where it first differs from another script, and what looks unhealthy; write the report.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mlab.errors import MlabError
from mlab.inspect.compare import Comparison, compare
from mlab.inspect.health import Finding, health
from mlab.inspect.record import Run
from mlab.inspect.render import write_report
from mlab.inspect.script import run_script

__all__ = ["inspect_command", "layer_table"]


def layer_table(run: Run, step: int = 0, highlight: str | None = None) -> Table:
    """A rich table of ``run``'s layers at ``step``: output mean/std/norm, fraction zero and
    saturated, NaN/inf, and the gradient norm at the output; ``highlight`` in red."""
    table = Table(title=f"{run.name}: layers at step {step} (forward order)", title_justify="left")
    for column in ("layer", "type", "mean", "std", "norm", "zero", "sat.", "nan/inf", "grad"):
        text = column in ("layer", "type")
        # numbers and names are never cut; only a long type name may wrap
        table.add_column(column, justify="left" if text else "right", no_wrap=column != "type")
    if step >= len(run.steps):
        return table
    record = run.steps[step]
    for name, s in record.activations.items():
        grad = record.gradients.get(name)
        table.add_row(
            name,
            run.module_types.get(name, "?"),
            f"{s.mean:.3g}",
            f"{s.std:.3g}",
            f"{s.norm:.3g}",
            f"{s.frac_zero:.0%}",
            f"{s.frac_saturated:.0%}",
            f"{s.n_nan}/{s.n_inf}",
            "—" if grad is None else f"{grad.norm:.3g}",
            style="bold red" if name == highlight else None,
        )
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
        console.print(layer_table(run, step, highlight))
    if comparison is not None:
        _print_comparison(console, comparison)
    for run in (a,) if b is None else (a, b):
        _print_findings(console, run, health(run))
    report = write_report(a, b, out, comparison)
    console.print(Text("Wrote ") + Text(str(report), style="bold"))
    return 0
