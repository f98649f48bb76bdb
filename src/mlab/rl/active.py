"""Active learning: spend a labelling budget on the examples that teach the classifier most.

A pool of unlabelled texts, an oracle that labels any of them at a cost (here VADER: is the
text positive?), and a classifier retrained after each round of queries. Acquisition
functions score the pool; each round labels the top-scored examples:

- **uncertainty** (entropy of the predicted distribution, Lewis and Gale 1994);
- **margin**: the gap between the two most probable classes, smallest first
  (Scheffer et al. 2001);
- **BALD** (Houlsby et al. 2011): the mutual information between the label and the model's
  parameters, $H[\\bar p] - \\overline{H[p_s]}$ over samples $s$ of the model (here the
  members of a bootstrap ensemble): high where the members disagree, not where each is
  merely unsure;
- **diversity**: k-center greedy (Sener and Savarese 2018) picks, one by one, the point
  farthest from everything labelled or picked so far, covering the feature space.

Random sampling is the baseline each must beat.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from mlab.errors import ShapeError

__all__ = ["bald_scores", "entropy_scores", "k_center_greedy", "margin_scores"]


def entropy_scores(probs: Float[Tensor, "n classes"]) -> Float[Tensor, " n"]:
    """The entropy (nats) of each row's predicted distribution, $-\\sum_c p_c \\log p_c$,
    with $0 \\log 0 = 0$: large where the classifier is unsure.

    >>> entropy_scores(torch.tensor([[0.5, 0.5], [0.0, 1.0]])).abs()
    tensor([0.6931, 0.0000])
    """
    terms: Tensor = torch.special.xlogy(probs, probs)
    return -terms.sum(-1)


def margin_scores(probs: Float[Tensor, "n classes"]) -> Float[Tensor, " n"]:
    """Each row's margin, its largest probability minus its second largest: small where
    the classifier hesitates between two classes (query the smallest first).

    Raise ``ShapeError`` with fewer than two classes.

    >>> margin_scores(torch.tensor([[0.1, 0.6, 0.3]]))
    tensor([0.3000])
    """
    if probs.shape[-1] < 2:
        raise ShapeError(f"probs {tuple(probs.shape)} need at least 2 classes for a margin")
    top = probs.topk(2, dim=-1).values
    return top[:, 0] - top[:, 1]


def bald_scores(mc_probs: Float[Tensor, "samples n classes"]) -> Float[Tensor, " n"]:
    """BALD's mutual information for each example from ``samples`` draws of the model
    (members of an ensemble, or dropout masks): the entropy of the mean prediction minus
    the mean of the predictions' entropies, $H[\\bar p] - \\frac{1}{S} \\sum_s H[p_s]$.

    >>> bald_scores(torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]]))
    tensor([0.6931])
    """
    mean = mc_probs.mean(0)
    total: Tensor = torch.special.xlogy(mean, mean).sum(-1)
    each: Tensor = torch.special.xlogy(mc_probs, mc_probs).sum(-1)
    return each.mean(0) - total


def k_center_greedy(
    features: Float[Tensor, "n dim"], labelled: Bool[Tensor, " n"], budget: int
) -> Int[Tensor, " budget"]:
    """Pick ``budget`` unlabelled points one at a time, each the point whose Euclidean
    distance to its nearest labelled-or-already-picked point is largest (the first such
    index on a tie; a labelled or picked point is never picked again). Returns the
    picked indices in the order picked.

    Raise ``ValueError`` if no point is labelled or fewer than ``budget`` are unlabelled.
    """
    unlabelled = int((~labelled).sum())
    if not bool(labelled.any()) or budget > unlabelled:
        raise ValueError(
            f"k-center greedy needs at least one labelled point and budget={budget} <= "
            f"{unlabelled} unlabelled points; got {int(labelled.sum())} labelled"
        )
    exact = "donot_use_mm_for_euclid_dist"
    nearest = torch.cdist(features, features[labelled], compute_mode=exact).min(1).values
    nearest = nearest.masked_fill(labelled, float("-inf"))
    picked = []
    for _ in range(budget):
        choice = nearest.argmax()
        picked.append(choice)
        distance = (features - features[choice]).norm(dim=-1)
        nearest = torch.minimum(nearest, distance)
        nearest[choice] = float("-inf")
    return torch.stack(picked) if picked else torch.zeros(0, dtype=torch.long)
