"""Weight initialisation, like ``torch.nn.init``: fans, gains, Kaiming (He) and Xavier (Glorot).

A layer's output is a sum of ``fan_in`` products of weights and inputs, so its variance is
``fan_in * Var(w) * E[x²]``. Glorot & Bengio, "Understanding the difficulty of training deep
feedforward neural networks" (2010) choose ``Var(w) = 2 / (fan_in + fan_out)`` to keep both the
forward activations and the backward gradients at a steady scale; He et al., "Delving Deep into
Rectifiers" (2015, https://arxiv.org/abs/1502.01852) note that a ReLU zeroes half its inputs
and double it: ``Var(w) = 2 / fan_in``. A uniform distribution on ``[-b, b]`` has variance
``b² / 3``, which gives the bounds below.

Every function fills its tensor in place without recording gradients, returns it, and draws
from ``generator`` (the global generator when ``None``) exactly as ``torch.nn.init`` does, so
the same seed gives the same weights in both.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "calculate_fan_in_and_fan_out",
    "calculate_gain",
    "default_init_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "xavier_normal_",
    "xavier_uniform_",
]

_UNIT_GAIN = {"linear", "conv1d", "conv2d", "conv3d", "sigmoid"}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain ``torch.nn.init.calculate_gain`` recommends for ``nonlinearity``: the factor that
    keeps the activations' scale through it. 1 for linear/conv/sigmoid, 5/3 for tanh, sqrt(2)
    for relu and ``sqrt(2 / (1 + slope²))`` for leaky_relu (``param`` is the negative slope,
    0.01 when ``None``)."""
    if nonlinearity in _UNIT_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    raise ValueError(
        f"unsupported nonlinearity {nonlinearity!r}: use one of linear, conv1d, conv2d, conv3d, "
        "sigmoid, tanh, relu, leaky_relu"
    )


def calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """The ``(fan_in, fan_out)`` of a weight, as torch computes it.

    A Linear weight is ``(out_features, in_features)``: each output sums ``in_features``
    products, so ``fan_in = in_features`` and ``fan_out = out_features``. A convolution
    weight is ``(out_channels, in_channels / groups, *kernel)``: each output sums over one
    receptive field of ``in_channels / groups * prod(kernel)`` inputs. In general, with
    ``receptive = prod(shape[2:])`` (1 for a 2-D tensor)::

        fan_in = shape[1] * receptive        fan_out = shape[0] * receptive

    A weight of shape ``(8, 3, 5, 7)`` has ``fan_in = 3 * 35 = 105`` and
    ``fan_out = 8 * 35 = 280``. Raise ``ValueError`` for a tensor of fewer than 2 dimensions
    (a bias has no fan-in: it is not a weight matrix).
    """
    if tensor.dim() < 2:
        raise ValueError(
            f"fan in and fan out need a weight of at least 2 dimensions, got shape "
            f"{tuple(tensor.shape)}: a bias has none; size it from its layer's weight instead"
        )
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor: Tensor, mode: str) -> int:
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"mode={mode!r} should be 'fan_in' or 'fan_out'")


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``tensor`` in place from ``U(-bound, bound)`` (He / Kaiming initialisation), like
    ``torch.nn.init.kaiming_uniform_``, and return it.

    ``fan`` is the fan-in (``mode="fan_in"``: keeps the forward activations' scale) or the
    fan-out (``mode="fan_out"``: keeps the gradients' scale), from
    ``calculate_fan_in_and_fan_out``; any other ``mode`` raises ``ValueError``. With
    ``gain = calculate_gain(nonlinearity, a)`` (``a`` is the leaky ReLU's negative slope)::

        std = gain / sqrt(fan)        bound = sqrt(3) * std

    (a uniform on ``[-b, b]`` has standard deviation ``b / sqrt(3)``). Draw with
    ``tensor.uniform_(-bound, bound, generator=generator)`` inside ``torch.no_grad()`` (the
    tensor may be a parameter that requires grad), so the same generator state gives exactly
    torch's numbers.
    """
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3) * std
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fill ``tensor`` in place from ``N(0, std²)`` with ``std = gain / sqrt(fan)``, like
    ``torch.nn.init.kaiming_normal_`` (see :func:`kaiming_uniform_` for ``fan`` and ``gain``)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def xavier_uniform_(
    tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """Fill ``tensor`` in place from ``U(-a, a)`` with
    ``a = gain * sqrt(6 / (fan_in + fan_out))``, like ``torch.nn.init.xavier_uniform_``."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


def xavier_normal_(
    tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """Fill ``tensor`` in place from ``N(0, std²)`` (Glorot / Xavier initialisation), like
    ``torch.nn.init.xavier_normal_``, and return it.

    Glorot & Bengio average the two constraints ``Var(w) = 1 / fan_in`` (steady activations)
    and ``Var(w) = 1 / fan_out`` (steady gradients) into ``Var(w) = 2 / (fan_in + fan_out)``::

        std = gain * sqrt(2 / (fan_in + fan_out))

    with the fans from ``calculate_fan_in_and_fan_out``. Draw with
    ``tensor.normal_(0.0, std, generator=generator)`` inside ``torch.no_grad()``.
    """
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)


def default_init_(
    weight: Tensor, bias: Tensor | None = None, generator: torch.Generator | None = None
) -> None:
    """torch's default initialisation of ``nn.Linear`` and ``nn.ConvNd`` (their
    ``reset_parameters``): ``kaiming_uniform_(weight, a=sqrt(5))``, which works out to
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, then the bias from the same range. Drawn in that
    order, so after ``torch.manual_seed(s)`` a layer gets exactly torch's weights."""
    kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    if bias is not None:
        fan_in, _ = calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        with torch.no_grad():
            bias.uniform_(-bound, bound, generator=generator)
