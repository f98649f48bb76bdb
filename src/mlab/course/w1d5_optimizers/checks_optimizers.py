"""Checks for part 1 of w1d5: the update rules of SGD, RMSprop, Adam and AdamW.

Each exercise is plugged into our optimizer class (``mlab.optim.optimizers``: parameter
groups, ``step``, state dicts) and trains a small two-layer tanh network on fixed random
data beside the same network trained by ``torch.optim`` from identical float64 weights. The
loss weights every output differently, so no two gradients are alike. Parameters and
gradients must agree after every one of 100 steps, for every combination of options torch
accepts, with two parameter groups of their own hyper-parameters, and across state dicts
saved by one library and loaded by the other in the middle of training."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.optim.optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from mlab.testing import assert_close, case, expect

F64 = torch.float64
STEPS = 100
_gen = torch.Generator().manual_seed(1505)
X = torch.randn(8, 3, generator=_gen, dtype=F64)
Y = torch.randn(8, 2, generator=_gen, dtype=F64)
LOSS_WEIGHTS = torch.rand(8, 2, generator=_gen, dtype=F64) + 0.5
INIT = [
    torch.randn(3, 4, generator=_gen, dtype=F64),
    torch.randn(4, generator=_gen, dtype=F64),
    torch.randn(4, 2, generator=_gen, dtype=F64),
    torch.randn(2, generator=_gen, dtype=F64),
]
NAMES = ["w1", "b1", "w2", "b2"]
MODEL = "a 3-4-2 tanh MLP on 8 fixed random points, loss sum(weights * (out - y)**2), float64"


def _params() -> list[Tensor]:
    return [t.clone().requires_grad_() for t in INIT]


def _loss(ps: list[Tensor]) -> Tensor:
    out = torch.tanh(X @ ps[0] + ps[1]) @ ps[2] + ps[3]
    return ((out - Y) ** 2 * LOSS_WEIGHTS).sum()


def _groups(ps: list[Tensor], groups: list[dict[str, Any]] | None) -> Iterable[Any]:
    """The parameters as one group, or the first two / last two in ``groups``' two groups."""
    if groups is None:
        return ps
    return [{"params": ps[:2], **groups[0]}, {"params": ps[2:], **groups[1]}]


def _ours(ns: Namespace, cls: type[Optimizer], exercise: str) -> type[Optimizer]:
    """Our optimizer class with the update rule under check."""
    return type(cls.__name__, (cls,), {"update": staticmethod(getattr(ns, exercise))})


def _train(
    pairs: list[tuple[list[Tensor], Any, list[Tensor], Any]], steps: int, start: int = 0
) -> None:
    """Step each (our params, our optimizer, torch's params, torch's optimizer) pair, and
    compare parameters and gradients after every step."""
    for step in range(start, start + steps):
        for ps, opt, qs, ref in pairs:
            for params, optimizer in ((ps, opt), (qs, ref)):
                optimizer.zero_grad(set_to_none=False)
                _loss(params).backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            for name, p, q in zip(NAMES, ps, qs, strict=True):
                assert_close(p, q, rtol=1e-10, atol=1e-12, what=f"{name} after step {step + 1}")
                assert_close(
                    p.grad, q.grad, rtol=1e-10, atol=1e-12, what=f"{name}.grad at step {step + 1}"
                )
    for _, opt, _, ref in pairs:
        _same_state(opt.state_dict()["state"], ref.state_dict()["state"])


def _same_state(ours: dict[int, Any], theirs: dict[int, Any]) -> None:
    """The optimizer state of each parameter: torch's keys (``step`` included), its values."""
    for index, state in theirs.items():
        name = NAMES[index]
        mine = ours.get(index, {})
        expect(
            sorted(mine) == sorted(state),
            f"the state of {name} should hold {sorted(state)} (torch's names), got {sorted(mine)}",
        )
        for key, value in state.items():
            assert_close(mine[key], value, rtol=1e-10, atol=1e-12, what=f"state of {name}[{key!r}]")


