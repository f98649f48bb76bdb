"""Checks for part 2 of w3d1: ``accumulate_gradients`` against one backward pass over the
joined batch (float64, micro-batches of 5, 5 and 2, gradients already in ``.grad``), and
``clip_gradients`` against ``torch.nn.utils.clip_grad_norm_`` for norms 1, 2, 3 and inf."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlab.course.engine.checks import Namespace, check
from mlab.testing import assert_close, assert_equal, assert_raises, case, expect, randint, randn

F64 = torch.float64
Batch = tuple[Tensor, Tensor]


def _model(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).to(F64)


def _micro(sizes: tuple[int, ...], seed: int) -> list[Batch]:
    x = randn(sum(sizes), 4, seed=seed, dtype=F64)
    y = randint(0, 3, sum(sizes), seed=seed + 1)
    out, start = [], 0
    for n in sizes:
        out.append((x[start : start + n], y[start : start + n]))
        start += n
    return out


def _compare_accumulation(ns: Namespace, sizes: tuple[int, ...], stale: bool) -> None:
    model = _model(0)
    if stale:
        for i, p in enumerate(model.parameters()):
            p.grad = randn(*p.shape, seed=10 + i, dtype=F64)
    ref = copy.deepcopy(model)
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        q.grad = None if p.grad is None else p.grad.clone()
    micro = _micro(sizes, seed=sum(sizes))
    x = torch.cat([b[0] for b in micro])
    y = torch.cat([b[1] for b in micro])
    want_loss = F.cross_entropy(ref(x), y)
    want_loss.backward()  # type: ignore[no-untyped-call]

    calls: list[bool] = []

    def loss_fn(batch: Batch) -> Tensor:
        # has the previous micro-batch's backward run before this forward?
        calls.append(model[0].weight.grad is not None)
        return F.cross_entropy(model(batch[0]), batch[1])

    with case(f"micro-batches of {sizes}" + (", stale gradients in .grad" if stale else "")):
        got = ns.accumulate_gradients(loss_fn, micro)
        expect(isinstance(got, Tensor), f"return a 0-dim tensor, got {type(got).__name__}")
        expect(not got.requires_grad, "return the loss detached (no graph kept alive)")
        assert_close(got.double(), want_loss.detach(), rtol=1e-6, atol=1e-7, what="mean loss")
        for (name, p), q in zip(model.named_parameters(), ref.parameters(), strict=True):
            assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, what=f"{name}.grad")
        expect(len(calls) == len(sizes), f"loss_fn called {len(calls)} times for {len(sizes)}")
        if len(sizes) > 1 and not stale:
            expect(
                calls[1],
                "backward each micro-batch right after its forward: when the second "
                "micro-batch's loss was computed, no gradient had been accumulated yet",
            )


@check("accumulate_gradients")
def accumulation_equals_one_joined_batch(ns: Namespace) -> None:
    _compare_accumulation(ns, (5, 5, 2), stale=False)
    _compare_accumulation(ns, (3,), stale=False)
    _compare_accumulation(ns, (2, 6), stale=True)
    _compare_accumulation(ns, (1, 1, 1, 1), stale=False)


@check("accumulate_gradients")
def accumulation_of_nothing_is_an_error(ns: Namespace) -> None:
    with case("micro_batches=[]"):
        assert_raises(ns.accumulate_gradients, lambda b: b[0].sum(), [], exc=ValueError)


def _params(seed: int, dtype: torch.dtype, missing: bool, scale: float = 1.0) -> list[Tensor]:
    shapes = [(3, 4), (5,), (2, 2, 2), (1,)]
    params = []
    for i, shape in enumerate(shapes):
        p = torch.zeros(shape, dtype=dtype, requires_grad=True)
        if not (missing and i == 1):
            p.grad = randn(*shape, seed=seed + i, dtype=dtype) * scale
        params.append(p)
    return params


@check("clip_gradients")
def clipping_matches_torch(ns: Namespace) -> None:
    inf = float("inf")
    for norm_type in (2.0, 1.0, 3.0, inf):
        for max_norm in (0.5, 1e4):
            for dtype, missing in ((F64, False), (torch.float32, True)):
                ours, theirs = _params(3, dtype, missing), _params(3, dtype, missing)
                with case(
                    f"norm_type={norm_type}, max_norm={max_norm}, {dtype}"
                    + (", one gradient None" if missing else "")
                ):
                    got = ns.clip_gradients(iter(ours), max_norm, norm_type)
                    want = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
                    assert_close(got, want, rtol=1e-6, what="returned norm")
                    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
                        if b.grad is None:
                            expect(a.grad is None, f"parameter {i} had no gradient: keep None")
                        else:
                            assert_close(a.grad, b.grad, rtol=1e-6, what=f"gradient {i}")
    with case("default norm_type is 2"):
        ours, theirs = _params(5, F64, False), _params(5, F64, False)
        assert_close(
            ns.clip_gradients(ours, 1.0), torch.nn.utils.clip_grad_norm_(theirs, 1.0), what="norm"
        )
        assert_close(ours[0].grad, theirs[0].grad, what="gradient 0")


@check("clip_gradients")
def clipping_edge_cases(ns: Namespace) -> None:
    with case("no parameter has a gradient"):
        params = [torch.zeros(3, requires_grad=True)]
        assert_equal(ns.clip_gradients(params, 1.0), torch.tensor(0.0), what="returned norm")
    with case("an infinite gradient: the norm is returned as torch returns it"):
        ours, theirs = _params(7, F64, False), _params(7, F64, False)
        for ps in (ours, theirs):
            assert ps[2].grad is not None
            ps[2].grad[0, 0, 0] = float("inf")
        got = ns.clip_gradients(ours, 1.0)
        want = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
        expect(bool(torch.isinf(got)), f"the norm should be inf, got {got}")
        assert_equal(torch.isfinite(want), torch.isfinite(got), what="finite?")
    for bad in (0.0, -1.0):
        with case(f"max_norm={bad}"):
            assert_raises(ns.clip_gradients, _params(1, F64, False), bad, exc=ValueError)
