"""Realistic wrong solutions of w3d1's exercises: each must fail its checks with a message
naming what is wrong; the reference must pass. Runs the checks in process, as
tests/test_w2d3_wrong_solutions.py does."""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import random
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

pytest.importorskip("gin", reason="the train extra: pip install -e '.[train]'")

from checkrun import assert_fails, run_checks
from mlab.course.engine.manifest import get_day
from mlab.errors import ConfigError, DataError, MismatchError
from mlab.train import checkpoint, config, metrics
from mlab.train import loop as train_loop

MAGIC = checkpoint.MAGIC


_run = partial(run_checks, "w3d1")
_fails = partial(assert_fails, "w3d1")


@pytest.mark.parametrize(
    "exercise",
    [e.name for p in get_day("w3d1").parts for e in p.exercises],
)
def test_the_reference_passes(exercise: str) -> None:
    _run(exercise)


# ----------------------------------------------------------------------------------------------
# check_binding


def binding_split_at_the_first_dot(
    binding: str, configurables: Mapping[str, Callable[..., Any]]
) -> tuple[str, str]:
    """`opt.SGD.momentum` becomes name 'opt', param 'SGD.momentum'."""
    key, eq, _ = binding.partition("=")
    name, dot, param = key.strip().rpartition("/")[2].partition(".")
    if not eq or not dot:
        raise ConfigError(f"binding {binding!r} should look like 'Name.param = value'")
    if name not in configurables:
        raise ConfigError(f"no {name!r}; " + config.nearest_names(name, list(configurables)))
    params = config.bindable_parameters(configurables[name], name)
    if params is not None and param not in params:
        raise ConfigError(f"no {param!r}; " + config.nearest_names(param, params))
    return name, param


def binding_scope_kept(
    binding: str, configurables: Mapping[str, Callable[..., Any]]
) -> tuple[str, str]:
    """Forgets that `train/AdamW.lr` is AdamW in the scope `train`."""
    key, eq, _ = binding.partition("=")
    selector, dot, param = key.strip().rpartition(".")
    if not eq or not dot:
        raise ConfigError(f"binding {binding!r} should look like 'Name.param = value'")
    name = selector if selector in configurables else selector.rpartition(".")[2]
    if name not in configurables:
        raise ConfigError(f"no {name!r}; " + config.nearest_names(name, list(configurables)))
    params = config.bindable_parameters(configurables[name], name)
    if params is not None and param not in params:
        raise ConfigError(f"no {param!r}; " + config.nearest_names(param, params))
    return name, param


def binding_suggests_by_prefix(
    binding: str, configurables: Mapping[str, Callable[..., Any]]
) -> tuple[str, str]:
    """Suggests the names sharing the first letter instead of the most similar ones."""
    try:
        return config.check_binding(binding, configurables)
    except ConfigError as err:
        wrong = re.findall(r"'([^']*)'", str(err).split(";")[0])[-1]
        pool = list(configurables) if "configurable" in str(err) else []
        close = [c for c in pool if c[:1] == wrong[:1]]
        raise ConfigError(str(err).split(";")[0] + f"; did you mean {close}?") from None


def binding_kwargs_rejected(
    binding: str, configurables: Mapping[str, Callable[..., Any]]
) -> tuple[str, str]:
    """Reads the signature's names only: a function taking **kwargs accepts nothing."""
    import inspect

    name, param = config.check_binding(binding, configurables)
    if param not in inspect.signature(configurables[name]).parameters:
        raise ConfigError(f"{name} has no parameter {param!r}")
    return name, param


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (binding_split_at_the_first_dot, "'w3d1check.mlp.hidden = .*gin accepts it"),
        (binding_scope_kept, "'train/AdamW.betas.*gin accepts it"),
        (binding_suggests_by_prefix, "the message (suggests|lists)"),
        (binding_kwargs_rejected, "anything.whatever_you_like.*gin accepts it"),
    ],
)
def test_wrong_check_binding_fails(wrong: Callable[..., Any], message: str) -> None:
    _fails("check_binding", wrong, message)


# ----------------------------------------------------------------------------------------------
# accumulate_gradients, clip_gradients

Batch = tuple[Tensor, Tensor]


def accumulate_averaging_micro_batches(
    loss_fn: Callable[[Batch], Tensor], micro_batches: Sequence[Batch]
) -> Tensor:
    """Divides by the number of micro-batches: right only when they are all one size."""
    total = torch.zeros(())
    for batch in micro_batches:
        loss = loss_fn(batch) / len(micro_batches)
        loss.backward()  # type: ignore[no-untyped-call]
        total = total + loss.detach().float()
    return total