def _same_object_in_place(ps: list[Tensor], before: list[int]) -> None:
    for name, p, ptr in zip(NAMES, ps, before, strict=True):
        expect(
            p.is_leaf and p.grad_fn is None and p.data_ptr() == ptr,
            f"{name} must be updated in place under torch.no_grad() and stay a leaf "
            f"(is_leaf={p.is_leaf}, grad_fn={p.grad_fn}, same storage={p.data_ptr() == ptr})",
        )


def _every_option(
    ns: Namespace,
    exercise: str,
    cls: type[Optimizer],
    ref_cls: Callable[..., Any],
    options: dict[str, list[Any]],
    valid: Callable[[dict[str, Any]], bool] = lambda kw: True,
) -> None:
    ours = _ours(ns, cls, exercise)
    for values in itertools.product(*options.values()):
        kw = dict(zip(options, values, strict=True))
        if not valid(kw):
            continue
        ps, qs = _params(), _params()
        before = [p.data_ptr() for p in ps]
        with case(f"{ref_cls.__name__}({kw}), {STEPS} steps of {MODEL}", **kw):
            _train([(ps, ours(ps, **kw), qs, ref_cls(qs, **kw))], STEPS)
            _same_object_in_place(ps, before)


def _param_groups(
    ns: Namespace,
    exercise: str,
    cls: type[Optimizer],
    ref_cls: Callable[..., Any],
    defaults: dict[str, Any],
    groups: list[dict[str, Any]],
) -> None:
    ours = _ours(ns, cls, exercise)
    ps, qs = _params(), _params()
    with case(
        f"{ref_cls.__name__}(groups, **{defaults}): (w1, b1) in group 0, (w2, b2) in group 1",
        group0=groups[0],
        group1=groups[1],
    ):
        pair = (
            ps,
            ours(_groups(ps, groups), **defaults),
            qs,
            ref_cls(_groups(qs, groups), **defaults),
        )
        _train([pair], STEPS)


def _state_dicts(
    ns: Namespace,
    exercise: str,
    cls: type[Optimizer],
    ref_cls: Callable[..., Any],
    defaults: dict[str, Any],
    groups: list[dict[str, Any]],
) -> None:
    """Train 50 steps, then swap optimizers through state dicts both ways and go on 50. The
    state dicts are deep-copied, as torch.save and torch.load would: both libraries return
    (and torch loads) the live state tensors, and a shared ``step`` would count twice."""
    ours = _ours(ns, cls, exercise)
    ps, qs = _params(), _params()
    opt = ours(_groups(ps, groups), **defaults)
    ref = ref_cls(_groups(qs, groups), **defaults)
    half = STEPS // 2
    with case(f"{ref_cls.__name__}(groups, **{defaults}), first {half} steps", groups=groups):
        _train([(ps, opt, qs, ref)], half)
    # ours -> torch: torch's optimizer over a copy of our parameters, from our state dict
    qs2 = [p.detach().clone().requires_grad_() for p in ps]
    ref2 = ref_cls(_groups(qs2, groups), **defaults)
    ref2.load_state_dict(copy.deepcopy(opt.state_dict()))
    # torch -> ours: our optimizer over a copy of torch's parameters, from torch's state dict
    ps2 = [q.detach().clone().requires_grad_() for q in qs]
    opt2 = ours(_groups(ps2, groups), **defaults)
    opt2.load_state_dict(copy.deepcopy(ref.state_dict()))
    with case(
        f"after step {half}, ours -> torch: torch's {ref_cls.__name__} loads our state_dict() "
        "and goes on beside ours; torch -> ours: ours loads torch's and goes on beside it",
        groups=groups,
    ):
        _train([(ps, opt, qs2, ref2), (ps2, opt2, qs, ref)], STEPS - half, start=half)


