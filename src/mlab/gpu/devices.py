"""Device-agnostic code (course day w1d6, part 1).

Code that runs unchanged on a CPU, a CUDA GPU or an Apple GPU (MPS) follows a few rules: pick
the device once, at the top (:func:`pick_device`); create every new tensor on the device of
the data it works with, never on a hard-coded one (:func:`make_like`); move whole batches
(:func:`to_device`), copying asynchronously from pinned memory (:func:`pin_batch`); move a
model and its optimizer's state together (:func:`move_model_and_optimizer`); and evaluate
without gradients on the chosen device (:func:`evaluate_on`).

The checks run on the CPU and use the ``meta`` device as the "other" device: a tensor on
``meta`` has a shape, a dtype and a device but no data, so code that silently puts something
on the CPU is caught there.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from mlab.errors import ConfigError

__all__ = [
    "evaluate_on",
    "make_like",
    "move_model_and_optimizer",
    "pick_device",
    "pin_batch",
    "to_device",
]


def pick_device(prefer: str | None = None) -> torch.device:
    """The device to run on: ``torch.device("cuda")`` when ``torch.cuda.is_available()``,
    else ``torch.device("mps")`` when ``torch.backends.mps.is_available()``, else
    ``torch.device("cpu")``.

    With ``prefer`` (a device string such as ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``),
    return ``torch.device(prefer)`` if its type is available here ("cpu" always is; "cuda"
    and "mps" by the two functions above; any other type never is). Otherwise raise
    ``mlab.errors.ConfigError`` whose message names ``prefer`` and the fix (pass
    ``prefer=None`` to pick automatically, or one of the available types).

    >>> pick_device("cpu")
    device(type='cpu')
    """
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
        "cpu": True,
    }
    if prefer is None:
        return torch.device(next(name for name, ok in available.items() if ok))
    device = torch.device(prefer)
    if not available.get(device.type, False):
        usable = [name for name, ok in available.items() if ok]
        raise ConfigError(
            f"device {prefer!r} is not available on this machine; pass prefer=None to pick "
            f"automatically, or one of {usable}"
        )
    return device


def make_like(x: Float[Tensor, "batch seq"]) -> dict[str, Tensor]:
    """New tensors for the batch ``x`` of shape (batch, seq), every one on ``x.device``
    (never on a hard-coded device, never created on the CPU and moved):

    - ``"zeros"``: zeros of x's shape and dtype (``torch.zeros_like``),
    - ``"ones"``: ones of shape (batch,) and x's dtype,
    - ``"positions"``: 0, 1, ..., seq - 1 as int64, shape (seq,),
    - ``"causal"``: bool of shape (seq, seq), True where the column is after the row
      (``[i, j]`` is True when j > i: the positions a causal model must not attend to).

    >>> make_like(torch.ones(2, 3))["positions"]
    tensor([0, 1, 2])
    """
    batch, seq = x.shape
    return {
        "zeros": torch.zeros_like(x),
        "ones": torch.ones(batch, dtype=x.dtype, device=x.device),
        "positions": torch.arange(seq, device=x.device),
        "causal": torch.ones(seq, seq, dtype=torch.bool, device=x.device).triu(1),
    }


def to_device(batch: Any, device: torch.device | str) -> Any:
    """``batch`` with every tensor moved to ``device``, through nested tuples, lists and
    dicts (a tuple stays a tuple, a list a list, a dict keeps its keys and their order).
    Anything else (numbers, strings, None, ...) is returned as it is, the same object.

    Each tensor moves with ``t.to(device, non_blocking=t.is_pinned())``: a copy from pinned
    memory to a GPU can then overlap with computation; from ordinary memory it cannot.
    """
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=batch.is_pinned())
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(item, device) for item in batch)
    return batch


def pin_batch(batch: Any) -> Any:
    """``batch`` with every tensor replaced by ``t.pin_memory()`` (a copy in page-locked
    memory, which a GPU copies from asynchronously), through nested tuples, lists and dicts
    as :func:`to_device`; anything else is returned as it is.

    Pinning needs CUDA: when ``torch.cuda.is_available()`` is False (a CPU-only machine)
    return ``batch`` itself, unchanged and not copied.
    """
    if not torch.cuda.is_available():
        return batch
    if isinstance(batch, Tensor):
        return batch.pin_memory()
    if isinstance(batch, dict):
        return {key: pin_batch(value) for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(pin_batch(item) for item in batch)
    return batch


def move_model_and_optimizer(
    model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device | str
) -> None:
    """Move ``model`` to ``device`` in place, and the optimizer's state with it, so training
    continues there exactly as it would have where it was.

    ``model.to(device)`` keeps each parameter object (the optimizer still holds the same
    ones) but the optimizer's state tensors (``momentum_buffer``, ``exp_avg``, ...) stay
    where they were. Move every tensor in ``optimizer.state`` to its parameter's device,
    except ``"step"``, which torch keeps on the CPU (as ``optimizer.load_state_dict`` does).
    """
    model.to(device)
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if key != "step" and isinstance(value, Tensor):
                state[key] = value.to(param.device)


def evaluate_on(model: nn.Module, loader: Any, device: torch.device | str) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of the classifier ``model`` over the ``(x, y)``
    batches of ``loader`` (x: inputs, y: int64 class labels), computed on ``device``.

    Move the model to ``device`` and put it in eval mode; under ``torch.no_grad()`` move each
    batch to ``device``, and add up the summed loss (``reduction="sum"``) and the number of
    correct argmax predictions. Return ``(total loss / examples, correct / examples)`` as
    Python floats, the mean over examples, not over batches (the last batch may be short).
    """
    model.to(device)
    model.eval()
    total_loss = 0.0
    correct = 0.0
    count = 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(dim=-1) == y).sum().item()
            count += len(y)
    return total_loss / count, correct / count
