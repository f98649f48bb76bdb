"""A reverse-mode automatic differentiation engine over torch tensors (course day w1d4).

:mod:`~mlab.autograd.engine` holds the ``Variable``, the topological order and the backward
pass; :mod:`~mlab.autograd.ops` and :mod:`~mlab.autograd.functional` the differentiable ops;
:mod:`~mlab.autograd.mlp` a multi-layer perceptron trained with them.
"""

from mlab.autograd.engine import (
    Variable,
    as_variable,
    backpropagate,
    from_op,
    is_grad_enabled,
    no_grad,
    topological_order,
)
from mlab.autograd.functional import cross_entropy, log_softmax, relu, softmax
from mlab.autograd.ops import (
    add,
    div,
    exp,
    getitem,
    log,
    matmul,
    mul,
    neg,
    power,
    reduce_max,
    reduce_mean,
    reduce_sum,
    reshape,
    sub,
    transpose,
    unbroadcast,
)

__all__ = [
    "Variable",
    "add",
    "as_variable",
    "backpropagate",
    "cross_entropy",
    "div",
    "exp",
    "from_op",
    "getitem",
    "is_grad_enabled",
    "log",
    "log_softmax",
    "matmul",
    "mul",
    "neg",
    "no_grad",
    "power",
    "reduce_max",
    "reduce_mean",
    "reduce_sum",
    "relu",
    "reshape",
    "softmax",
    "sub",
    "topological_order",
    "transpose",
    "unbroadcast",
]
