"""Checks for part 1 of w1d5: the update rules of SGD, RMSprop, Adam and AdamW.

Each exercise is plugged into our optimizer class (``mlab.optim.optimizers``: parameter
groups, ``step``, state dicts) and trains a small network beside the same network trained by
``torch.optim`` from identical float64 weights.

Two kinds of run:

- *Step by step* (every option, parameter groups, state dicts): a two-layer tanh network whose
  loss weights every output differently, so no two gradients are alike. After each step the
  gradients (never changed in place), every state tensor and the update of every parameter
  must match torch's; then our parameters and state are set to torch's, so the next step
  starts from the same state. A correct solution written another way (``grad + wd * param``
  for ``grad.add(param, alpha=wd)``, bias corrections applied to m and v instead of folded
  into the step size) rounds differently in the last bit, and on this non-convex problem
  training amplifies one bit to 1e-8 in 80 steps (RMSprop, eps 1e-3): re-synchronising keeps
  each comparison to one step's rounding. Measured on such rewrites of all four rules: at
  most 2e-13 of the update; ``STEP_RTOL`` = 1e-9 leaves a factor 5,000, and the mistakes
  seen (float32 state, eps outside the bias correction, the decay after the step) are 5e-8
  or far more.
- *Long run*: 300 free-running steps of a convex model (a linear layer, weighted least
  squares), with hyper-parameters under which a one-ulp change of torch's own start shrinks
  instead of growing. The rewrites stay within 3e-14 of torch there, so parameters must stay
  within ``LONG_RTOL`` = 1e-10 at every step: what creeps in slowly or only late (the step
  counter, the bias corrections at large t, a state that is not carried over) shows here.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.optim.optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from mlab.testing import assert_close, case, expect

F64 = torch.float64
STEPS = 30  # step-by-step runs (re-synchronised after every step)
LONG_STEPS = 300  # the free-running long run
STEP_RTOL, STEP_ATOL = 1e-9, 1e-14  # one update, relative to its size (see the docstring)
LONG_RTOL, LONG_ATOL = 1e-10, 1e-12  # the long run's parameters

_gen = torch.Generator().manual_seed(1505)
X = torch.randn(8, 3, generator=_gen, dtype=F64)
Y = torch.randn(8, 2, generator=_gen, dtype=F64)
LOSS_WEIGHTS = torch.rand(8, 2, generator=_gen, dtype=F64) + 0.5


@dataclass(frozen=True)
class Problem:
    """A model to train: its initial parameters (float64), their names, the loss."""

    description: str
    init: Sequence[Tensor]
    names: Sequence[str]
    loss: Callable[[list[Tensor]], Tensor]

    def params(self) -> list[Tensor]:
        return [t.clone().requires_grad_() for t in self.init]


def _mlp_loss(ps: list[Tensor]) -> Tensor:
    out = torch.tanh(X @ ps[0] + ps[1]) @ ps[2] + ps[3]
    return ((out - Y) ** 2 * LOSS_WEIGHTS).sum()


def _linear_loss(ps: list[Tensor]) -> Tensor:
    out = X @ ps[0] + ps[1]
    return ((out - Y) ** 2 * LOSS_WEIGHTS).sum()


MLP = Problem(
    "a 3-4-2 tanh MLP on 8 fixed random points, loss sum(weights * (out - y)**2), float64",
    [
        torch.randn(3, 4, generator=_gen, dtype=F64),
        torch.randn(4, generator=_gen, dtype=F64),
        torch.randn(4, 2, generator=_gen, dtype=F64),
        torch.randn(2, generator=_gen, dtype=F64),
    ],
    ["w1", "b1", "w2", "b2"],
    _mlp_loss,
)
LINEAR = Problem(
    "a 3-2 linear layer on 8 fixed random points, loss sum(weights * (out - y)**2), float64",
    [torch.randn(3, 2, generator=_gen, dtype=F64), torch.randn(2, generator=_gen, dtype=F64)],
    ["w", "b"],
    _linear_loss,
)


def _groups(ps: list[Tensor], groups: list[dict[str, Any]] | None) -> Iterable[Any]:
    """The parameters as one group, or split in half between ``groups``' two groups."""
    if groups is None:
        return ps
    half = len(ps) // 2
    return [{"params": ps[:half], **groups[0]}, {"params": ps[half:], **groups[1]}]


