"""Power laws for loss against model size (or data): ``L(N) = a * N**-alpha + c``, fitted by
least squares, with bootstrap uncertainty.

Kaplan et al. (2020, "Scaling Laws for Neural Language Models", https://arxiv.org/abs/2001.08361)
fit ``L(N) = (N_c / N)**alpha_N`` (no floor) to non-embedding parameter counts; Hoffmann et al.
(2022, "Training Compute-Optimal Large Language Models", https://arxiv.org/abs/2203.15556) fit
``L(N, D) = E + A / N**alpha + B / D**beta``: the floor ``E`` is the loss no model reaches (the
entropy of text). One variable at a time that is our ``a * N**-alpha + c``.

The fit is *variable projection* (Golub & Pereyra, 1973): for a fixed ``alpha`` the model is
linear in ``(a, c)``, so the best ``a`` and ``c`` are a straight-line regression of the losses
on ``N**-alpha``; what is left is a one-dimensional search over ``alpha`` (Brent's bounded
method, ``scipy.optimize.minimize_scalar``).
No starting point to guess, no local minimum in ``(a, c)``: the same least-squares problem as
``scipy.optimize.curve_fit`` solves, solved more robustly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from scipy.optimize import minimize_scalar
from torch import Tensor

from mlab.errors import ShapeError

__all__ = [
    "PowerLawFit",
    "bootstrap_power_law",
    "fit_power_law",
    "line_fit",
    "percentile_interval",
    "power_law",
]


@dataclass(frozen=True)
class PowerLawFit:
    """``L(N) = a * N**-alpha + c``, and its sum of squared residuals on the fitted points."""

    a: float
    alpha: float
    c: float
    sse: float

    def predict(self, n: Float[Tensor, " points"]) -> Float[Tensor, " points"]:
        return power_law(n, self.a, self.alpha, self.c)


def power_law(n: Float[Tensor, " points"], a: float, alpha: float, c: float) -> Tensor:
    """``a * n**-alpha + c``, elementwise."""
    return a * n.double() ** -alpha + c


def line_fit(
    x: Float[Tensor, "*lines points"], y: Float[Tensor, " points"]
) -> tuple[Tensor, Tensor, Tensor]:
    """The least-squares line ``y = slope * x + intercept`` along the last dim (one line per
    row of ``x``): ``(slope, intercept, sse)``, each of ``x``'s shape without its last dim."""
    xm, ym = x.mean(-1, keepdim=True), y.mean()
    slope = ((x - xm) * (y - ym)).sum(-1, keepdim=True) / ((x - xm) ** 2).sum(-1, keepdim=True)
    intercept = ym - slope * xm
    sse = ((y - slope * x - intercept) ** 2).sum(-1)
    return slope.squeeze(-1), intercept.squeeze(-1), sse


def _check_points(n: Tensor, loss: Tensor) -> None:
    if n.ndim != 1 or n.shape != loss.shape:
        raise ShapeError(
            f"n has shape {tuple(n.shape)} and loss {tuple(loss.shape)}: pass two 1-d tensors "
            "of the same length (one model size and its loss per run)"
        )
    if bool((n <= 0).any()):
        raise ValueError(f"n={n.tolist()}: sizes must be positive (a power law needs N > 0)")
    if len(torch.unique(n)) < 3:
        raise ValueError(
            f"n={n.tolist()} has {len(torch.unique(n))} distinct sizes: fitting a, alpha and "
            "c needs at least 3"
        )


def fit_power_law(
    n: Float[Tensor, " points"], loss: Float[Tensor, " points"], max_alpha: float = 3.0
) -> PowerLawFit:
    """Fit ``loss ~ a * n**-alpha + c`` by least squares (minimise the sum of squared
    residuals ``sse``) with ``1e-3 <= alpha <= max_alpha``; return a :class:`PowerLawFit`.

    Variable projection: for a fixed ``alpha`` the model is a straight line in
    ``x = n**-alpha``, so :func:`line_fit` of ``loss`` on ``x`` gives the best ``a`` (its
    slope) and ``c`` (its intercept), and its ``sse`` is the profile ``sse(alpha)``. Minimise
    that one-dimensional function with
    ``scipy.optimize.minimize_scalar(sse, bounds=(1e-3, max_alpha), method="bounded",
    options={"xatol": 1e-10})``; then return ``a``, ``alpha``, ``c`` and ``sse`` at the
    ``alpha`` it found. Work in float64 whatever the inputs' dtype.

    Raise ``ShapeError`` unless ``n`` and ``loss`` are 1-d of the same length, and
    ``ValueError`` when a size is not positive or fewer than 3 sizes are distinct.

    >>> n = torch.tensor([1e3, 1e4, 1e5, 1e6])
    >>> fit = fit_power_law(n, 5.0 * n**-0.3 + 1.5)
    >>> round(fit.a, 4), round(fit.alpha, 6), round(fit.c, 6)
    (5.0, 0.3, 1.5)
    """
    _check_points(n, loss)
    n, loss = n.double(), loss.double()

    def sse(alpha: float) -> float:
        return float(line_fit(n**-alpha, loss)[2])

    best = minimize_scalar(
        sse, bounds=(1e-3, max_alpha), method="bounded", options={"xatol": 1e-10}
    )
    alpha = float(best.x)
    slope, intercept, err = line_fit(n**-alpha, loss)
    return PowerLawFit(float(slope), alpha, float(intercept), float(err))


def bootstrap_power_law(
    n: Float[Tensor, " points"],
    loss: Float[Tensor, " points"],
    n_boot: int,
    generator: torch.Generator,
) -> Float[Tensor, "n_boot 3"]:
    """Refit the power law on ``n_boot`` bootstrap resamples of the runs; return each
    resample's ``(a, alpha, c)`` as a row of a float64 tensor.

    A resample draws ``len(n)`` runs with replacement:
    ``idx = torch.randint(len(n), (len(n),), generator=generator)``; a draw with fewer than 3
    distinct sizes cannot be fitted, so draw again (with the same generator) until one has.
    Fit each with :func:`fit_power_law`. The spread of the rows is the uncertainty of the fit
    (Efron's bootstrap): :func:`percentile_interval` turns it into confidence intervals.

    Raise ``ValueError`` when ``n_boot < 1``; the inputs are checked as ``fit_power_law``
    checks them.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot}: draw at least one bootstrap resample")
    _check_points(n, loss)
    rows = []
    for _ in range(n_boot):
        idx = torch.randint(len(n), (len(n),), generator=generator)
        while len(torch.unique(n[idx])) < 3:
            idx = torch.randint(len(n), (len(n),), generator=generator)
        fit = fit_power_law(n[idx], loss[idx])
        rows.append([fit.a, fit.alpha, fit.c])
    return torch.tensor(rows, dtype=torch.float64)


def percentile_interval(
    samples: Float[Tensor, " draws"], level: float = 0.95
) -> tuple[float, float]:
    """The bootstrap percentile interval: the ``(1 - level) / 2`` and ``(1 + level) / 2``
    quantiles of ``samples`` (linear interpolation, as ``numpy.percentile``)."""
    if not 0 < level < 1:
        raise ValueError(f"level={level}: a confidence level is between 0 and 1, e.g. 0.95")
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    low, high = torch.quantile(samples.double(), q).tolist()
    return low, high
