"""Checks for part 1 of w2d3: BERT's WordPiece, each piece against HuggingFace ``tokenizers``
(the Rust pipeline ``transformers.BertTokenizer`` runs): ``BertNormalizer`` for
normalize_word, ``BertPreTokenizer`` for split_on_punctuation, the ``WordPiece`` model on
MiniLM's real vocabulary for wordpiece, the library's truncation for truncated_lengths, and
the ``WordPiece`` decoder for join_wordpieces. Inputs: a passage of Shakespeare and the
adversarial corpus of ``mlab.tokenizers.adversarial`` (accents, CJK, emoji, zero-width and
control characters, long words, empty strings)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

from mlab.course.engine.checks import Namespace, check
from mlab.testing import assert_equal, assert_raises, case, expect
from mlab.tokenizers.adversarial import adversarial_texts
from mlab.tokenizers.files import load_vocab_txt, minilm_vocab_path
from mlab.tokenizers.wordpiece import split_words

PASSAGE = """First Citizen:
Before we proceed any further, hear me speak.
All: Speak, speak. You are all resolved rather to die than to famish?
MENENIUS: What work's, my countrymen, in hand? where go you
With bats and clubs? The matter? speak, I pray you.
Unaccustomed, unfathomable, superserviceable! O, I'll not be thus jaded."""


@cache
def _vocab() -> dict[str, int]:
    return load_vocab_txt(minilm_vocab_path())


@cache
def _words() -> list[str]:
    texts = [PASSAGE, *adversarial_texts()]
    return list(dict.fromkeys(w for text in texts for w, _ in split_words(text)))


OPTIONS = ((True, None), (False, None), (True, False), (False, True), (True, True))


@check("normalize_word")
def normalize_word_equals_bert_normalizer(ns: Namespace) -> None:
    for lowercase, strip in OPTIONS:
        hf = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=False, strip_accents=strip, lowercase=lowercase
        )
        for word in _words():
            with case(f"normalize_word({word!r}, lowercase={lowercase}, strip_accents={strip})"):
                normal, source = ns.normalize_word(word, lowercase=lowercase, strip_accents=strip)
                assert_equal(normal, hf.normalize_str(word), what="normalized word")
                expect(
                    len(source) == len(normal),
                    f"{len(source)} source indices for {len(normal)} characters: give one "
                    "index per character of the normalized word",
                )
                for i, ch in enumerate(word):
                    mine = "".join(c for c, s in zip(normal, source, strict=True) if s == i)
                    expect(
                        mine == hf.normalize_str(ch),
                        f"the characters that came from word[{i}] = {ch!r} should be "
                        f"{hf.normalize_str(ch)!r}, but source points {mine!r} at it",
                    )
    with case("the defaults: lower-case and strip accents"):
        assert_equal(ns.normalize_word("ÉcOLE"), ("ecole", [0, 1, 2, 3, 4]))


@check("split_on_punctuation")
def split_on_punctuation_equals_bert_pre_tokenizer(ns: Namespace) -> None:
    hf = pre_tokenizers.BertPreTokenizer()
    # words as they come to it: normalized, CJK left alone (it would pad them with spaces)
    normal = normalizers.BertNormalizer(lowercase=False, handle_chinese_chars=False)
    extra = ["", "!", "...", "a.b", "don't", "(x)", "$5", "^_^", "«mot»", "a¿b", "C++"]
    for word in [*(normal.normalize_str(w) for w in _words()), *extra]:
        with case(f"split_on_punctuation({word!r})"):
            want = [span for _, span in hf.pre_tokenize_str(word)]
            assert_equal(ns.split_on_punctuation(word), want, what="spans")


def _hf_wordpiece(
    vocab: dict[str, int], word: str, unk: str, max_chars: int, prefix: str
) -> list[str]:
    model = models.WordPiece(
        vocab, unk_token=unk, max_input_chars_per_word=max_chars, continuing_subword_prefix=prefix
    )
    return [token.value for token in model.tokenize(word)]


