"""Byte-level BPE (mlab.tokenizers.bpe / bpe_train) against ``transformers.GPT2Tokenizer``
and ``tiktoken`` loaded from GPT-2's real files, and against ``tokenizers``' BpeTrainer.
(transformers 5 has no slow Python GPT2Tokenizer any more: GPT2Tokenizer is the tokenizers
pipeline.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Tokenizer

from mlab.errors import DataError
from mlab.tokenizers.adversarial import adversarial_texts
from mlab.tokenizers.bpe import BPETokenizer, bytes_to_unicode, pretokenize
from mlab.tokenizers.bpe_train import train_bpe
from mlab.tokenizers.files import gpt2_files, load_merges, load_vocab_json, tiny_shakespeare

# tiktoken's own spelling of GPT-2's pattern (tiktoken_ext/openai_public.py)
TIKTOKEN_GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


@pytest.fixture(scope="module")
def files() -> tuple[Path, Path]:
    try:
        return gpt2_files()
    except DataError as err:
        pytest.skip(f"{err} (CI sets MLAB_DATA_DIR to ../shared/data)")


@pytest.fixture(scope="module")
def text() -> str:
    try:
        return tiny_shakespeare()
    except DataError as err:
        pytest.skip(f"{err} (CI sets MLAB_DATA_DIR to ../shared/data)")


@pytest.fixture(scope="module")
def ours(files: tuple[Path, Path]) -> BPETokenizer:
    return BPETokenizer.from_files(*files)


@pytest.fixture(scope="module")
def hf(files: tuple[Path, Path]) -> GPT2Tokenizer:
    return GPT2Tokenizer.from_pretrained(str(files[0].parent))


@pytest.fixture(scope="module")
def tik(files: tuple[Path, Path]) -> tiktoken.Encoding:
    decoder = {ch: b for b, ch in bytes_to_unicode().items()}
    vocab = load_vocab_json(files[0])
    ranks = {bytes(decoder[c] for c in tok): i for tok, i in vocab.items() if i < 50256}
    return tiktoken.Encoding(
        "gpt2-from-files",
        pat_str=TIKTOKEN_GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
    )


def test_the_readme_example(ours: BPETokenizer) -> None:
    ids = [15496, 995, 11, 428, 318, 402, 11571, 12, 17, 11241, 1634, 0]
    assert ours.encode("Hello world, this is GPT-2 tokenization!") == ids


def test_tiny_shakespeare_token_for_token(
    ours: BPETokenizer, hf: GPT2Tokenizer, tik: tiktoken.Encoding, text: str
) -> None:
    lines = text.splitlines(keepends=True)
    got = [ours.encode(line) for line in lines]
    assert got == hf(lines)["input_ids"]
    assert got == tik.encode_ordinary_batch(lines)
    whole = ours.encode(text)
    assert whole == tik.encode_ordinary(text)
    assert ours.decode(whole) == text


def test_adversarial_corpus(ours: BPETokenizer, hf: GPT2Tokenizer, tik: tiktoken.Encoding) -> None:
    for sample in adversarial_texts():
        ids = ours.encode(sample)
        assert ids == hf(sample)["input_ids"], sample
        assert ids == tik.encode(sample, allowed_special="all"), sample
        assert ours.decode(ids) == sample == hf.decode(ids)
    assert ours.encode("a<|endoftext|>b") == [64, 50256, 65]


@settings(max_examples=150, deadline=None)
@given(sample=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_random_unicode_round_trips_and_equals_hf(
    ours: BPETokenizer, hf: GPT2Tokenizer, sample: str
) -> None:
    ids = ours.encode(sample)
    assert ours.decode(ids) == sample
    assert ids == hf(sample)["input_ids"]


def test_decode_replaces_broken_utf8_as_hf_does(ours: BPETokenizer, hf: GPT2Tokenizer) -> None:
    ids = ours.encode("é😀")  # bytes spread over several tokens; cut one in half
    for cut in range(len(ids) + 1):
        assert ours.decode(ids[:cut]) == hf.decode(ids[:cut])


def test_pretokenize_and_byte_table() -> None:
    assert pretokenize("I'll  go\n\n 42x") == ["I", "'ll", " ", " go", "\n\n", " 42", "x"]
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert (table[32], table[10], table[0], table[255]) == ("Ġ", "Ċ", "Ā", "ÿ")


@pytest.mark.slow
def test_trainer_equals_the_tokenizers_bpe_trainer(text: str, tmp_path: Path) -> None:
    lines = text.splitlines(keepends=True)
    size = 1 + 256 + 10_000  # one special token, the bytes, 10k merges
    start = time.perf_counter()
    ours = train_bpe(lines, size, special_tokens=["<|endoftext|>"])
    seconds = time.perf_counter() - start
    theirs = ByteLevelBPETokenizer()
    theirs.train_from_iterator(
        lines,
        vocab_size=size,
        min_frequency=2,
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    theirs.save_model(str(tmp_path))
    assert ours.vocab == load_vocab_json(tmp_path / "vocab.json")
    assert sorted(ours.ranks, key=ours.ranks.__getitem__) == load_merges(tmp_path / "merges.txt")
    assert seconds < 30, f"10k merges took {seconds:.1f} s: the counts are not incremental?"
    # saved in GPT-2's format, it loads into GPT2Tokenizer with the same ids
    folder = tmp_path / "ours"
    ours.save(folder)
    loaded = GPT2Tokenizer.from_pretrained(str(folder))
    sample = lines[:300] + adversarial_texts()
    assert [ours.encode(s) for s in sample] == loaded(sample)["input_ids"]


def test_trainer_ties_and_min_frequency(tmp_path: Path) -> None:
    # Every pair occurs equally often: ties everywhere, broken by the smaller ids.
    corpus = ["ab ba cd dc abcd", "aaaa bbbb", "xy yx xy yx", "é ü 日本 日本"]
    for min_frequency in (1, 2, 3):
        for size in (258, 265, 300):
            ours = train_bpe(corpus, size, min_frequency=min_frequency)
            theirs = ByteLevelBPETokenizer()
            theirs.train_from_iterator(
                corpus, vocab_size=size, min_frequency=min_frequency, show_progress=False
            )
            theirs.save_model(str(tmp_path))
            assert ours.vocab == load_vocab_json(tmp_path / "vocab.json")
            merges = sorted(ours.ranks, key=ours.ranks.__getitem__)
            assert merges == load_merges(tmp_path / "merges.txt")


def test_bad_files_are_named(tmp_path: Path, ours: BPETokenizer) -> None:
    vocab, merges = tmp_path / "vocab.json", tmp_path / "merges.txt"
    with pytest.raises(DataError, match="does not exist"):
        BPETokenizer.from_files(vocab, merges)
    vocab.write_text('{"a": 0,\n "b": }', encoding="utf-8")
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        load_vocab_json(vocab)
    vocab.write_text('{"a": 0, "b": 0}', encoding="utf-8")
    with pytest.raises(DataError, match="share id 0"):
        load_vocab_json(vocab)
    merges.write_text("#version: 0.2\nĠ t\nĠt he llo\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3: 'Ġt he llo' is not a merge"):
        load_merges(merges)
    merges.write_text("#version: 0.2\nĠ t\n", encoding="utf-8")
    table = bytes_to_unicode()
    with pytest.raises(ValueError, match="merge 0 \\('Ġ', 't'\\) makes 'Ġt'"):
        BPETokenizer({ch: i for i, ch in enumerate(table.values())}, load_merges(merges))
    with pytest.raises(ValueError, match="lacks 255 of the 256 byte tokens"):
        BPETokenizer({"a": 0}, [])
    with pytest.raises(ValueError, match="special token '<pad>' is not in the vocabulary"):
        BPETokenizer({ch: i for i, ch in enumerate(table.values())}, [], special_tokens=["<pad>"])
    with pytest.raises(ValueError, match="id 50257 at position 0 is not in the vocabulary"):
        ours.decode([50257])
    with pytest.raises(ValueError, match="vocab_size=100 leaves no room"):
        train_bpe(["a"], 100)
