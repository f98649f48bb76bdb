"""What a study's runs say: the numbers each kind of study is about, a verdict in words with its
uncertainty, and a figure.

- ``size`` / ``data``: ``L = a * x**-alpha + c`` fitted to the final (size) or best (data)
  validation loss against non-embedding parameters or training tokens, 95% bootstrap intervals
  over the runs, and an extrapolation check: fit without the largest ``holdout`` sizes (every
  seed at them), predict them, report the error.
- ``factor``: each value of one factor (dropout, weight decay, ...) against the baseline value,
  on the same validation windows: the mean per-window difference of the final validation
  loss, a paired bootstrap 95% interval and a paired t-test (seeds averaged first).
  With several seeds, also per seed (the same seed on both sides): the mean difference, its
  t interval over seeds and the paired t-test over seeds, which counts the seeds' noise that
  the per-window interval does not. Image runs add the same for the validation accuracy.
- ``batch``: steps and tokens until the validation loss first reaches a target, per batch size
  and learning-rate rule, and McCandlish et al.'s critical batch size fitted per rule.
- ``early_stopping``: the day's early-stopping rule (:func:`mlab.scaling.regularisation.
  early_stopping`) applied to each run's validation curve (runs trained to the end) for each
  ``patience`` in ``[early_stopping]``: where it stops, the steps it saves, and what the model
  it keeps (the best evaluation so far) costs or gains against the model at the end, per
  example (seeds averaged) and per seed.
"""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlab.scaling.batch import critical_batch_size, steps_to_target
from mlab.scaling.compute import gpt_parameter_count, gpt_training_flops
from mlab.scaling.laws import (
    bootstrap_power_law,
    fit_power_law,
    line_fit,
    percentile_interval,
)
from mlab.scaling.studies import Run, Study

__all__ = ["analyse", "collect", "paired_difference", "seed_difference"]

ARRAYS = ("window_losses", "correct", "example_files")  # per run, kept out of summary.json


def _setting(text: str, key: str) -> Any:
    found = re.findall(rf"^{re.escape(key)}\s*=\s*(.+?)\s*(?:#.*)?$", text, re.MULTILINE)
    if not found:
        return None
    try:
        return ast.literal_eval(found[-1])
    except (ValueError, SyntaxError):
        return found[-1]


def collect(runs: list[tuple[Run, Path]]) -> list[dict[str, Any]]:
    """Each finished run's settings, validation curve, compute and per-window losses."""
    from mlab.train.metrics import read_metrics

    out = []
    for run, folder in runs:
        metrics_file = folder / "metrics.jsonl"
        if not metrics_file.is_file():
            continue
        text = (folder / "operative_config.gin").read_text()
        get = {
            k: _setting(text, k)
            for k in (
                "gpt.n_layer",
                "gpt.n_embd",
                "gpt.vocab_size",
                "gpt.block_size",
                "LanguageModelTask.batch_size",
                "LanguageModelTask.block_size",
                "ImageTask.batch_size",
                "train.grad_accum",
            )
        }
        records = read_metrics(metrics_file)
        evals = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
        if not evals:
            continue
        steps = max(r["step"] for r in records)
        lm = get["gpt.n_embd"] is not None
        batch = get["LanguageModelTask.batch_size" if lm else "ImageTask.batch_size"] or 1
        per_example = get["LanguageModelTask.block_size"] if lm else 1
        tokens = steps * batch * per_example * (get["train.grad_accum"] or 1)
        record: dict[str, Any] = {
            "name": run.name,
            "params": run.params,
            "eval_steps": [s for s, _ in evals],
            "val_losses": [v for _, v in evals],
            "train_steps": [r["step"] for r in records if "loss" in r],
            "train_losses": [r["loss"] for r in records if "loss" in r],
            "final_val_loss": evals[-1][1],
            "best_val_loss": min(v for _, v in evals),
            "steps": steps,
            "batch_size": batch,
            "tokens": tokens,  # training examples for images
        }
        if lm:
            n_layer, d = get["gpt.n_layer"], get["gpt.n_embd"]
            vocab, block = get["gpt.vocab_size"], get["LanguageModelTask.block_size"]
            record["n_params"] = gpt_parameter_count(
                n_layer, d, vocab, get["gpt.block_size"], False
            )
            record["flops"] = gpt_training_flops(n_layer, d, vocab, block, tokens)
        accuracy = [r["val_accuracy"] for r in records if "val_accuracy" in r]
        if len(accuracy) == len(evals):
            record["val_accuracies"] = accuracy
            record["final_val_accuracy"] = accuracy[-1]
        files = {int(f.stem.removeprefix("step_")): f for f in (folder / "examples").glob("*.npz")}
        if files:
            record["example_files"] = files
            record.update(_example_arrays(files[max(files)]))
        out.append(record)
    return out


