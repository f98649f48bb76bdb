"""Summary statistics of one tensor: what a network-debugging tool shows about every layer.

A layer's output or gradient is summarised by a handful of numbers (``TensorStats``): its size,
mean, spread and L2 norm, its largest magnitude, how much of it is exactly zero (dead ReLU
units), how much sits where a squashing nonlinearity is flat (saturated tanh or sigmoid), and
how many elements are NaN or infinite. Two tensors (or two summaries) are compared with a
relative difference, so the same check works for tiny gradients and large activations.

The ideas follow the usual "is my network healthy" checklist: Karpathy, "A Recipe for Training
Neural Networks" (2019), and Glorot & Bengio (2010) for saturated units and vanishing gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

__all__ = [
    "SATURATION",
    "TINY",
    "TensorStats",
    "finite_values",
    "histogram",
    "relative_difference",
    "saturation_for",
    "stats_difference",
    "tensor_stats",
]

# The floor under a relative difference's denominator: values this small count as zero.
TINY = 1e-12

# Where a squashing nonlinearity's output is so close to its bounds that its slope (and so the
# gradient through it) is nearly zero. Softmax only saturates at the top: an output >= 0.99
# means one entry takes all the probability mass; zeros are normal (masked attention).
SATURATION: dict[type[nn.Module], tuple[float, float]] = {
    nn.Tanh: (-0.99, 0.99),
    nn.Sigmoid: (0.01, 0.99),
    nn.Hardtanh: (-1.0, 1.0),
    nn.Hardsigmoid: (0.0, 1.0),
    nn.Softmax: (-1.0, 0.99),
}


@dataclass(frozen=True)
class TensorStats:
    """Summary of one tensor. ``mean``, ``std``, ``norm`` and ``abs_max`` are over its finite
    elements only (0.0 when there are none); the fractions are over all ``numel`` elements."""

    numel: int
    mean: float
    std: float  # population standard deviation (divides by n, not n - 1)
    norm: float  # L2 norm of all finite elements taken as one vector
    abs_max: float
    frac_zero: float  # fraction of elements exactly 0
    frac_saturated: float  # fraction at or beyond the saturation bounds (0.0 when none given)
    n_nan: int
    n_inf: int


def finite_values(x: Tensor) -> Float[Tensor, " n"]:
    """The finite elements of ``x`` (NaN and ±inf dropped) as a flat float64 tensor, detached.

    >>> finite_values(torch.tensor([[1.0, float("nan")], [float("-inf"), -2.0]]))
    tensor([ 1., -2.], dtype=torch.float64)
    """
    flat = x.detach().reshape(-1).to(torch.float64)
    return flat[torch.isfinite(flat)]


def tensor_stats(x: Tensor, saturation: tuple[float, float] | None = None) -> TensorStats:
    """Summarise ``x`` (any shape, any float dtype, possibly empty) as a ``TensorStats``.

    Compute in float64, without tracking gradients. ``numel`` counts every element;
    ``n_nan`` and ``n_inf`` count the NaN and the ±inf ones. ``mean``, ``std`` (population:
    divide by n), ``norm`` (L2) and ``abs_max`` are over the finite elements (see
    ``finite_values``), each 0.0 when no element is finite. ``frac_zero`` is the fraction of
    all elements exactly equal to 0; ``frac_saturated`` the fraction ``<= lo`` or ``>= hi``
    where ``saturation == (lo, hi)``, 0.0 when ``saturation`` is None. Both fractions are 0.0
    for an empty tensor.

    >>> s = tensor_stats(torch.tensor([0.0, 3.0, -4.0, float("inf")]), saturation=(-1.0, 1.0))
    >>> s.numel, s.mean, s.norm, s.abs_max, s.frac_zero, s.frac_saturated, s.n_inf
    (4, -0.3333333333333333, 5.0, 4.0, 0.25, 0.75, 1)
    """
    with torch.no_grad():
        flat = x.detach().reshape(-1).to(torch.float64)
        finite = finite_values(flat)
        numel = flat.numel()
        mean = std = norm = abs_max = 0.0
        if finite.numel() > 0:
            mean = finite.mean().item()
            std = finite.std(correction=0).item()
            norm = finite.norm().item()
            abs_max = finite.abs().max().item()
        frac_zero = frac_saturated = 0.0
        if numel > 0:
            frac_zero = (flat == 0).sum().item() / numel
            if saturation is not None:
                lo, hi = saturation
                frac_saturated = ((flat <= lo) | (flat >= hi)).sum().item() / numel
        return TensorStats(
            numel=numel,
            mean=mean,
            std=std,
            norm=norm,
            abs_max=abs_max,
            frac_zero=frac_zero,
            frac_saturated=frac_saturated,
            n_nan=int(torch.isnan(flat).sum().item()),
            n_inf=int(torch.isinf(flat).sum().item()),
        )


def saturation_for(module: nn.Module) -> tuple[float, float] | None:
    """The saturation bounds ``(lo, hi)`` of ``module``'s output, or None if it has none.

    A ``nn.Hardtanh`` (and its subclasses such as ``nn.ReLU6``) saturates at its own
    ``(min_val, max_val)``. Otherwise return the ``SATURATION`` entry of the first class in
    ``type(module).__mro__`` that has one (so subclasses of ``nn.Tanh`` count as tanh).

    >>> saturation_for(nn.Tanh()), saturation_for(nn.ReLU6()), saturation_for(nn.ReLU())
    ((-0.99, 0.99), (0.0, 6.0), None)
    """
    if isinstance(module, nn.Hardtanh):
        return (float(module.min_val), float(module.max_val))
    for cls in type(module).__mro__:
        if cls in SATURATION:
            return SATURATION[cls]
    return None


def histogram(
    x: Tensor, bins: int = 40, range: tuple[float, float] | None = None
) -> tuple[Int[Tensor, " bins"], Float[Tensor, " edges"]]:
    """Count ``x``'s finite values in ``bins`` equal-width bins, as ``numpy.histogram`` does.

    ``range=(lo, hi)`` defaults to the smallest and largest finite value; when ``lo == hi``
    widen it to ``(lo - 0.5, hi + 0.5)``, and use ``(0.0, 1.0)`` when no value is finite.
    The edges (``bins + 1`` of them, float64) are ``lo + i * ((hi - lo) / bins)`` with the last
    one set to exactly ``hi``. A value ``v`` falls in bin ``i`` when
    ``edges[i] <= v < edges[i + 1]``; the last bin also takes ``v == hi``; values outside
    ``[lo, hi]`` are not counted. Return ``(counts, edges)``, counts as int64.

    Raise ``ValueError`` if ``bins < 1`` or ``lo > hi``.

    >>> counts, edges = histogram(torch.tensor([0.0, 1.0, 1.0, 4.0, float("nan")]), bins=4)
    >>> counts, edges
    (tensor([1, 2, 0, 1]), tensor([0., 1., 2., 3., 4.], dtype=torch.float64))
    """
    if bins < 1:
        raise ValueError(f"bins={bins}: need at least one bin")
    values = finite_values(x)
    if range is not None:
        lo, hi = float(range[0]), float(range[1])
    elif values.numel() > 0:
        lo, hi = values.min().item(), values.max().item()
    else:
        lo, hi = 0.0, 1.0
    if lo > hi:
        raise ValueError(f"range=({lo}, {hi}): the lower end must not exceed the upper end")
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = lo + torch.arange(bins + 1, dtype=torch.float64) * ((hi - lo) / bins)
    edges[-1] = hi
    inside = values[(values >= lo) & (values <= hi)]
    # bucketize(right=True) - 1 is the i with edges[i] <= v < edges[i + 1]; v == hi -> last bin
    index = (torch.bucketize(inside, edges, right=True) - 1).clamp(max=bins - 1)
    counts = torch.bincount(index, minlength=bins)
    return counts, edges


def relative_difference(a: Tensor, b: Tensor) -> float:
    """How far ``a`` is from ``b``: ``max |a - b| / (max |b| + TINY)``, computed in float64.

    Elements that are equal in both (including the same infinity, and NaN in both) contribute
    0; a NaN in only one of them makes the result ``inf``, as does a shape mismatch (both
    show as NaN masks that ``torch.equal`` finds different); an infinity in only one of them
    gives ``inf`` through ``|a - b|``. ``max |b|`` is over
    ``b``'s finite elements (0 if none). Two empty tensors of the same shape give 0.0.

    >>> round(relative_difference(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0])), 9)
    0.5
    >>> relative_difference(torch.zeros(2), torch.zeros(3))
    inf
    """
    a64 = a.detach().to(torch.float64)
    b64 = b.detach().to(torch.float64)
    if not torch.equal(torch.isnan(a64), torch.isnan(b64)):
        return math.inf
    if a64.numel() == 0:
        return 0.0
    same = (a64 == b64) | torch.isnan(a64)
    diff = torch.where(same, 0.0, (a64 - b64).abs())
    finite_b = finite_values(b64)
    scale = finite_b.abs().max().item() if finite_b.numel() > 0 else 0.0
    return diff.max().item() / (scale + TINY)


def stats_difference(a: TensorStats, b: TensorStats) -> float:
    """How far summary ``a`` is from summary ``b`` when the tensors themselves are not kept.

    Return ``inf`` if ``numel``, ``n_nan`` or ``n_inf`` differ. Otherwise return the largest
    of three relative differences: of the means, ``|a.mean - b.mean| / (|b.mean| + b.std +
    TINY)`` (scaled by the spread too, as a mean near 0 is normal); of the standard
    deviations, ``|a.std - b.std| / (b.std + TINY)``; and of the norms,
    ``|a.norm - b.norm| / (b.norm + TINY)``.

    >>> s, wider = tensor_stats(torch.tensor([1.0, 3.0])), tensor_stats(torch.tensor([1.0, 5.0]))
    >>> stats_difference(s, s), round(stats_difference(wider, s), 9)
    (0.0, 1.0)
    """
    if (a.numel, a.n_nan, a.n_inf) != (b.numel, b.n_nan, b.n_inf):
        return math.inf
    return max(
        abs(a.mean - b.mean) / (abs(b.mean) + b.std + TINY),
        abs(a.std - b.std) / (b.std + TINY),
        abs(a.norm - b.norm) / (b.norm + TINY),
    )
