"""Vectorised algorithms: classic loops rewritten as whole-array operations.

Each function here does its work inside torch, with no Python loop over the data: compare all
pairs by broadcasting, turn "for each element, look back" into a mask or a cumulative sum, sort
to bring equal values together, and count by comparing against ``arange``. The exercises are in
the spirit of numpy-100 (Rougier) and of Jeremy Howard's "no loops" lessons.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int, Real
from torch import Tensor

from mlab.errors import ShapeError

__all__ = [
    "bincount",
    "categorical_from_uniform",
    "count_uniques",
    "first_nonzero",
    "histogram",
    "inverse_permutation",
    "moving_average",
    "pairwise_distances",
    "running_max",
    "sample_categorical",
    "topk_accuracy",
    "two_sum_pairs",
]


def two_sum_pairs(x: Int[Tensor, " n"], target: int) -> Int[Tensor, "k 2"]:
    """Every pair of positions ``i < j`` with ``x[i] + x[j] == target``, as rows ``[i, j]`` of
    an int64 tensor in lexicographic order (by ``i``, then ``j``).

    No Python loop: build all pairs at once. Raise ``ShapeError`` unless ``x`` is 1-D.

    >>> two_sum_pairs(torch.tensor([1, 3, 2, 2]), 4)
    tensor([[0, 1],
            [2, 3]])
    """
    if x.ndim != 1:
        raise ShapeError(f"x has shape {tuple(x.shape)}; two_sum_pairs needs a 1-D tensor")
    i, j = torch.triu_indices(len(x), len(x), offset=1)
    hit = x[i] + x[j] == target
    return torch.stack((i[hit], j[hit]), dim=1)


def running_max(x: Real[Tensor, " n"]) -> Real[Tensor, " n"]:
    """The prefix maximum ``out[i] = max(x[0], ..., x[i])``, like ``torch.cummax(x, 0).values``
    but without ``cummax`` (or any other cumulative op) and without a Python loop.

    An empty input gives an empty output.

    >>> running_max(torch.tensor([1.0, 3.0, 2.0, 5.0]))
    tensor([1., 3., 3., 5.])
    """
    if len(x) == 0:
        return x.clone()
    idx = torch.arange(len(x))
    # row i holds x[j] where j <= i, and x[0] (never larger than the answer) elsewhere
    return torch.where(idx <= idx[:, None], x, x[:1]).amax(dim=1)


def bincount(x: Int[Tensor, " n"], minlength: int = 0) -> Int[Tensor, " bins"]:
    """How many times each value ``0, 1, 2, ...`` occurs in ``x``, like ``torch.bincount``
    but without it (nor ``histc``, ``unique`` or a Python loop).

    The output is int64 with length ``max(minlength, x.max() + 1)`` (``minlength`` for an empty
    ``x``). Raise ``ValueError`` if ``x`` holds a negative value.

    >>> bincount(torch.tensor([1, 3, 1]))
    tensor([0, 2, 0, 1])
    """
    if bool((x < 0).any()):
        raise ValueError(f"bincount counts non-negative integers; x has min {int(x.min())}")
    size = max(minlength, int(x.max()) + 1) if len(x) else minlength
    # Each value adds one to its own bin: O(n) work, unlike comparing every value with every
    # bin (an n-by-size matrix), which is simple but slower than a Python loop at scale.
    counts = torch.zeros(size, dtype=torch.int64)
    return counts.index_add_(0, x.long(), torch.ones(len(x), dtype=torch.int64))


def histogram(x: Float[Tensor, " n"], bins: int, lo: float, hi: float) -> Int[Tensor, " bins"]:
    """Count the values of ``x`` in ``bins`` equal-width bins spanning ``[lo, hi]``, like
    ``torch.histc(x, bins, lo, hi)`` but without it (nor ``bincount`` or a Python loop).

    Bin ``b`` holds ``lo + b * w <= v < lo + (b + 1) * w`` with ``w = (hi - lo) / bins``; the
    last bin also holds ``v == hi``; values outside ``[lo, hi]`` are not counted. The output is
    int64. Raise ``ValueError`` unless ``bins >= 1`` and ``lo < hi``.
    """
    if bins < 1 or not lo < hi:
        raise ValueError(f"need bins >= 1 and lo < hi; got bins={bins}, lo={lo}, hi={hi}")
    inside = x[(x >= lo) & (x <= hi)]
    index = ((inside - lo) / (hi - lo) * bins).long().clamp(max=bins - 1)
    counts = torch.zeros(bins, dtype=torch.int64)
    return counts.index_add_(0, index, torch.ones(len(index), dtype=torch.int64))


def count_uniques(x: Real[Tensor, " n"]) -> tuple[Real[Tensor, " u"], Int[Tensor, " u"]]:
    """The distinct values of ``x`` in increasing order, and how often each occurs: what
    ``torch.unique(x, return_counts=True)`` returns, but without ``unique`` (or
    ``unique_consecutive``, ``bincount`` or a Python loop).

    Sort, mark where each run of equal values starts, and take differences of the starts.

    >>> count_uniques(torch.tensor([3, 1, 3, 3]))
    (tensor([1, 3]), tensor([1, 3]))
    """
    s = x.sort().values
    is_start = torch.ones(len(s), dtype=torch.bool)
    is_start[1:] = s[1:] != s[:-1]
    starts = is_start.nonzero().flatten()
    return s[starts], torch.diff(starts, append=torch.tensor([len(s)]))


def topk_accuracy(
    logits: Float[Tensor, "batch classes"], labels: Int[Tensor, " batch"], k: int
) -> float:
    """The fraction of rows whose label is among the ``k`` highest-scoring classes.

    Ties count in the label's favour: a row is correct when fewer than ``k`` classes score
    strictly higher than its label. Raise ``ValueError`` unless ``1 <= k <= classes``.
    """
    if not 1 <= k <= logits.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the number of classes {logits.shape[1]}")
    label_scores = logits.gather(1, labels[:, None])
    rank = (logits > label_scores).sum(dim=1)
    return (rank < k).float().mean().item()


def pairwise_distances(x: Float[Tensor, "n d"], y: Float[Tensor, "m d"]) -> Float[Tensor, "n m"]:
    """Euclidean distances between every row of ``x`` and every row of ``y``:
    ``out[i, j] = ||x[i] - y[j]||``, like ``torch.cdist(x, y)`` but without it (nor
    ``torch.norm``-style helpers over pairs, or a Python loop), and without building the
    ``(n, m, d)`` tensor of differences that part 3's ``pairwise_sq_distances`` builds.

    Expand the square: ``||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b``. The cross terms for every
    pair are one matrix product, so memory is ``n * m`` instead of ``n * m * d`` (this is how
    ``torch.cdist`` handles large inputs). Rounding can leave a zero distance slightly
    negative before the square root: clamp it at 0.

    Raise ``ShapeError`` if the rows have different lengths.
    """
    if x.shape[1] != y.shape[1]:
        raise ShapeError(
            f"x has rows of length {x.shape[1]} but y of {y.shape[1]}; "
            "both need the same number of features"
        )
    sq = (x * x).sum(dim=1)[:, None] + (y * y).sum(dim=1)[None, :] - 2 * x @ y.T
    return sq.clamp_min(0).sqrt()


def categorical_from_uniform(
    probs: Float[Tensor, "batch classes"], u: Float[Tensor, "batch n_samples"]
) -> Int[Tensor, "batch n_samples"]:
    """Turn uniform numbers into draws from each row's categorical distribution (inverse-CDF
    sampling): with ``cdf`` the cumulative sum of row ``b`` and ``v = u[b, s] * cdf[-1]``,
    ``out[b, s]`` is the class ``c`` with ``cdf[c - 1] <= v < cdf[c]``.

    Rows need not sum to 1 (scaling by the row total normalises them); every ``u`` is in
    ``[0, 1)``. A class of probability 0 is never chosen, even for ``u == 0``. Returns int64.
    No Python loop: ``torch.searchsorted`` finds every class at once. Raise ``ShapeError``
    unless ``probs`` and ``u`` are 2-D with the same number of rows, and ``ValueError`` if a
    probability is negative.

    >>> categorical_from_uniform(torch.tensor([[0.25, 0.0, 0.75]]), torch.tensor([[0.0, 0.3]]))
    tensor([[0, 2]])
    """
    if probs.ndim != 2 or u.ndim != 2 or len(u) != len(probs):
        raise ShapeError(
            f"probs has shape {tuple(probs.shape)} and u {tuple(u.shape)}; expected "
            "(batch, classes) and (batch, n_samples)"
        )
    if bool((probs < 0).any()):
        raise ValueError(f"probabilities must be non-negative; probs has min {float(probs.min())}")
    cdf = probs.cumsum(dim=1)
    # right=True: v equal to a cumulative sum belongs to the next class, so an empty class
    # (cdf[c - 1] == cdf[c]) holds no v
    return torch.searchsorted(cdf, u * cdf[:, -1:], right=True)


def sample_categorical(
    probs: Float[Tensor, "batch classes"],
    n_samples: int,
    generator: torch.Generator | None = None,
) -> Int[Tensor, "batch n_samples"]:
    """Draw ``n_samples`` independent class indices from each row's categorical distribution,
    without ``torch.multinomial`` or ``torch.distributions``.

    Make all the uniform numbers with one call to ``torch.rand`` using ``generator`` (and the
    dtype of ``probs``), then hand them to :func:`categorical_from_uniform`, which also
    validates ``probs``. Returns int64 of shape ``(batch, n_samples)``.
    """
    u = torch.rand(len(probs), n_samples, generator=generator, dtype=probs.dtype)
    return categorical_from_uniform(probs, u)


def moving_average(x: Float[Tensor, "*batch n"], window: int) -> Float[Tensor, "*batch n_windows"]:
    """The mean of every run of ``window`` consecutive values along the last axis,
    ``out[..., i] = mean(x[..., i : i + window])``, for ``n - window + 1`` positions (numpy's
    ``convolve(x, ones(window) / window, "valid")`` on each row). Use one cumulative sum, no
    loop.

    Raise ``ValueError`` unless ``1 <= window <= n``.

    >>> moving_average(torch.tensor([1.0, 2.0, 3.0, 6.0]), 2)
    tensor([1.5000, 2.5000, 4.5000])
    """
    if not 1 <= window <= x.shape[-1]:
        raise ValueError(f"window={window} must be between 1 and n={x.shape[-1]}")
    c = torch.cat((x.new_zeros(*x.shape[:-1], 1), x.cumsum(dim=-1)), dim=-1)
    return (c[..., window:] - c[..., :-window]) / window


def first_nonzero(x: Float[Tensor, "rows cols"]) -> Int[Tensor, " rows"]:
    """The column of the first nonzero entry in each row, or ``-1`` for a row of zeros.

    No Python loop. Raise ``ShapeError`` unless ``x`` is 2-D.

    >>> first_nonzero(torch.tensor([[0, 5, 0, 7], [0, 0, 0, 0], [2, 0, 0, 0]]))
    tensor([ 1, -1,  0])
    """
    if x.ndim != 2:
        raise ShapeError(f"x has shape {tuple(x.shape)}; first_nonzero needs a matrix")
    leading_zeros = ((x != 0).cumsum(dim=1) == 0).sum(dim=1)
    return torch.where(leading_zeros < x.shape[1], leading_zeros, -1)


def inverse_permutation(perm: Int[Tensor, " n"]) -> Int[Tensor, " n"]:
    """The permutation that undoes ``perm``: ``out[perm[i]] = i``, so ``x[perm][out] == x``.

    ``perm`` is int64. Compute it with one indexed assignment (a scatter) and no loop
    (``argsort`` gives the same answer in O(n log n) instead of O(n)). Raise ``ValueError``
    if ``perm`` is not a permutation of ``0, ..., n - 1``.

    >>> inverse_permutation(torch.tensor([2, 0, 1]))
    tensor([1, 2, 0])
    """
    if bool((perm.sort().values != torch.arange(len(perm))).any()):
        raise ValueError(f"perm={perm.tolist()} is not a permutation of 0..{len(perm) - 1}")
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(len(perm))
    return inverse
