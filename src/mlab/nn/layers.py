"""The layers of a ResNet as ``torch.nn.Module`` subclasses, each forward written from tensor
primitives and :mod:`mlab.nn.functional` (course day w1d3, part 3).

Registration (parameters, buffers, children, ``state_dict``, ``.train()``/``.eval()``) is
torch's own ``nn.Module``; a later day builds that machinery too. Constructor signatures and
parameter / buffer names and shapes are ``torch.nn``'s, so a state dict moves between a torch
model and ours with ``load_state_dict(..., strict=True)`` in both directions.

Normalisation layers: Ioffe & Szegedy, "Batch Normalization" (2015,
https://arxiv.org/abs/1502.03167); Ba, Kiros & Hinton, "Layer Normalization" (2016,
https://arxiv.org/abs/1607.06450); Wu & He, "Group Normalization" (2018,
https://arxiv.org/abs/1803.08494).

The file reads bottom-up: a shape check, the weight layers, the normalisations, the
parameter-free layers, and the container.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from mlab.errors import ShapeError
from mlab.nn import functional, init
from mlab.nn.functional import IntPair, _pair

__all__ = [
    "AdaptiveAvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "Flatten",
    "GroupNorm",
    "LayerNorm",
    "Linear",
    "MaxPool2d",
    "ReLU",
    "Sequential",
]


def _expect_channels(x: Tensor, channels: int, layer: str, ndim: int | None = None) -> None:
    """Raise ``ShapeError`` unless ``x`` is ``(batch, channels, ...)``: exactly ``ndim``-D when
    ``ndim`` is given, else at least 2-D."""
    if (x.ndim < 2 if ndim is None else x.ndim != ndim) or x.shape[1] != channels:
        dims = f"{ndim}-D" if ndim is not None else "at least 2-D"
        raise ShapeError(
            f"{layer} needs a {dims} input of shape (batch, {channels}, ...) but got shape "
            f"{tuple(x.shape)}: dim 1 must hold the {channels} channels the layer was made for "
            "(check the previous layer's output channels; add a missing batch dimension with "
            "x.unsqueeze(0))"
        )


# ----------------------------------------------------------------------------------------------
# Layers with weights


class Linear(nn.Module):
    """``y = x @ weight.T + bias``, like ``torch.nn.Linear``."""

    weight: Tensor
    bias: Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Store ``in_features`` and ``out_features`` as attributes; register the parameters
        ``weight`` of shape ``(out_features, in_features)`` and, when ``bias``, ``bias`` of
        shape ``(out_features,)`` (else ``self.register_parameter("bias", None)``, as torch
        does, so that ``self.bias is None``). Make them with
        ``nn.Parameter(torch.empty(..., device=device, dtype=dtype))`` and fill them by calling
        ``self.reset_parameters()``."""
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(
            torch.empty(out_features, in_features, device=device, dtype=dtype)
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default initialisation: ``init.default_init_(self.weight, self.bias)``
        (weight and bias uniform in ``±1/sqrt(in_features)``, drawn from the global generator
        in torch's order, so ``torch.manual_seed(s)`` gives exactly ``nn.Linear``'s weights)."""
        init.default_init_(self.weight, self.bias)

    def forward(
        self, x: Float[Tensor, "*batch in_features"]
    ) -> Float[Tensor, "*batch out_features"]:
        """``x @ weight.T``, plus ``bias`` when there is one. Any number of leading dims.

        Raise ``ShapeError`` (naming both shapes) unless the last dim of ``x`` is
        ``in_features``, e.g. a ``(batch, 1, 28, 28)`` image batch needs ``Flatten()`` first.
        """
        if x.shape[-1:] != (self.in_features,):
            raise ShapeError(
                f"Linear({self.in_features}, {self.out_features}) needs input of shape "
                f"(..., {self.in_features}) but got {tuple(x.shape)}: the last dim must be "
                "in_features (flatten images first with Flatten())"
            )
        out = x @ self.weight.T
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        """torch's text: ``"in_features=3, out_features=4, bias=True"``."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Conv2d(nn.Module):
    """2-D convolution, like ``torch.nn.Conv2d`` (zero padding only)."""

    weight: Tensor
    bias: Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Store every argument as an attribute as torch does: the channel counts and
        ``groups`` as given, ``kernel_size``, ``stride``, ``padding`` and ``dilation`` as
        ``(height, width)`` pairs (``_pair(3) == (3, 3)``), ``padding_mode``. Register
        ``weight`` of shape ``(out_channels, in_channels // groups, kh, kw)`` (each output
        channel sees only its group's input channels) and ``bias`` of shape
        ``(out_channels,)`` or ``register_parameter("bias", None)``, created with
        ``torch.empty(..., device=device, dtype=dtype)`` and filled by
        ``self.reset_parameters()``.

        Raise ``ValueError`` when ``groups`` does not divide both ``in_channels`` and
        ``out_channels`` (say which), and when ``padding_mode`` is not ``"zeros"`` (the only
        mode here)."""
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode={padding_mode!r}: only 'zeros' is supported")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.padding_mode = padding_mode
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default initialisation: ``init.default_init_(self.weight, self.bias)``
        (uniform in ``±1/sqrt(fan_in)``, ``fan_in = in_channels // groups * kh * kw``)."""
        init.default_init_(self.weight, self.bias)

    def forward(
        self, x: Float[Tensor, "batch in_channels height width"]
    ) -> Float[Tensor, "batch out_channels out_height out_width"]:
        """The library's ``functional.conv2d`` (the same computation as your part 1 answer)
        with this layer's weight, bias, stride, padding, dilation and groups. It raises
        ``ShapeError`` for an input that is not 4-D or has the wrong number of channels."""
        return functional.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )

    def extra_repr(self) -> str:
        """Every setting: ``"3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0), ..."``."""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, bias={self.bias is not None}"
        )


