"""A Module system of our own, state-dict compatible with ``torch.nn.Module`` both ways.

A module is an object holding three kinds of state in ordered registries, filled by plain
attribute assignment (``self.weight = Parameter(...)``, ``self.fc = Linear(...)``):

- ``_parameters``: ``torch.nn.Parameter`` tensors, what an optimiser trains;
- ``_buffers``: tensors that are saved and moved but not trained (running statistics), added
  with :meth:`Module.register_buffer`; a *non-persistent* buffer is moved but not saved;
- ``_modules``: child modules, whose state appears under dotted names (``"layers.0.weight"``).

Everything else (``named_parameters``, ``state_dict``, ``train``, ``to``) walks that tree.
The design, names and orders follow ``torch/nn/modules/module.py``; the parameters are real
``torch.nn.Parameter`` objects, so ``torch.optim`` trains our modules as it trains torch's.

The methods that carry the ideas delegate to module-level functions, the exercises of day
w1d4 part 2: :func:`set_attribute`, :func:`named_modules`, :func:`named_members`,
:func:`train`, :func:`state_dict`, :func:`load_state_dict` and :func:`to`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.nn import Parameter

from mlab.errors import StateDictError

__all__ = [
    "IncompatibleKeys",
    "Module",
    "load_state_dict",
    "named_members",
    "named_modules",
    "set_attribute",
    "state_dict",
    "to",
    "train",
]


class IncompatibleKeys(NamedTuple):
    """What a non-strict :func:`load_state_dict` could not match, as torch returns it."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _indent(text: str) -> str:
    """Indent every line but the first by two spaces (torch's ``_addindent``)."""
    return text.replace("\n", "\n  ")


