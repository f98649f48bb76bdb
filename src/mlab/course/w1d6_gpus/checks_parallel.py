"""Checks for part 2 of w1d6: data parallelism by hand.

``shard_indices`` is compared with ``DistributedSampler`` over many set-ups; the bucket helpers
with ``torch._utils``. The collectives are checked twice: once with ``torch.distributed``'s
``all_reduce`` / ``broadcast`` / ``get_world_size`` replaced by a simulated 3-rank world whose
other ranks' contributions are known numbers (so averaging, order and buckets show), and once in
a real gloo process group of world size 1 in this process. For ``OverlappedAllReduce`` the
simulated ``all_reduce`` returns a ``Work`` whose ``wait()`` brings the other ranks' part, and
probe hooks see when each gradient becomes ready, so the checks know which all-reduce started
when during backward. The two-process proof against ``DistributedDataParallel`` is
``tests/test_parallel.py``."""

from __future__ import annotations

import contextlib
import copy
import itertools
import re
import socket
from collections.abc import Iterator
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.utils.data.distributed import DistributedSampler

from mlab.course.engine.checks import Namespace, check
from mlab.errors import MismatchError, MlabError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_raises,
    case,
    describe,
    expect,
    generator,
    randn,
)

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
    for dtype in (torch.float16, torch.float64):
        ts = [
            torch.empty(2, 3, dtype=dtype, device="meta"),
            torch.empty(4, dtype=dtype, device="meta"),
        ]
        with case(f"two {dtype} tensors of shapes (2,3) and (4,) on the meta device"):
            got = ns.flatten_bucket(ts)
            want = _flatten_dense_tensors(ts)  # type: ignore[no-untyped-call]
            expect(
                (got.device, got.dtype, tuple(got.shape)) == (want.device, want.dtype, (10,)),
                f"the result is on {got.device}, {got.dtype}, shape {tuple(got.shape)}; "
                f"expected {want.device}, {want.dtype}, shape (10,): create it where the "
                "tensors are (torch.cat does; torch.empty needs device= and dtype=)",
            )


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
    # 64 bytes: a.weight (48) and a.bias (16) fill a bucket exactly, so they share it
    for cap_mb in (None, 1e-4, 60 / 2**20, 64 / 2**20, 0.0):
        net = _net_with_grads(1)
        net.c.bias.grad = None
        if cap_mb is None:
            label = "the default cap (25 MB)"
        else:
            label = f"bucket_cap_mb={cap_mb:.3g} ({cap_mb * 2**20:.0f} bytes)"
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


# ----------------------------------------------------------------------------------------------
# OverlappedAllReduce: probe hooks registered before the learner's (hooks on one parameter run
# in the order they were registered) see each gradient become ready; a fake all_reduce sees
# each launch, so the checks know what happened during backward without trusting `events`.

_Event = tuple[str, str | int]


def _overlap_buckets_by_rule(net: nn.Module, cap_mb: float) -> list[list[str]]:
    """Names of the trainable parameters in buckets by the docstring's rule, computed here."""
    buckets: list[list[str]] = []
    dtype, nbytes = torch.float32, 0
    for name, p in reversed(list(net.named_parameters())):
        if not p.requires_grad:
            continue
        size = p.numel() * p.element_size()
        if buckets and p.dtype == dtype and nbytes + size <= cap_mb * 2**20:
            buckets[-1].append(name)
            nbytes += size
        else:
            buckets.append([name])
            dtype, nbytes = p.dtype, size
    return buckets


def _bucket_names(overlap: Any, net: nn.Module) -> list[list[str]]:
    """``overlap.buckets`` as parameter names, with a message when it holds something else."""
    names = {id(p): name for name, p in net.named_parameters()}
    buckets = getattr(overlap, "buckets", None)
    expect(
        isinstance(buckets, list) and all(isinstance(b, list) for b in buckets),
        f"self.buckets should be a list of lists of parameters, got {describe(buckets)}",
    )
    for i, bucket in enumerate(cast(list[list[Any]], buckets)):
        for p in bucket:
            expect(
                id(p) in names,
                f"bucket {i} holds {describe(p)}, which is not a parameter of the module: keep "
                "the nn.Parameter objects themselves",
            )
    return [[names[id(p)] for p in bucket] for bucket in cast(list[list[Any]], buckets)]