def accumulate_one_backward(
    loss_fn: Callable[[Batch], Tensor], micro_batches: Sequence[Batch]
) -> Tensor:
    """Sums the weighted losses and calls backward once: every graph alive at once."""
    n = sum(len(b[0]) for b in micro_batches)
    loss = sum(loss_fn(b) * (len(b[0]) / n) for b in micro_batches)
    assert isinstance(loss, Tensor)
    loss.backward()  # type: ignore[no-untyped-call]
    return loss.detach().float()


def accumulate_returning_the_graph(
    loss_fn: Callable[[Batch], Tensor], micro_batches: Sequence[Batch]
) -> Tensor:
    """Returns the loss with its graph attached."""
    n = sum(len(b[0]) for b in micro_batches)
    total: Any = 0
    for b in micro_batches:
        loss = loss_fn(b) * (len(b[0]) / n)
        loss.backward(retain_graph=True)  # type: ignore[no-untyped-call]
        total = total + loss
    return total  # type: ignore[no-any-return]


def clip_each_tensor(
    parameters: Iterable[Tensor], max_norm: float, norm_type: float = 2.0
) -> Tensor:
    """Clips every gradient to max_norm on its own: the direction of the step changes."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if max_norm <= 0:
        raise ValueError("max_norm")
    if not grads:
        return torch.tensor(0.0)
    norms = torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads])
    for g in grads:
        g.mul_((max_norm / (torch.linalg.vector_norm(g, norm_type) + 1e-6)).clamp(max=1.0))
    return torch.linalg.vector_norm(norms, norm_type)


def clip_always_l2(parameters: Iterable[Tensor], max_norm: float, norm_type: float = 2.0) -> Tensor:
    """Ignores norm_type: w1d5's clip_grad_norm_."""
    return train_loop.clip_gradients(parameters, max_norm)


def clip_sum_of_norms(
    parameters: Iterable[Tensor], max_norm: float, norm_type: float = 2.0
) -> Tensor:
    """Adds the per-tensor norms instead of taking their norm."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if max_norm <= 0:
        raise ValueError("max_norm")
    if not grads:
        return torch.tensor(0.0)
    total = sum(torch.linalg.vector_norm(g, norm_type) for g in grads)
    assert isinstance(total, Tensor)
    for g in grads:
        g.mul_((max_norm / (total + 1e-6)).clamp(max=1.0))
    return total


@pytest.mark.parametrize(
    ("exercise", "wrong", "message"),
    [
        ("accumulate_gradients", accumulate_averaging_micro_batches, r"\(5, 5, 2\)"),
        ("accumulate_gradients", accumulate_one_backward, "right after its forward"),
        ("accumulate_gradients", accumulate_returning_the_graph, "detached"),
        ("clip_gradients", clip_each_tensor, "gradient"),
        ("clip_gradients", clip_always_l2, "norm_type=1.0"),
        ("clip_gradients", clip_sum_of_norms, "returned norm"),
    ],
)
def test_wrong_step_fails(exercise: str, wrong: Callable[..., Any], message: str) -> None:
    _fails(exercise, wrong, message)


# ----------------------------------------------------------------------------------------------
# checkpoints


def capture_torch_only() -> dict[str, Any]:
    """Forgets Python's and NumPy's generators (a data pipeline may use them)."""
    return {"torch": torch.get_rng_state(), "cuda": []}


def capture_by_seeding() -> dict[str, Any]:
    """Stores a new seed instead of the state: the resumed run draws other numbers."""
    seed = random.randrange(2**31)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(), "cuda": []}  # fmt: skip


def restore_then_validate(state: dict[str, Any]) -> None:
    """Sets what is there, then complains about what is missing: half restored."""
    if "python" in state:
        random.setstate(state["python"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    missing = sorted({"python", "numpy", "torch", "cuda"} - state.keys())
    if missing:
        raise ValueError(f"missing {missing}")


def write_in_place(path: str | Path, state: dict[str, Any]) -> None:
    """Writes the final file directly: a kill mid-write leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    with open(path, "wb") as f:
        f.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        f.flush()
        os.fsync(f.fileno())


