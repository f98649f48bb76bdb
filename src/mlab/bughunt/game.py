"""A bug hunt in a workspace: start one, guess where the bug is, reveal it, see where you are.

``new`` writes the bugged copy of a reference script to ``<workspace>/bughunt/<target>.py``,
a pristine copy of it to ``<workspace>/.mlab/bughunt/<target>.py`` and the hunt's state to
``<workspace>/.mlab/bughunt.json`` (target, seed, the file's SHA-256, guesses, found, revealed).
The bug itself is never stored: ``draw(target, seed)`` makes it again.

Learners may edit the hunt file while they investigate (a print here, a fix there). A guess's
line number is taken in the file as it is now and mapped back to the file as written, through
the lines both share; a line the learner added has no counterpart and is refused with a
message saying so. ``new`` never overwrites an edited hunt file or an unfinished hunt without
``force``, and even then it keeps the edited file under another name: nothing is lost.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mlab.bughunt.catalogue import Bug, draw, target_path
from mlab.errors import MlabError
from mlab.invocation import mlab_command

if TYPE_CHECKING:
    from mlab.inspect.compare import Comparison

__all__ = [
    "CLOSE",
    "Guess",
    "GuessRecord",
    "Hunt",
    "NewHunt",
    "Reveal",
    "Status",
    "current",
    "guess",
    "hunt_file",
    "inspect_hunt",
    "load_hunt",
    "new",
    "reveal",
    "status",
]

CLOSE = 2  # a guess this many lines from the bug is "close"
STATE = Path(".mlab") / "bughunt.json"
PRISTINE = Path(".mlab") / "bughunt"
Outcome = Literal["found", "close", "not here"]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hunt_file(workspace: Path, target: str) -> Path:
    """Where the bugged copy of ``target`` goes in ``workspace``."""
    return workspace / "bughunt" / f"{target}.py"


@dataclass
class GuessRecord:
    """One guess as stored: what was typed, the line in the file as written, the outcome."""

    spec: str
    line: int
    outcome: Outcome


@dataclass
class Hunt:
    """The state of the workspace's bug hunt, as stored in ``.mlab/bughunt.json``."""

    target: str
    seed: int
    file: str  # the hunt file, relative to the workspace
    sha256: str  # of the file as written
    started: str
    guesses: list[GuessRecord] = field(default_factory=list)
    found: bool = False
    revealed: bool = False

    @property
    def finished(self) -> bool:
        return self.found or self.revealed

    def save(self, workspace: Path) -> None:
        path = workspace / STATE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")


def load_hunt(workspace: Path) -> Hunt | None:
    """The workspace's hunt, or None when none was started there."""
    path = workspace / STATE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        guesses = [GuessRecord(**g) for g in data.pop("guesses")]
        return Hunt(**data, guesses=guesses)
    except (ValueError, TypeError, KeyError) as err:
        raise MlabError(
            f"{path} is not a bug hunt's state ({err}); delete it and start a new hunt with "
            f"`{mlab_command()} bughunt new --target NAME --seed S`"
        ) from None


def _require(workspace: Path) -> Hunt:
    hunt = load_hunt(workspace)
    if hunt is None:
        raise MlabError(
            f"no bug hunt in {workspace}: start one with "
            f"`{mlab_command()} bughunt new --target mlp --seed 0` "
            f"(`{mlab_command()} bughunt list` shows the targets)"
        )
    return hunt


def current(workspace: Path) -> tuple[Hunt, Bug]:
    """The workspace's hunt and its bug; ``MlabError`` when there is no hunt, or when this
    version of mlab would plant another bug for its target and seed."""
    hunt = _require(workspace)
    bug = draw(hunt.target, hunt.seed)
    if _sha256(bug.bugged) != hunt.sha256:
        raise MlabError(
            f"the hunt in {workspace / hunt.file} was started with another version of mlab, "
            f"which hid another bug; start a new one with `{mlab_command()} bughunt new --target "
            f"{hunt.target} --seed {hunt.seed} --force` (your file is kept)"
        )
    return hunt, bug


