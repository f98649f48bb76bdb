"""FUDGE: future discriminators for generation (Yang and Klein 2021, "FUDGE: Controlled Text
Generation With Future Discriminators").

To make a frozen language model $p$ write text with an attribute $a$ (here: VADER finds the
finished text positive), train a classifier on *prefixes*, $P(a \\mid x_{\\le t})$: the
probability that a text which starts this way will end with the attribute. Then decode from

$$
q(x_{t+1} \\mid x_{\\le t}) \\propto p(x_{t+1} \\mid x_{\\le t})\\,
P(a \\mid x_{\\le t}, x_{t+1})^{s}
$$

over the model's top-$k$ next tokens only (the classifier is run on $k$ candidate prefixes
a step, not on the whole vocabulary); $s$ (``strength``) tilts more or less. By Bayes'
rule, with $s = 1$ and $k$ the whole vocabulary, $q$ is exactly $p$ conditioned on the
attribute, if the classifier is right.

The classifier here is a linear head on the frozen model's own last hidden state, so the
forward step that scores the $k$ candidates (one row per candidate, the prefix's key/value
cache repeated $k$ times) also gives the model's next-token logits of the row picked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from mlab.errors import ShapeError

__all__ = ["candidate_inputs", "fudge_log_probs", "prefix_classifier_loss"]


def fudge_log_probs(
    lm_logits: Float[Tensor, "batch vocab"],
    candidates: Int[Tensor, "batch k"],
    attr_log_probs: Float[Tensor, "batch k"],
    strength: float = 1.0,
) -> Float[Tensor, "batch vocab"]:
    """FUDGE's next-token distribution, as log probabilities over the whole vocabulary:
    $\\log q(x) = \\log p(x) + s \\log P(a \\mid \\text{prefix}, x) - \\log Z$ for the
    ``k`` candidate tokens of each row, normalised over them, and ``-inf`` for every other
    token. ``lm_logits`` are the model's raw next-token logits; ``attr_log_probs[b, j]``
    is the classifier's log probability of the attribute after ``candidates[b, j]``.

    Raise ``ShapeError`` unless ``candidates`` and ``attr_log_probs`` have one shape with
    the batch of ``lm_logits``.
    """
    if candidates.shape != attr_log_probs.shape or candidates.shape[0] != lm_logits.shape[0]:
        raise ShapeError(
            f"candidates {tuple(candidates.shape)} and attr_log_probs "
            f"{tuple(attr_log_probs.shape)} should both be (batch, k) with batch "
            f"{lm_logits.shape[0]}, the batch of lm_logits {tuple(lm_logits.shape)}"
        )
    logits = lm_logits.gather(-1, candidates)  # log p(x) + const: the normaliser cancels
    joint = (logits + strength * attr_log_probs).log_softmax(-1)
    out = torch.full_like(lm_logits, float("-inf"))
    return out.scatter(-1, candidates, joint)


def candidate_inputs(
    prefixes: Int[Tensor, "batch seq"], candidates: Int[Tensor, "batch k"]
) -> Int[Tensor, "batch*k seq_plus_one"]:
    """Every prefix followed by each of its candidate tokens, one row per candidate:
    row ``b * k + j`` is ``prefixes[b]`` then ``candidates[b, j]``.

    Raise ``ShapeError`` unless the two have one batch size.

    >>> candidate_inputs(torch.tensor([[5, 6]]), torch.tensor([[1, 2]]))
    tensor([[5, 6, 1],
            [5, 6, 2]])
    """
    if prefixes.shape[0] != candidates.shape[0]:
        raise ShapeError(
            f"prefixes {tuple(prefixes.shape)} and candidates {tuple(candidates.shape)} "
            "should have the same batch size: k candidates for every prefix"
        )
    k = candidates.shape[1]
    repeated = prefixes.repeat_interleave(k, dim=0)
    return torch.cat([repeated, candidates.reshape(-1, 1)], dim=1)


def prefix_classifier_loss(
    logits: Float[Tensor, "batch seq"],
    labels: Float[Tensor, " batch"],
    mask: Int[Tensor, "batch seq"],
) -> Float[Tensor, ""]:
    """FUDGE's training loss: every prefix of a text is one example, labelled with the
    finished text's label. ``logits[b, t]`` is the classifier's logit of the attribute
    after the prefix ending at position ``t``; ``mask`` is 1 where that position holds a
    real token and 0 on padding. The mean binary cross-entropy over the real positions.

    Raise ``ShapeError`` unless ``mask`` has the shape of ``logits`` and ``labels`` one
    entry per row.
    """
    if mask.shape != logits.shape or labels.shape != logits.shape[:1]:
        raise ShapeError(
            f"logits {tuple(logits.shape)}, mask {tuple(mask.shape)} and labels "
            f"{tuple(labels.shape)} should be (batch, seq), (batch, seq) and (batch,)"
        )
    targets = labels[:, None].expand_as(logits)
    losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    real = mask.to(losses.dtype)
    return (losses * real).sum() / real.sum()
