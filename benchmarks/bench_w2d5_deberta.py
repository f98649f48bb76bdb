"""w2d5: our DeBERTa (mlab.models.deberta) against transformers' ``DebertaV2Model`` with the
same weights and padded batch, in the same process: forward, and forward + backward of a
weighted sum of the last hidden state, in DeBERTa-v3-xsmall's shape (width 384, 6 heads,
256 log buckets over 512 positions, c2p and p2c, shared keys, layer-normed position
embeddings; 6 layers instead of 12 to keep it short), random init, float32.

HF's DeBERTa has a single (eager) attention: matmuls, gathers and softmax, as ours.
The goal: ours at most 1.2x HF's time.

Run alone: ``python -m benchmarks.bench_w2d5_deberta``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from mlab.models.deberta import DebertaConfig, DebertaModel, load_hf_deberta_state_dict

BATCH, SEQ = 4, 128
VOCAB = 8000  # (v3 has 128100: its dense embedding gradient would dominate the timing)
GOAL = 1.2
ROUNDS = 5


def models() -> tuple[DebertaModel, Any]:
    """HF's random-init DebertaV2Model and ours with its weights, both in eval mode."""
    import transformers

    hf_module: Any = transformers
    config = hf_module.DebertaV2Config(
        vocab_size=VOCAB, hidden_size=384, num_hidden_layers=6, num_attention_heads=6,
        intermediate_size=1536, max_position_embeddings=512, relative_attention=True,
        position_buckets=256, pos_att_type=["p2c", "c2p"], share_att_key=True,
        norm_rel_ebd="layer_norm", position_biased_input=False, type_vocab_size=0,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = hf_module.DebertaV2Model(config).eval()
    ours = DebertaModel(DebertaConfig.from_hf(config))
    load_hf_deberta_state_dict(ours, hf.state_dict())
    return ours.eval(), hf


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, VOCAB, (BATCH, SEQ), generator=g)
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    for row in range(BATCH):
        mask[row, SEQ - 24 * row :] = 0  # 0 to 72 padding positions
    return ids * mask, mask


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int = ROUNDS) -> dict[str, float]:
    """The best of ``rounds`` timed calls of each function, taking turns in every round (on
    a shared machine a burst of load then hits all of them alike)."""
    for fn in fns.values():
        fn()  # warm-up
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    ours, hf = models()
    ids, mask = batch()
    with torch.no_grad():
        diff = (ours(ids, mask) - hf(ids, attention_mask=mask).last_hidden_state).abs().max()
    weights = torch.randn(BATCH, SEQ, 384, generator=torch.Generator().manual_seed(1))

    def forward(model: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                model()

        return run

    def backward(model: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            (model() * weights).sum().backward()  # type: ignore[no-untyped-call]

        return run

    def run_ours() -> torch.Tensor:
        out: torch.Tensor = ours(ids, mask)
        return out

    def run_hf() -> torch.Tensor:
        out: torch.Tensor = hf(ids, attention_mask=mask).last_hidden_state
        return out

    times = interleaved(
        {
            "forward ours": forward(run_ours),
            "forward hf": forward(run_hf),
            "forward + backward ours": backward(run_ours),
            "forward + backward hf": backward(run_hf),
        }
    )
    table = Table(
        title=f"w2d5 DeBERTa, {BATCH} x {SEQ} tokens (padded), 6 layers of width 384 "
        f"(max |ours - HF| = {diff:.1e}); goal <= {GOAL}x",
        title_justify="left",
    )
    for col in ("case", "ours", "HF DebertaV2Model", "ours / HF"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for case in ("forward", "forward + backward"):
        mine, theirs = times[f"{case} ours"], times[f"{case} hf"]
        ratio = mine / theirs
        mark = "" if ratio <= GOAL else " (over the goal)"
        table.add_row(case, f"{mine * 1e3:.1f} ms", f"{theirs * 1e3:.1f} ms", f"{ratio:.2f}x{mark}")
    Console().print(table)


if __name__ == "__main__":
    main()
