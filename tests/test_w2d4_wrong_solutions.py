"""Realistic wrong solutions of w2d4's exercises: each must fail its checks with a message
that points at the difference; the reference must pass. Runs the checks in process, as
tests/test_edge_checks.py does. Most wrong solutions are the reference's source with one
learner-sized mistake written in (``_variant``), so they stay in step with it."""

from __future__ import annotations

import importlib
import inspect
import textwrap
from functools import partial
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import Tensor

from checkrun import assert_fails, run_checks
from mlab.sampling import beam, pair, processors, suffix

# the package exports the function generate, which hides its module of the same name
generate = importlib.import_module("mlab.sampling.generate")


_run = partial(run_checks, "w2d4")


def _variant(
    module: ModuleType, name: str, *edits: tuple[str, str], extra: dict[str, Any] | None = None
) -> Any:
    """The reference ``module.name`` with each ``(old, new)`` edit applied to its source,
    run in the module's namespace plus ``extra``."""
    source = textwrap.dedent(inspect.getsource(getattr(module, name)))
    for old, new in edits:
        assert old in source, f"{old!r} is not in {name}'s source any more"
        source = source.replace(old, new)
    scope = {**vars(module), **(extra or {})}
    exec(compile(source, f"<wrong {name}>", "exec"), scope)
    return scope[name]


def top_k_exactly_k(logits: Tensor, k: int) -> Tensor:
    """Keeps exactly k tokens by index: ties at the k-th score are cut arbitrarily."""
    if k < 1:
        raise ValueError(f"top_k={k}")
    index = torch.topk(logits, min(k, logits.shape[-1])).indices
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, index, True)
    return logits.masked_fill(~keep, float("-inf"))


def top_p_drops_the_crossing_token(logits: Tensor, p: float, min_tokens_to_keep: int = 1) -> Tensor:
    """Sorted descending, drops every token where the cumulative mass exceeds p: also the one
    that crosses p, which the nucleus needs."""
    if not 0 < p <= 1:
        raise ValueError(f"top_p={p}")
    descending, order = torch.sort(logits, descending=True)
    drop = descending.softmax(-1).cumsum(-1) > p
    drop[:, :min_tokens_to_keep] = False
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def top_p_in_place(logits: Tensor, p: float, min_tokens_to_keep: int = 1) -> Tensor:
    """Right values, but written into the caller's scores."""
    out = processors.top_p_filter(logits, p, min_tokens_to_keep)
    return logits.copy_(out)


def _late_temperature(logits: Tensor, *args: Any, temperature: float, **kwargs: Any) -> Tensor:
    """Temperature applied after the filters (top-p then sees the untempered mass)."""
    out = generate.process_scores(logits, *args, temperature=1.0, **kwargs)
    return out / temperature if kwargs["do_sample"] else out


def suffix_one_at_a_time(model: Any, prompt: Tensor, conts: list[Tensor], suf: Tensor) -> Tensor:
    """Right scores, but the prompt is encoded again for every continuation."""
    return torch.cat([suffix.suffix_log_probs(model, prompt, [c], suf) for c in conts])


@torch.no_grad()
def paired_two_batches(
    model: Any,
    ids_a: Tensor,
    ids_b: Tensor,
    mask_a: Tensor | None = None,
    mask_b: Tensor | None = None,
    *,
    mode: str = "product",
    alpha: float = 1.0,
    max_new_tokens: int = 20,
    do_sample: bool = False,
    generator: torch.Generator | None = None,
    pad_token_id: int = 0,
) -> Tensor:
    """Right tokens, but each context is its own batch: two forward passes per step."""
    masks = [
        generate.check_prompt(model, ids, m, max_new_tokens)
        for ids, m in ((ids_a, mask_a), (ids_b, mask_b))
    ]
    outs = [
        model(ids, attention_mask=m, use_cache=True)
        for ids, m in zip((ids_a, ids_b), masks, strict=True)
    ]
    new = []
    for _ in range(max_new_tokens):
        la, lb = (o.logits[:, -1].float().log_softmax(-1) for o in outs)
        scores = pair.combine_log_probs(la, lb, mode, alpha)
        if do_sample:
            tokens = torch.multinomial(scores.exp(), 1, generator=generator)[:, 0]
        else:
            tokens = scores.argmax(-1)
        new.append(tokens)
        masks = [torch.cat([m, torch.ones_like(m[:, :1])], 1) for m in masks]
        outs = [
            model(tokens[:, None], past_key_values=o.past_key_values, attention_mask=m)
            for o, m in zip(outs, masks, strict=True)
        ]
    return torch.stack(new, dim=1)


