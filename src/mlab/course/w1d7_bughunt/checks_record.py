"""Checks for part 2 of w1d7: the hooks that record a network while it trains.

The recording functions run on small float64 networks (``nn.Linear``, ``nn.ReLU`` in place,
``nn.Tanh``, a layer called twice) exactly as ``Recorder`` uses them, and are compared with
values computed without any hook: ``torch.autograd.grad`` of the same loss with respect to
each layer's output (on a copy of the graph without in-place operations), and numpy
statistics of the tensors. The loss weights every output differently, so a hook that records
the wrong gradient cannot pass by luck. Every check also verifies that recording changed
nothing: the same outputs and the same parameter gradients as without the hooks."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mlab.course.engine.checks import Namespace, check
from mlab.course.w1d7_bughunt.checks_stats import assert_same_stats, numpy_stats
from mlab.errors import ConfigError
from mlab.inspect.record import StepRecord
from mlab.testing import assert_equal, assert_not_shares_storage, assert_raises, case, expect

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int) -> Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=F64)


# ----------------------------------------------------------------------------------------------
# first_tensor


@check("first_tensor")
def first_tensor_finds_the_output(ns: Namespace) -> None:
    t, u = torch.zeros(2), torch.ones(3)
    p = nn.Parameter(torch.ones(1))
    for description, value, want in (
        ("a tensor", t, t),
        ("an nn.Parameter (a Tensor subclass)", p, p),
        ("a tuple (output, attention weights), as nn.MultiheadAttention returns", (u, t), u),
        ("a tuple starting with None", (None, t, u), t),
        ("a list [3, 'x', t, u]", [3, "x", t, u], t),
    ):
        with case(description):
            got = ns.first_tensor(value)
            expect(got is want, f"first_tensor should return {want!r} itself, got {got!r}")


@check("first_tensor")
def first_tensor_gives_none_otherwise(ns: Namespace) -> None:
    t = torch.zeros(2)
    for description, value in (
        ("None", None),
        ("an empty tuple", ()),
        ("a tuple of no tensors", (1, "a", None)),
        ("a dict {'logits': t} (not searched)", {"logits": t}),
        ("a tuple holding a tuple holding t (not searched recursively)", ((t,),)),
        ("a string", "tensor"),
        ("a float", 1.5),
    ):
        with case(description):
            got = ns.first_tensor(value)
            expect(got is None, f"first_tensor should return None, got {got!r}")


# ----------------------------------------------------------------------------------------------
# recorded_modules


def _nested() -> tuple[nn.Sequential, dict[str, nn.Module]]:
    inner = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), inner, nn.Sequential(), nn.Linear(4, 2))
    return model, {"0": model[0], "1": model[1], "2": inner, "2.0": inner[0], "2.1": inner[1]}


def _same_modules(got: Any, want: dict[str, nn.Module]) -> None:
    expect(isinstance(got, dict), f"expected a dict of name -> module, got {type(got).__name__}")
    expect(
        list(got) == list(want),
        f"expected the names {list(want)} (named_modules() order), got {list(got)}",
    )
    for name, module in want.items():
        expect(
            got[name] is module,
            f"[{name!r}] should be the module itself, {module}, got {got[name]}",
        )


@check("recorded_modules")
def recorded_modules_picks_leaves_or_all(ns: Namespace) -> None:
    model, m = _nested()
    empty = model[3]
    leaves = {"0": m["0"], "1": m["1"], "2.0": m["2.0"], "2.1": m["2.1"], "3": empty, "4": model[4]}
    every = {**{k: m[k] for k in ("0", "1", "2", "2.0", "2.1")}, "3": empty, "4": model[4]}
    description = (
        "Sequential(Linear, ReLU, Sequential(Linear, Tanh), Sequential() (no children: a leaf), "
        "Linear)"
    )
    with case(description, modules="leaves"):
        _same_modules(ns.recorded_modules(model, "leaves"), leaves)
    with case(description + ", modules left out (default 'leaves')"):
        _same_modules(ns.recorded_modules(model), leaves)
    with case(description, modules="all"):
        _same_modules(ns.recorded_modules(model, "all"), every)


@check("recorded_modules")
def recorded_modules_of_a_single_layer(ns: Namespace) -> None:
    layer = nn.Linear(2, 3)
    for modules in ("leaves", "all"):
        with case("the model is one nn.Linear: the root is the only leaf", modules=modules):
            _same_modules(ns.recorded_modules(layer, modules), {"": layer})


@check("recorded_modules")
def recorded_modules_rejects_other_values(ns: Namespace) -> None:
    model, _ = _nested()
    for modules in ("leaf", "ALL", ""):
        with case(f"modules={modules!r}"):
            assert_raises(ns.recorded_modules, model, modules, exc=ConfigError, match=repr(modules))


# ----------------------------------------------------------------------------------------------
# attention_map


@check("attention_map")
def attention_map_takes_batch_element_0(ns: Namespace) -> None:
    heads = torch.softmax(_randn(2, 3, 5, 5, seed=1), dim=-1).requires_grad_()
    single = torch.softmax(_randn(4, 6, 6, seed=2), dim=-1)
    one = torch.softmax(_randn(1, 2, 3, 3, seed=3), dim=-1)
    for description, x in (
        ("(batch 2, heads 3, 5, 5): gives (3, 5, 5), requiring grad", heads),
        ("(batch 4, 6, 6): one head, gives (6, 6)", single),
        ("(batch 1, heads 2, 3, 3)", one),
    ):
        with case(description, output=x):
            got = ns.attention_map(x)
            expect(got is not None, "attention_map returned None for an attention-shaped output")
            assert_equal(got, x[0].detach(), what="attention_map(output)")
            expect(
                not got.requires_grad and got.device.type == "cpu",
                f"the map should be detached and on the CPU, got requires_grad="
                f"{got.requires_grad}, device={got.device}",
            )
            assert_not_shares_storage(got, x, what="attention_map(output)")


@check("attention_map")
def attention_map_rejects_other_shapes(ns: Namespace) -> None:
    for description, shape in (
        ("(2, 3, 5, 4): the last two dims differ", (2, 3, 5, 4)),
        ("(2, 5, 4)", (2, 5, 4)),
        ("(3, 4, 4, 2): 4-d, square in the middle only", (3, 4, 4, 2)),
        ("(5, 5): 2-d", (5, 5)),
        ("(5,): 1-d", (5,)),
        ("(1, 2, 3, 4, 4): 5-d", (1, 2, 3, 4, 4)),
        ("(0, 2, 4, 4): an empty batch", (0, 2, 4, 4)),
        ("(0, 3, 3): an empty batch", (0, 3, 3)),
    ):
        x = torch.rand(shape, generator=_gen(4))
        with case(description, output=x):
            got = ns.attention_map(x)
            expect(got is None, f"attention_map should return None, got {got!r}")


# ----------------------------------------------------------------------------------------------
# The small networks the recording functions run on


class _Net(nn.Module):
    """x -> Linear -> ReLU(inplace) -> shared Linear -> Tanh -> shared Linear again -> out.
    ``fc1`` is never used (its grad stays None)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.fc0 = nn.Linear(3, 4)
        self.fc1 = nn.Linear(3, 3)
        self.shared = nn.Linear(4, 4)
        self.act = nn.Tanh()
        self.to(F64)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu_(self.fc0(x))
        out: Tensor = self.shared(self.act(self.shared(h)))
        return out