# ----------------------------------------------------------------------------------------------
# Normalisation


class BatchNorm2d(nn.Module):
    """Batch normalisation over ``(batch, height, width)`` for each channel, like
    ``torch.nn.BatchNorm2d``, with running statistics for evaluation."""

    weight: Tensor
    bias: Tensor
    running_mean: Tensor
    running_var: Tensor
    num_batches_tracked: Tensor

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        """Store the five settings before ``device`` as attributes of the same names. Register
        the parameters ``weight`` (ones, shape ``(num_features,)``) when ``affine``, and
        ``bias`` (zeros) when ``affine`` and ``bias``; register each missing one as ``None``
        (``self.register_parameter(name, None)``). When ``track_running_stats``, register the
        *buffers* ``running_mean`` (zeros), ``running_var`` (ones), both ``(num_features,)``, and
        ``num_batches_tracked`` (``torch.tensor(0)``, int64, on ``device``) with
        ``self.register_buffer(name, tensor)``; else register all three as ``None``. Pass
        ``device`` and ``dtype`` to every float tensor."""
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = nn.Parameter(torch.zeros(num_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer(
                "running_mean", torch.zeros(num_features, device=device, dtype=dtype)
            )
            self.register_buffer(
                "running_var", torch.ones(num_features, device=device, dtype=dtype)
            )
            self.register_buffer("num_batches_tracked", torch.tensor(0, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(
        self, x: Float[Tensor, "batch channels height width"]
    ) -> Float[Tensor, "batch channels height width"]:
        """Normalise each channel: ``(x - mean) / sqrt(var + eps)``, then ``* weight + bias``
        per channel for those of ``weight`` and ``bias`` that exist.

        *Which statistics.* In training mode (``self.training``), and in evaluation mode when
        there are no running statistics, ``mean`` and ``var`` are the batch's: over dims
        ``(0, 2, 3)``, the variance *biased* (divide by ``n``, ``correction=0``). Otherwise
        (evaluation with running statistics) use ``running_mean`` and ``running_var``.

        *Updating the running statistics* happens only in training mode with
        ``track_running_stats``, without recording gradients: add 1 to
        ``num_batches_tracked``; the factor ``m`` is ``momentum``, or
        ``1 / num_batches_tracked`` when ``momentum is None`` (a plain average of all batches
        so far); then ``running = (1 - m) * running + m * batch_stat`` in place, with the
        batch's *unbiased* variance (divide by ``n - 1``, ``correction=1``) for
        ``running_var``, as torch does.

        Raise ``ShapeError`` unless ``x`` is 4-D with ``num_features`` channels
        (``_expect_channels(x, self.num_features, "BatchNorm2d", 4)``), and ``ValueError`` when
        the batch statistics would come from a single value per channel (``x.numel()`` equals
        the number of channels).
        """
        _expect_channels(x, self.num_features, "BatchNorm2d", 4)
        if self.training or not self.track_running_stats:
            if x.numel() == x.shape[1]:
                raise ValueError(
                    f"BatchNorm2d needs more than 1 value per channel in training mode, got "
                    f"input shape {tuple(x.shape)}: use a larger batch, or call .eval()"
                )
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), correction=0)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    m = (
                        1 / float(self.num_batches_tracked)
                        if self.momentum is None
                        else self.momentum
                    )
                    self.running_mean.lerp_(mean, m)
                    self.running_var.lerp_(x.var(dim=(0, 2, 3), correction=1), m)
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + self.eps)
        if self.weight is not None:
            out = out * self.weight[:, None, None]
        if self.bias is not None:
            out = out + self.bias[:, None, None]
        return out

    def extra_repr(self) -> str:
        """torch's text: ``"8, eps=1e-05, momentum=0.1, affine=True, bias=True,
        track_running_stats=True"`` (one line)."""
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class LayerNorm(nn.Module):
    """Normalisation over the last dims of each sample, like ``torch.nn.LayerNorm``."""

    weight: Tensor
    bias: Tensor

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...] | list[int] | torch.Size,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Store ``normalized_shape`` as a tuple (an int ``d`` means ``(d,)``), ``eps`` and
        ``elementwise_affine``. When ``elementwise_affine``, register ``weight`` (ones of
        ``normalized_shape``), else ``None``; register ``bias`` (zeros) only when both
        ``elementwise_affine`` and ``bias``, else ``None``."""
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(normalized_shape, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        if elementwise_affine and bias:
            self.bias = nn.Parameter(torch.zeros(normalized_shape, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
        """Normalise over the last ``len(normalized_shape)`` dims of each sample:
        ``(x - mean) / sqrt(var + eps)`` with the biased variance (``correction=0``), then
        ``* weight`` and ``+ bias`` (elementwise, broadcasting) for those that exist. The
        statistics are always the sample's own: no running statistics, no train/eval
        difference.

        Raise ``ShapeError`` unless ``x``'s trailing dims equal ``normalized_shape``.
        """
        k = len(self.normalized_shape)
        if x.shape[-k:] != self.normalized_shape:
            raise ShapeError(
                f"LayerNorm{self.normalized_shape} needs input of shape "
                f"(..., {', '.join(map(str, self.normalized_shape))}) but got {tuple(x.shape)}: "
                "the trailing dims must equal normalized_shape"
            )
        dims = tuple(range(-k, 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, keepdim=True, correction=0)
        out = (x - mean) / torch.sqrt(var + self.eps)
        if self.weight is not None:
            out = out * self.weight
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        """torch's text: ``"(4, 5), eps=1e-05, elementwise_affine=True, bias=True"``."""
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


