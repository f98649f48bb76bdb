"""Checks for part 2 of w2d3: GPT-2's byte-level BPE against HuggingFace: transformers'
own ``bytes_to_unicode``, the ``tokenizers`` BPE model (built from merges that
``tokenizers``' BpeTrainer learned on a passage, and from GPT-2's real files when
``$MLAB_DATA_DIR`` has them) for bpe and merge_pair, and the BpeTrainer itself for
train_bpe, ties and all."""

from __future__ import annotations

import json
import random
import tempfile
from functools import cache
from pathlib import Path

from tokenizers import ByteLevelBPETokenizer, models
from transformers.convert_slow_tokenizer import bytes_to_unicode as hf_bytes_to_unicode

from mlab.course.engine.checks import Namespace, check
from mlab.errors import DataError
from mlab.testing import assert_equal, assert_raises, case
from mlab.tokenizers.adversarial import adversarial_texts
from mlab.tokenizers.bpe import bytes_to_unicode, pretokenize
from mlab.tokenizers.files import gpt2_files, load_merges, load_vocab_json

PASSAGE = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?

All:
Resolved. resolved.

First Citizen:
First, you know Caius Marcius is chief enemy to the people.
"""


def _hf_train(
    texts: list[str], vocab_size: int, min_frequency: int, specials: list[str]
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(
        texts,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        show_progress=False,
    )
    with tempfile.TemporaryDirectory() as folder:
        trainer.save_model(folder)
        return load_vocab_json(Path(folder, "vocab.json")), load_merges(Path(folder, "merges.txt"))


@cache
def _passage_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    return _hf_train(PASSAGE.splitlines(keepends=True) * 3, 256 + 120, 2, [])


@check("bytes_to_unicode")
def bytes_to_unicode_equals_transformers(ns: Namespace) -> None:
    with case("bytes_to_unicode()"):
        want = hf_bytes_to_unicode()  # type: ignore[no-untyped-call]
        assert_equal(ns.bytes_to_unicode(), want, what="table")


def _pieces() -> list[str]:
    table = bytes_to_unicode()
    texts = [PASSAGE, *adversarial_texts(), "aaaaaaa bbbbbb abababab"]
    pieces = {p for text in texts for p in pretokenize(text)}
    return sorted("".join(table[b] for b in p.encode("utf-8")) for p in pieces)


@cache
def _expected(merges_from: str) -> tuple[dict[tuple[str, str], int], list[tuple[str, list[str]]]]:
    """Ranks, and each piece with the BPE model's tokens for it, for the merges learned from
    the passage or GPT-2's (computed once per check process)."""
    if merges_from == "passage":
        vocab, merges = _passage_bpe()
    else:
        vocab_path, merges_path = gpt2_files()
        vocab, merges = load_vocab_json(vocab_path), load_merges(merges_path)
    model = models.BPE(vocab, merges)
    ranks = {pair: rank for rank, pair in enumerate(merges)}
    return ranks, [(piece, [t.value for t in model.tokenize(piece)]) for piece in _pieces()]


def _compare_bpe(ns: Namespace, merges_from: str, name: str) -> None:
    cached, expected = _expected(merges_from)
    ranks = dict(cached)  # a copy: what the code under check does to it stays here
    for piece, want in expected:
        with case(f"bpe({piece!r}, <{name}>)"):
            assert_equal(ns.bpe(piece, ranks), want, what="tokens")


@check("bpe")
def bpe_equals_the_bpe_model(ns: Namespace) -> None:
    _compare_bpe(ns, "passage", "merges learned from a passage")
    with case("bpe('', ranks)"):
        assert_equal(ns.bpe("", {("a", "b"): 0}), [], what="tokens")


@check("bpe")
def bpe_equals_the_bpe_model_on_gpt2s_files(ns: Namespace) -> None:
    try:
        gpt2_files()
    except DataError:
        return  # GPT-2's files are optional here: the passage's merges were checked
    _compare_bpe(ns, "gpt2", "GPT-2's merges")