def _infinite_params(
    ns: Namespace,
    exercise: str,
    cls: type[Optimizer],
    ref_cls: Callable[..., Any],
    options: list[dict[str, Any]],
) -> None:
    """Three steps on a parameter holding inf and -inf, with finite gradients: torch keeps
    them infinite (weight decay is skipped when it is 0, and 0 * inf would be NaN)."""
    ours = _ours(ns, cls, exercise)
    init = torch.tensor([math.inf, -math.inf, 1.5, -0.5], dtype=F64)
    grads = torch.tensor([[0.3, -0.2, 0.1, 0.4], [-0.1, 0.5, 0.2, -0.3], [0.2, 0.1, -0.4, 0.6]])
    for kw in options:
        p, q = init.clone().requires_grad_(), init.clone().requires_grad_()
        opt, ref = ours([p], **kw), ref_cls([q], **kw)
        with case(f"{ref_cls.__name__}({kw}) on a parameter holding inf and -inf", param=init):
            for step, grad in enumerate(grads.to(F64)):
                p.grad, q.grad = grad.clone(), grad.clone()
                opt.step()
                ref.step()
                assert_close(p, q, rtol=1e-10, atol=1e-12, what=f"parameter after step {step + 1}")


# ----------------------------------------------------------------------------------------------
# SGD

SGD_GROUPS: list[dict[str, Any]] = [
    {"lr": 0.02, "momentum": 0.8},
    {"weight_decay": 1.0, "nesterov": False},
]


def _sgd_valid(kw: dict[str, Any]) -> bool:
    """torch rejects Nesterov without momentum or with dampening."""
    return not kw["nesterov"] or (kw["momentum"] > 0 and kw["dampening"] == 0)


@check("sgd_update")
def sgd_matches_torch_for_every_option(ns: Namespace) -> None:
    options: dict[str, list[Any]] = {
        "lr": [0.03],
        "momentum": [0.0, 0.9],
        "dampening": [0.0, 0.1],
        "nesterov": [False, True],
        "weight_decay": [0.0, 0.01],
        "maximize": [False, True],
    }
    _every_option(ns, "sgd_update", SGD, torch.optim.SGD, options, _sgd_valid)


@check("sgd_update")
def sgd_keeps_infinite_params_infinite(ns: Namespace) -> None:
    options = [{"lr": 0.1}, {"lr": 0.1, "momentum": 0.9, "nesterov": True}]
    _infinite_params(ns, "sgd_update", SGD, torch.optim.SGD, options)


@check("sgd_update")
def sgd_param_groups_match_torch(ns: Namespace) -> None:
    defaults: dict[str, Any] = {"lr": 0.05, "momentum": 0.9, "nesterov": True}
    _param_groups(ns, "sgd_update", SGD, torch.optim.SGD, defaults, SGD_GROUPS)


@check("sgd_update")
def sgd_state_dicts_load_both_ways(ns: Namespace) -> None:
    defaults: dict[str, Any] = {"lr": 0.05, "momentum": 0.9, "dampening": 0.1}
    groups: list[dict[str, Any]] = [{"lr": 0.02}, {"momentum": 0.0}]
    _state_dicts(ns, "sgd_update", SGD, torch.optim.SGD, defaults, groups)


# ----------------------------------------------------------------------------------------------
# RMSprop


@check("rmsprop_update")
def rmsprop_matches_torch_for_every_option(ns: Namespace) -> None:
    options: dict[str, list[Any]] = {
        "lr": [0.01],
        "alpha": [0.9],
        "eps": [1e-3],
        "centered": [False, True],
        "momentum": [0.0, 0.9],
        "weight_decay": [0.0, 0.01],
        "maximize": [False, True],
    }
    _every_option(ns, "rmsprop_update", RMSprop, torch.optim.RMSprop, options)


@check("rmsprop_update")
def rmsprop_keeps_infinite_params_infinite(ns: Namespace) -> None:
    options = [{"lr": 0.01}, {"lr": 0.01, "momentum": 0.9, "centered": True}]
    _infinite_params(ns, "rmsprop_update", RMSprop, torch.optim.RMSprop, options)


