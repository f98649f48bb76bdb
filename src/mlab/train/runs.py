"""``mlab runs``: the runs in a folder with their last metrics, and their curves in one PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlab.errors import ConfigError
from mlab.train.checkpoint import list_checkpoints
from mlab.train.metrics import read_metrics

__all__ = ["RunSummary", "list_runs", "plot_runs"]


@dataclass
class RunSummary:
    name: str
    path: Path
    step: int  # the last logged step
    checkpoint: int | None  # the newest checkpoint's step
    metrics: dict[str, float]  # the last value of each metric


def list_runs(runs_dir: str | Path = "runs") -> list[RunSummary]:
    """Every folder of ``runs_dir`` with a ``metrics.jsonl``, by name."""
    out = []
    for path in sorted(Path(runs_dir).glob("*/metrics.jsonl")):
        last: dict[str, float] = {}
        step = 0
        for record in read_metrics(path):
            step = max(step, int(record["step"]))
            last |= {k: v for k, v in record.items() if k != "step"}
        ckpts = list_checkpoints(path.parent)
        out.append(
            RunSummary(path.parent.name, path.parent, step, ckpts[-1][0] if ckpts else None, last)
        )
    return out


def plot_runs(
    run_dirs: list[str | Path], out: str | Path, metrics: tuple[str, ...] = ("loss", "val_loss")
) -> Path:
    """One panel per metric, one curve per run (x: step), saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not run_dirs:
        raise ConfigError("no runs to plot: name run folders (mlab runs lists them)")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for run_dir in run_dirs:
        path = Path(run_dir) / "metrics.jsonl"
        if not path.is_file():
            raise ConfigError(f"{run_dir} has no metrics.jsonl: is it a run folder?")
        records = read_metrics(path)
        for ax, metric in zip(axes[0], metrics, strict=True):
            points = [(r["step"], r[metric]) for r in records if isinstance(r.get(metric), float)]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, label=Path(run_dir).name, marker="." if len(xs) < 30 else None)
    for ax, metric in zip(axes[0], metrics, strict=True):
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
