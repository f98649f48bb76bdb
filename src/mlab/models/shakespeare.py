"""Our own small GPT-2s, trained on tiny Shakespeare: the course's "pretrained model".

Two recipes (:data:`RECIPES`):

- ``char``: characters as tokens (65 of them), nanoGPT's CPU configuration for
  ``shakespeare_char`` (4 layers, 4 heads, 128 wide, block 64, batch 12, AdamW at lr 1e-3
  with 100 warm-up steps and cosine decay to 1e-4, 2000 iterations, no dropout). nanoGPT
  reports a validation loss of 1.88 for it.
- ``gpt2``: GPT-2's own byte-level BPE tokenizer (HuggingFace's ``GPT2TokenizerFast`` on
  the files in ``$MLAB_DATA_DIR/gpt2``), its 50,257 tokens cut to the 11,901 that tiny
  Shakespeare and byte fallback need (:class:`CompactGPT2Tokenizer`), sized to train in
  about 17 minutes on 2 idle CPU cores. Its checkpoint is a ``save_pretrained`` directory that
  HuggingFace's ``GPT2LMHeadModel`` loads too; later days sample from it (w2d4) and
  fine-tune it with RL (week 4).

``mlab pretrain shakespeare [--recipe char]`` trains one (with a progress bar; resumable: the
model, optimizer and random states are saved every ``eval_interval`` steps under the cache
directory) and ``mlab sample --prompt "ROMEO:"`` streams text from it.
"""

from __future__ import annotations

import hashlib
import json
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from mlab.data.download import cache_dir, data_dir, download
from mlab.errors import ConfigError, DataError
from mlab.models.gpt2 import GPT2Config, GPT2LMHeadModel
from mlab.models.gpt2_checkpoint import from_pretrained, save_pretrained

__all__ = [
    "RECIPES",
    "CharTokenizer",
    "CompactGPT2Tokenizer",
    "Recipe",
    "Tokenizer",
    "TrainResult",
    "checkpoint_dir",
    "estimate_loss",
    "generate",
    "get_batch",
    "gpt2_tokenizer",
    "learning_rate",
    "load_pretrained",
    "load_tiny_shakespeare",
    "save_model",
    "train",
]

SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
SHAKESPEARE_MD5 = "6fb458f1232090904fb40fe944165e91"
GPT2_FILES = {"vocab.json": "dffec25a898b1f5e569bec4dffd7e5c0", "merges.txt": None}


# ----------------------------------------------------------------------------------------------
# Data and tokenizers


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _verify_shakespeare(path: Path) -> None:
    if _md5(path) != SHAKESPEARE_MD5:
        raise DataError(
            f"{path} is not tiny Shakespeare (md5 {_md5(path)}, expected {SHAKESPEARE_MD5}): "
            "delete it and run again, or put karpathy/char-rnn's input.txt there"
        )


def load_tiny_shakespeare() -> str:
    """The tiny Shakespeare corpus (1,115,394 characters), checksum verified: from
    ``$MLAB_DATA_DIR/tinyshakespeare.txt``, else the cache, else downloaded into the cache."""
    name = "tinyshakespeare.txt"
    for folder in (data_dir(), cache_dir()):
        if folder is not None and (folder / name).is_file():
            _verify_shakespeare(folder / name)
            return (folder / name).read_text(encoding="utf-8")
    path = download(
        SHAKESPEARE_URL,
        cache_dir() / name,
        verify=_verify_shakespeare,
        offline_help=f"Offline: put {name} (karpathy/char-rnn's data/tinyshakespeare/"
        "input.txt) in $MLAB_DATA_DIR.",
    )
    return path.read_text(encoding="utf-8")


