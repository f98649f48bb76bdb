"""w2d2: our GPT-2 against HuggingFace's ``GPT2LMHeadModel`` of the same shape, then our own
character-level model trained on tiny Shakespeare.

1. Step time. nanoGPT's CPU configuration for ``shakespeare_char`` (4 layers, 4 heads, 128
   wide, block 64, batch 12, 65 characters): the same weights, the same batches, a training
   step each (forward, loss, backward, gradient clipping, AdamW), in alternating rounds in
   the same process, so both see the same machine load; HF with its default attention (SDPA)
   and with its eager attention. The goal: ours within 1.05x of HF's.
2. Training. ``mlab pretrain shakespeare --recipe char``'s run (2000 iterations, the first 90%
   of the text for training): nanoGPT reports a validation loss of 1.88 for this
   configuration; the bar here is 1.89. Then a sample.

Run alone: ``python -m benchmarks.bench_w2d2_gpt2`` (``--quick`` times the steps only).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.common import Skipped, run
from mlab.errors import DataError
from mlab.models.gpt2 import GPT2LMHeadModel
from mlab.models.shakespeare import (
    RECIPES,
    CharTokenizer,
    generate,
    get_batch,
    load_pretrained,
    load_tiny_shakespeare,
    make_optimizer,
    train,
)

BAR = 1.89
ROUNDS, STEPS = 7, 15


def _text() -> str:
    try:
        return load_tiny_shakespeare()
    except DataError as err:
        raise Skipped(f"tiny Shakespeare is missing ({err})") from None


def _models(vocab: int) -> dict[str, torch.nn.Module]:
    from transformers import GPT2Config
    from transformers import GPT2LMHeadModel as HFModel

    recipe = RECIPES["char"]
    config = recipe.model_config(vocab)
    torch.manual_seed(0)
    ours = GPT2LMHeadModel(config)
    models: dict[str, torch.nn.Module] = {"ours": ours}
    for attn in ("sdpa", "eager"):
        hf_config = GPT2Config(**config.to_hf_dict())
        hf_config._attn_implementation = attn
        hf = HFModel(hf_config)
        hf.load_state_dict(ours.state_dict())
        models[f"HF GPT2LMHeadModel ({attn})"] = hf
    return models


def step_times(text: str) -> dict[str, list[float]]:
    """Seconds per training step of each model, one list entry per round."""
    recipe = RECIPES["char"]
    tok = CharTokenizer(text)
    data = torch.tensor(tok.encode(text[:200_000]))
    models = _models(tok.vocab_size)
    optimizers = {name: make_optimizer(m, recipe) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for r in range(ROUNDS + 1):
        for name, model in models.items():
            g = torch.Generator().manual_seed(r)  # the same batches for every model
            model.train()
            start = time.perf_counter()
            for _ in range(STEPS):
                x, y = get_batch(data, recipe.block_size, recipe.batch_size, g)
                logits = model(input_ids=x, use_cache=False).logits
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
                optimizers[name].zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                optimizers[name].step()
            if r:  # round 0 warms up
                times[name].append((time.perf_counter() - start) / STEPS)
    return times


def main(quick: bool = False) -> None:
    text = _text()
    times = step_times(text)
    ours = statistics.median(times["ours"])
    table = Table(
        title="w2d2 GPT-2 training step, nanoGPT's shakespeare_char on CPU (4 layers, 4 heads, "
        f"128 wide, block 64, batch 12; median of {ROUNDS} rounds of {STEPS} steps; "
        f"{torch.get_num_threads()} threads)",
        title_justify="left",
    )
    for col in ("model", "step", "ours / this"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, ts in times.items():
        t = statistics.median(ts)
        table.add_row(name, f"{t * 1e3:.1f} ms", f"{ours / t:.2f}x")
    Console().print(table)
    sdpa = statistics.median(times["HF GPT2LMHeadModel (sdpa)"])
    print(f"ours / HF (sdpa) = {ours / sdpa:.2f}x (goal <= 1.05x)")
    if quick:
        return
    with tempfile.TemporaryDirectory() as tmp:
        result = train(RECIPES["char"], Path(tmp), resume=False, text=text)
        model, tok = load_pretrained(tmp)
        sample = "".join(generate(model, tok, "ROMEO:", 300, seed=0))
    print(
        f"char model: {result.steps} iterations in {result.seconds:.0f} s, train loss "
        f"{result.train_loss:.3f}, validation loss {result.val_loss:.3f} "
        f"({'meets' if result.val_loss <= BAR else 'MISSES'} the bar <= {BAR}; nanoGPT 1.88)"
    )
    print("sample (temperature 0.8, top-k 200):\nROMEO:" + sample)


if __name__ == "__main__":
    run("bench_w2d2_gpt2", lambda: main(quick="--quick" in sys.argv))
