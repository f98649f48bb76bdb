"""Studies: a grid of training runs described by a TOML file, run as a search, then analysed.

A study file (``src/mlab/scaling/studies/NAME.toml``) names a shipped training config
(``mlab train``'s), the bindings every run shares, and a ``[space]``: each key a gin binding
(``"gpt.n_embd"``) with the values to try; the runs are every combination. Two keys are not
gin bindings but are turned into some:

- ``"data.tokens"``: train on the first that many tokens of tiny Shakespeare (a token file is
  written once, ``LanguageModelTask.train_file`` and ``val_file`` bound to it);
- ``"lr.rule"`` (``kind = "batch"``): ``AdamW.lr`` from ``[batch]``'s ``base_lr`` at
  ``base_batch``, scaled to the run's ``LanguageModelTask.batch_size`` by that rule
  (:func:`mlab.scaling.batch.scale_learning_rate`); with ``[batch]``'s ``tokens`` (and
  ``block_size``), every batch size trains on that many tokens (``train.max_steps``), with
  ``evals`` evaluations (default 20) over about ``eval_windows`` validation windows;
- ``"seed"``: ``train.seed`` and the config's task's seed (``ImageTask.seed``, the data order
  and augmentation) both bound to the value, so seeds vary everything random.

A ``[defaults]`` table names space values that equal the shipped config's own (``"train.seed"
= 0``): runs at those values get no binding for them, so their job (and folder) is the one the
study had before that key was added to its space, and adding seeds trains only the new ones.

``search`` (default: the study's name) names the search its runs are jobs of, and their folder:
studies sharing a search (and the same ``bindings`` and space keys, in the same order) share
the runs they have in common, trained once (the Fashion-MNIST studies share their baseline).

A ``[tiny]`` table holds what CI runs instead (its ``bindings`` appended, its ``space``
replacing the full one, its ``[tiny.batch]`` options replacing single ``[batch]`` ones).
``kind`` says how to analyse the runs (:mod:`mlab.scaling.analyse`).
"""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mlab.errors import ConfigError
from mlab.scaling.batch import scale_learning_rate

__all__ = ["Run", "Study", "load_study", "study_names"]

KINDS = ("size", "data", "factor", "batch", "early_stopping")
PSEUDO = ("data.tokens", "lr.rule", "seed")


def study_names() -> list[str]:
    """The studies shipped with mlab (``mlab study NAME``)."""
    folder = resources.files("mlab.scaling") / "studies"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def _gin_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return (
            "(" + ", ".join(_gin_value(v) for v in value) + ("," if len(value) == 1 else "") + ")"
        )
    return repr(value)


@dataclass
class Run:
    """One run of a study: its searched values, its gin bindings and its folder's name."""

    params: dict[str, Any]
    bindings: list[str]
    name: str


