"""Linear regression and softmax (multinomial logistic) regression, written from tensor ops.

Linear regression fits ``y ≈ x @ w + b`` by least squares, either in closed form (the normal
equations ``(XᵀX + λI) w = Xᵀy``, solved on centred data so the bias is not penalised, as
scikit-learn's ``Ridge`` does) or by gradient descent with the gradient derived by hand, then
with autograd. Softmax regression fits ``p(class | x) = softmax(x @ W + b)`` by minimising the
cross-entropy, whose gradient with respect to the logits is ``softmax - onehot`` (Bishop,
*Pattern Recognition and Machine Learning*, 2006, §4.3.4), with minibatch SGD. On
Fashion-MNIST it matches Zalando's published logistic-regression baseline, about 84% test
accuracy (Xiao, Rasul and Vollgraf, 2017).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from mlab.errors import ShapeError
from mlab.tensor.reductions import softmax

__all__ = [
    "accuracy",
    "cross_entropy",
    "fit_linear_regression_autograd",
    "fit_linear_regression_gd",
    "linear_loss_and_grad",
    "linear_regression_closed_form",
    "mse_loss",
    "sgd_step",
    "softmax_loss_and_grad",
    "train_softmax_regression",
]


# ----------------------------------------------------------------------------------------------
# Linear regression


def mse_loss(pred: Float[Tensor, "*batch"], target: Float[Tensor, "*batch"]) -> Float[Tensor, ""]:
    """The mean squared error ``mean((pred - target) ** 2)`` over every element, as a 0-d
    tensor (what ``torch.nn.functional.mse_loss`` computes).

    ``pred`` and ``target`` must have the same shape: raise ``ShapeError`` otherwise. (A
    ``(n, 1)`` prediction minus an ``(n,)`` target silently broadcasts to ``(n, n)``, a classic
    bug that gives a wrong loss with no error.)

    >>> mse_loss(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]))
    tensor(2.)
    """
    if pred.shape != target.shape:
        raise ShapeError(
            f"pred has shape {tuple(pred.shape)} and target {tuple(target.shape)}; they must "
            "match (reshape one of them; broadcasting here would compare every pair)"
        )
    return ((pred - target) ** 2).mean()


def linear_regression_closed_form(
    x: Float[Tensor, "n d"], y: Float[Tensor, " n"], bias: bool = True, ridge: float = 0.0
) -> tuple[Float[Tensor, " d"], Float[Tensor, ""]]:
    """The least-squares fit ``(w, b)`` of ``y ≈ x @ w + b``, solving the normal equations.

    Minimise ``sum((x @ w + b - y) ** 2) + ridge * sum(w ** 2)``; the bias is not penalised.
    With ``bias=True``, centre the columns of ``x`` first: with ``x_mean = x.mean(dim=0)`` and
    ``xc = x - x_mean``, the weights solve ``(xcᵀ xc + ridge * I) w = xcᵀ y`` (centring ``y``
    as well would change nothing: each column of ``xc`` sums to 0), and then
    ``b = y.mean() - x_mean @ w``. With ``bias=False``, solve the same system with ``x``
    itself and return ``b = 0`` (a 0-d tensor). Solve with ``torch.linalg.solve``, not
    ``lstsq``, ``pinv`` or ``inv``; return tensors of ``x``'s dtype, and leave ``x`` and ``y``
    unchanged.

    Raise ``ShapeError`` unless ``x`` is 2-D and ``y`` has shape ``(n,)``, and when
    ``ridge == 0`` and there are fewer rows than unknowns (``n < d + 1`` with a bias,
    ``n < d`` without): the system is then singular. Raise ``ValueError`` for ``ridge < 0``.

    >>> x = torch.tensor([[0.0], [1.0], [2.0]])
    >>> w, b = linear_regression_closed_form(x, 3 * x[:, 0] + 1)
    >>> w.round(decimals=4), b.round(decimals=4)
    (tensor([3.]), tensor(1.))
    """
    if x.ndim != 2 or y.shape != x.shape[:1]:
        raise ShapeError(
            f"x has shape {tuple(x.shape)} and y {tuple(y.shape)}; need x of shape (n, d) and "
            "y of shape (n,)"
        )
    n, d = x.shape
    if ridge < 0:
        raise ValueError(f"ridge={ridge} is negative; the penalty must be >= 0")
    if ridge == 0 and n < d + bias:
        raise ShapeError(
            f"x has shape {tuple(x.shape)}: {n} rows cannot determine {d + bias} unknowns "
            f"({d} weights{' and a bias' if bias else ''}); use more rows or ridge > 0"
        )
    x_mean = x.mean(dim=0) if bias else x.new_zeros(d)
    xc = x - x_mean
    w = torch.linalg.solve(xc.T @ xc + ridge * torch.eye(d, dtype=x.dtype), xc.T @ y)
    return w, y.mean() - x_mean @ w if bias else y.new_zeros(())


def linear_loss_and_grad(
    x: Float[Tensor, "n d"], y: Float[Tensor, " n"], w: Float[Tensor, " d"], b: Float[Tensor, ""]
) -> tuple[Float[Tensor, ""], Float[Tensor, " d"], Float[Tensor, ""]]:
    """The mean squared error of the linear model ``x @ w + b`` against ``y``, and its
    gradients with respect to ``w`` and ``b``, derived by hand (no autograd):
    ``(loss, grad_w, grad_b)``.

    With the residual ``r = x @ w + b - y`` and ``loss = mean(r ** 2)``:
    ``grad_w = 2 / n * xᵀ r`` and ``grad_b = 2 * mean(r)``.

    Raise ``ShapeError`` unless ``x`` is 2-D, ``y`` has shape ``(n,)`` and ``w`` ``(d,)``.

    >>> x, y = torch.tensor([[1.0, 2.0]]), torch.tensor([3.0])
    >>> linear_loss_and_grad(x, y, torch.zeros(2), torch.tensor(0.0))
    (tensor(9.), tensor([ -6., -12.]), tensor(-6.))
    """
    if x.ndim != 2 or y.shape != x.shape[:1] or w.shape != x.shape[1:]:
        raise ShapeError(
            f"x has shape {tuple(x.shape)}, y {tuple(y.shape)} and w {tuple(w.shape)}; need "
            "(n, d), (n,) and (d,)"
        )
    r = x @ w + b - y
    return (r**2).mean(), 2 * (x.T @ r) / x.shape[0], 2 * r.mean()


def fit_linear_regression_gd(
    x: Float[Tensor, "n d"], y: Float[Tensor, " n"], lr: float, steps: int
) -> tuple[Float[Tensor, " d"], Float[Tensor, ""], Float[Tensor, " steps"]]:
    """Fit ``y ≈ x @ w + b`` by ``steps`` steps of full-batch gradient descent on the mean
    squared error, with the gradients of ``linear_loss_and_grad`` (no autograd).

    Start from ``w = 0`` (shape ``(d,)``) and ``b = 0`` (0-d), of ``x``'s dtype. Each step
    computes the loss and gradients at the current ``(w, b)``, then moves
    ``w -= lr * grad_w`` and ``b -= lr * grad_b``. Return the final ``(w, b, losses)`` where
    ``losses[i]`` is the loss before step ``i`` (a tensor of ``steps`` values, ``x``'s dtype).

    >>> x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([1.0, 3.0])
    >>> w, b, losses = fit_linear_regression_gd(x, y, lr=0.5, steps=200)
    >>> w.round(decimals=4), b.round(decimals=4)
    (tensor([2.]), tensor(1.))
    """
    w = x.new_zeros(x.shape[1])
    b = x.new_zeros(())
    losses = []
    for _ in range(steps):
        loss, grad_w, grad_b = linear_loss_and_grad(x, y, w, b)
        w, b = w - lr * grad_w, b - lr * grad_b
        losses.append(loss.item())
    return w, b, torch.tensor(losses, dtype=x.dtype)


def sgd_step(params: list[Tensor], lr: float) -> None:
    """One step of plain gradient descent on tensors whose ``.grad`` autograd has filled in
    (by ``loss.backward()``): ``p -= lr * p.grad`` in place for every ``p`` in ``params``, then
    clear the gradient (``p.grad.zero_()``, or ``p.grad = None`` as ``torch.optim``'s
    ``zero_grad`` does) so the next ``backward()`` does not add to it.

    The update must not be recorded by autograd (wrap it in ``torch.no_grad()``: an in-place
    change to a leaf that requires grad is an error otherwise), and must modify each tensor
    in place (the caller holds references to them). Skip parameters whose ``.grad`` is None.
    This is what ``torch.optim.SGD(params, lr).step()`` followed by ``zero_grad()`` does.
    """
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p -= lr * p.grad
                p.grad.zero_()


def fit_linear_regression_autograd(
    x: Float[Tensor, "n d"], y: Float[Tensor, " n"], lr: float, steps: int
) -> tuple[Float[Tensor, " d"], Float[Tensor, ""], Float[Tensor, " steps"]]:
    """``fit_linear_regression_gd`` again, with the gradients computed by autograd.

    Start from zero ``w`` (shape ``(d,)``) and ``b`` (0-d) of ``x``'s dtype that require
    grad. Each step: compute the loss with ``mse_loss(x @ w + b, y)``, call ``.backward()``
    on it, then update with ``sgd_step([w, b], lr)``. Return ``(w, b, losses)`` as
    ``fit_linear_regression_gd`` does, with ``w`` and ``b`` detached (no ``requires_grad``).
    """
    w = x.new_zeros(x.shape[1], requires_grad=True)
    b = x.new_zeros((), requires_grad=True)
    losses = []
    for _ in range(steps):
        loss = mse_loss(x @ w + b, y)
        loss.backward()  # type: ignore[no-untyped-call]
        sgd_step([w, b], lr)
        losses.append(loss.item())
    return w.detach(), b.detach(), torch.tensor(losses, dtype=x.dtype)


# ----------------------------------------------------------------------------------------------
# Softmax regression


def cross_entropy(
    logits: Float[Tensor, "batch classes"], labels: Int[Tensor, " batch"]
) -> Float[Tensor, ""]:
    """The mean over the batch of ``-log softmax(logits)[i, labels[i]]``, as a 0-d tensor
    (``torch.nn.functional.cross_entropy(logits, labels)``).

    Compute the log-softmax stably: subtract each row's maximum before exponentiating, then
    ``log_softmax = shifted - log(sum(exp(shifted)))``. Logits in the thousands must give
    finite, exact losses. Pick each row's entry with ``gather`` or indexing, no loop.

    Raise ``ShapeError`` unless ``logits`` is 2-D and ``labels`` has shape ``(batch,)``.

    >>> cross_entropy(torch.tensor([[1000.0, 1000.0], [0.0, -1000.0]]), torch.tensor([0, 1]))
    tensor(500.3466)
    """
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ShapeError(
            f"logits have shape {tuple(logits.shape)} and labels {tuple(labels.shape)}; need "
            "(batch, classes) and (batch,)"
        )
    shifted = logits - logits.amax(dim=1, keepdim=True)
    log_probs = shifted - shifted.exp().sum(dim=1, keepdim=True).log()
    return -log_probs.gather(1, labels[:, None]).mean()


def softmax_loss_and_grad(
    x: Float[Tensor, "batch d"],
    w: Float[Tensor, "d classes"],
    b: Float[Tensor, " classes"],
    labels: Int[Tensor, " batch"],
) -> tuple[Float[Tensor, ""], Float[Tensor, "d classes"], Float[Tensor, " classes"]]:
    """The cross-entropy of the softmax regression ``logits = x @ w + b`` against ``labels``,
    and its gradients with respect to ``w`` and ``b``, derived by hand (no autograd):
    ``(loss, grad_w, grad_b)``.

    The loss is ``cross_entropy(logits, labels)``. Its gradient with respect to the logits is
    ``(softmax(logits) - onehot(labels)) / batch`` (one row per example); the chain rule
    through ``x @ w + b`` gives ``grad_w = xᵀ @ that`` and ``grad_b`` its sum over the batch.
    ``softmax`` (from w1d1) is imported for you.

    Raise ``ShapeError`` unless ``x`` and ``w`` are 2-D with ``x.shape[1] == w.shape[0]``
    and ``b`` has shape ``(classes,)`` (``cross_entropy`` checks ``labels``).

    >>> loss, grad_w, grad_b = softmax_loss_and_grad(
    ...     torch.tensor([[2.0]]), torch.zeros(1, 2), torch.zeros(2), torch.tensor([1])
    ... )
    >>> loss, grad_w, grad_b
    (tensor(0.6931), tensor([[ 1., -1.]]), tensor([ 0.5000, -0.5000]))
    """
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0] or b.shape != w.shape[1:]:
        raise ShapeError(
            f"x has shape {tuple(x.shape)}, w {tuple(w.shape)} and b {tuple(b.shape)}; need "
            "(batch, d), (d, classes) and (classes,)"
        )
    logits = x @ w + b
    loss = cross_entropy(logits, labels)
    delta = (softmax(logits, dim=1) - F.one_hot(labels, w.shape[1])) / x.shape[0]
    return loss, x.T @ delta, delta.sum(dim=0)


def accuracy(logits: Float[Tensor, "batch classes"], labels: Int[Tensor, " batch"]) -> float:
    """The fraction of rows whose largest logit is at the label's position, as a Python float
    (with ties, the first maximum counts, as ``argmax`` picks it).

    Raise ``ShapeError`` unless ``logits`` is 2-D and ``labels`` has shape ``(batch,)``.

    >>> accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), torch.tensor([1, 1, 1]))
    0.6666666865348816
    """
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ShapeError(
            f"logits have shape {tuple(logits.shape)} and labels {tuple(labels.shape)}; need "
            "(batch, classes) and (batch,)"
        )
    return (logits.argmax(dim=1) == labels).float().mean().item()


def train_softmax_regression(
    x_train: Float[Tensor, "n d"],
    y_train: Int[Tensor, " n"],
    n_classes: int,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    lr_decay: float = 1.0,
) -> tuple[Float[Tensor, "d classes"], Float[Tensor, " classes"], Float[Tensor, " steps"]]:
    """Train softmax regression by minibatch SGD; return ``(w, b, losses)``.

    Start from ``w = 0`` of shape ``(d, n_classes)`` and ``b = 0`` of shape ``(n_classes,)``,
    of ``x_train``'s dtype. In epoch ``e`` (counting from 0) the learning rate is
    ``lr * lr_decay ** e``. Each epoch shuffles the examples with
    ``torch.randperm(n, generator=generator)`` (one call per epoch) and cuts that permutation
    into consecutive batches of ``batch_size`` indices (the last one may be smaller): the
    batches ``minibatches(x_train, y_train, batch_size, generator=generator)`` gives. For
    each batch, take the loss and gradients from ``softmax_loss_and_grad`` and step
    ``w -= lr_e * grad_w``, ``b -= lr_e * grad_b``. ``losses`` holds each batch's loss (before
    its step), in order: ``epochs * ceil(n / batch_size)`` values of ``x_train``'s dtype.

    This is what ``torch.nn.Linear`` with zero-initialised weights, ``torch.optim.SGD`` and
    ``F.cross_entropy`` do on the same batches (with ``ExponentialLR(gamma=lr_decay)``
    stepped after every epoch). No autograd here.
    """
    n, d = x_train.shape
    w = x_train.new_zeros(d, n_classes)
    b = x_train.new_zeros(n_classes)
    losses = []
    for epoch in range(epochs):
        lr_e = lr * lr_decay**epoch
        for idx in torch.split(torch.randperm(n, generator=generator), batch_size):
            loss, grad_w, grad_b = softmax_loss_and_grad(x_train[idx], w, b, y_train[idx])
            w, b = w - lr_e * grad_w, b - lr_e * grad_b
            losses.append(loss.item())
    return w, b, torch.tensor(losses, dtype=x_train.dtype)
