"""GPT-2's byte-level BPE tokenizer: encoder and decoder (Radford et al., 2019; BPE for words
after Sennrich et al., 2016).

Byte-level BPE never meets an unknown character: text is UTF-8 bytes, and the 256 bytes are
the starting vocabulary. Three steps turn text into ids:

1. ``pretokenize``: GPT-2's regular expression cuts the text into words, numbers, runs of
   punctuation and runs of whitespace, a leading space kept with the word (" world"), so
   no merge ever crosses a word boundary.
2. ``bytes_to_unicode``: each byte of a piece is written as one printable character, so that
   vocabulary entries are readable strings ("Ġworld": the space byte is shown as "Ġ").
3. ``bpe``: starting from single characters, repeatedly merge the adjacent pair with the
   lowest rank (the merge learned earliest) until no learned merge applies.

Decoding maps ids to those characters, the characters back to bytes, and the bytes to text
(UTF-8, a broken sequence shown as U+FFFD as HuggingFace does). Equal to
``transformers.GPT2Tokenizer`` and ``tiktoken``'s GPT-2 encoding, token for token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import regex

from mlab.tokenizers.files import load_merges, load_vocab_json, save_merges, save_vocab_json

__all__ = ["GPT2_PATTERN", "BPETokenizer", "bpe", "bytes_to_unicode", "pretokenize"]

# GPT-2's pre-tokenisation (OpenAI's encoder.py): contractions, letters, digits, other
# characters each with an optional leading space, then whitespace; "\s+(?!\S)" leaves the
# last space of a run to start the next word.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_PIECES = regex.compile(GPT2_PATTERN)


def bytes_to_unicode() -> dict[int, str]:
    """A printable character for each of the 256 bytes.

    Bytes that are printable Latin-1 characters ("!".."~", "¡".."¬", "®".."ÿ": 188 of them)
    stand for themselves; the other 68 (controls, space, soft hyphen) take the characters
    from U+0100 on, in byte order: byte 0 is "Ā", the space (32) is "Ġ", newline (10) "Ċ".

    >>> table = bytes_to_unicode()
    >>> table[ord("A")], table[ord(" ")], table[ord("\\n")], len(set(table.values()))
    ('A', 'Ġ', 'Ċ', 256)
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    table = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shift)
            shift += 1
    return table


def pretokenize(text: str) -> list[str]:
    """Cut ``text`` into GPT-2's pieces with :data:`GPT2_PATTERN`.

    >>> pretokenize("Hello world's  42!!")
    ['Hello', ' world', "'s", ' ', ' 42', '!!']
    """
    pieces: list[str] = _PIECES.findall(text)
    return pieces


def bpe(word: str, ranks: Mapping[tuple[str, str], int]) -> list[str]:
    """Byte-pair encode one piece (already written with :func:`bytes_to_unicode`): start
    from its characters and merge, again and again, the adjacent pair with the lowest rank
    (every occurrence of that pair, left to right), until no pair has a rank.

    >>> bpe("hello", {("l", "l"): 0, ("h", "e"): 1, ("he", "ll"): 2, ("ll", "o"): 3})
    ['hell', 'o']
    """
    parts = list(word)
    while len(parts) > 1:
        pairs = {(parts[i], parts[i + 1]) for i in range(len(parts) - 1)}
        best = min(pairs, key=lambda pair: ranks.get(pair, len(ranks)))
        if best not in ranks:
            break
        merged: list[str] = []
        for part in parts:
            # a joined token is longer than best[0], so it never joins again: "a a a" with
            # best ("a", "a") gives "aa a", left to right
            if merged and (merged[-1], part) == best:
                merged[-1] += part
            else:
                merged.append(part)
        parts = merged
    return parts


