"""Library tests of ``mlab.tensor.regression`` beyond the course checks: its docstring examples,
shapes enforced by jaxtyping + beartype, and "it actually learns" on a Fashion-MNIST subset."""

from __future__ import annotations

import doctest

import pytest
import torch
import torch.nn.functional as F
from beartype import beartype
from jaxtyping import TypeCheckError, jaxtyped

from conftest import Splits
from mlab.data import normalise_images
from mlab.tensor import regression
from mlab.testing import assert_close, generator


def test_docstring_examples() -> None:
    result = doctest.testmod(
        regression, extraglobs={"torch": torch}, optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"


def test_signatures_state_the_shapes() -> None:
    checked = jaxtyped(typechecker=beartype)(regression.softmax_loss_and_grad)
    x, w, b = torch.randn(6, 4), torch.randn(4, 3), torch.randn(3)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    loss, grad_w, grad_b = checked(x, w, b, labels)
    assert grad_w.shape == (4, 3) and grad_b.shape == (3,) and loss.shape == ()
    with pytest.raises(TypeCheckError):
        checked(x, torch.randn(5, 3), b, labels)  # d differs between x and w


def test_closed_form_and_gradient_descent_agree() -> None:
    g = generator(0)
    x = torch.randn(200, 5, generator=g, dtype=torch.float64)
    y = x @ torch.randn(5, generator=g, dtype=torch.float64) + 2.0
    y += 0.5 * torch.randn(200, generator=g, dtype=torch.float64)  # a loss floor well above 0
    w, b = regression.linear_regression_closed_form(x, y)
    w_gd, b_gd, losses = regression.fit_linear_regression_gd(x, y, lr=0.2, steps=400)
    assert_close(w_gd, w, rtol=1e-6, atol=1e-8)
    assert_close(b_gd, b, rtol=1e-6, atol=1e-8)
    rises = losses[1:] - losses[:-1]
    assert rises.max() < 1e-12, "full-batch GD with a small rate on a convex loss never rises"


@pytest.mark.slow
def test_softmax_regression_learns_fashion_mnist_subset(fashion_mnist: Splits) -> None:
    train, test = fashion_mnist
    x_train = normalise_images(train.images[:6000], 0.2860, 0.3530).flatten(1)
    x_test = normalise_images(test.images[:2000], 0.2860, 0.3530).flatten(1)
    w, b, losses = regression.train_softmax_regression(
        x_train, train.labels[:6000], 10, 3, 0.1, 128, generator(1), lr_decay=0.8
    )
    logits = x_test @ w + b
    acc = regression.accuracy(logits, test.labels[:2000])
    assert acc > 0.75, f"test accuracy {acc:.3f} after 3 epochs on 6000 images (chance: 0.1)"
    assert losses[-47:].mean() < 0.5 * losses[:10].mean()
    assert_close(
        regression.cross_entropy(logits, test.labels[:2000]),
        F.cross_entropy(logits, test.labels[:2000]),
    )