def _ours(ns: Namespace, cls: type[Optimizer], exercise: str) -> type[Optimizer]:
    """Our optimizer class with the update rule under check."""
    return type(cls.__name__, (cls,), {"update": staticmethod(getattr(ns, exercise))})


Pair = tuple[list[Tensor], Any, list[Tensor], Any]


def _step(problem: Problem, pair: Pair) -> None:
    for params, optimizer in ((pair[0], pair[1]), (pair[2], pair[3])):
        optimizer.zero_grad(set_to_none=False)
        problem.loss(params).backward()  # type: ignore[no-untyped-call]
        optimizer.step()


def _train(problem: Problem, pairs: list[Pair], steps: int, start: int = 0) -> None:
    """Step each (our params, our optimizer, torch's params, torch's optimizer) pair from the
    same state: compare the gradients (never changed in place), the optimizer state (it names
    the quantity that went wrong) and each parameter's update after every step, then set
    ours to torch's."""
    for step in range(start + 1, start + steps + 1):
        for pair in pairs:
            ps, opt, qs, ref = pair
            before = [q.detach().clone() for q in qs]
            _step(problem, pair)
            for name, p, q in zip(problem.names, ps, qs, strict=True):
                assert_close(p.grad, q.grad, rtol=0, atol=0, what=f"{name}.grad at step {step}")
            _same_state(problem, opt, ps, ref, qs, f"after step {step}")
            for name, p, q, b in zip(problem.names, ps, qs, before, strict=True):
                assert_close(
                    p.detach() - b,
                    q.detach() - b,
                    rtol=STEP_RTOL,
                    atol=STEP_ATOL,
                    what=f"the update of {name} at step {step} (its value after minus before)",
                )
            _resync(opt, ps, ref, qs)


def _same_state(
    problem: Problem, opt: Any, ps: list[Tensor], ref: Any, qs: list[Tensor], when: str
) -> None:
    """The optimizer state of each parameter: torch's keys (``step`` included), its values."""
    for name, p, q in zip(problem.names, ps, qs, strict=True):
        mine, theirs = opt.state.get(p, {}), ref.state.get(q, {})
        expect(
            sorted(mine) == sorted(theirs),
            f"the state of {name} {when} should hold {sorted(theirs)} (torch's names), "
            f"got {sorted(mine)}",
        )
        for key, value in theirs.items():
            assert_close(
                mine[key],
                value,
                rtol=STEP_RTOL,
                atol=STEP_ATOL,
                what=f"the state of {name}[{key!r}] {when}",
            )


def _resync(opt: Any, ps: list[Tensor], ref: Any, qs: list[Tensor]) -> None:
    """Set our parameters and optimizer state to torch's (copies, never shared)."""
    with torch.no_grad():
        for p, q in zip(ps, qs, strict=True):
            p.copy_(q)
    for p, q in zip(ps, qs, strict=True):
        mine = opt.state.get(p, {})
        for key, value in ref.state.get(q, {}).items():
            if isinstance(value, Tensor):
                mine[key].copy_(value)
            else:
                mine[key] = copy.deepcopy(value)


def _long_run(
    ns: Namespace,
    exercise: str,
    cls: type[Optimizer],
    ref_cls: Callable[..., Any],
    kw: dict[str, Any],
) -> None:
    """``LONG_STEPS`` free-running steps of the linear model beside torch's (see the module's
    docstring): parameters after every step, the state at the end."""
    ours = _ours(ns, cls, exercise)
    ps, qs = LINEAR.params(), LINEAR.params()
    pair = (ps, ours(ps, **kw), qs, ref_cls(qs, **kw))
    with case(
        f"{ref_cls.__name__}({kw}), {LONG_STEPS} steps of {LINEAR.description}, no "
        "re-synchronisation (a convex model: rounding differences shrink here)",
        **kw,
    ):
        for step in range(1, LONG_STEPS + 1):
            _step(LINEAR, pair)
            for name, p, q in zip(LINEAR.names, ps, qs, strict=True):
                assert_close(p, q, rtol=LONG_RTOL, atol=LONG_ATOL, what=f"{name} after step {step}")
        for name, p, q in zip(LINEAR.names, ps, qs, strict=True):
            mine, theirs = pair[1].state.get(p, {}), pair[3].state.get(q, {})
            assert_close(
                mine, theirs, rtol=1e-9, atol=1e-12, what=f"the state of {name} at the end"
            )