class Tokenizer(Protocol):
    """What training and sampling need from a tokenizer."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class CharTokenizer:
    """Characters as tokens: the sorted set of characters of a text, each its index."""

    def __init__(self, chars: str) -> None:
        self.chars = "".join(sorted(set(chars)))
        self._ids = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        unknown = sorted(set(text) - self._ids.keys())
        if unknown:
            raise ValueError(
                f"characters {unknown} are not in this model's vocabulary of "
                f"{self.vocab_size} characters: use only {self.chars!r}"
            )
        return [self._ids[c] for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)


def gpt2_tokenizer() -> Any:
    """HuggingFace's ``GPT2TokenizerFast`` on GPT-2's own ``vocab.json`` and ``merges.txt``:
    from ``$MLAB_DATA_DIR/gpt2/``, else ``<cache>/gpt2/``, else the hub's ``gpt2``, whose
    two files are then copied to ``<cache>/gpt2/`` (later loads need no network)."""
    # transformers 5's GPT2Tokenizer is the fast one (GPT2TokenizerFast is its alias)
    from transformers import GPT2Tokenizer as GPT2TokenizerFast

    for folder in (data_dir(), cache_dir()):
        if folder is not None and all((folder / "gpt2" / f).is_file() for f in GPT2_FILES):
            return GPT2TokenizerFast.from_pretrained(str(folder / "gpt2"))
    try:
        from huggingface_hub import hf_hub_download

        target = cache_dir() / "gpt2"
        target.mkdir(parents=True, exist_ok=True)
        for name in GPT2_FILES:
            downloaded = Path(hf_hub_download("gpt2", name))
            (target / f"{name}.tmp").write_bytes(downloaded.read_bytes())
            (target / f"{name}.tmp").replace(target / name)  # never a half-written file
        return GPT2TokenizerFast.from_pretrained(str(target))
    except OSError as err:
        raise DataError(
            "GPT-2's tokenizer files were not found: put vocab.json and merges.txt in "
            f"$MLAB_DATA_DIR/gpt2/ (or go online once for the hub's 'gpt2'). ({err})"
        ) from None


def _byte_tokens() -> list[str]:
    """GPT-2's 256 one-byte tokens, in byte order: byte ``b`` is the character
    ``bytes_to_unicode()[b]`` of OpenAI's ``encoder.py`` (printable bytes stand for
    themselves, the others are shifted above 255)."""
    printable = {*range(33, 127), *range(161, 173), *range(174, 256)}
    chars, shift = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + shift))
            shift += 1
    return chars


class CompactGPT2Tokenizer:
    """GPT-2's byte-level BPE with a vocabulary cut down to the tokens a corpus uses.

    Tiny Shakespeare uses 11,706 of GPT-2's 50,257 tokens. A model whose embedding and head
    cover only those (plus the 256 one-byte tokens and ``<|endoftext|>``) trains about four
    times faster and gives the same probabilities over the text. Text is encoded with GPT-2's
    tokenizer, then each GPT-2 id is renumbered to its place in ``keep`` (the kept GPT-2 ids,
    sorted); a token outside it (a word Shakespeare never wrote) falls back to its bytes'
    one-byte tokens, so every text encodes. ``decode`` maps back and lets GPT-2 decode."""

    def __init__(self, keep: list[int] | None = None, corpus: str | None = None) -> None:
        self.hf = gpt2_tokenizer()
        self._bytes: list[int] = self.hf.convert_tokens_to_ids(_byte_tokens())
        self._byte_of = {c: b for b, c in enumerate(_byte_tokens())}
        if keep is None:
            if corpus is None:
                raise ValueError("CompactGPT2Tokenizer needs the kept ids or a corpus")
            keep = sorted({*self.hf.encode(corpus), *self._bytes, self.hf.eos_token_id})
        self.keep = list(keep)
        self._index = {gpt2_id: i for i, gpt2_id in enumerate(self.keep)}

    @property
    def vocab_size(self) -> int:
        return len(self.keep)

    def encode(self, text: str) -> list[int]:
        out = []
        for gpt2_id in self.hf.encode(text):
            if gpt2_id in self._index:
                out.append(self._index[gpt2_id])
            else:  # spell it in bytes
                token = self.hf.convert_ids_to_tokens(gpt2_id)  # one char per byte
                out += [self._index[self._bytes[self._byte_of[c]]] for c in token]
        return out

    def decode(self, ids: list[int]) -> str:
        text: str = self.hf.decode([self.keep[i] for i in ids])
        return text


def get_batch(
    data: Tensor, block_size: int, batch_size: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``batch_size`` random windows of ``block_size`` tokens from the 1-D ``data``, and the
    same windows shifted by one (the targets), as nanoGPT samples them."""
    if len(data) <= block_size:
        raise DataError(
            f"the data has {len(data)} tokens, too few for windows of block_size={block_size}"
        )
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    x = torch.stack([data[s : s + block_size] for s in starts.tolist()])
    y = torch.stack([data[s + 1 : s + 1 + block_size] for s in starts.tolist()])
    return x, y


