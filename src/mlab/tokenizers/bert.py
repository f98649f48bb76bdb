"""BERT's tokenizer, whole: special tokens, sentence pairs, truncation, padding, batches,
offsets and decoding, around the WordPiece pieces of :mod:`mlab.tokenizers.wordpiece`.

Its outputs equal ``transformers.BertTokenizer``'s (``BertTokenizerFast``: the HuggingFace
``tokenizers`` pipeline) for the same vocabulary and options: ``input_ids``,
``token_type_ids``, ``attention_mask`` and ``offset_mapping``, with the same keyword names.
Each word's pieces are computed once and cached, which is what makes pure Python fast here:
a text of a million characters has only tens of thousands of distinct words.

    >>> tok = WordPieceTokenizer.from_file(minilm_vocab_path())  # doctest: +SKIP
    >>> tok("Hello, world!")["input_ids"]  # doctest: +SKIP
    [101, 7592, 1010, 2088, 999, 102]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlab.tokenizers.files import load_vocab_txt
from mlab.tokenizers.wordpiece import normalize_word, split_on_punctuation, split_words, wordpiece

__all__ = ["WordPieceTokenizer", "join_wordpieces", "pad_lengths", "truncated_lengths"]

Piece = tuple[int, int, int]  # (token id, start, end): the token and its characters in the text
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")


def truncated_lengths(
    n_first: int, n_second: int, budget: int, strategy: str = "longest_first"
) -> tuple[int, int]:
    """How many tokens of each sequence to keep so that together they fit ``budget``.

    ``longest_first`` takes tokens off the longer sequence until both are equally long, then
    off both in turn (the longer, or the second of two equal, keeps the odd one). ``only_first``
    and ``only_second`` take them off that sequence alone, and of a pair it must keep one
    token at least. One sequence: ``n_second=0``. A ValueError says when it cannot fit.

    >>> truncated_lengths(10, 4, 8)
    (4, 4)
    >>> truncated_lengths(10, 4, 7)
    (4, 3)
    >>> truncated_lengths(4, 4, 7)
    (3, 4)
    """
    if strategy not in TRUNCATION_STRATEGIES:
        raise ValueError(f"truncation={strategy!r} is unknown: use one of {TRUNCATION_STRATEGIES}")
    if budget < 0:
        raise ValueError(f"max_length leaves {budget} tokens for the text: raise max_length")
    excess = n_first + n_second - budget
    if excess <= 0:
        return n_first, n_second
    if budget == 0:  # room for the special tokens alone: HF empties both, whatever the strategy
        return 0, 0
    if strategy != "longest_first":
        second = strategy == "only_second"
        have = n_second if second else n_first
        # Of a pair, the truncated one keeps a token at least (HF raises otherwise); alone,
        # it can lose them all only when budget == 0, returned above.
        if excess >= have:
            raise ValueError(
                f"truncation={strategy!r} cannot fit {n_first}+{n_second} tokens into {budget}: "
                f"the sequence it truncates has {have} tokens and must lose {excess} (of a "
                "pair, each keeps one at least); raise max_length or use "
                "truncation='longest_first'"
            )
        return (n_first, n_second - excess) if second else (n_first - excess, n_second)
    if budget >= 2 * min(n_first, n_second):  # the longer one alone loses tokens
        return (budget - n_second, n_second) if n_first > n_second else (n_first, budget - n_first)
    low, high = budget // 2, budget - budget // 2  # both lose; the longer keeps the odd one
    return (high, low) if n_first > n_second else (low, high)


def pad_lengths(length: int, target: int, multiple: int | None = None) -> int:
    """The padded length of a sequence of ``length`` tokens: ``target`` rounded up to a
    multiple of ``multiple`` (when given); a longer sequence keeps its length, unpadded.

    >>> pad_lengths(5, 10, 8), pad_lengths(21, 16, 8)
    (16, 21)
    """
    if multiple:
        target = -(-target // multiple) * multiple
    return max(length, target)


def join_wordpieces(tokens: Sequence[str], *, clean_up: bool = True) -> str:
    """Text from WordPiece tokens: a ``##`` piece is glued to the one before, the others are
    separated by spaces; ``clean_up`` removes the space before ``. , ? !`` and before the
    English contractions ``n't 'm 's 've 're``, as HuggingFace's WordPiece decoder does.

    >>> join_wordpieces(["i", "don", "##e", "it", "!"])
    'i done it!'
    """
    text = "".join(
        tok[2:] if tok.startswith("##") and i > 0 else (" " + tok if i > 0 else tok)
        for i, tok in enumerate(tokens)
    )
    if clean_up:
        for before, after in (
            (" .", "."),
            (" ?", "?"),
            (" !", "!"),
            (" ,", ","),
            (" n't", "n't"),
            (" 'm", "'m"),
            (" 's", "'s"),
            (" 've", "'ve"),
            (" 're", "'re"),
        ):
            text = text.replace(before, after)
    return text


class WordPieceTokenizer:
    """BERT's tokenizer for a WordPiece vocabulary (token → id).

    Options as ``transformers.BertTokenizer``'s: ``lowercase`` (``do_lower_case``),
    ``strip_accents`` (None: as ``lowercase``), ``split_cjk`` (``tokenize_chinese_chars``),
    ``never_split`` (words kept whole), the five special tokens, ``max_chars_per_word``
    (longer words are ``[UNK]``) and ``model_max_length`` (the truncation length when
    ``max_length`` is not given).
    """

    def __init__(
        self,
        vocab: Mapping[str, int],
        *,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        split_cjk: bool = True,
        never_split: Iterable[str] = (),
        unk_token: str = "[UNK]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
        cls_token: str = "[CLS]",
        mask_token: str = "[MASK]",
        max_chars_per_word: int = 100,
        model_max_length: int = 512,
    ) -> None:
        self.vocab = dict(vocab)
        self.ids_to_tokens = {i: tok for tok, i in self.vocab.items()}
        self.lowercase, self.strip_accents, self.split_cjk = lowercase, strip_accents, split_cjk
        self.never_split = frozenset(never_split)
        self.max_chars_per_word, self.model_max_length = max_chars_per_word, model_max_length
        specials = {"unk": unk_token, "sep": sep_token, "pad": pad_token, "cls": cls_token}
        specials["mask"] = mask_token
        for role, token in specials.items():
            if token not in self.vocab:
                raise ValueError(
                    f"{role}_token={token!r} is not in the vocabulary ({len(self.vocab)} "
                    f"tokens): pass {role}_token= one of its tokens"
                )
        self.unk_token, self.sep_token, self.pad_token = unk_token, sep_token, pad_token
        self.cls_token, self.mask_token = cls_token, mask_token
        self.special_ids = frozenset(self.vocab[t] for t in specials.values())
        by_length = sorted(specials.values(), key=len, reverse=True)
        self._specials = re.compile("|".join(re.escape(t) for t in by_length))
        self._cache: dict[str, tuple[Piece, ...]] = {}

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> WordPieceTokenizer:
        """A tokenizer for the vocabulary in ``path`` (BERT's ``vocab.txt``)."""
        return cls(load_vocab_txt(path), **options)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _word_pieces(self, word: str) -> tuple[Piece, ...]:
        """The pieces of one whitespace-delimited word, offsets relative to its start."""
        if word in self.never_split:
            return ((self.vocab.get(word, self.vocab[self.unk_token]), 0, len(word)),)
        normal, source = normalize_word(
            word, lowercase=self.lowercase, strip_accents=self.strip_accents
        )
        unk = self.vocab[self.unk_token]
        pieces: list[Piece] = []
        for start, end in split_on_punctuation(normal):
            tokens = wordpiece(
                normal[start:end],
                self.vocab,
                unk_token=self.unk_token,
                max_chars=self.max_chars_per_word,
            )
            if tokens == [self.unk_token]:  # the whole word, however long
                pieces.append((unk, source[start], source[end - 1] + 1))
                continue
            for k, tok in enumerate(tokens):
                n = len(tok) - 2 if k > 0 else len(tok)  # "##" is not in the text
                pieces.append((self.vocab[tok], source[start], source[start + n - 1] + 1))
                start += n
        return tuple(pieces)

    def pieces(self, text: str) -> list[Piece]:
        """``(id, start, end)`` for each token of ``text``, no special tokens added (special
        tokens written in the text are recognised)."""
        out: list[Piece] = []
        position = 0
        for match in [*self._specials.finditer(text), None]:
            end = len(text) if match is None else match.start()
            for word, start in split_words(text[position:end], split_cjk=self.split_cjk):
                cached = self._cache.get(word)
                if cached is None:
                    cached = self._cache[word] = self._word_pieces(word)
                offset = position + start
                out.extend((i, offset + a, offset + b) for i, a, b in cached)
            if match is not None:
                out.append((self.vocab[match.group()], match.start(), match.end()))
                position = match.end()
        return out

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` as strings, no special tokens added."""
        return [self.ids_to_tokens[i] for i, _, _ in self.pieces(text)]

    def encode(self, text: str, pair: str | None = None, **options: Any) -> list[int]:
        """``self(text, pair, **options)["input_ids"]``."""
        ids: list[int] = self(text, pair, **options)["input_ids"]
        return ids

    def __call__(
        self,
        text: str,
        pair: str | None = None,
        *,
        add_special_tokens: bool = True,
        truncation: bool | str = False,
        max_length: int | None = None,
        padding: bool | str = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str = "right",
        return_offsets_mapping: bool = False,
    ) -> dict[str, Any]:
        """Encode ``text`` (and ``pair``) as BERT's input: ``[CLS] A [SEP] B [SEP]``, with
        ``input_ids``, ``token_type_ids`` (0 for A, 1 for B), ``attention_mask`` (0 on
        padding) and, when asked, ``offset_mapping`` (each token's characters; ``(0, 0)``
        for special and padding tokens). The keywords mean what they mean to HuggingFace:
        ``truncation`` True or one of ``longest_first``, ``only_first``, ``only_second``;
        ``padding`` True/``"longest"`` (a no-op for one text) or ``"max_length"``."""
        batch = self.batch(
            [text],
            None if pair is None else [pair],
            add_special_tokens=add_special_tokens,
            truncation=truncation,
            max_length=max_length,
            padding=padding,
            pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side,
            return_offsets_mapping=return_offsets_mapping,
        )
        return {key: value[0] for key, value in batch.items()}

    def batch(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        *,
        add_special_tokens: bool = True,
        truncation: bool | str = False,
        max_length: int | None = None,
        padding: bool | str = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str = "right",
        return_offsets_mapping: bool = False,
    ) -> dict[str, list[Any]]:
        """Encode a batch: each entry as ``__call__`` describes, padded together."""
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs: give one pair per text")
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side={padding_side!r} is unknown: use 'right' or 'left'")
        strategy = "longest_first" if truncation is True else truncation or None
        limit = self.model_max_length if max_length is None else max_length
        if strategy and padding and pad_to_multiple_of and limit % pad_to_multiple_of:
            raise ValueError(
                f"max_length={limit} is not a multiple of pad_to_multiple_of="
                f"{pad_to_multiple_of}: truncating to it and padding to a multiple cannot "
                "both hold; make max_length a multiple"
            )
        rows = []
        for n, text in enumerate(texts):
            first = self.pieces(text)
            second = None if pairs is None else self.pieces(pairs[n])
            if strategy is not None:
                specials = (2 if second is None else 3) if add_special_tokens else 0
                keep_first, keep_second = truncated_lengths(
                    len(first), len(second or ()), limit - specials, str(strategy)
                )
                first = first[:keep_first]
                second = None if second is None else second[:keep_second]
            rows.append(self._with_specials(first, second, add_special_tokens))
        if padding in (True, "longest"):
            target: int | None = max(len(row) for row in rows)
        elif padding == "max_length":
            target = limit
        elif padding in (False, "do_not_pad"):
            target = None
        else:
            raise ValueError(
                f"padding={padding!r} is unknown: use True, 'longest', 'max_length' or False"
            )
        out: dict[str, list[Any]] = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
        if return_offsets_mapping:
            out["offset_mapping"] = []
        pad_id = self.vocab[self.pad_token]
        for row in rows:
            length = len(row)
            if target is not None:
                length = pad_lengths(length, target, pad_to_multiple_of)
            fill = [((pad_id, 0, 0), 0, 0)] * (length - len(row))
            full = row + fill if padding_side == "right" else fill + row
            out["input_ids"].append([piece[0] for piece, _, _ in full])
            out["token_type_ids"].append([type_id for _, type_id, _ in full])
            out["attention_mask"].append([mask for _, _, mask in full])
            if return_offsets_mapping:
                out["offset_mapping"].append([(a, b) for (_, a, b), _, _ in full])
        return out

    def _with_specials(
        self, first: list[Piece], second: list[Piece] | None, add_special_tokens: bool
    ) -> list[tuple[Piece, int, int]]:
        """``[CLS] A [SEP] B [SEP]`` as (piece, token type, attention) triples."""
        cls = [(self.vocab[self.cls_token], 0, 0)] if add_special_tokens else []
        sep = [(self.vocab[self.sep_token], 0, 0)] if add_special_tokens else []
        row = [(piece, 0, 1) for piece in (*cls, *first, *sep)]
        if second is not None:
            row += [(piece, 1, 1) for piece in (*second, *sep)]
        return row

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        """The token of each id; an id outside the vocabulary is an error naming it."""
        tokens = []
        for position, i in enumerate(ids):
            if i not in self.ids_to_tokens:
                raise ValueError(
                    f"id {i!r} at position {position} is not in the vocabulary (ids 0.."
                    f"{len(self.vocab) - 1}): decode only ids this tokenizer produced"
                )
            tokens.append(self.ids_to_tokens[i])
        return tokens

    def decode(
        self, ids: Sequence[int], *, skip_special_tokens: bool = False, clean_up: bool = True
    ) -> str:
        """Text from ids: WordPiece tokens joined as :func:`join_wordpieces` does, the special
        tokens left out when ``skip_special_tokens``."""
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            tokens = [t for t, i in zip(tokens, ids, strict=True) if i not in self.special_ids]
        return join_wordpieces(tokens, clean_up=clean_up)
