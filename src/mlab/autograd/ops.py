"""The differentiable operations of the engine, each backward right beside its forward.

Each op computes its result from the parents' ``.data`` with torch and hands
:func:`~mlab.autograd.engine.from_op` a ``backward`` closure: given ``grad``, the gradient of
the final output with respect to the op's result (of the result's shape), it returns the
gradient with respect to each parent (of that parent's shape): the vector-Jacobian product
``grad · ∂out/∂parent``, computed without ever forming the Jacobian. Elementwise ops
broadcast, so their backward sums the gradient back down to each parent's shape
(:func:`unbroadcast`). Shapes below: ``a`` and ``b`` are the parents, ``out`` the result.
"""

from __future__ import annotations

from typing import Any

import torch

from mlab.autograd.engine import Variable, as_variable, from_op
from mlab.errors import ShapeError

__all__ = [
    "add",
    "div",
    "exp",
    "getitem",
    "log",
    "matmul",
    "mul",
    "neg",
    "power",
    "reduce_max",
    "reduce_mean",
    "reduce_sum",
    "reshape",
    "sub",
    "transpose",
    "unbroadcast",
]


def unbroadcast(grad: torch.Tensor, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """Sum ``grad`` down to ``shape``: the backward of broadcasting a ``shape`` tensor to
    ``grad.shape``.

    Broadcasting copies values: along new leading dims, and along dims of size 1 in ``shape``.
    A copied value reaches the output in every copy, so its gradient is the sum over the
    copies: sum ``grad`` over its leading ``grad.ndim - len(shape)`` dims and over every dim
    where ``shape`` has size 1, and reshape the sum to ``shape``. A grad already of ``shape``
    comes back unchanged (no copy).

    >>> unbroadcast(torch.ones(2, 3, 4), (3, 1)).tolist()
    [[8.0], [8.0], [8.0]]

    Raise ``ShapeError`` if ``shape`` does not broadcast to ``grad.shape`` (more dims than
    grad, or a size that is neither 1 nor grad's size there).
    """
    lead = grad.ndim - len(shape)
    if lead < 0 or any(n not in (1, grad.shape[lead + i]) for i, n in enumerate(shape)):
        raise ShapeError(
            f"a tensor of shape {tuple(shape)} does not broadcast to the gradient's shape "
            f"{tuple(grad.shape)}: the gradient cannot be reduced to it"
        )
    dims = [*range(lead), *(lead + i for i, n in enumerate(shape) if n == 1)]
    return grad.sum(dim=dims).reshape(shape) if dims else grad


# ----------------------------------------------------------------------------------------------
# Elementwise arithmetic (broadcasting)


def add(a: Variable, b: Variable) -> Variable:
    """``a + b``, broadcasting. Both gradients are ``grad`` itself, unbroadcast."""

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return unbroadcast(grad, a.shape), unbroadcast(grad, b.shape)

    return from_op(a.data + b.data, (a, b), backward)


def sub(a: Variable, b: Variable) -> Variable:
    """``a - b``, broadcasting."""

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return unbroadcast(grad, a.shape), unbroadcast(-grad, b.shape)

    return from_op(a.data - b.data, (a, b), backward)


def neg(a: Variable) -> Variable:
    """``-a``."""

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor]:
        return (-grad,)

    return from_op(-a.data, (a,), backward)


def mul(a: Variable, b: Variable) -> Variable:
    """``a * b`` elementwise, broadcasting ``a`` and ``b`` (shapes ``(*a)``, ``(*b)``) to a
    common shape ``(*out)``, with its backward.

    The product rule: ``∂(a b)/∂a = b``, so the gradient for ``a`` is ``grad * b``, summed
    down to ``a``'s shape with :func:`unbroadcast`; likewise ``grad * a`` for ``b``.
    Return ``from_op(data, (a, b), backward)``, where ``backward(grad)`` returns the pair
    ``(grad_a, grad_b)`` of tensors with ``a``'s and ``b``'s shapes.
    """

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return unbroadcast(grad * b.data, a.shape), unbroadcast(grad * a.data, b.shape)

    return from_op(a.data * b.data, (a, b), backward)


def div(a: Variable, b: Variable) -> Variable:
    """``a / b`` elementwise (true division), broadcasting, with its backward.

    ``∂(a/b)/∂a = 1/b`` and ``∂(a/b)/∂b = -a/b²``. Return ``from_op(data, (a, b),
    backward)`` with ``backward(grad) -> (grad_a, grad_b)`` of ``a``'s and ``b``'s shapes.
    """

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return unbroadcast(grad / b.data, a.shape), unbroadcast(-grad * a.data / b.data**2, b.shape)

    return from_op(a.data / b.data, (a, b), backward)


def power(a: Variable, exponent: float) -> Variable:
    """``a ** exponent`` for a constant number ``exponent``."""

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor]:
        return (grad * exponent * a.data ** (exponent - 1),)

    return from_op(a.data**exponent, (a,), backward)


def exp(a: Variable) -> Variable:
    """``e ** a``; its derivative is itself, so backward reuses the output."""
    out = a.data.exp()

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor]:
        return (grad * out,)

    return from_op(out, (a,), backward)


def log(a: Variable) -> Variable:
    """The natural logarithm."""

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor]:
        return (grad / a.data,)

    return from_op(a.data.log(), (a,), backward)


# ----------------------------------------------------------------------------------------------
# Matrix product


