"""Checks for part 2 of w1d4: a Module system of our own. Everything is compared with
``torch.nn`` building the same architecture: the names and order of ``named_modules``,
``named_parameters``, ``named_buffers`` and ``state_dict`` (a shared module and a shared
parameter included), state dicts loaded strictly both ways, the keys a failed load reports,
training flags, dtypes and devices after ``to`` (the ``meta`` device stands in for a GPU), and
``torch.optim`` training both models step for step."""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import Parameter

from mlab.course.engine.checks import Namespace, check
from mlab.errors import StateDictError
from mlab.nn.containers import Linear, ModuleList, ReLU, Sequential
from mlab.nn.module import Module
from mlab.testing import assert_close, assert_equal, assert_raises, case, expect, randn

F64 = torch.float64


class BatchNorm1d(Module):
    """torch's BatchNorm1d layout (two parameters, three buffers), evaluation mode only."""

    def __init__(self, num_features: int, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.eps = 1e-5
        self.weight = Parameter(torch.ones(num_features, dtype=dtype))
        self.bias = Parameter(torch.zeros(num_features, dtype=dtype))
        self.register_buffer("running_mean", torch.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", torch.ones(num_features, dtype=dtype))
        self.register_buffer("num_batches_tracked", torch.tensor(0))

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight / (self.running_var + self.eps).sqrt()
        out: Tensor = (x - self.running_mean) * scale + self.bias
        return out


OURS = SimpleNamespace(
    Module=Module,
    Linear=Linear,
    ReLU=ReLU,
    Sequential=Sequential,
    ModuleList=ModuleList,
    BatchNorm1d=BatchNorm1d,
)
# What _net builds, for messages:
NET = "Net (see _net in checks_module.py: a shared block 'tied', a tied weight, None entries)"


def _net(lib: Any, base: type | None = None) -> Any:
    """The same architecture on our classes (``lib=OURS``) or torch's (``lib=torch.nn``)."""

    class Net(base or lib.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.scale = Parameter(torch.linspace(0.5, 1.5, 2, dtype=F64))
            self.embed = lib.Linear(3, 5, dtype=F64)
            self.norm = lib.BatchNorm1d(5, dtype=F64)
            self.blocks = lib.ModuleList(
                [lib.Linear(5, 5, dtype=F64), lib.Linear(5, 5, bias=False, dtype=F64)]
            )
            self.blocks[1].weight = self.blocks[0].weight
            self.head = lib.Sequential(lib.ReLU(), lib.Linear(5, 2, dtype=F64))
            self.tied = self.blocks[0]
            self.register_buffer("mask", torch.tensor([1.0, 0.5], dtype=F64), persistent=False)
            self.register_buffer("offset", torch.tensor([0.25, -0.5], dtype=F64))
            self.add_module("empty", None)
            self.register_parameter("absent", None)

        def forward(self, x: Tensor) -> Tensor:
            h = self.norm(self.embed(x))
            for block in self.blocks:
                h = block(h).tanh()
            out: Tensor = self.head(self.tied(h)) * self.scale * self.mask + self.offset
            return out

    return Net()


def _randomise(module: nn.Module, seed: int) -> None:
    """Distinct values in every float tensor of torch's module (variances positive) and a
    step count, so that a value loaded into the wrong place shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=gen, dtype=tensor.dtype) + 0.1)
                tensor.sub_(0.5 * ("var" not in name))
            else:
                tensor.fill_(3)


def _twins(seed: int) -> tuple[Any, nn.Module]:
    """Our Net holding the values of torch's randomised Net (loaded by the reference)."""
    theirs = _net(nn)
    _randomise(theirs, seed)
    ours = _net(OURS)
    Module.load_state_dict(ours, theirs.state_dict())
    return ours, theirs


def _pattern(items: Iterable[tuple[str, Any]]) -> list[tuple[str, int]]:
    """Names, each with the position where its object first appeared: the sharing pattern."""
    seen: list[Any] = []
    out = []
    for name, value in items:
        index = next((i for i, v in enumerate(seen) if v is value), len(seen))
        if index == len(seen):
            seen.append(value)
        out.append((name, index))
    return out


def _same_walk(
    ours: Iterable[tuple[str, Any]], theirs: Iterable[tuple[str, Any]], what: str
) -> list[tuple[str, Any]]:
    """``ours`` yields the same names in the same order as ``theirs`` (torch's), with the
    same objects repeated in the same places. Returns ours as a list."""
    got, want = list(ours), list(theirs)
    names, want_names = [n for n, _ in got], [n for n, _ in want]
    expect(names == want_names, f"{what} yields names {names} but torch's yields {want_names}")
    expect(
        _pattern(got) == _pattern(want),
        f"{what}: (name, first position of the same object) is {_pattern(got)} but torch's is "
        f"{_pattern(want)}: a shared object must appear exactly where torch repeats it",
    )
    return got


def _params_of(module: Module) -> Iterable[tuple[str, Any]]:
    return module._parameters.items()


def _buffers_of(module: Module) -> Iterable[tuple[str, Any]]:
    return module._buffers.items()


# ----------------------------------------------------------------------------------------------
# set_attribute


def _probe(ns: Namespace) -> type:
    """A Module whose __setattr__ is the implementation under check."""

    def setattr_(self: Module, name: str, value: Any) -> None:
        ns.set_attribute(self, name, value)

    return type("Module", (Module,), {"__setattr__": setattr_})


def _registries(module: Any, names: Iterable[str]) -> dict[str, Any]:
    """Keys of the three registries, and for each name: where it lives and what it reads."""
    out: dict[str, Any] = {
        "_parameters": list(module._parameters),
        "_buffers": list(module._buffers),
        "_modules": list(module._modules),
    }
    for name in names:
        out[f"{name!r} in __dict__"] = name in module.__dict__
    return out


SETATTR_SCENARIOS: list[tuple[str, list[str]]] = [
    ("register a parameter, a module and plain attributes", ["w=P1", "fc=M1", "n=int", "t=T1"]),
    ("reassign a parameter: it keeps its place", ["a=P1", "b=P2", "a=P3"]),
    ("a parameter set to None, then back", ["a=P1", "b=P2", "a=None", "a=P3"]),
    ("a plain tensor assigned to a parameter's name", ["a=P1", "a=T1"]),
    ("a tensor and None assigned to a buffer's name", ["buf", "buf=T1", "buf=None", "buf=T2"]),
    ("an int assigned to a buffer's name", ["buf", "buf=int"]),
    ("a tensor assigned to a module's name", ["fc=M1", "fc=T1"]),
    ("a module set to None, replaced, then by a parameter", ["fc=M1", "fc=None", "fc=M2", "fc=P1"]),
    ("a plain attribute replaced by a parameter, then a module", ["x=int", "x=P1", "x=M1"]),
    ("a buffer replaced by a parameter", ["buf", "p=P2", "buf=P1", "buf=T1"]),
    ("a buffer replaced by a module", ["buf", "buf=M1", "buf=None"]),
    ("a parameter replaced by a module, then a parameter", ["a=P1", "b=P2", "a=M1", "a=P3"]),
]


def _values() -> dict[str, tuple[Any, Any]]:
    """(ours, torch's) for each value name of the scenarios."""
    values: dict[str, tuple[Any, Any]] = {"int": (3, 3), "None": (None, None)}
    for i in range(1, 4):
        param = Parameter(randn(2, seed=i))
        values[f"P{i}"] = (param, param)
        values[f"T{i}"] = (randn(2, seed=10 + i), randn(2, seed=10 + i))
        values[f"M{i}"] = (Linear(1, 1), nn.Linear(1, 1))
    return values


@check("set_attribute")
def setattr_routes_values_like_torch(ns: Namespace) -> None:
    probe = _probe(ns)
    for what, steps in SETATTR_SCENARIOS:
        with case(f"{what}: {', '.join(steps)} (P: Parameter, M: Module, T: plain tensor)"):
            ours, theirs = probe(), nn.Module()
            values = _values()
            for step in steps:
                name, _, value = step.partition("=")
                with case(f"step {step!r}"):
                    if not value:
                        Module.register_buffer(ours, name, values["T3"][0])
                        theirs.register_buffer(name, values["T3"][1])
                        continue
                    mine, torchs = values[value]
                    try:
                        setattr(theirs, name, torchs)
                    except TypeError:
                        assert_raises(setattr, ours, name, mine, exc=TypeError)
                        continue
                    setattr(ours, name, mine)
                    names = {s.partition("=")[0] for s in steps}
                    assert_equal(_registries(ours, names), _registries(theirs, names))
                    for other in names & set(dir(theirs)):
                        got, want = getattr(ours, other), getattr(theirs, other)
                        pair = next((v for v in values.values() if v[1] is want), (want, want))
                        expect(
                            got is pair[0] or (want is None and got is None),
                            f"module.{other} reads {got!r} but should be {pair[0]!r}",
                        )


@check("set_attribute")
def setattr_before_init_raises(ns: Namespace) -> None:
    probe = _probe(ns)

    class Early(probe):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.weight = Parameter(torch.zeros(2))
            super().__init__()

    with case("a module assigning a Parameter before calling super().__init__()"):
        assert_raises(Early, exc=AttributeError, match="__init__")


@check("set_attribute")
def setattr_builds_torchs_names(ns: Namespace) -> None:
    with case(NET + ", on a Module whose __setattr__ is yours"):
        ours, theirs = _net(OURS, _probe(ns)), _net(nn)
        _same_walk(Module.named_parameters(ours), theirs.named_parameters(), "named_parameters")
        _same_walk(Module.named_buffers(ours), theirs.named_buffers(), "named_buffers")
        _same_walk(Module.named_children(ours), theirs.named_children(), "named_children")
        assert_equal(list(Module.state_dict(ours)), list(theirs.state_dict()), what="keys")


# ----------------------------------------------------------------------------------------------
# named_modules


def _type_names(items: Iterable[tuple[str, Any]]) -> list[tuple[str, str]]:
    return [(name, type(m).__name__) for name, m in items]


@check("named_modules")
def named_modules_match_torch(ns: Namespace) -> None:
    ours, theirs = _net(OURS), _net(nn)
    for prefix in ("", "model"):
        for dedup in (True, False):
            with case(f"{NET}; prefix={prefix!r}, remove_duplicate={dedup}"):
                got = ns.named_modules(ours, prefix=prefix, remove_duplicate=dedup)
                got = _same_walk(
                    got,
                    theirs.named_modules(prefix=prefix, remove_duplicate=dedup),
                    "named_modules",
                )
                want = theirs.named_modules(prefix=prefix, remove_duplicate=dedup)
                assert_equal(_type_names(got), _type_names(want), what="(name, class)")


@check("named_modules")
def named_modules_skips_what_memo_holds(ns: Namespace) -> None:
    ours, theirs = _net(OURS), _net(nn)
    with case(NET + "; memo already holds blocks[0] (so 'tied' is skipped too) and head"):
        memo = {ours.blocks[0], ours.head}
        want_memo = {theirs.blocks[0], theirs.head}
        got = _same_walk(
            ns.named_modules(ours, memo, "net"),
            theirs.named_modules(want_memo, "net"),
            "named_modules",
        )
        expect(len(memo) == len(want_memo), "memo should gain every module yielded")
        expect(all(m in memo for _, m in got), "memo should gain every module yielded")
    with case("a lone Module() with prefix 'x'"):
        _same_walk(
            ns.named_modules(Module(), prefix="x"),
            nn.Module().named_modules(prefix="x"),
            "named_modules",
        )


# ----------------------------------------------------------------------------------------------
# named_members


@check("named_members")
def named_members_match_named_parameters_and_buffers(ns: Namespace) -> None:
    ours, theirs = _twins(0)
    for prefix in ("", "net"):
        for recurse in (True, False):
            for dedup in (True, False):
                settings = f"prefix={prefix!r}, recurse={recurse}, remove_duplicate={dedup}"
                with case(f"{NET}; {settings}"):
                    for members, method in ((_params_of, "parameters"), (_buffers_of, "buffers")):
                        got = ns.named_members(ours, members, prefix, recurse, dedup)
                        want = getattr(theirs, f"named_{method}")(prefix, recurse, dedup)
                        want = list(want)
                        got = _same_walk(got, want, f"named_members over {method}")
                        assert_close(
                            [value for _, value in got],
                            [value for _, value in want],
                            what=f"{method} values",
                        )


@check("named_members")
def named_members_feed_an_optimiser(ns: Namespace) -> None:
    ours, theirs = _twins(1)
    x = randn(6, 3, seed=2, dtype=F64)
    ours.eval()
    theirs.eval()
    with case(NET + "; 4 steps of torch.optim.SGD(lr=0.1, momentum=0.9) on (6, 3) inputs", x=x):
        params = [p for _, p in ns.named_members(ours, _params_of)]
        optimisers = [
            torch.optim.SGD(params, lr=0.1, momentum=0.9),
            torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9),
        ]
        weights = randn(6, 2, seed=3, dtype=F64)
        for step in range(4):
            for model, optimiser in zip((ours, theirs), optimisers, strict=True):
                optimiser.zero_grad()
                (model(x) * weights).sum().backward()
                optimiser.step()
            with case(f"after step {step + 1}"):
                assert_close(Module.state_dict(ours), theirs.state_dict(), what="state dict")


# ----------------------------------------------------------------------------------------------
# train


def _flags(items: Iterable[tuple[str, Any]]) -> list[tuple[str, bool]]:
    return [(name, m.training) for name, m in items]


@check("train")
def train_sets_the_whole_tree(ns: Namespace) -> None:
    ours, theirs = _net(OURS), _net(nn)
    for steps in (["eval"], ["eval", "train"], ["blocks.eval", "train"], ["head.eval", "eval"]):
        with case(f"{NET}; then " + ", ".join(f".{s}()" for s in steps)):
            for step in steps:
                target, _, method = step.rpartition(".")
                mode = method == "train"
                returned = ns.train(getattr(ours, target) if target else ours, mode)
                getattr(theirs, target).train(mode) if target else theirs.train(mode)
                expect(
                    returned is (getattr(ours, target) if target else ours),
                    "train should return the module it was called on",
                )
            got = _flags(Module.named_modules(ours, remove_duplicate=False))
            want = _flags(theirs.named_modules(remove_duplicate=False))
            assert_equal(got, want, what="(name, training) of every module")


@check("train")
def train_rejects_a_non_bool(ns: Namespace) -> None:
    for mode in ("False", 0, None):
        with case(f"train(module, {mode!r})"):
            assert_raises(ns.train, Sequential(ReLU()), mode, exc=ValueError)


# ----------------------------------------------------------------------------------------------
# state_dict


@check("state_dict")
def state_dict_matches_torch(ns: Namespace) -> None:
    ours, theirs = _twins(2)
    with case(NET):
        got, want = ns.state_dict(ours), theirs.state_dict()
        assert_equal(list(got), list(want), what="keys (in order)")
        assert_equal(dict(got), dict(want), what="state dict")
        expect(isinstance(got, OrderedDict), f"should return an OrderedDict, got {type(got)}")
        for key, value in got.items():
            expect(
                not value.requires_grad and type(value) is Tensor,
                f"{key} is a {type(value).__name__} with requires_grad={value.requires_grad}: "
                "state dict values are detached plain tensors (tensor.detach())",
            )
        own: dict[str, Tensor] = dict(Module.named_parameters(ours, remove_duplicate=False))
        own.update(Module.named_buffers(ours, remove_duplicate=False))
        for key, value in got.items():
            expect(
                value.data_ptr() == own[key].data_ptr(),
                f"{key} is a copy: detach() shares the storage (saving must not double memory)",
            )


@check("state_dict")
def state_dict_prefix_destination_keep_vars(ns: Namespace) -> None:
    ours, theirs = _twins(3)
    with case(NET + "; prefix='model.', into an OrderedDict holding 'step', keep_vars=True"):
        start = torch.tensor(7)
        got = ns.state_dict(ours, OrderedDict(step=start), "model.", True)
        want = theirs.state_dict(
            destination=OrderedDict(step=start), prefix="model.", keep_vars=True
        )
        assert_equal(list(got), list(want), what="keys (in order)")
        own: dict[str, Tensor] = dict(
            Module.named_parameters(ours, "model", remove_duplicate=False)
        )
        own.update(Module.named_buffers(ours, "model", remove_duplicate=False))
        own["step"] = start
        for key, value in got.items():
            expect(value is own[key], f"with keep_vars=True, {key} should be the tensor itself")
    with case("a module with no state"):
        assert_equal(ns.state_dict(Sequential(ReLU())), OrderedDict(), what="state dict")


# ----------------------------------------------------------------------------------------------
# load_state_dict


def _snapshot(module: Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in Module.state_dict(module).items()}


@check("load_state_dict")
def load_state_dict_both_ways(ns: Namespace) -> None:
    ours, theirs = _net(OURS), _net(nn)
    _randomise(theirs, 4)
    with case(NET + "; torch's (randomised) state dict loaded into ours, strict=True"):
        before = dict(Module.named_parameters(ours, remove_duplicate=False))
        result = ns.load_state_dict(ours, theirs.state_dict())
        assert_equal(tuple(result), ([], []), what="returned (missing, unexpected)")
        assert_equal(_snapshot(ours), dict(theirs.state_dict()), what="state dict after loading")
        for name, param in Module.named_parameters(ours, remove_duplicate=False):
            expect(
                param is before[name] and param.is_leaf and param.requires_grad,
                f"{name} should stay the same Parameter (a leaf that requires grad): copy "
                "values in place under torch.no_grad()",
            )
    with case(NET + "; ours loaded back into a fresh torch Net, strict=True"):
        fresh = _net(nn)
        fresh.load_state_dict(Module.state_dict(ours))
        assert_equal(dict(fresh.state_dict()), dict(theirs.state_dict()), what="state dict")


@check("load_state_dict")
def load_state_dict_strict_reports_every_key(ns: Namespace) -> None:
    theirs = _net(nn)
    _randomise(theirs, 5)
    good = theirs.state_dict()
    bad_shape = _with(good, **{"embed.bias": torch.zeros(4, dtype=F64)})
    edits: list[tuple[str, Callable[[], OrderedDict[str, Tensor]]]] = [
        ("'norm.running_var' removed", lambda: _without(good, "norm.running_var")),
        ("an extra key 'head.1.scale'", lambda: _with(good, **{"head.1.scale": good["scale"]})),
        ("'embed.bias' of shape (4,) instead of (5,)", lambda: bad_shape),
        ("the non-persistent buffer 'mask' included", lambda: _with(good, mask=good["scale"])),
        (
            "'scale' and 'tied.bias' removed, 'extra' and 'blocks.1.bias' added, 'embed.bias' "
            "of shape (4,)",
            lambda: _with(
                _without(bad_shape, "scale", "tied.bias"),
                extra=good["scale"],
                **{"blocks.1.bias": good["offset"]},
            ),
        ),
    ]
    for what, make in edits:
        state = make()
        with case(f"{NET}; torch's state dict with {what}, strict=True"):
            ours = _net(OURS)
            before = _snapshot(ours)
            err = assert_raises(ns.load_state_dict, ours, state, exc=StateDictError)
            probe = _net(nn)
            missing, unexpected = _torch_keys(probe, state)
            for key in [*missing, *unexpected, *_mismatched(probe, state)]:
                expect(key in str(err), f"the error should name {key!r}; it says: {err}")
            assert_equal(_snapshot(ours), before, what="state after a failed load (unchanged)")


def _with(state: OrderedDict[str, Tensor], **more: Tensor) -> OrderedDict[str, Tensor]:
    return OrderedDict({**state, **more})


def _without(state: OrderedDict[str, Tensor], *keys: str) -> OrderedDict[str, Tensor]:
    return OrderedDict((k, v) for k, v in state.items() if k not in keys)


def _mismatched(module: nn.Module, state: dict[str, Tensor]) -> list[str]:
    own = module.state_dict()
    return [k for k in own if k in state and state[k].shape != own[k].shape]


def _torch_keys(module: nn.Module, state: dict[str, Tensor]) -> tuple[list[str], list[str]]:
    """torch's (missing, unexpected) for ``state``, shapes set aside."""
    fitted = {k: v for k, v in state.items() if k not in _mismatched(module, state)}
    result = module.load_state_dict(fitted, strict=False)
    return list(result.missing_keys), list(result.unexpected_keys)


@check("load_state_dict")
def load_state_dict_non_strict_like_torch(ns: Namespace) -> None:
    theirs = _net(nn)
    _randomise(theirs, 6)
    source = OrderedDict(_without(theirs.state_dict(), "embed.weight", "norm.bias"))
    source.update({"stray": torch.ones(1), "head.0.weight": torch.ones(1)})
    with case(
        NET + "; 'embed.weight' and 'norm.bias' missing, 'stray' and 'head.0.weight' "
        "unexpected, strict=False"
    ):
        ours, twin = _net(OURS), _net(nn)
        Module.load_state_dict(ours, twin.state_dict())
        result = ns.load_state_dict(ours, source, strict=False)
        want = twin.load_state_dict(source, strict=False)
        assert_equal(
            (list(result[0]), list(result[1])),
            (list(want.missing_keys), list(want.unexpected_keys)),
            what="returned (missing, unexpected)",
        )
        assert_equal(_snapshot(ours), dict(twin.state_dict()), what="state dict after loading")
    with case(NET + "; 'embed.bias' of shape (4,), 'norm.bias' missing, strict=False"):
        state = OrderedDict(_without(theirs.state_dict(), "norm.bias"))
        state["embed.bias"] = torch.zeros(4, dtype=F64)
        ours = _net(OURS)
        before = _snapshot(ours)
        err = assert_raises(ns.load_state_dict, ours, state, strict=False, exc=StateDictError)
        expect("embed.bias" in str(err), f"the error should name 'embed.bias'; it says: {err}")
        expect(
            "norm.bias" not in str(err),
            f"with strict=False a missing key is not an error, but the message names it: {err}",
        )
        assert_equal(_snapshot(ours), before, what="state after a failed load (unchanged)")


@check("load_state_dict")
def loaded_model_trains_like_torch(ns: Namespace) -> None:
    theirs, ours = _net(nn), _net(OURS)
    _randomise(theirs, 7)
    theirs.eval()
    ours.eval()
    x = randn(5, 3, seed=8, dtype=F64)
    with case(NET + "; loaded from torch's, then 3 steps of Adam(lr=0.05), both models", x=x):
        opt_ours = torch.optim.Adam(Module.parameters(ours), lr=0.05)
        ns.load_state_dict(ours, theirs.state_dict())
        opt_theirs = torch.optim.Adam(theirs.parameters(), lr=0.05)
        weights = randn(5, 2, seed=9, dtype=F64)
        for model, optimiser in ((ours, opt_ours), (theirs, opt_theirs)):
            for _ in range(3):
                optimiser.zero_grad()
                (model(x) * weights).sum().backward()
                optimiser.step()
        assert_close(Module.state_dict(ours), theirs.state_dict(), what="state dict after training")


# ----------------------------------------------------------------------------------------------
# to


def _layout(items: Iterable[tuple[str, Tensor]]) -> dict[str, tuple[torch.dtype, str]]:
    return {name: (t.dtype, t.device.type) for name, t in items}


def _with_grads(ours: Any, theirs: nn.Module) -> None:
    x = randn(4, 3, seed=11, dtype=F64)
    weights = randn(4, 2, seed=12, dtype=F64)
    for model in (ours, theirs):
        model.eval()
        (model(x) * weights).sum().backward()


@check("to")
def to_casts_floats_and_keeps_parameters(ns: Namespace) -> None:
    for dtype in (torch.float32, torch.float16):
        ours, theirs = _twins(13)
        _with_grads(ours, theirs)
        with case(f"{NET} (float64, with gradients); to(module, {dtype})"):
            params = dict(Module.named_parameters(ours))
            values = _snapshot(ours)
            returned = ns.to(ours, dtype)
            theirs.to(dtype)
            expect(returned is ours, "to should return the module")
            for method in ("named_parameters", "named_buffers"):
                got = _layout(getattr(ours, method)())
                want = _layout(getattr(theirs, method)())
                assert_equal(got, want, what=f"(dtype, device) in {method}")
            for name, param in Module.named_parameters(ours):
                expect(
                    param is params[name] and type(param) is Parameter and param.is_leaf,
                    f"{name} should stay the same Parameter object (a leaf): set param.data",
                )
                expect(param.requires_grad, f"{name} no longer requires grad")
                assert_equal(param.grad, theirs.get_parameter(name).grad, what=f"{name}.grad")
            for key, value in Module.state_dict(ours).items():
                assert_equal(value, values[key].to(value.dtype), what=f"{key} after to()")


@check("to")
def to_with_a_device_and_without_arguments(ns: Namespace) -> None:
    ours, theirs = _twins(14)
    _with_grads(ours, theirs)
    with case(NET + " (with gradients); to(module, torch.float32, torch.device('cpu'))"):
        ns.to(ours, torch.float32, torch.device("cpu"))
        theirs.to("cpu", torch.float32)
        got = _layout([*Module.named_parameters(ours), *Module.named_buffers(ours)])
        want = _layout([*theirs.named_parameters(), *theirs.named_buffers()])
        assert_equal(got, want, what="(dtype, device) of every parameter and buffer")
        assert_close(Module.state_dict(ours), theirs.state_dict(), what="state dict")
    with case("to(module) with neither a dtype nor a device changes nothing"):
        module = Linear(2, 3, bias=False)
        weight = module.weight.data
        ns.to(module)
        expect(module.weight.data.data_ptr() == weight.data_ptr(), "the weight was copied")


# ----------------------------------------------------------------------------------------------
# ModuleList


@check("ModuleList")
def module_list_registers_like_torch(ns: Namespace) -> None:
    torch.manual_seed(0)
    shared = Linear(2, 3, dtype=F64)
    items = [Linear(4, 2, dtype=F64), ReLU(), shared]
    twins = [nn.Linear(4, 2, dtype=F64), nn.ReLU(), nn.Linear(2, 3, dtype=F64)]
    with case("ModuleList([Linear(4, 2), ReLU(), L]).append(Linear(3, 3)).extend([L, Tanh])"):
        ours = ns.ModuleList(items)
        more = Linear(3, 3, dtype=F64)
        expect(ours.append(more) is ours, "append should return the list")
        expect(ours.extend([shared, ReLU()]) is ours, "extend should return the list")
        theirs = nn.ModuleList(twins).append(nn.Linear(3, 3, dtype=F64))
        theirs.extend([twins[2], nn.ReLU()])
        _same_walk(Module.named_modules(ours), theirs.named_modules(), "named_modules")
        _same_walk(Module.named_parameters(ours), theirs.named_parameters(), "named_parameters")
        assert_equal(list(Module.state_dict(ours)), list(theirs.state_dict()), what="keys")
        theirs.load_state_dict(Module.state_dict(ours))
        assert_equal(len(ours), 6, what="len")
        expected = [*items, more, shared]
        got = list(ours)
        expect(
            len(got) == 6 and all(a is b for a, b in zip(got, expected, strict=False)),
            "iterating should give the modules in order (the same objects)",
        )
    with case("ModuleList() and ModuleList([])"):
        assert_equal(len(ns.ModuleList()), 0, what="len")
        assert_equal(list(ns.ModuleList([])), [], what="list")


@check("ModuleList")
def module_list_indexes_like_a_list(ns: Namespace) -> None:
    items = [Linear(2, 2), ReLU(), Linear(2, 1), ReLU()]
    ours = ns.ModuleList(items)
    for index in range(-4, 4):
        with case(f"ModuleList of 4, [{index}]"):
            expect(ours[index] is items[index], f"[{index}] is not the module at {index}")
    for index in (4, 5, -5):
        with case(f"ModuleList of 4, [{index}]"):
            assert_raises(lambda i=index: ours[i], exc=IndexError)
    for sl in (slice(1, 3), slice(None, None, -2), slice(2, None)):
        with case(f"ModuleList of 4, [{sl.start}:{sl.stop}:{sl.step}]"):
            part = ours[sl]
            expect(type(part) is type(ours), f"a slice should be a ModuleList, got {type(part)}")
            names = [name for name, _ in Module.named_children(part)]
            want = [str(i) for i in range(len(items[sl]))]
            expect(names == want, f"the slice's children are named {names}, expected {want}")
            expect(
                all(a is b for a, b in zip(part, items[sl], strict=True)),
                "the slice should hold the same module objects",
            )


# ----------------------------------------------------------------------------------------------
# BufferList


def _buffer_twin(tensors: list[Tensor], persistent: bool) -> nn.Module:
    """torch has no BufferList: a module with buffers named "0", "1", ... is its layout."""
    twin = nn.Module()
    for i, tensor in enumerate(tensors):
        twin.register_buffer(str(i), tensor, persistent=persistent)
    return twin


@check("BufferList")
def buffer_list_state_dict_names(ns: Namespace) -> None:
    tensors = [randn(3, seed=1), torch.arange(4), randn(2, 2, seed=2)]
    for persistent in (True, False):
        what = f"Sequential(Linear(2, 2)) with .stats = BufferList of 3, persistent={persistent}"
        with case(what):
            ours = Sequential(Linear(2, 2))
            ours.stats = ns.BufferList(tensors[:1], persistent=persistent)
            expect(ours.stats.extend(tensors[1:2]) is ours.stats, "extend should return the list")
            expect(ours.stats.append(tensors[2]) is ours.stats, "append should return the list")
            theirs = nn.Sequential(nn.Linear(2, 2))
            theirs.stats = _buffer_twin(tensors, persistent)
            _same_walk(Module.named_buffers(ours), theirs.named_buffers(), "named_buffers")
            assert_equal(list(Module.state_dict(ours)), list(theirs.state_dict()), what="keys")
            assert_equal(len(ours.stats), 3, what="len")
            for index in range(-3, 3):
                expect(ours.stats[index] is tensors[index], f"[{index}] is not tensor {index}")
            for index in (3, -4):
                with case(f"[{index}] of 3"):
                    assert_raises(ours.stats.__getitem__, index, exc=IndexError)
    with case("BufferList() is empty and persistent"):
        empty = ns.BufferList()
        assert_equal((len(empty), list(empty)), (0, []), what="(len, list)")
        empty.append(torch.zeros(1))
        assert_equal(list(Module.state_dict(empty)), ["0"], what="keys")


@check("BufferList")
def buffer_list_moves_with_to(ns: Namespace) -> None:
    with case("BufferList([float32 (3,), int64 (4,)]).to(torch.float64), then bl[-1] = t"):
        buffers = ns.BufferList([randn(3, seed=3), torch.arange(4)])
        Module.to(buffers, torch.float64)
        assert_equal(
            [t.dtype for t in buffers], [torch.float64, torch.int64], what="dtypes when iterating"
        )
        assert_equal(buffers[0], randn(3, seed=3).double(), what="bl[0] after to()")
        replacement = torch.ones(2)
        buffers[-1] = replacement
        expect(buffers[1] is replacement, "bl[-1] = t should replace the last buffer")
        expect(Module.state_dict(buffers)["1"] is not None, "bl[1] should stay registered")
        assert_equal(len(buffers), 2, what="len after replacing")
        assert_raises(buffers.__setitem__, 2, replacement, exc=IndexError)
        copied = copy.deepcopy(buffers)
        assert_equal(list(copied), list(buffers), what="a deep copy")