@dataclass
class NewHunt:
    """What ``new`` did: the hunt, the file, and copies it kept of edited files."""

    hunt: Hunt
    bug: Bug
    path: Path
    kept: list[Path]
    resumed: bool  # the same hunt was already in progress, unchanged


def _keep_copy(path: Path) -> Path:
    """Copy the edited file ``path`` to a free ``<name>.edited[N].py`` beside it."""
    n = 1
    while (copy := path.with_name(f"{path.stem}.edited{'' if n == 1 else n}.py")).exists():
        n += 1
    copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return copy


def new(workspace: Path, target: str, seed: int, force: bool = False) -> NewHunt:
    """Start a hunt: write the bugged copy of ``target`` and the state.

    Without ``force``, refuse (``MlabError``, nothing written) when another hunt is
    unfinished or when the hunt file exists with edits; the same target and seed as the
    unfinished hunt resumes it. With ``force``, an edited hunt file is first copied to
    ``<target>.edited.py``.
    """
    target_path(target)  # an unknown target is an error naming the targets
    bug = draw(target, seed)
    path = hunt_file(workspace, target)
    old = load_hunt(workspace)
    text = path.read_text(encoding="utf-8") if path.is_file() else None
    unfinished = old is not None and not old.finished
    same = old is not None and (old.target, old.seed) == (target, seed) and text == bug.bugged
    if old is not None and unfinished and same and not force:
        return NewHunt(old, bug, path, [], resumed=True)
    if old is not None and unfinished and not force:
        raise MlabError(
            f"a bug hunt is in progress in {workspace / old.file} (target {old.target}, seed "
            f"{old.seed}, {len(old.guesses)} guesses so far). Finish it "
            f"(`{mlab_command()} bughunt guess FILE:LINE`, or `{mlab_command()} bughunt reveal`), "
            "or pass --force to start another; nothing was changed"
        )
    pristine = workspace / PRISTINE / f"{target}.py"
    written_by_us = pristine.is_file() and text == pristine.read_text(encoding="utf-8")
    kept = []
    if text is not None and text != bug.bugged and not written_by_us:
        if not force:
            raise MlabError(
                f"{path} exists and has changes of yours; pass --force to start the hunt "
                f"anyway (your file is then kept as {path.stem}.edited.py); nothing was changed"
            )
        kept.append(_keep_copy(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(bug.bugged, encoding="utf-8")
    pristine.parent.mkdir(parents=True, exist_ok=True)
    pristine.write_text(bug.bugged, encoding="utf-8")
    hunt = Hunt(
        target=target,
        seed=seed,
        file=path.relative_to(workspace).as_posix(),
        sha256=_sha256(bug.bugged),
        started=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    hunt.save(workspace)
    return NewHunt(hunt, bug, path, kept, resumed=False)


def _parse(spec: str, workspace: Path, hunt: Hunt, cwd: Path) -> tuple[Path, int]:
    example = f"e.g. `{mlab_command()} bughunt guess {hunt.file}:42`"
    file_part, sep, line_part = spec.rpartition(":")
    if not sep or not file_part:
        raise MlabError(f"{spec!r} is not FILE:LINE; {example}")
    try:
        line = int(line_part)
    except ValueError:
        raise MlabError(f"{line_part!r} in {spec!r} is not a line number; {example}") from None
    if line < 1:
        raise MlabError(f"line {line} in {spec!r}: lines count from 1; {example}")
    path = workspace / hunt.file
    given = Path(file_part).expanduser()
    candidates = [given]
    if not given.is_absolute():
        candidates = [cwd / given, workspace / given, workspace / "bughunt" / given]
    if not any(c.resolve() == path.resolve() for c in candidates):
        raise MlabError(f"{file_part} is not the hunt's file: the bug is in {path}")
    return path, line


def _original_line(written: list[str], now: list[str], line: int) -> int | None:
    """The line of ``written`` that line ``line`` (1-based) of ``now`` is, through the
    lines both share or a block replaced line for line; None for a line only ``now`` has."""
    matcher = difflib.SequenceMatcher(a=written, b=now, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if j1 <= line - 1 < j2 and (tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1)):
            return i1 + (line - 1 - j1) + 1
    return None


@dataclass
class Guess:
    """A scored guess. ``line`` is the guessed line in the file as it is now, ``original``
    that line in the file as written (they differ when the learner added lines)."""

    outcome: Outcome
    line: int
    original: int
    edited: bool  # the hunt file has changed since it was written
    n_guesses: int
    bug: Bug
    already_finished: bool  # the hunt was found or revealed before this guess


def guess(workspace: Path, spec: str, cwd: Path | None = None) -> Guess:
    """Score ``spec`` (``FILE:LINE``, the file relative to ``cwd`` or the workspace): the
    bug's line is ``found``, within ``CLOSE`` lines ``close``, else ``not here``. The guess
    is recorded. ``MlabError`` for a spec that is not FILE:LINE, another file, or a line the
    file does not have or that the learner added."""
    hunt, bug = current(workspace)
    path, line = _parse(spec, workspace, hunt, cwd or Path.cwd())
    written = (workspace / PRISTINE / f"{hunt.target}.py").read_text(encoding="utf-8")
    now_text = path.read_text(encoding="utf-8") if path.is_file() else written
    now = now_text.splitlines()
    if line > len(now):
        raise MlabError(f"{spec}: {path.name} has only {len(now)} lines")
    original = _original_line(written.splitlines(), now, line)
    if original is None:
        raise MlabError(
            f"line {line} of {path.name} is one you added or changed, so it is not in the hunt "
            "as written; guess a line of the original code (line numbers of unchanged lines "
            "are mapped back for you)"
        )
    distance = min(abs(original - bug_line) for bug_line in bug.lines)
    outcome: Outcome = "found" if distance == 0 else "close" if distance <= CLOSE else "not here"
    already = hunt.finished
    hunt.guesses.append(GuessRecord(spec, original, outcome))
    hunt.found = hunt.found or outcome == "found"
    hunt.save(workspace)
    return Guess(
        outcome=outcome,
        line=line,
        original=original,
        edited=now_text != written,
        n_guesses=len(hunt.guesses),
        bug=bug,
        already_finished=already,
    )


@dataclass
class Reveal:
    """The answer: the bug, its diff from the reference, and the hunt's guesses."""

    hunt: Hunt
    bug: Bug
    diff: str


def reveal(workspace: Path) -> Reveal:
    """End the hunt and return the bug with its diff (the hunt is marked revealed)."""
    hunt, bug = current(workspace)
    hunt.revealed = True
    hunt.save(workspace)
    return Reveal(hunt, bug, bug.diff())


@dataclass
class Status:
    """Where the workspace's hunt stands; ``hunt`` is None when there is none."""

    hunt: Hunt | None
    path: Path | None  # the hunt file
    exists: bool
    edited: bool  # the hunt file differs from the file as written


def status(workspace: Path) -> Status:
    """The workspace's hunt (if any), its file, and whether the learner edited it."""
    hunt = load_hunt(workspace)
    if hunt is None:
        return Status(None, None, exists=False, edited=False)
    path = workspace / hunt.file
    exists = path.is_file()
    changed = exists and _sha256(path.read_text(encoding="utf-8")) != hunt.sha256
    return Status(hunt, path, exists=exists, edited=changed)


def inspect_hunt(
    target: str,
    script: Path,
    *,
    steps: int = 3,
    seed: int = 0,
    timeout_s: float | None = 60.0,
) -> Comparison:
    """Record the reference ``target`` (run ``"reference"``) and ``script`` (run ``"hunt"``)
    for ``steps`` steps from ``seed`` and compare them, the reference first. ``MlabError``
    when ``script`` does not load, fails, or runs out of time."""
    from mlab.inspect import compare, run_script  # matplotlib: only when needed

    reference = run_script(
        target_path(target), steps=steps, seed=seed, name="reference", timeout_s=timeout_s
    )
    hunt = run_script(script, steps=steps, seed=seed, name="hunt", timeout_s=timeout_s)
    return compare(reference, hunt)
