"""Two regularisers: label smoothing, and stopping early.

Label smoothing (Szegedy et al., 2016, "Rethinking the Inception Architecture",
https://arxiv.org/abs/1512.00567, section 7): train towards the target distribution
``(1 - eps) * one_hot(y) + eps / classes`` instead of the one-hot label, so the model is never
asked for infinite logits; it is ``torch.nn.functional.cross_entropy(label_smoothing=eps)``.
Müller et al. (2019, https://arxiv.org/abs/1906.02629) show what it does to calibration.

Early stopping (Prechelt, 1998, "Early Stopping -- But When?"): keep the model of the best
validation loss and stop when ``patience`` evaluations in a row have not beaten it by
``min_delta``: the rule of Keras' and Lightning's ``EarlyStopping`` callbacks and of
:func:`mlab.train.loop.train`'s ``patience``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mlab.errors import ShapeError

__all__ = ["early_stopping", "label_smoothed_cross_entropy"]


def label_smoothed_cross_entropy(
    logits: Float[Tensor, "batch classes"],
    targets: Int[Tensor, " batch"],
    smoothing: float,
    ignore_index: int = -100,
) -> Float[Tensor, ""]:
    """Cross-entropy against smoothed labels, averaged over the rows whose target is not
    ``ignore_index``: ``F.cross_entropy(logits, targets, ignore_index=ignore_index,
    label_smoothing=smoothing)``.

    With ``logp = log_softmax(logits)`` (computed stably), a row's loss is
    ``(1 - smoothing) * -logp[target] + smoothing * mean_over_classes(-logp)``. Rows whose
    target is ``ignore_index`` count for nothing, neither in the sum nor in the number of rows
    it is divided by (with every row ignored the mean is ``nan``, as torch's). Do not edit the
    inputs.

    Raise ``ShapeError`` unless ``logits`` is ``(batch, classes)`` and ``targets``
    ``(batch,)``; ``ValueError`` when ``smoothing`` is outside ``[0, 1]`` or a target that is
    not ignored is outside ``[0, classes)``.
    """
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ShapeError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)}: pass logits "
            "(batch, classes) and one target per row (batch,); flatten a sequence dim first"
        )
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"smoothing={smoothing}: a label-smoothing weight is in [0, 1]")
    keep = targets != ignore_index
    kept = targets[keep]
    if bool(((kept < 0) | (kept >= logits.shape[1])).any()):
        raise ValueError(
            f"targets {kept.tolist()} go outside [0, {logits.shape[1]}): a target is a class "
            f"index (or ignore_index={ignore_index})"
        )
    logp = torch.log_softmax(logits[keep], dim=-1)
    nll = -logp.gather(1, kept[:, None]).squeeze(1)
    uniform = -logp.mean(dim=-1)
    return ((1 - smoothing) * nll + smoothing * uniform).mean()


def early_stopping(
    val_losses: Sequence[float], patience: int, min_delta: float = 0.0
) -> tuple[int, int]:
    """Where the early-stopping rule stops a run: ``(stop, best)``, indices into
    ``val_losses`` (one per evaluation, in order).

    An evaluation *improves* when its loss is below the best so far minus ``min_delta`` (the
    first always improves); it then becomes the best, and the count of evaluations without
    improvement restarts at 0. Otherwise the count goes up by one, and when it reaches
    ``patience`` the run stops at that evaluation. ``best`` is the index of the best
    evaluation at the stop (the model to keep). A run that never stops ends at the last
    evaluation: ``stop = len(val_losses) - 1``.

    Raise ``ValueError`` when ``val_losses`` is empty, ``patience < 1`` or ``min_delta < 0``.

    >>> early_stopping([3.0, 2.0, 2.5, 1.9, 2.0, 2.1], patience=2)
    (5, 3)
    """
    if not val_losses or patience < 1 or min_delta < 0:
        raise ValueError(
            f"{len(val_losses)} losses, patience={patience}, min_delta={min_delta}: need at "
            "least one loss, patience >= 1 and min_delta >= 0"
        )
    best, best_loss, bad = 0, float("inf"), 0
    for i, loss in enumerate(val_losses):
        if loss < best_loss - min_delta:
            best, best_loss, bad = i, loss, 0
        else:
            bad += 1
            if bad >= patience:
                return i, best
    return len(val_losses) - 1, best
