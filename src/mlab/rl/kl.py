"""KL divergence between a policy and a frozen reference, per token.

RLHF keeps the tuned policy $\\pi$ close to the model it started from, $\\rho$, by paying
$\\beta \\, \\mathrm{KL}(\\pi \\| \\rho)$ out of the reward (Ziegler et al. 2019, "Fine-Tuning
Language Models from Human Preferences"). The KL of a whole continuation is a sum over its
tokens (the chain rule), and the exact per-token KL needs both full next-token distributions.
During training only the sampled token's two log probabilities are at hand, so the KL is
*estimated* from them (John Schulman, "Approximating KL Divergence", 2020), with
$r = \\rho(y) / \\pi(y)$ and $y \\sim \\pi$:

- ``k1`` $= -\\log r$: unbiased, high variance, negative for some samples;
- ``k2`` $= \\tfrac12 (\\log r)^2$: biased, low variance;
- ``k3`` $= (r - 1) - \\log r$: unbiased and never negative.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from mlab.errors import ShapeError

__all__ = ["KL_ESTIMATORS", "exact_kl", "kl_estimate"]

KL_ESTIMATORS = ("k1", "k2", "k3")


def kl_estimate(
    log_p: Float[Tensor, "*shape"], log_ref: Float[Tensor, "*shape"], kind: str = "k1"
) -> Float[Tensor, "*shape"]:
    """Estimate $\\mathrm{KL}(\\pi \\| \\rho)$ from each sampled token's log probability
    under the policy (``log_p``) and under the reference (``log_ref``), with the token drawn
    from the policy. With $\\log r = $ ``log_ref - log_p``:
    ``"k1"``: $-\\log r$; ``"k2"``: $\\frac12 (\\log r)^2$; ``"k3"``: $e^{\\log r} - 1 - \\log r$.

    Raise ``ValueError`` naming ``kind`` for another estimator, ``ShapeError`` unless the
    two tensors have the same shape.

    >>> kl_estimate(torch.tensor([-1.0]), torch.tensor([-2.0]), "k3")
    tensor([0.3679])
    """
    if log_p.shape != log_ref.shape:
        raise ShapeError(
            f"log_p has shape {tuple(log_p.shape)} but log_ref {tuple(log_ref.shape)}: pass "
            "the same tokens' log probabilities under both models"
        )
    log_r = log_ref - log_p
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * log_r**2
    if kind == "k3":
        return torch.expm1(log_r) - log_r
    raise ValueError(f"kind={kind!r} is not a KL estimator: use one of {KL_ESTIMATORS}")


def exact_kl(
    logits: Float[Tensor, "*batch vocab"], ref_logits: Float[Tensor, "*batch vocab"]
) -> Float[Tensor, "*batch"]:
    """The exact $\\mathrm{KL}(\\pi \\| \\rho) = \\sum_y \\pi(y) (\\log \\pi(y) - \\log
    \\rho(y))$ between the softmaxes of two sets of scores, over the last dim, computed
    from ``log_softmax`` (a token with $\\pi(y) = 0$ adds 0, even where $\\rho(y) = 0$).

    Raise ``ShapeError`` unless the two have the same shape."""
    if logits.shape != ref_logits.shape:
        raise ShapeError(
            f"logits have shape {tuple(logits.shape)} but ref_logits "
            f"{tuple(ref_logits.shape)}: both models should score the same vocabulary"
        )
    log_p = logits.log_softmax(-1)
    log_q = ref_logits.log_softmax(-1)
    terms = log_p.exp() * (log_p - log_q)
    return torch.where(log_p.isneginf(), 0.0, terms).sum(-1)
