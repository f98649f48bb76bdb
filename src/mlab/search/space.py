"""Search spaces: which runs a search makes, from a space file or from Python.

A space file is gin-like text (``mlab search create SPACE.gin``)::

    search.name = "lr_batch"            # the search's name (results are grouped by it)
    search.base = "shakespeare_char"    # the config every run starts from (mlab train's)
    search.method = "grid"              # grid: every combination; random: search.trials draws
    search.seeds = (0, 1)               # each point once per seed (binds train.seed)
    AdamW.lr = grid(1e-4, 3e-4, 1e-3)   # a searched axis
    LanguageModelTask.batch_size = grid(8, 32)
    train.max_steps = 300               # a plain binding: the same in every run

Axes: ``grid(a, b, ...)`` and ``choice(a, b, ...)`` (the listed values), ``uniform(low, high)``
and ``log_uniform(low, high)`` (random search only: Bergstra & Bengio, 2012, "Random Search
for Hyper-Parameter Optimization", show why random beats a grid when few axes matter; a
learning rate is searched on a log scale). Every run is the base config's text with the
bindings appended: plain gin text, which is what the queue stores and a worker runs.
A malformed line fails at creation, naming the file and the line.
"""

from __future__ import annotations

import ast
import difflib
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlab.errors import ConfigError
from mlab.search.queue import JobSpec

__all__ = [
    "AXIS_KINDS",
    "Axis",
    "Space",
    "grid_points",
    "log_uniform",
    "parse_space",
    "read_space",
    "space_points",
]

AXIS_KINDS = ("grid", "choice", "uniform", "log_uniform")
SETTINGS = (
    "name",
    "base",
    "method",
    "trials",
    "seed",
    "seeds",
    "metric",
    "runner",
    "max_attempts",
)
_KEY = re.compile(r"^[A-Za-z_][\w./]*\.\w+$")
_AXIS = re.compile(r"^(\w+)\((.*)\)$", re.DOTALL)