X = _randn(5, 3, seed=10)
LOSS_WEIGHTS = _randn(5, 4, seed=11)


def _loss(out: Tensor) -> Tensor:
    return (out * LOSS_WEIGHTS).sum()


def _record(step: int = 0) -> StepRecord:
    return StepRecord(step=step)


def _same_keys(got: dict[str, Any], want: list[str], what: str) -> None:
    expect(list(got) == want, f"{what} should have the keys {want}, in that order, got {list(got)}")


def _kept_copy(record: StepRecord, key: str, want: Tensor, source: Tensor) -> None:
    expect(key in record.tensors, f"with keep=True, record.tensors should have {key!r}")
    got = record.tensors[key]
    assert_equal(got, want.detach(), what=f"record.tensors[{key!r}]")
    expect(
        not got.requires_grad and got.device.type == "cpu",
        f"record.tensors[{key!r}] should be detached and on the CPU (cpu_copy)",
    )
    assert_not_shares_storage(got, source, what=f"record.tensors[{key!r}] (use cpu_copy)")


# ----------------------------------------------------------------------------------------------
# record_step_start


@check("record_step_start")
def step_start_records_input_and_params(ns: Namespace) -> None:
    net = _Net()
    names = [name for name, _ in net.named_parameters()]
    record = _record()
    with case("a 5x3 float64 input to a net with fc0, fc1, shared (weights and biases)", x=X):
        ns.record_step_start(record, net, (X,), False)
        assert_same_stats(record.input, numpy_stats(X), what="record.input")
        _same_keys(record.params, names, "record.params")
        for name, p in net.named_parameters():
            assert_same_stats(record.params[name], numpy_stats(p), what=f"record.params[{name!r}]")
        expect(not record.tensors, f"with keep=False nothing is kept, got {list(record.tensors)}")