def _example_arrays(path: Path) -> dict[str, np.ndarray]:
    """One evaluation's per-example losses and, for classifiers, 0/1 correctness."""
    with np.load(path) as data:
        out = {"window_losses": data["losses"].astype(np.float64)}
        if "predictions" in data and "labels" in data:
            out["correct"] = (data["predictions"] == data["labels"]).astype(np.float64)
    return out


def _seed(params: dict[str, Any]) -> Any:
    return params.get("seed", params.get("train.seed", 0))


def seed_difference(a: list[float], b: list[float]) -> dict[str, Any]:
    """Per-seed differences ``a[i] - b[i]`` (the same seed on both sides): their mean, the 95%
    t interval over seeds and the paired t-test's p-value (w3d3's
    :func:`mlab.analysis.paired_t_test`); ``nan`` for both with fewer than two seeds."""
    from scipy import stats

    from mlab.analysis.paired import paired_t_test

    diff = np.asarray(a, float) - np.asarray(b, float)
    out: dict[str, Any] = {"mean": float(diff.mean()), "by_seed": diff.tolist(), "n": len(diff)}
    if len(diff) < 2:
        return out | {"low": math.nan, "high": math.nan, "p": math.nan}
    half = float(stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff)))
    _, p = paired_t_test(np.asarray(a, float), np.asarray(b, float))
    return out | {"low": out["mean"] - half, "high": out["mean"] + half, "p": p}


def paired_difference(
    a: np.ndarray, b: np.ndarray, n_boot: int = 9999, seed: int = 0
) -> dict[str, float]:
    """``mean(a - b)`` over paired examples, its 95% bootstrap percentile interval and the
    paired t-test's p-value: w3d3's :func:`mlab.analysis.bootstrap_ci` and
    :func:`mlab.analysis.paired_t_test` (equal to ``scipy.stats``)."""
    from mlab.analysis.bootstrap import bootstrap_ci
    from mlab.analysis.paired import paired_differences, paired_t_test

    diff = paired_differences(a, b)
    low, high = bootstrap_ci(diff, 0.95, n_boot, seed)
    _, p = paired_t_test(a, b)
    return {"mean": float(diff.mean()), "low": low, "high": high, "p": p, "n": len(diff)}


def _fit_summary(x: list[float], y: list[float], holdout: int, n_boot: int) -> dict[str, Any]:
    n, loss = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    fit = fit_power_law(n, loss)
    boots = bootstrap_power_law(n, loss, n_boot, torch.Generator().manual_seed(0))
    out: dict[str, Any] = {
        "a": fit.a,
        "alpha": fit.alpha,
        "c": fit.c,
        "alpha_ci": percentile_interval(boots[:, 1]),
        "c_ci": percentile_interval(boots[:, 2]),
    }
    # Kaplan et al.'s form, no floor: a straight line in log-log
    slope, intercept, _ = line_fit(n.log(), loss.log())
    out["kaplan"] = {"a": math.exp(float(intercept)), "alpha": -float(slope)}
    g = torch.Generator().manual_seed(1)
    slopes = []
    for _ in range(n_boot):  # the same resampling of runs for the line's slope
        i = torch.randint(len(n), (len(n),), generator=g)
        if len(torch.unique(n[i])) >= 2:
            slopes.append(-float(line_fit(n[i].log(), loss[i].log())[0]))
    if slopes:
        out["kaplan"]["alpha_ci"] = percentile_interval(torch.tensor(slopes))
    # hold out the largest ``holdout`` sizes, every run (seed) at them
    sizes = torch.unique(n)
    cut = sizes[-holdout] if 0 < holdout < len(sizes) else sizes.max() + 1
    kept, held = torch.nonzero(n < cut).squeeze(1), torch.nonzero(n >= cut).squeeze(1)
    if len(held) and len(torch.unique(n[kept])) >= 3:
        small = fit_power_law(n[kept], loss[kept])
        predicted = small.predict(n[held])
        k_slope, k_intercept, _ = line_fit(n[kept].log(), loss[kept].log())
        k_pred = (k_intercept + k_slope * n[held].log()).exp()
        out["kaplan"]["holdout_predicted"] = k_pred.tolist()
        out["kaplan"]["holdout_error"] = (k_pred - loss[held]).tolist()
        out["holdout"] = {
            "a": small.a,
            "alpha": small.alpha,
            "c": small.c,
            "x": n[held].tolist(),
            "predicted": predicted.tolist(),
            "actual": loss[held].tolist(),
            "error": (predicted - loss[held]).tolist(),
        }
    return out


