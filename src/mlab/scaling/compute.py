"""What a GPT costs: its parameter count and the floating-point operations of training it.

Kaplan et al. (2020, https://arxiv.org/abs/2001.08361, section 2.1) count a transformer's
non-embedding parameters as ``N ~ 12 * n_layer * d_model**2`` and its training compute as
``C ~ 6 * N * D`` for ``D`` tokens: 2 FLOPs (a multiply and an add) per parameter per token
forward, twice that backward (the gradients of the activations and of the weights). Attention
adds ``2 * n_layer * n_ctx * d_model`` per token forward, which Kaplan et al. leave out (it is
small when ``d_model >> n_ctx / 12``). Hoffmann et al. (2022) use the same ``C ~ 6 N D`` to
split a compute budget between parameters and tokens.

Here both are exact for the course's GPT-2 (:mod:`mlab.models.gpt2`, HuggingFace's layout),
so the tests can hold them to ``sum(p.numel())`` and to ``torch.utils.flop_counter``.
"""

from __future__ import annotations

__all__ = ["gpt_parameter_count", "gpt_training_flops", "kaplan_flops"]


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{name}={value}: a GPT's sizes are positive integers")


def gpt_parameter_count(
    n_layer: int, n_embd: int, vocab_size: int, n_positions: int, embeddings: bool = True
) -> int:
    """The number of parameters of GPT-2 (HuggingFace's ``GPT2LMHeadModel``, LM head tied to
    the token embedding) with these sizes.

    Each block has two layer norms (a weight and a bias of ``n_embd`` each), the attention's
    ``c_attn`` (``n_embd -> 3 * n_embd``, with bias) and ``c_proj`` (``n_embd -> n_embd``),
    and the MLP's ``c_fc`` (``n_embd -> 4 * n_embd``) and ``c_proj`` (back), all with biases.
    After the blocks, the final layer norm ``ln_f``. The embeddings are the token table
    (``vocab_size x n_embd``) and the position table (``n_positions x n_embd``); the LM head
    reuses the token table, so it adds nothing. ``embeddings=False`` leaves both tables out:
    Kaplan et al.'s ``N``. Raise ``ValueError`` naming a size that is not positive.

    >>> gpt_parameter_count(12, 768, 50257, 1024)  # GPT-2 small
    124439808
    """
    _check_sizes(n_layer=n_layer, n_embd=n_embd, vocab_size=vocab_size, n_positions=n_positions)
    d = n_embd
    per_block = (
        2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d)
    )
    total = n_layer * per_block + 2 * d
    if embeddings:
        total += (vocab_size + n_positions) * d
    return total


def gpt_training_flops(n_layer: int, n_embd: int, vocab_size: int, n_ctx: int, tokens: int) -> int:
    """The floating-point operations of training GPT-2 on ``tokens`` tokens in windows of
    ``n_ctx``: forward and backward, matrix products only, as ``torch.utils.flop_counter``
    counts them (a product of ``(m, k)`` by ``(k, n)`` is ``2 * m * k * n``).

    Forward, per token: ``2`` FLOPs per weight of every matrix it multiplies by, the four
    linear layers of each block (``12 * n_embd**2`` weights a block) and the LM head
    (``vocab_size * n_embd``); and in each block's attention, the scores ``q @ k^T`` and the
    mix ``weights @ v``, ``2 * n_ctx * n_embd`` each (all ``n_ctx`` positions: the causal mask
    does not make the product smaller). Backward costs twice the forward. Biases, layer norms,
    softmax and embedding look-ups are not matrix products and do not count. ``tokens`` must
    be a whole number of windows; raise ``ValueError`` otherwise, or for a size that is not
    positive.

    >>> gpt_training_flops(1, 8, 10, 4, 8)
    43776
    """
    _check_sizes(n_layer=n_layer, n_embd=n_embd, vocab_size=vocab_size, n_ctx=n_ctx, tokens=tokens)
    if tokens % n_ctx:
        raise ValueError(
            f"tokens={tokens} is not a whole number of windows of n_ctx={n_ctx}: train on "
            "batches of full windows (tokens = batch * n_ctx)"
        )
    weights = n_layer * 12 * n_embd**2 + vocab_size * n_embd
    attention = n_layer * 2 * 2 * n_ctx * n_embd
    return 3 * (2 * weights + attention) * tokens


def kaplan_flops(n_params: int, tokens: int) -> int:
    """Kaplan et al.'s estimate of training compute: ``6 * N * D``."""
    return 6 * n_params * tokens
