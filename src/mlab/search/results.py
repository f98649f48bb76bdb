"""A search's results: the best runs, and the metric against one searched parameter (one line
per value of another, the mean over seeds, each seed a dot)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from mlab.errors import ConfigError
from mlab.search.queue import Job

__all__ = ["axes_of", "best_runs", "metric_of", "plot_results"]


def metric_of(job: Job, metric: str) -> float:
    """The job's ``metric`` (``inf`` when missing or not a finite number)."""
    value = (job.result or {}).get(metric)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return math.inf


def best_runs(jobs: list[Job], metric: str = "val_loss", top: int | None = None) -> list[Job]:
    """The finished jobs by ``metric``, least first (missing or non-finite values last)."""
    done = [j for j in jobs if j.state == "done"]
    if done and all(metric_of(j, metric) == math.inf for j in done):
        names = sorted({k for j in done for k in (j.result or {})})
        raise ConfigError(f"no finished job has a metric {metric!r}; they have: {names}")
    ranked = sorted(done, key=lambda j: metric_of(j, metric))
    return ranked if top is None else ranked[:top]


def axes_of(jobs: list[Job]) -> list[str]:
    """The parameters that take more than one value across ``jobs`` (the seed last)."""
    values: dict[str, set[str]] = defaultdict(set)
    for job in jobs:
        for k, v in job.params.items():
            values[k].add(repr(v))
    varied = [k for k in values if len(values[k]) > 1]
    return sorted(varied, key=lambda k: k == "seed")


def plot_results(
    jobs: list[Job],
    out: str | Path,
    metric: str = "val_loss",
    x: str | None = None,
    group: str | None = None,
) -> Path:
    """``metric`` against the parameter ``x`` (default: the first searched one, a learning
    rate first), one line per value of ``group`` (default: the next searched one), saved as a
    PNG. A positive ``x`` spanning a factor of 10 or more gets a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [j for j in jobs if j.state == "done" and metric_of(j, metric) < math.inf]
    if not done:
        raise ConfigError(f"no finished job with a {metric!r} to plot yet")
    axes = [a for a in axes_of(done) if a != "seed"]
    if x is None:
        lrs = [a for a in axes if a.lower().endswith(".lr")]
        x = (lrs or axes or ["seed"])[0]
    if group is None:
        group = next((a for a in axes if a != x), None)
    fig, ax = plt.subplots(figsize=(6, 4))
    series: dict[Any, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for job in done:
        if x not in job.params:
            raise ConfigError(f"x={x!r} is not a searched parameter: use one of {axes}")
        key = job.params.get(group) if group else None
        series[key][job.params[x]].append(metric_of(job, metric))
    numeric = all(isinstance(k, int | float) for k in series)
    for key in sorted(series, key=lambda k: k if numeric else repr(k)):
        points = sorted(series[key].items())
        xs = [p[0] for p in points]
        means = [sum(v) / len(v) for _, v in points]
        label = f"{group} = {key}" if group else None
        (line,) = ax.plot(xs, means, marker="o", label=label)
        for xv, vs in points:
            ax.scatter([xv] * len(vs), vs, color=line.get_color(), alpha=0.35, s=12)
    xs_all = [float(j.params[x]) for j in done if isinstance(j.params[x], int | float)]
    if xs_all and min(xs_all) > 0 and max(xs_all) >= 10 * min(xs_all):
        ax.set_xscale("log")
    best = best_runs(done, metric)[0]
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.set_title(
        f"{best.search}: best {metric} {metric_of(best, metric):.4g} at {x} = {best.params.get(x)}",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    if group:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
