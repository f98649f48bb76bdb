"""Checks for part 3 of w1d5: accuracy, gradient clipping, the training epoch and evaluation.

``clip_grad_norm_`` is compared with ``torch.nn.utils.clip_grad_norm_``. The loops run a small
``torch.nn`` network with batch norm (whose output differs between training and evaluation
mode) on batches of 5, 5 and 2 examples (a short last batch), and are compared with a loop
written differently here: gradients from ``torch.autograd.grad`` handed to ``torch.optim.SGD``
with momentum, and evaluation as one forward pass over all the examples at once, with class
labels (loss and accuracy) and with float targets (``nn.MSELoss``, soft labels: the loss, and
``None`` for the accuracy)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlab.course.engine.checks import Namespace, check
from mlab.testing import assert_close, assert_equal, case, expect, randint, randn

F64 = torch.float64
SIZES = (5, 5, 2)  # a short last batch
Batches = list[tuple[Tensor, Tensor]]


def _batches(seed: int) -> Batches:
    x = randn(sum(SIZES), 6, seed=seed, dtype=F64)
    y = randint(0, 3, sum(SIZES), seed=seed + 1)
    ends = [sum(SIZES[:i]) for i in range(len(SIZES) + 1)]
    return [(x[a:b], y[a:b]) for a, b in itertools.pairwise(ends)]


def _model(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    return model.to(F64)


def _sgd(model: nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


# ----------------------------------------------------------------------------------------------
# accuracy


@check("accuracy")
def accuracy_counts_argmax_hits(ns: Namespace) -> None:
    logits = randn(7, 5, seed=0)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    labels[:3] = logits[:3].max(dim=1).indices  # at least three hits
    want = sum(int(row.max(dim=0).indices == lab) for row, lab in zip(logits, labels, strict=True))
    with case("7 rows, 5 classes", logits=logits, labels=labels):
        got = ns.accuracy(logits, labels)
        expect(isinstance(got, float), f"accuracy should return a float, got {type(got)}")
        assert_close(got, want / 7, rtol=1e-6, what="accuracy")
    for labels1, want1 in ((logits[:1].argmax(dim=1), 1.0), (logits[:1].argmin(dim=1), 0.0)):
        with case("a single row", logits=logits[:1], labels=labels1):
            assert_close(ns.accuracy(logits[:1], labels1), want1, what="accuracy")


# ----------------------------------------------------------------------------------------------
# clip_grad_norm_


def _params(seed: int, dtype: torch.dtype, with_none: bool = True) -> list[Tensor]:
    shapes = [(3, 4), (4,), (2, 2, 2), (5,)]
    params = []
    for i, shape in enumerate(shapes):
        p = torch.zeros(shape, dtype=dtype, requires_grad=True)
        if not (with_none and i == 1):
            p.grad = randn(*shape, seed=seed + i, dtype=dtype)
        params.append(p)
    return params


def _compare_clip(ns: Namespace, max_norm: float, dtype: torch.dtype, with_none: bool) -> None:
    ours, theirs = _params(3, dtype, with_none), _params(3, dtype, with_none)
    want = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    got = ns.clip_grad_norm_((p for p in ours), max_norm)  # a generator, like .parameters()
    assert_close(got, want, what="returned total norm (before clipping)")
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if b.grad is None:
            expect(a.grad is None, f"param {i} had grad None; it should stay None")
        else:
            assert_close(a.grad, b.grad, what=f"param {i}'s grad after clipping")


@check("clip_grad_norm_")
def clip_matches_torch(ns: Namespace) -> None:
    for dtype in (torch.float32, F64):
        for max_norm in (1.0, 0.25, 3.5):
            for with_none in (True, False):
                note = "one param's grad is None" if with_none else "every param has a grad"
                with case(f"4 params ({note}), norm about 4.4", max_norm=max_norm, dtype=dtype):
                    _compare_clip(ns, max_norm, dtype, with_none)


@check("clip_grad_norm_")
def clip_leaves_small_grads_alone(ns: Namespace) -> None:
    for max_norm in (100.0, 4.5):
        with case("max_norm above the total norm: nothing changes", max_norm=max_norm):
            _compare_clip(ns, max_norm, F64, True)
    none = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    with case("no param has a grad: the norm is 0"):
        got = ns.clip_grad_norm_(none, 1.0)
        assert_close(got, torch.nn.utils.clip_grad_norm_(none, 1.0), what="returned norm")


# ----------------------------------------------------------------------------------------------
# train_epoch


def _expected_epoch(
    model: nn.Module, batches: Batches, max_grad_norm: float | None
) -> tuple[float, list[float]]:
    """The epoch written differently: gradients from autograd.grad replace .grad outright."""
    model.train()
    opt = _sgd(model)
    params = list(model.parameters())
    losses = []
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        for p, g in zip(params, torch.autograd.grad(loss, params), strict=True):
            p.grad = g
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        losses.append(loss.item())
    mean = sum(loss * len(x) for loss, (x, _) in zip(losses, batches, strict=True)) / sum(SIZES)
    return mean, losses


def _run_train_epoch(ns: Namespace, max_grad_norm: float | None, seed: int) -> None:
    batches = _batches(seed)
    ours, theirs = _model(seed), _model(seed)
    want, losses = _expected_epoch(theirs, batches, max_grad_norm)
    ours.eval()  # train_epoch must switch to training mode itself
    for p in ours.parameters():  # stale gradients must not leak into the first step
        p.grad = torch.ones_like(p)
    opt = _sgd(ours)
    seen: list[float] = []

    def loss_fn(logits: Tensor, y: Tensor) -> Tensor:
        loss = F.cross_entropy(logits, y)
        seen.append(loss.item())
        return loss

    kwargs = {} if max_grad_norm is None else {"max_grad_norm": max_grad_norm}
    got = ns.train_epoch(ours, batches, opt, loss_fn, **kwargs)
    expect(
        ours.training and ours[1].training,
        "after train_epoch the model should be in training mode (call model.train() first)",
    )
    assert_close(seen, losses, what="loss of each batch (batches of 5, 5, 2)")
    assert_close(got, want, what="returned mean loss (weighted by batch size)")
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert_close(a, b, what=f"{name} after the epoch")


@check("train_epoch")
def train_epoch_matches_manual_loop(ns: Namespace) -> None:
    with case(
        "Linear-BatchNorm-ReLU-Linear, SGD(lr=0.1, momentum=0.9), model in eval mode and "
        "stale .grad = 1 before the call, batches of 5, 5, 2, no clipping"
    ):
        _run_train_epoch(ns, None, seed=10)


@check("train_epoch")
def train_epoch_clips(ns: Namespace) -> None:
    for max_norm in (0.3, 1e6):
        with case("the same, with clipping", max_grad_norm=max_norm):
            _run_train_epoch(ns, max_norm, seed=20)


# ----------------------------------------------------------------------------------------------
# evaluate


@check("evaluate")
def evaluate_matches_one_pass(ns: Namespace) -> None:
    batches = _batches(30)
    model = _model(30)
    first: Any = model[0]
    norm: Any = model[1]
    with torch.no_grad():  # running statistics that differ from a batch's own
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    ref = _model(30)
    ref.load_state_dict(model.state_dict())
    ref.eval()
    with torch.no_grad():
        logits = ref(x)
    want_loss = F.cross_entropy(logits, y).item()
    want_acc = (logits.argmax(dim=1) == y).sum().item() / len(y)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # evaluate must switch to evaluation mode itself
    stale = first.weight.grad = torch.full_like(first.weight, 0.5)
    grad_modes: list[bool] = []

    def loss_fn(logits: Tensor, y: Tensor) -> Tensor:
        grad_modes.append(torch.is_grad_enabled() or logits.requires_grad)
        return F.cross_entropy(logits, y)

    with case("Linear-BatchNorm-ReLU-Linear in training mode, batches of 5, 5, 2"):
        got = ns.evaluate(model, batches, loss_fn)
        expect(len(got) == 2, f"evaluate should return (loss, accuracy), got {got!r}")
        assert_close(got[0], want_loss, rtol=1e-9, what="mean loss (weighted by batch size)")
        assert_close(got[1], want_acc, rtol=1e-6, what="accuracy (weighted by batch size)")
        expect(
            not (model.training or model[1].training),
            "after evaluate the model should be in evaluation mode (call model.eval())",
        )
        expect(
            not any(grad_modes),
            "the forward pass ran with gradients enabled: wrap the loop in torch.no_grad()",
        )
        for name, value in model.state_dict().items():
            assert_equal(value, before[name], what=f"{name} (evaluate must not change it)")
        expect(first.weight.grad is stale, "evaluate changed a parameter's .grad")
        expect(model[3].weight.grad is None, "evaluate gave a parameter a .grad")


@check("evaluate")
def evaluate_without_class_labels(ns: Namespace) -> None:
    batches = _batches(40)
    gen = torch.Generator().manual_seed(41)
    torch.manual_seed(40)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)).to(F64)
    targets = torch.randn(sum(SIZES), 2, generator=gen, dtype=F64)
    soft = torch.softmax(torch.randn(sum(SIZES), 2, generator=gen, dtype=F64), dim=1)
    x = torch.cat([b[0] for b in batches])
    for description, loss_fn, y in (
        ("regression: nn.MSELoss(), float targets of shape (n, 2)", nn.MSELoss(), targets),
        ("soft labels: F.cross_entropy with class probabilities (n, 2)", F.cross_entropy, soft),
    ):
        ref = copy.deepcopy(model).eval()
        with torch.no_grad():  # torch's one pass over all the examples at once
            want_loss = loss_fn(ref(x), y).item()
        ends = [sum(SIZES[:i]) for i in range(len(SIZES) + 1)]
        loader = [(x[a:b], y[a:b]) for a, b in itertools.pairwise(ends)]
        model.train()
        with case(f"{description}, batches of 5, 5, 2"):
            got = ns.evaluate(model, loader, loss_fn)
            expect(len(got) == 2, f"evaluate should return (loss, accuracy), got {got!r}")
            assert_close(got[0], want_loss, rtol=1e-9, what="mean loss (weighted by batch size)")
            expect(
                got[1] is None,
                f"the accuracy should be None: float targets are not class labels, so there is "
                f"no accuracy to measure (got {got[1]!r})",
            )
