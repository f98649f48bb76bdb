"""Checks for part 1 of w1d4: torch.autograd from the user's side. Every expected value comes
from torch computing the same thing another way: ``torch.autograd.grad`` instead of
``.backward()``, ``torch.autograd.functional.jacobian``, ``torch.func`` (per-example gradients
with ``vmap``, double backward through ``functional_call``), ``torch.nn.utils.clip_grad_norm_``,
``torch.optim`` steps, or a derivative written out by hand. Properties are checked too: the
caller's tensors are not changed, no gradient leaks into a detached branch, ``requires_grad``
flags and stale ``.grad`` values are what they should be."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.testing import (
    assert_close,
    assert_raises,
    assert_unchanged,
    case,
    expect,
    generator,
    randn,
)

f64 = torch.float64


def _counting(f: Callable[[Tensor], Tensor]) -> tuple[Callable[[Tensor], Tensor], list[int]]:
    """``f`` wrapped to count its calls (in ``calls[0]``)."""
    calls = [0]

    def wrapped(t: Tensor) -> Tensor:
        calls[0] += 1
        return f(t)

    return wrapped, calls


def _no_grad_flag(t: Any, what: str) -> None:
    expect(
        isinstance(t, Tensor) and not t.requires_grad,
        f"{what} should be a plain tensor with requires_grad False (a result, not part of a "
        f"graph), got {t!r}",
    )


# ----------------------------------------------------------------------------------------------
# grad_of


def _grad_of_cases() -> list[tuple[str, Callable[[Tensor], Tensor], Tensor, Tensor]]:
    """(name, f, x, df/dx written out by hand)."""
    g = generator(0)
    v = torch.randn(5, generator=g, dtype=f64)
    m = torch.randn(3, 4, generator=g, dtype=f64)
    a = torch.randn(4, 3, generator=g, dtype=f64)
    return [
        ("sum of squares of a 5-vector", lambda t: (t**2).sum(), v, 2 * v),
        ("sum of sin of a 3x4 matrix", lambda t: t.sin().sum(), m, m.cos()),
        (
            "trace(A @ X) for a 3x4 X: the gradient is A transposed",
            lambda t: (a @ t).trace(),
            m,
            a.T,
        ),
        (
            "x ** 3 at a 0-d x = -2",
            lambda t: t**3,
            torch.tensor(-2.0, dtype=f64),
            torch.tensor(12.0, dtype=f64),
        ),
        (
            "log-sum-exp of a non-contiguous 4x3 (a transposed 3x4): the gradient is softmax",
            lambda t: t.logsumexp(dim=(0, 1)),
            m.T,
            torch.softmax(m.T.reshape(-1), dim=0).reshape(4, 3),
        ),
        (
            "a float32 input: the gradient keeps float32",
            lambda t: (t * t.exp()).sum(),
            v.float(),
            (v.exp() * (1 + v)).float(),
        ),
    ]


@check("grad_of")
def grad_of_matches_derivatives(ns: Namespace) -> None:
    for name, f, x, expected in _grad_of_cases():
        before = x.clone()
        counted, calls = _counting(f)
        with case(name, x=x):
            got = ns.grad_of(counted, x)
            assert_close(got, expected, what="gradient")
            leaf = x.detach().requires_grad_(True)
            (by_torch,) = torch.autograd.grad(f(leaf), leaf)
            assert_close(got, by_torch, what="gradient (torch.autograd.grad)")
            _no_grad_flag(got, "the gradient")
            assert_unchanged(x, before, what="x")
            expect(
                not x.requires_grad,
                "grad_of set requires_grad on the caller's x; use a fresh leaf "
                "(x.detach().requires_grad_())",
            )
            expect(calls[0] == 1, f"f should be called once, but was called {calls[0]} times")


@check("grad_of")
def grad_of_leaves_a_caller_leaf_alone(ns: Namespace) -> None:
    w = randn(4, seed=1, dtype=f64).requires_grad_(True)
    stale = torch.full((4,), 100.0, dtype=f64)
    w.grad = stale.clone()
    with case("x is a leaf that requires grad and already has a .grad", x=w):
        got = ns.grad_of(lambda t: (t.exp() * torch.arange(4.0, dtype=f64)).sum(), w)
        (expected,) = torch.autograd.grad((w.exp() * torch.arange(4.0, dtype=f64)).sum(), w)
        assert_close(got, expected, what="gradient")
        expect(w.requires_grad and w.is_leaf, "x should still be a leaf that requires grad")
        assert_close(w.grad, stale, what="x.grad (it must not change)")
    base = randn(3, seed=2, dtype=f64).requires_grad_(True)
    y = base * 2  # a non-leaf
    with case("x is a non-leaf (the output of base * 2)", x=y):
        got = ns.grad_of(lambda t: (t**2).sum(), y)
        assert_close(got, 2 * y.detach(), what="gradient")
        expect(
            base.grad is None,
            "a gradient reached the tensor x was computed from; grad_of must not "
            "backpropagate into the caller's graph",
        )


@check("grad_of")
def grad_of_rejects_non_scalar_outputs(ns: Namespace) -> None:
    x = randn(3, seed=3)
    for name, f in [
        ("f returns a 3-vector", lambda t: t * 2),
        ("f returns a (1,) tensor", lambda t: t.sum(dim=0, keepdim=True)),
    ]:
        with case(name, x=x):
            assert_raises(ns.grad_of, f, x, exc=ShapeError)


# ----------------------------------------------------------------------------------------------
# accumulate_grad


def _regression_setup(seed: int) -> tuple[nn.Module, Tensor, Tensor]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    g = generator(seed)
    inputs = torch.randn(7, 3, generator=g, dtype=f64)
    targets = torch.randn(7, 2, generator=g, dtype=f64)
    return model, inputs, targets


def _recording(
    loss_fn: Callable[[Tensor, Tensor], Tensor],
) -> tuple[Callable[[Tensor, Tensor], Tensor], list[int]]:
    """``loss_fn`` wrapped to record the batch size of each call."""
    sizes: list[int] = []

    def recording(xb: Tensor, yb: Tensor) -> Tensor:
        sizes.append(len(xb))
        expect(len(yb) == len(xb), f"loss_fn got {len(xb)} inputs but {len(yb)} targets")
        return loss_fn(xb, yb)

    return recording, sizes


def _mse(model: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    def loss_fn(xb: Tensor, yb: Tensor) -> Tensor:
        loss: Tensor = ((model(xb) - yb) ** 2).mean()
        return loss

    return loss_fn


@check("accumulate_grad")
def accumulated_grads_equal_the_full_batch_gradient(ns: Namespace) -> None:
    for micro_batch, stale in [(3, True), (2, False), (1, True), (7, True), (10, False)]:
        model, inputs, targets = _regression_setup(micro_batch)
        params = list(model.parameters())
        expected = torch.autograd.grad(_mse(model)(inputs, targets), params)
        if stale:
            for p in params:
                p.grad = torch.full_like(p, 5.0)
        recording, sizes = _recording(_mse(model))

        name = f"7 examples, micro_batch={micro_batch}, " + (
            "params holding stale gradients" if stale else "params with .grad None"
        )
        with case(name, inputs=inputs, targets=targets):
            result = ns.accumulate_grad(recording, params, inputs, targets, micro_batch)
            expect(result is None, f"accumulate_grad should return None, got {result!r}")
            want = [min(micro_batch, 7 - s) for s in range(0, 7, micro_batch)]
            expect(
                sizes == want, f"loss_fn should be called on chunks of sizes {want}, got {sizes}"
            )
            for (pname, p), e in zip(model.named_parameters(), expected, strict=True):
                assert_close(p.grad, e, what=f"{pname}.grad")


@check("accumulate_grad")
def accumulate_grad_rejects_bad_micro_batches(ns: Namespace) -> None:
    model, inputs, targets = _regression_setup(0)
    for mb in (0, -2):
        with case(f"micro_batch={mb}"):
            assert_raises(
                ns.accumulate_grad,
                _mse(model),
                list(model.parameters()),
                inputs,
                targets,
                mb,
                exc=ValueError,
            )


# ----------------------------------------------------------------------------------------------
# layer_output_grads


@check("layer_output_grads")
def layer_output_grads_match_autograd(ns: Namespace) -> None:
    torch.manual_seed(0)
    layers = [nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3), nn.Softplus(), nn.Linear(3, 2)]
    for layer in layers:
        layer.double()
    x = randn(5, 4, seed=4, dtype=f64)
    upstream = randn(5, 2, seed=5, dtype=f64)
    hs = []
    h = x
    for layer in layers:
        h = layer(h)
        hs.append(h)
    expected = torch.autograd.grad(h, hs, upstream)
    before = x.clone()
    with case(
        "Linear(4,6), Tanh, Linear(6,3), Softplus, Linear(3,2) on a 5x4 batch",
        x=x,
        upstream=upstream,
    ):
        got = ns.layer_output_grads(layers, x, upstream)
        expect(
            isinstance(got, list) and len(got) == len(layers),
            f"expected a list of {len(layers)} gradients (one per layer output), got {got!r}",
        )
        for i, (a, e) in enumerate(zip(got, expected, strict=True)):
            assert_close(a, e, what=f"gradient of layer {i}'s output ({layers[i]})")
        assert_unchanged(x, before, what="x")


# ----------------------------------------------------------------------------------------------
# td_loss


def _td_batch(seed: int, batch: int, n_actions: int) -> dict[str, Any]:
    g = generator(seed)
    return {
        "actions": torch.randint(0, n_actions, (batch,), generator=g),
        "rewards": torch.randn(batch, generator=g, dtype=f64),
        "done": torch.tensor([i % 3 == 1 for i in range(batch)]),
        "obs": torch.randn(batch, 4, generator=g, dtype=f64),
        "next_obs": torch.randn(batch, 4, generator=g, dtype=f64),
    }


@check("td_loss")
def td_loss_value_and_semi_gradient(ns: Namespace) -> None:
    for seed, batch, n_actions, gamma in [(0, 6, 3, 0.9), (1, 3, 3, 0.5), (2, 5, 1, 0.99)]:
        torch.manual_seed(seed)
        net = nn.Linear(4, n_actions).double()
        b = _td_batch(seed, batch, n_actions)
        q, next_q = net(b["obs"]), net(b["next_obs"])
        # the expected loss, one example at a time, with the target as plain numbers
        terms = []
        for i in range(batch):
            bootstrap = 0.0 if b["done"][i] else gamma * max(next_q[i].tolist())
            terms.append((q[i, b["actions"][i]] - (float(b["rewards"][i]) + bootstrap)) ** 2)
        expected = torch.stack(terms).mean()
        want_grads = torch.autograd.grad(expected, list(net.parameters()), retain_graph=True)
        name = f"a Linear(4, {n_actions}) Q-network, batch {batch}, gamma={gamma}, every third done"
        with case(name, actions=b["actions"], rewards=b["rewards"], done=b["done"]):
            loss = ns.td_loss(q, b["actions"], b["rewards"], next_q, b["done"], gamma)
            assert_close(loss, expected, what="loss")
            got_grads = torch.autograd.grad(loss, list(net.parameters()))
            for (pname, _), a, e in zip(net.named_parameters(), got_grads, want_grads, strict=True):
                assert_close(
                    a,
                    e,
                    what=f"gradient of the network's {pname} (a gradient through the target "
                    "next_q changes it: detach the target)",
                )


@check("td_loss")
def td_loss_sends_no_gradient_to_next_q(ns: Namespace) -> None:
    b = _td_batch(3, 4, 2)
    q = randn(4, 2, seed=6, dtype=f64).requires_grad_(True)
    next_q = randn(4, 2, seed=7, dtype=f64).requires_grad_(True)
    with case("q and next_q both leaves that require grad", q=q, next_q=next_q):
        ns.td_loss(q, b["actions"], b["rewards"], next_q, b["done"], 0.9).backward()
        expect(
            next_q.grad is None,
            f"next_q received a gradient {next_q.grad}; the target must be a constant (detach it)",
        )
        expect(q.grad is not None, "q received no gradient")


# ----------------------------------------------------------------------------------------------
# straight_through_round


@check("straight_through_round")
def straight_through_rounds_forward_and_passes_gradients(ns: Namespace) -> None:
    g = generator(8)
    cases = [
        ("a 3x5 float32 tensor with values in (-5, 5)", torch.rand(3, 5, generator=g) * 10 - 5),
        ("ties round half to even", torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 3.0])),
        ("float64 0-d", torch.tensor(7.3, dtype=f64)),
    ]
    for name, x0 in cases:
        x = x0.clone().requires_grad_(True)
        upstream = torch.rand(x.shape, generator=g, dtype=x.dtype) + 0.5
        with case(name, x=x0, upstream=upstream):
            y = ns.straight_through_round(x)
            assert_close(y.detach(), torch.round(x0), what="forward value")
            expect(y.requires_grad, "the output should require grad when x does")
            (grad,) = torch.autograd.grad((y * upstream).sum(), x)
            assert_close(grad, upstream, what="gradient (the identity: upstream passes unchanged)")
            assert_unchanged(x.detach(), x0, what="x")


# ----------------------------------------------------------------------------------------------
# predict


def _net_with_dropout_and_batchnorm() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)
    )


@check("predict")
def predict_is_eval_mode_without_a_graph(ns: Namespace) -> None:
    x = randn(6, 4, seed=9)
    for training in (True, False):
        model = _net_with_dropout_and_batchnorm()
        model(randn(16, 4, seed=10) * 3 + 1)  # move the running statistics away from 0 and 1
        model.train(training)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        model.eval()
        with torch.no_grad():
            expected = model(x)
        model.train(training)
        with case(f"Linear, BatchNorm1d, ReLU, Dropout, Linear; model.training={training}", x=x):
            out = ns.predict(model, x)
            assert_close(
                out, expected, what="output (dropout off, batch norm's running statistics)"
            )
            expect(
                not out.requires_grad and out.grad_fn is None,
                f"the output should have requires_grad False and no grad_fn, got requires_grad="
                f"{out.requires_grad}, grad_fn={out.grad_fn}: run the model under torch.no_grad()",
            )
            expect(
                all(m.training == training for m in model.modules()),
                f"model.training should be {training} again after predict (put the model back "
                "in its mode)",
            )
            for k, v in model.state_dict().items():
                assert_close(
                    v, state[k], what=f"model.state_dict()[{k!r}] (predict must not change it)"
                )


# ----------------------------------------------------------------------------------------------
# freeze


@check("freeze")
def frozen_parameters_stay_put_under_torch_optim(ns: Namespace) -> None:
    torch.manual_seed(1)
    layers = [nn.Linear(3, 3) for _ in range(11)]
    model = nn.Sequential(
        nn.Sequential(*layers), nn.Linear(3, 2)
    )  # "0.1.weight", "0.10.weight", "1.bias"
    names = ["0.1", "1.bias", "0.3.weight"]
    frozen = {"0.1.weight", "0.1.bias", "1.bias", "0.3.weight"}
    with case(f"an 11-layer Sequential inside a Sequential; names={names}"):
        result = ns.freeze(model, names)
        expect(result is None, f"freeze should return None, got {result!r}")
        for pname, p in model.named_parameters():
            expect(
                p.requires_grad == (pname not in frozen),
                f"{pname}.requires_grad is {p.requires_grad} but should be {pname not in frozen}",
            )
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
        model(randn(5, 3, seed=11)).square().mean().backward()
        opt.step()
        for pname, p in model.named_parameters():
            if pname in frozen:
                expect(p.grad is None, f"frozen {pname} got a .grad")
                assert_close(p.detach(), before[pname], what=f"frozen {pname} after an SGD step")
            else:
                expect(
                    not torch.equal(p.detach(), before[pname]),
                    f"{pname} should have been trained, but the SGD step left it unchanged",
                )


@check("freeze")
def freeze_rejects_unknown_names(ns: Namespace) -> None:
    for names in (["2"], ["0.weigh"], ["0", "head"]):
        model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        with case(f"nn.Sequential(Linear, ReLU); names={names}"):
            assert_raises(ns.freeze, model, names, exc=ValueError, match=repr(names[-1]))


# ----------------------------------------------------------------------------------------------
# clip_grad_norm_hook


def _clipped(grad: Tensor, max_norm: float) -> Tensor:
    """``grad`` clipped by torch.nn.utils.clip_grad_norm_ (on a stand-in parameter)."""
    p = torch.zeros_like(grad, requires_grad=True)
    p.grad = grad.clone()
    torch.nn.utils.clip_grad_norm_([p], max_norm)
    return p.grad


@check("clip_grad_norm_hook")
def hook_clips_like_clip_grad_norm(ns: Namespace) -> None:
    g = generator(12)
    w = torch.randn(3, 4, generator=g, dtype=f64)  # upstream of norm about 3.5
    for max_norm in (1.0, 2.5, 100.0):
        leaf = torch.randn(3, 4, generator=g, dtype=f64, requires_grad=True)
        with case(
            f"a leaf; upstream gradient of norm {w.norm():.3g}; max_norm={max_norm}", upstream=w
        ):
            handle = ns.clip_grad_norm_hook(leaf, max_norm)
            (leaf * w).sum().backward()  # type: ignore[no-untyped-call]
            assert_close(leaf.grad, _clipped(w, max_norm), what="leaf.grad", rtol=1e-5)
            handle.remove()
            leaf.grad = None
            (leaf * w).sum().backward()  # type: ignore[no-untyped-call]
            assert_close(
                leaf.grad, w, what="leaf.grad after handle.remove() (the hook should be gone)"
            )
    x = torch.randn(5, generator=g, dtype=f64, requires_grad=True)
    upstream = torch.randn(5, generator=g, dtype=f64) * 3
    with case("a non-leaf h = x ** 2; max_norm=0.5", x=x, upstream=upstream):
        h = x**2
        ns.clip_grad_norm_hook(h, 0.5)
        (h * upstream).sum().backward()  # type: ignore[no-untyped-call]
        assert_close(
            x.grad,
            _clipped(upstream, 0.5) * 2 * x.detach(),
            rtol=1e-5,
            what="x.grad (the clipped gradient flows on through h = x ** 2)",
        )
    x = torch.randn(3, generator=g, dtype=f64, requires_grad=True)
    upstream = torch.tensor([3.0, 4.0, 0.0], dtype=f64)
    before = upstream.clone()
    with case(
        "y = x * 1 with the hook on y, then y.backward(upstream), upstream of norm 5; "
        "max_norm=1: the hook receives the caller's upstream tensor itself",
        upstream=upstream,
    ):
        y = x * 1
        ns.clip_grad_norm_hook(y, 1.0)
        y.backward(upstream)  # type: ignore[no-untyped-call]
        assert_close(x.grad, _clipped(before, 1.0), rtol=1e-5, what="x.grad")
        assert_unchanged(
            upstream, before, what="upstream (the hook must return a new gradient, not scale it)"
        )
    z = torch.randn(4, generator=g, requires_grad=True)
    with case("a zero gradient; max_norm=1", x=z):
        ns.clip_grad_norm_hook(z, 1.0)
        (z * 0).sum().backward()  # type: ignore[no-untyped-call]
        assert_close(z.grad, torch.zeros(4), what="z.grad (a zero gradient stays zero, not NaN)")


@check("clip_grad_norm_hook")
def hook_rejects_non_positive_max_norm(ns: Namespace) -> None:
    for max_norm in (0.0, -1.0):
        t = torch.ones(2, requires_grad=True)
        with case(f"max_norm={max_norm}"):
            assert_raises(ns.clip_grad_norm_hook, t, max_norm, exc=ValueError)


# ----------------------------------------------------------------------------------------------
# jacobian


@check("jacobian")
def jacobian_matches_torch(ns: Namespace) -> None:
    g = generator(13)
    a = torch.randn(3, 4, generator=g, dtype=f64)
    cases: list[tuple[str, Callable[[Tensor], Tensor], Tensor]] = [
        (
            "tanh(A @ x) for a 3x4 A",
            lambda t: torch.tanh(a @ t),
            torch.randn(4, generator=g, dtype=f64),
        ),
        (
            "x ** 2 * sum(x) (4 -> 4)",
            lambda t: t**2 * t.sum(),
            torch.randn(4, generator=g, dtype=f64),
        ),
        (
            "softmax of a 5-vector",
            lambda t: torch.softmax(t, dim=0),
            torch.randn(5, generator=g, dtype=f64),
        ),
        (
            "(x0 * x1, sin x1) at a float32 x",
            lambda t: torch.stack([t[0] * t[1], t[1].sin()]),
            torch.randn(2, generator=g),
        ),
    ]
    for name, f, x in cases:
        before = x.clone()
        counted, calls = _counting(f)
        with case(name, x=x):
            got = ns.jacobian(counted, x)
            expected = torch.autograd.functional.jacobian(f, x)  # type: ignore[no-untyped-call]
            assert_close(got, expected, what="Jacobian")
            _no_grad_flag(got, "the Jacobian")
            assert_unchanged(x, before, what="x")
            expect(
                calls[0] == 1,
                f"f should run once (then one backward pass per output), but ran {calls[0]} times",
            )


# ----------------------------------------------------------------------------------------------
# gradient_penalty


def _critic(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 1), nn.Flatten(0)
    ).double()


def _penalty_by_torch_func(model: nn.Module, params: dict[str, Tensor], *, x: Tensor) -> Tensor:
    """The penalty from per-example input gradients, by torch.func.vmap over torch.func.grad."""

    def score(xi: Tensor) -> Tensor:
        out: Tensor = torch.func.functional_call(model, params, (xi[None],))[0]
        return out

    per_example = torch.func.vmap(torch.func.grad(score))(x)
    penalty: Tensor = ((per_example.reshape(len(x), -1).norm(dim=1) - 1) ** 2).mean()
    return penalty


@check("gradient_penalty")
def penalty_value_and_double_backward(ns: Namespace) -> None:
    for seed, batch in [(0, 4), (1, 1)]:
        model = _critic(seed)
        x = randn(batch, 2, 3, seed=14 + seed, dtype=f64).requires_grad_(True)
        before = x.detach().clone()
        params: dict[str, Tensor] = dict(model.named_parameters())
        expected = _penalty_by_torch_func(model, params, x=x.detach())
        want_grads = torch.func.grad(partial(_penalty_by_torch_func, model, x=x.detach()))(
            {k: v.detach() for k, v in params.items()}
        )
        with case(f"an MLP critic on a ({batch}, 2, 3) batch", x=x):
            penalty = ns.gradient_penalty(model, x)
            assert_close(penalty, expected, what="penalty")
            expect(
                penalty.requires_grad,
                "the penalty should require grad (create_graph=True), so that it can train "
                "the critic",
            )
            penalty.backward()
            for k, p in model.named_parameters():
                # the last bias does not move the input gradient: torch leaves its .grad None
                got = torch.zeros_like(p) if p.grad is None else p.grad
                assert_close(got, want_grads[k], what=f"{k}.grad after penalty.backward()")
            expect(x.grad is None, "the caller's x got a .grad; take the gradient at a fresh leaf")
            assert_unchanged(x.detach(), before, what="x")