def _sized(*numels: int) -> nn.Module:
    """Float32 parameters of these numels (4 bytes an element), in this forward order."""
    module = nn.Module()
    module.ps = nn.ParameterList(nn.Parameter(torch.zeros(n)) for n in numels)
    return module


@check("OverlappedAllReduce")
def overlap_buckets_follow_backward_order(ns: Namespace) -> None:
    nets: list[tuple[str, nn.Module, float | None]] = [
        ("a float32/float64 net with a frozen layer, the default cap (25 MB)", _Net(6), None),
        ("the same net, bucket_cap_mb = 48 bytes (c's 8 + 40 fit exactly)", _Net(6), 48 / 2**20),
        ("the same net, bucket_cap_mb = 47 bytes", _Net(6), 47 / 2**20),
        ("the same net, bucket_cap_mb=0 (every parameter alone)", _Net(6), 0.0),
        (
            "three float32 Linear layers, bucket_cap_mb = 60 bytes",
            nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 4), nn.Linear(4, 2)),
            60 / 2**20,
        ),
        (
            "three float32 Linear layers, bucket_cap_mb = 50 bytes",
            nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 4), nn.Linear(4, 2)),
            50 / 2**20,
        ),
        (
            "parameters of 16, 64 and 8 bytes, bucket_cap_mb = 60 bytes",
            _sized(4, 16, 2),
            60 / 2**20,
        ),
        (
            "parameters of 8, 16, 40, 40 bytes, bucket_cap_mb = 60 bytes",
            _sized(2, 4, 10, 10),
            60 / 2**20,
        ),
        ("a module with no trainable parameter", nn.Linear(2, 2).requires_grad_(False), 1.0),
    ]
    for label, net, cap_mb in nets:
        with case(label), _patched(get_world_size=lambda *a, **k: FAKE_WORLD):
            if cap_mb is None:
                overlap = ns.OverlappedAllReduce(net)
            else:
                overlap = ns.OverlappedAllReduce(net, cap_mb)
            want = _overlap_buckets_by_rule(net, 25.0 if cap_mb is None else cap_mb)
            got = _bucket_names(overlap, net)
            expect(
                got == want,
                f"self.buckets holds (as names) {got}; expected {want}: the trainable "
                "parameters in reverse module.parameters() order, a new bucket where the dtype "
                "changes or where the bucket's bytes plus the parameter's would exceed the cap",
            )
            expect(
                isinstance(getattr(overlap, "events", None), list),
                "__init__ should set self.events = [] (the record of ready/launch events; got "
                f"{describe(getattr(overlap, 'events', None))})",
            )
            assert_equal(list(overlap.events), [], what="self.events before any backward")


class _FakeWork:
    """What a simulated ``all_reduce(async_op=True)`` returns: ``wait()`` adds the other ranks'
    gradients, so the flat tensor holds the sum only after it."""

    def __init__(self, flat: Tensor, others: Tensor, label: str) -> None:
        self.flat, self.others, self.label = flat, others, label
        self.sent = flat.detach().clone()
        self.waited = False

    def wait(self, timeout: Any = None) -> bool:
        if not self.waited:
            expect(
                torch.equal(self.flat, self.sent),
                f"the flat tensor of {self.label} changed between all_reduce and wait(): the "
                "sum over the ranks only arrives in wait(), so divide and copy after it",
            )
            self.flat.add_(self.others)
            self.waited = True
        return True


def _loss(net: nn.Module, x: Tensor, only_c: bool) -> Tensor:
    """A non-uniform loss of ``net`` on ``x`` (through its last layer ``c`` only, or all)."""
    out = cast(_Net, net).c(x) if only_c else net(x)
    loss: Tensor = (out**2 * torch.arange(1.0, 3.0)).sum()
    return loss


