"""Beam search with a key/value cache, batched over left-padded prompts, equal to
HuggingFace's ``generate(num_beams=...)`` (its vectorised ``_beam_search``, transformers 5).

Each prompt keeps ``num_beams`` running hypotheses, scored by the sum of their tokens' log
probabilities. A step scores every (beam, token) continuation, keeps the best
``2 * num_beams`` (so that ``num_beams`` remain to continue even if the best all end), moves
those that end (an end-of-sequence token, or the length limit) among the top ``num_beams``
into a list of finished hypotheses, and continues the best ``num_beams`` that do not end. A
finished hypothesis of ``L`` new tokens (the end token included) is ranked by

    score = sum of log-probs / L ** length_penalty

(length_penalty > 0 favours longer ones). ``early_stopping`` says when a prompt is done:
``True`` as soon as it has ``num_beams`` finished; ``False`` when the best running beam,
divided by its current length to the penalty, cannot beat the worst finished; ``"never"`` as
``False`` but with the longest possible length when ``length_penalty > 0`` (the canonical
stopping rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from mlab.sampling.generate import check_prompt, process_scores, reorder_cache

__all__ = ["beam_search"]

NEG = -1.0e9  # HF's "impossible" score, added in float32


def _take(t: Tensor, index: Tensor) -> Tensor:
    """``t[b, index[b, j]]`` for ``t`` of shape ``(batch, beams, ...)``."""
    while index.ndim < t.ndim:
        index = index.unsqueeze(-1)
    return torch.take_along_dim(t, index, dim=1)


@torch.no_grad()
def beam_search(
    model: Any,
    input_ids: Int[Tensor, "batch seq"],
    attention_mask: Int[Tensor, "batch seq"] | None = None,
    *,
    num_beams: int,
    max_new_tokens: int = 20,
    min_new_tokens: int = 0,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    num_return_sequences: int = 1,
    repetition_penalty: float = 1.0,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int | None = None,
    use_cache: bool = True,
) -> Int[Tensor, "batch_times_returned total"]:
    """The best ``num_return_sequences`` finished hypotheses of each prompt, best first,
    prompt included, as rows ``prompt0's best, prompt0's second, ..., prompt1's best, ...``,
    right-filled with ``pad_token_id`` to the longest returned one.

    Raise ``ValueError`` unless ``1 <= num_return_sequences <= num_beams <= vocab_size``
    and ``early_stopping`` is True, False or "never".
    """
    mask = check_prompt(model, input_ids, attention_mask, max_new_tokens, min_new_tokens)
    vocab = model.config.vocab_size
    if not 1 <= num_beams <= vocab:
        raise ValueError(
            f"num_beams={num_beams} should be between 1 and the vocabulary size {vocab}"
        )
    if not 1 <= num_return_sequences <= num_beams:
        raise ValueError(
            f"num_return_sequences={num_return_sequences} should be between 1 and "
            f"num_beams={num_beams}: only num_beams hypotheses are kept"
        )
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping={early_stopping!r} should be True, False or 'never'")
    eos = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or [])
    fill = pad_token_id if pad_token_id is not None else (eos[0] if eos else -1)
    batch, prompt_len = input_ids.shape
    max_len = prompt_len + max_new_tokens
    keep = max(2, 1 + len(eos)) * num_beams
    device = input_ids.device
    is_top = torch.arange(keep, device=device) < num_beams

    running = torch.full((batch, num_beams, max_len), fill, dtype=torch.long, device=device)
    running[:, :, :prompt_len] = input_ids[:, None]
    finished_seqs = running.clone()
    running_scores = torch.zeros(batch, num_beams, device=device)
    running_scores[:, 1:] = NEG  # all beams start equal: let only the first one expand
    finished_scores = torch.full((batch, num_beams), NEG, device=device)
    finished_lens = torch.zeros(batch, num_beams, dtype=torch.long, device=device)
    is_finished = torch.zeros(batch, num_beams, dtype=torch.bool, device=device)
    improvable = torch.ones(batch, 1, dtype=torch.bool, device=device)
    mask = mask.repeat_interleave(num_beams, dim=0)
    first_real = mask.argmax(dim=1)
    offsets = torch.arange(batch, device=device)[:, None] * num_beams
    cache = None
    for cur in range(prompt_len, max_len):
        flat = running[:, :, :cur].flatten(0, 1)
        if cache is None:
            out = model(flat, attention_mask=mask, use_cache=use_cache)
        else:
            out = model(flat[:, -1:], past_key_values=cache, attention_mask=mask)
        log_probs = process_scores(
            out.logits[:, -1].float().log_softmax(dim=-1),
            flat,
            first_real,
            cur - prompt_len,
            do_sample=False,
            temperature=1.0,
            top_k=None,
            top_p=1.0,
            repetition=repetition_penalty,
            min_new_tokens=min_new_tokens,
            eos=eos,
        )
        totals = (log_probs.view(batch, num_beams, vocab) + running_scores[..., None]).flatten(1)
        top_scores, top_index = totals.topk(keep, dim=-1)
        source = top_index // vocab
        top_seqs = _take(running, source)
        top_seqs[:, :, cur] = top_index % vocab
        ends = torch.isin(top_seqs[:, :, cur], torch.tensor(eos, device=device))
        if cur + 1 >= max_len:
            ends = torch.ones_like(ends)

        # continue the best num_beams candidates that did not end
        alive_scores = top_scores + ends.float() * NEG
        best = alive_scores.topk(num_beams, dim=-1).indices
        running = _take(top_seqs, best)
        running_scores = _take(alive_scores, best)

        # move the ended ones among the top num_beams into the finished list
        just_finished = ends & is_top
        scored = top_scores / (cur + 1 - prompt_len) ** length_penalty
        full = is_finished.all(dim=-1, keepdim=True) & (early_stopping is True)
        scored = scored + full.float() * NEG
        scored = scored + (~improvable).float() * NEG
        scored = scored + (~just_finished).float() * NEG
        merged_scores = torch.cat([finished_scores, scored], dim=1)
        chosen = merged_scores.topk(num_beams, dim=-1).indices
        finished_seqs = _take(torch.cat([finished_seqs, top_seqs], dim=1), chosen)
        finished_scores = _take(merged_scores, chosen)
        new_lens = torch.full_like(ends, cur + 1 - prompt_len, dtype=torch.long)
        finished_lens = _take(torch.cat([finished_lens, new_lens], dim=1), chosen)
        is_finished = _take(torch.cat([is_finished, just_finished], dim=1), chosen)

        if use_cache:
            cache = reorder_cache(out.past_key_values, (_take(source, best) + offsets).flatten())
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)

        # can a running beam still beat the worst finished one?
        if early_stopping == "never" and length_penalty > 0.0:
            best_len = max_len - prompt_len
        else:
            best_len = cur + 1 - prompt_len
        best_running = running_scores[:, :1] / best_len**length_penalty
        worst = torch.where(is_finished, finished_scores.min(dim=1, keepdim=True).values, NEG)
        improvable = improvable & (best_running > worst).any(dim=-1, keepdim=True)
        if not improvable.any() or bool(ends.all()):
            break
        if early_stopping is True and bool(is_finished.all()):
            break

    returned = finished_seqs[:, :num_return_sequences].flatten(0, 1)
    length = prompt_len + int(finished_lens[:, :num_return_sequences].max())
    return returned[:, :length]