def _same_object_in_place(problem: Problem, ps: list[Tensor], before: list[int]) -> None:
    for name, p, ptr in zip(problem.names, ps, before, strict=True):
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
    options: list[dict[str, Any]],
) -> None:
    """Each option set for ``STEPS`` steps of the MLP. The sets cover every pair of option
    values that torch accepts (all of them together would repeat the same arithmetic)."""
    ours = _ours(ns, cls, exercise)
    for kw in options:
        ps, qs = MLP.params(), MLP.params()
        before = [p.data_ptr() for p in ps]
        with case(f"{ref_cls.__name__}({kw}), {STEPS} steps of {MLP.description}", **kw):
            _train(MLP, [(ps, ours(ps, **kw), qs, ref_cls(qs, **kw))], STEPS)
            _same_object_in_place(MLP, ps, before)


def _param_groups(
    ns: Namespace,
    exercise: str,
    cls: type[Optimizer],
    ref_cls: Callable[..., Any],
    defaults: dict[str, Any],
    groups: list[dict[str, Any]],
) -> None:
    ours = _ours(ns, cls, exercise)
    ps, qs = MLP.params(), MLP.params()
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
        _train(MLP, [pair], STEPS)


def _state_dicts(
    ns: Namespace,
    exercise: str,
    cls: type[Optimizer],
    ref_cls: Callable[..., Any],
    defaults: dict[str, Any],
    groups: list[dict[str, Any]],
) -> None:
    """Train some steps, then swap optimizers through state dicts both ways and go on. The
    state dicts are deep-copied, as torch.save and torch.load would: both libraries return
    (and torch loads) the live state tensors, and a shared ``step`` would count twice."""
    ours = _ours(ns, cls, exercise)
    ps, qs = MLP.params(), MLP.params()
    opt = ours(_groups(ps, groups), **defaults)
    ref = ref_cls(_groups(qs, groups), **defaults)
    half = STEPS // 2
    with case(f"{ref_cls.__name__}(groups, **{defaults}), first {half} steps", groups=groups):
        _train(MLP, [(ps, opt, qs, ref)], half)
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
        _train(MLP, [(ps, opt, qs2, ref2), (ps2, opt2, qs, ref)], STEPS - half, start=half)


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


def _sgd(momentum: float, dampening: float, nesterov: bool, wd: float, maximize: bool) -> Any:
    return {
        "lr": 0.03,
        "momentum": momentum,
        "dampening": dampening,
        "nesterov": nesterov,
        "weight_decay": wd,
        "maximize": maximize,
    }


@check("sgd_update")
def sgd_matches_torch_for_every_option(ns: Namespace) -> None:
    # every pair of option values torch accepts (Nesterov needs momentum and no dampening)
    options = [
        _sgd(0.0, 0.0, False, 0.0, False),
        _sgd(0.0, 0.1, False, 0.01, True),
        _sgd(0.9, 0.0, False, 0.01, False),
        _sgd(0.9, 0.1, False, 0.0, False),
        _sgd(0.9, 0.0, True, 0.0, True),
        _sgd(0.9, 0.0, True, 0.01, False),
        _sgd(0.9, 0.1, False, 0.01, True),
    ]
    _every_option(ns, "sgd_update", SGD, torch.optim.SGD, options)


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


@check("sgd_update")
def sgd_long_run_matches_torch(ns: Namespace) -> None:
    kw = {"lr": 0.02, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}
    _long_run(ns, "sgd_update", SGD, torch.optim.SGD, kw)