class _World:
    """A simulated world of FAKE_WORLD ranks around ``net``: whose gradients are ready when
    (probe hooks), which all-reduces start when (a fake ``dist.all_reduce``), and what the
    other ranks add (``others``, seeded per parameter)."""

    def __init__(self, net: nn.Module, buckets: list[list[str]], seed: int) -> None:
        self.net = net
        self.copy = copy.deepcopy(net)  # autograd's gradients, computed apart from the hooks
        self.params = {n: p for n, p in net.named_parameters() if p.requires_grad}
        self.buckets = buckets
        self.bucket_of = {name: i for i, bucket in enumerate(buckets) for name in bucket}
        g = generator(seed)
        self.others = {
            n: torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
            for n, p in self.params.items()
        }
        self.works: list[_FakeWork] = []
        self.seen: list[_Event] = []
        self.local: dict[str, Tensor] = {}
        names = {id(p): n for n, p in self.params.items()}
        self.probes = [
            p.register_post_accumulate_grad_hook(  # type: ignore[no-untyped-call]
                lambda p: self._ready(names[id(p)])
            )
            for p in self.params.values()
        ]

    def _ready(self, name: str) -> None:
        self.seen.append(("ready", name))

    def describe_bucket(self, i: int) -> str:
        return f"bucket {i} ({', '.join(self.buckets[i])})"

    def all_reduce(
        self, tensor: Tensor, op: Any = dist.ReduceOp.SUM, group: Any = None, async_op: bool = False
    ) -> _FakeWork:
        expect(
            async_op is True,
            "all_reduce was called without async_op=True: it would block backward until the "
            "bucket is reduced. Start it with async_op=True, keep the Work, wait() in finish()",
        )
        expect(op == dist.ReduceOp.SUM, f"all_reduce called with op={op}, expected SUM")
        ready = {name for kind, name in self.seen if kind == "ready"}
        started = {i for kind, i in self.seen if kind == "launch"}
        complete = [
            i
            for i, bucket in enumerate(self.buckets)
            if i not in started and all(n in ready for n in bucket)
        ]
        expect(
            bool(complete),
            f"all_reduce started on {describe(tensor)} when no bucket was complete (and not yet "
            f"started): gradients ready so far {sorted(ready)}, buckets {self.buckets}",
        )
        i = complete[0]
        label = self.describe_bucket(i)
        want = torch.cat([self.local[n].reshape(-1) for n in self.buckets[i]])
        assert_close(
            tensor,
            want,
            rtol=1e-6,
            atol=1e-7,
            what=f"the flat tensor handed to all_reduce for {label}: its gradients flattened "
            "one after another, in bucket order",
        )
        self.seen.append(("launch", i))
        others = torch.cat([self.others[n].reshape(-1) for n in self.buckets[i]])
        self.works.append(_FakeWork(tensor, others, label))
        return self.works[-1]

    def local_grads(self, x: Tensor, only_c: bool) -> dict[str, Tensor]:
        """This rank's gradients of the loss on ``x``, by torch autograd on a copy of the net
        (only c's parameters when only c takes part)."""
        params = dict(self.copy.named_parameters())
        names = [n for n in self.params if n.startswith("c.") or not only_c]
        grads = torch.autograd.grad(_loss(self.copy, x, only_c), [params[n] for n in names])
        return dict(zip(names, grads, strict=True))

    def backward(self, seed: int, *, only_c: bool = False) -> list[_Event]:
        """A backward of a non-uniform loss on a fresh input; returns the events expected of
        it: each gradient ready in the order autograd made it, each bucket launched right
        after its last gradient."""
        x = randn(6, 5 if only_c else 3, seed=seed)
        self.local = self.local_grads(x, only_c)
        self.seen, self.works = [], []
        _loss(self.net, x, only_c).backward()  # type: ignore[no-untyped-call]
        expected: list[_Event] = []
        done: set[str | int] = set()
        for _, name in [e for e in self.seen if e[0] == "ready"]:
            expected.append(("ready", name))
            done.add(name)
            i = self.bucket_of[str(name)]
            if all(n in done for n in self.buckets[i]):
                expected.append(("launch", i))
        return expected

    def remove_probes(self) -> None:
        for handle in self.probes:
            handle.remove()


