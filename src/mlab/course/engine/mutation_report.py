"""Running the mutation engine's mutants through a day's checks, and the score they earn.

Each mutant of :mod:`mlab.course.engine.mutate` runs as a runner target
(``Target.mutant``): the exercise's checks run on the reference library with that one
exercise replaced by the mutant. A mutant is *killed* when a check fails on it, when its own
code raises, or when its checks run out of time (an infinite loop). Any other non-pass says
nothing about the checks: the mutant could not be loaded, the check process crashed, the day's
checks are broken, or a check raised by itself. Such a mutant is *invalid*: listed apart and
left out of the score, which is killed / (killed + survived), allowlisted equivalents aside.

The bar, ``MIN_SCORE``, holds for every exercise, not only for the day as a whole: a day at 90%
can hide an exercise whose checks kill 65% of its mutants.

Before the mutants, each exercise's unchanged reference runs the same way (the *control*): if
it does not pass, a "kill" may only mean the mutant could not be loaded, and the report says so.

The allowlist, ``src/mlab/course/<day>/equivalent_mutants.toml``, names mutants proven
equivalent to the reference, one ``[[equivalent]]`` table each, with ``id`` and ``reason``. An
entry whose mutant no longer exists (stale), or that some check kills (so it is not
equivalent), is reported as a problem.
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mlab.course.engine.manifest import Day, get_day
from mlab.course.engine.mutate import Mutant, control_source, mutants_of
from mlab.course.engine.stubgen import exercise_source
from mlab.errors import ConfigError

__all__ = [
    "ALLOWLIST_FILE",
    "MIN_SCORE",
    "ExerciseMutation",
    "MutantResult",
    "MutationReport",
    "load_allowlist",
    "mutation_report",
    "print_mutation_report",
    "stale_allowlist_entries",
]

ALLOWLIST_FILE = "equivalent_mutants.toml"
# The share of its mutants each exercise's checks must kill (tests/test_course_meta.py).
MIN_SCORE = 0.85


def load_allowlist(day: Day) -> dict[str, str]:
    """The day's equivalent mutants: id -> the reason it is equivalent (empty if no file)."""
    path = day.directory / ALLOWLIST_FILE
    if not path.is_file():
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None
    unknown = sorted(set(raw) - {"equivalent"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown keys {unknown}; only [[equivalent]] entries belong here"
        )
    found: dict[str, str] = {}
    for i, entry in enumerate(raw.get("equivalent", []), start=1):
        where = f"{path}, entry {i}"
        if not isinstance(entry, dict) or set(entry) != {"id", "reason"}:
            raise ConfigError(f"{where}: each [[equivalent]] needs exactly `id` and `reason`")
        mutant_id, reason = entry["id"], entry["reason"]
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{where} ({mutant_id}): give a one-line reason it is equivalent")
        if mutant_id in found:
            raise ConfigError(f"{where}: {mutant_id} is listed twice")
        found[str(mutant_id)] = reason.strip()
    return found


@dataclass(frozen=True)
class MutantResult:
    mutant: Mutant
    status: str  # the runner's status of the mutant's exercise
    message: str = ""
    origin: str = ""  # the runner's Result.origin: where a non-pass came from

    @property
    def outcome(self) -> str:
        """``killed by a check``, ``killed by a raise``, ``killed by a timeout``, ``survived``
        or ``invalid`` (no verdict on the checks: see the module docstring)."""
        if self.status == "pass":
            return "survived"
        if self.status == "fail":
            return "killed by a check"
        if self.status == "error" and self.origin == "code":
            return "killed by a raise"
        if self.status == "timeout" and self.origin != "load":
            return "killed by a timeout"
        return "invalid"

    @property
    def killed(self) -> bool:
        return self.outcome.startswith("killed")

    @property
    def invalid(self) -> bool:
        return self.outcome == "invalid"


@dataclass(frozen=True)
class ExerciseMutation:
    """How well one exercise's checks kill its mutants."""

    exercise: str
    filename: str
    results: tuple[MutantResult, ...]
    equivalent: dict[str, str] = field(default_factory=dict)  # allowlisted id -> reason
    control: str = "pass"  # status of the unmutated source, loaded as mutants are

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def killed(self) -> int:
        return sum(r.killed for r in self.results if r.mutant.id not in self.equivalent)

    @property
    def counted(self) -> int:
        """Mutants that count: killed or survived, allowlisted equivalents aside."""
        return sum(r.mutant.id not in self.equivalent and not r.invalid for r in self.results)

    @property
    def invalid(self) -> list[MutantResult]:
        """Mutants that gave no verdict on the checks (not counted in the score)."""
        return [r for r in self.results if r.invalid]

    @property
    def score(self) -> float:
        return self.killed / self.counted if self.counted else 1.0

    @property
    def survivors(self) -> list[Mutant]:
        return [
            r.mutant
            for r in self.results
            if r.outcome == "survived" and r.mutant.id not in self.equivalent
        ]

    @property
    def wrongly_allowlisted(self) -> list[Mutant]:
        """Allowlisted as equivalent, yet a check kills them: the entry is wrong."""
        return [r.mutant for r in self.results if r.killed and r.mutant.id in self.equivalent]


@dataclass(frozen=True)
class MutationReport:
    day: str
    exercises: tuple[ExerciseMutation, ...]
    stale: tuple[str, ...]  # allowlisted ids that match no mutant (or no exercise)
    seconds: float

    @property
    def killed(self) -> int:
        return sum(e.killed for e in self.exercises)

    @property
    def counted(self) -> int:
        return sum(e.counted for e in self.exercises)

    @property
    def score(self) -> float:
        return self.killed / self.counted if self.counted else 1.0

    @property
    def below_bar(self) -> list[ExerciseMutation]:
        """The exercises whose checks kill fewer than ``MIN_SCORE`` of their mutants."""
        return [e for e in self.exercises if e.score < MIN_SCORE]

    @property
    def problems(self) -> list[str]:
        """What is wrong: exercises below the bar, broken controls and allowlist entries."""
        out = [
            f"{e.exercise}: the checks kill {e.killed} of {e.counted} mutants ({e.score:.0%}); "
            f"every exercise needs {MIN_SCORE:.0%}"
            for e in self.below_bar
        ]
        out += [f"{ALLOWLIST_FILE}: {i} matches no mutant (stale: delete it)" for i in self.stale]
        for e in self.exercises:
            if e.control != "pass":
                out.append(
                    f"{e.exercise}: the unmutated reference, loaded as a mutant, gives "
                    f"{e.control!r}: the mutation run cannot be trusted"
                )
            out += [
                f"{ALLOWLIST_FILE}: {m.id} is allowlisted as equivalent but a check kills "
                f"it ({m.description})"
                for m in e.wrongly_allowlisted
            ]
        return out


def _exercise_of(mutant_id: str) -> str:
    return mutant_id.split(":", 1)[0].split(".", 1)[0]


def mutation_report(
    day: Day | str, exercises: list[str] | None = None, *, workers: int = 2
) -> MutationReport:
    """Generate the mutants of ``exercises`` (default: all of the day's), run each exercise's
    checks on them, and tally what survives."""
    from mlab.course.engine.runner import Target, run_jobs

    day = get_day(day) if isinstance(day, str) else day
    chosen = [day.exercise(n) for n in exercises] if exercises is not None else day.exercises
    # Exercises whose optional packages are missing cannot run (the meta-tests report them).
    chosen = [ex for ex in chosen if not ex.missing_requirements()]
    allowlist = load_allowlist(day)
    start = time.perf_counter()
    sources = {ex.name: exercise_source(ex) for ex in chosen}
    generated = {name: mutants_of(src) for name, src in sources.items()}
    jobs = []
    for name, src in sources.items():
        jobs.append((Target.mutant(name, control_source(src), f"{name}:control"), name))
        jobs += [(Target.mutant(name, m.source, m.id), name) for m in generated[name]]
    # A mutant of a Triton kernel can write outside its tensors and corrupt the worker:
    # each of those runs in a worker of its own.
    native = frozenset(ex.name for ex in chosen if ex.requires)
    results = run_jobs(day, jobs, workers=workers, recycle=native)
    # A control that timed out most likely met a busy machine: run it again, alone, with three
    # times the time. Only a second timeout makes the run untrustworthy.
    controls = [i for i, (t, _) in enumerate(jobs) if (t.label or "").endswith(":control")]
    slow = [i for i in controls if results[i].status == "timeout"]
    if slow:
        again = run_jobs(day, [jobs[i] for i in slow], timeout_scale=3.0, recycle=native)
        for i, result in zip(slow, again, strict=True):
            results[i] = result
    tallies = []
    at = 0
    for name, src in sources.items():
        control, ran = results[at], results[at + 1 : at + 1 + len(generated[name])]
        at += 1 + len(generated[name])
        tallies.append(
            ExerciseMutation(
                exercise=name,
                filename=Path(src.filename).name,
                results=tuple(
                    MutantResult(m, r.status, r.message, r.origin)
                    for m, r in zip(generated[name], ran, strict=True)
                ),
                equivalent={i: why for i, why in allowlist.items() if _exercise_of(i) == name},
                control=control.status,
            )
        )
    known = {m.id for ms in generated.values() for m in ms}
    names = {ex.name for ex in day.exercises}
    stale = tuple(
        i
        for i in allowlist
        if (_exercise_of(i) in sources and i not in known) or _exercise_of(i) not in names
    )
    return MutationReport(day.id, tuple(tallies), stale, time.perf_counter() - start)


def stale_allowlist_entries(day: Day) -> list[str]:
    """What is stale in the day's allowlist, one message per entry: ids that name no exercise of
    the day, and ids of an (installed) exercise that match none of its mutants."""
    allowlist = load_allowlist(day)
    where = f"{day.directory.name}/{ALLOWLIST_FILE}"
    names = {ex.name for ex in day.exercises}
    available = [ex for ex in day.exercises if not ex.missing_requirements()]
    known = {m.id for ex in available for m in mutants_of(ex)}
    checked = {ex.name for ex in available}
    out = []
    for i in allowlist:
        name = _exercise_of(i)
        if name not in names:
            out.append(
                f"{where}: {i} names no exercise of {day.id} ({name!r}): delete it, or fix "
                "the exercise name"
            )
        elif name in checked and i not in known:
            out.append(
                f"{where}: {i} matches no mutant of {name} (the code changed): delete it; "
                f"`mlab mutants {day.id} -e {name}` shows the current survivors"
            )
    return out


_HOW_TO_FIX = f"""
Strengthen the checks so that they fail on these mutants. Only a mutant that no
input can tell apart from the reference goes in {ALLOWLIST_FILE}
beside the day's day.toml:
  [[equivalent]]
  id = "<its id, as above>"
  reason = "one line: why no input tells them apart"
"""


_ORIGINS = {
    "check": "a check raised by itself",
    "course": "the day's checks are broken",
    "load": "the mutant did not load",
    "worker": "the check process died",
}


def print_mutation_report(report: MutationReport, console: Console) -> None:
    """Per-exercise kill counts, then each surviving mutant with its description and id."""
    table = Table(
        title=f"Mutants of {report.day} (bar: {MIN_SCORE:.0%} for every exercise)",
        title_justify="left",
    )
    for column in ("exercise", "killed", "total", "equivalent", "invalid", "score"):
        table.add_column(column, justify="left" if column == "exercise" else "right")
    for e in report.exercises:
        style = "green" if e.score >= MIN_SCORE else "red"
        table.add_row(
            e.exercise,
            str(e.killed),
            str(e.counted),
            str(len(e.equivalent)),
            str(len(e.invalid)),
            f"[{style}]{e.score:.0%}[/]",
        )
    table.add_row(
        "[bold]all[/]",
        str(report.killed),
        str(report.counted),
        "",
        str(sum(len(e.invalid) for e in report.exercises)),
        f"[bold]{report.score:.0%}[/]",
    )
    console.print(table)
    for e in report.exercises:
        if e.survivors:
            console.print(
                f"\n[bold]{e.exercise}[/]: {len(e.survivors)} surviving "
                f"({e.filename}); no check fails on:"
            )
        for m in e.survivors:
            console.print(f"  {m.description}", markup=False, highlight=False)
            console.print(f"    [dim]{m.id}[/]", highlight=False)
    for e in report.exercises:
        if e.invalid:
            console.print(
                f"\n[bold]{e.exercise}[/]: {len(e.invalid)} invalid (no verdict, not counted):"
            )
        for r in e.invalid:
            first = r.message.strip().splitlines()[0] if r.message.strip() else "(no message)"
            console.print(f"  {r.mutant.id}", markup=False, highlight=False)
            console.print(
                f"    {r.status} ({_ORIGINS.get(r.origin, r.origin or '?')}): {first}",
                markup=False,
                highlight=False,
            )
    for problem in report.problems:
        console.print(f"[red]{problem}[/]", highlight=False)
    if any(e.survivors for e in report.exercises):
        console.print(_HOW_TO_FIX, markup=False, highlight=False)
