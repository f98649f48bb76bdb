"""``mlab analyze RUN_A RUN_B``: one self-contained HTML page comparing two runs.

Both runs must have evaluated the same examples (``mlab train`` saves each evaluation's
per-example losses in ``examples/step_N.npz``; the validation windows or images are fixed).
The page holds the learning curves, the paired tests on the last step both runs evaluated
(with the unpaired ones for contrast) and a verdict in plain words, the distribution of the
per-example differences, each run's worst examples and the examples where the runs disagree
most: text with each token's loss coloured, images in a captioned grid. Every picture is
inlined as a ``data:`` URI, so the one file can be mailed or attached to a pull request.
"""

from __future__ import annotations

import html
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from mlab.analysis.bootstrap import bootstrap_ci
from mlab.analysis.examples import largest_disagreements, worst_examples
from mlab.analysis.paired import paired_t_test, wilcoxon_signed_rank
from mlab.analysis.render import image_grid_png, png_data_uri, token_loss_html
from mlab.analysis.unpaired import mann_whitney_u, welch_t_test
from mlab.errors import ConfigError

__all__ = ["Comparison", "common_step", "compare_losses", "verdict", "write_report"]


@dataclass
class Comparison:
    """Two models' losses on the same ``n`` examples, and the tests on them (A minus B)."""

    n: int
    mean_a: float
    mean_b: float
    ci: tuple[float, float]  # bootstrap CI of mean(a - b)
    confidence: float
    paired_t: tuple[float, float]
    wilcoxon: tuple[float, float]
    welch: tuple[float, float]
    mann_whitney: tuple[float, float]
    sd_diff: float

    @property
    def mean_diff(self) -> float:
        return self.mean_a - self.mean_b


