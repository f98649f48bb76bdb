"""What our BERT does with real weights and real text (course day w2d1): semantic search over
tiny Shakespeare with all-MiniLM-L6-v2's sentence embeddings (``mlab demo similar``),
fine-tuning MiniLM to tell two speakers apart against the same model trained from scratch
(``mlab demo who-said-it``), and a short masked-language-model run on Shakespeare.

Tokenizing is HuggingFace's ``BertTokenizer`` on MiniLM's vocabulary (w2d3 writes our own).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

from mlab.data.download import cache_dir
from mlab.models.bert import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    load_minilm,
    minilm_tokenizer,
    mlm_loss,
    sentence_embeddings,
)

__all__ = [
    "WhoSaidIt",
    "embed",
    "init_weights",
    "mask_tokens",
    "mlm_run",
    "most_similar",
    "shakespeare_lines",
    "speeches",
    "who_said_it",
]

M = TypeVar("M", bound=torch.nn.Module)
_SPEAKER = re.compile(r"^([A-Z][A-Za-z' ]*[A-Za-z]):$")


def speeches(text: str) -> list[tuple[str, str]]:
    """The speeches of a play text in tiny Shakespeare's layout (a ``NAME:`` line, the
    speech's lines, a blank line): ``(speaker, speech)`` pairs, the speech's lines joined by
    spaces."""
    out = []
    for block in text.split("\n\n"):
        head, _, body = block.strip().partition("\n")
        match = _SPEAKER.match(head)
        if match and body.strip():
            out.append((match[1], " ".join(body.split())))
    return out


def shakespeare_lines(text: str) -> list[str]:
    """Every spoken line (not a speaker's name, not blank), in order, without repeats."""
    seen: dict[str, None] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not _SPEAKER.match(line):
            seen.setdefault(line, None)
    return list(seen)


def embed(
    lines: Sequence[str],
    model: BertModel,
    tokenizer: Any,
    *,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> Tensor:
    """Unit-length MiniLM sentence embeddings of ``lines``, ``(len(lines), hidden)``, in
    batches (each padded to its longest line, truncated at 128 tokens); ``progress(n)`` is
    called with the number of lines done after each batch."""
    out = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(lines), batch_size):
            batch = tokenizer(
                list(lines[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            )
            mask = batch["attention_mask"]
            out.append(sentence_embeddings(model(batch["input_ids"], mask), mask))
            if progress is not None:
                progress(len(out[-1]))
    return torch.cat(out) if out else torch.zeros(0, model.config.hidden_size)


def _cached_embeddings(lines: Sequence[str], model: BertModel, tokenizer: Any) -> Tensor:
    """``embed(lines)``, kept under the cache (keyed by the lines), with a progress bar."""
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    path = cache_dir() / "minilm-embeddings" / f"{digest}.pt"
    if path.is_file():
        cached: Tensor = torch.load(path)
        return cached
    from tqdm import tqdm

    with tqdm(total=len(lines), desc="embedding lines (cached after)", unit="line") as bar:
        vectors = embed(lines, model, tokenizer, progress=bar.update)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(vectors, path)
    return vectors


def most_similar(
    query: str, lines: Sequence[str], *, k: int = 5, cache: bool = True
) -> list[tuple[float, str]]:
    """The ``k`` lines most similar to ``query`` (cosine similarity of MiniLM sentence
    embeddings, highest first), as ``(similarity, line)``. The lines' embeddings are cached
    (a progress bar shows the first run) unless ``cache`` is false."""
    if k < 1:
        raise ValueError(f"k={k}: ask for at least one line")
    model, tokenizer = load_minilm(), minilm_tokenizer()
    vectors = (
        _cached_embeddings(lines, model, tokenizer) if cache else embed(lines, model, tokenizer)
    )
    scores = vectors @ embed([query], model, tokenizer)[0]
    top = scores.topk(min(k, len(lines)))
    return [(float(s), lines[int(i)]) for s, i in zip(top.values, top.indices, strict=True)]


# ----------------------------------------------------------------------------------------------
# Fine-tuning: who said it?


def init_weights(model: M, std: float = 0.02) -> M:
    """BERT's initialisation for training from scratch (HuggingFace's ``_init_weights``):
    every matrix and embedding table from N(0, std^2), biases zero, LayerNorms the identity,
    the padding row zero. (torch's defaults, which our layers keep so that they match
    ``torch.nn``, give N(0, 1) embeddings: tied to the decoder, logits far too large.)"""
    from mlab.models.bert import Embedding
    from mlab.nn.layers import LayerNorm, Linear

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (Linear, Embedding)):
                module.weight.normal_(0.0, std)
            if isinstance(module, Linear) and module.bias is not None:
                module.bias.zero_()
            if isinstance(module, Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
            if isinstance(module, LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
    return model


@dataclass(frozen=True)
class WhoSaidIt:
    """Test accuracy of MiniLM fine-tuned and of the same architecture from scratch."""

    speakers: tuple[str, str]
    n_train: int
    n_test: int
    pretrained: float
    scratch: float
    majority: float


def _split(
    pairs: list[tuple[str, str]], speakers: tuple[str, str], test_fraction: float, seed: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Lines labelled 0/1 by speaker, split by *speech* (a speech's lines all go to one side,
    so the test set holds no line of a speech seen in training)."""
    chosen = [(s, text) for s, text in pairs if s in speakers]
    random.Random(seed).shuffle(chosen)
    n_test = int(len(chosen) * test_fraction)
    sides: list[list[tuple[str, int]]] = [[], []]
    for i, (speaker, text) in enumerate(chosen):
        label = speakers.index(speaker)
        sides[i < n_test].extend((line, label) for line in re.split(r"(?<=[.!?;:])\s+", text))
    return sides[0], sides[1]


def _accuracy(model: BertForSequenceClassification, data: list[tuple[str, int]], tok: Any) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(data), 64):
            chunk = data[start : start + 64]
            batch = tok([t for t, _ in chunk], padding=True, truncation=True, max_length=48,
                        return_tensors="pt")  # fmt: skip
            logits = model(batch["input_ids"], batch["attention_mask"])
            labels = torch.tensor([y for _, y in chunk])
            correct += int((logits.argmax(-1) == labels).sum())
    return correct / len(data)


def _finetune(
    model: BertForSequenceClassification,
    train: list[tuple[str, int]],
    tok: Any,
    *,
    epochs: int,
    lr: float,
    seed: int,
) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    order = random.Random(seed)
    torch.manual_seed(seed)
    for _ in range(epochs):
        data = train[:]
        order.shuffle(data)
        model.train()
        for start in range(0, len(data), 32):
            chunk = data[start : start + 32]
            batch = tok([t for t, _ in chunk], padding=True, truncation=True, max_length=48,
                        return_tensors="pt")  # fmt: skip
            logits = model(batch["input_ids"], batch["attention_mask"])
            loss = F.cross_entropy(logits, torch.tensor([y for _, y in chunk]))
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()


def who_said_it(
    text: str,
    speakers: tuple[str, str] = ("ROMEO", "MENENIUS"),
    *,
    epochs: int = 3,
    test_fraction: float = 0.25,
    limit: int | None = None,
    seed: int = 0,
) -> WhoSaidIt:
    """Tell two speakers' lines apart: MiniLM's weights plus a fresh classifier, fine-tuned
    (AdamW, lr 5e-5), against the same model from a random initialisation (lr 1e-4),
    ``epochs`` epochs each on the same lines; held-out speeches for testing. ``limit`` caps
    the number of training lines (for a quick run)."""
    train, test = _split(speeches(text), speakers, test_fraction, seed)
    train = train[:limit] if limit is not None else train
    tok = minilm_tokenizer()
    base = load_minilm()
    config = replace(base.config, num_labels=2)
    results = {}
    for name, lr in (("pretrained", 5e-5), ("scratch", 1e-4)):
        torch.manual_seed(seed)
        model = init_weights(BertForSequenceClassification(config))
        if name == "pretrained":
            model.bert.load_state_dict(base.state_dict(), strict=True)
        _finetune(model, train, tok, epochs=epochs, lr=lr, seed=seed)
        results[name] = _accuracy(model, test, tok)
    majority = max(sum(y for _, y in test), sum(1 - y for _, y in test)) / len(test)
    return WhoSaidIt(speakers, len(train), len(test), results["pretrained"], results["scratch"],
                     majority)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# A short masked-LM run


def mask_tokens(
    ids: Tensor, attention_mask: Tensor, mask_id: int, vocab_size: int, special: Tensor,
    generator: torch.Generator, p: float = 0.15,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """BERT's masking: choose a fraction ``p`` of the real, non-special tokens; the labels are
    their ids (``-100`` elsewhere); of the chosen, 80% become ``[MASK]``, 10% a random token,
    10% stay. At least one token per batch is chosen."""
    candidates = attention_mask.bool() & ~torch.isin(ids, special)
    chosen = (torch.rand(ids.shape, generator=generator) < p) & candidates
    if not chosen.any():
        chosen.view(-1)[candidates.view(-1).nonzero()[0]] = True
    labels = torch.where(chosen, ids, -100)
    roll = torch.rand(ids.shape, generator=generator)
    random_ids = torch.randint(0, vocab_size, ids.shape, generator=generator)
    inputs = torch.where(chosen & (roll < 0.8), mask_id, ids)
    inputs = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), random_ids, inputs)
    return inputs, labels


def mlm_run(
    lines: Sequence[str],
    *,
    steps: int = 100,
    batch_size: int = 32,
    lr: float = 1e-3,
    config: BertConfig | None = None,
    seed: int = 0,
) -> list[float]:
    """Train a small BERT (by default 2 layers of width 128) from scratch (AdamW, ``lr``) as
    a masked LM on ``lines`` with MiniLM's tokenizer, batches of ``batch_size`` lines;
    return the loss of every step. The decoder runs only at the masked positions (the loss
    ignores the rest): with a vocabulary of 30522, that is most of the work saved."""
    tok = minilm_tokenizer()
    config = config or BertConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=512, max_position_embeddings=64)  # fmt: skip
    torch.manual_seed(seed)
    model = init_weights(BertForMaskedLM(config))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    special = torch.tensor(tok.all_special_ids)
    losses = []
    model.train()
    for step in range(steps):
        start = (step * batch_size) % max(1, len(lines) - batch_size)
        batch = tok(list(lines[start : start + batch_size]), padding=True, truncation=True,
                    max_length=config.max_position_embeddings, return_tensors="pt")  # fmt: skip
        mask = batch["attention_mask"]
        inputs, labels = mask_tokens(batch["input_ids"], mask, tok.mask_token_id,
                                     config.vocab_size, special, g)  # fmt: skip
        picked = labels != -100
        hidden = model.bert(inputs, mask)[picked].unsqueeze(0)  # (1, n_masked, hidden)
        logits = model.mlm_head(hidden, model.bert.embeddings.word_embeddings.weight)
        loss = mlm_loss(logits, labels[picked].unsqueeze(0))
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        losses.append(loss.item())
    return losses