def _check_backward(world: _World, overlap: Any, expected: list[_Event]) -> dict[str, Tensor]:
    """After a backward: every all-reduce started during it, right after its bucket's last
    gradient, and ``overlap.events`` says so. Returns the ``.grad`` tensors, by name."""
    seen = world.seen
    last_ready = max(k for k, e in enumerate(expected) if e[0] == "ready")
    early = [e[1] for e in expected[:last_ready] if e[0] == "launch"]
    if early:
        before = seen[: max(k for k, e in enumerate(seen) if e[0] == "ready")]
        expect(
            any(e[0] == "launch" for e in before),
            f"no all_reduce had started when the last gradient ({expected[last_ready][1]}) "
            f"became ready, though {world.describe_bucket(int(early[0]))} was complete before "
            "it: start each bucket's all_reduce in the hook, as soon as the bucket's last "
            "gradient is ready, not in finish()",
        )
    if seen != expected:
        diff = next(
            (
                f"at event {k}: expected {b}, got {a}"
                for k, (a, b) in enumerate(zip(seen, expected, strict=False))
            ),
            f"expected {len(expected)} events, got {len(seen)}",
        )
        expect(
            False,
            f"during backward the gradients became ready and all_reduce started in this order: "
            f"{seen}; expected {expected} (each bucket's all_reduce right after its last "
            f"gradient is ready); first difference {diff}",
        )
    for work in world.works:
        expect(
            not work.waited,
            f"the all_reduce of {work.label} was waited for during backward: wait() blocks "
            "until the bucket is reduced, so backward stops and nothing overlaps. Keep the Work "
            "and call wait() in finish()",
        )
    events = [tuple(e) for e in getattr(overlap, "events", [])]
    expect(
        events == expected,
        f"self.events after backward is {events}; expected {expected}: this backward's "
        "('ready', name) and ('launch', bucket index), in the order they happened (a new list "
        "at the first gradient of each backward)",
    )
    return {n: p.grad for n, p in world.params.items() if p.grad is not None}


def _check_finish(world: _World, grads: dict[str, Tensor]) -> None:
    """After finish(): every Work waited for, every gradient that backward made averaged over
    the simulated ranks, in place."""
    for work in world.works:
        expect(
            work.waited,
            f"finish() returned without calling wait() on the Work of {work.label}'s "
            "all_reduce: until wait() returns, flat holds only this rank's gradients",
        )
    for name, local in world.local.items():
        p = world.params[name]
        expect(
            p.grad is grads[name],
            f"{name}.grad was replaced by another tensor: copy the average into the existing "
            ".grad tensor in place (grad.copy_(piece)); an optimizer may hold it",
        )
        got, total = cast(Tensor, p.grad), local + world.others[name]
        want = total / FAKE_WORLD
        if not torch.allclose(got, want, rtol=1e-5, atol=1e-6):
            expect(
                not torch.allclose(got, total, rtol=1e-5, atol=1e-6),
                f"{name}.grad holds the sum over the {FAKE_WORLD} ranks, not the mean: divide "
                "flat by the world size after wait()",
            )
            for mine in (local, local / FAKE_WORLD):
                expect(
                    not torch.allclose(got, mine, rtol=1e-5, atol=1e-6),
                    f"{name}.grad holds only this rank's part of the sum: the other ranks' "
                    "gradients arrive in flat when the Work's wait() returns; copy after it",
                )
        assert_close(got, want, rtol=1e-6, atol=1e-6, what=f"{name}.grad after finish()")


@contextlib.contextmanager
def _probed(world: _World) -> Iterator[_World]:
    """``world``, with its probe hooks taken off the net afterwards whatever happens."""
    try:
        yield world
    finally:
        world.remove_probes()


def _fake_world(world: _World) -> contextlib.AbstractContextManager[None]:
    return _patched(all_reduce=world.all_reduce, get_world_size=lambda *a, **k: FAKE_WORLD)


def _mlab_error(fn: Any, what: str) -> BaseException:
    """The MlabError that ``fn()`` must raise (a complaint of the simulated world is passed
    on as it is)."""
    err = assert_raises(fn, exc=MlabError, what=what)
    if isinstance(err, MismatchError):
        raise err
    return err


@check("OverlappedAllReduce")
def overlap_reduces_during_backward(ns: Namespace) -> None:
    for cap_mb, label in ((None, "the default cap (25 MB)"), (48 / 2**20, "a cap of 48 bytes")):
        net = _Net(8)
        with _probed(_World(net, _overlap_buckets_by_rule(net, cap_mb or 25.0), seed=9)) as world:
            description = f"the float32/float64 net, {FAKE_WORLD} simulated ranks, {label}"
            with case(description), _fake_world(world):
                if cap_mb is None:
                    overlap = ns.OverlappedAllReduce(net)
                else:
                    overlap = ns.OverlappedAllReduce(net, cap_mb)
                for step in (1, 2):
                    with case(f"step {step}: zero_grad, backward, finish()"):
                        net.zero_grad()
                        grads = _check_backward(world, overlap, world.backward(20 + step))
                        overlap.finish()
                        _check_finish(world, grads)


