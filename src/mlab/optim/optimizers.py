"""SGD, RMSprop, Adam and AdamW, equal to ``torch.optim`` step for step.

Each optimizer's arithmetic is one module-level function, ``*_update(param, grad, state,
**hyper)``, that updates one parameter in place from its gradient and its state dict (the
same keys torch keeps: ``momentum_buffer``, ``step``, ``square_avg``, ``exp_avg``, ...). The
classes are plumbing around those functions: parameter groups with per-group defaults,
``zero_grad``, ``step`` and state dicts in torch's format (state keyed by the parameter's
index, ``param_groups`` holding index lists), so a state dict saved by ours loads into
``torch.optim`` and the other way round.

The update rules are the ones torch documents for each class ("Algorithm" in the docs of
``torch.optim.SGD``, ``RMSprop``, ``Adam`` and ``AdamW``); the papers are Polyak (1964) and
Sutskever et al. (2013) for momentum and Nesterov, Hinton's Coursera lecture 6e for RMSprop,
Kingma & Ba (2015) for Adam and Loshchilov & Hutter (2019) for AdamW.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "adam_update",
    "adamw_update",
    "rmsprop_update",
    "sgd_update",
]

State = dict[str, Any]


def sgd_update(
    param: Tensor,
    grad: Tensor,
    state: State,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One SGD step on ``param``, in place (torch.optim.SGD's documented algorithm).

    With g the gradient (negated when ``maximize``) and θ the parameter:

    - weight decay: g = g + weight_decay·θ (when weight_decay != 0);
    - momentum (when momentum != 0): the buffer b is a clone of g on the first step, then
      b = momentum·b + (1 - dampening)·g; it is kept as ``state["momentum_buffer"]``.
      Then g = g + momentum·b with ``nesterov``, else g = b;
    - θ = θ - lr·g.

    ``state`` is this parameter's state dict, empty before the first step; with
    momentum == 0 it stays empty. Never modify ``grad`` in place: it is ``param.grad``.
    """
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad.add(param, alpha=weight_decay)
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = grad.clone()
        else:
            buf.mul_(momentum).add_(grad, alpha=1 - dampening)
        grad = grad.add(buf, alpha=momentum) if nesterov else buf
    param.add_(grad, alpha=-lr)


def rmsprop_update(
    param: Tensor,
    grad: Tensor,
    state: State,
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> None:
    """One RMSprop step on ``param``, in place (torch.optim.RMSprop's documented algorithm).

    On the first step create ``state["step"] = torch.tensor(0.0)``, ``state["square_avg"]``
    (zeros like param), ``state["momentum_buffer"]`` (zeros, only when momentum > 0) and
    ``state["grad_avg"]`` (zeros, only when ``centered``). Then, with g the gradient (negated
    when ``maximize``):

    - step += 1; g = g + weight_decay·θ (when weight_decay != 0);
    - v = alpha·v + (1 - alpha)·g²  (``square_avg``);
    - centered: ḡ = alpha·ḡ + (1 - alpha)·g (``grad_avg``) and d = sqrt(v - ḡ²) + eps;
      otherwise d = sqrt(v) + eps;
    - momentum > 0: b = momentum·b + g/d and θ = θ - lr·b; otherwise θ = θ - lr·g/d.
    """
    if not state:
        state["step"] = torch.tensor(0.0)
        state["square_avg"] = torch.zeros_like(param)
        if momentum > 0:
            state["momentum_buffer"] = torch.zeros_like(param)
        if centered:
            state["grad_avg"] = torch.zeros_like(param)
    state["step"] += 1
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad.add(param, alpha=weight_decay)
    square_avg = state["square_avg"]
    square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    if centered:
        grad_avg = state["grad_avg"]
        grad_avg.lerp_(grad, 1 - alpha)
        avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_().add_(eps)
    else:
        avg = square_avg.sqrt().add_(eps)
    if momentum > 0:
        buf = state["momentum_buffer"]
        buf.mul_(momentum).addcdiv_(grad, avg)
        param.add_(buf, alpha=-lr)
    else:
        param.addcdiv_(grad, avg, value=-lr)


def adam_update(
    param: Tensor,
    grad: Tensor,
    state: State,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
) -> None:
    """One Adam step on ``param``, in place (torch.optim.Adam's documented algorithm).

    On the first step create ``state["step"] = torch.tensor(0.0)``, ``state["exp_avg"]`` and
    ``state["exp_avg_sq"]`` (zeros like param) and, with ``amsgrad``,
    ``state["max_exp_avg_sq"]`` (zeros). Then, with g the gradient (negated when
    ``maximize``) and (β1, β2) = betas:

    - t = step + 1 (stored back); g = g + weight_decay·θ (when weight_decay != 0);
    - m = β1·m + (1 - β1)·g  (``exp_avg``);  v = β2·v + (1 - β2)·g²  (``exp_avg_sq``);
    - amsgrad: v_max = max(v_max, v), and use v_max instead of v below;
    - θ = θ - lr/(1 - β1^t) · m / (sqrt(v) / sqrt(1 - β2^t) + eps).
    """
    if not state:
        state["step"] = torch.tensor(0.0)
        state["exp_avg"] = torch.zeros_like(param)
        state["exp_avg_sq"] = torch.zeros_like(param)
        if amsgrad:
            state["max_exp_avg_sq"] = torch.zeros_like(param)
    state["step"] += 1
    step = state["step"].item()
    beta1, beta2 = betas
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad.add(param, alpha=weight_decay)
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    if amsgrad:
        exp_avg_sq = torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
    denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / (1 - beta1**step))


