"""torch.autograd from the user's side: the everyday tools for getting, shaping and stopping
gradients, before part 3 builds an autograd engine of its own.

Each function is a small, common pattern: the gradient of a function at a point, gradient
accumulation over micro-batches, gradients of intermediate activations (``retain_grad``), a
loss with a constant target (``detach``, as in DQN: Mnih et al., "Human-level control through
deep reinforcement learning", 2015), the straight-through estimator (Bengio, Léonard &
Courville, 2013), inference without a graph (``torch.no_grad``), freezing parameters,
gradient clipping by a hook, a Jacobian by repeated backward passes (``retain_graph``), and the
WGAN-GP gradient penalty, a loss on a gradient (``create_graph``; Gulrajani et al., "Improved
Training of Wasserstein GANs", 2017).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from mlab.errors import ShapeError

__all__ = [
    "accumulate_grad",
    "clip_grad_norm_hook",
    "freeze",
    "grad_of",
    "gradient_penalty",
    "jacobian",
    "layer_output_grads",
    "predict",
    "straight_through_round",
    "td_loss",
]


# ----------------------------------------------------------------------------------------------
# Getting gradients


def grad_of(f: Callable[[Tensor], Tensor], x: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
    """The gradient of the scalar function ``f`` at ``x``: a tensor of ``x``'s shape and dtype
    holding ``d f(x) / d x``, with ``requires_grad`` False.

    Use ``.backward()``, not ``torch.autograd.grad``: make a fresh leaf with the values of
    ``x`` that requires grad (``x.detach()`` shares the values but not the graph), call ``f``
    on it once, call ``.backward()`` on the result and read the leaf's ``.grad``. Leave the
    caller's ``x`` alone: its values, its ``requires_grad`` flag and its ``.grad`` must be as
    they were (``x`` may itself require grad, or be the output of other operations).

    Raise ``ShapeError`` when ``f(x)`` is not a 0-d tensor: ``.backward()`` needs a scalar
    (or an explicit upstream gradient), so say which shape came back.

    >>> grad_of(lambda t: (t**2).sum(), torch.tensor([1.0, -3.0]))
    tensor([ 2., -6.])
    """
    leaf = x.detach().requires_grad_(True)
    out = f(leaf)
    if out.dim() != 0:
        raise ShapeError(
            f"f returned shape {tuple(out.shape)}, but grad_of needs a scalar (0-d) output; "
            "reduce it first, e.g. with .sum() or .mean()"
        )
    out.backward()  # type: ignore[no-untyped-call]
    grad: Tensor = leaf.grad  # type: ignore[assignment]
    return grad


def accumulate_grad(
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    params: Sequence[Tensor],
    inputs: Float[Tensor, " batch *features"],
    targets: Tensor,
    micro_batch: int,
) -> None:
    """Gradient accumulation: fill each ``p.grad`` of ``params`` with the gradient of
    ``loss_fn(inputs, targets)`` (a *mean* over the batch) while never running more than
    ``micro_batch`` examples at once, as one does when a full batch does not fit in memory.

    First clear every ``p.grad`` (it may be None or hold a stale gradient from an earlier
    step): ``backward()`` *adds* into ``.grad``. Then split the batch into consecutive chunks
    of ``micro_batch`` rows (the last one may be shorter) and call ``.backward()`` once per
    chunk on ``loss_fn(inputs[chunk], targets[chunk]) * len(chunk) / len(inputs)``: the
    weights make the summed gradients equal the full-batch mean's gradient even when the last
    chunk is short. Return nothing; ``torch.optim`` would then step on these ``.grad``.

    Raise ``ValueError`` when ``micro_batch < 1``.
    """
    if micro_batch < 1:
        raise ValueError(f"micro_batch={micro_batch} should be at least 1")
    for p in params:
        p.grad = None
    for chunk in torch.arange(len(inputs)).split(micro_batch):  # type: ignore[no-untyped-call]
        (loss_fn(inputs[chunk], targets[chunk]) * len(chunk) / len(inputs)).backward()  # type: ignore[no-untyped-call]


def layer_output_grads(
    layers: Sequence[Callable[[Tensor], Tensor]], x: Tensor, upstream: Tensor
) -> list[Tensor]:
    """Run ``x`` through ``layers`` in order, backpropagate ``upstream`` from the last output
    (``out.backward(upstream)``, the gradient of ``(out * upstream).sum()``) and return the
    gradient of the loss with respect to *every* layer's output, first layer first.

    Layer outputs are not leaves, so autograd frees their gradients as it passes them on:
    call ``.retain_grad()`` on each output before the backward pass, then read its ``.grad``.
    (The layers' parameters get their ``.grad`` filled too; that is expected.) This is how
    one looks for vanishing or exploding gradients layer by layer.
    """
    outputs = []
    for layer in layers:
        x = layer(x)
        x.retain_grad()
        outputs.append(x)
    x.backward(upstream)  # type: ignore[no-untyped-call]
    return [h.grad for h in outputs]  # type: ignore[misc]


# ----------------------------------------------------------------------------------------------
# Stopping gradients


def td_loss(
    q: Float[Tensor, "batch actions"],
    actions: Int[Tensor, " batch"],
    rewards: Float[Tensor, " batch"],
    next_q: Float[Tensor, "batch actions"],
    done: Bool[Tensor, " batch"],
    gamma: float,
) -> Float[Tensor, ""]:
    """The temporal-difference loss of Q-learning (DQN): the mean over the batch of
    ``(q[i, actions[i]] - y[i]) ** 2`` with the target
    ``y[i] = rewards[i] + gamma * max_a next_q[i, a]``, where the ``max`` term is left out
    (counts as 0) when ``done[i]`` (the episode ended: there is no next state).

    The target is a *constant*: no gradient may flow into ``next_q``. It is the network's own
    estimate (or a target network's) for the next state, and letting the loss move it too
    chases a moving target; ``loss.backward()`` must leave ``next_q``'s graph untouched, so
    ``next_q.grad`` stays None. ``q`` gets the usual gradient.
    """
    target = rewards + gamma * next_q.detach().amax(dim=1) * ~done
    taken = q[torch.arange(len(actions)), actions]
    return ((taken - target) ** 2).mean()


def straight_through_round(x: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
    """``torch.round(x)`` in the forward pass, the identity in the backward pass: the
    straight-through estimator, which lets gradients pass a quantiser whose true derivative
    is zero almost everywhere (used to train quantised networks and VQ-VAEs).

    Build it from ``detach``: ``x + (round(x) - x)`` has the value ``round(x)``, and if the
    bracket is detached, the only path back to ``x`` is the first term, with derivative 1.
    The output requires grad whenever ``x`` does; ``x`` itself is not changed.

    >>> x = torch.tensor([0.2, 1.7], requires_grad=True)
    >>> y = straight_through_round(x)
    >>> y.detach(), torch.autograd.grad((y * torch.tensor([3.0, 5.0])).sum(), x)[0]
    (tensor([0., 2.]), tensor([3., 5.]))
    """
    return x + (torch.round(x) - x).detach()


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """``model(x)`` for inference: in eval mode (dropout off, batch norm using its running
    statistics instead of the batch's, and not updating them) and without recording a graph
    (``torch.no_grad()``: no memory kept for a backward pass), so the output has
    ``requires_grad`` False and no ``grad_fn``.

    Afterwards put the model back in the mode it was in (``model.training``): a model that
    was training when ``predict`` was called (to watch validation accuracy, say) goes on
    training.
    """
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out: Tensor = model(x)
    model.train(was_training)
    return out


def freeze(module: nn.Module, names: Sequence[str]) -> None:
    """Freeze parts of ``module``: set ``requires_grad`` False on every parameter named in
    ``names``, where a name is a parameter's full name (``"head.bias"``) or a submodule's
    (``"encoder"``: all of its parameters, ``"encoder.0.weight"`` and so on). A frozen
    parameter gets no ``.grad`` from ``backward()``, so ``torch.optim`` skips it.

    Match whole name components: in an ``nn.Sequential`` of 11 layers, ``"1"`` freezes
    ``"1.weight"`` and ``"1.bias"``, not ``"10.weight"``. Raise ``ValueError`` naming the
    name when a name matches no parameter (a typo would otherwise freeze nothing, silently).
    """
    params = dict(module.named_parameters())
    for name in names:
        matched = [p for key, p in params.items() if key == name or key.startswith(name + ".")]
        if not matched:
            raise ValueError(
                f"{name!r} names no parameter or submodule with parameters; the parameters "
                f"are {sorted(params)}"
            )
        for p in matched:
            p.requires_grad_(False)


# ----------------------------------------------------------------------------------------------
# Shaping gradients


def clip_grad_norm_hook(t: Tensor, max_norm: float) -> RemovableHandle:
    """Register a hook on ``t`` (``t.register_hook``) that clips the gradient arriving at
    ``t``: when its L2 norm (over all of its elements) exceeds ``max_norm``, scale it down to
    norm ``max_norm``; a smaller gradient passes unchanged (never scaled *up*). Return the
    handle, so that ``handle.remove()`` takes the hook off again.

    The hook returns the new gradient rather than changing its argument in place. It acts
    during the backward pass, so on a non-leaf ``t`` the clipped gradient is what flows on to
    the tensors ``t`` was computed from; on a leaf it is what lands in ``t.grad``. (Compare
    ``torch.nn.utils.clip_grad_norm_``, which clips ``.grad`` after the backward pass.)
    Raise ``ValueError`` when ``max_norm`` is not positive.
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm={max_norm} should be positive")

    def clip(grad: Tensor) -> Tensor:
        return grad * (max_norm / grad.norm()).clamp(max=1)  # type: ignore[no-any-return]

    return t.register_hook(clip)  # type: ignore[no-untyped-call,no-any-return]


def jacobian(f: Callable[[Tensor], Tensor], x: Float[Tensor, " n"]) -> Float[Tensor, "m n"]:
    """The Jacobian of ``f``, which maps an ``(n,)`` tensor to an ``(m,)`` tensor, at ``x``:
    the ``(m, n)`` matrix whose row ``i`` is the gradient of ``f(x)[i]``, with
    ``requires_grad`` False.

    Run ``f`` once, on a fresh leaf with ``x``'s values, then take one backward pass per
    output (``torch.autograd.grad(out[i], leaf, retain_graph=True)``, or ``.backward`` with
    the leaf's ``.grad`` cleared in between). A backward pass frees the graph's saved
    tensors unless told to keep them, so every pass but the last needs
    ``retain_graph=True``. Do not change ``x``.
    """
    leaf = x.detach().requires_grad_(True)
    out = f(leaf)
    rows = [torch.autograd.grad(y, leaf, retain_graph=True)[0] for y in out]
    return torch.stack(rows)


def gradient_penalty(
    f: Callable[[Tensor], Tensor], x: Float[Tensor, " batch *features"]
) -> Float[Tensor, ""]:
    """The WGAN-GP gradient penalty: the mean over the batch of ``(||g_i|| - 1) ** 2``, where
    ``g_i`` is the gradient of ``f(x)[i]`` with respect to the example ``x[i]`` and
    ``||g_i||`` its L2 norm over all of its features. ``f`` (a critic network) maps a batch
    ``(batch, *features)`` to scores ``(batch,)`` and treats the examples independently, so
    the gradient of ``f(x).sum()`` with respect to ``x`` holds every ``g_i`` at once.

    The penalty is a loss on a gradient: it must itself be differentiable with respect to
    ``f``'s parameters, so that ``gradient_penalty(f, x).backward()`` trains ``f``. Ask for
    that with ``torch.autograd.grad(..., create_graph=True)`` (a graph of the backward pass,
    for a second, "double" backward). Take the gradient at a fresh leaf with ``x``'s values:
    ``x`` and its ``.grad`` stay as they were.
    """
    leaf = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(f(leaf).sum(), leaf, create_graph=True)
    return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()  # type: ignore[no-any-return]