@check("record_step_start")
def step_start_keeps_copies(ns: Namespace) -> None:
    net = _Net()
    record = _record()
    mask = torch.ones(5, dtype=torch.bool)
    params = {name: p.detach().clone() for name, p in net.named_parameters()}
    with case("keep=True, args = ('text', x, mask): the input is x", x=X):
        ns.record_step_start(record, net, ("text", X, mask), True)
        assert_same_stats(record.input, numpy_stats(X), what="record.input")
        want = ["input", *[f"param:{name}" for name in params]]
        _same_keys(record.tensors, want, "record.tensors")
        _kept_copy(record, "input", X, X)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)  # what optimizer.step() does: change the parameters in place
        for name, p in net.named_parameters():
            _kept_copy(record, f"param:{name}", params[name], p)


@check("record_step_start")
def step_start_without_an_input_tensor(ns: Namespace) -> None:
    net = _Net()
    for description, args in (("no arguments", ()), ("args = ('text', 3)", ("text", 3))):
        record = _record()
        with case(description + ": record.input stays None, params are still recorded"):
            ns.record_step_start(record, net, args, True)
            expect(record.input is None, f"record.input should stay None, got {record.input}")
            expect("input" not in record.tensors, "no input was given, so none is kept")
            _same_keys(record.params, [n for n, _ in net.named_parameters()], "record.params")
    tokens = torch.tensor([[3, 1, 4], [1, 5, 9]])
    record = _record()
    with case("token ids (int64) as the input", tokens=tokens):
        ns.record_step_start(record, nn.Embedding(10, 2), (tokens,), False)
        assert_same_stats(record.input, numpy_stats(tokens), what="record.input")


# ----------------------------------------------------------------------------------------------
# record_output


def _expected_outputs(net: _Net) -> dict[str, tuple[Tensor, Tensor]]:
    """(output, d loss / d output) of each recorded place, from autograd.grad on the same net
    written without the in-place ReLU."""
    h = net.fc0(X)
    r = torch.relu(h)
    s1 = net.shared(r)
    t = net.act(s1)
    out = net.shared(t)
    places = {"fc0": h, "relu": r, "shared": s1, "act": t}
    grads = torch.autograd.grad(_loss(out), list(places.values()))
    return {name: (x.detach(), g) for (name, x), g in zip(places.items(), grads, strict=True)}


_SATURATION = {"act": (-0.99, 0.99), "relu": None, "fc0": None, "shared": None}


def _run_recorded(
    ns: Namespace, record: StepRecord, keep: bool
) -> tuple[_Net, Tensor, list[Any], dict[str, Tensor]]:
    """Forward through _Net calling record_output where Recorder's hooks would; backward.
    Returns the net, its output, the handles and the outputs' values when recorded."""
    net = _Net()
    handles: list[Any] = []
    seen: dict[str, Tensor] = {}

    def hooked(name: str, out: Tensor) -> Tensor:
        seen.setdefault(name, out.detach().clone())
        handles.append(ns.record_output(record, name, out, _SATURATION[name], keep))
        return out

    h = hooked("fc0", net.fc0(X))
    r = hooked("relu", torch.relu_(h))  # in place: r is h
    t = hooked("act", net.act(hooked("shared", net.shared(r))))
    out = hooked("shared", net.shared(t))  # the shared layer's second call
    _loss(out).backward()  # type: ignore[no-untyped-call]
    return net, out, handles, seen