# ----------------------------------------------------------------------------------------------
# RMSprop


def _rmsprop(centered: bool, momentum: float, wd: float, maximize: bool) -> Any:
    return {
        "lr": 0.01,
        "alpha": 0.9,
        "eps": 1e-3,
        "centered": centered,
        "momentum": momentum,
        "weight_decay": wd,
        "maximize": maximize,
    }


@check("rmsprop_update")
def rmsprop_matches_torch_for_every_option(ns: Namespace) -> None:
    options = [  # every pair of option values
        _rmsprop(False, 0.0, 0.0, False),
        _rmsprop(False, 0.9, 0.01, True),
        _rmsprop(True, 0.0, 0.01, False),
        _rmsprop(True, 0.9, 0.0, True),
        _rmsprop(True, 0.9, 0.01, False),
        _rmsprop(False, 0.0, 0.01, True),
    ]
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


@check("rmsprop_update")
def rmsprop_long_run_matches_torch(ns: Namespace) -> None:
    # With eps 1e-3 and alpha 0.9, RMSprop circles the optimum in steps of about lr that
    # amplify rounding even on this model; alpha 0.99 and eps 1e-2 settle (measured: 3e-15).
    kw = {"lr": 0.01, "alpha": 0.99, "eps": 1e-2, "centered": True, "momentum": 0.5}
    _long_run(ns, "rmsprop_update", RMSprop, torch.optim.RMSprop, {**kw, "weight_decay": 0.01})


# ----------------------------------------------------------------------------------------------
# Adam and AdamW


def _adam(wd: float, amsgrad: bool, maximize: bool) -> Any:
    return {
        "lr": 0.01,
        "betas": (0.8, 0.95),
        "eps": 1e-3,
        "weight_decay": wd,
        "amsgrad": amsgrad,
        "maximize": maximize,
    }


ADAM_OPTIONS = [  # every pair of option values
    _adam(0.0, False, False),
    _adam(0.0, True, True),
    _adam(0.1, False, True),
    _adam(0.1, True, False),
]
ADAM_GROUPS: list[dict[str, Any]] = [
    {"betas": (0.5, 0.9), "eps": 1e-2},
    {"lr": 0.003, "weight_decay": 1.0},
]
# torch's default betas: the bias correction of v still matters after 300 steps (0.999^300=0.74)
ADAM_LONG_RUN: dict[str, Any] = {"lr": 0.01, "eps": 1e-3, "weight_decay": 0.1, "amsgrad": True}


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


@check("adam_update")
def adam_long_run_matches_torch(ns: Namespace) -> None:
    _long_run(ns, "adam_update", Adam, torch.optim.Adam, ADAM_LONG_RUN)


# No infinite-parameter check for AdamW: torch multiplies by 1 - lr·wd (inf stays inf), and
# the equally right param -= lr * wd * param gives inf - inf = NaN; only inf tells them apart.


@check("adamw_update")
def adamw_matches_torch_for_every_option(ns: Namespace) -> None:
    _every_option(ns, "adamw_update", AdamW, torch.optim.AdamW, ADAM_OPTIONS)


@check("adamw_update")
def adamw_param_groups_match_torch(ns: Namespace) -> None:
    defaults: dict[str, Any] = {"lr": 0.02, "weight_decay": 0.05}
    _param_groups(ns, "adamw_update", AdamW, torch.optim.AdamW, defaults, ADAM_GROUPS)


@check("adamw_update")
def adamw_state_dicts_load_both_ways(ns: Namespace) -> None:
    defaults: dict[str, Any] = {"lr": 0.02, "weight_decay": 0.1}
    groups: list[dict[str, Any]] = [{"amsgrad": True}, {"lr": 0.01}]
    _state_dicts(ns, "adamw_update", AdamW, torch.optim.AdamW, defaults, groups)


@check("adamw_update")
def adamw_long_run_matches_torch(ns: Namespace) -> None:
    _long_run(ns, "adamw_update", AdamW, torch.optim.AdamW, ADAM_LONG_RUN)