class Module:
    """Base class of our modules: subclasses call ``super().__init__()`` first, assign their
    parameters, buffers and children as attributes, and define ``forward``."""

    training: bool
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, Tensor | None]
    _non_persistent_buffers: set[str]
    _modules: dict[str, Module | None]

    def __init__(self) -> None:
        # object.__setattr__: our own __setattr__ needs these registries to exist.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", {})

    # -- registration ------------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        set_attribute(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Called only when normal lookup fails: registered state lives in the registries.
        for registry in ("_parameters", "_buffers", "_modules"):
            values = self.__dict__.get(registry, {})
            if name in values:
                return values[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def _check_new_name(self, name: str, kind: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot register {kind} {name!r} before Module.__init__() is called: call "
                "super().__init__() first in __init__"
            )
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{kind} name {name!r} must be a non-empty string without '.'")
        if name in self.__dict__:
            raise KeyError(f"attribute {name!r} already exists and is not a {kind}")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (a ``Parameter``, or ``None`` for an absent optional one)."""
        self._check_new_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot register a {type(param).__name__} as parameter {name!r}: wrap it, "
                "torch.nn.Parameter(tensor), or pass None"
            )
        for registry in (self._buffers, self._modules):
            registry.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a tensor that is moved by ``to`` but not trained; ``persistent=False``
        keeps it out of the state dict."""
        self._check_new_name(name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot register a {type(tensor).__name__} as buffer {name!r}")
        for registry in (self._parameters, self._modules):
            registry.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as the child ``name``."""
        self._check_new_name(name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module")
        for registry in (self._parameters, self._buffers):
            registry.pop(name, None)
        self._modules[name] = module

    # -- walking the tree --------------------------------------------------------------------

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct children, each once, in registration order."""
        seen: set[Module] = set()
        for name, child in self._modules.items():
            if child is not None and child not in seen:
                seen.add(child)
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def named_modules(
        self, memo: set[Module] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        return named_modules(self, memo, prefix, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        return named_members(
            self, lambda m: m._parameters.items(), prefix, recurse, remove_duplicate
        )

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        return named_members(self, lambda m: m._buffers.items(), prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    # -- modes, state, devices ---------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        return train(self, mode)

    def eval(self) -> Module:
        return train(self, False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of every parameter (``None``), or zero them in place."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                # A gradient computed with create_graph=True is part of a graph: cut it off.
                if param.grad.grad_fn is not None:
                    param.grad.detach_()
                else:
                    param.grad.requires_grad_(False)
                param.grad.zero_()

    def state_dict(
        self,
        destination: OrderedDict[str, Tensor] | None = None,
        prefix: str = "",
        keep_vars: bool = False,
    ) -> OrderedDict[str, Tensor]:
        return state_dict(self, destination, prefix, keep_vars)

    def load_state_dict(
        self, state_dict: Mapping[str, Tensor], strict: bool = True
    ) -> IncompatibleKeys:
        return load_state_dict(self, state_dict, strict)

    def to(
        self,
        *args: torch.dtype | torch.device | str,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Module:
        """``module.to(torch.float64)``, ``module.to("cuda")``, ``module.to(device, dtype)``."""
        for arg in args:
            if isinstance(arg, torch.dtype):
                dtype = arg
            else:
                device = arg
        return to(self, dtype, None if device is None else torch.device(device))

    def double(self) -> Module:
        return self.to(torch.float64)

    def float(self) -> Module:
        return self.to(torch.float32)

    # -- calling and printing ----------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        """The settings shown inside the parentheses of ``repr`` (override it)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        children = [f"({name}): {_indent(repr(child))}" for name, child in self._modules.items()]
        if len(lines) == 1 and not children:
            return f"{type(self).__name__}({extra})"
        body = "".join(f"\n  {line}" for line in lines + children)
        return f"{type(self).__name__}({body}\n)" if body else f"{type(self).__name__}()"


# ----------------------------------------------------------------------------------------------
# The exercises: what Module's methods do


def set_attribute(module: Module, name: str, value: Any) -> None:
    """``module.name = value`` (``Module.__setattr__``): route the value into its registry.

    - a ``Parameter`` goes into ``module._parameters[name]``, a ``Module`` into
      ``module._modules[name]`` (unless ``name`` is a parameter's: then it is a
      ``TypeError``, as below); the name is first removed from every *other* place it may
      live (``module.__dict__`` and the other two of ``_parameters``, ``_buffers``,
      ``_modules``), but not from the target registry, so that reassigning keeps its place
      in the order;
    - any other value assigned to a name already registered replaces the registered value:
      ``None`` is allowed everywhere, a (plain) ``Tensor`` also for a buffer; anything else
      raises ``TypeError`` naming the attribute (a plain tensor assigned to a parameter's name
      is a mistake: it would silently stop being trained);
    - otherwise it is an ordinary attribute: ``object.__setattr__(module, name, value)``.

    Before ``Module.__init__`` has run (no ``"_parameters"`` in ``module.__dict__``) raise
    ``AttributeError`` saying to call ``super().__init__()`` first.

    >>> m = Module()
    >>> m.w = Parameter(torch.zeros(2))
    >>> list(m._parameters), "w" in m.__dict__
    (['w'], False)
    """
    if "_parameters" not in module.__dict__:
        raise AttributeError(
            f"cannot assign {name!r} before Module.__init__() is called: call "
            "super().__init__() first in __init__"
        )
    target: dict[str, Any] | None = None
    if isinstance(value, Parameter):
        target = module._parameters
    elif isinstance(value, Module) and name not in module._parameters:
        target = module._modules
    if target is not None:
        for place in (module.__dict__, module._parameters, module._buffers, module._modules):
            if place is not target:
                place.pop(name, None)
        target[name] = value
        return
    registries: list[tuple[dict[str, Any], tuple[type, ...]]] = [
        (module._parameters, ()),
        (module._buffers, (torch.Tensor,)),  # torch.Tensor: a workspace may shadow Tensor
        (module._modules, ()),
    ]
    for registry, allowed in registries:
        if name in registry:
            if value is not None and not isinstance(value, allowed):
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to {name!r}, which is registered "
                    "as a parameter, buffer or module: assign a torch.nn.Parameter, a Module, "
                    "a tensor (for a buffer) or None"
                )
            registry[name] = value
            return
    object.__setattr__(module, name, value)


def named_modules(
    module: Module,
    memo: set[Module] | None = None,
    prefix: str = "",
    remove_duplicate: bool = True,
) -> Iterator[tuple[str, Module]]:
    """Yield ``(name, submodule)`` for ``module`` itself (named ``prefix``) and every module
    below it, depth first in registration order (pre-order: a module before its children).

    A child's name is its parent's name, a ``"."`` (only when the parent's name is not
    empty) and its key in ``_modules``: ``""``, ``"0"``, ``"0.fc"``. ``None`` children are
    skipped. ``memo`` holds the modules already yielded: with ``remove_duplicate`` a module
    reachable twice (shared) is yielded once, under its first name, and nothing below a
    module already in ``memo`` is visited again.

    >>> outer = Module(); outer.inner = Module(); outer.inner.leaf = Module()
    >>> [name for name, _ in named_modules(outer, prefix="net")]
    ['net', 'net.inner', 'net.inner.leaf']
    """
    if memo is None:
        memo = set()
    if module in memo:
        return
    if remove_duplicate:
        memo.add(module)
    yield prefix, module
    for name, child in module._modules.items():
        if child is not None:
            child_prefix = prefix + ("." if prefix else "") + name
            yield from named_modules(child, memo, child_prefix, remove_duplicate)


def named_members(
    module: Module,
    members_of: Callable[[Module], Iterable[tuple[str, Any]]],
    prefix: str = "",
    recurse: bool = True,
    remove_duplicate: bool = True,
) -> Iterator[tuple[str, Any]]:
    """Yield ``(dotted name, member)`` for the members (parameters, or buffers) of ``module``
    and, when ``recurse``, of every submodule: ``named_parameters`` is
    ``named_members(m, lambda m: m._parameters.items(), ...)``.

    Walk the modules with :func:`named_modules` (passing ``prefix`` and
    ``remove_duplicate``), or only ``(prefix, module)`` itself when not ``recurse``; a
    member's name is its module's name, a ``"."`` when that is not empty, and its key.
    ``None`` members are skipped. With ``remove_duplicate`` a member (the same tensor object)
    reachable under two names is yielded once, under the first, as torch does: an optimiser
    must not update a shared weight twice per step.
    """
    seen: set[Any] = set()
    modules = (
        named_modules(module, prefix=prefix, remove_duplicate=remove_duplicate)
        if recurse
        else [(prefix, module)]
    )
    for module_prefix, submodule in modules:
        for name, member in members_of(submodule):
            if member is None or member in seen:
                continue
            if remove_duplicate:
                seen.add(member)
            yield module_prefix + ("." if module_prefix else "") + name, member


def train(module: Module, mode: bool = True) -> Module:
    """Set ``training = mode`` on ``module`` and every module below it; return ``module``.

    ``module.eval()`` is ``train(module, False)``. Layers such as BatchNorm and dropout read
    ``self.training``; a flag set only on the root would leave them in the wrong mode.
    A ``mode`` that is not a ``bool`` raises ``ValueError`` (``train("False")`` would be
    truthy).
    """
    if not isinstance(mode, bool):
        raise ValueError(f"training mode should be a bool, got {type(mode).__name__} {mode!r}")
    module.training = mode
    for child in module.children():
        train(child, mode)
    return module


def state_dict(
    module: Module,
    destination: OrderedDict[str, Tensor] | None = None,
    prefix: str = "",
    keep_vars: bool = False,
) -> OrderedDict[str, Tensor]:
    """Fill ``destination`` (a new ``OrderedDict`` when ``None``) with the module's saved
    state and return it, in torch's order: for this module, its parameters (registration
    order), then its *persistent* buffers, each under ``prefix + name``; then each child's
    state dict, recursively, with prefix ``prefix + child_name + "."``.

    ``None`` entries are skipped. Values are ``tensor.detach()`` (sharing storage, out of the
    autograd graph), or the parameter/buffer itself when ``keep_vars``. A shared child or
    parameter appears under each of its names (unlike ``named_parameters``): loading the
    dict must find every name.
    """
    if destination is None:
        destination = OrderedDict()
    persistent = [
        (name, buffer)
        for name, buffer in module._buffers.items()
        if name not in module._non_persistent_buffers
    ]
    for name, value in [*module._parameters.items(), *persistent]:
        if value is not None:
            destination[prefix + name] = value if keep_vars else value.detach()
    for name, child in module._modules.items():
        if child is not None:
            state_dict(child, destination, prefix + name + ".", keep_vars)
    return destination


def load_state_dict(
    module: Module, state: Mapping[str, Tensor], strict: bool = True
) -> IncompatibleKeys:
    """Copy ``state``'s tensors into the module's parameters and persistent buffers, in
    place: a ``Parameter`` stays the same object, so an optimiser holding it keeps working.
    ``state_dict(module)`` gives the module's own keys, and its detached tensors share
    storage with the parameters: ``own[key].copy_(value)`` writes the parameter, and being
    detached it records no gradient (no ``torch.no_grad()`` needed).

    Compute, in the module's (resp. ``state``'s) order: ``missing`` keys (the module's, not
    in ``state``), ``unexpected`` ones (in ``state``, not the module's), and the keys in both
    whose shapes differ. Raise :class:`mlab.errors.StateDictError` naming *all* of them at
    once, before copying anything, when a shape differs or, with ``strict``, when a key is
    missing or unexpected. Return ``IncompatibleKeys(missing, unexpected)`` (empty lists
    after a strict load).
    """
    own = state_dict(module)
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    mismatched = [
        f"{key}: shape {tuple(state[key].shape)} in the state dict, "
        f"{tuple(own[key].shape)} in the module"
        for key in own
        if key in state and state[key].shape != own[key].shape
    ]
    if mismatched or (strict and (missing or unexpected)):
        problems = [f"missing keys {missing}", f"unexpected keys {unexpected}"] if strict else []
        raise StateDictError(
            f"cannot load the state dict into {type(module).__name__}: "
            + "; ".join([*problems, *(f"size mismatch for {text}" for text in mismatched)])
        )
    for key, value in own.items():
        if key in state:
            value.copy_(state[key])
    return IncompatibleKeys(missing, unexpected)


def to(
    module: Module, dtype: torch.dtype | None = None, device: torch.device | None = None
) -> Module:
    """Move every parameter and buffer of ``module`` and its submodules to ``device`` and
    cast the *floating-point and complex* ones to ``dtype`` (``None``: keep); integer and
    bool tensors keep their dtype (a step counter stays int64). Return ``module``.

    A parameter must stay the same ``Parameter`` object, a leaf that requires grad (the
    optimiser may hold it): replace its ``.data``, and convert its ``.grad`` (when not
    ``None``) the same way. A buffer is replaced in its module's ``_buffers``. ``None``
    entries stay ``None``.
    """

    def convert(tensor: Tensor) -> Tensor:
        floating = tensor.is_floating_point() or tensor.is_complex()
        return tensor.to(device, dtype if floating else None)

    for submodule in module.modules():
        for param in submodule._parameters.values():
            if param is not None:
                param.data = convert(param.data)
                if param.grad is not None:
                    param.grad = convert(param.grad)
        for name, buffer in submodule._buffers.items():
            if buffer is not None:
                submodule._buffers[name] = convert(buffer)
    return module
