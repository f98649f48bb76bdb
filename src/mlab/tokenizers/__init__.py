"""Tokenizers written from scratch: BERT's WordPiece and GPT-2's byte-level BPE (encoder,
decoder and trainer), each equal to HuggingFace's token for token (course day w2d3)."""

from mlab.tokenizers.bert import WordPieceTokenizer, join_wordpieces, pad_lengths, truncated_lengths
from mlab.tokenizers.files import (
    gpt2_files,
    load_merges,
    load_vocab_json,
    load_vocab_txt,
    minilm_vocab_path,
    save_merges,
    save_vocab_json,
    tiny_shakespeare,
)
from mlab.tokenizers.wordpiece import (
    basic_tokenize,
    normalize_word,
    split_on_punctuation,
    split_words,
    wordpiece,
)

__all__ = [
    "WordPieceTokenizer",
    "basic_tokenize",
    "gpt2_files",
    "join_wordpieces",
    "load_merges",
    "load_vocab_json",
    "load_vocab_txt",
    "minilm_vocab_path",
    "normalize_word",
    "pad_lengths",
    "save_merges",
    "save_vocab_json",
    "split_on_punctuation",
    "split_words",
    "tiny_shakespeare",
    "truncated_lengths",
    "wordpiece",
]
