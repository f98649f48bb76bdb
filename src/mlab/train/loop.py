"""The resumable training loop every later day trains with.

One step: zero the gradients; forward and backward over ``grad_accum`` micro-batches
(:func:`accumulate_gradients`, under bf16 autocast where the device supports it); clip
(:func:`clip_gradients`); step the optimizer (skipped, with a message, when the gradient norm
is not finite) and the schedule. Every ``log_every`` steps a metrics line; every
``layer_stats_every`` steps per-layer gradient statistics; every ``eval_every`` steps an
evaluation (its per-example losses saved in ``examples/step_<step>.npz``) and the
early-stopping test; every ``checkpoint_every`` steps a checkpoint
(:mod:`mlab.train.checkpoint`) holding the model, optimizer, schedule, every RNG state, the data
position, the step and the loop's own counters. All logging of a step happens before its
checkpoint, so a resumed run rewrites exactly the lines after the checkpoint it resumes from.

Gradient accumulation follows the usual recipe (e.g. nanoGPT's ``gradient_accumulation_steps``);
clipping is Pascanu et al. (2013); bf16 autocast as in ``torch.amp``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from mlab.errors import ConfigError
from mlab.train.checkpoint import (
    capture_rng_state,
    checkpoint_path,
    find_resume_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    write_checkpoint,
)
from mlab.train.metrics import MetricsLogger, eval_examples_path, write_eval_examples

__all__ = ["TrainResult", "accumulate_gradients", "clip_gradients", "train"]

Batch = tuple[Tensor, Tensor]


class Task(Protocol):
    examples_per_batch: int

    def position(self) -> dict[str, int]: ...

    def set_position(self, position: dict[str, int]) -> None: ...

    def next_batch(self) -> Batch: ...

    def loss(self, model: Any, batch: Batch) -> Tensor: ...

    def evaluate(self, model: Any, device: torch.device) -> dict[str, float]: ...


def accumulate_gradients(
    loss_fn: Callable[[Batch], Tensor], micro_batches: Sequence[Batch]
) -> Float[Tensor, ""]:
    """Backpropagate through ``micro_batches`` one at a time, so that the gradients summed in
    ``.grad`` equal those of one forward and backward pass over all of them joined into one
    batch; return that joined batch's mean loss as a detached 0-dim tensor.

    Each micro-batch is ``(inputs, targets)`` with one target row per input row;
    ``loss_fn(batch)`` returns its *mean* loss, and its size is ``len(batch[0])``. Weight each
    micro-batch's loss by its share of all the examples (``size / total``) before
    ``backward``, so a short last micro-batch counts for what it holds. Only one micro-batch's
    graph is alive at a time (that is the point: memory of one micro-batch, gradient of all).
    Do not zero the gradients: the caller does, once per step.
    Raise ``ValueError`` when ``micro_batches`` is empty.
    """
    if not micro_batches:
        raise ValueError("micro_batches is empty: pass at least one (inputs, targets) batch")
    total = sum(len(batch[0]) for batch in micro_batches)
    mean_loss = torch.zeros(())
    for batch in micro_batches:
        weight = len(batch[0]) / total
        loss = loss_fn(batch) * weight
        loss.backward()  # type: ignore[no-untyped-call]
        mean_loss = mean_loss + loss.detach().float().cpu()
    return mean_loss


def clip_gradients(
    parameters: Iterable[Tensor], max_norm: float, norm_type: float = 2.0
) -> Float[Tensor, ""]:
    """Scale all gradients in place so that their global ``norm_type``-norm is at most
    ``max_norm``; return the norm before clipping, as ``torch.nn.utils.clip_grad_norm_`` does.

    The global p-norm is the p-norm of the per-tensor p-norms (``norm_type=float("inf")``: the
    largest magnitude of any entry). Skip parameters whose ``.grad`` is ``None``; with none
    left return ``torch.tensor(0.0)``. Multiply every gradient by
    ``max_norm / (total + 1e-6)`` clamped to at most 1. A non-finite norm is returned as it is
    (the caller skips that step). Raise ``ValueError`` when ``max_norm`` is not positive.
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm={max_norm}: clip to a positive norm (or turn clipping off)")
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norms = torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads])
    total: Tensor = torch.linalg.vector_norm(norms, norm_type)
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.to(g.dtype))
    return total


@dataclass
class TrainResult:
    run_dir: str
    step: int
    metrics: dict[str, float]  # the last logged value of each metric
    stopped_early: bool
    resumed_from: int | None