def matmul(a: Variable, b: Variable) -> Variable:
    """``a @ b`` as ``torch.matmul`` computes it, with its backward.

    Shapes: ``(*batch_a, m, n) @ (*batch_b, n, p) -> (*batch, m, p)``, batch dims
    broadcasting. A 1-D ``a`` of shape ``(n,)`` acts as a row ``(1, n)`` and a 1-D ``b`` as a
    column ``(n, 1)``; that dim is then dropped from the result (two vectors give a 0-d dot
    product). Operands of 0 dims, or whose shapes do not match, raise ``ShapeError`` naming
    both shapes.

    For 2-D operands, ``out = a @ b`` gives ``grad_a = grad @ bᵀ`` (m, n) and
    ``grad_b = aᵀ @ grad`` (n, p). For the rest, treat vectors as the matrices above (and put
    the dropped dims back into ``grad``), use ``.mT`` (transpose of the last two dims), sum
    broadcast batch dims away with :func:`unbroadcast`, and reshape to the operand's shape.
    """
    try:
        out = a.data @ b.data
    except RuntimeError as err:
        raise ShapeError(f"matmul of shapes {tuple(a.shape)} and {tuple(b.shape)}: {err}") from None
    x = a.data if a.ndim > 1 else a.data.unsqueeze(0)  # (n,) -> (1, n): a row
    y = b.data if b.ndim > 1 else b.data.unsqueeze(1)  # (n,) -> (n, 1): a column

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = grad if b.ndim > 1 else grad.unsqueeze(-1)  # (*batch, m) -> (*batch, m, 1)
        g = g if a.ndim > 1 else g.unsqueeze(-2)  # (*batch, p) -> (*batch, 1, p)
        return (
            unbroadcast(g @ y.mT, x.shape).reshape(a.shape),
            unbroadcast(x.mT @ g, y.shape).reshape(b.shape),
        )

    return from_op(out, (a, b), backward)


# ----------------------------------------------------------------------------------------------
# Reductions


def reduce_sum(
    a: Variable, dim: int | tuple[int, ...] | None = None, keepdim: bool = False
) -> Variable:
    """``a.sum(dim, keepdim)`` as in torch (``dim=None``: every dim), with its backward.

    Each input element adds once to its sum, so its gradient is the gradient of that sum:
    ``grad`` with the summed dims put back (as size 1, unless ``keepdim`` kept them) and
    expanded to ``a``'s shape.
    """
    dims = tuple(range(a.ndim)) if dim is None else dim
    total = a.data.sum(dim=dims, keepdim=True)  # the summed dims kept, with size 1

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor]:
        return (grad.reshape(total.shape).expand(a.shape),)

    return from_op(total if keepdim else total.squeeze(dims), (a,), backward)


def reduce_mean(
    a: Variable, dim: int | tuple[int, ...] | None = None, keepdim: bool = False
) -> Variable:
    """``a.mean(dim, keepdim)``: the sum, scaled by the number of elements averaged."""
    total = reduce_sum(a, dim, keepdim)
    return mul(total, as_variable(total.data.numel() / a.data.numel(), like=a))


def reduce_max(a: Variable, dim: int, keepdim: bool = False) -> Variable:
    """The values of ``torch.max(a, dim, keepdim)`` (not the indices), with its backward.

    Only the maximum of each slice reaches the output, so the gradient goes to it alone and
    every other element gets 0. With ties, send it where torch does: to the index
    ``torch.max`` returns (one element per slice, not shared among the ties).
    """
    values, indices = a.data.max(dim=dim, keepdim=True)

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor]:
        return (torch.zeros_like(a.data).scatter(dim, indices, grad.reshape(values.shape)),)

    return from_op(values if keepdim else values.squeeze(dim), (a,), backward)


# ----------------------------------------------------------------------------------------------
# Shapes and indexing


def reshape(a: Variable, shape: tuple[int, ...]) -> Variable:
    """``a.reshape(shape)``; the gradient is reshaped back."""

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor]:
        return (grad.reshape(a.shape),)

    return from_op(a.data.reshape(shape), (a,), backward)


def transpose(a: Variable, dim0: int, dim1: int) -> Variable:
    """``a.transpose(dim0, dim1)``; the gradient is transposed back (a swap is its own
    inverse)."""

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor]:
        return (grad.transpose(dim0, dim1),)

    return from_op(a.data.transpose(dim0, dim1), (a,), backward)


def getitem(a: Variable, index: Any) -> Variable:
    """``a[index]`` for any torch index (ints, slices, ``None``, ``...``, integer or boolean
    index tensors, tuples of them), with its backward.

    Every output element is a copy of one input element, and an index tensor may copy the
    same element several times (``a[torch.tensor([0, 0])]``): its gradient is the sum of the
    gradients of its copies. Find where each output element comes from by indexing a tensor
    of flat positions (``torch.arange(numel).reshape(a.shape)[index]``), then add ``grad``
    into a zero gradient at those positions with ``index_put_(..., accumulate=True)``
    (``g[pos] += grad`` would keep one copy of a repeated index, not the sum).
    """
    positions = torch.arange(a.data.numel(), device=a.data.device).reshape(a.shape)[index]

    def backward(grad: torch.Tensor) -> tuple[torch.Tensor]:
        g = a.data.new_zeros(a.data.numel())
        g.index_put_((positions.reshape(-1),), grad.reshape(-1), accumulate=True)
        return (g.reshape(a.shape),)

    return from_op(a.data[index], (a,), backward)