def grid_points(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, as ``{name: value}`` dicts: the first axis
    varies slowest and the last fastest (the order of ``itertools.product``), the names in
    the axes' order. No axes: one point, ``{}``. Raise ``ConfigError`` naming the axis when
    one has no values (a grid over an empty axis would silently make no runs).

    >>> grid_points({"lr": [1, 2], "bs": [8, 16]})[1]
    {'lr': 1, 'bs': 16}
    """
    for name, values in axes.items():
        if len(values) == 0:
            raise ConfigError(f"axis {name!r} has no values: give it at least one")
    points: list[dict[str, Any]] = [{}]
    for name, values in axes.items():
        points = [{**point, name: value} for point in points for value in values]
    return points


def log_uniform(low: float, high: float, rng: random.Random) -> float:
    """One draw from the log-uniform distribution on ``[low, high]`` (its logarithm uniform
    on ``[log low, log high]``: each factor of 10 equally likely), from one ``rng.random()``
    call: ``low * (high / low) ** u``. Raise ``ConfigError`` naming both values unless
    ``0 < low < high``.

    >>> 1e-4 <= log_uniform(1e-4, 1e-2, random.Random(0)) <= 1e-2
    True
    """
    if not 0 < low < high:
        raise ConfigError(f"log_uniform({low}, {high}): need 0 < low < high")
    return float(low * (high / low) ** rng.random())


@dataclass(frozen=True)
class Axis:
    """A searched value: ``kind`` in :data:`AXIS_KINDS`, ``values`` its arguments."""

    kind: str
    values: tuple[Any, ...]

    def draw(self, rng: random.Random) -> Any:
        if self.kind in ("grid", "choice"):
            return self.values[rng.randrange(len(self.values))]
        if self.kind == "uniform":
            return rng.uniform(*self.values)
        return log_uniform(self.values[0], self.values[1], rng)


@dataclass
class Space:
    """A search: the runs it makes are :func:`space_points` turned into gin text."""

    name: str
    base: str | None = None  # a shipped config's name or a .gin path (None: no base text)
    axes: dict[str, Axis] = field(default_factory=dict)  # "AdamW.lr" -> Axis
    bindings: list[str] = field(default_factory=list)  # plain lines, the same in every run
    method: str = "grid"  # or "random"
    trials: int = 0  # random: how many points
    seed: int = 0  # random: the draws' seed
    seeds: tuple[int, ...] = (0,)  # each point once per seed
    metric: str = "val_loss"  # minimised
    runner: str = "train"  # "train" (mlab train) or "probe" (a stand-in, for tests)
    max_attempts: int = 3
    folder: Path = Path()  # where a relative base path is looked for

    def seed_key(self) -> str:
        return "probe.seed" if self.runner == "probe" else "train.seed"

    def base_text(self) -> str:
        if self.base is None:
            return ""
        from mlab.train.config import shipped_config

        near = self.folder / self.base
        return (near if near.is_file() else shipped_config(self.base)).read_text()

    def jobs(self) -> list[JobSpec]:
        """One :class:`JobSpec` per point and seed, in order."""
        base = self.base_text()
        out = []
        for point in space_points(self):
            for seed in self.seeds:
                params = {**point, "seed": seed}
                lines = [*self.bindings, *(f"{k} = {v!r}" for k, v in point.items())]
                lines.append(f"{self.seed_key()} = {seed}")
                text = base.rstrip("\n") + f"\n\n# search {self.name}\n" + "\n".join(lines)
                out.append(JobSpec(self.name, params, text + "\n", self.max_attempts, self.runner))
        return out


def space_points(space: Space) -> list[dict[str, Any]]:
    """The points of ``space``: the grid, or ``trials`` draws seeded by ``space.seed``."""
    if space.method == "grid":
        return grid_points({k: a.values for k, a in space.axes.items()})
    rng = random.Random(space.seed)
    return [{k: a.draw(rng) for k, a in space.axes.items()} for _ in range(space.trials)]


def _nearest(word: str, candidates: list[str]) -> str:
    """As ``mlab.train.config.nearest_names`` (which imports torch with the training loop)."""
    close = difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "valid names: " + ", ".join(repr(c) for c in sorted(candidates))


def _strip_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ConfigError(
            f"{text!r} is not a Python literal (a number, a quoted string, a tuple)"
        ) from None


def _axis(kind: str, args: str) -> Axis:
    if kind not in AXIS_KINDS:
        raise ConfigError(f"{kind}(...) is not an axis: use one of {', '.join(AXIS_KINDS)}")
    values: tuple[Any, ...] = _literal(f"({args},)") if args.strip() else ()
    if kind in ("grid", "choice") and not values:
        raise ConfigError(f"{kind}() has no values: list at least one")
    if kind in ("uniform", "log_uniform"):
        if len(values) != 2 or not all(isinstance(v, int | float) for v in values):
            raise ConfigError(f"{kind} takes two numbers, low and high: got {values!r}")
        low, high = values[0], values[1]
        if not low < high or (kind == "log_uniform" and low <= 0):
            raise ConfigError(
                f"{kind}({low}, {high}): need {'0 < ' * (kind != 'uniform')}low < high"
            )
    return Axis(kind, tuple(values))


def parse_space(text: str, source: str = "<space>", folder: Path = Path()) -> Space:
    """A :class:`Space` from a space file's text. ``ConfigError`` names ``source:line``."""
    settings: dict[str, Any] = {}
    axes: dict[str, Axis] = {}
    bindings: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        try:
            key, eq, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not _KEY.match(key) or not value:
                raise ConfigError("a line should look like 'Name.param = value'")
            if key in seen:
                raise ConfigError(f"{key} is already set on line {seen[key]}")
            seen[key] = number
            match = _AXIS.match(value)
            if key.startswith("search."):
                setting = key.removeprefix("search.")
                if setting not in SETTINGS:
                    raise ConfigError(
                        f"no setting search.{setting}; " + _nearest(setting, list(SETTINGS))
                    )
                settings[setting] = _literal(value)
            elif match and match.group(1) in AXIS_KINDS:
                axes[key] = _axis(match.group(1), match.group(2))
            elif match and not value.startswith("@"):
                _axis(match.group(1), match.group(2))  # raises: names the axis kinds
            else:
                if not value.startswith(("@", "%")):
                    _literal(value)  # raises: a value gin would not read either
                bindings.append((number, line))
        except ConfigError as err:
            raise ConfigError(f"{source}:{number}: {raw.strip()!r}: {err}") from None
    space = _space(settings, axes, [b for _, b in bindings], source, folder, seen)
    _check_bindings(space, bindings, source, seen)
    return space


def _space(
    settings: dict[str, Any],
    axes: dict[str, Axis],
    bindings: list[str],
    source: str,
    folder: Path,
    seen: dict[str, int],
) -> Space:
    """The space the settings describe, its settings checked (errors name their line)."""

    def at(key: str) -> str:
        return f"{source}:{seen[key]}" if key in seen else source

    name = settings.get("name", Path(source).stem)
    space = Space(name=str(name), axes=axes, bindings=bindings, folder=folder)
    for key, value in settings.items():
        setattr(space, key, value)
    space.seeds = tuple(space.seeds) if isinstance(space.seeds, list | tuple) else (space.seeds,)
    if space.method not in ("grid", "random"):
        raise ConfigError(
            f"{at('search.method')}: search.method = {space.method!r}: use 'grid' or 'random'"
        )
    if space.runner not in ("train", "probe"):
        raise ConfigError(
            f"{at('search.runner')}: search.runner = {space.runner!r}: use 'train' or 'probe'"
        )
    if space.method == "grid":
        drawn = [k for k, a in axes.items() if a.kind in ("uniform", "log_uniform")]
        if drawn:
            raise ConfigError(
                f"{at(drawn[0])}: {drawn[0]} draws at random, which a grid cannot: set "
                "search.method = 'random' and search.trials, or list values with grid(...)"
            )
    elif not (isinstance(space.trials, int) and space.trials >= 1):
        raise ConfigError(
            f"{at('search.method')}: search.method = 'random' needs search.trials >= 1"
        )
    if space.runner == "train" and space.base is None:
        raise ConfigError(f'{source}: name the config runs start from: search.base = "..."')
    return space


def _check_bindings(
    space: Space, bindings: list[tuple[int, str]], source: str, seen: dict[str, int]
) -> None:
    """Every binding and axis name, checked as mlab train checks --bind (probe: its names)."""
    from mlab.search.worker import check_probe_binding

    lines = [*bindings, *((seen[k], f"{k} = 0") for k in space.axes)]
    for number, line in lines:
        try:
            if space.runner == "probe":
                check_probe_binding(line)
            else:
                from mlab.train.config import CONFIGURABLES, check_binding

                check_binding(line, CONFIGURABLES)
        except ConfigError as err:
            raise ConfigError(f"{source}:{number}: {err}") from None
    try:
        space.base_text()
    except ConfigError as err:
        raise ConfigError(f"{source}:{seen.get('search.base', 0)}: {err}") from None


def read_space(path: str | Path) -> Space:
    """The space in the file ``path`` (a shipped space's name also works: ``mlab search
    create shakespeare_lr_batch``)."""
    file = Path(path)
    if not file.is_file():
        shipped = Path(__file__).parent / "spaces" / f"{path}.gin"
        if not shipped.is_file():
            names = sorted(p.stem for p in shipped.parent.glob("*.gin"))
            raise ConfigError(
                f"space {str(path)!r} is neither a file nor a shipped space ({', '.join(names)})"
            )
        file = shipped
    return parse_space(file.read_text(), str(file), file.parent)