@check("wordpiece")
def wordpiece_equals_the_wordpiece_model(ns: Namespace) -> None:
    vocab = _vocab()
    model = models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100)
    normal = normalizers.BertNormalizer(lowercase=True)
    words = [normal.normalize_str(w) for w in _words()]
    for word in [w for w in words if w]:
        with case(f"wordpiece({word!r}, <MiniLM's vocab>)"):
            want = [token.value for token in model.tokenize(word)]
            assert_equal(ns.wordpiece(word, vocab), want, what="pieces")
    small = {"[UNK]": 0, "<unk>": 1, "un": 2, "##aff": 3, "##able": 4, "##a": 5, "a": 6}
    small |= {"@@able": 7, "@@aff": 8, "aff": 9, "ab": 10, "##b": 11, "@@b": 12}
    # the prefix alone is a token: an empty continuation must never match it
    small |= {"##": 13, "@@": 14}
    for word, unk, max_chars, prefix in (
        ("unaffable", "[UNK]", 100, "##"),
        ("unaffable", "<unk>", 9, "##"),
        ("unaffable", "<unk>", 8, "##"),
        ("unaffable", "[UNK]", 100, "@@"),
        ("affable", "[UNK]", 100, "@@"),
        ("unaffablex", "<unk>", 100, "##"),
        ("aaab", "[UNK]", 4, "##"),
        ("ab", "[UNK]", 100, "@@"),
        ("aab", "[UNK]", 100, "@@"),
    ):
        with case(
            f"wordpiece({word!r}, unk_token={unk!r}, max_chars={max_chars}, prefix={prefix!r})"
        ):
            got = ns.wordpiece(word, small, unk_token=unk, max_chars=max_chars, prefix=prefix)
            want = _hf_wordpiece(small, word, unk, max_chars, prefix)
            assert_equal(got, want, what="pieces")


@cache
def _truncation_table() -> dict[tuple[str, int, int, int], tuple[int, int] | None]:
    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1}, unk_token="a"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    table: dict[tuple[str, int, int, int], tuple[int, int] | None] = {}
    for strategy in ("longest_first", "only_first", "only_second"):
        for n1 in range(7):
            for n2 in range(7):
                for budget in range(14):
                    tok.enable_truncation(max_length=budget, strategy=strategy)
                    try:
                        ids = tok.encode(" ".join("a" * n1), " ".join("b" * n2)).ids
                    except Exception:
                        table[strategy, n1, n2, budget] = None
                        continue
                    table[strategy, n1, n2, budget] = (ids.count(0), ids.count(1))
    return table


_RAISED = object()  # what _outcome gives for a ValueError


def _outcome(fn: Callable[..., object], *args: object) -> object:
    """What ``fn(*args)`` gives: its value, _RAISED for a ValueError, a fresh object for any
    other exception (equal to nothing: the call is then repeated under case() to show it)."""
    try:
        return fn(*args)
    except ValueError:
        return _RAISED
    except Exception:
        return object()


@check("truncated_lengths")
def truncated_lengths_equals_tokenizers_truncation(ns: Namespace) -> None:
    # All 2,000 inputs at once; only a mismatch is repeated under case() (one case() per
    # input would cost more than the calls).
    for (strategy, n1, n2, budget), want in _truncation_table().items():
        got = _outcome(ns.truncated_lengths, n1, n2, budget, strategy)
        if got == (_RAISED if want is None else want):
            continue
        with case(f"truncated_lengths({n1}, {n2}, {budget}, {strategy!r})"):
            if want is None:
                assert_raises(
                    ns.truncated_lengths,
                    n1,
                    n2,
                    budget,
                    strategy,
                    exc=ValueError,
                    what="a sequence too short to take the tokens off",
                )
            else:
                assert_equal(ns.truncated_lengths(n1, n2, budget, strategy), want)
    with case("the default strategy, longest_first"):
        assert_equal(ns.truncated_lengths(10, 4, 7), (4, 3))
    with case("an unknown strategy, even when nothing needs truncating"):
        assert_raises(ns.truncated_lengths, 5, 5, 20, "middle", exc=ValueError, match="middle")
    with case("a negative budget: max_length smaller than the special tokens"):
        assert_raises(ns.truncated_lengths, 2, 2, -1, exc=ValueError)


@check("join_wordpieces")
def join_wordpieces_equals_the_wordpiece_decoder(ns: Namespace) -> None:
    vocab = _vocab()
    model = models.WordPiece(vocab, unk_token="[UNK]")
    normal = normalizers.BertNormalizer(lowercase=True)
    tokens = [t.value for w in _words() for t in model.tokenize(normal.normalize_str(w) or "x")]
    samples = [
        tokens,
        tokens[:1],
        [],
        ["##a", "b", "##c"],
        ["a", "##b", "##c"],
        ["i", "do", "n't", "know", "what", "'s", "up", ",", "you", "'re", "'ve", "'m", "."],
        ["why", "?", "now", "!", "a", "'", "b", "do", "not"],
    ]
    for clean in (True, False):
        decoder = decoders.WordPiece(prefix="##", cleanup=clean)
        for sample in samples:
            with case(
                f"join_wordpieces({sample[:12]!r}{'...' if len(sample) > 12 else ''}, "
                f"clean_up={clean})"
            ):
                got = ns.join_wordpieces(sample, clean_up=clean)
                assert_equal(got, decoder.decode(sample), what="text")
    with case("the default: clean_up=True"):
        assert_equal(ns.join_wordpieces(["a", "."]), "a.", what="text")
