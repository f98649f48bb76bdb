"""w2d3: our tokenizers (pure Python) against HuggingFace's and tiktoken on every line of
tiny Shakespeare (40,000 lines, 1.1 MB), ids checked identical before anything is timed.

- WordPiece on MiniLM's vocab: ours against ``BertTokenizerLegacy`` (the slow Python one,
  line by line as it has no batch path) and ``BertTokenizer`` (Rust ``tokenizers``, one
  batch call).
- Byte-level BPE on GPT-2's files: ours against ``GPT2Tokenizer`` (in transformers 5 the
  Rust pipeline: there is no slow Python GPT-2 tokenizer any more), ``tokenizers``'
  ``ByteLevelBPETokenizer`` and ``tiktoken`` with an Encoding built from the same ranks.
- Training 10,000 merges: ours against ``tokenizers``' BpeTrainer.

Each tokenizer is built fresh for its run, so ours starts with an empty word cache: one
pass over the corpus, as a learner would run it. One run each (the slow one takes seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import Row, Skipped, print_table
from mlab.errors import DataError
from mlab.tokenizers import WordPieceTokenizer, gpt2_files, minilm_vocab_path, tiny_shakespeare
from mlab.tokenizers.bpe import BPETokenizer, bytes_to_unicode
from mlab.tokenizers.bpe_train import train_bpe

TIKTOKEN_GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _check(name: str, got: Any, want: Any) -> None:
    if got != want:
        raise AssertionError(f"{name}: ids differ from ours; the timing would be meaningless")


def main() -> None:
    try:
        import tiktoken
        from tokenizers import ByteLevelBPETokenizer
        from transformers import BertTokenizer, GPT2Tokenizer
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy
    except ImportError as err:
        raise Skipped(f"{err.name} is missing: make setup EXTRAS=dev,nlp,notebook") from None
    try:
        text = tiny_shakespeare()
        vocab_txt = minilm_vocab_path()
        vocab_json, merges_txt = gpt2_files()
    except DataError as err:
        raise Skipped(str(err)) from None
    lines = text.splitlines()
    rows: list[Row] = []

    ours_t, ours_ids = _timed(lambda: WordPieceTokenizer.from_file(vocab_txt).batch(lines))
    ours_ids = ours_ids["input_ids"]
    slow = BertTokenizerLegacy.from_pretrained(str(vocab_txt.parent))
    slow_t, slow_ids = _timed(lambda: [slow(line)["input_ids"] for line in lines])
    _check("BertTokenizerLegacy", slow_ids, ours_ids)
    fast = BertTokenizer.from_pretrained(str(vocab_txt.parent))
    fast_t, fast_ids = _timed(lambda: fast(lines)["input_ids"])
    _check("BertTokenizer", fast_ids, ours_ids)
    rows.append(("WordPiece, all lines", ours_t, slow_t, "BertTokenizerLegacy, slow"))
    rows.append(("WordPiece, all lines", ours_t, fast_t, "BertTokenizer, Rust"))

    keep = text.splitlines(keepends=True)
    ours_t, ours_ids = _timed(
        lambda: (lambda t: [t.encode(line) for line in keep])(
            BPETokenizer.from_files(vocab_json, merges_txt)
        )
    )
    hf = GPT2Tokenizer.from_pretrained(str(vocab_json.parent))
    hf_t, hf_ids = _timed(lambda: hf(keep)["input_ids"])
    _check("GPT2Tokenizer", hf_ids, ours_ids)
    level = ByteLevelBPETokenizer(str(vocab_json), str(merges_txt))
    level_t, level_ids = _timed(lambda: [e.ids for e in level.encode_batch(keep)])
    _check("ByteLevelBPETokenizer", level_ids, ours_ids)
    decoder = {ch: b for b, ch in bytes_to_unicode().items()}
    ranks = {
        bytes(decoder[c] for c in tok): i
        for tok, i in BPETokenizer.from_files(vocab_json, merges_txt).vocab.items()
        if tok != "<|endoftext|>"
    }
    enc = tiktoken.Encoding(
        "gpt2-from-files",
        pat_str=TIKTOKEN_GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
    )
    tik_t, tik_ids = _timed(lambda: enc.encode_ordinary_batch(keep))
    _check("tiktoken", tik_ids, ours_ids)
    rows.append(("BPE, all lines", ours_t, hf_t, "GPT2Tokenizer, Rust"))
    rows.append(("BPE, all lines", ours_t, level_t, "ByteLevelBPETokenizer, Rust"))
    rows.append(("BPE, all lines", ours_t, tik_t, "tiktoken, Rust"))

    size = 256 + 10_000
    ours_t, ours_bpe = _timed(lambda: train_bpe(keep, size))
    trainer = ByteLevelBPETokenizer()
    hf_t, _ = _timed(
        lambda: trainer.train_from_iterator(keep, vocab_size=size, show_progress=False)
    )
    _check("BpeTrainer vocab", trainer.get_vocab(), ours_bpe.vocab)
    rows.append(("BPE training, 10k merges", ours_t, hf_t, "BpeTrainer, Rust"))
    print_table("w2d3 tokenizers on tiny Shakespeare (one run each)", rows)


if __name__ == "__main__":
    main()
