"""Data parallelism by hand (``mlab.parallel.ddp``) in two real gloo processes on the CPU: a
small MLP trained with our broadcast + bucketed all-reduce on half-batches must equal one
process on the full batch, and torch's DistributedDataParallel run the same way."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mlab.errors import ConfigError, MlabError
from mlab.parallel.ddp import (
    OverlappedAllReduce,
    broadcast_parameters,
    init_process_group_from_env,
    shard_indices,
    train_step,
)

WORLD = 2
STEPS = 4
LR = 0.1
N = 16


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(N, 5, generator=g), torch.randn(N, 3, generator=g)


def _model(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    got_rank, world = init_process_group_from_env(expected_world_size=WORLD)
    assert (got_rank, world) == (rank, WORLD)
    x, y = _data()
    # each rank: its own shard of every step's batch (no shuffling: the halves differ anyway)
    idx = shard_indices(N, rank, world, shuffle=False)
    loss_fn = nn.functional.mse_loss
    # ours: different initial weights per rank, made equal by the broadcast
    model = _model(seed=100 + rank)
    broadcast_parameters(model)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    for _ in range(STEPS):
        train_step(model, opt, loss_fn, x[idx], y[idx], bucket_cap_mb=200 / 2**20)
    # ours again, with the all-reduce overlapping backward (buckets of ~2 layers' gradients)
    overlapped = _model(seed=100 + rank)
    broadcast_parameters(overlapped)
    overlap = OverlappedAllReduce(overlapped, bucket_cap_mb=200 / 2**20)
    ov_opt = torch.optim.SGD(overlapped.parameters(), lr=LR, momentum=0.9)
    for _ in range(STEPS):
        ov_opt.zero_grad()
        loss_fn(overlapped(x[idx]), y[idx]).backward()  # type: ignore[no-untyped-call]
        overlap.finish()
        ov_opt.step()
    events = overlap.events
    # torch's DDP the same way (it broadcasts rank 0's weights in its constructor)
    ddp = DistributedDataParallel(_model(seed=100 + rank))
    ddp_opt = torch.optim.SGD(ddp.parameters(), lr=LR, momentum=0.9)
    for _ in range(STEPS):
        ddp_opt.zero_grad()
        loss_fn(ddp(x[idx]), y[idx]).backward()  # type: ignore[no-untyped-call]
        ddp_opt.step()
    torch.save(
        {
            "ours": model.state_dict(),
            "overlapped": overlapped.state_dict(),
            "events": events,
            "ddp": ddp.module.state_dict(),
        },
        Path(out) / f"{rank}.pt",
    )
    dist.destroy_process_group()


def test_two_processes_equal_one_process_and_ddp(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)  # type: ignore[attr-defined,no-untyped-call]
    results = [torch.load(tmp_path / f"{r}.pt") for r in range(WORLD)]
    single = _model(seed=100)
    opt = torch.optim.SGD(single.parameters(), lr=LR, momentum=0.9)
    x, y = _data()
    for _ in range(STEPS):
        opt.zero_grad()
        nn.functional.mse_loss(single(x), y).backward()  # type: ignore[no-untyped-call]
        opt.step()
    start = _model(seed=100).state_dict()
    assert any((start[k] - v).abs().max() > 1e-3 for k, v in single.state_dict().items())
    for res in results:
        for name, want in single.state_dict().items():
            torch.testing.assert_close(res["ours"][name], want, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(res["ddp"][name], res["ours"][name], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(res["overlapped"][name], want, rtol=1e-5, atol=1e-6)
        # the overlap is real: the first bucket's all-reduce starts before the last gradient
        kinds = [kind for kind, _ in res["events"]]
        assert kinds.count("launch") > 1
        assert kinds.index("launch") < len(kinds) - 1 - kinds[::-1].index("ready")
        # and the last layer's gradients are the first ready
        assert res["events"][0] == ("ready", "4.bias")


def _set_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_missing_env_vars_name_them_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_env(monkeypatch, RANK="0", WORLD_SIZE="2")
    with pytest.raises(ConfigError, match="MASTER_ADDR, MASTER_PORT") as err:
        init_process_group_from_env()
    assert "torchrun --nproc-per-node" in str(err.value)
    assert not dist.is_initialized()


def test_world_size_mismatch_says_how_to_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_env(monkeypatch, RANK="0", WORLD_SIZE="3", MASTER_ADDR="127.0.0.1", MASTER_PORT="1")
    with pytest.raises(ConfigError, match="WORLD_SIZE=3") as err:
        init_process_group_from_env(expected_world_size=2)
    assert "torchrun --nproc-per-node=2" in str(err.value)


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x'"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2"),
        ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "p"}, "MASTER_PORT='p'"),
    ],
)
def test_bad_env_values_are_config_errors(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], match: str
) -> None:
    _set_env(monkeypatch, MASTER_ADDR="127.0.0.1", MASTER_PORT="1")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=match):
        init_process_group_from_env()


def test_world_of_one_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_env(monkeypatch, RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    try:
        assert init_process_group_from_env(1) == (0, 1)
        assert dist.get_backend() == "gloo"
    finally:
        dist.destroy_process_group()


@pytest.fixture
def world_of_one(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _set_env(monkeypatch, RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    init_process_group_from_env(1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.usefixtures("world_of_one")
def test_overlap_names_parameters_without_gradients() -> None:
    model = _model(seed=1)
    overlap = OverlappedAllReduce(model, bucket_cap_mb=1e-6)
    model[2](torch.randn(4, 8)).sum().backward()  # type: ignore[no-untyped-call]
    want = r"no gradient this step for 0\.weight, 0\.bias, 4\.weight, 4\.bias:"
    with pytest.raises(MlabError, match=want):
        overlap.finish()
    # the state was reset: a full step works afterwards and matches a plain backward
    model.zero_grad()
    x = torch.randn(4, 5)
    model(x).sum().backward()  # type: ignore[no-untyped-call]
    overlap.finish()
    want = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    overlap.remove()
    model.zero_grad()
    model(x).sum().backward()  # type: ignore[no-untyped-call]
    for got, p in zip(want, model.parameters(), strict=True):
        torch.testing.assert_close(got, p.grad)


@pytest.mark.usefixtures("world_of_one")
def test_overlap_refuses_a_second_backward_before_finish() -> None:
    model = _model(seed=2)
    overlap = OverlappedAllReduce(model)
    x = torch.randn(4, 5)
    model(x).sum().backward()  # type: ignore[no-untyped-call]
    with pytest.raises(MlabError, match="call finish\\(\\) after every backward"):
        model(x).sum().backward()  # type: ignore[no-untyped-call]
    overlap.finish()


@pytest.mark.usefixtures("world_of_one")
def test_overlap_buckets_follow_backward_order_and_skip_frozen() -> None:
    model = _model(seed=3)
    model[0].requires_grad_(False)
    # 4.bias 12 bytes, 4.weight 96, 2.bias 32, 2.weight 256: a cap of 120 bytes
    overlap = OverlappedAllReduce(model, bucket_cap_mb=120 / 2**20)
    names = {p: n for n, p in model.named_parameters()}
    got = [[names[p] for p in bucket] for bucket in overlap.buckets]
    assert got == [["4.bias", "4.weight"], ["2.bias"], ["2.weight"]]