class GroupNorm(nn.Module):
    """Normalisation over groups of channels of each sample, like ``torch.nn.GroupNorm``."""

    weight: Tensor
    bias: Tensor

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: Any = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        """Store ``num_groups``, ``num_channels``, ``eps`` and ``affine``. Register ``weight``
        (ones, ``(num_channels,)``) when ``affine``, else ``None``; ``bias`` (zeros) when
        ``affine`` and ``bias``, else ``None``. Raise ``ValueError`` unless ``num_groups``
        divides ``num_channels``."""
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"num_groups={num_groups} must divide num_channels={num_channels}")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = nn.Parameter(torch.zeros(num_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)

    def forward(
        self, x: Float[Tensor, "batch channels *spatial"]
    ) -> Float[Tensor, "batch channels *spatial"]:
        """Split the channels of each sample into ``num_groups`` consecutive groups and
        normalise each group over its channels and all spatial positions together:
        ``(x - mean) / sqrt(var + eps)``, biased variance. Then ``* weight`` and ``+ bias``
        per *channel* (not per group), for those that exist. Any number of spatial dims
        (``(batch, channels)`` included); like LayerNorm, no running statistics.

        Raise ``ShapeError`` unless ``x`` is ``(batch, num_channels, ...)``
        (``_expect_channels(x, self.num_channels, "GroupNorm")``).
        """
        _expect_channels(x, self.num_channels, "GroupNorm")
        groups = x.reshape(
            x.shape[0], self.num_groups, -1
        )  # batch group (channels_per_group*spatial)
        mean = groups.mean(dim=-1, keepdim=True)
        var = groups.var(dim=-1, keepdim=True, correction=0)
        out = ((groups - mean) / torch.sqrt(var + self.eps)).reshape(x.shape)
        per_channel = (-1,) + (1,) * (x.ndim - 2)  # broadcasts (channels,) over spatial dims
        if self.weight is not None:
            out = out * self.weight.reshape(per_channel)
        if self.bias is not None:
            out = out + self.bias.reshape(per_channel)
        return out

    def extra_repr(self) -> str:
        """torch's text: ``"2, 6, eps=1e-05, affine=True, bias=True"``."""
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )


