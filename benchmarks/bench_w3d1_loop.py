"""w3d1: what the training loop costs. ``mlab.train.loop.train`` (logging every 10 steps, the
loss read every step, no evaluation, no checkpoint) against a bare ``for`` loop over the same
model, data and optimizer; and the time to write a checkpoint of the Shakespeare GPT (model,
AdamW state, random states: atomic, fsync-ed, checksummed) against a plain ``torch.save``."""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import Row, Skipped, print_table

STEPS = 60
GOAL = 1.05  # the loop may cost at most 5% over the bare loop


def _task(root: Path, batch_size: int, block_size: int) -> Any:
    from mlab.train.data import LanguageModelTask, write_token_file

    ids = torch.randint(0, 65, (200_000,), generator=torch.Generator().manual_seed(0))
    write_token_file(root / "train.npy", ids.numpy())
    write_token_file(root / "val.npy", ids[:5000].numpy())
    return lambda: LanguageModelTask(
        batch_size, block_size, train_file=str(root / "train.npy"), val_file=str(root / "val.npy")
    )


def _bare(model_fn: Any, task_fn: Any) -> float:
    torch.manual_seed(0)
    model, task = model_fn(), task_fn()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(STEPS):
        batch = task.next_batch()
        opt.zero_grad(set_to_none=True)
        loss = task.loss(model, batch)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def _ours(model_fn: Any, task_fn: Any, root: Path) -> float:
    from mlab.train.loop import train

    start = time.perf_counter()
    built: list[float] = []
    train(
        root / f"run-{time.monotonic_ns()}",
        model_fn,
        task_fn,
        max_steps=STEPS + 1,
        until=STEPS,  # stop before the final evaluation and checkpoint
        max_grad_norm=None,
        eval_every=10**9,
        checkpoint_every=10**9,
        log_every=10,
        layer_stats_every=0,
        progress=False,
        tensorboard=False,
        on_built=lambda: built.append(time.perf_counter()),
        say=lambda _: None,
    )
    return time.perf_counter() - built[0] if built else time.perf_counter() - start


def _loop_rows(root: Path) -> list[Row]:
    from mlab.train.builders import gpt

    rows: list[Row] = []
    cases = {
        "Shakespeare GPT (4x128, batch 12x64)": (lambda: gpt(), _task(root, 12, 64)),
        "small GPT (1x32, batch 8x16)": (
            lambda: gpt(n_layer=1, n_head=2, n_embd=32, block_size=16),
            _task(root, 8, 16),
        ),
    }
    for name, (model_fn, task_fn) in cases.items():
        bare = min(_bare(model_fn, task_fn) for _ in range(3))
        ours = min(_ours(model_fn, task_fn, root) for _ in range(3))
        rows.append((f"{name}: {STEPS} steps", ours / STEPS, bare / STEPS, "bare for loop"))
        verdict = "within" if ours / bare <= GOAL else "OVER"
        print(f"{name}: loop / bare = {ours / bare:.3f} ({verdict} the 5% goal)")
    return rows


def _checkpoint_rows(root: Path) -> list[Row]:
    from mlab.train.builders import gpt
    from mlab.train.checkpoint import capture_rng_state, write_checkpoint

    torch.manual_seed(0)
    model = gpt()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.zeros(2, 8, dtype=torch.long)).logits.sum().backward()
    opt.step()  # Adam's moments exist: the checkpoint is ~3x the weights
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 1}
    state["rng"] = capture_rng_state()

    def ours() -> float:
        start = time.perf_counter()
        write_checkpoint(root / "ckpt.pt", state)
        return time.perf_counter() - start

    def plain() -> float:
        start = time.perf_counter()
        torch.save(state, root / "plain.pt")
        return time.perf_counter() - start

    def memory() -> float:
        start = time.perf_counter()
        torch.save(state, io.BytesIO())
        return time.perf_counter() - start

    best_ours, best_plain, best_mem = (min(f() for _ in range(5)) for f in (ours, plain, memory))
    size = (root / "ckpt.pt").stat().st_size / 2**20
    print(f"Shakespeare GPT checkpoint: {size:.1f} MiB, {best_ours * 1e3:.1f} ms to write")
    return [
        (f"checkpoint {size:.1f} MiB vs torch.save to a file", best_ours, best_plain, "torch.save"),
        (f"checkpoint {size:.1f} MiB vs torch.save in memory", best_ours, best_mem, "BytesIO"),
    ]


def main() -> None:
    try:
        import gin  # noqa: F401
    except ImportError:
        raise Skipped("the train extra is not installed: make setup (EXTRAS has train)") from None
    with tempfile.TemporaryDirectory(prefix="bench-w3d1-") as d:
        root = Path(d)
        rows = _loop_rows(root) + _checkpoint_rows(root)
    print_table("w3d1 training loop: time per step, and per checkpoint write", rows)


if __name__ == "__main__":
    main()
