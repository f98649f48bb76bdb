"""Checks for part 1 of w3d1: ``check_binding``, compared with gin itself (what gin accepts
passes, what gin rejects raises ``ConfigError``) and its suggestions with ``difflib``."""

from __future__ import annotations

import contextlib
import difflib
import inspect
from collections.abc import Callable
from typing import Any

import torch

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ConfigError, MismatchError
from mlab.testing import assert_equal, assert_raises, case, expect


def mlp(in_features: int = 64, hidden: tuple[int, ...] = (128,), dropout: float = 0.0) -> str:
    return f"mlp({in_features}, {hidden}, {dropout})"


def anything(**kwargs: Any) -> dict[str, Any]:
    return kwargs


def schedule(alpha1: float = 0, alpha2: float = 0, alpha3: float = 0, alpha4: float = 0) -> None:
    del alpha1, alpha2, alpha3, alpha4


class Warmup:
    def __init__(self, total_steps: int, warmup_steps: int = 0, *, floor: float = 0.1) -> None:
        self.total_steps, self.warmup_steps, self.floor = total_steps, warmup_steps, floor


REGISTRY: dict[str, Callable[..., Any]] = {
    "mlp": mlp,
    "anything": anything,
    "schedule": schedule,
    "Warmup": Warmup,
    "AdamW": torch.optim.AdamW,
    "opt.SGD": torch.optim.SGD,
}


@contextlib.contextmanager
def _registered_for_checks() -> Any:
    """:data:`REGISTRY` registered with gin under ``w3d1check`` for the block only: gin's
    registry is one per process, and a name left behind (``w3d1check.AdamW``) would make
    ``@AdamW`` ambiguous to every later config in it (``mlab train``'s, a search's)."""
    import gin.config

    registry, inverse = gin.config._REGISTRY, gin.config._INVERSE_REGISTRY
    saved, saved_inverse = registry.copy(), dict(inverse)
    try:
        for name, fn in REGISTRY.items():
            module, _, short = name.rpartition(".")
            with contextlib.suppress(ValueError):  # registered already (an outer block)
                gin.external_configurable(fn, name=short, module=f"w3d1check.{module}".rstrip("."))
        yield
    finally:
        registry.clear()
        for selector, value in saved.items():
            registry[selector] = value
        inverse.clear()
        inverse.update(saved_inverse)


def _for_gin(binding: str) -> str:
    """The binding with its name qualified by the module the checks register under
    (``w3d1check``), so that names registered elsewhere in the process (``mlab.train``'s own
    ``AdamW``) do not make it ambiguous to gin."""
    key, _, value = binding.partition("=")
    scope, slash, rest = key.strip().rpartition("/")
    selector, dot, param = rest.rpartition(".")
    short = selector.removeprefix("w3d1check.")
    if short in REGISTRY:
        selector = "w3d1check." + short
    return f"{scope}{slash}{selector}{dot}{param} ={value}"


def _gin_accepts(binding: str) -> bool:
    """Whether gin parses ``binding`` with the same functions registered."""
    import gin

    with _registered_for_checks():
        gin.clear_config()
        try:
            gin.parse_config(_for_gin(binding))
        except (ValueError, SyntaxError, KeyError):
            return False
        finally:
            gin.clear_config()
    return True


VALID = [
    ("mlp.hidden = (64, 32)", ("mlp", "hidden")),
    ("  mlp.dropout=0.5", ("mlp", "dropout")),
    ("AdamW.lr = 3e-4", ("AdamW", "lr")),
    ("train/AdamW.betas = (0.9, 0.95)", ("AdamW", "betas")),
    ("outer/inner/mlp.in_features = 3", ("mlp", "in_features")),
    ("w3d1check.mlp.hidden = (8,)", ("mlp", "hidden")),
    ("opt.SGD.momentum = 0.9", ("opt.SGD", "momentum")),
    ("anything.whatever_you_like = 'x=y'", ("anything", "whatever_you_like")),
    ("Warmup.warmup_steps = 10", ("Warmup", "warmup_steps")),
    ("Warmup.floor = 0.5", ("Warmup", "floor")),
    ("schedule.alpha3 = 1", ("schedule", "alpha3")),
]


