"""Checkpoints a run can be killed during and resumed from, bit for bit.

A checkpoint holds everything the next step depends on: the model, the optimizer, the schedule,
every random number generator (Python's ``random``, NumPy's, torch's on the CPU and on every
CUDA device), the data position and the step. It is written *atomically*: to a temporary file
in the same folder, flushed and ``fsync``-ed, then renamed over the final name (a rename within
one file system is atomic on POSIX), so a reader sees either the old file or the whole new one,
never half of it. The folder is ``fsync``-ed too, so the rename itself survives a power cut.

The file starts with a one-line header, ``MLAB-CHECKPOINT 1 <sha256 of the rest>``, then the
``torch.save`` bytes. A truncated or corrupted file fails the checksum; resuming then falls back
to the previous good checkpoint and says so (:func:`find_resume_checkpoint`).
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlab.errors import DataError

__all__ = [
    "MAGIC",
    "capture_rng_state",
    "checkpoint_path",
    "find_resume_checkpoint",
    "list_checkpoints",
    "prune_checkpoints",
    "read_checkpoint",
    "restore_rng_state",
    "write_checkpoint",
]

MAGIC = b"MLAB-CHECKPOINT 1 "
CHECKPOINT_RE = re.compile(r"^ckpt-(\d{8})\.pt$")


def capture_rng_state() -> dict[str, Any]:
    """The state of every random number generator a training step can draw from.

    Return a dict with keys ``"python"`` (``random.getstate()``), ``"numpy"``
    (``np.random.get_state()``), ``"torch"`` (``torch.get_rng_state()``) and ``"cuda"``
    (``torch.cuda.get_rng_state_all()``: one state per CUDA device, an empty list without
    CUDA).
    Restoring it with :func:`restore_rng_state` makes every later draw repeat exactly.
    """
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all(),
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set every random number generator back to ``state`` (from :func:`capture_rng_state`).

    Raise ``ValueError`` naming the missing keys when ``state`` lacks any of ``"python"``,
    ``"numpy"``, ``"torch"`` or ``"cuda"``, before changing any generator
    (``torch.cuda.set_rng_state_all`` restores the CUDA states).
    """
    missing = sorted({"python", "numpy", "torch", "cuda"} - state.keys())
    if missing:
        raise ValueError(
            f"the random state lacks {missing}: pass the dict capture_rng_state() returned"
        )
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """``run_dir/checkpoints/ckpt-00000123.pt``: zero-padded so names sort by step."""
    return Path(run_dir) / "checkpoints" / f"ckpt-{step:08d}.pt"


def write_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically, with a checksum.

    Serialise ``state`` with ``torch.save`` into bytes; write ``MAGIC``, the SHA-256 hex digest
    of those bytes, a newline, then the bytes, to ``<path>.tmp`` in the same folder (create the
    folder if needed); flush and ``os.fsync`` the file, ``os.replace`` it onto ``path``, and
    ``fsync`` the folder so the rename is durable. A crash at any moment leaves either the old
    ``path`` or the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n")
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint :func:`write_checkpoint` wrote, verifying its checksum.

    Raise ``mlab.errors.DataError`` naming the file when it does not start with ``MAGIC`` and a
    64-character digest line, or when the SHA-256 of the rest differs from the digest (a
    truncated or corrupted file). Load the payload with ``torch.load(..., weights_only=False)``
    (the random states are Python objects).
    """
    data = Path(path).read_bytes()
    header, _, payload = data.partition(b"\n")
    if not header.startswith(MAGIC) or len(header) != len(MAGIC) + 64:
        raise DataError(f"{path} is not an mlab checkpoint (its first line is not a header)")
    digest = hashlib.sha256(payload).hexdigest()
    if header[len(MAGIC) :].decode() != digest:
        raise DataError(
            f"{path} is corrupt or truncated: its checksum is {digest[:12]}..., the header says "
            f"{header[len(MAGIC) :][:12].decode()}... ({len(payload)} bytes of payload)"
        )
    state: dict[str, Any] = torch.load(io.BytesIO(payload), weights_only=False)
    return state


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the run's checkpoints, by step ascending (temporary files ignored)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def find_resume_checkpoint(
    run_dir: str | Path, say: Callable[[str], None] = print
) -> dict[str, Any] | None:
    """The newest checkpoint of ``run_dir`` that reads back intact, or ``None`` when there is
    none.

    Try the checkpoints of :func:`list_checkpoints` from the highest step down. One that fails
    to read (``DataError`` from :func:`read_checkpoint`) is skipped with a message through
    ``say`` naming it, the reason, and that an older one will be tried. Return the state of
    the first that reads; its ``"step"`` must equal the step in its file name, else it is
    skipped the same way (a file renamed by hand).
    """
    for step, path in reversed(list_checkpoints(run_dir)):
        try:
            state = read_checkpoint(path)
        except DataError as err:
            say(f"skipping checkpoint {path.name}: {err}; trying an older one")
            continue
        if state.get("step") != step:
            say(
                f"skipping checkpoint {path.name}: it holds step {state.get('step')}, "
                f"not {step}; trying an older one"
            )
            continue
        return state
    return None


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (at least one is always kept)."""
    for _, path in list_checkpoints(run_dir)[: -max(1, keep)]:
        path.unlink(missing_ok=True)