def compare_losses(
    a: np.ndarray, b: np.ndarray, confidence: float = 0.95, seed: int = 0
) -> Comparison:
    """Every test of :mod:`mlab.analysis` on per-example losses ``a`` and ``b``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return Comparison(
        n=len(a),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        ci=bootstrap_ci(a - b, confidence, seed=seed, method="BCa"),
        confidence=confidence,
        paired_t=paired_t_test(a, b),
        wilcoxon=wilcoxon_signed_rank(a, b),
        welch=welch_t_test(a, b),
        mann_whitney=mann_whitney_u(a, b),
        sd_diff=float((a - b).std(ddof=1)),
    )


def _p(p: float) -> str:
    return "p = nan" if math.isnan(p) else f"p = {p:.2g}" if p >= 1e-4 else "p < 0.0001"


def verdict(c: Comparison, name_a: str = "A", name_b: str = "B", alpha: float = 0.05) -> str:
    """The comparison in plain words: which run has the lower loss, by how much, whether the
    paired tests call it real at level ``alpha``, and what the unpaired test would have said."""
    lower, higher = (name_b, name_a) if c.mean_diff > 0 else (name_a, name_b)
    low, high = c.ci
    size = (
        f"{lower}'s mean loss is lower than {higher}'s by {abs(c.mean_diff):.4f} per example "
        f"(over {c.n} examples; {c.confidence:.0%} bootstrap interval of {name_a} minus "
        f"{name_b}: {low:.4f} to {high:.4f})."
    )
    p_t, p_w = c.paired_t[1], c.wilcoxon[1]
    if p_t < alpha and p_w < alpha:
        decided = (
            f"The paired t-test ({_p(p_t)}) and the Wilcoxon signed-rank test ({_p(p_w)}) "
            f"agree: the difference is real at the {alpha:.0%} level."
        )
    elif p_t >= alpha and p_w >= alpha:
        z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(0.8)
        need = math.ceil((z * c.sd_diff / abs(c.mean_diff)) ** 2) if c.mean_diff else None
        more = f" A difference this size would need about {need} examples to show (80% power)."
        decided = (
            f"Neither the paired t-test ({_p(p_t)}) nor the Wilcoxon test ({_p(p_w)}) finds a "
            f"difference at the {alpha:.0%} level: no evidence either run is better."
            + (more if need else "")
        )
    else:
        decided = (
            f"The tests disagree (paired t: {_p(p_t)}, Wilcoxon: {_p(p_w)}): a few extreme "
            "examples drive the mean; look at them below before deciding."
        )
    p_welch = c.welch[1]
    contrast = f" Ignoring the pairing, Welch's t-test gives {_p(p_welch)}" + (
        ": the variation between examples would have hidden the difference."
        if p_welch >= alpha and p_t < alpha
        else "."
    )
    return f"{size} {decided}{contrast}"


def _examples(run_dir: Path) -> dict[int, Path]:
    from mlab.train.metrics import list_eval_examples

    return dict(list_eval_examples(run_dir))


def common_step(run_a: str | Path, run_b: str | Path, step: int | None = None) -> int:
    """The last step at which both runs saved per-example losses (or check ``step``)."""
    a, b = _examples(Path(run_a)), _examples(Path(run_b))
    both = sorted(a.keys() & b.keys())
    if step is not None:
        if step not in both:
            raise ConfigError(f"step {step} is not evaluated in both runs: common steps {both}")
        return step
    if not both:
        raise ConfigError(
            f"{run_a} ({sorted(a)}) and {run_b} ({sorted(b)}) share no evaluated step with "
            "per-example losses: train both with mlab train (which saves examples/step_N.npz) "
            "and the same eval_every"
        )
    return both[-1]


def _config_text(run_dir: Path) -> str:
    for name in ("operative_config.gin", "config.gin"):
        if (run_dir / name).is_file():
            return (run_dir / name).read_text()
    return ""


def _decoder(run_dir: Path) -> Any:
    """Token ids to characters, for the shipped Shakespeare corpus; None when unknown."""
    text = _config_text(run_dir)
    if "LanguageModelTask" not in text or re.search(r"LanguageModelTask\.train_file\s*=\s*'", text):
        return None
    try:
        from mlab.models.shakespeare import CharTokenizer, load_tiny_shakespeare

        return CharTokenizer(load_tiny_shakespeare())
    except Exception:  # no data here: the report shows token ids instead
        return None


def _validation_images(run_dir: Path) -> np.ndarray | None:
    match = re.search(r"ImageTask\.dataset\s*=\s*['\"](\w+)['\"]", _config_text(run_dir))
    try:
        from mlab.train.data import ImageTask

        task = ImageTask(dataset=match.group(1) if match else "digits", num_workers=0)
    except Exception:  # no data here: the report lists the examples without pictures
        return None
    images: np.ndarray = task.val_x[:, 0].numpy()
    return images


def _figure_uri(draw: Any, folder: Path, name: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = draw(plt)
    path = folder / name
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return png_data_uri(path)


def _diff_histogram(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> Any:
    def draw(plt: Any) -> Any:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
        axes[0].hist(a - b, bins=40, color="#4c72b0")
        axes[0].axvline(0, color="black", lw=1)
        axes[0].axvline(float((a - b).mean()), color="#c44e52", lw=2, label="mean")
        axes[0].set_xlabel(f"loss {names[0]} - loss {names[1]}, per example")
        axes[0].legend()
        axes[1].scatter(a, b, s=6, alpha=0.5)
        lim = [min(a.min(), b.min()), max(a.max(), b.max())]
        axes[1].plot(lim, lim, color="black", lw=1)
        axes[1].set_xlabel(f"loss {names[0]}")
        axes[1].set_ylabel(f"loss {names[1]}")
        fig.tight_layout()
        return fig

    return draw


def _text_rows(
    idx: list[int], runs: list[tuple[str, dict[str, np.ndarray]]], decoder: Any, vmax: float
) -> str:
    rows = []
    for i in idx:
        targets = runs[0][1]["targets"][i].tolist()
        chars = [decoder.decode([t]) for t in targets] if decoder else [f"{t} " for t in targets]
        cells = "".join(
            f"<div><b>{html.escape(name)}</b> loss {arrays['losses'][i]:.3f}<br>"
            f"{token_loss_html(chars, arrays['token_losses'][i], vmax)}</div>"
            for name, arrays in runs
        )
        rows.append(f'<div class="example"><div class="idx">#{i}</div>{cells}</div>')
    return "\n".join(rows)


def _image_block(
    idx: list[int],
    runs: list[tuple[str, dict[str, np.ndarray]]],
    images: np.ndarray | None,
    folder: Path,
    name: str,
) -> str:
    captions = []
    for i in idx:
        label = int(runs[0][1]["labels"][i])
        parts = [f"#{i} label {label}"]
        for run_name, arrays in runs:
            parts.append(
                f"{run_name[:10]}: {int(arrays['predictions'][i])} ({arrays['losses'][i]:.2f})"
            )
        captions.append("\n".join(parts))
    if images is None or not idx:
        return "<pre>" + html.escape("\n\n".join(captions)) + "</pre>"
    path = image_grid_png(images[idx], captions, folder / name)
    return f'<img src="{png_data_uri(path)}" alt="{html.escape(name)}">'


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222;
       padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.verdict { background: #f3f6fb; border-left: 4px solid #4c72b0; padding: 0.8em 1em; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f5f5f5; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; }
.example { display: grid; grid-template-columns: 4em 1fr 1fr; gap: 1em; margin: 0.6em 0;
           padding-bottom: 0.6em; border-bottom: 1px solid #eee; }
.tokens { font-family: ui-monospace, monospace; font-size: 0.85em; }
.idx { color: #888; }
"""


