"""BERT's WordPiece tokenizer, the pieces: the basic tokenizer, then greedy longest-match
WordPiece (Devlin et al., 2019, after Wu et al., 2016).

Text becomes tokens in three steps, each a function here:

1. ``split_words``: cut the text at whitespace, and around every CJK ideograph (Chinese is
   written without spaces, so each ideograph is a word). Each word keeps where it starts.
2. ``normalize_word``: drop control characters, strip accents (Unicode NFD, then drop the
   non-spacing marks: "é" is "e" + U+0301) and lower-case, remembering for every output
   character which input character it came from. ``split_on_punctuation`` then makes every
   punctuation character a word of its own.
3. ``wordpiece``: split a word into the longest prefix in the vocabulary, then the longest
   ``##``-continuation, and so on; a word with no split, or too long, is ``[UNK]``.

The rules are those of HuggingFace tokenizers' ``BertNormalizer``, ``BertPreTokenizer`` and
``WordPiece`` (what ``transformers.BertTokenizer`` runs); the legacy Python
``BertTokenizerLegacy`` agrees on all but a few inputs, listed in ``tests/test_tokenizers.py``.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping

__all__ = [
    "basic_tokenize",
    "is_cjk",
    "is_control",
    "is_punctuation",
    "is_whitespace",
    "normalize_word",
    "split_on_punctuation",
    "split_words",
    "wordpiece",
]

# The CJK Unified Ideographs blocks, as BERT defines "Chinese character" (not Hangul, not
# Hiragana or Katakana: those languages put spaces between words).
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_whitespace(ch: str) -> bool:
    """A separator: space, tab, newline, carriage return, or Unicode Zs/Zl/Zp."""
    return ch in " \t\n\r" or unicodedata.category(ch) in ("Zs", "Zl", "Zp")


def is_control(ch: str) -> bool:
    """A character BERT deletes: Unicode category C* (controls, format characters such as the
    zero-width space, unassigned) other than tab/newline/return, and U+FFFD (the replacement
    character left by bad decoding)."""
    if ch in "\t\n\r":
        return False
    return ch == "\ufffd" or unicodedata.category(ch).startswith("C")


def is_punctuation(ch: str) -> bool:
    """Unicode category P*, or any ASCII non-letter non-digit ("$", "^", "`" are symbols to
    Unicode, punctuation to BERT)."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(ch: str) -> bool:
    """A CJK ideograph, which BERT makes a word of its own."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def _char_class(chars: Iterable[str]) -> str:
    return "".join(re.escape(c) for c in chars)


_WHITESPACE = _char_class(chr(cp) for cp in range(sys.maxunicode + 1) if is_whitespace(chr(cp)))
_CJK = "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in CJK_RANGES)
_WORD = re.compile(f"[{_CJK}]|[^{_WHITESPACE}{_CJK}]+")
_WORD_NO_CJK = re.compile(f"[^{_WHITESPACE}]+")


def split_words(text: str, *, split_cjk: bool = True) -> list[tuple[str, int]]:
    """Cut ``text`` at whitespace, and around each CJK ideograph unless ``split_cjk`` is
    False: ``(word, start)`` pairs, ``start`` the index of the word's first character.

    >>> split_words("Hi  you你好!")
    [('Hi', 0), ('you', 4), ('你', 7), ('好', 8), ('!', 9)]
    """
    pattern = _WORD if split_cjk else _WORD_NO_CJK
    return [(m.group(), m.start()) for m in pattern.finditer(text)]


def normalize_word(
    word: str, *, lowercase: bool = True, strip_accents: bool | None = None
) -> tuple[str, list[int]]:
    """Drop control characters, strip accents, lower-case: the normalized word and, for each
    of its characters, the index in ``word`` of the character it came from.

    Accents are stripped when ``strip_accents`` is True, or when it is None and
    ``lowercase`` is (original BERT: uncased models are also accent-free). Each character is
    treated alone: NFD-decomposed, its non-spacing marks (category Mn) dropped, then
    lower-cased (one character may become several: "İ" lower-cased is "i" + U+0307).

    >>> normalize_word("Ça\\u200bva")
    ('cava', [0, 1, 3, 4])
    """
    strip = lowercase if strip_accents is None else strip_accents
    out: list[str] = []
    source: list[int] = []
    for i, ch in enumerate(word):
        if is_control(ch):
            continue
        if strip:
            decomposed = unicodedata.normalize("NFD", ch)
            ch = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
        if lowercase:
            ch = ch.lower()
        out.append(ch)
        source.extend([i] * len(ch))
    return "".join(out), source


def split_on_punctuation(word: str) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` of the pieces of ``word``: each punctuation character alone, each
    run of other characters together.

    >>> split_on_punctuation("don't!!")
    [(0, 3), (3, 4), (4, 5), (5, 6), (6, 7)]
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for i, ch in enumerate(word):
        if is_punctuation(ch):
            if start < i:
                spans.append((start, i))
            spans.append((i, i + 1))
            start = i + 1
    if start < len(word):
        spans.append((start, len(word)))
    return spans


def wordpiece(
    word: str,
    vocab: Mapping[str, int],
    *,
    unk_token: str = "[UNK]",
    max_chars: int = 100,
    prefix: str = "##",
) -> list[str]:
    """Greedy longest-match-first WordPiece: the longest prefix of ``word`` in ``vocab``, then
    the longest ``prefix + rest`` continuation, until the word is used up.

    The whole word becomes ``[unk_token]`` when some position has no match, or when it has
    more than ``max_chars`` characters (the search is quadratic in the word's length).

    >>> wordpiece("unaffable", {"un": 0, "##aff": 1, "##able": 2, "##a": 3})
    ['un', '##aff', '##able']
    """
    if len(word) > max_chars:
        return [unk_token]
    pieces: list[str] = []
    start = 0
    while start < len(word):
        for end in range(len(word), start, -1):  # the longest piece first
            piece = (prefix if start > 0 else "") + word[start:end]
            if piece in vocab:
                break
        else:
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


def basic_tokenize(
    text: str,
    *,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    split_cjk: bool = True,
    never_split: Iterable[str] = (),
) -> list[str]:
    """BERT's basic tokenizer: the words WordPiece then splits. A word equal to one in
    ``never_split`` is kept whole, neither normalized nor split at punctuation.

    >>> basic_tokenize("Héllo, WORLD!")
    ['hello', ',', 'world', '!']
    """
    keep = set(never_split)
    words: list[str] = []
    for word, _ in split_words(text, split_cjk=split_cjk):
        if word in keep:
            words.append(word)
            continue
        normal, _ = normalize_word(word, lowercase=lowercase, strip_accents=strip_accents)
        words.extend(normal[start:end] for start, end in split_on_punctuation(normal))
    return words
