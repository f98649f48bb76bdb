"""Day manifests: what a day is made of, read from its ``day.toml`` and part files.

A day lives in a package ``mlab/course/<id>_<slug>/`` (``w1d1_tensors``) holding:

- ``day.toml``: ``id``, ``title``, ``summary``, ``instructions`` (a Markdown file beside it)
  and ``parts``, an ordered list of part files;
- each part file (``part1_strides.toml``): ``title``, an optional ``intro``, ``checks`` (the
  module in the day's package holding the part's checks) and ``[[exercises]]``, each with
  ``name``, ``ref`` (``"mlab.tensor.strides:element_offset"``: the reference object in the
  library, the single source of the exercise), ``difficulty`` and ``importance`` (1-3),
  ``minutes``, ``hints`` (revealed one at a time) and optionally ``timeout`` (seconds per
  check run, default 10).

Parts become the sections of the learner's notebook file.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import re
import tomllib
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from mlab.errors import ConfigError, CourseError
from mlab.invocation import mlab_command

__all__ = ["COURSE_DIR", "Day", "Exercise", "Figure", "Part", "all_days", "get_day"]

COURSE_DIR = Path(__file__).resolve().parent.parent
_DAY_DIR = re.compile(r"^(w\d+d\d+)_([a-z0-9_]+)$")
DEFAULT_TIMEOUT = 10.0

_DAY_KEYS = {"id", "title", "summary", "instructions", "parts", "figures"}
_FIGURE_KEYS = {"image", "caption"}
_PART_KEYS = {"title", "intro", "checks", "exercises", "requires"}
_EXERCISE_KEYS = {"name", "ref", "difficulty", "importance", "minutes", "hints", "timeout"}


@dataclass(frozen=True)
class Exercise:
    name: str
    ref: str  # "package.module:QualName"
    difficulty: int
    importance: int
    minutes: int
    hints: tuple[str, ...]
    timeout: float
    part: int  # index into Day.parts
    day_id: str
    # Optional packages the part needs (e.g. "triton", from the `gpu` extra).
    requires: tuple[str, ...] = ()

    def missing_requirements(self) -> list[str]:
        """The packages this exercise needs that are not installed."""
        return [name for name in self.requires if importlib.util.find_spec(name) is None]

    @property
    def ref_module(self) -> str:
        return self.ref.split(":", 1)[0]

    @property
    def ref_qualname(self) -> str:
        return self.ref.split(":", 1)[1]

    def reference(self) -> Any:
        """The reference object (function or class) in the library."""
        module = importlib.import_module(self.ref_module)
        obj: Any = module
        for attr in self.ref_qualname.split("."):
            obj = getattr(obj, attr)
        return obj


@dataclass(frozen=True)
class Part:
    title: str
    intro: str
    checks_module: str  # dotted module name
    exercises: tuple[Exercise, ...]


@dataclass(frozen=True)
class Figure:
    """A picture the day's code draws, shown on its web page: an image file (a path relative
    to the day folder) and one sentence saying what it shows."""

    image: Path
    caption: str


@dataclass(frozen=True)
class Day:
    id: str
    slug: str
    title: str
    summary: str
    directory: Path
    instructions: Path
    parts: tuple[Part, ...] = field(default_factory=tuple)
    figures: tuple[Figure, ...] = ()

    @property
    def package(self) -> str:
        return f"mlab.course.{self.id}_{self.slug}"

    @property
    def exercises(self) -> tuple[Exercise, ...]:
        return tuple(ex for part in self.parts for ex in part.exercises)

    @property
    def workspace_filename(self) -> str:
        return f"{self.id}_{self.slug}.py"

    def exercise(self, name: str) -> Exercise:
        for ex in self.exercises:
            if ex.name == name:
                return ex
        suggestion = _did_you_mean(name, [ex.name for ex in self.exercises])
        raise CourseError(
            f"Day {self.id} has no exercise {name!r}.{suggestion} "
            f"`{mlab_command()} list {self.id}` shows its exercises."
        )


def _did_you_mean(name: str, known: list[str], *, most: int = 3) -> str:
    """ " Did you mean a?" naming the known names closest to a mistyped ``name``: the most
    similar spellings (difflib's ratio, near ties included), then names that contain it; ""
    when none is close, or when more than ``most`` tie (a guess among many helps no one)."""
    wanted = name.lower()
    lowered = {k.lower(): k for k in known}
    ratio = {k: difflib.SequenceMatcher(None, wanted, k).ratio() for k in lowered}
    similar = difflib.get_close_matches(wanted, lowered, n=len(lowered), cutoff=0.6)
    similar = [k for k in similar if ratio[k] >= ratio[similar[0]] - 0.05]
    close = [lowered[k] for k in similar] if len(similar) <= most else []
    close += [k for k in known if wanted in k.lower() and k not in close]
    return f" Did you mean {' or '.join(close[:most])}?" if close else ""


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None


def _require(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise ConfigError(f"{where}: missing key {key!r}")
    value = table[key]
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise ConfigError(
            f"{where}: {key!r} should be a {kind.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed are {sorted(allowed)}")


def _load_exercise(raw: dict[str, Any], part_index: int, day_id: str, where: str) -> Exercise:
    _check_keys(raw, _EXERCISE_KEYS, where)
    name = _require(raw, "name", str, where)
    where = f"{where} ({name})"
    ref = _require(raw, "ref", str, where)
    if not re.fullmatch(r"[\w.]+:[\w.]+", ref):
        raise ConfigError(f"{where}: ref {ref!r} should look like 'mlab.tensor.strides:name'")
    hints = raw.get("hints", [])
    if not isinstance(hints, list) or not all(isinstance(h, str) for h in hints) or not hints:
        raise ConfigError(f"{where}: 'hints' should be a non-empty list of strings")
    ints = {}
    for key in ("difficulty", "importance"):
        value = _require(raw, key, int, where)
        if not 1 <= value <= 3:
            raise ConfigError(f"{where}: {key}={value} should be 1, 2 or 3")
        ints[key] = value
    return Exercise(
        name=name,
        ref=ref,
        difficulty=ints["difficulty"],
        importance=ints["importance"],
        minutes=_require(raw, "minutes", int, where),
        hints=tuple(hints),
        timeout=float(raw.get("timeout", DEFAULT_TIMEOUT)),
        part=part_index,
        day_id=day_id,
    )


def load_day(directory: Path) -> Day:
    """Read and validate one day's manifest. Raises ``ConfigError`` naming the file and key."""
    match = _DAY_DIR.match(directory.name)
    if not match:
        raise ConfigError(f"{directory.name!r} is not a day folder name like 'w1d1_tensors'")
    day_id, slug = match.groups()
    manifest = directory / "day.toml"
    raw = _read_toml(manifest)
    _check_keys(raw, _DAY_KEYS, str(manifest))
    if raw.get("id") != day_id:
        raise ConfigError(f"{manifest}: id={raw.get('id')!r} but the folder says {day_id!r}")
    instructions = directory / _require(raw, "instructions", str, str(manifest))
    if not instructions.is_file():
        raise ConfigError(f"{manifest}: instructions file {instructions.name} is missing")
    parts: list[Part] = []
    seen: set[str] = set()
    for index, part_file in enumerate(_require(raw, "parts", list, str(manifest))):
        part_path = directory / part_file
        part_raw = _read_toml(part_path)
        _check_keys(part_raw, _PART_KEYS, str(part_path))
        requires = part_raw.get("requires", [])
        if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
            raise ConfigError(f"{part_path}: 'requires' should be a list of package names")
        exercises = []
        for raw_ex in _require(part_raw, "exercises", list, str(part_path)):
            ex = _load_exercise(raw_ex, index, day_id, str(part_path))
            ex = replace(ex, requires=tuple(requires))
            if ex.name in seen:
                raise ConfigError(f"{part_path}: exercise {ex.name!r} appears twice in {day_id}")
            seen.add(ex.name)
            exercises.append(ex)
        checks = _require(part_raw, "checks", str, str(part_path))
        parts.append(
            Part(
                title=_require(part_raw, "title", str, str(part_path)),
                intro=str(part_raw.get("intro", "")).strip(),
                checks_module=f"mlab.course.{directory.name}.{checks}",
                exercises=tuple(exercises),
            )
        )
    return Day(
        id=day_id,
        slug=slug,
        title=_require(raw, "title", str, str(manifest)),
        summary=_require(raw, "summary", str, str(manifest)).strip(),
        directory=directory,
        instructions=instructions,
        parts=tuple(parts),
        figures=_load_figures(raw.get("figures", []), directory, str(manifest)),
    )


def _load_figures(raw: Any, directory: Path, where: str) -> tuple[Figure, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: 'figures' should be a list of {{image, caption}} tables")
    figures = []
    for item in raw:
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: each of 'figures' should be a table {{image, caption}}")
        _check_keys(item, _FIGURE_KEYS, f"{where} [figures]")
        image = (directory / _require(item, "image", str, where)).resolve()
        if not image.is_file():
            raise ConfigError(f"{where}: figure {item['image']} is missing (looked for {image})")
        figures.append(Figure(image=image, caption=_require(item, "caption", str, where)))
    return tuple(figures)


@cache
def _load_day_cached(directory: Path) -> Day:
    return load_day(directory)


def _day_sort_key(day: Day) -> tuple[int, int]:
    week, number = re.findall(r"\d+", day.id)
    return int(week), int(number)


@cache
def all_days() -> tuple[Day, ...]:
    """Every day of the course, in course order."""
    days = [
        _load_day_cached(path)
        for path in COURSE_DIR.iterdir()
        if path.is_dir() and _DAY_DIR.match(path.name) and (path / "day.toml").is_file()
    ]
    return tuple(sorted(days, key=_day_sort_key))


def get_day(day_id: str) -> Day:
    """The day called ``day_id`` ("w1d1"; the folder name "w1d1_tensors" works too)."""
    wanted = day_id.lower().split("_", 1)[0]
    # Load only this day's folder: a course bug in another day must not stop this one.
    for path in COURSE_DIR.iterdir():
        match = _DAY_DIR.match(path.name)
        if match and match.group(1) == wanted and (path / "day.toml").is_file():
            return _load_day_cached(path)
    days = sorted(
        (m.group(1) for p in COURSE_DIR.iterdir() if (m := _DAY_DIR.match(p.name))),
        key=lambda d: tuple(int(n) for n in re.findall(r"\d+", d)),
    )
    suggestion = _did_you_mean(wanted, days, most=1) if len(wanted) > 1 else ""
    raise CourseError(
        f"There is no day {day_id!r}.{suggestion} Days: {', '.join(days) or 'none yet'}. "
        f"`{mlab_command()} list` shows them all."
    )
