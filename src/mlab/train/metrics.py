"""Run metrics: one JSON object per line (``metrics.jsonl``), TensorBoard when installed, and
per-layer gradient statistics.

Each line holds a ``"step"`` and numbers (losses, learning rate, throughput, gradient norm).
A killed run has logged lines past its last checkpoint; on resume :func:`truncate_metrics`
drops them (and a half-written last line), so the resumed run writes them again and the file
ends up as if the run had never stopped. Per-layer gradient statistics (every ``K`` steps, in
``layers.jsonl``) reuse :func:`mlab.inspect.stats.tensor_stats`, the numbers ``mlab inspect``
shows.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path
from typing import IO, Any

import numpy as np
from torch import nn

from mlab.inspect.stats import histogram, tensor_stats

HIST_BINS = 20

__all__ = [
    "HIST_BINS",
    "MetricsLogger",
    "eval_examples_path",
    "layer_grad_stats",
    "list_eval_examples",
    "read_eval_examples",
    "read_metrics",
    "truncate_metrics",
    "write_eval_examples",
]


def truncate_metrics(path: str | Path, step: int) -> int:
    """Keep only the complete lines of the JSONL file ``path`` whose ``"step"`` is at most
    ``step``; return how many lines were kept.

    A line is complete when it ends with a newline and parses as JSON (a run killed while
    writing leaves a partial last line). Lines are kept in their order, the file is rewritten
    in place (a missing file counts as empty: nothing is created), and the kept lines stay
    byte-for-byte what they were.
    """
    path = Path(path)
    if not path.exists():
        return 0
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        if record["step"] <= step:
            kept.append(line)
    path.write_text("".join(kept), encoding="utf-8")
    return len(kept)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics JSONL file (complete lines only)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines(keepends=True):
        if line.endswith("\n"):
            records.append(json.loads(line))
    return records


def eval_examples_path(run_dir: str | Path, step: int) -> Path:
    """Where the evaluation at ``step`` saves its per-example arrays."""
    return Path(run_dir) / "examples" / f"step_{step:06d}.npz"


def write_eval_examples(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Save an evaluation's per-example arrays (``losses`` and what the task adds) as one
    ``.npz``, atomically (a temporary file, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy types **kwds as allow_pickle
    os.replace(tmp, path)
    return path


def read_eval_examples(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays :func:`write_eval_examples` saved."""
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def list_eval_examples(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every saved evaluation of a run, oldest first."""
    found = []
    for path in Path(run_dir).glob("examples/step_*.npz"):
        stem = path.name.removesuffix(".npz").removeprefix("step_")
        if stem.isdigit():
            found.append((int(stem), path))
    return sorted(found)


def layer_grad_stats(model: Any) -> dict[str, dict[str, Any]]:
    """For every parameter with a gradient: its gradient's L2 norm, mean, std and largest
    magnitude (:func:`mlab.inspect.stats.tensor_stats`), a histogram of it
    (:func:`mlab.inspect.stats.histogram`, ``HIST_BINS`` bins from ``hist_lo`` to ``hist_hi``)
    and the parameter's own norm."""
    out = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            grad = p.grad.detach().float().cpu()
            s = tensor_stats(grad)
            counts, edges = histogram(grad, bins=HIST_BINS)
            out[name] = {
                "grad_norm": s.norm,
                "grad_mean": s.mean,
                "grad_std": s.std,
                "grad_abs_max": s.abs_max,
                "param_norm": tensor_stats(p.detach().float().cpu()).norm,
                "hist_lo": float(edges[0]),
                "hist_hi": float(edges[-1]),
                "hist": counts.tolist(),
            }
    return out


class MetricsLogger:
    """Appends metric records to ``run_dir/metrics.jsonl`` (and TensorBoard event files under
    ``run_dir/tensorboard`` when the ``tensorboard`` package is installed and ``tensorboard``
    is true).

    ``resume_step``: the step of the checkpoint being resumed; lines logged after it by the
    interrupted run are dropped first. ``None`` starts a new file.
    """

    def __init__(
        self, run_dir: str | Path, resume_step: int | None = None, tensorboard: bool = True
    ) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "metrics.jsonl"
        self.layers_path = self.run_dir / "layers.jsonl"
        if resume_step is None:
            self.path.write_text("")
            self.layers_path.write_text("")
        else:
            truncate_metrics(self.path, resume_step)
            truncate_metrics(self.layers_path, resume_step)
        self._file: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._layers: IO[str] = open(self.layers_path, "a", encoding="utf-8")  # noqa: SIM115
        self._tb: Any = None
        if tensorboard and importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))

    def log(self, step: int, **values: float) -> None:
        """Write one record ``{"step": step, **values}`` as a line, flushed at once (a killed
        run loses nothing it logged). Non-finite floats are written as strings ("nan")."""
        record: dict[str, Any] = {"step": step}
        for key, value in values.items():
            value = float(value)
            record[key] = value if math.isfinite(value) else str(value)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(key, float(value), step)

    def log_layers(self, step: int, model: nn.Module) -> None:
        """Per-layer gradient statistics (and, in TensorBoard, gradient histograms)."""
        stats = layer_grad_stats(model)
        self._layers.write(json.dumps({"step": step, "layers": stats}) + "\n")
        self._layers.flush()
        if self._tb is not None:
            for name, p in model.named_parameters():
                if p.grad is not None:
                    self._tb.add_histogram(f"grad/{name}", p.grad.detach().float().cpu(), step)

    def close(self) -> None:
        self._file.close()
        self._layers.close()
        if self._tb is not None:
            self._tb.close()