def analyse(
    study: Study, results: list[dict[str, Any]], out_dir: Path, n_boot: int = 1000
) -> dict[str, Any]:
    """Analyse ``results`` (from :func:`collect`) as ``study.kind`` says; write
    ``summary.json`` and ``figure.png`` into ``out_dir``; return the summary, whose ``"lines"``
    say the conclusion in words."""
    from mlab.scaling.plots import plot_study

    summary: dict[str, Any] = {"study": study.name, "title": study.title, "kind": study.kind}
    runs = [{k: v for k, v in r.items() if k not in ARRAYS} for r in results]
    summary["runs"] = runs
    holdout = int(study.options.get("fit", {}).get("holdout", 1))
    lines: list[str] = []
    if study.kind in ("size", "data"):
        xkey, ykey = (
            ("n_params", "final_val_loss") if study.kind == "size" else ("data", "best_val_loss")
        )
        xs = [
            float(r["n_params"] if study.kind == "size" else r["params"]["data.tokens"])
            for r in results
        ]
        ys = [r[ykey] for r in results]
        what = "non-embedding parameters N" if study.kind == "size" else "training tokens D"
        if len(set(xs)) >= 3:
            fit = _fit_summary(xs, ys, holdout, n_boot)
            summary["fit"] = fit
            lo, hi = fit["alpha_ci"]
            lines.append(
                f"L = {fit['a']:.4g} * x^-{fit['alpha']:.3f} + {fit['c']:.3f} against {what}; "
                f"alpha 95% bootstrap interval [{lo:.3f}, {hi:.3f}] over {len(xs)} runs"
            )
            k = fit["kaplan"]
            ci = k.get("alpha_ci")
            lines.append(
                f"without a floor (Kaplan's form): L = {k['a']:.4g} * x^-{k['alpha']:.4f}"
                + (f"; alpha 95% bootstrap interval [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
            )
            if "holdout" in fit:
                h = fit["holdout"]
                for i, (x, p, a) in enumerate(
                    zip(h["x"], h["predicted"], h["actual"], strict=True)
                ):
                    kp = k["holdout_predicted"][i]
                    lines.append(
                        f"fit without x={x:.4g}: predicted {p:.4f} (no floor: {kp:.4f}), "
                        f"measured {a:.4f}; error {p - a:+.4f} ({100 * (p - a) / a:+.1f}%), "
                        f"no floor {kp - a:+.4f} ({100 * (kp - a) / a:+.1f}%)"
                    )
        else:
            lines.append(f"{len(set(xs))} distinct sizes: a power law needs at least 3")
        summary["xkey"] = xkey
    elif study.kind == "factor":
        lines += _factor(study, results, summary)
    elif study.kind == "batch":
        lines += _batch(study, results, summary)
    elif study.kind == "early_stopping":
        lines += _early_stopping(study, results, summary)
    summary["lines"] = lines
    out_dir.mkdir(parents=True, exist_ok=True)
    summary["figure"] = str(plot_study(summary, out_dir / "figure.png"))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _factor(study: Study, results: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    factor = study.options["factor"]
    name, baseline = factor["name"], factor["baseline"]
    groups: dict[Any, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(r["params"][name], []).append(r)
    table = []
    lines = []
    base = groups.get(baseline, [])
    for value in sorted(groups):
        rs = groups[value]
        row: dict[str, Any] = {
            "value": value,
            "seeds": len(rs),
            "final": float(np.mean([r["final_val_loss"] for r in rs])),
            "best": float(np.mean([r["best_val_loss"] for r in rs])),
            "final_by_seed": [r["final_val_loss"] for r in rs],
            "curve_steps": rs[0]["eval_steps"],
            "curve": np.mean([r["val_losses"] for r in rs], axis=0).tolist(),
            "train_steps": rs[0].get("train_steps", []),
            "train_curve": np.mean([r.get("train_losses", []) for r in rs], axis=0).tolist(),
        }
        if value != baseline and base and all("window_losses" in r for r in rs + base):
            mine = np.mean([r["window_losses"] for r in rs], axis=0)
            theirs = np.mean([r["window_losses"] for r in base], axis=0)
            row["vs_baseline"] = paired_difference(mine, theirs)
            d = row["vs_baseline"]
            unit = "images" if "correct" in rs[0] else "windows"
            lines.append(
                f"{name}={value}: final val loss {row['final']:.4f} vs "
                f"{row['final'] - d['mean']:.4f} at {baseline}; difference {d['mean']:+.4f}, "
                f"95% CI [{d['low']:+.4f}, "
                f"{d['high']:+.4f}] over {d['n']} {unit} (paired t-test p={d['p']:.2g}); "
                f"by seed {', '.join(f'{v:.4f}' for v in row['final_by_seed'])}"
            )
            lines += _by_seed(row, rs, base, "final_val_loss", "val loss")
            if all("correct" in r for r in rs + base):
                mine = np.mean([r["correct"] for r in rs], axis=0)
                theirs = np.mean([r["correct"] for r in base], axis=0)
                a = row["accuracy_vs_baseline"] = paired_difference(mine, theirs)
                lines.append(
                    f"  val accuracy {100 * mine.mean():.2f}% vs {100 * theirs.mean():.2f}%: "
                    f"{100 * a['mean']:+.2f} points, 95% CI [{100 * a['low']:+.2f}, "
                    f"{100 * a['high']:+.2f}] over {a['n']} images"
                )
                lines += _by_seed(row, rs, base, "final_val_accuracy", "accuracy", 100)
        else:
            lines.append(
                f"{name}={value}: final val loss {row['final']:.4f}, best {row['best']:.4f}"
            )
        table.append(row)
    summary["factor"] = {"name": name, "baseline": baseline, "table": table}
    return lines


def _by_seed(
    row: dict[str, Any],
    runs: list[dict[str, Any]],
    base: list[dict[str, Any]],
    key: str,
    what: str,
    scale: float = 1.0,
) -> list[str]:
    """The factor's effect on ``key`` per seed (seeds run on both sides), into ``row``."""
    mine = {_seed(r["params"]): r[key] for r in runs if key in r}
    theirs = {_seed(r["params"]): r[key] for r in base if key in r}
    common = sorted(set(mine) & set(theirs), key=str)
    if len(common) < 2:
        return []
    d = row[f"{key}_by_seed"] = seed_difference(
        [mine[s] for s in common], [theirs[s] for s in common]
    )
    return [
        f"  per seed ({len(common)} seeds), {what}: {scale * d['mean']:+.4g}, 95% t interval "
        f"[{scale * d['low']:+.4g}, {scale * d['high']:+.4g}] (paired t-test p={d['p']:.2g}); "
        f"by seed {', '.join(f'{scale * v:+.4g}' for v in d['by_seed'])}"
    ]


def _early_stopping(
    study: Study, results: list[dict[str, Any]], summary: dict[str, Any]
) -> list[str]:
    from mlab.scaling.regularisation import early_stopping

    options = study.options.get("early_stopping", {})
    patiences = [int(p) for p in options.get("patience", [1, 2, 3, 5])]
    min_delta = float(options.get("min_delta", 0.0))
    lines = []
    table = []
    runs = [r for r in results if "example_files" in r]
    if not runs:
        return ["no run saved its evaluations' examples: nothing to stop early"]
    end = [_example_arrays(r["example_files"][r["eval_steps"][-1]]) for r in runs]
    oracle = [int(np.argmin(r["val_losses"])) for r in runs]
    lines.append(
        f"{len(runs)} runs of {runs[0]['steps']} steps, evaluated every "
        f"{runs[0]['eval_steps'][0]}; best evaluation in hindsight at step "
        + ", ".join(str(r["eval_steps"][i]) for r, i in zip(runs, oracle, strict=True))
    )
    for patience in patiences:
        stops = [early_stopping(r["val_losses"], patience, min_delta) for r in runs]
        kept = [
            _example_arrays(r["example_files"][r["eval_steps"][best]])
            for r, (_, best) in zip(runs, stops, strict=True)
        ]
        stop_steps = [r["eval_steps"][stop] for r, (stop, _) in zip(runs, stops, strict=True)]
        best_steps = [r["eval_steps"][best] for r, (_, best) in zip(runs, stops, strict=True)]
        saved = float(np.mean([1 - s / r["steps"] for s, r in zip(stop_steps, runs, strict=True)]))
        mine = np.mean([k["window_losses"] for k in kept], axis=0)
        theirs = np.mean([e["window_losses"] for e in end], axis=0)
        row: dict[str, Any] = {
            "patience": patience,
            "stop_steps": stop_steps,
            "best_steps": best_steps,
            "saved": saved,
            "loss": float(mine.mean()),
            "end_loss": float(theirs.mean()),
            "vs_end": paired_difference(mine, theirs),
            "by_seed": seed_difference(
                [k["window_losses"].mean() for k in kept],
                [e["window_losses"].mean() for e in end],
            ),
        }
        d = row["vs_end"]
        stopped = [
            str(s) if s < r["eval_steps"][-1] else "(the end)"
            for s, r in zip(stop_steps, runs, strict=True)
        ]
        lines.append(
            f"patience {patience}: stops at step {', '.join(stopped)} "
            f"({100 * saved:.0f}% of the steps saved), keeps step "
            f"{', '.join(map(str, best_steps))}; its val loss {row['loss']:.4f} vs "
            f"{row['end_loss']:.4f} at the end: {d['mean']:+.4f}, 95% CI [{d['low']:+.4f}, "
            f"{d['high']:+.4f}] over {d['n']} examples; per seed t interval "
            f"[{row['by_seed']['low']:+.4f}, {row['by_seed']['high']:+.4f}]"
        )
        if all("correct" in k for k in kept + end):
            a = row["accuracy_vs_end"] = paired_difference(
                np.mean([k["correct"] for k in kept], axis=0),
                np.mean([e["correct"] for e in end], axis=0),
            )
            lines.append(
                f"  val accuracy {100 * a['mean']:+.2f} points against the end, 95% CI "
                f"[{100 * a['low']:+.2f}, {100 * a['high']:+.2f}]"
            )
        table.append(row)
    summary["early_stopping"] = {
        "table": table,
        "min_delta": min_delta,
        "curves": [
            {
                "name": r["name"],
                "steps": r["eval_steps"],
                "val": r["val_losses"],
                "train_steps": r.get("train_steps", []),
                "train": r.get("train_losses", []),
            }
            for r in runs
        ],
        "total_steps": runs[0]["steps"],
    }
    return lines


def _batch(study: Study, results: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    options = study.options["batch"]
    target = float(options["target"])
    table = []
    lines = []
    block = 1.0
    for r in results:
        s = steps_to_target(r["eval_steps"], r["val_losses"], target)
        block = r["tokens"] / max(r["steps"] * r["batch_size"], 1)
        table.append(
            {
                "batch": r["batch_size"],
                "rule": r["params"]["lr.rule"],
                "steps": s,
                "tokens": None if s is None else s * r["batch_size"] * block,
                "curve_steps": r["eval_steps"],
                "curve": r["val_losses"],
            }
        )
    fits = {}
    for rule in ("linear", "sqrt"):
        rows = [t for t in table if t["rule"] == rule and t["steps"] is not None]
        missing = [t["batch"] for t in table if t["rule"] == rule and t["steps"] is None]
        if missing:
            lines.append(f"{rule}: batch {missing} never reached {target}")
        if len({t["batch"] for t in rows}) >= 2:
            try:
                s_min, b_crit = critical_batch_size(
                    torch.tensor([float(t["batch"]) for t in rows]),
                    torch.tensor([t["steps"] for t in rows]),
                )
            except ValueError as err:
                lines.append(f"{rule}: no critical batch size: {err}")
                continue
            fits[rule] = {"s_min": s_min, "b_crit": b_crit}
            lines.append(
                f"{rule} lr scaling: steps to {target} = {s_min:.0f} * (1 + {b_crit:.1f} / B) "
                f"(critical batch {b_crit:.1f} windows, {b_crit * block:.0f} tokens)"
            )
    summary["batch"] = {"target": target, "table": table, "fits": fits}
    return lines