@check("OverlappedAllReduce")
def overlap_names_parameters_without_gradient(ns: Namespace) -> None:
    net = _Net(10)
    with (
        _probed(_World(net, _overlap_buckets_by_rule(net, 25.0), seed=11)) as world,
        _fake_world(world),
    ):
        with case("a loss through the last layer c only: a and b get no gradient"):
            overlap = ns.OverlappedAllReduce(net)
            grads = _check_backward(world, overlap, world.backward(30, only_c=True))
            message = str(_mlab_error(overlap.finish, "finish() after a and b got no gradient"))
            found = {
                name: re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", message)
                for name in world.params
            }
            missing = [name for name in world.params if not name.startswith("c.")]
            for name in missing:
                expect(
                    found[name] is not None,
                    f"the error should name {name}, which got no gradient; it says {message!r}",
                )
            for name in ("c.weight", "c.bias"):
                expect(
                    found[name] is None,
                    f"the error names {name}, which did get its gradient: {message!r}",
                )
            expect(
                "frozen" not in message,
                f"the error names a frozen parameter (not trainable, no hook): {message!r}",
            )
            starts = [cast(re.Match[str], found[name]).start() for name in missing]
            expect(
                starts == sorted(starts),
                f"name them in module.named_parameters() order ({', '.join(missing)}): {message!r}",
            )
            # the bucket that did start was finished before the error
            _check_finish(world, grads)
        with case("then a full step with the same object: the failed finish() reset it"):
            net.zero_grad()
            grads = _check_backward(world, overlap, world.backward(31))
            overlap.finish()
            _check_finish(world, grads)


@check("OverlappedAllReduce")
def overlap_refuses_a_second_backward_before_finish(ns: Namespace) -> None:
    net = _Net(12)
    with (
        _probed(_World(net, _overlap_buckets_by_rule(net, 25.0), seed=13)) as world,
        _fake_world(world),
        case("backward, zero_grad, backward again without finish()"),
    ):
        ns.OverlappedAllReduce(net)  # its hooks keep it alive
        world.backward(40)
        net.zero_grad()
        message = str(_mlab_error(lambda: world.backward(41), "a second backward before finish()"))
        first = str(world.seen[0][1])
        expect(
            first in message,
            f"the error should name {first}, whose gradient arrived again while its "
            f"bucket's all_reduce (from the backward before) was unfinished: {message!r}",
        )


@check("OverlappedAllReduce")
def overlap_remove_takes_the_hooks_off(ns: Namespace) -> None:
    net = _Net(14)
    with (
        _probed(_World(net, _overlap_buckets_by_rule(net, 25.0), seed=15)) as world,
        _fake_world(world),
        case("a full step, remove(), then a plain backward"),
    ):
        overlap = ns.OverlappedAllReduce(net)
        world.backward(50)
        overlap.finish()
        overlap.remove()
        net.zero_grad()
        world.backward(51)
        expect(
            not world.works,
            f"{len(world.works)} all_reduce(s) started after remove(): take every hook off "
            "(keep the handles that register_post_accumulate_grad_hook returns and call "
            "their remove())",
        )
        for name, want in world.local.items():
            assert_close(
                world.params[name].grad, want, what=f"{name}.grad of a backward after remove()"
            )


@check("OverlappedAllReduce")
def overlap_in_a_real_group_of_one(ns: Namespace) -> None:
    net = _Net(16)
    with _probed(_World(net, _overlap_buckets_by_rule(net, 48 / 2**20), seed=17)) as world:
        description = "a real gloo group of world size 1, a cap of 48 bytes, two steps"
        with case(description), _world_of_one():
            overlap = ns.OverlappedAllReduce(net, 48 / 2**20)
            for step in (1, 2):
                net.zero_grad()
                world.backward(60 + step)
                grads = {n: p.grad for n, p in world.params.items()}
                overlap.finish()
                for name, want in world.local.items():
                    p = world.params[name]
                    expect(p.grad is grads[name], f"{name}.grad was replaced: copy in place")
                    assert_close(p.grad, want, what=f"step {step}: {name}.grad (the mean of one)")
            overlap.remove()
