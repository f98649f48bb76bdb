"""Tests of mlab.autograd beyond the course checks: every op against torch.autograd and float64
central differences on Hypothesis-generated shapes (broadcasting pairs included), the engine's
semantics (accumulation, leaves, no_grad, deep graphs, errors), and an MLP whose SGD steps
match torch's step for step and whose loss falls on real Fashion-MNIST."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from conftest import Splits
from mlab.autograd import (
    Variable,
    backpropagate,
    cross_entropy,
    functional,
    no_grad,
    ops,
    topological_order,
    unbroadcast,
)
from mlab.autograd.mlp import init_mlp, mlp_forward, mlp_loss, sgd_step
from mlab.data import normalise_images
from mlab.errors import MismatchError, ShapeError
from mlab.testing import assert_close, assert_not_shares_storage, generator

F64 = torch.float64
EXAMPLES = settings(max_examples=30, deadline=None)


def _randn(shape: Sequence[int], seed: int, *, positive: bool = False) -> torch.Tensor:
    x = torch.randn(tuple(shape), generator=generator(seed), dtype=F64)
    return x.abs() + 0.5 if positive else x


def _central_difference(
    fn: Callable[..., Variable], inputs: list[torch.Tensor], w: torch.Tensor, eps: float = 1e-6
) -> list[torch.Tensor]:
    """d/d(input) of (fn(*inputs) * w).sum(), one element at a time, by central differences."""
    grads = []
    for x in inputs:
        grad = torch.zeros_like(x)
        flat, gflat = x.view(-1), grad.view(-1)  # x is contiguous: a view we can poke
        for j in range(x.numel()):
            old = float(flat[j])
            flat[j] = old + eps
            plus = float((fn(*map(Variable, inputs)).data * w).sum())
            flat[j] = old - eps
            minus = float((fn(*map(Variable, inputs)).data * w).sum())
            flat[j] = old
            gflat[j] = (plus - minus) / (2 * eps)
        grads.append(grad)
    return grads


def check_gradients(
    ours: Callable[..., Variable],
    theirs: Callable[..., torch.Tensor],
    inputs: list[torch.Tensor],
    *,
    seed: int = 0,
    numeric: bool = True,
) -> None:
    """Forward against ``theirs``; gradients of ``(out * w).sum()`` (random ``w``) against
    torch.autograd and, with ``numeric``, against central differences."""
    inputs = [x.contiguous() for x in inputs]
    mine = [Variable(x.clone(), requires_grad=True) for x in inputs]
    ref = [x.clone().requires_grad_() for x in inputs]
    out, expected = ours(*mine), theirs(*ref)
    assert_close(out.data, expected.detach(), what="forward output")
    w = torch.randn(expected.shape, generator=generator(seed + 1), dtype=F64)
    out.backward(w)
    want = torch.autograd.grad(expected, ref, w, allow_unused=True)
    for i, (t, e) in enumerate(zip(mine, want, strict=True)):
        assert t.grad is not None, f"input {i} got no gradient"
        assert_close(t.grad, torch.zeros_like(t.data) if e is None else e, what=f"grad {i}")
    if numeric:
        for i, (t, n) in enumerate(zip(mine, _central_difference(ours, inputs, w), strict=True)):
            assert_close(t.grad, n, rtol=1e-5, atol=1e-7, what=f"grad {i} vs central differences")


# ----------------------------------------------------------------------------------------------
# Ops on generated shapes

_BINARY: dict[str, tuple[Callable[..., Variable], Callable[..., torch.Tensor], bool]] = {
    "add": (ops.add, torch.add, False),
    "sub": (ops.sub, torch.sub, False),
    "mul": (ops.mul, torch.mul, False),
    "div": (ops.div, torch.div, True),
}


@EXAMPLES
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=3),
    op=st.sampled_from(sorted(_BINARY)),
    seed=st.integers(0, 2**16),
)
def test_binary_ops_broadcast(shapes: Any, op: str, seed: int) -> None:
    ours, theirs, positive = _BINARY[op]
    sa, sb = shapes.input_shapes
    check_gradients(
        ours, theirs, [_randn(sa, seed), _randn(sb, seed + 1, positive=positive)], seed=seed
    )


_UNARY: dict[str, tuple[Callable[..., Variable], Callable[..., torch.Tensor], bool]] = {
    "neg": (ops.neg, torch.neg, False),
    "exp": (ops.exp, torch.exp, False),
    "log": (ops.log, torch.log, True),
    "power 3": (lambda x: ops.power(x, 3), lambda x: x**3, False),
    "power -0.5": (lambda x: ops.power(x, -0.5), lambda x: x**-0.5, True),
    "relu": (functional.relu, torch.relu, False),
    "softmax": (lambda x: functional.softmax(x, -1), lambda x: x.softmax(-1), False),
    "log_softmax": (lambda x: functional.log_softmax(x, 0), lambda x: x.log_softmax(0), False),
    "sum": (ops.reduce_sum, torch.sum, False),
    "mean": (ops.reduce_mean, torch.mean, False),
    "reshape": (lambda x: ops.reshape(x, (-1,)), lambda x: x.reshape(-1), False),
}


@EXAMPLES
@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    op=st.sampled_from(sorted(_UNARY)),
    seed=st.integers(0, 2**16),
)
def test_unary_ops(shape: list[int], op: str, seed: int) -> None:
    ours, theirs, positive = _UNARY[op]
    check_gradients(ours, theirs, [_randn(shape, seed, positive=positive)], seed=seed)


@EXAMPLES
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_reductions_along_dims(data: st.DataObject, seed: int) -> None:
    shape = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3), label="shape")
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    keepdim = data.draw(st.booleans(), label="keepdim")
    x = _randn(shape, seed)
    check_gradients(
        lambda t: ops.reduce_sum(t, dim, keepdim), lambda t: t.sum(dim, keepdim), [x], seed=seed
    )
    check_gradients(
        lambda t: ops.reduce_mean(t, dim, keepdim), lambda t: t.mean(dim, keepdim), [x], seed=seed
    )
    check_gradients(
        lambda t: ops.reduce_max(t, dim, keepdim),
        lambda t: t.max(dim, keepdim).values,
        [x],
        seed=seed,
    )
    other = data.draw(st.integers(-len(shape), len(shape) - 1), label="other dim")
    check_gradients(
        lambda t: ops.transpose(t, dim, other), lambda t: t.transpose(dim, other), [x], seed=seed
    )


@EXAMPLES
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3),
    mnp=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
    vectors=st.sampled_from(["none", "a", "b", "both"]),
    seed=st.integers(0, 2**16),
)
def test_matmul(shapes: Any, mnp: tuple[int, int, int], vectors: str, seed: int) -> None:
    m, n, p = mnp
    batch_a, batch_b = shapes.input_shapes
    sa = (n,) if vectors in ("a", "both") else (*batch_a, m, n)
    sb = (n,) if vectors in ("b", "both") else (*batch_b, n, p)
    check_gradients(ops.matmul, torch.matmul, [_randn(sa, seed), _randn(sb, seed + 1)], seed=seed)


_INDICES: list[Any] = [
    2,
    -1,
    (slice(None), 1),
    (slice(1, None, 2), slice(None, 2)),
    (..., None, 0),
    torch.tensor([0, 2, 0, 0]),
    (torch.tensor([1, 1, 3]), torch.tensor([0, 0, 2])),
    torch.tensor([True, False, True, True]),
]


@pytest.mark.parametrize("index", _INDICES, ids=repr)
def test_getitem(index: Any) -> None:
    x = _randn((4, 3), seed=5)
    check_gradients(lambda t: ops.getitem(t, index), lambda t: t[index], [x])


def test_tensor_indexing_with_our_tensors() -> None:
    x = Variable(_randn((4, 3), seed=6), requires_grad=True)
    idx = Variable(torch.tensor([3, 3]))
    x[idx, 1].sum().backward()
    assert_close(
        x.grad,
        torch.zeros(4, 3, dtype=F64).index_put_(
            (idx.data, torch.tensor(1)), torch.tensor(2.0, dtype=F64)
        ),
    )


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_cross_entropy(scale: float) -> None:
    targets = torch.tensor([0, 2, 2, 1, 4])
    check_gradients(
        lambda t: cross_entropy(t, targets),
        lambda t: F.cross_entropy(t, targets),
        [_randn((5, 5), seed=7) * scale],
        numeric=scale == 1.0,
    )


@pytest.mark.parametrize("scale", [1.0, 100.0, 1e4])
def test_log_softmax_is_as_accurate_as_torch_in_float32(scale: float) -> None:
    """Log-probabilities near 0 from float32 logits of size ``scale``: ``a - logsumexp(a)``
    was off by up to 6e-6 at 100 (the float spacing near 100); torch's max-shifted form is
    within 1e-7 of the float64 truth."""
    x = (torch.randn(256, 10, generator=generator(20), dtype=F64) * scale).float()
    truth = x.double().log_softmax(1)
    ours = functional.log_softmax(Variable(x), 1).data
    theirs = x.log_softmax(1)
    assert ours.dtype == torch.float32
    top = truth.argmax(1, keepdim=True)
    ours_err = (ours.double().gather(1, top) - truth.gather(1, top)).abs().max().item()
    torch_err = (theirs.double().gather(1, top) - truth.gather(1, top)).abs().max().item()
    assert ours_err <= max(2 * torch_err, 1e-7), (ours_err, torch_err)
    assert_close(ours, theirs, rtol=1.3e-6, atol=1e-6)


def test_unbroadcast_matches_sum_to_size() -> None:
    grad = _randn((2, 3, 4, 5), seed=8)
    for shape in [(1, 1, 5), (3, 1, 5), (2, 1, 4, 1), (), (1,)]:
        assert_close(unbroadcast(grad, shape), grad.sum_to_size(shape) if shape else grad.sum())


# ----------------------------------------------------------------------------------------------
# Engine semantics


def test_operators_match_torch_on_a_composite_expression() -> None:
    def f(x: Any, y: Any) -> Any:
        z = 2 - x * 3 + y[0] / 2 - 1 / (1 + y[1] * y[1]) + (x @ y.T).relu() @ y
        return ((-z) ** 2 * 0.01).exp().mean() + z[1:, ::2].sum() + 0.5 * z.T.sum()

    check_gradients(f, f, [_randn((3, 4), 9), _randn((2, 4), 10)], numeric=True)


def test_gradients_accumulate_over_uses_and_calls() -> None:
    x = Variable(torch.tensor([1.0, -2.0], dtype=F64), requires_grad=True)
    (x * x + x).sum().backward()
    assert_close(x.grad, 2 * x.data + 1)
    (x * 3).sum().backward()
    assert_close(x.grad, 2 * x.data + 4)
    x.zero_grad()
    assert x.grad is None


def test_leaf_and_requires_grad_semantics() -> None:
    x = Variable(torch.ones(2), requires_grad=True)
    c = Variable(torch.ones(2))
    y = x * c
    assert x.is_leaf and c.is_leaf and not y.is_leaf
    assert y.requires_grad and not (c * c).requires_grad and (c * c).is_leaf
    assert topological_order(y) == [x, y]  # the constant c is left out
    y.sum().backward()
    assert c.grad is None and y.grad is None  # constants get nothing, intermediates keep nothing
    assert x.detach().is_leaf and not x.detach().requires_grad
    with pytest.raises(TypeError, match="floating-point"):
        Variable(torch.arange(3), requires_grad=True)


def test_no_grad_stops_recording_and_restores() -> None:
    x = Variable(torch.ones(2), requires_grad=True)
    with no_grad():
        y = x * 2
        with no_grad():
            pass
        z = x * 2  # still off after a nested block ends
    assert not y.requires_grad and not z.requires_grad and y.is_leaf
    assert (x * 2).requires_grad

    @no_grad()
    def double(t: Variable) -> Variable:
        return t * 2

    assert not double(x).requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_deep_chain_does_not_overflow_the_stack() -> None:
    x = Variable(torch.tensor(1.0, dtype=F64), requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0001 + 0.0
    y.backward()
    assert x.grad is not None
    assert_close(x.grad, torch.tensor(1.0001, dtype=F64) ** 20_000)
    del y  # freeing a 40,000-deep graph must not overflow the C stack either


def test_error_messages() -> None:
    x = Variable(torch.ones(2, 3), requires_grad=True)
    with pytest.raises(ShapeError, match=r"single-element output, got shape \(2, 3\)"):
        (x * 2).backward()
    with pytest.raises(ShapeError, match=r"grad has shape \(3,\) but the output has shape"):
        (x * 2).backward(torch.ones(3))
    with pytest.raises(ShapeError, match=r"matmul of shapes \(2, 3\) and \(2, 3\)"):
        x @ x
    with pytest.raises(ShapeError, match=r"\(4,\) does not broadcast"):
        unbroadcast(torch.ones(2, 3), (4,))
    with pytest.raises(ShapeError, match="cross_entropy"):
        cross_entropy(x, torch.zeros(3, dtype=torch.int64))


def test_backward_takes_a_copy_of_the_upstream_gradient() -> None:
    x = Variable(torch.ones(3), requires_grad=True)
    g = torch.arange(3.0)
    backpropagate(x, g)
    assert_not_shares_storage(x.grad, g)


def test_python_scalars_take_the_tensors_dtype() -> None:
    x = Variable(torch.ones(2), requires_grad=True)
    assert (x * 0.5).dtype == torch.float32 and (2 * x).dtype == torch.float32
    assert (Variable(torch.ones(2, dtype=F64)) * 1.0001).data[0].item() == 1.0001


def test_central_difference_helper_can_fail() -> None:
    """A wrong backward must be caught by the numeric check alone."""

    def wrong_exp(a: Variable) -> Variable:
        out = ops.exp(a)
        assert out.backward_fn is not None
        out.backward_fn = lambda grad: (grad * 2 * out.data,)
        return out

    with pytest.raises(MismatchError):
        check_gradients(wrong_exp, torch.exp, [_randn((3,), 11)])


# ----------------------------------------------------------------------------------------------
# The MLP


def _torch_step(params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, lr: float) -> float:
    h = x
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        if i + 2 < len(params):
            h = h.relu()
    loss = F.cross_entropy(h, y)
    loss.backward()  # type: ignore[no-untyped-call]
    with torch.no_grad():
        for p in params:
            assert p.grad is not None
            p -= lr * p.grad
            p.grad = None
    return float(loss.detach())


def test_mlp_sgd_steps_match_torch() -> None:
    g = generator(12)
    x = torch.randn(5, 32, 20, generator=g, dtype=F64)
    y = torch.randint(0, 5, (5, 32), generator=g)
    params = init_mlp([20, 16, 12, 5], generator(13), dtype=F64)
    theirs = [p.data.clone().requires_grad_() for p in params]
    for step in range(5):
        loss = mlp_loss(params, x[step], y[step])
        loss.backward()
        sgd_step(params, lr=0.3)
        torch_loss = _torch_step(theirs, x[step], y[step], lr=0.3)
        assert_close(loss.item(), torch_loss, what=f"loss at step {step}")
        for i, (p, t) in enumerate(zip(params, theirs, strict=True)):
            assert_close(p.data, t.detach(), what=f"parameter {i} after step {step}")
            assert p.grad is None


@pytest.mark.slow
def test_mlp_learns_fashion_mnist_subset(fashion_mnist: Splits) -> None:
    data = fashion_mnist.train
    x = normalise_images(data.images[:3000], 0.2860, 0.3530).flatten(1)
    y = data.labels[:3000]
    params = init_mlp([784, 64, 10], generator(0))
    order = torch.randperm(2500, generator=generator(1))
    losses = []
    for _ in range(3):
        for idx in torch.split(order, 50):
            loss = mlp_loss(params, x[idx], y[idx])
            loss.backward()
            sgd_step(params, lr=0.1)
            losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first, f"the loss fell from {first:.3f} to {last:.3f} only"
    with no_grad():
        logits = mlp_forward(params, Variable(x[2500:]))
    accuracy = float((logits.data.argmax(1) == y[2500:]).float().mean())
    assert accuracy > 0.7, f"held-out accuracy {accuracy:.1%} after 3 epochs on 2500 images"