# ----------------------------------------------------------------------------------------------
# Recipes and training


@dataclass(frozen=True)
class Recipe:
    """A model shape and its training run (nanoGPT's names)."""

    name: str
    tokenizer: str  # "char" or "gpt2"
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    batch_size: int
    max_iters: int
    learning_rate: float
    min_lr: float
    warmup_iters: int
    weight_decay: float = 0.1
    beta2: float = 0.99
    grad_clip: float = 1.0
    dropout: float = 0.0
    eval_interval: int = 250
    eval_iters: int = 200
    seed: int = 1337

    def model_config(self, vocab_size: int) -> GPT2Config:
        return GPT2Config(
            vocab_size=vocab_size,
            n_positions=self.block_size,
            n_embd=self.n_embd,
            n_layer=self.n_layer,
            n_head=self.n_head,
            embd_pdrop=self.dropout,
            attn_pdrop=self.dropout,
            resid_pdrop=self.dropout,
        )


RECIPES = {
    "char": Recipe(
        "char", "char", n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12,
        max_iters=2000, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100,
    ),
    # GPT-2's tokenizer, its vocabulary cut to the 11,901 tokens Shakespeare needs
    # (CompactGPT2Tokenizer); 2500 steps of 1024 tokens are 7.6 epochs of the 304k training
    # tokens, hence the dropout.
    "gpt2": Recipe(
        "gpt2", "gpt2", n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=8,
        max_iters=2500, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, dropout=0.1,
    ),
}  # fmt: skip


def make_tokenizer(recipe: Recipe, text: str) -> Tokenizer:
    if recipe.tokenizer == "char":
        return CharTokenizer(text)
    if recipe.tokenizer == "gpt2":
        return CompactGPT2Tokenizer(corpus=text)
    raise ConfigError(f"tokenizer={recipe.tokenizer!r}: use 'char' or 'gpt2'")


def learning_rate(step: int, recipe: Recipe) -> float:
    """Linear warm-up for ``warmup_iters`` steps, then cosine decay to ``min_lr`` at
    ``max_iters`` (nanoGPT's ``get_lr``)."""
    if step < recipe.warmup_iters:
        return recipe.learning_rate * (step + 1) / (recipe.warmup_iters + 1)
    progress = (step - recipe.warmup_iters) / max(1, recipe.max_iters - recipe.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return recipe.min_lr + coeff * (recipe.learning_rate - recipe.min_lr)


def make_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices (embeddings included) and none on biases and
    LayerNorms, as nanoGPT configures it."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": recipe.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=recipe.learning_rate, betas=(0.9, recipe.beta2))


@torch.no_grad()
def estimate_loss(
    model: torch.nn.Module, data: Tensor, recipe: Recipe, iters: int, seed: int = 0
) -> float:
    """The mean loss over ``iters`` random batches of ``data`` (fixed by ``seed``), in eval
    mode."""
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(iters):
        x, y = get_batch(data, recipe.block_size, recipe.batch_size, g)
        logits = model(x, use_cache=False).logits
        losses.append(torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()))
    model.train(was_training)
    return float(torch.stack(losses).mean())


@dataclass
class TrainResult:
    recipe: str
    steps: int
    train_loss: float
    val_loss: float
    seconds: float  # this run's training time (a resumed run counts only its own)
    directory: str


def checkpoint_dir(recipe: str) -> Path:
    """Where ``mlab pretrain shakespeare --recipe NAME`` keeps its model."""
    return cache_dir() / "models" / f"shakespeare-{recipe}"


def _split(recipe: Recipe, tokenizer: Tokenizer, text: str) -> tuple[Tensor, Tensor]:
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    n = int(0.9 * len(ids))
    return ids[:n], ids[n:]


