"""w1d6: data parallelism by hand (``mlab.parallel.ddp``) on this machine's CPU: steps per
second of a 256-512-512-10 MLP, global batch 256, in 1 process (the whole batch) and in 2 gloo
processes (128 each, gradients averaged by our bucketed all-reduce), one torch thread per
process. On a machine with fewer free cores than processes, or where the all-reduce costs more
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

from mlab.parallel.ddp import broadcast_parameters, init_process_group_from_env, train_step

BATCH, STEPS, WARMUP = 256, 40, 5


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
    )


def _run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, distributed: bool) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.functional.cross_entropy
    for i in range(WARMUP + STEPS):
        if i == WARMUP:
            start = time.perf_counter()
        if distributed:
            train_step(model, opt, loss_fn, x, y)
        else:
            opt.zero_grad()
            loss_fn(model(x), y).backward()  # type: ignore[no-untyped-call]
            opt.step()
    return STEPS / (time.perf_counter() - start)


def _data(rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(BATCH, 256, generator=g), torch.randint(0, 10, (BATCH,), generator=g)
    return x[rank::world], y[rank::world]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    init_process_group_from_env(world)
    model = _model()
    broadcast_parameters(model)
    rate = _run(model, *_data(rank, world), distributed=True)
    Path(out, f"{rank}.txt").write_text(str(rate))
    torch.distributed.destroy_process_group()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    single = _run(_model(), *_data(0, 1), distributed=False)
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_worker, args=(2, _port(), out), nprocs=2, join=True)  # type: ignore[attr-defined,no-untyped-call]
        two = min(float(Path(out, f"{r}.txt").read_text()) for r in range(2))
    print(
        f"w1d6 data parallel, MLP 256-512-512-10, global batch {BATCH}, {STEPS} steps, "
        f"1 thread per process, {os.cpu_count()} CPUs visible"
    )
    print(f"  1 process (full batch):          {single:7.1f} steps/s")
    print(f"  2 processes (our all-reduce):    {two:7.1f} steps/s  ({two / single:.2f}x)")


if __name__ == "__main__":
    main()