@check("merge_pair")
def merge_pair_equals_one_bpe_merge(ns: Namespace) -> None:
    rng = random.Random(0)
    alphabet = "abc"
    words = ["", "a", "ab", "ba", "aab", "aaa", "aaaa", "abab", "abcab", "bab"]
    words += ["".join(rng.choice(alphabet) for _ in range(rng.randint(2, 12))) for _ in range(60)]
    for left, right in (("a", "b"), ("a", "a"), ("b", "a"), ("c", "c")):
        vocab = {ch: i for i, ch in enumerate(alphabet)} | {left + right: 3}
        model = models.BPE(vocab, [(left, right)])
        for word in words:
            ids = [vocab[ch] for ch in word]
            with case(f"merge_pair({ids}, {vocab[left]}, {vocab[right]}, 3)", word=word):
                want = [vocab[t.value] for t in model.tokenize(word)] if word else []
                before = list(ids)
                got = ns.merge_pair(ids, vocab[left], vocab[right], 3)
                assert_equal(got, want, what="merged word")
                assert_equal(ids, before, what="the word passed in (changed in place)")


def _random_words(n: int, letters: str, seed: int) -> list[str]:
    """``n`` random words of 3 to 8 letters, 20 to a line: nearly all distinct, so pairs
    have few occurrences each, and many tie."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(letters, k=rng.randint(3, 8))) for _ in range(n)]
    return [" ".join(words[i : i + 20]) for i in range(0, len(words), 20)]


CORPORA: tuple[tuple[list[str], int, int, list[str]], ...] = (
    (PASSAGE.splitlines(keepends=True), 256 + 80, 2, []),
    (PASSAGE.splitlines(keepends=True), 256 + 300, 1, ["<|endoftext|>", "<pad>"]),
    (["ab ba cd dc abcd", "aaaa bbbb", "xy yx xy yx", "é ü 日本 日本"], 270, 1, []),
    (["ab ba cd dc abcd", "aaaa bbbb", "xy yx xy yx", "é ü 日本 日本"], 300, 2, []),
    (["aaaaaaaaaaaaaaaa", "aaaaaaa aaaaaaa"], 300, 1, []),
    ([text for text in adversarial_texts() if text], 256 + 200, 2, []),
    # no room for a merge: just the special token and the bytes
    (["ab ab ab"], 256 + 1, 1, ["<s>"]),
    # min_frequency 0 merges only pairs that occur, as 1 does
    (["ab ab cd", "aaa ba"], 300, 0, []),
    # many ties, and counts that go stale and grow back
    (_random_words(400, "abcd", seed=2), 256 + 150, 1, []),
    (_random_words(400, "abcdé", seed=3), 256 + 100, 3, ["<s>"]),
)


@cache
def _trained(corpus: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """What the BpeTrainer learns from CORPORA[corpus]."""
    return _hf_train(*CORPORA[corpus])


@check("train_bpe")
def train_bpe_equals_the_bpe_trainer(ns: Namespace) -> None:
    for corpus, (texts, size, min_frequency, specials) in enumerate(CORPORA):
        label = f"{len(texts)} texts, vocab_size={size}, min_frequency={min_frequency}"
        with case(f"train_bpe(<{label}>, special_tokens={specials})"):
            vocab, merges = _trained(corpus)
            got = ns.train_bpe(texts, size, min_frequency=min_frequency, special_tokens=specials)
            learned = sorted(got.ranks, key=got.ranks.__getitem__)
            assert_equal(learned, merges, what="merges, in order")
            assert_equal(got.vocab, vocab, what="vocab")
    with case("the default min_frequency, 2"):
        got = ns.train_bpe(["ab ab cd"], 300)
        assert_equal(sorted(got.ranks, key=got.ranks.__getitem__), [("a", "b")], what="merges")
    with case("vocab_size smaller than the bytes and special tokens"):
        assert_raises(ns.train_bpe, ["ab"], 256, special_tokens=["<s>"], exc=ValueError)


@cache
def _many_words() -> tuple[list[str], dict[str, int], list[tuple[str, str]]]:
    texts = _random_words(25_000, "abcdefghijklmnopqrstuvwxyz", seed=1)
    return texts, *_hf_train(texts, 256 + 200, 2, [])


@check("train_bpe")
def train_bpe_counts_pairs_incrementally(ns: Namespace) -> None:
    texts, vocab, merges = _many_words()
    with case(
        "200 merges over 25,000 distinct words (keeping the pair counts up to date takes "
        "a second; recounting every pair after each merge, about 20 s)"
    ):
        got = ns.train_bpe(texts, 256 + 200)
        assert_equal(sorted(got.ranks, key=got.ranks.__getitem__), merges, what="merges")
        assert_equal(json.dumps(got.vocab, sort_keys=True), json.dumps(vocab, sort_keys=True))
