"""Inspect models directly, without a training script: one batch through a model, recorded as
a one-step ``Run``, so that two models (a working one and a suspect one, yours and torch's, a
checkpoint before and after a change) can be compared layer by layer with ``compare``.

    from mlab.inspect import compare, record_batch
    a = record_batch(reference, x, loss_fn=F.cross_entropy, target=y, name="reference")
    b = record_batch(mine, x, loss_fn=F.cross_entropy, target=y, name="mine")
    print(compare(a, b).first.detail)

Modules are matched by their ``named_modules()`` names, so the two models need the same
structure (the same attribute names); a layer present in one and missing in the other is
itself reported as a forward divergence.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from mlab.errors import MlabError
from mlab.inspect.record import Recorder, Run

__all__ = ["record_batch"]


def record_batch(
    model: nn.Module,
    x: Tensor,
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    target: Tensor | None = None,
    name: str = "model",
    keep_tensors: bool = True,
) -> Run:
    """Run ``model(x)`` once under a :class:`Recorder` and return it as a one-step ``Run``.

    With ``loss_fn`` and ``target``, also ``loss_fn(output, target).backward()``, so the run
    holds the gradients at every layer's output and of every parameter; the parameters'
    ``.grad`` are restored afterwards (nothing of the model changes: its mode, weights and
    gradients are as before). Without them only the forward pass is recorded. The model's
    train/eval mode is the caller's choice: compare two models in the same mode.
    """
    if (loss_fn is None) != (target is None):
        raise MlabError(
            "record_batch needs both loss_fn and target (to record gradients) or neither "
            "(forward only)"
        )
    saved = {p: p.grad for p in model.parameters()}
    for p in model.parameters():
        p.grad = None
    try:
        with Recorder(model, keep_tensors=keep_tensors) as recorder:
            with torch.set_grad_enabled(loss_fn is not None):
                output = model(x)
                loss = None
                if loss_fn is not None and target is not None:
                    if not isinstance(output, Tensor):
                        raise MlabError(
                            f"{name} returned {type(output).__name__}, not a Tensor: pass a "
                            "loss_fn that takes what it returns, or record forward only"
                        )
                    loss = loss_fn(output, target)
                    loss.backward()  # type: ignore[no-untyped-call]
            recorder.end_step(loss)
        return recorder.as_run(name)
    finally:
        for p, grad in saved.items():
            p.grad = grad