@dataclass
class Study:
    name: str
    title: str
    kind: str
    config: str
    bindings: list[str]
    space: dict[str, list[Any]]
    options: dict[str, Any] = field(default_factory=dict)  # [batch], [factor], [fit] tables
    path: Path | None = None
    search: str = ""  # the search (and runs folder) its runs belong to; "" is ``name``

    def __post_init__(self) -> None:
        self.search = self.search or self.name

    def task_name(self) -> str:
        """The configurable the study's training config trains on (``train.task = @X``)."""
        from mlab.train.config import shipped_config

        text = shipped_config(self.config).read_text()
        found = re.findall(r"^train\.task\s*=\s*@(\w+)", text, re.MULTILINE)
        return found[-1] if found else "LanguageModelTask"

    def runs(self, data_dir: Path) -> list[Run]:
        """Every combination of the space's values, as runs (token files written as needed)."""
        keys = list(self.space)
        out = []
        for values in itertools.product(*(self.space[k] for k in keys)):
            params = dict(zip(keys, values, strict=True))
            bindings = list(self.bindings)
            defaults = self.options.get("defaults", {})
            for key, value in params.items():
                if key in defaults and defaults[key] == value:
                    continue  # the config's own value: the run's job is the one it was
                if key not in PSEUDO:
                    bindings.append(f"{key} = {_gin_value(value)}")
            if "seed" in params:
                seed = int(params["seed"])
                bindings += [f"train.seed = {seed}", f"{self.task_name()}.seed = {seed}"]
            if "data.tokens" in params:
                train, val = token_files(data_dir, int(params["data.tokens"]))
                bindings += [
                    f"LanguageModelTask.train_file = {_gin_value(str(train))}",
                    f"LanguageModelTask.val_file = {_gin_value(str(val))}",
                ]
            if "lr.rule" in params:
                batch = self.options.get("batch", {})
                size = params.get("LanguageModelTask.batch_size", batch.get("base_batch"))
                lr = scale_learning_rate(
                    float(batch["base_lr"]), int(batch["base_batch"]), int(size), params["lr.rule"]
                )
                bindings.append(f"AdamW.lr = {lr!r}")
                windows = int(batch.get("eval_windows", 0))
                if windows:  # the same number of validation windows whatever the batch size
                    bindings.append(f"LanguageModelTask.eval_batches = {max(1, windows // size)}")
                if "tokens" in batch:  # the same examples for every batch size
                    steps = max(1, int(batch["tokens"]) // (int(size) * int(batch["block_size"])))
                    every = max(1, steps // int(batch.get("evals", 20)))
                    bindings += [
                        f"train.max_steps = {steps}",
                        f"train.eval_every = {every}",
                        f"train.checkpoint_every = {steps}",
                    ]
            name = ",".join(f"{k.rpartition('.')[2]}={v}" for k, v in params.items())
            out.append(Run(params, bindings, name.replace("/", "_") or "run"))
        return out


def token_files(data_dir: Path, tokens: int) -> tuple[Path, Path]:
    """The first ``tokens`` tokens of tiny Shakespeare's training split as a token file (and
    the full validation split), written once into ``data_dir``."""
    from mlab.train.data import open_token_file, shakespeare_token_files, write_token_file

    train_all, val = shakespeare_token_files("char")
    ids = open_token_file(train_all)
    if not 0 < tokens <= len(ids):
        raise ConfigError(f"data.tokens={tokens}: tiny Shakespeare has {len(ids)} to train on")
    train = data_dir / f"shakespeare-char-train-{tokens}.npy"
    if not train.is_file():
        write_token_file(train, ids[:tokens])
    return train, val


def load_study(name_or_path: str, tiny: bool = False) -> Study:
    """A study from its TOML file: a path, or a shipped study's name. ``tiny``: CI's version."""
    path = Path(name_or_path)
    if not path.is_file():
        path = Path(str(resources.files("mlab.scaling") / "studies" / f"{name_or_path}.toml"))
    if not path.is_file():
        from mlab.train.config import nearest_names

        raise ConfigError(
            f"study {name_or_path!r} is neither a file nor a shipped study; "
            + nearest_names(name_or_path, study_names())
        )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}") from None
    missing = [k for k in ("title", "kind", "config", "space") if k not in data]
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(missing)} (see mlab.scaling.studies)")
    if data["kind"] not in KINDS:
        raise ConfigError(f"{path}: kind={data['kind']!r}; use one of {', '.join(KINDS)}")
    bindings = list(data.get("bindings", []))
    space = dict(data["space"])
    if tiny:
        small = data.get("tiny", {})
        bindings += small.get("bindings", [])
        space = dict(small.get("space", space))
    for key, values in space.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: space {key!r} = {values!r} should be a non-empty list")
    tables = ("batch", "factor", "fit", "early_stopping", "defaults")
    options: dict[str, Any] = {k: data[k] for k in tables if k in data}
    if tiny:  # [tiny.batch] etc. override single options
        for key in tables:
            options[key] = options.get(key, {}) | data.get("tiny", {}).get(key, {})
    from mlab.train.config import CONFIGURABLES, check_binding

    for binding in bindings:
        check_binding(binding, CONFIGURABLES)
    for key in space:
        if key not in PSEUDO:
            check_binding(f"{key} = 0", CONFIGURABLES)
    if data["kind"] == "factor" and options.get("factor", {}).get("name") not in space:
        raise ConfigError(f"{path}: [factor] name should be one of the space's keys")
    search = data.get("search", "")
    if not isinstance(search, str) or not re.fullmatch(r"[\w.-]*", search):
        raise ConfigError(f"{path}: search={search!r} should be a name (letters, digits, _.-)")
    return Study(
        path.name.removesuffix(".toml"),
        data["title"],
        data["kind"],
        data["config"],
        bindings,
        space,
        options,
        path,
        search,
    )