@check("record_output")
def output_stats_and_gradients(ns: Namespace) -> None:
    record = _record()
    want = _expected_outputs(_Net())
    description = (
        "x -> fc0 -> ReLU in place -> shared -> tanh -> shared again; loss = sum(w * out); "
        "record_output called for fc0, relu, shared, act, shared (second call)"
    )
    with case(description):
        _, _, handles, _ = _run_recorded(ns, record, keep=False)
        _same_keys(record.activations, ["fc0", "relu", "shared", "act"], "record.activations")
        for name, (value, _) in want.items():
            assert_same_stats(
                record.activations[name],
                numpy_stats(value, _SATURATION[name]),
                what=f"record.activations[{name!r}]",
            )
        _same_keys(record.gradients, ["act", "shared", "relu", "fc0"], "record.gradients")
        for name, (_, grad) in want.items():
            assert_same_stats(
                record.gradients[name],
                numpy_stats(grad),
                what=f"record.gradients[{name!r}] (d loss / d output of {name})",
            )
        expect(not record.tensors, f"with keep=False nothing is kept, got {list(record.tensors)}")
        expect(
            handles[-1] is None,
            f"the shared layer's second call records nothing and returns None, got {handles[-1]}",
        )
        expect(
            all(hasattr(h, "remove") for h in handles[:-1]),
            "each first call should return the handle of the tensor hook it registered "
            f"(out.register_hook(...) returns it), got {handles[:-1]}",
        )


@check("record_output")
def output_copies_are_kept_before_in_place_ops(ns: Namespace) -> None:
    record = _record()
    want = _expected_outputs(_Net())
    with case("the same network, keep=True"):
        _, _, _, seen = _run_recorded(ns, record, keep=True)
        keys = [f"act:{n}" for n in ("fc0", "relu", "shared", "act")]
        keys += [f"grad:{n}" for n in ("act", "shared", "relu", "fc0")]
        _same_keys(record.tensors, keys, "record.tensors")
        for name, (value, grad) in want.items():
            got = record.tensors[f"act:{name}"]
            assert_equal(
                got,
                value,
                what=f"record.tensors['act:{name}'] (fc0's output before the in-place ReLU "
                "changed it: keep a copy, not the tensor)",
            )
            assert_equal(got, seen[name], what=f"record.tensors['act:{name}']")
            assert_equal(
                record.tensors[f"grad:{name}"], grad, what=f"record.tensors['grad:{name}']"
            )
            expect(not got.requires_grad, f"record.tensors['act:{name}'] should be detached")


@check("record_output")
def recording_changes_nothing(ns: Namespace) -> None:
    plain = _Net()
    want_out = plain(X)
    used = [(name, p) for name, p in plain.named_parameters() if not name.startswith("fc1")]
    want_grads = torch.autograd.grad(_loss(want_out), [p for _, p in used])
    record = _record()
    with case("the recorded network against the same network without hooks"):
        net, out, _, _ = _run_recorded(ns, record, keep=True)
        assert_equal(out.detach(), want_out.detach(), what="the network's output")
        params = dict(net.named_parameters())
        for (name, _), want in zip(used, want_grads, strict=True):
            got = params[name].grad
            expect(got is not None, f"{name}.grad is None after backward")
            assert_equal(got, want, what=f"{name}.grad (a tensor hook must return None)")


@check("record_output")
def output_hook_handles_and_second_backward(ns: Namespace) -> None:
    net = _Net()
    record = _record()
    h = net.fc0(X)
    with case("fc0's output; backward twice (retain_graph) with different weights"):
        handle = ns.record_output(record, "fc0", h, None, True)
        g1 = _randn(5, 4, seed=20)
        (h * g1).sum().backward(retain_graph=True)
        (h * _randn(5, 4, seed=21)).sum().backward()
        assert_same_stats(record.gradients["fc0"], numpy_stats(g1), what="record.gradients['fc0']")
        assert_equal(record.tensors["grad:fc0"], g1, what="record.tensors['grad:fc0'] (the first)")
    record = _record()
    h = net.fc0(X)
    with case("the handle returned, removed before backward: no gradient is recorded"):
        handle = ns.record_output(record, "fc0", h, None, False)
        handle.remove()
        (h * _randn(5, 4, seed=22)).sum().backward()
        expect(not record.gradients, f"nothing should be recorded, got {list(record.gradients)}")
    record = _record()
    h = net.fc0(X)
    g = _randn(5, 4, seed=23)

    def clip_in_place(grad: Tensor) -> None:
        grad.clamp_(-0.1, 0.1)

    with case("keep=True; a hook registered after yours clips the gradient in place", g=g):
        ns.record_output(record, "fc0", h, None, True)
        h.register_hook(clip_in_place)
        (h * g).sum().backward()
        expect("grad:fc0" in record.tensors, "with keep=True, record.tensors needs 'grad:fc0'")
        assert_equal(
            record.tensors["grad:fc0"],
            g,
            what="record.tensors['grad:fc0'] (the gradient as it reached fc0's output: keep "
            "cpu_copy(grad), not grad itself, which a later hook changed in place)",
        )