def write_report(
    run_a: str | Path,
    run_b: str | Path,
    out: str | Path,
    step: int | None = None,
    k: int = 6,
    confidence: float = 0.95,
) -> Path:
    """Compare two runs at ``step`` (default: the last both evaluated) and write the HTML
    report to ``out``; return its path."""
    from mlab.train.metrics import read_eval_examples
    from mlab.train.runs import plot_runs

    run_a, run_b = Path(run_a), Path(run_b)
    names = (run_a.name, run_b.name)
    if names[0] == names[1]:
        names = (str(run_a), str(run_b))
    step = common_step(run_a, run_b, step)
    arrays = [read_eval_examples(_examples(r)[step]) for r in (run_a, run_b)]
    la, lb = arrays[0]["losses"], arrays[1]["losses"]
    if la.shape != lb.shape or any(
        not np.array_equal(arrays[0][key], arrays[1][key])
        for key in ("targets", "labels")
        if key in arrays[0] and key in arrays[1]
    ):
        raise ConfigError(
            f"{run_a} and {run_b} evaluated different examples at step {step}: compare runs of "
            "one task with the same validation settings"
        )
    c = compare_losses(la, lb, confidence)
    runs = list(zip(names, arrays, strict=True))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        curves = png_data_uri(plot_runs([run_a, run_b], folder / "curves.png"))
        hist = _figure_uri(_diff_histogram(la, lb, names), folder, "diff.png")
        if "token_losses" in arrays[0]:
            decoder = _decoder(run_a)
            vmax = float(max(a["token_losses"].max() for a in arrays))
            worst = "".join(
                f"<h3>{html.escape(n)}'s worst</h3>"
                + _text_rows(worst_examples(a["losses"], k), runs, decoder, vmax)
                for n, a in runs
            )
            disagree = _text_rows(largest_disagreements(la, lb, k), runs, decoder, vmax)
            unit = "validation windows (the mean loss of each window's tokens)"
        else:
            images = _validation_images(run_a)
            worst = "".join(
                f"<h3>{html.escape(n)}'s worst</h3>"
                + _image_block(
                    worst_examples(a["losses"], 2 * k), runs, images, folder, f"w{j}.png"
                )
                for j, (n, a) in enumerate(runs)
            )
            disagree = _image_block(
                largest_disagreements(la, lb, 2 * k), runs, images, folder, "dis.png"
            )
            unit = "validation images"
    rows = [
        ("paired t-test", "t", c.paired_t),
        ("Wilcoxon signed-rank", "min(W+, W-)", c.wilcoxon),
        ("Welch's t-test (unpaired)", "t", c.welch),
        ("Mann-Whitney U (unpaired)", "U", c.mann_whitney),
    ]
    table = "".join(
        f"<tr><td>{name}</td><td>{stat_name} = {stat:.4g}</td><td>{_p(p)}</td></tr>"
        for name, stat_name, (stat, p) in rows
    )
    a_name, b_name = (html.escape(n) for n in names)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>mlab analyze: {a_name} vs {b_name}</title><style>{_CSS}</style></head><body>
<h1>{a_name} (A) vs {b_name} (B)</h1>
<p>Step {step}; {c.n} {unit}, the same in both runs. Runs: <code>{html.escape(str(run_a))}</code>,
<code>{html.escape(str(run_b))}</code>.</p>
<p class="verdict">{html.escape(verdict(c, names[0], names[1]))}</p>
<h2>Learning curves</h2><img src="{curves}" alt="learning curves">
<h2>Tests</h2>
<table><tr><th></th><th>A</th><th>B</th><th>A - B</th></tr>
<tr><td>mean loss</td><td>{c.mean_a:.4f}</td><td>{c.mean_b:.4f}</td><td>{c.mean_diff:.4f}</td></tr>
<tr><td>{c.confidence:.0%} bootstrap CI (BCa)</td><td></td><td></td>
<td>{c.ci[0]:.4f} to {c.ci[1]:.4f}</td></tr></table>
<table><tr><th>test</th><th>statistic</th><th>p-value (two-sided)</th></tr>{table}</table>
<p>The paired tests work on each example's difference, in which the example's own difficulty
cancels; the unpaired ones treat the two lists as independent samples and keep that
variation in their denominator.</p>
<h2>Per-example differences</h2><img src="{hist}" alt="differences">
<h2>Worst examples</h2>{worst}
<h2>Where the runs disagree most</h2>{disagree}
</body></html>
"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
