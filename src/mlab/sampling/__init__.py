"""Sampling from language models: logit processors, cached batched decoding (greedy,
sampling, beam search), decoding from a pair of contexts, and scoring suffixes."""

from mlab.sampling.beam import beam_search
from mlab.sampling.generate import generate
from mlab.sampling.processors import (
    apply_temperature,
    repetition_penalty,
    top_k_filter,
    top_p_filter,
)

__all__ = [
    "apply_temperature",
    "beam_search",
    "generate",
    "repetition_penalty",
    "top_k_filter",
    "top_p_filter",
]
