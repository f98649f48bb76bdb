"""Checks for part 1 of w1d6: device-agnostic code.

They run on the CPU. Where a second device is needed they use ``meta``: a tensor there has a
shape, a dtype and a device but no data, so code that hard-codes ``"cpu"`` (or creates a
tensor on the default device and forgets to move it) ends up on the wrong device and fails.
Which accelerators are "available" is simulated by patching ``torch.cuda.is_available`` and
``torch.backends.mps.is_available`` for the length of one call; pinning is observed through a
tensor subclass that records ``pin_memory``, ``is_pinned`` and ``to`` calls.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ConfigError
from mlab.testing import assert_close, assert_equal, assert_raises, case, expect

META = torch.device("meta")
CPU = torch.device("cpu")


@contextmanager
def _available(cuda: bool, mps: bool) -> Iterator[None]:
    """Pretend CUDA and MPS are (not) available."""
    saved = torch.cuda.is_available, torch.backends.mps.is_available
    torch.cuda.is_available = lambda: cuda
    torch.backends.mps.is_available = lambda: mps  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.cuda.is_available, torch.backends.mps.is_available = saved


class _Spy(Tensor):
    """A tensor that says it is pinned when told to, and records how it is moved."""

    pinned: bool
    moves: list[dict[str, Any]]

    @staticmethod
    def make(data: Tensor, *, pinned: bool) -> _Spy:
        spy = data.as_subclass(_Spy)
        spy.pinned = pinned
        spy.moves = []
        return spy

    def is_pinned(self, *args: Any, **kwargs: Any) -> bool:
        return self.pinned

    def pin_memory(self, *args: Any, **kwargs: Any) -> Tensor:
        return _Spy.make(self.as_subclass(Tensor).clone(), pinned=True)

    def to(self, *args: Any, **kwargs: Any) -> Any:
        self.moves.append({"args": args, **kwargs})
        return self.as_subclass(Tensor).to(*args, **kwargs)


# ----------------------------------------------------------------------------------------------
# pick_device


@check("pick_device")
def picks_the_best_available(ns: Namespace) -> None:
    for cuda, mps, expected in (
        (True, True, "cuda"),
        (True, False, "cuda"),
        (False, True, "mps"),
        (False, False, "cpu"),
    ):
        with (
            case(f"cuda available={cuda}, mps available={mps}, prefer=None"),
            _available(cuda, mps),
        ):
            got = ns.pick_device()
            expect(isinstance(got, torch.device), f"should return a torch.device, got {got!r}")
            assert_equal(got, torch.device(expected), what="device")


@check("pick_device")
def honours_an_available_preference(ns: Namespace) -> None:
    for cuda, mps, prefer in (
        (False, False, "cpu"),
        (True, True, "cpu"),
        (True, False, "cuda"),
        (True, False, "cuda:1"),
        (False, True, "mps"),
        (True, True, "mps"),
    ):
        with (
            case(f"cuda available={cuda}, mps available={mps}", prefer=prefer),
            _available(cuda, mps),
        ):
            got = ns.pick_device(prefer)
            expect(isinstance(got, torch.device), f"should return a torch.device, got {got!r}")
            assert_equal(got, torch.device(prefer), what="device")


@check("pick_device")
def refuses_an_unavailable_preference(ns: Namespace) -> None:
    for cuda, mps, prefer in (
        (False, False, "cuda"),
        (False, True, "cuda:0"),
        (True, False, "mps"),
        (True, True, "xpu"),
    ):
        with (
            case(f"cuda available={cuda}, mps available={mps}", prefer=prefer),
            _available(cuda, mps),
        ):
            err = assert_raises(ns.pick_device, prefer, exc=ConfigError, match=repr(prefer))
            expect(
                "prefer=None" in str(err),
                f"the message should give the fix (pass prefer=None), got {str(err)!r}",
            )
            usable = [name for name, ok in (("cuda", cuda), ("mps", mps), ("cpu", True)) if ok]
            expect(
                all(name in str(err) for name in usable),
                f"the message should list the available types {usable}, got {str(err)!r}",
            )


# ----------------------------------------------------------------------------------------------
# make_like


def _expect_made(got: dict[str, Tensor], x: Tensor) -> None:
    batch, seq = x.shape
    expected = {
        "zeros": (x.shape, x.dtype),
        "ones": (torch.Size([batch]), x.dtype),
        "positions": (torch.Size([seq]), torch.int64),
        "causal": (torch.Size([seq, seq]), torch.bool),
    }
    expect(
        isinstance(got, dict) and sorted(got) == sorted(expected),
        f"should return a dict with keys {sorted(expected)}, got {got!r}",
    )
    for key, (shape, dtype) in expected.items():
        t = got[key]
        expect(isinstance(t, Tensor), f"{key!r} should be a tensor, got {t!r}")
        expect(t.device == x.device, f"{key!r} is on {t.device} but x is on {x.device}")
        expect(t.dtype == dtype, f"{key!r} should have dtype {dtype}, got {t.dtype}")
        expect(t.shape == shape, f"{key!r} should have shape {tuple(shape)}, got {tuple(t.shape)}")


@check("make_like")
def values_on_the_cpu(ns: Namespace) -> None:
    gen = torch.Generator().manual_seed(1601)
    for batch, seq, dtype in ((3, 5, torch.float32), (1, 1, torch.float64), (2, 4, torch.float16)):
        x = torch.randn(batch, seq, generator=gen).to(dtype)
        with case(f"x of shape ({batch}, {seq}), {dtype}", x=x):
            got = ns.make_like(x)
            _expect_made(got, x)
            assert_equal(got["zeros"], torch.zeros(batch, seq, dtype=dtype), what="zeros")
            assert_equal(got["ones"], torch.ones(batch, dtype=dtype), what="ones")
            assert_equal(got["positions"], torch.arange(seq), what="positions")
            causal = torch.tensor([[j > i for j in range(seq)] for i in range(seq)])
            assert_equal(got["causal"], causal, what="causal")


@check("make_like")
def everything_on_x_device(ns: Namespace) -> None:
    for batch, seq, dtype in ((4, 6, torch.float32), (2, 3, torch.bfloat16)):
        x = torch.empty(batch, seq, dtype=dtype, device=META)
        with case(f"x of shape ({batch}, {seq}), {dtype}, on the meta device", x=x):
            _expect_made(ns.make_like(x), x)


# ----------------------------------------------------------------------------------------------
# to_device


def _nested(pinned: bool) -> tuple[Any, list[_Spy]]:
    gen = torch.Generator().manual_seed(1602)
    spies = [_Spy.make(torch.randn(2, 3, generator=gen), pinned=pinned) for _ in range(4)]
    spies.append(_Spy.make(torch.arange(5), pinned=pinned))
    batch = {
        "x": spies[0],
        "pair": (spies[1], [spies[2], "label", 7]),
        "meta": {"id": 3, "mask": spies[3], "note": None},
        "y": spies[4],
    }
    return batch, spies


def _same_structure(got: Any, before: Any, check_leaf: Callable[[Any, Any, str], None]) -> None:
    def walk(g: Any, b: Any, path: str) -> None:
        if isinstance(b, dict):
            expect(
                type(g) is dict and list(g) == list(b),
                f"{path} should be a dict with keys {list(b)}, got {g!r}",
            )
            for key in b:
                walk(g[key], b[key], f"{path}[{key!r}]")
        elif isinstance(b, (tuple, list)):
            expect(
                type(g) is type(b) and len(g) == len(b),
                f"{path} should be a {type(b).__name__} of {len(b)}, got {g!r}",
            )
            for i, (gi, bi) in enumerate(zip(g, b, strict=True)):
                walk(gi, bi, f"{path}[{i}]")
        else:
            check_leaf(g, b, path)

    walk(got, before, "batch")


@check("to_device")
def moves_every_tensor(ns: Namespace) -> None:
    for device in (META, CPU, "meta"):
        batch, _ = _nested(pinned=False)
        target = torch.device(device)

        def leaf(g: Any, b: Any, path: str, target: torch.device = target) -> None:
            if isinstance(b, Tensor):
                expect(isinstance(g, Tensor), f"{path} should be a tensor, got {g!r}")
                expect(g.device == target, f"{path} is on {g.device}, should be on {target}")
                expect(g.shape == b.shape and g.dtype == b.dtype, f"{path} changed shape/dtype")
                if target == CPU:
                    assert_equal(g.as_subclass(Tensor), b.as_subclass(Tensor), what=path)
            else:
                expect(g is b, f"{path} is not a tensor and should be returned as is, got {g!r}")

        with case(f"a nested dict/tuple/list batch, device={device!r}", batch=batch):
            _same_structure(ns.to_device(batch, device), batch, leaf)


@check("to_device")
def non_blocking_from_pinned_memory(ns: Namespace) -> None:
    for pinned in (True, False):
        batch, spies = _nested(pinned=pinned)
        with case(f"every tensor pinned={pinned}, device=meta", batch=batch):
            ns.to_device(batch, META)
            for i, spy in enumerate(spies):
                expect(len(spy.moves) == 1, f"tensor {i} was moved {len(spy.moves)} times")
                got = spy.moves[0].get("non_blocking", False)
                expect(
                    got is pinned,
                    f"tensor {i} (pinned={pinned}) was moved with non_blocking={got}, "
                    f"should be non_blocking={pinned}",
                )
    with case("a bare tensor, a bare number"):
        t = torch.ones(2)
        expect(ns.to_device(t, META).device == META, "a bare tensor should move too")
        expect(ns.to_device(3.5, META) == 3.5, "a bare number should come back as it is")


# ----------------------------------------------------------------------------------------------
# pin_batch


@check("pin_batch")
def unchanged_without_cuda(ns: Namespace) -> None:
    batch, _ = _nested(pinned=False)
    with case("CUDA not available", batch=batch), _available(False, True):
        got = ns.pin_batch(batch)
        expect(got is batch, f"without CUDA the batch itself should come back, got {got!r}")


@check("pin_batch")
def pins_every_tensor_with_cuda(ns: Namespace) -> None:
    batch, _ = _nested(pinned=False)

    def leaf(g: Any, b: Any, path: str) -> None:
        if isinstance(b, Tensor):
            expect(
                isinstance(g, _Spy) and g.pinned,
                f"{path} should be b.pin_memory() (a pinned copy), got {g!r}",
            )
            assert_equal(g.as_subclass(Tensor), b.as_subclass(Tensor), what=path)
        else:
            expect(g is b, f"{path} is not a tensor and should be returned as is, got {g!r}")

    with case("CUDA available (pin_memory recorded)", batch=batch), _available(True, False):
        _same_structure(ns.pin_batch(batch), batch, leaf)
        bare = _Spy.make(torch.ones(3), pinned=False)
        got = ns.pin_batch(bare)
        expect(isinstance(got, _Spy) and got.pinned, "a bare tensor should be pinned too")
        expect(ns.pin_batch("text") == "text", "a bare string should come back as it is")


# ----------------------------------------------------------------------------------------------
# move_model_and_optimizer


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


_OPTIMIZERS: dict[str, Callable[[Any], torch.optim.Optimizer]] = {
    "SGD(lr=0.1, momentum=0.9)": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    "Adam(lr=0.01)": lambda ps: torch.optim.Adam(ps, lr=0.01),
    "RMSprop(lr=0.01, centered=True)": lambda ps: torch.optim.RMSprop(ps, lr=0.01, centered=True),
}


def _train(model: nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    gen = torch.Generator().manual_seed(1603)
    device = next(model.parameters()).device
    for _ in range(steps):
        x = torch.randn(5, 3, generator=gen, dtype=torch.float64).to(device)
        opt.zero_grad()
        model(x).square().sum().backward()
        opt.step()


@contextmanager
def _swap_params() -> Iterator[None]:
    """Make ``model.to("meta")`` keep each parameter object, as a move to a GPU does (torch
    would otherwise make new parameters for a move to meta)."""
    saved = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    try:
        yield
    finally:
        torch.__future__.set_swap_module_params_on_conversion(saved)


@check("move_model_and_optimizer")
def state_follows_the_parameters(ns: Namespace) -> None:
    for name, make in _OPTIMIZERS.items():
        model = _model(1)
        opt = make(model.parameters())
        _train(model, opt, 3)
        params = list(model.parameters())
        # torch's way: move the model, then reload the optimizer's own state dict.
        ref_model = copy.deepcopy(model)
        ref_opt = make(ref_model.parameters())
        ref_opt.load_state_dict(opt.state_dict())
        with _swap_params():
            ref_model.to(META)
        ref_opt.load_state_dict(ref_opt.state_dict())
        with case(f"{name} after 3 steps on the CPU, moved to meta"), _swap_params():
            ns.move_model_and_optimizer(model, opt, META)
            for i, p in enumerate(model.parameters()):
                expect(p is params[i], f"parameter {i} should be the same object after moving")
                expect(p.device == META, f"parameter {i} is on {p.device}, should be on meta")
                expect(
                    opt.param_groups[0]["params"][i] is p,
                    f"the optimizer should still hold parameter {i}",
                )
            for i, (p, q) in enumerate(zip(params, ref_model.parameters(), strict=True)):
                ours, theirs = opt.state[p], ref_opt.state[q]
                expect(sorted(ours) == sorted(theirs), f"state of parameter {i}: keys changed")
                for key, value in theirs.items():
                    got = ours[key]
                    expect(
                        isinstance(got, Tensor) and got.device == value.device,
                        f"state[{key!r}] of parameter {i} is on "
                        f"{getattr(got, 'device', got)}, torch puts it on {value.device}",
                    )


@check("move_model_and_optimizer")
def training_continues_as_torch(ns: Namespace) -> None:
    for name, make in _OPTIMIZERS.items():
        model, ref = _model(2), _model(2)
        opt, ref_opt = make(model.parameters()), make(ref.parameters())
        with case(f"{name}: 3 steps, moved to the CPU, 3 more steps; torch: 6 steps"):
            _train(model, opt, 3)
            ns.move_model_and_optimizer(model, opt, "cpu")
            _train(model, opt, 3)
            _train(ref, ref_opt, 3)
            _train(ref, ref_opt, 3)
            for i, (p, q) in enumerate(zip(model.parameters(), ref.parameters(), strict=True)):
                assert_close(p, q, rtol=1e-12, atol=1e-14, what=f"parameter {i}")


# ----------------------------------------------------------------------------------------------
# evaluate_on


class _Recorder(nn.Module):
    """A linear classifier that records where and how each forward pass ran."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.linear = nn.Linear(3, 4)
        self.seen: list[tuple[torch.device, torch.device, bool, bool]] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(
            (x.device, self.linear.weight.device, self.training, torch.is_grad_enabled())
        )
        out: Tensor = self.linear(x)
        return out


