"""Checks for part 2 of w1d6: data parallelism by hand.

``shard_indices`` is compared with ``DistributedSampler`` over many set-ups; the bucket helpers
with ``torch._utils``. The collectives are checked twice: once with ``torch.distributed``'s
``all_reduce`` / ``broadcast`` / ``get_world_size`` replaced by a simulated 3-rank world whose
other ranks' contributions are known numbers (so averaging, order and buckets show), and once in
a real gloo process group of world size 1 in this process. The two-process proof against
``DistributedDataParallel`` is ``tests/test_parallel.py``."""

from __future__ import annotations

import contextlib
import itertools
import socket
from collections.abc import Iterator
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.utils.data.distributed import DistributedSampler

from mlab.course.engine.checks import Namespace, check
from mlab.testing import assert_close, assert_equal, assert_raises, case, expect, randn

FAKE_WORLD = 3


@check("shard_indices")
def shards_match_distributed_sampler(ns: Namespace) -> None:
    for n, world, shuffle, drop_last, epoch in itertools.product(
        (0, 1, 2, 5, 7, 12, 13), (1, 2, 3, 4, 8), (False, True), (False, True), (0, 3)
    ):
        for rank in range(world):
            sampler: DistributedSampler[int] = DistributedSampler(
                cast(Any, range(n)), world, rank, shuffle=shuffle, seed=11, drop_last=drop_last
            )
            sampler.set_epoch(epoch)
            kw = dict(shuffle=shuffle, seed=11, epoch=epoch, drop_last=drop_last)
            with case(f"n={n}, rank={rank}, world_size={world}", **kw):
                assert_equal(ns.shard_indices(n, rank, world, **kw), list(sampler))
    with case("the defaults (shuffle, seed 0, epoch 0, no drop_last), n=10, rank 2 of 3"):
        assert_equal(
            ns.shard_indices(10, 2, 3), list(DistributedSampler(cast(Any, range(10)), 3, 2))
        )


@check("shard_indices")
def shard_indices_rejects_bad_ranks(ns: Namespace) -> None:
    for rank, world in ((2, 2), (-1, 2), (0, 0), (5, 3)):
        with case(f"rank={rank}, world_size={world}"):
            assert_raises(ns.shard_indices, 8, rank, world, exc=ValueError)


def _tensors(seed: int) -> list[Tensor]:
    return [
        randn(2, 3, seed=seed),
        randn(5, seed=seed + 1),
        randn(1, 1, 1, seed=seed + 2),
        randn(0, 4, seed=seed + 3),
        randn(4, 3, seed=seed + 4).t(),
    ]


@check("flatten_bucket")
def flatten_matches_torch(ns: Namespace) -> None:
    ts = _tensors(0)
    with case("tensors of shapes (2,3), (5,), (1,1,1), (0,4) and a transposed (3,4)"):
        got = ns.flatten_bucket(ts)
        assert_equal(got, _flatten_dense_tensors(ts))  # type: ignore[no-untyped-call]
        expect(got.dim() == 1, f"the result has {got.dim()} dims, not 1")
    with case("one float64 tensor"):
        t = randn(3, 2, seed=5, dtype=torch.float64)
        got = ns.flatten_bucket([t])
        assert_equal(got, t.reshape(-1))
        got.fill_(0)
        expect(bool(t.ne(0).all()), "writing into the result changed the input: copy it")


@check("unflatten_bucket")
def unflatten_matches_torch(ns: Namespace) -> None:
    like = _tensors(10)
    flat = _flatten_dense_tensors(_tensors(20))  # type: ignore[no-untyped-call]
    with case("a flat tensor of 29 elements, like shapes (2,3), (5,), (1,1,1), (0,4), (3,4)"):
        got = ns.unflatten_bucket(flat, like)
        want = _unflatten_dense_tensors(flat, like)  # type: ignore[no-untyped-call]
        expect(len(got) == len(want), f"{len(got)} tensors, expected {len(want)}")
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_equal(a, b, what=f"tensor {i}")
        flat[0] = 123.0
        expect(float(got[0][0, 0]) == 123.0, "the pieces must be views of flat, not copies")
    for numel in (28, 30):
        with case(f"a flat tensor of {numel} elements for tensors holding 29"):
            assert_raises(ns.unflatten_bucket, torch.zeros(numel), like, exc=ValueError)


class _Net(nn.Module):
    """Parameters of two dtypes and a frozen one, plus a buffer."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.a = nn.Linear(3, 4)
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)
        self.b = nn.Linear(4, 5).double()
        self.c = nn.Linear(5, 2)
        self.register_buffer("running", torch.randn(3))

    def forward(self, x: Tensor) -> Tensor:
        h = self.frozen(torch.tanh(self.a(x)))
        h = torch.tanh(self.b(h.double())).float()
        out: Tensor = self.c(h)
        return out


def _net_with_grads(seed: int) -> _Net:
    net = _Net(seed)
    x = randn(6, 3, seed=seed + 100)
    (net(x) ** 2 * torch.arange(1.0, 3.0)).sum().backward()
    return net


@contextlib.contextmanager
def _patched(**fakes: Any) -> Iterator[None]:
    saved = {name: getattr(dist, name) for name in fakes}
    try:
        for name, fake in fakes.items():
            setattr(dist, name, fake)
        yield
    finally:
        for name, value in saved.items():
            setattr(dist, name, value)


def _expected_buckets(net: nn.Module, cap_mb: float) -> list[int]:
    """Bucket sizes (numel) by the docstring's rule, computed here independently."""
    sizes: list[int] = []
    dtypes: list[torch.dtype] = []
    nbytes = 0
    for p in net.parameters():
        if p.grad is None:
            continue
        b = p.numel() * p.element_size()
        if sizes and dtypes[-1] == p.dtype and nbytes + b <= cap_mb * 2**20:
            sizes[-1] += p.numel()
            nbytes += b
        else:
            sizes.append(p.numel())
            dtypes.append(p.dtype)
            nbytes = b
    return sizes


