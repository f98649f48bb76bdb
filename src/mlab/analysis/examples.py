"""Which examples to look at: the ones a model gets most wrong, and the ones where two models
disagree most.

An average loss hides *what* a model gets wrong. Reading the worst examples finds label noise,
a tokenizer splitting names badly, a class never learned; reading the examples where two runs
differ most shows what a change actually bought. Both rank per-example losses, the arrays
that every evaluation of ``mlab train`` saves (``examples/step_N.npz``).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from mlab.errors import ShapeError

__all__ = ["largest_disagreements", "worst_examples"]


def worst_examples(losses: Float[np.ndarray, " n"], k: int) -> list[int]:
    """The indices of the ``k`` largest losses, largest first; equal losses in index order
    (a stable ranking, so two runs of the analysis list the same examples). ``k`` larger than
    ``n``: all of them. Raises ``ValueError`` for a negative ``k`` or a NaN loss (a NaN would
    sort anywhere: find out why it is there first).

    >>> worst_examples(np.array([0.1, 2.0, 0.5, 2.0]), 3)
    [1, 3, 2]
    """
    if losses.ndim != 1:
        raise ShapeError(f"losses has shape {losses.shape}: pass one loss per example (1-D)")
    if k < 0:
        raise ValueError(f"k={k}: ask for k >= 0 examples")
    if np.isnan(losses).any():
        raise ValueError(f"losses[{int(np.flatnonzero(np.isnan(losses))[0])}] is NaN")
    order = np.argsort(-losses, kind="stable")
    return [int(i) for i in order[:k]]


def largest_disagreements(
    losses_a: Float[np.ndarray, " n"], losses_b: Float[np.ndarray, " n"], k: int
) -> list[int]:
    """The indices of the ``k`` examples whose losses under models A and B differ most
    (``|a - b|``), largest first, ties in index order, as :func:`worst_examples` ranks.
    Raises ``ShapeError`` when the two arrays do not hold one loss per example each for the
    same examples (different shapes)."""
    a = np.asarray(losses_a, dtype=np.float64)
    b = np.asarray(losses_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ShapeError(
            f"losses_a has shape {a.shape} and losses_b {b.shape}: pass both models' losses "
            "on the same examples, in the same order"
        )
    return worst_examples(np.abs(a - b), k)