def _loader(sizes: tuple[int, ...]) -> list[tuple[Tensor, Tensor]]:
    gen = torch.Generator().manual_seed(1604)
    return [
        (torch.randn(n, 3, generator=gen), torch.randint(0, 4, (n,), generator=gen)) for n in sizes
    ]


@check("evaluate_on")
def loss_and_accuracy_match_torch(ns: Namespace) -> None:
    for sizes in ((8, 8, 3), (1,), (5, 16)):
        loader = _loader(sizes)
        model = _Recorder()
        model.train()
        xs = torch.cat([x for x, _ in loader])
        ys = torch.cat([y for _, y in loader])
        with torch.no_grad():
            logits = model.linear(xs)
        loss = F.cross_entropy(logits, ys).item()
        accuracy = (logits.argmax(-1) == ys).double().mean().item()
        with case(f"batches of sizes {sizes}, device=cpu"):
            got = ns.evaluate_on(model, loader, CPU)
            expect(
                isinstance(got, tuple) and len(got) == 2 and all(type(v) is float for v in got),
                f"should return (loss, accuracy) as two Python floats, got {got!r}",
            )
            assert_close(got[0], loss, rtol=1e-5, what="mean loss over examples")
            assert_close(got[1], accuracy, rtol=1e-9, what="accuracy over examples")
            expect(len(model.seen) == len(sizes), f"forward ran {len(model.seen)} times")
            expect(
                all(not training and not grad for _, _, training, grad in model.seen),
                "the model should run in eval mode under torch.no_grad()",
            )


@check("evaluate_on")
def runs_on_the_given_device(ns: Namespace) -> None:
    model = _Recorder()
    with case("device=meta (no data there: numbers can't be read, so only where it ran)"):
        try:
            ns.evaluate_on(model, _loader((4, 2)), META)
        except NotImplementedError:
            raise
        except Exception:  # reading a number on meta is meant to fail
            pass
        expect(len(model.seen) >= 1, "the model should have run at least once")
        x_device, w_device, _, _ = model.seen[0]
        expect(x_device == META, f"the batch reached the model on {x_device}, not on meta")
        expect(w_device == META, f"the model's weights were on {w_device}, not on meta")
