"""The core of a reverse-mode autograd engine: a ``Variable`` that remembers how it was
computed, the topological order of that record, and the backward pass that walks it.

This is micrograd's idea (Karpathy, 2020, github.com/karpathy/micrograd) lifted from scalars
to tensors, as in PyTorch's autograd (Paszke et al., "Automatic differentiation in PyTorch",
2017). A ``Variable`` wraps a plain ``torch.Tensor`` (``.data``, never ``requires_grad``: torch
is only our array library here), as PyTorch's own ``Variable`` wrapped its tensors until
version 0.4 merged the two; the name also keeps it apart from ``torch.Tensor``. When it is
the result of an operation on variables that require gradients, it records its ``parents``
and a ``backward_fn``: given the gradient of the final
output with respect to this tensor, it returns the gradient with respect to each parent (a
vector-Jacobian product). :func:`backpropagate` calls them in reverse topological order,
summing the contributions a tensor gets from each of its uses, and leaves the result in the
``.grad`` of the leaves. The operations themselves, each with its backward beside its
forward, are in :mod:`mlab.autograd.ops` and :mod:`mlab.autograd.functional`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from mlab.errors import ShapeError

__all__ = [
    "BackwardFn",
    "Variable",
    "as_variable",
    "backpropagate",
    "from_op",
    "is_grad_enabled",
    "no_grad",
    "topological_order",
]

# Given the gradient with respect to an op's output, the gradient with respect to each of its
# parents, in order, each of its parent's shape.
BackwardFn = Callable[[torch.Tensor], Sequence[torch.Tensor]]

_grad_enabled = [True]  # a list, so that no_grad can change it without a `global` statement


def is_grad_enabled() -> bool:
    """Whether operations are recorded now (False inside ``with no_grad():``)."""
    return _grad_enabled[0]


@contextmanager
def no_grad() -> Iterator[None]:
    """Within this block operations are not recorded: their results do not require grad.

    Use it for parameter updates and evaluation, like ``torch.no_grad()``. Also a decorator.
    """
    previous = _grad_enabled[0]
    _grad_enabled[0] = False
    try:
        yield
    finally:
        _grad_enabled[0] = previous


class Variable:
    """An array (``data``, a ``torch.Tensor``) with a gradient (``grad``) and the record of the
    operation that made it (``parents``, ``backward_fn``; empty and None for a leaf).

    >>> x = Variable([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4., 6.])
    """

    # No __eq__: tensors are compared (and hashed) by identity, as graph nodes.
    __slots__ = ("backward_fn", "data", "grad", "parents", "requires_grad")

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        data = torch.as_tensor(data).detach()
        if requires_grad and not data.is_floating_point():
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {data.dtype}; "
                "convert with .to(torch.float32) first"
            )
        self.data: torch.Tensor = data
        self.grad: torch.Tensor | None = None
        self.requires_grad = requires_grad
        self.parents: tuple[Variable, ...] = ()
        self.backward_fn: BackwardFn | None = None

    # -- describing -----------------------------------------------------------------------------

    @property
    def shape(self) -> torch.Size:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        """True unless this tensor is the recorded result of an operation."""
        return self.backward_fn is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        extra = ""
        if self.backward_fn is not None:
            extra = f", grad_fn={self.backward_fn.__qualname__.split('.')[0]}"
        elif self.requires_grad:
            extra = ", requires_grad=True"
        return f"Variable({self.data.tolist() if self.data.numel() <= 6 else self.data}{extra})"

    def item(self) -> float:
        return float(self.data.item())

    def detach(self) -> Variable:
        """The same values, cut from the graph (a leaf that does not require grad)."""
        return Variable(self.data)

    def zero_grad(self) -> None:
        self.grad = None

    def backward(self, grad: torch.Tensor | Variable | None = None) -> None:
        """Accumulate d(self)/d(leaf) into each leaf's ``.grad``; see :func:`backpropagate`."""
        backpropagate(self, grad.data if isinstance(grad, Variable) else grad)

    # -- operators (the ops live in mlab.autograd.ops and mlab.autograd.functional) --------------

    def __add__(self, other: Any) -> Variable:
        return ops.add(self, as_variable(other, self))

    def __radd__(self, other: Any) -> Variable:
        return ops.add(as_variable(other, self), self)

    def __sub__(self, other: Any) -> Variable:
        return ops.sub(self, as_variable(other, self))

    def __rsub__(self, other: Any) -> Variable:
        return ops.sub(as_variable(other, self), self)

    def __mul__(self, other: Any) -> Variable:
        return ops.mul(self, as_variable(other, self))

    def __rmul__(self, other: Any) -> Variable:
        return ops.mul(as_variable(other, self), self)

    def __truediv__(self, other: Any) -> Variable:
        return ops.div(self, as_variable(other, self))

    def __rtruediv__(self, other: Any) -> Variable:
        return ops.div(as_variable(other, self), self)

    def __matmul__(self, other: Any) -> Variable:
        return ops.matmul(self, as_variable(other, self))

    def __rmatmul__(self, other: Any) -> Variable:
        return ops.matmul(as_variable(other, self), self)

    def __pow__(self, exponent: float) -> Variable:
        return ops.power(self, exponent)

    def __neg__(self) -> Variable:
        return ops.neg(self)

    def __getitem__(self, index: Any) -> Variable:
        if isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Variable) else i for i in index)
        elif isinstance(index, Variable):
            index = index.data
        return ops.getitem(self, index)

    def sum(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Variable:
        return ops.reduce_sum(self, dim, keepdim)

    def mean(self, dim: int | tuple[int, ...] | None = None, keepdim: bool = False) -> Variable:
        return ops.reduce_mean(self, dim, keepdim)

    def max(self, dim: int, keepdim: bool = False) -> Variable:
        return ops.reduce_max(self, dim, keepdim)

    def reshape(self, *shape: int) -> Variable:
        return ops.reshape(self, shape)

    def transpose(self, dim0: int, dim1: int) -> Variable:
        return ops.transpose(self, dim0, dim1)

    @property
    def T(self) -> Variable:
        return ops.transpose(self, 0, 1)

    def exp(self) -> Variable:
        return ops.exp(self)

    def log(self) -> Variable:
        return ops.log(self)

    def relu(self) -> Variable:
        return functional.relu(self)

    def softmax(self, dim: int) -> Variable:
        return functional.softmax(self, dim)

    def log_softmax(self, dim: int) -> Variable:
        return functional.log_softmax(self, dim)


def as_variable(x: Any, like: Variable | None = None) -> Variable:
    """``x`` itself if it is a :class:`Variable`, else a constant (a leaf not requiring grad).

    A Python number next to a floating-point tensor ``like`` takes its dtype, as torch's
    scalars do: ``x * 0.5`` stays float32 for a float32 ``x`` (and 1.0001 stays exact in
    float64, rather than being rounded to float32 first).
    """
    if isinstance(x, Variable):
        return x
    if isinstance(x, (int, float)) and like is not None and like.data.is_floating_point():
        return Variable(torch.tensor(x, dtype=like.dtype, device=like.data.device))
    return Variable(x)


def from_op(data: torch.Tensor, parents: tuple[Variable, ...], backward_fn: BackwardFn) -> Variable:
    """The result of an operation: a new ``Variable`` holding ``data``, which records
    ``parents`` and ``backward_fn`` when the operation should be differentiated.

    Record only when recording is on (not inside ``no_grad()``, see :func:`is_grad_enabled`)
    and at least one parent requires grad; then the result requires grad too, and is not a
    leaf. Otherwise return a plain leaf that does not require grad (``parents`` empty,
    ``backward_fn`` None): nothing will ever flow back through it.
    """
    out = Variable(data)
    if is_grad_enabled() and any(p.requires_grad for p in parents):
        out.requires_grad = True
        out.parents = parents
        out.backward_fn = backward_fn
    return out


def topological_order(root: Variable) -> list[Variable]:
    """Every tensor ``root`` was computed from that requires grad, ``root`` included, each once,
    ordered so that a tensor comes after all of its parents (so ``root`` comes last).

    Follow ``.parents``; leave out tensors that do not require grad (no gradient goes to
    them, nor through them). A tensor used twice (``x * x``, or a diamond ``a = f(x);
    b = g(x); a + b``) still appears once. Do not recurse: a graph 10,000 ops deep would
    pass Python's recursion limit. Use an explicit stack (a depth-first search that emits a
    tensor once all of its parents have been emitted).
    """
    order: list[Variable] = []
    visited = {root}
    stack = [(root, iter(root.parents))]
    while stack:
        node, parents = stack[-1]
        for parent in parents:
            if parent.requires_grad and parent not in visited:
                visited.add(parent)
                stack.append((parent, iter(parent.parents)))
                break
        else:  # every parent is emitted: now this tensor can be
            order.append(node)
            stack.pop()
    return order


def backpropagate(root: Variable, grad: torch.Tensor | None = None) -> None:
    """Reverse-mode differentiation: add d(root)/d(leaf), weighted by ``grad``, to the
    ``.grad`` of every leaf that requires grad and that ``root`` depends on.

    ``grad`` is the gradient of some final scalar with respect to ``root``, of ``root``'s
    shape; it may be left out only when ``root`` has one element (then it is 1). Raise
    ``RuntimeError`` if ``root`` does not require grad, ``ShapeError`` if ``grad`` is left out
    for a ``root`` of several elements or has the wrong shape, and ``ValueError`` if a
    ``backward_fn`` returns a different number of gradients than its tensor has parents.

    Walk :func:`topological_order` backwards: when a tensor's turn comes, every use of it has
    sent its gradient, so the sum of those is complete. Pass it to the tensor's
    ``backward_fn`` and add what comes back to each parent's gradient (parents that require
    grad only). Leaves keep theirs: ``grad`` becomes a copy of it if it was None, else
    ``grad + it`` (gradients accumulate over calls, as in torch). Intermediate tensors do not
    keep a ``.grad``.
    """
    if not root.requires_grad:
        raise RuntimeError(
            f"backward of a tensor that does not require grad ({root!r}): nothing it depends "
            "on requires grad, or it was computed inside no_grad()"
        )
    if grad is None:
        if root.data.numel() != 1:
            raise ShapeError(
                f"backward() without a gradient needs a single-element output, got shape "
                f"{tuple(root.shape)}: pass grad= of that shape, or reduce first (.sum())"
            )
        grad = torch.ones_like(root.data)
    elif grad.shape != root.shape:
        raise ShapeError(
            f"grad has shape {tuple(grad.shape)} but the output has shape {tuple(root.shape)}"
        )
    grads = {root: grad}
    for node in reversed(topological_order(root)):
        node_grad = grads.pop(node)  # complete: every tensor computed from it came before
        if node.backward_fn is None:
            node.grad = node_grad.clone() if node.grad is None else node.grad + node_grad
            continue
        for parent, parent_grad in zip(node.parents, node.backward_fn(node_grad), strict=True):
            if parent.requires_grad:
                grads[parent] = grads[parent] + parent_grad if parent in grads else parent_grad


# The ops need Variable, so they are imported once it exists.
from mlab.autograd import functional, ops  # noqa: E402
