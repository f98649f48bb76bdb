"""Checks for part 2 of w1d2: linear and softmax regression, against the real thing:
``torch.linalg.lstsq`` and scikit-learn's ``Ridge`` for the closed form, ``torch.autograd`` for
the hand-derived gradients, ``torch.optim.SGD`` (with ``ExponentialLR``) step by step for the
training loops, ``F.mse_loss`` / ``F.cross_entropy`` for the losses, and scikit-learn's digits
for "it actually learns"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.errors import MismatchError, ShapeError
from mlab.testing import (
    assert_close,
    assert_no_python_loop,
    assert_raises,
    assert_unchanged,
    case,
    expect,
    generator,
    randint,
)

f64 = torch.float64


def _ill_conditioned(n: int, d: int, cond: float, seed: int) -> Tensor:
    """An (n, d) float64 matrix with singular values from 1 down to 1/cond."""
    g = generator(seed)
    u, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=f64))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=f64))
    s = torch.logspace(0, -np.log10(cond), d, dtype=f64)
    x: Tensor = (u * s) @ v.T + 3.0  # an offset: the columns are far from centred
    return x


def _lstsq(x: Tensor, y: Tensor, bias: bool) -> tuple[Tensor, Tensor]:
    """The least-squares (w, b) by torch.linalg.lstsq (QR based), with a column of ones."""
    a = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1) if bias else x
    sol = torch.linalg.lstsq(a, y[:, None]).solution[:, 0]
    return (sol[:-1], sol[-1]) if bias else (sol, torch.zeros((), dtype=x.dtype))


def _regression_problem(
    n: int, d: int, seed: int, dtype: torch.dtype = f64
) -> tuple[Tensor, Tensor]:
    g = generator(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype) * 2 + 1
    w = torch.randn(d, generator=g, dtype=dtype)
    y = x @ w - 0.7 + 0.3 * torch.randn(n, generator=g, dtype=dtype)
    return x, y


def _raises_shape_error(fn: Callable[..., Any], cases: list[tuple[str, tuple[Any, ...]]]) -> None:
    for name, args in cases:
        with case(name, **{f"arg{i}": a for i, a in enumerate(args)}):
            assert_raises(fn, *args, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# mse_loss


@check("mse_loss")
def mse_matches_torch(ns: Namespace) -> None:
    g = generator(0)
    base = torch.randn(6, 5, generator=g) * 3
    cases = [
        ("two 7-vectors", torch.randn(7, generator=g), torch.randn(7, generator=g)),
        ("two 3x4 matrices", base[:3, :4], torch.randn(3, 4, generator=g)),
        ("a transposed 5x6 and a 5x6", base.t(), torch.randn(5, 6, generator=g)),
        ("two 1x1 matrices", torch.tensor([[2.0]]), torch.tensor([[-1.5]])),
        ("two 0-d tensors", torch.tensor(3.0), torch.tensor(1.0)),
        ("float64 2x3", torch.randn(2, 3, generator=g, dtype=f64), torch.zeros(2, 3, dtype=f64)),
    ]
    for name, pred, target in cases:
        before = pred.clone(), target.clone()
        with case(name, pred=pred, target=target):
            assert_close(ns.mse_loss(pred, target), F.mse_loss(pred, target))
            assert_unchanged(pred, before[0], what="pred")
            assert_unchanged(target, before[1], what="target")


@check("mse_loss")
def mse_rejects_mismatched_shapes(ns: Namespace) -> None:
    _raises_shape_error(
        ns.mse_loss,
        [
            (
                "(4, 1) pred and (4,) target (would broadcast to 4x4)",
                (torch.ones(4, 1), torch.ones(4)),
            ),
            ("(3,) pred and (4,) target", (torch.ones(3), torch.ones(4))),
            ("(2, 3) pred and (3, 2) target", (torch.ones(2, 3), torch.ones(3, 2))),
        ],
    )


# ----------------------------------------------------------------------------------------------
# linear_regression_closed_form


def _closed_form_case(
    ns: Namespace, name: str, x: Tensor, y: Tensor, **kwargs: Any
) -> tuple[Tensor, Tensor]:
    before = x.clone(), y.clone()
    with case(name, x=x, y=y, **kwargs):
        w, b = ns.linear_regression_closed_form(x, y, **kwargs)
        assert_unchanged(x, before[0], what="x")
        assert_unchanged(y, before[1], what="y")
        expect(
            isinstance(b, Tensor) and b.shape == () and b.dtype == x.dtype,
            f"b should be a 0-d tensor of dtype {x.dtype}, got {b!r}",
        )
    return w, b


@check("linear_regression_closed_form")
def closed_form_matches_lstsq(ns: Namespace) -> None:
    x_ill = _ill_conditioned(30, 4, cond=1e3, seed=3)
    cases: list[tuple[str, Tensor, Tensor, bool]] = [
        ("20x3, bias", *_regression_problem(20, 3, seed=1), True),
        ("50x1, bias", *_regression_problem(50, 1, seed=2), True),
        ("6x5, bias: exactly as many rows as unknowns", *_regression_problem(6, 5, seed=4), True),
        (
            "30x4 with condition number about 7e3 (normal equations: 4e7), bias",
            x_ill,
            x_ill @ torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=f64) + 4.0,
            True,
        ),
        ("25x3, no bias", *_regression_problem(25, 3, seed=5), False),
        ("5x5, no bias: square", *_regression_problem(5, 5, seed=6), False),
        (
            "a transposed 3x9 (non-contiguous), bias",
            _regression_problem(3, 9, seed=7)[0].t(),
            torch.randn(9, generator=generator(7), dtype=f64),
            True,
        ),
    ]
    for name, x, y, bias in cases:
        w, b = _closed_form_case(ns, name, x, y, bias=bias)
        w_ref, b_ref = _lstsq(x, y, bias)
        with case(name, x=x, y=y, bias=bias):
            assert_close(w, w_ref, what="w", rtol=1e-6, atol=1e-8)
            assert_close(b, b_ref, what="b", rtol=1e-6, atol=1e-8)


@check("linear_regression_closed_form")
def closed_form_keeps_float32(ns: Namespace) -> None:
    x, y = _regression_problem(40, 3, seed=8, dtype=torch.float32)
    w, b = _closed_form_case(ns, "float32 40x3, bias", x, y, bias=True)
    w_ref, b_ref = _lstsq(x.double(), y.double(), True)
    with case("float32 40x3, bias", x=x, y=y):
        assert_close(w, w_ref.float(), what="w", rtol=1e-4, atol=1e-5)
        assert_close(b, b_ref.float(), what="b", rtol=1e-4, atol=1e-5)


@check("linear_regression_closed_form")
def ridge_matches_sklearn(ns: Namespace) -> None:
    from sklearn.linear_model import Ridge  # type: ignore[import-untyped]

    cases: list[tuple[str, Tensor, Tensor, float, bool]] = [
        ("20x3, ridge=2.5, bias", *_regression_problem(20, 3, seed=9), 2.5, True),
        (
            "4x6 (fewer rows than unknowns), ridge=0.5, bias",
            *_regression_problem(4, 6, seed=10),
            0.5,
            True,
        ),
        ("15x4, ridge=10, no bias", *_regression_problem(15, 4, seed=11), 10.0, False),
        ("3x5, ridge=1, no bias", *_regression_problem(3, 5, seed=12), 1.0, False),
    ]
    for name, x, y, ridge, bias in cases:
        w, b = _closed_form_case(ns, name, x, y, bias=bias, ridge=ridge)
        model = Ridge(alpha=ridge, fit_intercept=bias, solver="cholesky").fit(x.numpy(), y.numpy())
        with case(name, x=x, y=y, bias=bias, ridge=ridge):
            assert_close(w, torch.from_numpy(model.coef_), what="w", rtol=1e-6, atol=1e-8)
            assert_close(b, torch.tensor(float(model.intercept_), dtype=f64), what="b", atol=1e-8)


@check("linear_regression_closed_form")
def closed_form_rejects_bad_inputs(ns: Namespace) -> None:
    fit = ns.linear_regression_closed_form
    x, y = torch.randn(8, 3, dtype=f64), torch.randn(8, dtype=f64)
    _raises_shape_error(
        fit,
        [
            ("a 1-D x", (torch.randn(8), torch.randn(8))),
            ("a (8, 1) y for an (8, 3) x", (x, y[:, None])),
            ("a (7,) y for an (8, 3) x", (x, y[:7])),
            ("5x5 x with a bias: 5 rows, 6 unknowns", (torch.randn(5, 5, dtype=f64), y[:5])),
            (
                "3x4 x without bias: 3 rows, 4 unknowns",
                (torch.randn(3, 4, dtype=f64), y[:3], False),
            ),
        ],
    )
    with case("ridge=-1", x=x, y=y):
        assert_raises(fit, x, y, ridge=-1.0, exc=ValueError)


# ----------------------------------------------------------------------------------------------
# linear_loss_and_grad


def _autograd_linear(x: Tensor, y: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    w_, b_ = w.clone().requires_grad_(), b.clone().requires_grad_()
    loss = F.mse_loss(x @ w_ + b_, y)
    gw, gb = torch.autograd.grad(loss, [w_, b_])
    return loss.detach(), gw, gb


@check("linear_loss_and_grad")
def linear_grad_matches_autograd(ns: Namespace) -> None:
    g = generator(20)
    cases = []
    for n, d in [(7, 3), (1, 4), (5, 1), (3, 6)]:
        x = torch.randn(n, d, generator=g, dtype=f64) * 2
        cases.append((f"{n}x{d}", x, torch.randn(n, generator=g, dtype=f64)))
    cases.append(
        (
            "a transposed 4x6 x (non-contiguous)",
            torch.randn(4, 6, generator=g, dtype=f64).t(),
            torch.randn(6, generator=g, dtype=f64),
        )
    )
    for name, x, y in cases:
        w = torch.randn(x.shape[1], generator=g, dtype=f64)
        b = torch.randn((), generator=g, dtype=f64)
        with case(name, x=x, y=y, w=w, b=b):
            loss, gw, gb = ns.linear_loss_and_grad(x, y, w, b)
            ref = _autograd_linear(x, y, w, b)
            assert_close(loss, ref[0], what="loss")
            assert_close(gw, ref[1], what="grad_w")
            assert_close(gb, ref[2], what="grad_b")


@check("linear_loss_and_grad")
def linear_grad_rejects_bad_shapes(ns: Namespace) -> None:
    x, y, w, b = torch.ones(5, 3), torch.ones(5), torch.ones(3), torch.tensor(0.0)
    _raises_shape_error(
        ns.linear_loss_and_grad,
        [
            ("a 1-D x", (torch.ones(5), y, w, b)),
            ("a (5, 1) y", (x, y[:, None], w, b)),
            ("a (4,) y for 5 rows", (x, y[:4], w, b)),
            ("a (3, 1) w", (x, y, w[:, None], b)),
            ("a (2,) w for 3 columns", (x, y, w[:2], b)),
        ],
    )


# ----------------------------------------------------------------------------------------------
# fit_linear_regression_gd, sgd_step, fit_linear_regression_autograd


def _torch_sgd_linear(x: Tensor, y: Tensor, lr: float, steps: int) -> tuple[Tensor, Tensor, Tensor]:
    """Zero-initialised (w, b) trained by torch.optim.SGD on F.mse_loss: (w, b, losses)."""
    w = torch.zeros(x.shape[1], dtype=x.dtype, requires_grad=True)
    b = torch.zeros((), dtype=x.dtype, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=lr)
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(x @ w + b, y)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        losses.append(loss.item())
    return w.detach(), b.detach(), torch.tensor(losses, dtype=x.dtype)


def _check_linear_trajectories(ns: Namespace, fn_name: str) -> None:
    fit = getattr(ns, fn_name)
    cases: list[tuple[str, Tensor, Tensor, float, int]] = [
        ("30x4, lr=0.05, 25 steps", *_regression_problem(30, 4, seed=30), 0.05, 25),
        ("9x2, lr=0.01, 1 step", *_regression_problem(9, 2, seed=31), 0.01, 1),
        ("5x7, lr=0.02, 12 steps", *_regression_problem(5, 7, seed=32), 0.02, 12),
        ("6x3, 0 steps (nothing to do)", *_regression_problem(6, 3, seed=33), 0.1, 0),
    ]
    for name, x, y, lr, steps in cases:
        with case(name, x=x, y=y, lr=lr, steps=steps):
            w, b, losses = fit(x, y, lr, steps)
            ref = _torch_sgd_linear(x, y, lr, steps)
            assert_close(losses, ref[2], what="losses")
            assert_close(w, ref[0], what="w")
            assert_close(b, ref[1], what="b")
            expect(
                not (w.requires_grad or b.requires_grad),
                "the returned w and b should not require grad: return w.detach(), b.detach()",
            )


@check("fit_linear_regression_gd")
def gd_follows_torch_sgd(ns: Namespace) -> None:
    _check_linear_trajectories(ns, "fit_linear_regression_gd")


@check("fit_linear_regression_gd")
def gd_converges_to_lstsq(ns: Namespace) -> None:
    g = generator(34)
    x = torch.randn(80, 3, generator=g)
    y = x @ torch.tensor([2.0, -1.0, 0.5]) + 1.5 + 0.1 * torch.randn(80, generator=g)
    with case("float32 80x3 standard normal x, lr=0.2, 300 steps", x=x, y=y):
        w, b, losses = ns.fit_linear_regression_gd(x, y, 0.2, 300)
        w_ref, b_ref = _lstsq(x.double(), y.double(), True)
        assert_close(w, w_ref.float(), what="w", rtol=1e-4, atol=1e-4)
        assert_close(b, b_ref.float(), what="b", rtol=1e-4, atol=1e-4)
        expect(
            losses.dtype == torch.float32, f"losses should be float32 like x, got {losses.dtype}"
        )


@check("sgd_step")
def sgd_step_matches_torch_optim(ns: Namespace) -> None:
    g = generator(40)
    for lr in [0.1, 0.03]:
        params = [
            torch.randn(3, 4, generator=g),
            torch.randn((), generator=g),
            torch.randn(5, generator=g),
        ]
        for p in params:
            p.requires_grad_()
        grads: list[Tensor | None] = [torch.randn(p.shape, generator=g) for p in params]
        grads[2] = None  # a parameter that got no gradient is left alone
        mine = [p.detach().clone().requires_grad_() for p in params]
        for p, q, gr in zip(params, mine, grads, strict=True):
            p.grad, q.grad = (None, None) if gr is None else (gr.clone(), gr.clone())
        ptrs = [q.data_ptr() for q in mine]
        opt = torch.optim.SGD(params, lr=lr)
        opt.step()
        opt.zero_grad()
        with case(
            f"lr={lr}: a 3x4, a 0-d and a 5-vector parameter (the last with no grad)", grads=grads
        ):
            expect(ns.sgd_step(mine, lr) is None, "sgd_step should update in place and return None")
            for i, (p, q) in enumerate(zip(params, mine, strict=True)):
                assert_close(q.detach(), p.detach(), what=f"params[{i}] after the step")
                expect(q.data_ptr() == ptrs[i], f"params[{i}] was replaced, not updated in place")
                expect(
                    q.requires_grad and q.grad_fn is None,
                    f"params[{i}] should still be a leaf that requires grad (update it under "
                    "torch.no_grad())",
                )
                expect(
                    q.grad is None or not bool(q.grad.any()),
                    f"params[{i}].grad should be cleared after the step, got {q.grad}",
                )


@check("sgd_step")
def sgd_step_trains_like_torch_optim(ns: Namespace) -> None:
    """Gradients must be cleared: otherwise the next backward adds to the old ones."""
    x, y = _regression_problem(12, 3, seed=41)
    w0 = torch.randn(3, generator=generator(42), dtype=f64)
    w_ref, w = w0.clone().requires_grad_(), w0.clone().requires_grad_()
    opt = torch.optim.SGD([w_ref], lr=0.02)
    for step in range(10):
        F.mse_loss(x @ w_ref, y).backward()  # type: ignore[no-untyped-call]
        opt.step()
        opt.zero_grad()
        F.mse_loss(x @ w, y).backward()  # type: ignore[no-untyped-call]
        ns.sgd_step([w], 0.02)
        with case(f"10 steps of linear regression, after step {step}", x=x, y=y):
            assert_close(w.detach(), w_ref.detach(), what="w")


@check("fit_linear_regression_autograd")
def autograd_fit_follows_torch_sgd(ns: Namespace) -> None:
    _check_linear_trajectories(ns, "fit_linear_regression_autograd")


# ----------------------------------------------------------------------------------------------
# cross_entropy, softmax_loss_and_grad, accuracy


def _logits_cases(seed: int) -> list[tuple[str, Tensor, Tensor]]:
    g = generator(seed)
    big = torch.randn(4, 5, generator=g) * 10
    big[:2] += 1000
    big[2:] -= 1000
    return [
        ("5x3 logits", torch.randn(5, 3, generator=g) * 3, randint(0, 3, 5, seed=seed)),
        ("1x7 logits", torch.randn(1, 7, generator=g), torch.tensor([6])),
        (
            "6x1 logits (one class)",
            torch.randn(6, 1, generator=g),
            torch.zeros(6, dtype=torch.long),
        ),
        (
            "a transposed 3x8 (non-contiguous)",
            torch.randn(3, 8, generator=g).t(),
            randint(0, 3, 8, seed=seed + 1),
        ),
        ("rows around +1000 and -1000", big, torch.tensor([4, 0, 2, 1])),
        (
            "float64 4x6 logits",
            torch.randn(4, 6, generator=g, dtype=f64) * 5,
            torch.tensor([5, 5, 0, 3]),
        ),
    ]


@check("cross_entropy")
def cross_entropy_matches_torch(ns: Namespace) -> None:
    for name, logits, labels in _logits_cases(50):
        before = logits.clone()
        with case(name, logits=logits, labels=labels):
            assert_close(ns.cross_entropy(logits, labels), F.cross_entropy(logits, labels))
            assert_unchanged(logits, before, what="logits")


@check("cross_entropy")
def cross_entropy_rejects_bad_shapes(ns: Namespace) -> None:
    _raises_shape_error(
        ns.cross_entropy,
        [
            ("1-D logits", (torch.zeros(4), torch.zeros(4, dtype=torch.long))),
            ("3-D logits", (torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long))),
            (
                "(4, 1) labels for 4x3 logits",
                (torch.zeros(4, 3), torch.zeros(4, 1, dtype=torch.long)),
            ),
            ("(3,) labels for 4x3 logits", (torch.zeros(4, 3), torch.zeros(3, dtype=torch.long))),
        ],
    )


@check("softmax_loss_and_grad")
def softmax_grads_match_autograd(ns: Namespace) -> None:
    g = generator(60)
    for n, d, k in [(6, 4, 3), (1, 5, 2), (7, 2, 5), (9, 3, 4)]:
        x = torch.randn(n, d, generator=g, dtype=f64) * 2
        if n == 9:
            x = torch.randn(d, n, generator=g, dtype=f64).t()  # non-contiguous
        w = torch.randn(d, k, generator=g, dtype=f64)
        b = torch.randn(k, generator=g, dtype=f64)
        labels = randint(0, k, n, seed=n)
        w_, b_ = w.clone().requires_grad_(), b.clone().requires_grad_()
        loss_ref = F.cross_entropy(x @ w_ + b_, labels)
        gw_ref, gb_ref = torch.autograd.grad(loss_ref, [w_, b_])
        with case(f"x {tuple(x.shape)}, w {tuple(w.shape)}", x=x, w=w, b=b, labels=labels):
            loss, gw, gb = ns.softmax_loss_and_grad(x, w, b, labels)
            assert_close(loss, loss_ref.detach(), what="loss")
            assert_close(gw, gw_ref, what="grad_w")
            assert_close(gb, gb_ref, what="grad_b")


@check("softmax_loss_and_grad")
def softmax_grads_reject_bad_shapes(ns: Namespace) -> None:
    x, w, b, labels = (
        torch.ones(6, 4),
        torch.ones(4, 3),
        torch.ones(3),
        torch.zeros(6, dtype=torch.long),
    )
    _raises_shape_error(
        ns.softmax_loss_and_grad,
        [
            ("a 1-D x", (torch.ones(4), w, b, labels)),
            ("a 1-D w", (x, torch.ones(4), b, labels)),
            ("a (3, 3) w for 4 features", (x, torch.ones(3, 3), b, labels)),
            ("a (4,) b for 3 classes", (x, w, torch.ones(4), labels)),
            ("a (1, 3) b", (x, w, torch.ones(1, 3), labels)),
            ("(5,) labels for 6 rows", (x, w, b, labels[:5])),
        ],
    )


@check("accuracy")
def accuracy_matches_sklearn(ns: Namespace) -> None:
    from sklearn.metrics import accuracy_score  # type: ignore[import-untyped]

    cases = [
        *[(name, logits, labels) for name, logits, labels in _logits_cases(70)],
        (
            "ties: the first maximum counts",
            torch.tensor([[2.0, 2.0, 0.0], [1.0, 3.0, 3.0], [0.0, 0.0, 0.0]]),
            torch.tensor([0, 2, 0]),
        ),
        ("all wrong", torch.eye(3, 4), torch.tensor([1, 2, 3])),
    ]
    for name, logits, labels in cases:
        expected = float(accuracy_score(labels.numpy(), logits.argmax(dim=1).numpy()))
        with case(name, logits=logits, labels=labels):
            acc = ns.accuracy(logits, labels)
            expect(isinstance(acc, float), f"accuracy should return a Python float, got {acc!r}")
            assert_close(acc, expected)


@check("accuracy")
def accuracy_rejects_bad_shapes(ns: Namespace) -> None:
    _raises_shape_error(
        ns.accuracy,
        [
            ("1-D logits", (torch.zeros(4), torch.zeros(4, dtype=torch.long))),
            (
                "(4, 1) labels for 4x3 logits",
                (torch.zeros(4, 3), torch.zeros(4, 1, dtype=torch.long)),
            ),
            ("(3,) labels for 4x3 logits", (torch.zeros(4, 3), torch.zeros(3, dtype=torch.long))),
        ],
    )


# ----------------------------------------------------------------------------------------------
# train_softmax_regression


def _torch_softmax_sgd(
    x: Tensor,
    y: Tensor,
    n_classes: int,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    lr_decay: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """nn.Linear-style zero-initialised (w, b), torch.optim.SGD + ExponentialLR on
    F.cross_entropy, batches from one randperm per epoch."""
    g = generator(seed)
    w = torch.zeros(x.shape[1], n_classes, dtype=x.dtype, requires_grad=True)
    b = torch.zeros(n_classes, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=lr_decay)
    losses = []
    for _ in range(epochs):
        for idx in torch.split(torch.randperm(x.shape[0], generator=g), batch_size):
            loss = F.cross_entropy(x[idx] @ w + b, y[idx])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            losses.append(loss.item())
        sched.step()
    return w.detach(), b.detach(), torch.tensor(losses, dtype=x.dtype)


def _locate_batch(err: MismatchError, n: int, batch_size: int) -> None:
    """Add a note saying in which epoch and batch the losses first differ."""
    index = getattr(err, "details", {}).get("first_index", "")
    if index.startswith("[") and index[1:-1].isdigit():
        per_epoch = -(-n // batch_size)
        epoch, batch = divmod(int(index[1:-1]), per_epoch)
        err.add_note(
            f"the first differing loss is batch {batch} of epoch {epoch} ({per_epoch} batches "
            "per epoch): if epoch 0 matches, check the new permutation and the decayed rate of "
            "every later epoch"
        )


@check("train_softmax_regression")
def training_follows_torch_sgd(ns: Namespace) -> None:
    g = generator(80)
    x = torch.randn(37, 5, generator=g, dtype=f64)
    y = torch.randint(0, 3, (37,), generator=g)  # class 3 of 4 never appears
    cases = [
        ("37x5, 4 classes, 3 epochs, lr=0.5, batches of 8, lr_decay=0.7", x, y, 4, 3, 0.5, 8, 0.7),
        ("37x5, 3 classes, 2 epochs, lr=0.3, one batch of 64", x, y, 3, 2, 0.3, 64, 1.0),
        (
            "the first 5 rows, 6 classes, 2 epochs, lr=0.2, batches of 1",
            x[:5],
            y[:5],
            6,
            2,
            0.2,
            1,
            1.0,
        ),
    ]
    for name, xs, ys, k, epochs, lr, batch_size, decay in cases:
        with case(name, x_train=xs, y_train=ys):
            w, b, losses = ns.train_softmax_regression(
                xs, ys, k, epochs, lr, batch_size, generator(81), lr_decay=decay
            )
            ref = _torch_softmax_sgd(xs, ys, k, epochs, lr, batch_size, 81, decay)
            try:
                assert_close(losses, ref[2], what="losses (one per batch)")
            except MismatchError as err:
                _locate_batch(err, xs.shape[0], batch_size)
                raise
            assert_close(w, ref[0], what="w")
            assert_close(b, ref[1], what="b")


@check("train_softmax_regression")
def training_learns_digits(ns: Namespace) -> None:
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    digits = load_digits()
    x = torch.from_numpy(digits.data).float() / 16
    y = torch.from_numpy(digits.target).long()
    perm = torch.randperm(len(y), generator=generator(90))
    train, test = perm[:1200], perm[1200:]
    with case("scikit-learn's digits: 1200 train, 597 test, 8 epochs, lr=0.5, batches of 32"):
        w, b, losses = ns.train_softmax_regression(
            x[train], y[train], 10, 8, 0.5, 32, generator(91)
        )
        expect(
            losses.shape == (8 * 38,) and losses.dtype == torch.float32,
            f"losses should be a float32 tensor of 8 epochs x 38 batches = 304 values, got "
            f"shape {tuple(losses.shape)} dtype {losses.dtype}",
        )
        first, last = losses[:38].mean().item(), losses[-38:].mean().item()
        expect(
            last < 0.3 * first,
            f"the loss should fall: mean {first:.3f} in the first epoch, {last:.3f} in the last",
        )
        acc = ((x[test] @ w + b).argmax(dim=1) == y[test]).float().mean().item()
        expect(acc > 0.9, f"test accuracy {acc:.3f} should be above 0.9 (chance is 0.1)")


@check("cross_entropy")
def cross_entropy_has_no_python_loop(ns: Namespace) -> None:
    with case("inputs of size 8 and of size 200 (counting Python lines and torch calls)"):
        assert_no_python_loop(
            ns.cross_entropy,
            lambda n: (torch.zeros(n, 5), torch.arange(n) % 5),
            what="cross_entropy",
        )