def adamw_update(
    param: Tensor,
    grad: Tensor,
    state: State,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
) -> None:
    """One AdamW step on ``param``, in place (torch.optim.AdamW's documented algorithm).

    Decoupled weight decay: first shrink the parameter, θ = θ·(1 - lr·weight_decay), then take
    an Adam step (``adam_update``) *without* weight decay, so the decay never passes through
    Adam's per-parameter scaling. The state is Adam's.
    """
    param.mul_(1 - lr * weight_decay)
    adam_update(
        param,
        grad,
        state,
        lr=lr,
        betas=betas,
        eps=eps,
        weight_decay=0,
        amsgrad=amsgrad,
        maximize=maximize,
    )


# ----------------------------------------------------------------------------------------------
# The classes: parameter groups, zero_grad, step and state dicts around the update functions.

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


def _check_non_negative(group: dict[str, Any], *names: str) -> None:
    for name in names:
        if group[name] < 0:
            raise ValueError(f"Invalid {name}: {group[name]} (it must be >= 0)")


class Optimizer:
    """Base class: ``param_groups`` (each group a dict of ``params`` and hyper-parameters, the
    constructor's values as defaults), ``state`` (one dict per parameter), ``zero_grad``,
    ``step`` (calls ``update`` on every parameter that has a gradient) and state dicts in
    torch.optim's format."""

    update: ClassVar[Callable[..., None]]

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: dict[Tensor, State] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups: list[Any] = list(params)
        if not groups:
            raise ValueError(
                "optimizer got an empty parameter list: pass model.parameters() or a list "
                "of parameter groups"
            )
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def validate(self, group: dict[str, Any]) -> None:
        """Raise ValueError on a hyper-parameter the update rule cannot use."""
        _check_non_negative(group, "lr", "weight_decay")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group: its own hyper-parameters, the constructor's for those it omits."""
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor) or not p.is_leaf:
                raise ValueError(
                    f"can't optimize {type(p).__name__} that is not a leaf tensor: pass "
                    "parameters (model.parameters()), not results computed from them"
                )
        taken = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in taken for p in params):
            raise ValueError(
                "some parameters appear in more than one parameter group: each parameter "
                "may belong to one group only"
            )
        group = {**self.defaults, **param_group, "params": params}
        self.validate(group)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set them to None (default) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_()
                    p.grad.zero_()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; ``closure`` (re)computes the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            hyper = {name: group[name] for name in self.defaults}
            for p in group["params"]:
                if p.grad is not None:
                    type(self).update(p, p.grad, self.state.setdefault(p, {}), **hyper)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """torch's format: ``{"state": {index: {...}}, "param_groups": [{..., "params":
        [index, ...]}]}``, parameters numbered in group order."""
        index: dict[Tensor, int] = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index.setdefault(p, len(index))
            groups.append({**group, "params": [index[p] for p in group["params"]]})
        state = {index[p]: dict(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict from ``state_dict()`` here or from a torch.optim optimizer of the
        same kind over the same parameter groups. Tensors are copied, floating state (except
        ``step``) cast to the parameter's dtype and device."""
        saved = state_dict["param_groups"]
        ours = [len(g["params"]) for g in self.param_groups]
        theirs = [len(g["params"]) for g in saved]
        if ours != theirs:
            raise ValueError(
                f"the state dict's parameter groups have {theirs} parameters, this "
                f"optimizer's have {ours}: load it into an optimizer built the same way"
            )
        by_index = {
            i: p
            for s, g in zip(saved, self.param_groups, strict=True)
            for i, p in zip(s["params"], g["params"], strict=True)
        }
        self.state = {
            by_index[int(i)]: {
                name: _copy_state(value, by_index[int(i)], name) for name, value in s.items()
            }
            for i, s in state_dict["state"].items()
        }
        self.param_groups = [
            {**s, "params": g["params"]} for s, g in zip(saved, self.param_groups, strict=True)
        ]


def _copy_state(value: Any, param: Tensor, name: str) -> Any:
    if not isinstance(value, Tensor):
        return value
    if name == "step" or not value.is_floating_point():
        return value.clone()
    return value.to(dtype=param.dtype, device=param.device, copy=True)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov, weight decay (``sgd_update``)."""

    update = staticmethod(sgd_update)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def validate(self, group: dict[str, Any]) -> None:
        _check_non_negative(group, "lr", "momentum", "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "Nesterov momentum requires a momentum and zero dampening: got "
                f"momentum={group['momentum']}, dampening={group['dampening']}"
            )


class RMSprop(Optimizer):
    """RMSprop: steps divided by a running root-mean-square of gradients
    (``rmsprop_update``)."""

    update = staticmethod(rmsprop_update)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def validate(self, group: dict[str, Any]) -> None:
        _check_non_negative(group, "lr", "eps", "momentum", "weight_decay", "alpha")


class Adam(Optimizer):
    """Adam: momentum and RMSprop's scale, both bias-corrected (``adam_update``)."""

    update = staticmethod(adam_update)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def validate(self, group: dict[str, Any]) -> None:
        _check_non_negative(group, "lr", "eps", "weight_decay")
        for i, beta in enumerate(group["betas"]):
            if not 0.0 <= beta < 1.0:
                raise ValueError(
                    f"Invalid beta parameter at index {i}: {beta} (each beta must be in "
                    "[0, 1), e.g. betas=(0.9, 0.999))"
                )


class AdamW(Adam):
    """Adam with decoupled weight decay (``adamw_update``); torch's default decay is 0.01."""

    update = staticmethod(adamw_update)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
