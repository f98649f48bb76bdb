"""The reward for w4d2's language model: VADER's compound sentiment (Hutto and Gilbert 2014,
"VADER: A Parsimonious Rule-based Model for Sentiment Analysis of Social Media Text"), from
the ``vaderSentiment`` package, whose lexicon ships with it (no download).

The compound score is in $[-1, 1]$: the sum of the lexicon's valences of the words (with
rules for negation, "but", capitals, exclamation marks and degree words), normalised by
$x / \\sqrt{x^2 + 15}$. Text with no sentiment words scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import torch
from torch import Tensor

__all__ = ["sentiment_scores"]


@cache
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import (  # type: ignore[import-untyped]
        SentimentIntensityAnalyzer,
    )

    return SentimentIntensityAnalyzer()


def sentiment_scores(texts: Sequence[str]) -> Tensor:
    """VADER's compound score of each text, a float32 tensor ``(len(texts),)``."""
    analyzer = _analyzer()
    return torch.tensor(
        [analyzer.polarity_scores(t)["compound"] for t in texts], dtype=torch.float32
    )
