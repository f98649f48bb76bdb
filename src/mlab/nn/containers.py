"""Containers on our own :class:`~mlab.nn.module.Module`: lists of modules, parameters and
buffers registered under the names ``"0"``, ``"1"``, ..., and ``Sequential``; plus the two
layers the course's networks need, ``Linear`` and ``ReLU``.

A Python list of modules stored as an attribute is invisible to ``named_parameters`` and
``state_dict``; these containers register each item, so ``layers.0.weight`` appears as in
torch (``torch/nn/modules/container.py``). torch has no ``BufferList``: ours keeps its tensors
in ``_buffers``, so ``to`` moves them and the state dict holds ``"<name>.0"``, ``"<name>.1"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.nn import Parameter

from mlab.errors import ShapeError
from mlab.nn.module import Module

__all__ = ["BufferList", "Linear", "ModuleList", "ParameterList", "ReLU", "Sequential"]


def _position(index: int, length: int, kind: str) -> str:
    """The registry key of ``index`` (negative counts from the end) in a list of ``length``."""
    if not -length <= index < length:
        raise IndexError(f"index {index} is out of range for a {kind} of length {length}")
    return str(index % length)


class ModuleList(Module):
    """A list of modules, each registered as a child named by its position.

    ``ModuleList(modules)``; ``append(module)`` and ``extend(modules)`` register under the
    next position (``str(len(self))``) and return ``self``; ``len``, iteration in order and
    indexing as a list: ``layers[-1]`` (``IndexError`` out of range), and a slice gives a new
    ``ModuleList`` of those modules (the same objects).
    """

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        self.extend(modules)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())  # type: ignore[arg-type]

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return type(self)(list(self)[index])
        return self._modules[_position(index, len(self), "ModuleList")]


class ParameterList(Module):
    """A list of parameters, registered as ``"0"``, ``"1"``, ...; a tensor that is not yet
    a ``Parameter`` is wrapped in one."""

    def __init__(self, values: Iterable[Tensor] = ()) -> None:
        super().__init__()
        for value in values:
            self.append(value)

    def append(self, value: Tensor) -> ParameterList:
        param = value if isinstance(value, Parameter) else Parameter(value)
        self.register_parameter(str(len(self)), param)
        return self

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self._parameters.values())  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Parameter:
        param = self._parameters[_position(index, len(self), "ParameterList")]
        assert param is not None
        return param


class BufferList(Module):
    """A list of buffers (torch has none), registered as ``"0"``, ``"1"``, ... .

    ``BufferList(tensors, persistent=True)``: every buffer it registers has that persistence
    (a non-persistent list is moved by ``to`` but kept out of the state dict). ``append(t)``
    and ``extend(ts)`` register under the next position and return ``self``; ``len``,
    iteration and ``[i]`` (negative too; ``IndexError`` out of range) read the registered
    buffers, and ``bl[i] = t`` replaces one. Keep no list of your own: ``to`` replaces the
    tensors in ``_buffers``, and a private copy would go stale.
    """

    def __init__(self, tensors: Iterable[Tensor] = (), persistent: bool = True) -> None:
        super().__init__()
        self.persistent = persistent
        self.extend(tensors)

    def append(self, tensor: Tensor) -> BufferList:
        self.register_buffer(str(len(self)), tensor, persistent=self.persistent)
        return self

    def extend(self, tensors: Iterable[Tensor]) -> BufferList:
        for tensor in tensors:
            self.append(tensor)
        return self

    def __len__(self) -> int:
        return len(self._buffers)

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self._buffers.values())  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Tensor:
        return self._buffers[_position(index, len(self), "BufferList")]  # type: ignore[return-value]

    def __setitem__(self, index: int, tensor: Tensor) -> None:
        self._buffers[_position(index, len(self), "BufferList")] = tensor


class Sequential(ModuleList):
    """``Sequential(a, b, c)(x)`` is ``c(b(a(x)))``; children are named ``"0"``, ``"1"``, ...
    as torch's, so the state dicts match."""

    def __init__(self, *modules: Module) -> None:
        super().__init__(modules)

    def forward(self, x: Any) -> Any:
        for module in self:
            x = module(x)
        return x


class Linear(Module):
    """``x @ weight.T + bias`` with torch's parameter names, shapes and default init."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        bound = 1 / math.sqrt(in_features)  # the range of torch's default init
        weight = torch.empty(out_features, in_features, dtype=dtype).uniform_(-bound, bound)
        self.weight = Parameter(weight)
        if bias:
            self.bias = Parameter(torch.empty(out_features, dtype=dtype).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1:] != (self.in_features,):
            raise ShapeError(
                f"input has shape {tuple(x.shape)} but Linear expects a last dim of "
                f"{self.in_features}"
            )
        out = x @ self.weight.T
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.clamp(min=0)