@check("rmsprop_update")
def rmsprop_param_groups_match_torch(ns: Namespace) -> None:
    defaults: dict[str, Any] = {"lr": 0.01, "centered": True, "momentum": 0.5}
    groups: list[dict[str, Any]] = [
        {"alpha": 0.8, "eps": 1e-2},
        {"lr": 0.003, "momentum": 0.0, "weight_decay": 1.0},
    ]
    _param_groups(ns, "rmsprop_update", RMSprop, torch.optim.RMSprop, defaults, groups)


@check("rmsprop_update")
def rmsprop_state_dicts_load_both_ways(ns: Namespace) -> None:
    defaults: dict[str, Any] = {"lr": 0.01, "momentum": 0.9}
    groups: list[dict[str, Any]] = [{"centered": True}, {"alpha": 0.9}]
    _state_dicts(ns, "rmsprop_update", RMSprop, torch.optim.RMSprop, defaults, groups)


# ----------------------------------------------------------------------------------------------
# Adam and AdamW

ADAM_OPTIONS: dict[str, list[Any]] = {
    "lr": [0.01],
    "betas": [(0.8, 0.95)],
    "eps": [1e-3],
    "weight_decay": [0.0, 0.1],
    "amsgrad": [False, True],
    "maximize": [False, True],
}
ADAM_GROUPS: list[dict[str, Any]] = [
    {"betas": (0.5, 0.9), "eps": 1e-2},
    {"lr": 0.003, "weight_decay": 1.0},
]


@check("adam_update")
def adam_matches_torch_for_every_option(ns: Namespace) -> None:
    _every_option(ns, "adam_update", Adam, torch.optim.Adam, ADAM_OPTIONS)


@check("adam_update")
def adam_keeps_infinite_params_infinite(ns: Namespace) -> None:
    options = [{"lr": 0.01}, {"lr": 0.01, "amsgrad": True, "maximize": True}]
    _infinite_params(ns, "adam_update", Adam, torch.optim.Adam, options)


@check("adam_update")
def adam_param_groups_match_torch(ns: Namespace) -> None:
    defaults: dict[str, Any] = {"lr": 0.02, "amsgrad": True}
    _param_groups(ns, "adam_update", Adam, torch.optim.Adam, defaults, ADAM_GROUPS)


@check("adam_update")
def adam_state_dicts_load_both_ways(ns: Namespace) -> None:
    defaults: dict[str, Any] = {"lr": 0.02, "weight_decay": 0.01}
    groups: list[dict[str, Any]] = [{"amsgrad": True}, {"betas": (0.7, 0.9)}]
    _state_dicts(ns, "adam_update", Adam, torch.optim.Adam, defaults, groups)


@check("adamw_update")
def adamw_matches_torch_for_every_option(ns: Namespace) -> None:
    _every_option(ns, "adamw_update", AdamW, torch.optim.AdamW, ADAM_OPTIONS)


@check("adamw_update")
def adamw_keeps_infinite_params_infinite(ns: Namespace) -> None:
    options = [{"lr": 0.01, "weight_decay": 0.0}, {"lr": 0.01, "amsgrad": True}]
    _infinite_params(ns, "adamw_update", AdamW, torch.optim.AdamW, options)


@check("adamw_update")
def adamw_param_groups_match_torch(ns: Namespace) -> None:
    defaults: dict[str, Any] = {"lr": 0.02, "weight_decay": 0.05}
    _param_groups(ns, "adamw_update", AdamW, torch.optim.AdamW, defaults, ADAM_GROUPS)


@check("adamw_update")
def adamw_state_dicts_load_both_ways(ns: Namespace) -> None:
    defaults: dict[str, Any] = {"lr": 0.02, "weight_decay": 0.1}
    groups: list[dict[str, Any]] = [{"amsgrad": True}, {"lr": 0.01}]
    _state_dicts(ns, "adamw_update", AdamW, torch.optim.AdamW, defaults, groups)