# ----------------------------------------------------------------------------------------------
# Layers without parameters


class ReLU(nn.Module):
    """``max(x, 0)`` elementwise, like ``torch.nn.ReLU``."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp_(min=0) if self.inplace else x.clamp(min=0)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class MaxPool2d(nn.Module):
    """Max pooling, like ``torch.nn.MaxPool2d`` (``kernel_size``, ``stride``, ``padding``)."""

    def __init__(
        self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(
        self, x: Float[Tensor, "batch channels height width"]
    ) -> Float[Tensor, "batch channels out_height out_width"]:
        return functional.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(nn.Module):
    """Average pooling to a fixed output size, like ``torch.nn.AdaptiveAvgPool2d``."""

    def __init__(self, output_size: IntPair) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(
        self, x: Float[Tensor, "batch channels height width"]
    ) -> Float[Tensor, "batch channels out_height out_width"]:
        return functional.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Flatten(nn.Module):
    """Merge dims ``start_dim`` to ``end_dim`` (inclusive) into one, like ``torch.nn.Flatten``."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        """Store ``start_dim`` and ``end_dim``."""
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Tensor) -> Tensor:
        """``x`` with dims ``start_dim`` .. ``end_dim`` (both included; negative dims count from
        the end) merged into one of their product's size, with ``reshape`` (not ``flatten``).
        ``(2, 3, 4, 5)`` with the defaults gives ``(2, 60)``; with ``start_dim=1, end_dim=2``
        ``(2, 12, 5)``. Zero-size dims must work (``-1`` cannot be inferred there: use
        ``math.prod``).

        Raise ``IndexError`` when either dim is outside ``[-x.ndim, x.ndim)``, and
        ``ValueError`` when ``start_dim`` comes after ``end_dim`` (once both are made
        non-negative).
        """
        ndim = x.ndim
        if not (-ndim <= self.start_dim < ndim and -ndim <= self.end_dim < ndim):
            raise IndexError(
                f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}) on a {ndim}-D input "
                f"of shape {tuple(x.shape)}: dims must lie in [{-ndim}, {ndim - 1}]"
            )
        start, end = self.start_dim % ndim, self.end_dim % ndim
        if start > end:
            raise ValueError(
                f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim}) on a {ndim}-D "
                "input: start_dim comes after end_dim"
            )
        shape = x.shape
        return x.reshape(*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])

    def extra_repr(self) -> str:
        """torch's text: ``"start_dim=1, end_dim=-1"``."""
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# ----------------------------------------------------------------------------------------------
# Container


class Sequential(nn.Module):
    """Modules applied one after another, like ``torch.nn.Sequential``."""

    def __init__(self, *modules: nn.Module) -> None:
        """Register each module as a child named by its position, ``"0"``, ``"1"``, ...
        (``self.add_module(name, module)``), so that its parameters appear in
        ``named_parameters()`` and ``state_dict()`` as ``"0.weight"``, ``"1.bias"``, ...,
        exactly as in ``nn.Sequential``. (A plain Python list of modules would hide them from
        torch: no parameters, no ``.eval()``, an empty state dict.)"""
        super().__init__()
        for index, module in enumerate(modules):
            self.add_module(str(index), module)

    def __len__(self) -> int:
        """The number of modules."""
        return len(self._modules)

    def __getitem__(self, index: int) -> Any:
        """The module at ``index``, negative indices counting from the end, like a list.
        Raise ``IndexError`` naming the index and the length when it is out of range."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a Sequential of {len(self)}")
        return self._modules[str(index % len(self))]

    def forward(self, x: Any) -> Any:
        """Call each module in order on the previous one's output. The same module may appear
        twice: call it twice (``self.children()`` would list it once)."""
        for index in range(len(self)):
            x = self[index](x)
        return x
