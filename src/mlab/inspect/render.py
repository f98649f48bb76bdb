"""Pictures and a one-file HTML report of recorded runs (library code, not exercises).

- ``plot_layer_norms``: each layer's output norm and gradient norm, in forward order, for one
  or two runs on a log scale, with the layer where they first differ highlighted;
- ``plot_histograms``: small multiples of each layer's output histogram (kept tensors);
- ``plot_attention``: the latest attention maps;
- ``plot_losses``: loss curves;
- ``write_report``: ``report.html``, one self-contained file (PNGs inlined as base64, CSS
  inline, no external URL) with the divergence, the health findings and per-layer tables,
  plus the PNGs beside it.

Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path

from mlab.figures import plt, save_figure
from mlab.inspect.compare import Comparison, compare
from mlab.inspect.health import Finding, health
from mlab.inspect.record import Run
from mlab.inspect.stats import histogram

__all__ = [
    "plot_attention",
    "plot_histograms",
    "plot_layer_norms",
    "plot_losses",
    "write_report",
]

_COLORS = ("tab:blue", "tab:orange")


def _layers(runs: Sequence[Run], step: int) -> list[str]:
    """The modules recorded at ``step`` in the first run's forward order, then the others'."""
    names: list[str] = []
    for run in runs:
        if step < len(run.steps):
            names += [n for n in run.steps[step].activations if n not in names]
    return names


def plot_layer_norms(
    runs: Sequence[Run], path: str | Path, *, step: int = 0, highlight: str | None = None
) -> Path:
    """Plot every layer's output norm and output-gradient norm at ``step`` (log scale, forward
    order) for one or two runs; shade the layer ``highlight``; save a PNG at ``path``."""
    names = _layers(runs, step)
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 0.45 * len(names) + 2), 6.5), dpi=90)
    for ax, field, title in (
        (axes[0], "activations", "output norm"),
        (axes[1], "gradients", "gradient norm at the output"),
    ):
        for run, color in zip(runs, _COLORS, strict=False):
            entries = getattr(run.steps[step], field) if step < len(run.steps) else {}
            ys = [entries[n].norm if n in entries else math.nan for n in names]
            ax.plot(range(len(names)), ys, "o-", color=color, ms=4, label=run.name, alpha=0.8)
        if highlight in names:
            x = names.index(highlight)
            ax.axvspan(x - 0.4, x + 0.4, color="red", alpha=0.15, label=f"differs: {highlight}")
        ax.set_yscale("log", nonpositive="mask")
        labels = [f"{n} ({runs[0].module_types.get(n, '?')})" for n in names]
        ax.set_xticks(range(len(names)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title(f"Per-layer norms at step {step} (forward order)")
    return save_figure(fig, path)


def plot_histograms(
    run: Run, path: str | Path, *, step: int = 0, bins: int = 40, max_layers: int = 16
) -> Path | None:
    """Small multiples: a histogram of each layer's output at ``step`` (the first
    ``max_layers`` layers with a kept tensor); None (no file) when no tensor was kept."""
    if step >= len(run.steps):
        return None
    tensors = run.steps[step].tensors
    names = [n for n in run.steps[step].activations if f"act:{n}" in tensors][:max_layers]
    if not names:
        return None
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), dpi=80, squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names, strict=False):
        counts, edges = histogram(tensors[f"act:{name}"], bins=bins)
        ax.stairs(counts.numpy(), edges.numpy(), fill=True, alpha=0.7)
        ax.set_title(f"{name} ({run.module_types.get(name, '?')})", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{run.name}: layer outputs at step {step}")
    return save_figure(fig, path)


def plot_attention(run: Run, path: str | Path, *, max_maps: int = 8) -> Path | None:
    """The latest attention maps of ``run`` (each head of each module, at most ``max_maps``),
    keys across, queries down; None (no file) when the run has none."""
    maps = []
    for name, pattern in run.attention.items():
        heads = pattern.unsqueeze(0) if pattern.ndim == 2 else pattern
        maps += [(f"{name} head {h}", heads[h]) for h in range(len(heads))]
    maps = maps[:max_maps]
    if not maps:
        return None
    cols = min(4, len(maps))
    rows = -(-len(maps) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), dpi=80, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, pattern) in zip(axes.flat, maps, strict=False):
        ax.imshow(pattern.float().numpy(), cmap="viridis", vmin=0)
        ax.set_title(title, fontsize=8)
    fig.suptitle(f"{run.name}: attention (example 0, last call)")
    return save_figure(fig, path)


def plot_losses(runs: Sequence[Run], path: str | Path) -> Path:
    """The loss of each run per step; save a PNG at ``path``."""
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=90)
    for run, color in zip(runs, _COLORS, strict=False):
        ax.plot(range(len(run.losses)), run.losses, "o-", color=color, ms=4, label=run.name)
    ax.set(xlabel="step", ylabel="loss", title="Training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


# -- the HTML report -------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 70em; margin: 1em auto; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; } td.name { text-align: left; font-family: monospace; }
tr.differs td { background: #fde2e2; }
.divergence { border-left: 4px solid #c33; padding: 0.3em 0.8em; background: #fff4f4; }
.none { border-left-color: #3a3; background: #f2fbf2; }
.error { color: #b00; } .warning { color: #a60; }
img { max-width: 100%; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value))


def _num(x: float) -> str:
    return f"{x:.4g}"


def _img(path: Path | None, alt: str) -> str:
    if path is None:
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{_esc(alt)}" src="data:image/png;base64,{data}"></p>'


def _stats_table(run: Run, step: int) -> str:
    """Per-layer statistics of ``run`` at ``step``: output summary and gradient norm."""
    if step >= len(run.steps):
        return "<p>(no such step)</p>"
    record = run.steps[step]
    head = (
        "<tr><th>layer</th><th>type</th><th>mean</th><th>std</th><th>norm</th><th>|max|</th>"
        "<th>zero</th><th>saturated</th><th>NaN/inf</th><th>grad norm</th></tr>"
    )
    body = []
    for name, s in record.activations.items():
        grad = record.gradients.get(name)
        body.append(
            f'<tr><td class="name">{_esc(name)}</td>'
            f'<td class="name">{_esc(run.module_types.get(name, "?"))}</td>'
            f"<td>{_num(s.mean)}</td><td>{_num(s.std)}</td><td>{_num(s.norm)}</td>"
            f"<td>{_num(s.abs_max)}</td><td>{s.frac_zero:.0%}</td><td>{s.frac_saturated:.0%}</td>"
            f"<td>{s.n_nan}/{s.n_inf}</td><td>{'—' if grad is None else _num(grad.norm)}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _rows_table(comparison: Comparison) -> str:
    """The compared places of the first divergent step."""
    head = "<tr><th>place</th><th>name</th><th>rel. diff</th></tr>"
    body = [
        f'<tr class="{"differs" if r.differs else "agrees"}"><td class="name">{r.place}</td>'
        f'<td class="name">{_esc(r.name)}</td><td>{_num(r.rel_diff)}</td></tr>'
        for r in comparison.rows
        if r.step == comparison.first.step
    ]
    return f"<table>{head}{''.join(body)}</table>"


def _findings(run: Run, findings: list[Finding]) -> str:
    if not findings:
        return f"<p><b>{_esc(run.name)}</b>: no problems found.</p>"
    items = "".join(
        f'<li class="{f.severity}">{f.severity}: {_esc(f.message)}</li>' for f in findings
    )
    return f"<p><b>{_esc(run.name)}</b>:</p><ul>{items}</ul>"


def write_report(
    a: Run, b: Run | None, out_dir: str | Path, comparison: Comparison | None = None
) -> Path:
    """Write ``out_dir/report.html`` and its PNGs (loss, layer norms, histograms, attention)
    about run ``a``, or ``a`` against ``b`` (compared with ``compare`` unless ``comparison``
    is given). Return the path of ``report.html``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = [a] if b is None else [a, b]
    if b is not None and comparison is None:
        comparison = compare(a, b)
    step, highlight = 0, None
    if comparison is not None:
        step = comparison.first.step
        if comparison.first.kind in ("forward", "backward"):
            highlight = comparison.first.layer
    parts = [f"<h1>mlab inspect: {' vs '.join(_esc(r.name) for r in runs)}</h1>"]
    if comparison is not None:
        none = " none" if comparison.first.kind == "none" else ""
        parts += [
            "<h2>First divergence</h2>",
            f'<p class="divergence{none}"><b>{comparison.first.kind}</b>: '
            f"{_esc(comparison.first.detail)}</p>",
            _rows_table(comparison),
        ]
    parts.append("<h2>Health</h2>")
    parts += [_findings(run, health(run)) for run in runs]
    parts += ["<h2>Loss</h2>", _img(plot_losses(runs, out / "loss.png"), "loss curves")]
    norms = plot_layer_norms(runs, out / "layer_norms.png", step=step, highlight=highlight)
    parts += ["<h2>Per-layer norms</h2>", _img(norms, "per-layer norms")]
    for i, run in enumerate(runs):
        parts.append(f"<h2>Per-layer statistics: {_esc(run.name)}, step {step}</h2>")
        parts.append(_stats_table(run, step))
        hist = plot_histograms(run, out / f"histograms_{i}.png", step=step)
        parts.append(_img(hist, f"{run.name} activation histograms"))
        parts.append(_img(plot_attention(run, out / f"attention_{i}.png"), "attention"))
    title = f"mlab inspect: {' vs '.join(r.name for r in runs)}"
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}'
        f"</title><style>{_CSS}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
