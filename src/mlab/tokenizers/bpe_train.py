"""Training byte-level BPE: learn GPT-2-style merges from a corpus (Sennrich et al., 2016).

The corpus is cut into pieces with GPT-2's pattern and each distinct piece counted once
with its frequency: merges never cross pieces, so "the" appearing 20,000 times is one word
of weight 20,000. Then, again and again, the most frequent adjacent pair of tokens becomes
a new token.

Counting every pair of every word after each merge would cost the whole corpus per merge.
Instead the pair counts are kept up to date: a merge changes only the words that hold the
merged pair (an index maps each pair to those words), and only their pairs' counts change.
A heap gives the most frequent pair: each pair whose count changes is pushed again with its
new count, and an entry that no longer holds its pair's count (stale) is dropped when it
comes to the top.

Ties, and ids, follow HuggingFace ``tokenizers``' ``BpeTrainer`` exactly, so the merges are
the same: special tokens take the first ids, then the 256 byte characters sorted by code
point, then each new token in the order it is made; among pairs of equal count, the one
with the smaller (left id, right id) wins.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import pairwise

from mlab.tokenizers.bpe import BPETokenizer, bytes_to_unicode, pretokenize

__all__ = ["count_pieces", "merge_pair", "train_bpe"]


def count_pieces(texts: Iterable[str]) -> Counter[str]:
    """How often each piece occurs (pieces from :func:`pretokenize`, written with
    :func:`bytes_to_unicode`'s characters: " the" is counted as "Ġthe")."""
    table = bytes_to_unicode()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(pretokenize(text))
    return Counter(
        {"".join(table[b] for b in piece.encode("utf-8")): n for piece, n in counts.items()}
    )


def merge_pair(word: list[int], left: int, right: int, new: int) -> list[int]:
    """``word`` with every occurrence of ``left, right`` replaced by ``new`` (an id other
    than ``left``), left to right: ``a a a`` merging ``a a`` gives ``aa a``. A new list;
    ``word`` is left as it was.

    >>> merge_pair([1, 2, 1, 2, 2], 1, 2, 9)
    [9, 9, 2]
    """
    out: list[int] = []
    for token in word:
        if out and out[-1] == left and token == right:
            out[-1] = new  # new != left: the merged token never merges again
        else:
            out.append(token)
    return out


def train_bpe(
    texts: Iterable[str],
    vocab_size: int,
    *,
    min_frequency: int = 2,
    special_tokens: Sequence[str] = (),
) -> BPETokenizer:
    """Learn byte-level BPE merges from ``texts`` until the vocabulary has ``vocab_size``
    tokens (specials, 256 bytes, merges) or no pair occurs ``min_frequency`` times.

    The same merges and ids as ``tokenizers.ByteLevelBPETokenizer().train_from_iterator(
    texts, vocab_size, min_frequency, special_tokens)``.
    """
    if vocab_size < len(special_tokens) + 256:
        raise ValueError(
            f"vocab_size={vocab_size} leaves no room for the 256 byte tokens and "
            f"{len(special_tokens)} special tokens: use at least {len(special_tokens) + 256}"
        )
    id_to_token = list(dict.fromkeys([*special_tokens, *sorted(bytes_to_unicode().values())]))
    token_to_id = {tok: i for i, tok in enumerate(id_to_token)}
    counted = count_pieces(texts)
    words = [[token_to_id[ch] for ch in piece] for piece in counted]
    weights = list(counted.values())

    pair_counts: Counter[tuple[int, int]] = Counter()
    where: dict[tuple[int, int], set[int]] = {}  # pair -> the words that hold (or held) it
    for w, word in enumerate(words):
        for pair in pairwise(word):
            pair_counts[pair] += weights[w]
            where.setdefault(pair, set()).add(w)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[str, str]] = []
    while len(token_to_id) < vocab_size and heap:
        negative, pair = heapq.heappop(heap)
        count = pair_counts[pair]
        if -negative != count:  # stale: the count changed since, and was pushed again then
            continue
        if count < max(min_frequency, 1):
            break
        left, right = id_to_token[pair[0]], id_to_token[pair[1]]
        token = left + right
        if token not in token_to_id:  # two different pairs can spell the same token
            token_to_id[token] = len(id_to_token)
            id_to_token.append(token)
        merges.append((left, right))
        new = token_to_id[token]
        changed: set[tuple[int, int]] = set()
        for w in where.pop(pair):
            word = words[w]
            words[w] = merge_pair(word, pair[0], pair[1], new)
            before, after = Counter(pairwise(word)), Counter(pairwise(words[w]))
            for p, n in (after - before).items():
                pair_counts[p] += n * weights[w]
                where.setdefault(p, set()).add(w)
                changed.add(p)
            for p, n in (before - after).items():
                pair_counts[p] -= n * weights[w]
                changed.add(p)
        for p in changed:  # each changed count gets an entry: the old ones are now stale
            heapq.heappush(heap, (-pair_counts[p], p))
    return BPETokenizer(token_to_id, merges, special_tokens=special_tokens)
