"""gin-config for training runs: what can be bound, and bindings checked before anything runs.

gin (https://github.com/google/gin-config) binds keyword arguments of registered functions and
classes from text: ``mlp.hidden = (256, 128)``, ``AdamW.lr = 3e-4``, ``train.model = @mlp``.
The names a config may use are listed in :data:`CONFIGURABLES` (registered explicitly, no
reflection). A misspelt name or parameter would otherwise surface as gin's error, or worse, as a
run that trained with a default; :func:`check_binding` rejects it first, naming the nearest valid
names (``difflib``'s similarity ratio).
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from mlab.errors import ConfigError
from mlab.train.builders import WarmupCosine, gpt, mlp, resnet
from mlab.train.data import ImageTask, LanguageModelTask
from mlab.train.loop import train

__all__ = [
    "CONFIGURABLES",
    "bindable_parameters",
    "check_binding",
    "check_config_text",
    "nearest_names",
    "parse_config",
    "registered",
    "shipped_config",
    "shipped_configs",
]

# name in configs -> the function or class it builds. Arguments a config must not set (the run
# folder, resuming, callbacks) are left out of gin's reach in ``registered``.
CONFIGURABLES: dict[str, Callable[..., Any]] = {
    "train": train,
    "mlp": mlp,
    "resnet": resnet,
    "gpt": gpt,
    "WarmupCosine": WarmupCosine,
    "ImageTask": ImageTask,
    "LanguageModelTask": LanguageModelTask,
    "SGD": torch.optim.SGD,
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
}
NOT_BINDABLE = {"train": ["run_dir", "resume", "until", "on_built", "say"]}
BINDING_LINE = re.compile(r"^([A-Za-z_][\w./]*\.\w+)\s*=", re.MULTILINE)

_registered: dict[str, Any] = {}


def bindable_parameters(fn: Callable[..., Any], name: str) -> list[str] | None:
    """The names ``fn`` can be bound by, or ``None`` when it takes ``**kwargs`` (any name)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    hidden = NOT_BINDABLE.get(name, [])
    return [
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in hidden
    ]


def nearest_names(word: str, candidates: list[str]) -> str:
    """``"did you mean 'a' or 'b'?"`` with ``difflib.get_close_matches(word, candidates, n=3,
    cutoff=0.6)``, or ``"valid names: ..."`` (all of them, sorted) when none is close."""
    close = difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "valid names: " + ", ".join(repr(c) for c in sorted(candidates))


def check_binding(binding: str, configurables: Mapping[str, Callable[..., Any]]) -> tuple[str, str]:
    """Check one gin binding ``"[scope/]Name.param = value"`` against ``configurables``
    (name -> function or class) and return ``(Name, param)``.

    Split at the first ``=``; the key (spaces stripped) splits at its last ``.`` into the
    selector and the parameter; a scope (anything up to the selector's last ``/``) is dropped.
    ``Name`` is the selector itself when it is a key of ``configurables``, else its last
    dotted component (``torch.optim.AdamW`` -> ``AdamW``). Raise ``mlab.errors.ConfigError``:

    - when there is no ``=`` or the key has no ``.``: say the binding should look like
      ``Name.param = value``;
    - when ``Name`` is unknown: name it, with ``nearest_names(Name, list(configurables))``
      (the nearest names by ``difflib``, or all of them when none is close);
    - when ``param`` is not among ``bindable_parameters(function, Name)`` (the keyword
      parameters of its signature; ``None`` for a function taking ``**kwargs``, which accepts
      any): name both, with ``nearest_names(param, parameters)``.
    """
    key, eq, _ = binding.partition("=")
    selector, dot, param = key.strip().rpartition(".")
    if not eq or not dot:
        raise ConfigError(f"binding {binding!r} should look like 'Name.param = value'")
    selector = selector.rpartition("/")[2]
    name = selector if selector in configurables else selector.rpartition(".")[2]
    if name not in configurables:
        raise ConfigError(
            f"binding {binding!r}: no configurable named {name!r}; "
            + nearest_names(name, list(configurables))
        )
    params = bindable_parameters(configurables[name], name)
    if params is not None and param not in params:
        raise ConfigError(
            f"binding {binding!r}: {name} has no parameter {param!r}; "
            + nearest_names(param, params)
        )
    return name, param


def check_config_text(text: str) -> None:
    """Check every binding line of a config's text (lines ``Name.param = ...`` at the start of a
    line) with :func:`check_binding`."""
    for match in BINDING_LINE.finditer(text):
        check_binding(match.group(0), CONFIGURABLES)


def registered() -> dict[str, Any]:
    """Register :data:`CONFIGURABLES` with gin (once) and return the configured callables."""
    import gin

    if not _registered:
        for name, fn in CONFIGURABLES.items():
            module = "torch.optim" if name in ("SGD", "Adam", "AdamW") else "mlab"
            _registered[name] = gin.external_configurable(
                fn, name=name, module=module, denylist=NOT_BINDABLE.get(name)
            )
    return _registered


def parse_config(text: str) -> None:
    """Clear gin's bindings and parse ``text`` (a config file's text plus ``--bind`` lines),
    checking every binding first."""
    import gin

    check_config_text(text)
    registered()
    gin.clear_config()
    try:
        gin.parse_config(text)
    except (ValueError, SyntaxError, KeyError) as err:  # KeyError: an ambiguous name
        raise ConfigError(f"the config does not parse: {err}") from None


def shipped_configs() -> list[str]:
    """Names of the configs shipped with mlab (``mlab train NAME``)."""
    folder = resources.files("mlab.train") / "configs"
    return sorted(p.name.removesuffix(".gin") for p in folder.iterdir() if p.name.endswith(".gin"))


def shipped_config(name_or_path: str) -> Path:
    """A config file: a path as given, or the shipped config of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = Path(str(resources.files("mlab.train") / "configs" / f"{name_or_path}.gin"))
    if shipped.is_file():
        return shipped
    raise ConfigError(
        f"config {name_or_path!r} is neither a file nor a shipped config; "
        + nearest_names(name_or_path.removesuffix(".gin"), shipped_configs())
    )