WRONG: dict[str, tuple[str, Any, str]] = {
    "top-k keeps exactly k on ties": ("top_k_filter", top_k_exactly_k, "ties at the top"),
    "top-k with > instead of <": (
        "top_k_filter",
        _variant(processors, "top_k_filter", ("logits < kth", "logits <= kth")),
        "k=",
    ),
    "top-p drops the token that crosses p": (
        "top_p_filter",
        top_p_drops_the_crossing_token,
        "p=",
    ),
    "top-p edits its input": ("top_p_filter", top_p_in_place, "changed|input"),
    "top-p ignores min_tokens_to_keep": (
        "top_p_filter",
        _variant(
            processors,
            "top_p_filter",
            ("    drop[:, logits.shape[-1] - min_tokens_to_keep :] = False\n", ""),
        ),
        "min_tokens_to_keep=3",
    ),
    "repetition penalty always divides": (
        "repetition_penalty",
        _variant(
            processors,
            "repetition_penalty",
            ("torch.where(logits < 0, logits * penalty, logits / penalty)", "logits / penalty"),
        ),
        "penalty=",
    ),
    "repetition penalty counts the left padding": (
        "repetition_penalty",
        _variant(
            processors, "repetition_penalty", ("    if first_real is not None:", "    if False:")
        ),
        "left-padded",
    ),
    "generate: no attention mask once the cache is used": (
        "generate",
        _variant(
            generate,
            "generate",
            ("past_key_values=cache, attention_mask=mask)", "past_key_values=cache)"),
        ),
        "left-padded|alone",
    ),
    "generate: temperature after top-p": (
        "generate",
        _variant(
            generate,
            "generate",
            (
                "        scores = process_scores(",
                "        scores = _late_temperature(",
            ),
            extra={"_late_temperature": _late_temperature},
        ),
        "temperature",
    ),
    "generate: finished rows keep going": (
        "generate",
        _variant(generate, "generate", ("tokens = torch.where(unfinished, tokens, pad)", "pass")),
        "sequences",
    ),
    "generate: a stop string revives rows ended by eos": (
        "generate",
        _variant(
            generate,
            "generate",
            (
                "unfinished &= ~stops.update(tokens)",
                "unfinished = ~stops.update(tokens)",
            ),
        ),
        "stop_strings",
    ),
    "beam search: no length penalty": (
        "beam_search",
        _variant(beam, "beam_search", ("(cur + 1 - prompt_len) ** length_penalty", "1.0")),
        "num_beams=3: prompts",
    ),
    "beam search: length counted with the prompt": (
        "beam_search",
        _variant(
            beam,
            "beam_search",
            ("(cur + 1 - prompt_len) ** length_penalty", "(cur + 1) ** length_penalty"),
        ),
        "num_beams=3: prompts",
    ),
    "beam search: every beam starts live (duplicate beams)": (
        "beam_search",
        _variant(beam, "beam_search", ("running_scores[:, 1:] = NEG", "pass")),
        "num_beams",
    ),
    "beam search: keeps only num_beams candidates": (
        "beam_search",
        _variant(
            beam, "beam_search", ("keep = max(2, 1 + len(eos)) * num_beams", "keep = num_beams")
        ),
        "num_beams",
    ),
    "contrastive: alpha on the wrong context": (
        "combine_log_probs",
        _variant(
            pair, "combine_log_probs", ("log_p_a - alpha * log_p_b", "alpha * log_p_a - log_p_b")
        ),
        "alpha=0.3",
    ),
    "contrastive: not renormalised": (
        "combine_log_probs",
        _variant(
            pair, "combine_log_probs", ("return combined.log_softmax(dim=-1)", "return combined")
        ),
        "mode=",
    ),
    "paired: the two contexts as two batches": (
        "generate_paired",
        paired_two_batches,
        "model calls",
    ),
    "suffix: each token scored by its own position (off by one)": (
        "suffix_log_probs",
        _variant(
            suffix,
            "suffix_log_probs",
            ("[out.logits[:, -1:].repeat(n, 1, 1), logits[:, :-1]]", "[logits]"),
        ),
        "log p",
    ),
    "suffix: the prompt re-encoded for every continuation": (
        "suffix_log_probs",
        suffix_one_at_a_time,
        "once",
    ),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_solution_fails_its_checks(name: str) -> None:
    exercise, value, message = WRONG[name]
    assert_fails("w2d4", exercise, value, message)


def test_the_reference_passes() -> None:
    for exercise in ("top_p_filter", "combine_log_probs"):
        _run(exercise)
