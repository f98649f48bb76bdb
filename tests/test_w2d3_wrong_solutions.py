"""Realistic wrong solutions of w2d3's exercises: each must fail its checks with a message
naming the input that tells it apart; the reference must pass. Runs the checks in process,
as tests/test_edge_checks.py does."""

from __future__ import annotations

import itertools
import unicodedata
from collections import Counter
from collections.abc import Mapping
from functools import partial
from typing import Any

import pytest

from checkrun import assert_fails, run_checks
from mlab.tokenizers import bert, bpe, bpe_train
from mlab.tokenizers.wordpiece import wordpiece as reference_wordpiece

_run = partial(run_checks, "w2d3")
_fails = partial(assert_fails, "w2d3")


def nfd_of_the_whole_word(
    word: str, *, lowercase: bool = True, strip_accents: bool | None = None
) -> tuple[str, list[int]]:
    """Lower-cases the whole word with str.lower (final sigma: "ς") and forgets controls."""
    strip = lowercase if strip_accents is None else strip_accents
    text = word.lower() if lowercase else word
    if strip:
        text = "".join(
            c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn"
        )
    return text, list(range(len(text)))


def punctuation_by_category_only(word: str) -> list[tuple[int, int]]:
    """Unicode's P* alone: "$", "^" and "`" are symbols to Unicode, punctuation to BERT."""
    spans, start = [], 0
    for i, ch in enumerate(word):
        if unicodedata.category(ch).startswith("P"):
            if start < i:
                spans.append((start, i))
            spans.append((i, i + 1))
            start = i + 1
    if start < len(word):
        spans.append((start, len(word)))
    return spans


def unk_only_the_unmatched_part(
    word: str,
    vocab: Mapping[str, int],
    *,
    unk_token: str = "[UNK]",
    max_chars: int = 100,
    prefix: str = "##",
) -> list[str]:
    """Keeps the pieces found and puts [UNK] for the rest, instead of the whole word."""
    pieces = (
        reference_wordpiece(
            word[:-1], vocab, unk_token=unk_token, max_chars=max_chars, prefix=prefix
        )
        if len(word) > 1
        else []
    )
    whole = reference_wordpiece(
        word, vocab, unk_token=unk_token, max_chars=max_chars, prefix=prefix
    )
    if whole == [unk_token] and pieces and pieces != [unk_token] and len(word) <= max_chars:
        return [*pieces, unk_token]
    return whole


def odd_token_to_the_first(
    n1: int, n2: int, budget: int, strategy: str = "longest_first"
) -> tuple[int, int]:
    """The legacy Python tokenizer's rule: the first sequence keeps the odd token."""
    got = bert.truncated_lengths(n1, n2, budget, strategy)
    if strategy == "longest_first" and n2 and budget < 2 * min(n1, n2) and budget % 2 and n1 <= n2:
        return got[1], got[0]
    return got


def slow_cleanup(tokens: list[str], *, clean_up: bool = True) -> str:
    """transformers' Python clean_up_tokenization: also joins " ' "."""
    text = bert.join_wordpieces(tokens, clean_up=clean_up)
    return text.replace(" ' ", "'") if clean_up else text


def merge_overlapping(word: list[int], left: int, right: int, new: int) -> list[int]:
    """Merges at every position where the pair starts, so "a a a" gives "aa aa"."""
    out = []
    for i in range(len(word)):
        if i + 1 < len(word) and (word[i], word[i + 1]) == (left, right):
            out.append(new)
        elif not (i > 0 and (word[i - 1], word[i]) == (left, right)):
            out.append(word[i])
    return out


def bytes_in_code_point_order() -> dict[int, str]:
    """Maps the 68 unprintable bytes from U+0100 but in a different order (reversed)."""
    table = bpe.bytes_to_unicode()
    shifted = sorted(b for b, ch in table.items() if ord(ch) >= 256)
    return {**table, **{b: chr(256 + len(shifted) - 1 - i) for i, b in enumerate(shifted)}}


def first_pair_not_lowest_rank(word: str, ranks: Mapping[tuple[str, str], int]) -> list[str]:
    """Merges the leftmost pair that has a rank, not the lowest-ranked one."""
    parts = list(word)
    while True:
        for i in range(len(parts) - 1):
            if (parts[i], parts[i + 1]) in ranks:
                parts[i : i + 2] = [parts[i] + parts[i + 1]]
                break
        else:
            return parts


def ties_by_token_strings(
    texts: list[str], vocab_size: int, *, min_frequency: int = 2, special_tokens: Any = ()
) -> bpe.BPETokenizer:
    """Recounts the pairs after each merge (fine on small corpora) and breaks ties between
    equal counts by the tokens' strings, not by their ids: a merged token's id is its
    creation order, which strings do not follow."""
    tokens = list(dict.fromkeys([*special_tokens, *sorted(bpe.bytes_to_unicode().values())]))
    words = {tuple(piece): n for piece, n in bpe_train.count_pieces(texts).items()}
    merges = []
    while len(tokens) < vocab_size:
        counts: Counter[tuple[str, str]] = Counter()
        for word, n in words.items():
            for pair in itertools.pairwise(word):
                counts[pair] += n
        if not counts or max(counts.values()) < min_frequency:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        if best[0] + best[1] not in tokens:
            tokens.append(best[0] + best[1])
        merged = {}
        for word, n in words.items():
            ids = [tokens.index(t) for t in word]
            out = bpe_train.merge_pair(ids, tokens.index(best[0]), tokens.index(best[1]), -1)
            merged[tuple(best[0] + best[1] if i == -1 else tokens[i] for i in out)] = n
        words = merged
    return bpe.BPETokenizer(
        {t: i for i, t in enumerate(tokens)}, merges, special_tokens=special_tokens
    )


@pytest.mark.parametrize(
    ("exercise", "wrong", "message"),
    [
        ("normalize_word", nfd_of_the_whole_word, "normalize_word"),
        ("split_on_punctuation", punctuation_by_category_only, r"split_on_punctuation"),
        ("wordpiece", unk_only_the_unmatched_part, "wordpiece"),
        ("truncated_lengths", odd_token_to_the_first, "truncated_lengths"),
        ("join_wordpieces", slow_cleanup, "join_wordpieces"),
        ("merge_pair", merge_overlapping, "merge_pair"),
        ("bytes_to_unicode", bytes_in_code_point_order, "bytes_to_unicode"),
        ("bpe", first_pair_not_lowest_rank, "bpe"),
        ("train_bpe", ties_by_token_strings, "merges, in order"),
    ],
)
def test_wrong_solution_fails(exercise: str, wrong: Any, message: str) -> None:
    _fails(exercise, wrong, message)


@pytest.mark.parametrize(
    "exercise",
    [
        "normalize_word",
        "split_on_punctuation",
        "wordpiece",
        "truncated_lengths",
        "join_wordpieces",
        "merge_pair",
        "bytes_to_unicode",
        "bpe",
    ],
)
def test_reference_passes(exercise: str) -> None:
    _run(exercise)
