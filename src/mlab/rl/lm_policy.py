"""A language model as a policy: batching prompts, scoring what it generated, and the reward
of RLHF with a KL penalty (Ziegler et al. 2019; the shape of trl's ``PPOTrainer``).

One episode is one continuation. The prompt is the state, each generated token an action, and
the reward arrives at the end (VADER's score of the continuation), minus
$\\beta \\cdot \\mathrm{KL}$ paid token by token. Prompts of different lengths are batched by
*left* padding, so every prompt ends in the same column and the continuations start together;
the model reads the attention mask, so positions and attention ignore the padding.

The pieces:

- :func:`left_pad_prompts`: token lists to ``(ids, attention_mask)``, padded on the left;
- :func:`response_mask`: which generated tokens count (up to and including the first
  end-of-sequence token);
- :func:`response_log_probs`: each generated token's log probability, from the logits of the
  position before it;
- :func:`token_rewards`: $-\\beta (\\log \\pi - \\log \\rho)$ at every generated token, plus
  the score at the last one;
- :func:`adaptive_beta`: Ziegler et al.'s proportional controller for $\\beta$;
- :class:`PolicyWithValue`: the GPT-2 with a value head on its final hidden states.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from mlab.errors import ShapeError
from mlab.models.gpt2 import GPT2LMHeadModel

__all__ = [
    "PolicyWithValue",
    "adaptive_beta",
    "left_pad_prompts",
    "response_log_probs",
    "response_mask",
    "token_rewards",
]


def left_pad_prompts(
    prompts: Sequence[Sequence[int]], pad_token_id: int
) -> tuple[Int[Tensor, "batch seq"], Int[Tensor, "batch seq"]]:
    """Batch token lists by padding each on the *left* to the longest: the ids (padding is
    ``pad_token_id``) and the attention mask (1 on real tokens, 0 on padding), both
    ``torch.long``.

    Raise ``ValueError`` when there are no prompts or one is empty (a continuation needs
    something to continue).

    >>> left_pad_prompts([[5, 6, 7], [8]], pad_token_id=0)[0]
    tensor([[5, 6, 7],
            [0, 0, 8]])
    """
    if not prompts:
        raise ValueError("no prompts: pass at least one list of token ids")
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if not prompt:
            raise ValueError(f"prompt {row} is empty: every prompt needs at least one token")
        ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    return ids, mask


def response_mask(
    responses: Int[Tensor, "batch gen"], eos_token_id: int | None
) -> Float[Tensor, "batch gen"]:
    """1.0 for the generated tokens that count, 0.0 for the rest: every token up to and
    including the row's first ``eos_token_id`` (what comes after is filler). With
    ``eos_token_id=None`` every token counts.

    >>> response_mask(torch.tensor([[4, 2, 9, 2], [5, 6, 7, 8]]), eos_token_id=2)
    tensor([[1., 1., 0., 0.],
            [1., 1., 1., 1.]])
    """
    if eos_token_id is None:
        return torch.ones(responses.shape)
    is_eos = (responses == eos_token_id).long()
    eos_before = is_eos.cumsum(1) - is_eos  # how many eos tokens came strictly before
    return (eos_before == 0).float()


def response_log_probs(
    logits: Float[Tensor, "batch seq vocab"], sequences: Int[Tensor, "batch seq"], prompt_len: int
) -> Float[Tensor, "batch gen"]:
    """The log probability of each generated token, ``sequences[:, prompt_len:]``, under the
    model whose ``logits`` (for the whole sequences) are given: the token at column ``t`` is
    scored by the logits at column ``t - 1``, after a ``log_softmax`` in float32. ``gen`` is
    ``seq - prompt_len``.

    Raise ``ShapeError`` unless ``logits`` is ``(batch, seq, vocab)`` for ``sequences``'
    ``(batch, seq)``, ``ValueError`` unless ``1 <= prompt_len < seq``."""
    if logits.shape[:2] != sequences.shape:
        raise ShapeError(
            f"logits have shape {tuple(logits.shape)} but the sequences "
            f"{tuple(sequences.shape)}: pass the logits of every position of the sequences"
        )
    if not 1 <= prompt_len < sequences.shape[1]:
        raise ValueError(
            f"prompt_len={prompt_len} should be at least 1 and less than the sequence length "
            f"{sequences.shape[1]}: the prompt's padded width"
        )
    log_probs = logits[:, prompt_len - 1 : -1].float().log_softmax(-1)
    tokens = sequences[:, prompt_len:]
    return log_probs.gather(-1, tokens[..., None]).squeeze(-1)


def token_rewards(
    scores: Float[Tensor, " batch"],
    log_p: Float[Tensor, "batch gen"],
    log_ref: Float[Tensor, "batch gen"],
    mask: Float[Tensor, "batch gen"],
    beta: float,
) -> Float[Tensor, "batch gen"]:
    """The reward of each generated token: $-\\beta (\\log \\pi(y_t) - \\log \\rho(y_t))$
    (the ``k1`` KL estimate, paid where the policy drifted) on every token that counts
    (``mask`` 1), 0 on the others, and the row's ``score`` added at its last token that
    counts. Log probs are data here: no gradient flows.

    Raise ``ShapeError`` unless the three ``(batch, gen)`` tensors share a shape and
    ``scores`` is ``(batch,)``; ``ValueError`` when a row of ``mask`` is all zero."""
    if not log_p.shape == log_ref.shape == mask.shape:
        raise ShapeError(
            f"log_p {tuple(log_p.shape)}, log_ref {tuple(log_ref.shape)} and mask "
            f"{tuple(mask.shape)} should have one shape, (batch, gen)"
        )
    if scores.shape != log_p.shape[:1]:
        raise ShapeError(
            f"scores have shape {tuple(scores.shape)} but should be (batch,) = "
            f"({log_p.shape[0]},): one score per continuation"
        )
    lengths = mask.sum(1).long()
    if (lengths == 0).any():
        raise ValueError(f"row {int(lengths.argmin())} of mask has no token that counts")
    rewards = -beta * (log_p - log_ref).detach() * mask
    rows = torch.arange(len(scores))
    rewards[rows, lengths - 1] += scores
    return rewards


def adaptive_beta(beta: float, kl: float, target: float, n_steps: int, horizon: int) -> float:
    """Ziegler et al.'s adaptive KL coefficient (their section 2.2; trl's
    ``AdaptiveKLController``): the proportional error
    $e = \\mathrm{clip}(\\mathrm{KL} / \\mathrm{KL}_{\\text{target}} - 1, -0.2, 0.2)$, then
    $\\beta \\leftarrow \\beta (1 + e \\cdot n / H)$ for ``n_steps`` = $n$ samples seen
    since the last update and ``horizon`` $H$.

    Raise ``ValueError`` unless ``target > 0`` and ``horizon > 0``.

    >>> adaptive_beta(0.1, kl=12.0, target=6.0, n_steps=256, horizon=10_000)
    0.100512
    """
    if not target > 0:
        raise ValueError(f"target={target} should be > 0 (a KL in nats)")
    if not horizon > 0:
        raise ValueError(f"horizon={horizon} should be > 0 (in samples)")
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    return beta * (1.0 + error * n_steps / horizon)


class PolicyWithValue(nn.Module):
    """A GPT-2 policy with a value head (trl's ``AutoModelForCausalLMWithValueHead``): a
    linear layer from the final hidden states to one number, the value of the state *after*
    each position's token. The head starts at zero (no opinion), and shares the body with the
    policy, so its loss shapes the body too (weighted by ``vf_coef``)."""

    def __init__(self, model: GPT2LMHeadModel) -> None:
        super().__init__()
        self.model = model
        self.v_head = nn.Linear(model.config.n_embd, 1)
        nn.init.zeros_(self.v_head.weight)
        nn.init.zeros_(self.v_head.bias)

    def forward(
        self, input_ids: Int[Tensor, "batch seq"], attention_mask: Int[Tensor, "batch seq"]
    ) -> tuple[Float[Tensor, "batch seq vocab"], Float[Tensor, "batch seq"]]:
        """The logits and the values at every position."""
        hidden, _ = self.model.transformer(input_ids, None, attention_mask)
        return self.model.lm_head(hidden), self.v_head(hidden).squeeze(-1)
