"""The optimizer classes' plumbing (mlab.optim.optimizers) against torch.optim: parameter
groups and their defaults, zero_grad, closures, state dicts in torch's format both ways, and
errors for bad hyper-parameters. The update rules are checked by the course's w1d5 checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from mlab.optim.optimizers import SGD, Adam, AdamW, Optimizer, RMSprop

PAIRS: list[tuple[type[Optimizer], Any, dict[str, Any]]] = [
    (SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (RMSprop, torch.optim.RMSprop, {"lr": 0.01, "centered": True, "momentum": 0.5}),
    (Adam, torch.optim.Adam, {"lr": 0.01, "amsgrad": True}),
    (AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
]


def _model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


def _groups(model: nn.Sequential) -> list[dict[str, Any]]:
    return [
        {"params": model[0].parameters(), "lr": 0.003},
        {"params": model[2].parameters()},
    ]


def _backward(model: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    w = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    (model(x) * w).sum().backward()


def _steps(model: nn.Module, opt: Any, start: int, n: int) -> None:
    for i in range(start, start + n):
        opt.zero_grad()
        _backward(model, i)
        opt.step()


@pytest.mark.parametrize(("ours", "theirs", "kw"), PAIRS, ids=lambda v: getattr(v, "__name__", ""))
def test_groups_and_state_dict_match_torch(ours: Any, theirs: Any, kw: dict[str, Any]) -> None:
    a, b = _model(), _model()
    opt, ref = ours(_groups(a), **kw), theirs(_groups(b), **kw)
    _steps(a, opt, 0, 5)
    _steps(b, ref, 0, 5)
    mine, real = opt.state_dict(), ref.state_dict()
    assert mine["state"].keys() == real["state"].keys() == {0, 1, 2, 3}
    for i, state in real["state"].items():
        assert mine["state"][i].keys() == state.keys()
        for name, value in state.items():
            torch.testing.assert_close(mine["state"][i][name], value, rtol=0, atol=0)
    for group, real_group in zip(mine["param_groups"], real["param_groups"], strict=True):
        assert group["params"] == real_group["params"]
        assert {k: real_group[k] for k in group} == group
    # both ways, then five more steps each, equal to torch throughout
    a2, b2 = copy.deepcopy(a), copy.deepcopy(b)
    opt2, ref2 = ours(_groups(a2), **kw), theirs(_groups(b2), **kw)
    opt2.load_state_dict(copy.deepcopy(real))
    ref2.load_state_dict(copy.deepcopy(mine))
    for model, optimizer in ((a, opt), (b, ref), (a2, opt2), (b2, ref2)):
        _steps(model, optimizer, 5, 5)
    for p, q, p2, q2 in zip(
        a.parameters(), b.parameters(), a2.parameters(), b2.parameters(), strict=True
    ):
        for other in (q, p2, q2):
            torch.testing.assert_close(p, other, rtol=1e-12, atol=1e-14)
        assert p.is_leaf and isinstance(p, nn.Parameter)


def test_group_defaults_and_add_param_group() -> None:
    model = _model()
    opt = SGD([{"params": model[0].parameters(), "lr": 0.5}], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": model[2].weight, "momentum": 0.0})
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1]
    assert [g["momentum"] for g in opt.param_groups] == [0.9, 0.0]
    assert opt.param_groups[1]["params"] == [model[2].weight]
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [model[2].weight]})


def test_zero_grad_and_closure() -> None:
    model = _model()
    opt = SGD(model.parameters(), lr=0.1)
    _backward(model, 0)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    before = [p.detach().clone() for p in model.parameters()]

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss: torch.Tensor = model(torch.ones(1, 3, dtype=torch.float64)).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor)
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))
    opt.step()  # a parameter without a gradient is skipped, not an error
    opt.zero_grad()
    opt.step()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda ps: SGD(ps, lr=-0.1), "lr: -0.1"),
        (lambda ps: SGD(ps, momentum=-0.5), "momentum: -0.5"),
        (lambda ps: SGD(ps, nesterov=True), "Nesterov momentum requires a momentum"),
        (lambda ps: SGD(ps, momentum=0.9, dampening=0.1, nesterov=True), "dampening=0.1"),
        (lambda ps: RMSprop(ps, alpha=-1.0), "alpha: -1.0"),
        (lambda ps: Adam(ps, betas=(1.0, 0.999)), "beta parameter at index 0: 1.0"),
        (lambda ps: AdamW(ps, betas=(0.9, -0.1)), "index 1: -0.1"),
        (lambda ps: Adam(ps, eps=-1e-8), "eps"),
        (lambda ps: Adam([{"params": ps, "lr": -1.0}]), "lr: -1.0"),
        (lambda ps: SGD([]), "empty parameter list"),
        (lambda ps: SGD([ps[0] * 2]), "not a leaf"),
    ],
)
def test_bad_hyper_parameters_raise(make: Any, match: str) -> None:
    params = list(_model().parameters())
    with pytest.raises(ValueError, match=match):
        make(params)


def test_load_state_dict_refuses_other_layout() -> None:
    model = _model()
    saved = SGD(model.parameters(), lr=0.1).state_dict()
    with pytest.raises(ValueError, match="parameter groups have"):
        SGD(_groups(model), lr=0.1).load_state_dict(saved)