def train(
    recipe: Recipe,
    directory: Path | None = None,
    *,
    resume: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    on_eval: Callable[[int, float, float], None] | None = None,
    text: str | None = None,
) -> TrainResult:
    """Train ``recipe`` on tiny Shakespeare (first 90% train, last 10% validation), saving
    every ``eval_interval`` steps to ``directory`` (default :func:`checkpoint_dir`):
    ``config.json`` + ``model.safetensors`` (``save_pretrained``), ``tokenizer.json`` and
    ``training_state.pt`` (step, optimizer, random state). With ``resume``, a directory
    holding an unfinished run of the same recipe continues where it stopped.

    ``on_step(step, loss)`` after each step, ``on_eval(step, train_loss, val_loss)`` after
    each evaluation (progress bars hook in here). ``text`` replaces the corpus (tests)."""
    directory = checkpoint_dir(recipe.name) if directory is None else Path(directory)
    text = load_tiny_shakespeare() if text is None else text
    tokenizer = make_tokenizer(recipe, text)
    train_data, val_data = _split(recipe, tokenizer, text)
    torch.manual_seed(recipe.seed)
    model = GPT2LMHeadModel(recipe.model_config(tokenizer.vocab_size))
    optimizer = make_optimizer(model, recipe)
    g = torch.Generator().manual_seed(recipe.seed)
    step = 0
    state_file = directory / "training_state.pt"
    if resume and state_file.is_file():
        state = torch.load(state_file, weights_only=False)
        if state["recipe"] != asdict(recipe):
            raise ConfigError(
                f"{directory} holds a run of another recipe ({state['recipe']}): pass "
                "--fresh to start over, or another directory"
            )
        model = from_pretrained(directory).train()
        optimizer = make_optimizer(model, recipe)
        optimizer.load_state_dict(state["optimizer"])
        g.set_state(state["generator"])
        step = state["step"]
    model.train()
    start, loss_value = time.perf_counter(), float("nan")
    while step < recipe.max_iters:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, recipe)
        x, y = get_batch(train_data, recipe.block_size, recipe.batch_size, g)
        logits = model(x, use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        step += 1
        loss_value = loss.item()
        checkpoint = step % recipe.eval_interval == 0 or step == recipe.max_iters
        if checkpoint:  # before the callbacks: an interrupt there keeps this step
            _save(directory, model, optimizer, g, step, recipe, tokenizer)
        if on_step is not None:
            on_step(step, loss_value)
        if checkpoint and on_eval is not None and step < recipe.max_iters:
            iters = max(1, recipe.eval_iters // 4)  # a quick look; the final one is full
            on_eval(
                step,
                estimate_loss(model, train_data, recipe, iters),
                estimate_loss(model, val_data, recipe, iters),
            )
    seconds = time.perf_counter() - start
    result = TrainResult(
        recipe.name,
        step,
        estimate_loss(model, train_data, recipe, recipe.eval_iters),
        estimate_loss(model, val_data, recipe, recipe.eval_iters),
        seconds,
        str(directory),
    )
    (directory / "result.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def _save(
    directory: Path,
    model: GPT2LMHeadModel,
    optimizer: torch.optim.Optimizer,
    g: torch.Generator,
    step: int,
    recipe: Recipe,
    tokenizer: Tokenizer,
) -> None:
    save_model(model, tokenizer, directory)
    state = {
        "recipe": asdict(recipe),
        "step": step,
        "optimizer": optimizer.state_dict(),
        "generator": g.get_state(),
    }
    torch.save(state, directory / "training_state.pt.tmp")
    (directory / "training_state.pt.tmp").replace(directory / "training_state.pt")


def save_model(model: GPT2LMHeadModel, tokenizer: Tokenizer, directory: str | Path) -> Path:
    """Write ``model`` and its tokenizer's description to ``directory`` (``config.json``,
    ``model.safetensors``, ``tokenizer.json``), so that :func:`load_pretrained` and
    ``mlab sample --model`` load it. Returns the folder."""
    path = save_pretrained(model, directory)
    spec: dict[str, Any] = {"kind": "char", "chars": getattr(tokenizer, "chars", "")}
    if isinstance(tokenizer, CompactGPT2Tokenizer):
        spec = {"kind": "gpt2", "keep": tokenizer.keep}
    (path / "tokenizer.json").write_text(json.dumps(spec) + "\n", encoding="utf-8")
    return path


def load_pretrained(directory: str | Path | None = None) -> tuple[GPT2LMHeadModel, Tokenizer]:
    """A trained model (eval mode) and its tokenizer, from ``directory`` (default: the
    ``gpt2`` recipe's checkpoint, else the ``char`` one's)."""
    if directory is None:
        found = [
            checkpoint_dir(r)
            for r in ("gpt2", "char")
            if (checkpoint_dir(r) / "tokenizer.json").is_file()
        ]
        if not found:
            raise DataError(
                "no trained Shakespeare model: run `mlab pretrain shakespeare` first "
                f"(it saves to {checkpoint_dir('gpt2')})"
            )
        directory = found[0]
    directory = Path(directory)
    spec_file = directory / "tokenizer.json"
    if not spec_file.is_file():
        raise DataError(f"{spec_file} is missing: {directory} is not a trained Shakespeare model")
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    tokenizer: Tokenizer = (
        CharTokenizer(spec["chars"])
        if spec["kind"] == "char"
        else CompactGPT2Tokenizer(keep=spec["keep"])
    )
    return from_pretrained(directory), tokenizer


# ----------------------------------------------------------------------------------------------
# Sampling


def _window(ids: list[int], limit: int) -> list[int]:
    """The context a chunk of sampling starts from: all of ``ids`` when at least one new
    token fits after them in ``limit`` positions, else their last half (at least one id)."""
    ids = ids or [0]
    return ids if len(ids) < limit else ids[-max(1, limit // 2) :]


@torch.no_grad()
def generate(
    model: GPT2LMHeadModel,
    tokenizer: Tokenizer,
    prompt: str,
    max_new_tokens: int = 500,
    *,
    temperature: float = 0.8,
    top_k: int | None = 200,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    greedy: bool = False,
    seed: int = 0,
) -> Iterator[str]:
    """Stream text after ``prompt``, a piece per token, for as many tokens as asked.

    Each token comes from :func:`mlab.sampling.generate` (w2d4: the key/value cache, one
    position per step): sampled at ``temperature`` from the ``top_k`` likeliest tokens and
    the ``top_p`` nucleus, or the likeliest one when ``greedy``. When the context fills the
    model's ``n_positions``, sampling goes on from the last half of it, with a new cache. A
    piece is empty while a byte-level token ends in the middle of a character."""
    from mlab.sampling import generate as sample_tokens

    if temperature <= 0:
        raise ValueError(
            f"temperature={temperature} should be positive: for the likeliest tokens pass "
            "greedy=True"
        )
    model.eval()
    g = torch.Generator().manual_seed(seed)
    limit = model.config.n_positions
    done = object()
    pieces: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()

    def on_step(tokens: Tensor) -> None:
        if stop.is_set():  # the reader went away: end the sampling thread
            raise _Stopped
        pieces.put(int(tokens[0]))

    def sample() -> None:  # in a thread, so that each token is yielded as it is made
        try:
            context = _window(tokenizer.encode(prompt), limit)
            made = 0
            while made < max_new_tokens:
                steps = min(max_new_tokens - made, limit - len(context))
                sequence = sample_tokens(
                    model,
                    torch.tensor([context]),
                    max_new_tokens=steps,
                    do_sample=not greedy,
                    temperature=temperature,
                    top_k=top_k,
                    top_p=top_p,
                    repetition_penalty=repetition_penalty,
                    generator=g,
                    on_step=on_step,
                )
                made += steps
                context = _window(sequence[0].tolist(), limit)
            pieces.put(done)
        except _Stopped:
            pass
        except BaseException as err:  # handed to the reader, raised there
            pieces.put(err)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    generated: list[int] = []
    emitted = ""
    try:
        while (item := pieces.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            generated.append(item)
            text = tokenizer.decode(generated)
            if text.endswith("\ufffd"):  # a byte-level token may end mid-character
                yield ""
            else:
                yield text[len(emitted) :]
                emitted = text
    finally:
        stop.set()
        thread.join()


class _Stopped(Exception):
    """Raised inside the sampling thread when the reader of :func:`generate` stops early."""


def quick_recipe(name: str, **changes: Any) -> Recipe:
    """A recipe with some fields changed (tests train for a few steps)."""
    return replace(RECIPES[name], **changes)