def _fake_allreduce(net: nn.Module, ns: Namespace, cap_mb: float | None) -> list[int]:
    """Run ns.allreduce_gradients in a simulated world of FAKE_WORLD ranks whose other ranks
    add 0.25*k + 1 at the k-th element reduced (counting over all calls); check the grads."""
    calls: list[int] = []

    def all_reduce(tensor: Tensor, op: Any = dist.ReduceOp.SUM, **_: Any) -> None:
        expect(op == dist.ReduceOp.SUM, f"all_reduce called with op={op}, expected SUM")
        expect(tensor.dim() == 1, f"all_reduce on a {tensor.dim()}-D tensor, not a flat bucket")
        start = sum(calls)
        calls.append(tensor.numel())
        k = torch.arange(start, start + tensor.numel(), dtype=tensor.dtype)
        tensor.add_(0.25 * k + 1)

    before = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    with _patched(all_reduce=all_reduce, get_world_size=lambda *a, **k: FAKE_WORLD):
        if cap_mb is None:
            ns.allreduce_gradients(net)
        else:
            ns.allreduce_gradients(net, cap_mb)
    offset = 0
    for name, p in net.named_parameters():
        if p.grad is None:
            expect(name not in before, f"{name}.grad was set to None")
            continue
        expect(p.grad is grads[name], f"{name}.grad was replaced: write into it in place")
        k = torch.arange(offset, offset + p.numel(), dtype=p.dtype).view_as(p)
        want = (before[name] + 0.25 * k + 1) / FAKE_WORLD
        assert_close(p.grad, want, rtol=1e-6, atol=1e-6, what=f"{name}.grad after the average")
        offset += p.numel()
    return calls


@check("allreduce_gradients")
def allreduce_averages_in_buckets(ns: Namespace) -> None:
    for cap_mb in (None, 1e-4, 60 / 2**20, 0.0):
        net = _net_with_grads(1)
        net.c.bias.grad = None
        label = "the default cap (25 MB)" if cap_mb is None else f"bucket_cap_mb={cap_mb:.3g}"
        with case(f"a float32/float64 net, 3 simulated ranks, c.bias without grad, {label}"):
            calls = _fake_allreduce(net, ns, cap_mb)
            want = _expected_buckets(net, 25.0 if cap_mb is None else cap_mb)
            assert_equal(calls, want, what="numel of each all_reduce (one per bucket)")


@contextlib.contextmanager
def _world_of_one() -> Iterator[None]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@check("allreduce_gradients")
def allreduce_in_a_real_group_of_one(ns: Namespace) -> None:
    net = _net_with_grads(2)
    before = [p.grad.clone() for p in net.parameters() if p.grad is not None]
    with case("a real gloo group of world size 1 (the mean of one rank is its gradient)"):
        with _world_of_one():
            ns.allreduce_gradients(net, 1e-4)
        after = [p.grad for p in net.parameters() if p.grad is not None]
        for i, (a, b) in enumerate(zip(after, before, strict=True)):
            assert_close(a, b, rtol=0, atol=0, what=f"gradient {i}")


def _fake_broadcast(ns: Namespace, src: int | None) -> None:
    net, source = _Net(3), _Net(4)
    source_tensors = [*source.parameters(), *source.buffers()]
    identity = [*net.parameters(), *net.buffers()]
    calls: list[int] = []

    def broadcast(tensor: Tensor, src_: int = 0, **kw: Any) -> None:
        got_src = kw.get("src", src_)
        expect(got_src == (src or 0), f"broadcast from src={got_src}, expected {src or 0}")
        i = len(calls)
        expect(i < len(source_tensors), "more broadcasts than parameters and buffers")
        assert_equal(tuple(tensor.shape), tuple(source_tensors[i].shape), what=f"call {i} shape")
        calls.append(i)
        tensor.copy_(source_tensors[i].detach())

    with _patched(broadcast=broadcast):
        if src is None:
            ns.broadcast_parameters(net)
        else:
            ns.broadcast_parameters(net, src)
    expect(len(calls) == len(source_tensors), f"{len(calls)} broadcasts, expected one per tensor")
    for (name, t), mine, s in zip(
        [*net.named_parameters(), *net.named_buffers()], identity, source_tensors, strict=True
    ):
        expect(t is mine, f"{name} was replaced: broadcast into it in place")
        assert_equal(t.detach(), s.detach(), what=name)


@check("broadcast_parameters")
def broadcast_copies_src_weights(ns: Namespace) -> None:
    for src in (None, 2, 0):
        label = "default src" if src is None else f"src={src}"
        with case(f"a net with a frozen layer and a buffer, simulated ranks, {label}"):
            _fake_broadcast(ns, src)


@check("broadcast_parameters")
def broadcast_in_a_real_group_of_one(ns: Namespace) -> None:
    net = _Net(5)
    before = [t.detach().clone() for t in [*net.parameters(), *net.buffers()]]
    with case("a real gloo group of world size 1"):
        with _world_of_one():
            ns.broadcast_parameters(net)
        for i, (t, b) in enumerate(zip([*net.parameters(), *net.buffers()], before, strict=True)):
            assert_equal(t.detach(), b, what=f"tensor {i}")