class BPETokenizer:
    """GPT-2's tokenizer for a vocabulary (token → id) and ranked merges.

    Special tokens (by default ``<|endoftext|>`` when the vocabulary has it) written in the
    text are encoded as themselves, as HuggingFace's ``GPT2Tokenizer`` does.
    """

    def __init__(
        self,
        vocab: Mapping[str, int],
        merges: Sequence[tuple[str, str]],
        *,
        special_tokens: Iterable[str] | None = None,
    ) -> None:
        self.vocab = dict(vocab)
        self.ids_to_tokens = {i: tok for tok, i in self.vocab.items()}
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {ch: b for b, ch in self.byte_encoder.items()}
        missing = [ch for ch in self.byte_encoder.values() if ch not in self.vocab]
        if missing:
            raise ValueError(
                f"the vocabulary lacks {len(missing)} of the 256 byte tokens (e.g. "
                f"{missing[0]!r}): a byte-level vocabulary must hold every byte"
            )
        for rank, (left, right) in enumerate(merges):
            if left + right not in self.vocab:
                raise ValueError(
                    f"merge {rank} ({left!r}, {right!r}) makes {left + right!r}, which is not "
                    "in the vocabulary: vocab and merges must come from the same training"
                )
        if special_tokens is None:
            special_tokens = [t for t in ("<|endoftext|>",) if t in self.vocab]
        self.special_tokens = list(special_tokens)
        for tok in self.special_tokens:
            if tok not in self.vocab:
                raise ValueError(
                    f"special token {tok!r} is not in the vocabulary: add it there, or leave "
                    "it out of special_tokens"
                )
        by_length = sorted(self.special_tokens, key=len, reverse=True)
        self._specials = regex.compile("|".join(regex.escape(t) for t in by_length) or "(?!)")
        self._cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_files(
        cls, vocab_path: str | Path, merges_path: str | Path, **options: Iterable[str] | None
    ) -> BPETokenizer:
        """A tokenizer from GPT-2's ``vocab.json`` and ``merges.txt``."""
        return cls(load_vocab_json(vocab_path), load_merges(merges_path), **options)

    def save(self, folder: str | Path) -> tuple[Path, Path]:
        """Write ``vocab.json`` and ``merges.txt`` into ``folder`` (GPT-2's format, which
        ``GPT2Tokenizer.from_pretrained(folder)`` loads); returns their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        merges = sorted(self.ranks, key=self.ranks.__getitem__)
        save_vocab_json(self.vocab, folder / "vocab.json")
        save_merges(merges, folder / "merges.txt")
        return folder / "vocab.json", folder / "merges.txt"

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _piece_ids(self, piece: str) -> tuple[int, ...]:
        ids = self._cache.get(piece)
        if ids is None:
            chars = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids = self._cache[piece] = tuple(self.vocab[t] for t in bpe(chars, self.ranks))
        return ids

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``."""
        ids: list[int] = []
        position = 0
        for match in [*self._specials.finditer(text), None]:
            end = len(text) if match is None else match.start()
            for piece in _PIECES.findall(text[position:end]):
                ids.extend(self._piece_ids(piece))
            if match is not None:
                ids.append(self.vocab[match.group()])
                position = match.end()
        return ids

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` as vocabulary strings ("Ġworld")."""
        return [self.ids_to_tokens[i] for i in self.encode(text)]

    def decode(self, ids: Sequence[int]) -> str:
        """Text from ids: bytes from the tokens' characters, then UTF-8 (invalid bytes become
        U+FFFD). An id outside the vocabulary is an error naming it."""
        data = bytearray()
        for position, i in enumerate(ids):
            if i not in self.ids_to_tokens:
                raise ValueError(
                    f"id {i!r} at position {position} is not in the vocabulary (ids 0.."
                    f"{len(self.vocab) - 1}): decode only ids this tokenizer produced"
                )
            token = self.ids_to_tokens[i]
            if token in self.special_tokens:
                data += token.encode("utf-8")
            else:
                data += bytes(self.byte_decoder[ch] for ch in token)
        return data.decode("utf-8", errors="replace")