def write_without_flush(path: str | Path, state: dict[str, Any]) -> None:
    """fsyncs before flushing Python's buffer: the disk gets an empty file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def write_temp_elsewhere(path: str | Path, state: dict[str, Any]) -> None:
    """Writes the temporary file in /tmp: a rename across file systems is not atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    fd, tmp = tempfile.mkstemp(dir=tempfile.gettempdir())
    with os.fdopen(fd, "wb") as f:
        f.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_md5(path: str | Path, state: dict[str, Any]) -> None:
    """An md5 digest where the format says SHA-256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    path.write_bytes(MAGIC + hashlib.md5(payload).hexdigest().encode() + b"\n" + payload)


def read_without_checksum(path: str | Path) -> dict[str, Any]:
    """Trusts the file: torch.load fails on some damage and loads other damage silently."""
    payload = Path(path).read_bytes().partition(b"\n")[2]
    state: dict[str, Any] = torch.load(io.BytesIO(payload), weights_only=False)
    return state


def read_weights_only(path: str | Path) -> dict[str, Any]:
    """torch.load's default weights_only=True refuses the random states (Python objects)."""
    data = Path(path).read_bytes()
    header, _, payload = data.partition(b"\n")
    if header[len(MAGIC) :].decode() != hashlib.sha256(payload).hexdigest():
        raise DataError(f"{path} is corrupt")
    state: dict[str, Any] = torch.load(io.BytesIO(payload))
    return state


def resume_from_the_oldest(run_dir: str | Path, say: Callable[[str], None] = print) -> Any:
    """Returns the first checkpoint that reads, oldest first."""
    for _, path in checkpoint.list_checkpoints(run_dir):
        try:
            return checkpoint.read_checkpoint(path)
        except DataError as err:
            say(f"skipping {path.name}: {err}")
    return None


def resume_silently(run_dir: str | Path, say: Callable[[str], None] = print) -> Any:
    """Skips damaged checkpoints without a word."""
    for step, path in reversed(checkpoint.list_checkpoints(run_dir)):
        try:
            state = checkpoint.read_checkpoint(path)
        except DataError:
            continue
        if state.get("step") == step:
            return state
    return None


def resume_crashing(run_dir: str | Path, say: Callable[[str], None] = print) -> Any:
    """Lets the newest checkpoint's error stop the resume."""
    found = checkpoint.list_checkpoints(run_dir)
    return checkpoint.read_checkpoint(found[-1][1]) if found else None


@pytest.mark.parametrize(
    ("exercise", "wrong", "message", "exc"),
    [
        ("capture_rng_state", capture_torch_only, "keys", MismatchError),
        ("capture_rng_state", capture_by_seeding, "after resuming", MismatchError),
        ("restore_rng_state", restore_then_validate, "changed before the error", MismatchError),
        ("write_checkpoint", write_in_place, "os.replace", MismatchError),
        ("write_checkpoint", write_without_flush, "flush", MismatchError),
        ("write_checkpoint", write_temp_elsewhere, "should be another name in", MismatchError),
        ("write_checkpoint", write_md5, "digest", MismatchError),
        ("read_checkpoint", read_without_checksum, "should raise DataError", MismatchError),
        ("read_checkpoint", read_weights_only, "Weights only load failed", Exception),
        ("find_resume_checkpoint", resume_from_the_oldest, "step resumed from", MismatchError),
        ("find_resume_checkpoint", resume_silently, "one message per skipped", MismatchError),
        ("find_resume_checkpoint", resume_crashing, "corrupt or truncated", DataError),
    ],
)
def test_wrong_checkpoints_fail(
    exercise: str, wrong: Callable[..., Any], message: str, exc: type[Exception]
) -> None:
    _fails(exercise, wrong, message, exc)


# ----------------------------------------------------------------------------------------------
# truncate_metrics


def truncate_before_the_step(path: str | Path, step: int) -> int:
    """Keeps steps below the checkpoint's: the checkpoint's own line is lost."""
    path = Path(path)
    if not path.exists():
        return 0
    kept = [ln for ln in path.read_text().splitlines(keepends=True)
            if ln.endswith("\n") and json.loads(ln)["step"] < step]  # fmt: skip
    path.write_text("".join(kept))
    return len(kept)


def truncate_keeping_partial_lines(path: str | Path, step: int) -> int:
    """Keeps a half-written last line when it parses."""
    path = Path(path)
    if not path.exists():
        return 0
    kept = []
    for ln in path.read_text().splitlines(keepends=True):
        try:
            if json.loads(ln)["step"] <= step:
                kept.append(ln if ln.endswith("\n") else ln + "\n")
        except json.JSONDecodeError:
            break
    path.write_text("".join(kept))
    return len(kept)


def truncate_creating_the_file(path: str | Path, step: int) -> int:
    """Opens a missing file for writing: an empty log appears where there was none."""
    Path(path).touch()
    return metrics.truncate_metrics(path, step)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (truncate_before_the_step, "lines kept"),
        (truncate_keeping_partial_lines, "lines kept"),
        (truncate_creating_the_file, "do not create"),
    ],
)
def test_wrong_truncate_metrics_fails(wrong: Callable[..., Any], message: str) -> None:
    _fails("truncate_metrics", wrong, message)


def test_difflib_is_what_the_messages_use() -> None:
    assert difflib.get_close_matches("lrr", ["lr", "eps"], n=3, cutoff=0.6) == ["lr"]