@check("record_output")
def output_without_grad(ns: Namespace) -> None:
    net = _Net()
    record = _record()
    with torch.no_grad():
        h = net.fc0(X)
    with case("an output computed under torch.no_grad() (evaluation)", output=h):
        got = ns.record_output(record, "fc0", h, (-0.5, 0.5), True)
        expect(got is None, f"no gradient can reach it, so return None (no hook), got {got}")
        assert_same_stats(
            record.activations["fc0"], numpy_stats(h, (-0.5, 0.5)), what="record.activations"
        )
        _same_keys(record.tensors, ["act:fc0"], "record.tensors")


# ----------------------------------------------------------------------------------------------
# record_step_end


def _trained() -> tuple[_Net, Tensor]:
    """The net after one backward and one SGD step by hand (fc1's grad stays None)."""
    net = _Net()
    loss = _loss(net(X))
    loss.backward()  # type: ignore[no-untyped-call]
    with torch.no_grad():
        for p in net.parameters():
            if p.grad is not None:
                p.sub_(0.1 * p.grad)  # an SGD step
    return net, loss


class _WatchedLoss(Tensor):
    """A loss tensor that notes when it is turned into a number while still attached to the
    graph (torch warns about that only once per process, so a warning can't be relied on)."""

    attached_reads: ClassVar[list[str]] = []

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in ("__float__", "item", "tolist") and args and args[0].requires_grad:
            cls.attached_reads.append(name)
        return super().__torch_function__(func, types, args, kwargs or {})  # type: ignore[no-untyped-call]


@check("record_step_end")
def step_end_records_param_grads(ns: Namespace) -> None:
    net, loss = _trained()
    used = [name for name, p in net.named_parameters() if p.grad is not None]
    record = _record()
    with case("after backward and optimizer.step(); fc1 is unused (grad None)", keep=False):
        _WatchedLoss.attached_reads.clear()
        ns.record_step_end(record, net, loss.as_subclass(_WatchedLoss), False)
        expect(
            not _WatchedLoss.attached_reads,
            f"the loss (a tensor that requires grad) went through "
            f"{_WatchedLoss.attached_reads[0] if _WatchedLoss.attached_reads else ''}() while "
            "still attached to the graph: detach it first (loss.detach()), as the docstring says",
        )
        _same_keys(record.param_grads, used, "record.param_grads")
        for name, p in net.named_parameters():
            if p.grad is not None:
                assert_same_stats(
                    record.param_grads[name], numpy_stats(p.grad), what=f"param_grads[{name!r}]"
                )
        expect(
            type(record.loss) is float and record.loss == loss.item(),
            f"record.loss should be the float {loss.item()!r}, got {record.loss!r}",
        )
        expect(not record.tensors, f"with keep=False nothing is kept, got {list(record.tensors)}")


@check("record_step_end")
def step_end_keeps_copies_of_grads(ns: Namespace) -> None:
    net, loss = _trained()
    grads = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}
    record = _record()
    with case("keep=True, then zero_grad() (which changes .grad in place)"):
        ns.record_step_end(record, net, loss, True)
        _same_keys(record.tensors, [f"param_grad:{name}" for name in grads], "record.tensors")
        sources = {name: p.grad for name, p in net.named_parameters() if p.grad is not None}
        for grad in sources.values():
            grad.zero_()  # what optimizer.zero_grad(set_to_none=False) does
        for name, grad in grads.items():
            _kept_copy(record, f"param_grad:{name}", grad, sources[name])


@check("record_step_end")
def step_end_loss_types(ns: Namespace) -> None:
    net = _Net()
    for description, loss, want in (
        ("loss = 2.5 (a float)", 2.5, 2.5),
        ("loss = 3 (an int): stored as 3.0", 3, 3.0),
        ("loss = torch.tensor(1.25, dtype=float16)", torch.tensor(1.25, dtype=torch.float16), 1.25),
        ("loss = None (not given)", None, None),
    ):
        record = _record()
        with case(description + "; no parameter has a gradient"):
            ns.record_step_end(record, net, loss, True)
            ok = record.loss is None if want is None else type(record.loss) is float
            expect(
                ok and record.loss == want,
                f"record.loss should be {want!r}, got {type(record.loss).__name__} {record.loss!r}",
            )
            expect(not record.param_grads, "no parameter has a .grad, so param_grads stays empty")
