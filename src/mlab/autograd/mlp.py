"""A multi-layer perceptron trained with the engine: parameters, forward, loss and an SGD step,
with no Module system and no optimizer, to show the engine alone is enough to learn.

The initialisation is ``torch.nn.Linear``'s (weights and biases uniform in ``±1/sqrt(fan_in)``,
He et al., 2015, with ``a = sqrt(5)``), drawn from a generator so a torch model can start from
the same numbers (``benchmarks/bench_w1d4_autograd_mlp.py``, ``tests/test_autograd.py``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

from mlab.autograd.engine import Variable, no_grad
from mlab.autograd.functional import cross_entropy, relu

__all__ = ["init_mlp", "mlp_forward", "mlp_loss", "sgd_step"]


def init_mlp(
    sizes: Sequence[int], generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> list[Variable]:
    """Parameters ``[w1, b1, w2, b2, ...]`` of an MLP with layer widths ``sizes`` (input
    first); ``w`` has shape ``(fan_in, fan_out)``, so a layer is ``x @ w + b``."""
    params = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1 / math.sqrt(fan_in)
        w = (torch.rand(fan_in, fan_out, generator=generator, dtype=dtype) * 2 - 1) * bound
        b = (torch.rand(fan_out, generator=generator, dtype=dtype) * 2 - 1) * bound
        params += [Variable(w, requires_grad=True), Variable(b, requires_grad=True)]
    return params


def mlp_forward(params: Sequence[Variable], x: Variable) -> Variable:
    """Logits ``(batch, classes)`` of ``x`` ``(batch, features)``: ReLU between layers."""
    for i in range(0, len(params), 2):
        x = x @ params[i] + params[i + 1]
        if i + 2 < len(params):
            x = relu(x)
    return x


def mlp_loss(params: Sequence[Variable], x: torch.Tensor, y: torch.Tensor) -> Variable:
    """The mean cross-entropy of the MLP's logits for ``x`` against labels ``y``."""
    return cross_entropy(mlp_forward(params, Variable(x)), y)


def sgd_step(params: Sequence[Variable], lr: float) -> None:
    """``p.data -= lr * p.grad`` for every parameter, then clear the gradients."""
    with no_grad():
        for p in params:
            if p.grad is not None:
                p.data -= lr * p.grad
            p.zero_grad()