@check("check_binding")
def valid_bindings_pass_as_gin_accepts_them(ns: Namespace) -> None:
    for binding, want in VALID:
        with case(f"{binding!r}", binding=binding):
            expect(_gin_accepts(binding), f"gin itself rejects {binding!r} (a broken check)")
            try:
                got = ns.check_binding(binding, REGISTRY)
            except ConfigError as err:
                raise MismatchError(
                    f"{binding!r} is a valid binding (gin accepts it), but check_binding "
                    f"raised ConfigError: {err}"
                ) from None
            assert_equal(got, want, what="(name, param)")


def _suggested(message: str, candidates: list[str]) -> set[str]:
    return {c for c in candidates if f"'{c}'" in message}


@check("check_binding")
def unknown_names_fail_with_the_nearest_names(ns: Namespace) -> None:
    names = list(REGISTRY)
    for binding, wrong in (("AdamV.lr = 1e-3", "AdamV"), ("mpl.hidden = (3,)", "mpl")):
        with case(f"{binding!r}", binding=binding):
            expect(not _gin_accepts(binding), f"gin accepts {binding!r} (a broken check)")
            err = assert_raises(ns.check_binding, binding, REGISTRY, exc=ConfigError)
            expect(f"'{wrong}'" in str(err), f"the message should name {wrong!r}: {err}")
            want = set(difflib.get_close_matches(wrong, names, n=3, cutoff=0.6))
            got = _suggested(str(err).replace(f"'{wrong}'", ""), names)
            expect(
                got == want,
                f"the message suggests {sorted(got)}, difflib's nearest are {sorted(want)}: {err}",
            )
    with case("'zzz.qqq = 1': nothing close, so every name is listed", binding="zzz.qqq = 1"):
        err = assert_raises(ns.check_binding, "zzz.qqq = 1", REGISTRY, exc=ConfigError)
        got = _suggested(str(err), names)
        expect(got == set(names), f"the message lists {sorted(got)}, not all of {names}: {err}")


@check("check_binding")
def unknown_parameters_fail_with_the_nearest_parameters(ns: Namespace) -> None:
    cases = [
        ("AdamW.lrr = 1e-3", "AdamW", "lrr"),
        ("mlp.hiden = (3,)", "mlp", "hiden"),
        ("schedule.alpha = 1", "schedule", "alpha"),  # four close: only the best three
        ("train/Warmup.total = 3", "Warmup", "total"),
        ("mlp.zzz = 1", "mlp", "zzz"),
    ]
    for binding, name, wrong in cases:
        with case(f"{binding!r}", binding=binding):
            expect(not _gin_accepts(binding), f"gin accepts {binding!r} (a broken check)")
            err = assert_raises(ns.check_binding, binding, REGISTRY, exc=ConfigError)
            expect(f"'{wrong}'" in str(err), f"the message should name {wrong!r}: {err}")
            params = [
                p.name
                for p in inspect.signature(REGISTRY[name]).parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            ]
            want = set(difflib.get_close_matches(wrong, params, n=3, cutoff=0.6)) or set(params)
            got = _suggested(str(err).replace(f"'{wrong}'", ""), params)
            expect(
                got == want,
                f"the message suggests {sorted(got)}, the nearest are {sorted(want)}: {err}",
            )


@check("check_binding")
def malformed_bindings_say_what_a_binding_looks_like(ns: Namespace) -> None:
    for binding in ("mlp.hidden (3,)", "mlp = 3", "hidden = 3", ""):
        with case(f"{binding!r}", binding=binding):
            assert_raises(
                ns.check_binding, binding, REGISTRY, exc=ConfigError, match="Name.param = value"
            )
