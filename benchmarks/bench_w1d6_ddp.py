"""w1d6: data parallelism by hand (``mlab.parallel.ddp``) on this machine's CPU: steps per
second of a 256-512-512-10 MLP, global batch 256, in 1 process (the whole batch) and in 2 gloo
processes (128 each, gradients averaged by our bucketed all-reduce after backward, by our
all-reduce overlapped with backward, and by torch's DistributedDataParallel), one torch thread
per process. On a machine with fewer free cores than processes, or where the all-reduce costs more
than half a batch's compute, 2 processes are slower: the table says which it is here."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mlab.parallel.ddp import (
    OverlappedAllReduce,
    broadcast_parameters,
    init_process_group_from_env,
    train_step,
)

BATCH, STEPS, WARMUP = 256, 40, 5


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
    )


def _run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mode: str) -> float:
    """Steps/s; mode "single" (plain), "sync" (train_step), "overlap" or "ddp"."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.functional.cross_entropy
    overlap = OverlappedAllReduce(model) if mode == "overlap" else None
    for i in range(WARMUP + STEPS):
        if i == WARMUP:
            start = time.perf_counter()
        if mode == "sync":
            train_step(model, opt, loss_fn, x, y)
        else:
            opt.zero_grad()
            loss_fn(model(x), y).backward()  # type: ignore[no-untyped-call]
            if overlap is not None:
                overlap.finish()
            opt.step()
    return STEPS / (time.perf_counter() - start)


def _data(rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(BATCH, 256, generator=g), torch.randint(0, 10, (BATCH,), generator=g)
    return x[rank::world], y[rank::world]


def _worker(rank: int, world: int, port: int, out: str, mode: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    init_process_group_from_env(world)
    model = _model()
    if mode == "ddp":
        model = DistributedDataParallel(model)
    else:
        broadcast_parameters(model)
    rate = _run(model, *_data(rank, world), mode)
    Path(out, f"{rank}.txt").write_text(str(rate))
    torch.distributed.destroy_process_group()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    single = _run(_model(), *_data(0, 1), "single")
    torch.set_num_threads(threads)
    two = {}
    for mode in ("sync", "overlap", "ddp"):
        with tempfile.TemporaryDirectory() as out:
            mp.spawn(_worker, args=(2, _port(), out, mode), nprocs=2, join=True)  # type: ignore[attr-defined,no-untyped-call]
            two[mode] = min(float(Path(out, f"{r}.txt").read_text()) for r in range(2))
    print(
        f"w1d6 data parallel, MLP 256-512-512-10, global batch {BATCH}, {STEPS} steps, "
        f"1 thread per process, {os.cpu_count()} CPUs visible"
    )
    labels = {
        "sync": "2 processes, our all-reduce after backward",
        "overlap": "2 processes, our all-reduce overlapped",
        "ddp": "2 processes, torch DistributedDataParallel",
    }
    print(f"  {'1 process (full batch)':44s} {single:7.1f} steps/s")
    for mode, rate in two.items():
        print(f"  {labels[mode]:44s} {rate:7.1f} steps/s  ({rate / single:.2f}x of 1 process)")


if __name__ == "__main__":
    main()