def _grad_norm(params: list[Tensor]) -> Tensor:
    grads = [torch.linalg.vector_norm(p.grad) for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(grads)) if grads else torch.tensor(0.0)


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _autocast(amp: str, device: torch.device) -> Any:
    """bf16 autocast where it pays: ``amp="auto"`` on CUDA devices with bf16; ``"bf16"``
    anywhere; ``"off"`` never."""
    if amp not in ("auto", "bf16", "off"):
        raise ConfigError(f"amp={amp!r}: use 'auto', 'bf16' or 'off'")
    bf16_cuda = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if amp == "bf16" or (amp == "auto" and bf16_cuda):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(
    run_dir: str | Path,
    model: Callable[[], Any],
    task: Callable[[], Task],
    optimizer: Callable[..., torch.optim.Optimizer] = torch.optim.AdamW,
    schedule: Callable[[int], Callable[[int], float]] | None = None,
    max_steps: int = 1000,
    grad_accum: int = 1,
    max_grad_norm: float | None = 1.0,
    amp: str = "auto",
    device: str = "auto",
    eval_every: int = 100,
    patience: int | None = None,
    checkpoint_every: int = 100,
    keep_checkpoints: int = 3,
    log_every: int = 10,
    layer_stats_every: int = 100,
    seed: int = 0,
    progress: bool = True,
    tensorboard: bool = True,
    resume: bool = False,
    until: int | None = None,
    on_built: Callable[[], None] | None = None,
    say: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``model()`` on ``task()`` for ``max_steps`` optimizer steps in ``run_dir``.

    ``model``, ``task``, ``optimizer`` (called with the parameters) and ``schedule`` (called
    with ``max_steps``, giving the learning-rate multiplier per step) are factories, called
    after the random generators are seeded. ``resume``: continue from the newest intact
    checkpoint of ``run_dir`` (a fresh start when there is none). ``until``: stop after that
    step as if killed there (the schedule still ends at ``max_steps``). ``on_built`` runs once
    everything is built, before the first step (``main`` saves gin's operative config there).
    """
    if grad_accum < 1 or max_steps < 1:
        raise ConfigError(f"grad_accum={grad_accum}, max_steps={max_steps}: both must be >= 1")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dev = _device(device)
    autocast = _autocast(amp, dev)
    _seed_everything(seed)
    net = model().to(dev)
    data = task()
    params = [p for p in net.parameters() if p.requires_grad]
    opt = optimizer(params)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, schedule(max_steps) if schedule is not None else (lambda _: 1.0)
    )
    loop: dict[str, Any] = {"best": float("inf"), "bad_evals": 0, "stopped": False}
    loop |= {"loss_sum": 0.0, "loss_steps": 0, "skipped": 0}
    state = find_resume_checkpoint(run_dir, say) if resume else None
    step = 0
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["schedule"])
        data.set_position(state["data"])
        loop = state["loop"]
        step = state["step"]
        restore_rng_state(state["rng"])
        say(f"resuming {run_dir} from step {step}")
    logger = MetricsLogger(run_dir, step if state is not None else None, tensorboard)
    if on_built is not None:
        on_built()

    def micro_loss(batch: Batch) -> Tensor:
        with autocast():
            return data.loss(net, (batch[0].to(dev), batch[1].to(dev)))

    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (a log file, CI)
    bar = tqdm(total=max_steps, initial=step, disable=None if progress else True, unit="step")
    last: dict[str, float] = {}
    tick, tick_step = time.perf_counter(), step
    net.train()
    try:
        while step < max_steps and not loop["stopped"] and (until is None or step < until):
            opt.zero_grad(set_to_none=True)
            micro = [data.next_batch() for _ in range(grad_accum)]
            loss = accumulate_gradients(micro_loss, micro)
            logging = (step + 1) % log_every == 0 or step + 1 == max_steps
            grad_norm = None
            if max_grad_norm is not None:
                grad_norm = clip_gradients(params, max_grad_norm)
            elif logging:
                grad_norm = _grad_norm(params)
            lr = opt.param_groups[0]["lr"]
            if grad_norm is not None and not torch.isfinite(grad_norm):
                loop["skipped"] += 1
                say(f"step {step + 1}: gradient norm {float(grad_norm)}; step skipped")
            else:
                opt.step()
            sched.step()
            step += 1
            loop["loss_sum"] += float(loss)
            loop["loss_steps"] += 1
            if layer_stats_every and step % layer_stats_every == 0:
                logger.log_layers(step, net)
            if logging:
                now = time.perf_counter()
                examples = (step - tick_step) * grad_accum * data.examples_per_batch
                last = {
                    "loss": loop["loss_sum"] / loop["loss_steps"],
                    "lr": lr,
                    "grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
                    "skipped_steps": loop["skipped"],
                    "throughput": examples / max(now - tick, 1e-9),
                }
                logger.log(step, **last)
                bar.set_postfix(loss=f"{last['loss']:.4f}", lr=f"{lr:.2e}")
                loop["loss_sum"], loop["loss_steps"] = 0.0, 0
                tick, tick_step = now, step
            if step % eval_every == 0 or step == max_steps:
                net.eval()
                if hasattr(data, "evaluate_examples"):  # per-example losses for mlab analyze
                    evaluation, examples = data.evaluate_examples(net, dev)
                    write_eval_examples(eval_examples_path(run_dir, step), examples)
                else:
                    evaluation = data.evaluate(net, dev)
                net.train()
                logger.log(step, **evaluation)
                last |= evaluation
                if evaluation["val_loss"] < loop["best"]:
                    loop["best"], loop["bad_evals"] = evaluation["val_loss"], 0
                else:
                    loop["bad_evals"] += 1
                if patience is not None and loop["bad_evals"] >= patience:
                    loop["stopped"] = True
                    say(f"early stop at step {step}: no better val_loss in {patience} evals")
            if step % checkpoint_every == 0 or step == max_steps or loop["stopped"]:
                write_checkpoint(
                    checkpoint_path(run_dir, step),
                    {
                        "step": step,
                        "model": net.state_dict(),
                        "optimizer": opt.state_dict(),
                        "schedule": sched.state_dict(),
                        "rng": capture_rng_state(),
                        "data": data.position(),
                        "loop": loop,
                    },
                )
                prune_checkpoints(run_dir, keep_checkpoints)
            bar.update(1)
    finally:
        bar.close()
        logger.close()
    return TrainResult(
        str(run_dir),
        step,
        last,
        bool(loop["stopped"]),
        state["step"] if state is not None else None,
    )
