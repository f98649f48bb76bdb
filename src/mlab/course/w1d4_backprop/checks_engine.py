"""Checks for part 3 of w1d4: an autograd engine. Every gradient is compared with
``torch.autograd`` on the same float64 inputs, backpropagating a random (non-uniform) upstream
gradient ``w``, i.e. the gradient of ``(out * w).sum()``: a backward that ignored its upstream
gradient would pass with ``.sum()`` alone. Graphs are written once as a function that runs on
both our ``Variable`` and ``torch.Tensor`` (the two share the operator API), so the expression
compared cannot drift.

The op checks backpropagate with the reference engine, and the engine checks build graphs with
the reference ops: each exercise is checked on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from mlab.autograd.engine import Variable, from_op, no_grad
from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_not_shares_storage,
    assert_raises,
    assert_unchanged,
    case,
    describe,
    expect,
    generator,
)

f64 = torch.float64


def _randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=g, dtype=f64)


def _away_from_zero(g: torch.Generator, *shape: int) -> torch.Tensor:
    """Values with |v| in [0.5, 2]: safe to divide by, negative ones included."""
    sign = torch.randint(0, 2, shape, generator=g).to(f64) * 2 - 1
    return sign * (0.5 + 1.5 * torch.rand(shape, generator=g, dtype=f64))


def _check_backward_fn(out: Variable, grad: torch.Tensor) -> None:
    """What ``out.backward_fn(grad)`` returns: one tensor per parent, of that parent's shape
    (else the engine would fail later with a message about its own code, not the op's)."""
    grads = out.backward_fn(grad.clone()) if out.backward_fn is not None else None
    n = len(out.parents)
    expect(
        isinstance(grads, (tuple, list)) and len(grads) == n,
        f"backward_fn(grad) should return a tuple of {n} gradient{'s' * (n != 1)}, one per "
        f"input, got {describe(grads)}" + (" (a missing `return`?)" if grads is None else ""),
    )
    assert grads is not None  # for mypy: expect() raised otherwise
    for i, (parent, g) in enumerate(zip(out.parents, grads, strict=True)):
        expect(
            isinstance(g, torch.Tensor) and g.shape == parent.shape,
            f"backward_fn(grad)[{i}] should be the gradient for input {i}, a tensor of its "
            f"shape {tuple(parent.shape)}, got {describe(g)}",
        )


def _compare_op(
    name: str,
    ours: Callable[..., Any],
    theirs: Callable[..., torch.Tensor],
    inputs: list[torch.Tensor],
    *,
    seed: int,
    differentiable: list[bool] | None = None,
) -> None:
    """Run ``ours`` on Variables wrapping ``inputs`` and ``theirs`` on torch tensors; compare the
    output, then the gradients of ``(out * w).sum()`` for a random ``w``. ``differentiable``
    says which inputs require grad (default: all)."""
    needs = differentiable or [True] * len(inputs)
    before = [x.clone() for x in inputs]
    mine = [Variable(x, requires_grad=r) for x, r in zip(inputs, needs, strict=True)]
    ref = [x.clone().requires_grad_(r) for x, r in zip(inputs, needs, strict=True)]
    with case(name, **{f"input{i}": x for i, x in enumerate(inputs)}):
        out = ours(*mine)
        expected = theirs(*ref)
        expect(isinstance(out, Variable), f"expected a Variable (from from_op), got {type(out)}")
        assert_close(out.data, expected.detach(), what="forward output")
        expect(out.requires_grad, "the output should require grad (its inputs do)")
        w = torch.randn(expected.shape, generator=generator(seed), dtype=f64)
        w_before = w.clone()
        _check_backward_fn(out, w)
        out.backward(w)
        assert_unchanged(w, w_before, what="the upstream gradient")
        want = torch.autograd.grad(expected, [r for r in ref if r.requires_grad], w)
        got = [t.grad for t in mine if t.requires_grad]
        for i, (g, e) in enumerate(zip(got, want, strict=True)):
            expect(g is not None, f"input {i} got no gradient")
            assert_close(g, e, what=f"gradient of input {i}")
        for i, (x, b) in enumerate(zip(inputs, before, strict=True)):
            assert_unchanged(x, b, what=f"input {i}")


# ----------------------------------------------------------------------------------------------
# from_op


@check("from_op")
def from_op_records_only_what_needs_gradients(ns: Namespace) -> None:
    def backward(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return grad, grad

    data = torch.arange(6.0).reshape(2, 3)
    for name, flags in [
        ("both parents require grad", (True, True)),
        ("only the second parent requires grad", (False, True)),
        ("only the first parent requires grad", (True, False)),
    ]:
        a, b = Variable(torch.ones(2, 3), requires_grad=flags[0]), Variable(torch.ones(3), flags[1])
        with case(name, a=a.data, b=b.data):
            out = ns.from_op(data, (a, b), backward)
            expect(isinstance(out, Variable), f"expected a Variable, got {type(out)}")
            assert_equal(out.data, data, what="data")
            expect(out.requires_grad is True, f"requires_grad is {out.requires_grad}, not True")
            expect(
                isinstance(out.parents, tuple) and len(out.parents) == 2,
                f"parents should be the tuple (a, b), got {out.parents!r}",
            )
            expect(
                out.parents[0] is a and out.parents[1] is b,
                "parents should be (a, b) themselves, in that order",
            )
            expect(out.backward_fn is backward, "backward_fn should be the function passed in")
            expect(not out.is_leaf, "a recorded result is not a leaf")
    a, b = Variable(torch.ones(2, 3)), Variable(torch.ones(3))
    with case("no parent requires grad", a=a.data, b=b.data):
        out = ns.from_op(data, (a, b), backward)
        assert_equal(out.data, data, what="data")
        expect(out.requires_grad is False, "the result should not require grad")
        expect(out.parents == (), f"parents should be (), got {out.parents!r}")
        expect(out.backward_fn is None, "backward_fn should be None: nothing to record")


@check("from_op")
def from_op_records_nothing_under_no_grad(ns: Namespace) -> None:
    a = Variable(torch.ones(3), requires_grad=True)
    with case("inside no_grad(), a parent that requires grad", a=a.data):
        with no_grad():
            out = ns.from_op(a.data * 2, (a,), lambda g: (g * 2,))
        expect(out.requires_grad is False, "inside no_grad() the result must not require grad")
        expect(out.parents == () and out.backward_fn is None, "inside no_grad() record nothing")
        out = ns.from_op(a.data * 2, (a,), lambda g: (g * 2,))
        expect(out.requires_grad, "after no_grad() ends, recording must resume")


# ----------------------------------------------------------------------------------------------
# topological_order


def _ancestors(root: Variable) -> set[int]:
    """ids of the tensors that require grad and that root depends on, root included."""
    seen, todo = {id(root)}, [root]
    while todo:
        for p in todo.pop().parents:
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                todo.append(p)
    return seen


def _check_order(order: Any, root: Variable) -> None:
    expect(isinstance(order, list), f"expected a list of Variables, got {type(order).__name__}")
    ids = [id(t) for t in order]
    expect(len(set(ids)) == len(ids), f"{len(ids) - len(set(ids))} tensors appear twice")
    want = _ancestors(root)
    missing, extra = len(want - set(ids)), len(set(ids) - want)
    expect(
        not missing and not extra,
        f"{len(ids)} tensors: {missing} of the {len(want)} that require grad are missing, "
        f"{extra} should not be there (constants, or not ancestors of root)",
    )
    where = {t: i for i, t in enumerate(ids)}
    for i, t in enumerate(order):
        for p in t.parents:
            if p.requires_grad:
                expect(
                    where[id(p)] < i,
                    f"the tensor at position {i} comes before its parent (position "
                    f"{where[id(p)]}): a tensor must come after all of its parents",
                )
    expect(order[-1] is root, "root should come last")


def _graphs() -> list[tuple[str, Variable]]:
    x = Variable(torch.tensor([1.0, 2.0]), requires_grad=True)
    y = Variable(torch.tensor([3.0, -1.0]), requires_grad=True)
    c = Variable(torch.tensor([0.5, 0.5]))  # a constant
    a = x * y
    b = (x + c).exp()
    diamond = (a * b + a) / (b - c)
    deep = x
    for _ in range(6):
        deep = deep * y + deep
    return [
        ("a leaf that requires grad", x),
        ("x * x (one tensor used twice)", x * x),
        ("a chain x -> exp -> log -> sum", x.exp().log().sum()),
        ("x * c with c a constant", x * c),
        ("a diamond: a = x * y, b = exp(x + c), (a * b + a) / (b - c)", diamond),
        ("(d * y + d) six times over", deep.sum()),
        ("a sum of sums sharing subexpressions", (a + a + b).sum() + (a * b).sum() + a.sum()),
    ]


@check("topological_order")
def order_puts_parents_first(ns: Namespace) -> None:
    for name, root in _graphs():
        with case(name, root=root.data):
            _check_order(ns.topological_order(root), root)


@check("topological_order")
def order_does_not_recurse(ns: Namespace) -> None:
    x = Variable(torch.tensor(1.0), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = -y
    with case("a chain of 10,000 negations"):
        order = ns.topological_order(y)
        expect(
            isinstance(order, list) and len(order) == 10_001,
            f"expected 10,001 tensors, got {len(order)}",
        )
        expect(order[0] is x and order[-1] is y, "x should come first and the root last")


# ----------------------------------------------------------------------------------------------
# backpropagate


def _graph_fn(x: Any, w: Any, y: Any, c: Any) -> Any:
    """The same expression on our Variables and on torch tensors: x used three times, a diamond
    through h, a constant c, broadcasting, a matmul, reductions."""
    h = (x @ w).relu() + c
    z = h * y + (h / (1 + (h * h))) - x.sum(1, keepdim=True) * 0.5
    return (z.exp() * y).log_softmax(1) * z + x.mean()


def _graph_inputs(seed: int) -> list[torch.Tensor]:
    g = generator(seed)
    return [_randn(g, 4, 3), _randn(g, 3, 5), _randn(g, 5), _randn(g, 1, 5)]


@check("backpropagate")
def backpropagate_matches_torch(ns: Namespace) -> None:
    data = _graph_inputs(0)
    x, w, y = (Variable(t, requires_grad=True) for t in data[:3])
    c = Variable(data[3])
    ref = [t.clone().requires_grad_(i < 3) for i, t in enumerate(data)]
    out, expected = _graph_fn(x, w, y, c), _graph_fn(*ref)
    upstream = torch.randn(4, 5, generator=generator(1), dtype=f64)
    with case("a (4, 5) output, a random upstream gradient", grad=upstream):
        ns.backpropagate(out, upstream)
        want = torch.autograd.grad(expected, ref[:3], upstream)
        for name, t, e in zip(("x", "w", "y"), (x, w, y), want, strict=True):
            expect(t.grad is not None, f"{name}.grad is None after backward")
            assert_close(t.grad, e, what=f"{name}.grad")
        expect(c.grad is None, "c does not require grad: its .grad should stay None")
        expect(out.grad is None, "intermediate (non-leaf) tensors should not keep a .grad")
    with case("a scalar output (grad left out: 1)"):
        x, w, y = (Variable(t, requires_grad=True) for t in data[:3])
        ns.backpropagate((_graph_fn(x, w, y, c) * upstream).sum())
        for name, t, e in zip(("x", "w", "y"), (x, w, y), want, strict=True):
            assert_close(t.grad, e, what=f"{name}.grad")
    with case("a (1, 1) output (one element: grad may be left out)"):
        x = Variable(data[0], requires_grad=True)
        ns.backpropagate((x * x).sum(1, keepdim=True).sum(0, keepdim=True))
        assert_close(x.grad, 2 * data[0], what="x.grad")


@check("backpropagate")
def backpropagate_accumulates(ns: Namespace) -> None:
    g = generator(2)
    a_data, b_data = _randn(g, 3), _randn(g, 3)
    with case("x + y: each leaf gets its own copy of the gradient", x=a_data, y=b_data):
        x, y = Variable(a_data, requires_grad=True), Variable(b_data, requires_grad=True)
        upstream = _randn(g, 3)
        ns.backpropagate(x + y, upstream)
        assert_close(x.grad, upstream, what="x.grad")
        assert_not_shares_storage(x.grad, upstream, what="x.grad (vs the upstream gradient)")
        expect(y.grad is not None, "y.grad is None after backward")
        assert y.grad is not None
        assert_not_shares_storage(x.grad, y.grad, what="x.grad (vs y.grad)")
    with case("backward twice: .grad accumulates, as in torch", x=a_data):
        x = Variable(a_data, requires_grad=True)
        ns.backpropagate((x * x).sum())
        ns.backpropagate((x * x * x).sum())
        assert_close(x.grad, 2 * a_data + 3 * a_data**2, what="x.grad after two calls")
    with case("a leaf as root", x=a_data):
        x = Variable(a_data, requires_grad=True)
        upstream = _randn(g, 3)
        ns.backpropagate(x, upstream)
        assert_close(x.grad, upstream, what="x.grad")
        assert_not_shares_storage(x.grad, upstream, what="x.grad (vs the upstream gradient)")


@check("backpropagate")
def backpropagate_rejects_bad_calls(ns: Namespace) -> None:
    x = Variable(torch.ones(2, 3, dtype=f64), requires_grad=True)
    with case("a (2, 3) output and no grad"):
        assert_raises(ns.backpropagate, x * 2, exc=ShapeError)
    with case("a (2, 3) output and a (3,) grad"):
        assert_raises(ns.backpropagate, x * 2, torch.ones(3, dtype=f64), exc=ShapeError)
    with case("a (3,) output and a (2, 3) grad (it would broadcast)"):
        v = Variable(torch.ones(3, dtype=f64), requires_grad=True)
        assert_raises(ns.backpropagate, v * 2, torch.ones(2, 3, dtype=f64), exc=ShapeError)
    with case("a backward_fn that returns one gradient for two parents"):
        v = Variable(torch.ones(3, dtype=f64), requires_grad=True)
        out = from_op(v.data * 2, (v, v), lambda g: (g * 2,))
        assert_raises(ns.backpropagate, out, torch.ones(3, dtype=f64), exc=ValueError)
    with case("an output that does not require grad"):
        assert_raises(ns.backpropagate, Variable(torch.ones(())), exc=RuntimeError)
        expect(x.grad is None, "x.grad should be untouched")


@check("backpropagate")
def backpropagate_does_not_recurse(ns: Namespace) -> None:
    x = Variable(torch.tensor(1.0, dtype=f64), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    with case("a chain of 10,000 multiplications"):
        ns.backpropagate(y)
        assert_close(x.grad, torch.tensor(1.0001, dtype=f64) ** 10_000, what="x.grad")


# ----------------------------------------------------------------------------------------------
# unbroadcast


@check("unbroadcast")
def unbroadcast_sums_copies(ns: Namespace) -> None:
    g = generator(3)
    for grad_shape, shape in [
        ((2, 3, 4), (3, 1)),
        ((2, 3, 4), (4,)),
        ((2, 3, 4), ()),
        ((2, 3, 4), (1, 3, 1)),
        ((2, 3, 4), (2, 1, 4)),
        ((5, 1, 3), (1, 1, 3)),
        ((5,), (1,)),
        ((4, 2), (1,)),
        ((3, 2, 1, 5), (2, 1, 1)),
    ]:
        grad = _randn(g, *grad_shape)
        with case(f"a {grad_shape} gradient to shape {shape}", grad=grad):
            x = torch.zeros(shape, dtype=f64, requires_grad=True)
            (want,) = torch.autograd.grad(x.expand(grad_shape), x, grad)
            got = ns.unbroadcast(grad, shape)
            assert_close(got, want)
    grad = _randn(g, 3, 4).t()
    with case("a gradient already of the shape (transposed) comes back as it is", grad=grad):
        expect(ns.unbroadcast(grad, (4, 3)) is grad, "expected grad itself back: no copy")


@check("unbroadcast")
def unbroadcast_rejects_shapes_that_do_not_broadcast(ns: Namespace) -> None:
    for grad_shape, shape in [
        ((4,), (3,)),
        ((3, 4, 5), (2, 3, 4, 5)),
        ((2, 3), (2,)),
        ((2, 3), (3, 3)),
        ((4, 3), (2, 1)),
        ((3,), (1, 3)),
    ]:
        with case(f"a {grad_shape} gradient to shape {shape}"):
            assert_raises(ns.unbroadcast, torch.ones(grad_shape), shape, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# mul, div

_BROADCAST_PAIRS = [
    ((3, 4), (3, 4)),
    ((2, 3, 4), (4,)),
    ((3, 1), (1, 4)),
    ((2, 1, 4), (3, 1)),
    ((), (2, 3)),
    ((5,), ()),
    ((4, 1, 3), (1, 2, 1)),
]


def _binary_cases(
    seed: int, fill: Callable[..., torch.Tensor]
) -> list[tuple[str, list[torch.Tensor]]]:
    g = generator(seed)
    cases = [
        (f"shapes {sa} and {sb}", [_randn(g, *sa), fill(g, *sb)]) for sa, sb in _BROADCAST_PAIRS
    ]
    cases.append(("a transposed (4, 3) and a (4, 1)", [_randn(g, 3, 4).t(), fill(g, 4, 1)]))
    return cases


@check("mul")
def mul_matches_torch(ns: Namespace) -> None:
    for i, (name, inputs) in enumerate(_binary_cases(4, _randn)):
        _compare_op(name, ns.mul, torch.mul, inputs, seed=i)
    g = generator(5)
    inputs = [_randn(g, 2, 3), _randn(g, 3)]
    _compare_op("b a constant", ns.mul, torch.mul, inputs, seed=9, differentiable=[True, False])


@check("div")
def div_matches_torch(ns: Namespace) -> None:
    for i, (name, inputs) in enumerate(_binary_cases(6, _away_from_zero)):
        _compare_op(name, ns.div, torch.div, inputs, seed=i)
    g = generator(7)
    inputs = [_randn(g, 2, 3), _away_from_zero(g, 3)]
    _compare_op("a a constant", ns.div, torch.div, inputs, seed=9, differentiable=[False, True])


# ----------------------------------------------------------------------------------------------
# matmul


@check("matmul")
def matmul_matches_torch(ns: Namespace) -> None:
    g = generator(8)
    for i, (sa, sb) in enumerate(
        [
            ((3, 4), (4, 5)),
            ((4,), (4, 5)),
            ((3, 4), (4,)),
            ((4,), (4,)),
            ((2, 3, 4), (4, 5)),
            ((3, 4), (2, 4, 5)),
            ((2, 1, 3, 4), (5, 4, 2)),
            ((2, 3, 4), (4,)),
            ((4,), (2, 4, 5)),
            ((1, 4), (4, 1)),
        ]
    ):
        _compare_op(
            f"shapes {sa} @ {sb}", ns.matmul, torch.matmul, [_randn(g, *sa), _randn(g, *sb)], seed=i
        )
    a, b = _randn(g, 4, 3).t(), _randn(g, 5, 4).t()
    _compare_op("transposed (3, 4) @ transposed (4, 5)", ns.matmul, torch.matmul, [a, b], seed=20)


@check("matmul")
def matmul_rejects_mismatched_shapes(ns: Namespace) -> None:
    for sa, sb in [((3, 4), (5, 6)), ((3,), (4,)), ((), (3,)), ((2, 3, 4), (3, 4, 5))]:
        a, b = Variable(torch.ones(sa), requires_grad=True), Variable(torch.ones(sb))
        with case(f"shapes {sa} @ {sb}"):
            err = assert_raises(ns.matmul, a, b, exc=ShapeError)
            expect(
                str(sa) in str(err) and str(sb) in str(err),
                f"the message should name both shapes {sa} and {sb}: {err}",
            )


# ----------------------------------------------------------------------------------------------
# reduce_sum, reduce_max


@check("reduce_sum")
def sum_matches_torch(ns: Namespace) -> None:
    g = generator(10)
    for i, (shape, dim, keepdim) in enumerate(
        [
            ((3, 4), None, False),
            ((3, 4), None, True),
            ((3, 4), 0, False),
            ((3, 4), 1, True),
            ((2, 3, 4), -1, False),
            ((2, 3, 4), (0, 2), False),
            ((2, 3, 4), (0, 2), True),
            ((1, 3), 0, False),
            ((), None, False),
            ((5,), 0, True),
        ]
    ):

        def theirs(x: torch.Tensor, dim: Any = dim, keepdim: bool = keepdim) -> torch.Tensor:
            return x.sum(dim=dim, keepdim=keepdim)

        def ours(x: Variable, dim: Any = dim, keepdim: bool = keepdim) -> Any:
            return ns.reduce_sum(x, dim, keepdim)

        _compare_op(
            f"{shape}, dim={dim}, keepdim={keepdim}", ours, theirs, [_randn(g, *shape)], seed=i
        )


@check("reduce_max")
def max_matches_torch(ns: Namespace) -> None:
    g = generator(11)
    ties = torch.tensor(
        [[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, -1.0, 5.0, 5.0]], dtype=f64
    )
    for i, (name, x, dim, keepdim) in enumerate(
        [
            ("(3, 4), dim 1", _randn(g, 3, 4), 1, False),
            ("(3, 4), dim 0", _randn(g, 3, 4), 0, False),
            ("(2, 3, 4), dim -2, keepdim", _randn(g, 2, 3, 4), -2, True),
            ("(2, 3, 4), dim 2", _randn(g, 2, 3, 4), 2, False),
            ("(5,), dim 0", _randn(g, 5), 0, False),
            ("ties along dim 1", ties, 1, False),
            ("ties along dim 0 (transposed)", ties.t(), 0, True),
        ]
    ):

        def ours(x: Variable, dim: int = dim, keepdim: bool = keepdim) -> Any:
            return ns.reduce_max(x, dim, keepdim)

        def theirs(x: torch.Tensor, dim: int = dim, keepdim: bool = keepdim) -> torch.Tensor:
            return x.max(dim=dim, keepdim=keepdim).values

        _compare_op(name, ours, theirs, [x], seed=i)


# ----------------------------------------------------------------------------------------------
# getitem


@check("getitem")
def getitem_matches_torch(ns: Namespace) -> None:
    g = generator(12)
    rep = torch.tensor([2, 0, 2, 2])
    for i, (name, shape, index) in enumerate(
        [
            ("an int", (3, 4), 1),
            ("a negative int", (3, 4), -1),
            ("slices", (3, 5), (slice(None), slice(1, 4))),
            ("a strided slice", (6, 2), (slice(1, None, 2), 0)),
            ("an ellipsis and None", (2, 3, 4), (..., None, 0)),
            ("an index tensor with repeats", (3, 4), rep),
            ("two index tensors with a repeated pair", (3, 4), (rep, torch.tensor([1, 3, 1, 1]))),
            (
                "a boolean mask",
                (3, 4),
                torch.tensor([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 0, 0]]).bool(),
            ),
            ("repeats along dim 1", (2, 5), (slice(None), torch.tensor([[4, 4], [0, 4]]))),
        ]
    ):

        def ours(x: Variable, index: Any = index) -> Any:
            return ns.getitem(x, index)

        def theirs(x: torch.Tensor, index: Any = index) -> torch.Tensor:
            return x[index]

        _compare_op(
            f"{name}: x[{index!r}] for x of shape {shape}",
            ours,
            theirs,
            [_randn(g, *shape)],
            seed=i,
        )


# ----------------------------------------------------------------------------------------------
# log_softmax, cross_entropy


@check("log_softmax")
def log_softmax_matches_torch(ns: Namespace) -> None:
    g = generator(13)
    big = _randn(g, 3, 4) * 1000
    for i, (name, x, dim) in enumerate(
        [
            ("(3, 5), dim -1", _randn(g, 3, 5), -1),
            ("(3, 5), dim 0", _randn(g, 3, 5), 0),
            ("(2, 3, 4), dim 1", _randn(g, 2, 3, 4), 1),
            ("(6,), dim 0", _randn(g, 6), 0),
            ("logits in the thousands (no overflow, no log(0))", big, 1),
        ]
    ):

        def ours(x: Variable, dim: int = dim) -> Any:
            return ns.log_softmax(x, dim)

        def theirs(x: torch.Tensor, dim: int = dim) -> torch.Tensor:
            return x.log_softmax(dim)

        _compare_op(name, ours, theirs, [x], seed=i)


@check("log_softmax")
def log_softmax_is_accurate_near_zero(ns: Namespace) -> None:
    # float32 logits of size about 100: `a - a.logsumexp(dim)` rounds logsumexp to the float
    # spacing near 100 (7.6e-6) and keeps that error in log-probabilities near 0, up to 1e-5
    # off; shifting by the max first, as torch does, keeps them within 1e-7
    x = (torch.randn(64, 10, generator=generator(15), dtype=f64) * 100).float()
    with case("float32 logits of size about 100, dim 1", x=x):
        out = ns.log_softmax(Variable(x, requires_grad=True), 1)
        expect(isinstance(out, Variable), f"expected a Variable (from from_op), got {type(out)}")
        want = x.log_softmax(1)
        expect(out.data.dtype == torch.float32, f"expected float32 output, got {out.data.dtype}")
        top = want.amax(1, keepdim=True)  # each row's largest log-probability, near 0
        got_top = out.data.gather(1, want.argmax(1, keepdim=True))
        assert_close(
            got_top,
            top,
            rtol=0,
            atol=1e-6,
            what="each row's largest log-probability (near 0; torch.log_softmax's, within 1e-6: "
            "subtract the max before exponentiating, not a - logsumexp(a))",
        )
        assert_close(out.data, want, rtol=1.3e-6, atol=1e-6, what="forward output")


@check("cross_entropy")
def cross_entropy_matches_torch(ns: Namespace) -> None:
    g = generator(14)
    for i, (name, batch, classes, scale) in enumerate(
        [
            ("(6, 5) logits", 6, 5, 1.0),
            ("(1, 3) logits", 1, 3, 1.0),
            ("(8, 4) logits", 8, 4, 3.0),
            ("(4, 7) logits in the thousands", 4, 7, 1000.0),
        ]
    ):
        targets = torch.randint(0, classes, (batch,), generator=g)
        if batch == 8:
            targets = torch.tensor([0, 0, 3, 3, 3, 1, 0, 2])  # repeated classes

        def ours(x: Variable, targets: torch.Tensor = targets) -> Any:
            return ns.cross_entropy(x, targets)

        def theirs(x: torch.Tensor, targets: torch.Tensor = targets) -> torch.Tensor:
            return F.cross_entropy(x, targets)

        logits = _randn(g, batch, classes) * scale
        _compare_op(f"{name}, targets {targets.tolist()}", ours, theirs, [logits], seed=i)


@check("cross_entropy")
def cross_entropy_rejects_bad_shapes(ns: Namespace) -> None:
    for name, logits_shape, targets_shape in [
        ("1-D logits", (5,), (5,)),
        ("3-D logits", (2, 3, 4), (2,)),
        ("6 targets for a batch of 5", (5, 6), (6,)),
        ("(5, 1) targets", (5, 3), (5, 1)),
    ]:
        logits = Variable(torch.zeros(logits_shape), requires_grad=True)
        targets = torch.zeros(targets_shape, dtype=torch.int64)
        with case(name, logits=logits.data, targets=targets):
            assert_raises(ns.cross_entropy, logits, targets, exc=ShapeError)
