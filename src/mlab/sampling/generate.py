"""Decoding with a key/value cache: greedy, temperature, top-k, top-p, repetition penalty,
min/max new tokens, stop tokens and stop strings, batched over left-padded prompts.

One step of decoding: run the model on the tokens it has not seen (the whole prompt the first
time, then only the last token, the rest being in the cache), take the scores of the last
position, process them (:mod:`mlab.sampling.processors`), pick a token (the argmax, or a draw
from the softmax), append it. Rows that have finished (an end-of-sequence token, a stop
string) get ``pad_token_id`` from then on, and decoding stops when every row has finished or
``max_new_tokens`` were made. This is HuggingFace's ``generate`` for decoder-only models
(``_sample``), with the same processor order and scores in float32, so the same weights give
the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from mlab.errors import ShapeError
from mlab.sampling.processors import (
    apply_temperature,
    repetition_penalty,
    suppress_tokens,
    top_k_filter,
    top_p_filter,
)

__all__ = [
    "StopStrings",
    "check_prompt",
    "ends_with_stop_string",
    "generate",
    "process_scores",
    "reorder_cache",
]


def _eos_list(eos_token_id: int | Sequence[int] | None) -> list[int]:
    if eos_token_id is None:
        return []
    return [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)


def check_prompt(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor | None,
    max_new_tokens: int,
    min_new_tokens: int = 0,
) -> Tensor:
    """Validate a batch of prompts and return its attention mask (all ones when None).

    Raise ``ShapeError`` unless ``input_ids`` is ``(batch, seq)`` with ``seq >= 1``, the
    mask has its shape, and the prompt plus ``max_new_tokens - 1`` fits in the model's
    ``n_positions`` (the last token made is never fed back); ``ValueError`` unless
    ``0 <= min_new_tokens <= max_new_tokens`` and ``max_new_tokens >= 1``.
    """
    if input_ids.ndim != 2 or input_ids.shape[1] == 0:
        raise ShapeError(
            f"input_ids should be (batch, seq) with seq >= 1, got {tuple(input_ids.shape)}: "
            "for one prompt pass ids[None]"
        )
    if max_new_tokens < 1 or not 0 <= min_new_tokens <= max_new_tokens:
        raise ValueError(
            f"max_new_tokens={max_new_tokens}, min_new_tokens={min_new_tokens}: need "
            "max_new_tokens >= 1 and 0 <= min_new_tokens <= max_new_tokens"
        )
    n_positions = model.config.n_positions
    if input_ids.shape[1] + max_new_tokens - 1 > n_positions:
        raise ShapeError(
            f"a prompt of {input_ids.shape[1]} tokens and max_new_tokens={max_new_tokens} "
            f"need {input_ids.shape[1] + max_new_tokens - 1} positions but the model has "
            f"n_positions={n_positions}: shorten the prompt (keep its last tokens) or "
            "ask for fewer tokens"
        )
    if attention_mask is None:
        return torch.ones_like(input_ids)
    if attention_mask.shape != input_ids.shape:
        raise ShapeError(
            f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids "
            f"{tuple(input_ids.shape)}: one 0/1 per token (0 = left padding)"
        )
    return attention_mask.long()


def reorder_cache(cache: Any, index: Int[Tensor, " rows"]) -> Any:
    """The key/value cache with its batch rows taken at ``index`` (beam search keeps the
    cache of the beams it continues; a row may be taken twice)."""
    return tuple((k.index_select(0, index), v.index_select(0, index)) for k, v in cache)


def process_scores(
    logits: Float[Tensor, "batch vocab"],
    sequences: Int[Tensor, "batch seq"],
    first_real: Int[Tensor, " batch"],
    new_tokens: int,
    *,
    do_sample: bool,
    temperature: float,
    top_k: int | None,
    top_p: float,
    repetition: float,
    min_new_tokens: int,
    eos: list[int],
) -> Float[Tensor, "batch vocab"]:
    """HuggingFace's processor order: repetition penalty, end-of-sequence tokens suppressed
    while fewer than ``min_new_tokens`` were made; then, only when sampling, temperature,
    top-k and top-p."""
    if repetition != 1.0:
        logits = repetition_penalty(logits, sequences, repetition, first_real)
    if new_tokens < min_new_tokens and eos:
        logits = suppress_tokens(logits, eos)
    if do_sample:
        if temperature != 1.0:
            logits = apply_temperature(logits, temperature)
        if top_k is not None:
            logits = top_k_filter(logits, top_k)
        if top_p < 1.0:
            logits = top_p_filter(logits, top_p)
    return logits


def ends_with_stop_string(text: str, last_token: str, stop_strings: Sequence[str]) -> bool:
    """Whether one of ``stop_strings`` ends inside the last token of ``text`` (which ends
    with ``last_token``): as HuggingFace's ``StopStringCriteria``, a stop string may start in
    earlier tokens and may end before the last token does."""
    start = len(text) - len(last_token)
    return any(s in text[max(0, start - len(s) + 1) :] for s in stop_strings)


class StopStrings:
    """Watches the text of each row for ``stop_strings``: built from the prompts (their real
    tokens' text), then ``update(tokens)`` adds each row's new token and says which rows
    now end in a stop string. ``token_strings[i]`` is the text of token id ``i``."""

    def __init__(
        self,
        stop_strings: Sequence[str],
        token_strings: Sequence[str] | None,
        input_ids: Int[Tensor, "batch seq"],
        mask: Int[Tensor, "batch seq"],
        vocab_size: int,
    ) -> None:
        if token_strings is None:
            raise ValueError("stop_strings need token_strings, the text of every token id")
        if len(token_strings) < vocab_size:
            raise ValueError(
                f"token_strings has {len(token_strings)} entries but the vocabulary "
                f"{vocab_size}: give the text of every token id"
            )
        self.stop_strings = stop_strings
        self.token_strings = token_strings
        self.texts = [
            "".join(token_strings[t] for t in row[m.bool()].tolist())
            for row, m in zip(input_ids, mask, strict=True)
        ]

    def update(self, tokens: Int[Tensor, " batch"]) -> Bool[Tensor, " batch"]:
        """Append each row's token; True for the rows that now end in a stop string."""
        hits = []
        for row, token in enumerate(tokens.tolist()):
            piece = self.token_strings[token]
            self.texts[row] += piece
            hits.append(ends_with_stop_string(self.texts[row], piece, self.stop_strings))
        return torch.tensor(hits, dtype=torch.bool, device=tokens.device)


@torch.no_grad()
def generate(
    model: Any,
    input_ids: Int[Tensor, "batch seq"],
    attention_mask: Int[Tensor, "batch seq"] | None = None,
    *,
    max_new_tokens: int = 20,
    min_new_tokens: int = 0,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int | None = None,
    stop_strings: Sequence[str] = (),
    token_strings: Sequence[str] | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    on_step: Callable[[Tensor], None] | None = None,
) -> Int[Tensor, "batch total"]:
    """Continue each (left-padded) prompt; return prompts and continuations,
    ``(batch, seq + steps)``, where ``steps <= max_new_tokens`` is how many steps ran.

    Greedy (``do_sample=False``) takes the argmax (the first on ties); sampling draws from
    the softmax of the processed scores with ``torch.multinomial`` (``generator``, or
    torch's global one as HuggingFace uses). A row finishes when it emits one of
    ``eos_token_id`` or when, with ``token_strings`` (the text of each token id), one of
    ``stop_strings`` ends in its last token; finished rows are filled with ``pad_token_id``
    (``eos_token_id``'s first when None). ``on_step`` receives each step's tokens, for
    streaming. ``use_cache=False`` recomputes the whole sequence at every step (slower, same
    tokens).
    """
    mask = check_prompt(model, input_ids, attention_mask, max_new_tokens, min_new_tokens)
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k={top_k} should be at least 1, or None for no top-k filter")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p} should be in (0, 1]: 1.0 keeps every token")
    if not temperature > 0:
        raise ValueError(
            f"temperature={temperature} should be > 0: for greedy decoding pass do_sample=False"
        )
    eos = _eos_list(eos_token_id)
    pad = pad_token_id if pad_token_id is not None else (eos[0] if eos else 0)
    first_real = mask.argmax(dim=1)
    stops = None
    if stop_strings:
        vocab = model.config.vocab_size
        stops = StopStrings(stop_strings, token_strings, input_ids, mask, vocab)
    sequences = input_ids
    unfinished = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    cache = None
    for step in range(max_new_tokens):
        if cache is None:
            out = model(sequences, attention_mask=mask, use_cache=use_cache)
        else:
            out = model(sequences[:, -1:], past_key_values=cache, attention_mask=mask)
        cache = out.past_key_values if use_cache else None
        scores = process_scores(
            out.logits[:, -1].float(),
            sequences,
            first_real,
            step,
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition=repetition_penalty,
            min_new_tokens=min_new_tokens,
            eos=eos,
        )
        if do_sample:
            probs = scores.softmax(dim=-1)
            tokens = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        else:
            tokens = scores.argmax(dim=-1)
        tokens = torch.where(unfinished, tokens, pad)
        sequences = torch.cat([sequences, tokens[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(tokens)[:, None]], dim=1)
        if on_step is not None:
            on_step(tokens)
        if eos:
            unfinished &= ~torch.isin(tokens, torch.tensor(eos, device=tokens.device))
        if stops is not None:
            unfinished &= ~stops.update(tokens)
        if not unfinished.any():
            break
    return sequences
