"""mlab.scaling against the real thing: the power-law fit against scipy's curve_fit, parameter
and FLOP counts against our GPT and torch's FlopCounterMode, label smoothing against
F.cross_entropy, the early-stopping rule against w3d1's training loop stopping a run; studies:
the shipped study files, their analysis on made-up results, and a tiny study run end to end on
the SQLite job queue with ``mlab study``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import curve_fit
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

pytest.importorskip("gin", reason="the train extra: pip install -e '.[train]'")

from mlab.cli import app
from mlab.errors import ConfigError
from mlab.scaling.analyse import analyse, paired_difference
from mlab.scaling.batch import steps_to_target
from mlab.scaling.compute import gpt_parameter_count, gpt_training_flops, kaplan_flops
from mlab.scaling.laws import bootstrap_power_law, fit_power_law, percentile_interval
from mlab.scaling.regularisation import early_stopping, label_smoothed_cross_entropy
from mlab.scaling.studies import Study, load_study, study_names
from mlab.train.builders import gpt
from mlab.train.loop import train


@pytest.mark.parametrize("seed", range(5))
def test_fit_matches_curve_fit_on_random_noisy_laws(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = float(torch.empty(1).uniform_(1, 100, generator=g))
    alpha = float(torch.empty(1).uniform_(0.05, 1.0, generator=g))
    c = float(torch.empty(1).uniform_(0, 3, generator=g))
    n = torch.logspace(3, 7, 8, dtype=torch.float64)
    loss = a * n**-alpha + c
    loss = loss + 0.002 * loss.std() * torch.randn(8, generator=g, dtype=torch.float64)
    fit = fit_power_law(n, loss)
    (ra, ralpha, rc), _ = curve_fit(
        lambda x, a, al, c: a * x**-al + c, n.numpy(), loss.numpy(), p0=[a, alpha, c], maxfev=20000
    )
    want_sse = float(((loss.numpy() - (ra * n.numpy() ** -ralpha + rc)) ** 2).sum())
    assert fit.sse <= want_sse * (1 + 1e-6) + 1e-18
    assert fit.alpha == pytest.approx(ralpha, rel=1e-4)
    assert fit.c == pytest.approx(rc, rel=1e-4, abs=1e-6)


def test_bootstrap_interval_is_numpy_percentile_and_covers_the_truth() -> None:
    g = torch.Generator().manual_seed(0)
    n = torch.tensor([1e3, 3e3, 1e4, 3e4, 1e5, 3e5], dtype=torch.float64).repeat(2)
    loss = 20 * n**-0.3 + 1.0 + 0.01 * torch.randn(len(n), generator=g, dtype=torch.float64)
    rows = bootstrap_power_law(n, loss, 200, g)
    low, high = percentile_interval(rows[:, 1])
    assert (low, high) == pytest.approx(tuple(np.percentile(rows[:, 1].numpy(), [2.5, 97.5])))
    assert low < 0.3 < high and high - low < 0.3
    with pytest.raises(ValueError, match="level"):
        percentile_interval(rows[:, 1], 1.5)


def test_counts_match_our_gpt_and_the_flop_counter() -> None:
    model = gpt(vocab_size=65, block_size=16, n_layer=2, n_head=4, n_embd=32)
    assert gpt_parameter_count(2, 32, 65, 16) == sum(p.numel() for p in model.parameters())
    x = torch.randint(65, (3, 16), generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        logits = out.logits if hasattr(out, "logits") else out
        (logits * torch.randn(logits.shape)).sum().backward()
    assert gpt_training_flops(2, 32, 65, 16, 48) == counter.get_total_flops()
    # Kaplan's 6ND (N without embeddings) leaves out the head and attention: here a lot
    n = gpt_parameter_count(2, 32, 65, 16, embeddings=False)
    assert 0.5 < kaplan_flops(n, 48) / counter.get_total_flops() < 0.9


def test_label_smoothing_matches_torch_on_a_flattened_sequence() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=g)
    targets = torch.randint(7, (2, 5), generator=g)
    targets[0, 1] = -100
    want = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), label_smoothing=0.1)
    got = label_smoothed_cross_entropy(logits.flatten(0, 1), targets.flatten(), 0.1)
    torch.testing.assert_close(got, want)


class _ScriptedTask:
    """A task whose validation losses are given in advance (the model is irrelevant)."""

    examples_per_batch = 2

    def __init__(self, losses: list[float]) -> None:
        self.losses, self.evals, self.index = losses, 0, 0

    def position(self) -> dict[str, int]:
        return {"index": self.index, "evals": self.evals}

    def set_position(self, position: dict[str, int]) -> None:
        self.index, self.evals = position["index"], position["evals"]

    def next_batch(self) -> tuple[Tensor, Tensor]:
        self.index += 1
        return torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)

    def loss(self, model: Any, batch: Any) -> Tensor:
        return F.cross_entropy(model(batch[0]), batch[1])

    def evaluate(self, model: Any, device: Any) -> dict[str, float]:
        self.evals += 1
        return {"val_loss": self.losses[self.evals - 1]}


@pytest.mark.parametrize(
    "losses, patience",
    [
        ([3.0, 2.0, 2.5, 1.9, 2.0, 2.1, 1.0, 0.5], 2),
        ([3.0, 2.0, 2.0, 2.0, 1.0, 0.9], 2),
        ([5.0, 4.0, 3.0, 3.5, 3.5, 3.5, 2.0], 3),
    ],
)
def test_the_early_stopping_rule_is_the_training_loops(
    tmp_path: Path, losses: list[float], patience: int
) -> None:
    result = train(
        tmp_path,
        lambda: torch.nn.Linear(3, 2),
        lambda: _ScriptedTask(losses),
        max_steps=len(losses),
        eval_every=1,
        patience=patience,
        checkpoint_every=100,
        layer_stats_every=0,
        progress=False,
        tensorboard=False,
        say=lambda _: None,
    )
    stop, _ = early_stopping(losses, patience)
    assert result.step == stop + 1


def test_steps_to_target_interpolates() -> None:
    assert steps_to_target([10, 20, 30], [3.0, 2.0, 1.0], 1.5) == pytest.approx(25.0)
    assert steps_to_target([10, 20], [1.0, 0.5], 2.0) == 10.0
    assert steps_to_target([10, 20], [3.0, 2.5], 2.0) is None


def test_shipped_studies_load_full_and_tiny(tmp_path: Path) -> None:
    assert {"gpt_batch", "gpt_data", "gpt_dropout", "gpt_size"} <= set(study_names())
    for name in study_names():
        full, tiny = load_study(name), load_study(name, tiny=True)
        assert 0 < len(tiny.runs(tmp_path)) <= min(6, len(full.runs(tmp_path)) + 3)
    batch = load_study("gpt_batch").runs(tmp_path)
    lrs = {tuple(r.params.values()): r.bindings for r in batch}
    assert "AdamW.lr = 0.008" in lrs[(64, "linear")] and "AdamW.lr = 0.004" in lrs[(64, "sqrt")]


def test_a_bad_study_file_says_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'title = "x"\nkind = "size"\nconfig = "shakespeare_char"\n[space]\n"gpt.n_embdd" = [8]\n'
    )
    with pytest.raises(ConfigError, match="n_embd"):
        load_study(str(bad))
    bad.write_text('title = "x"\nkind = "sizes"\nconfig = "shakespeare_char"\n[space]\n')
    with pytest.raises(ConfigError, match="kind"):
        load_study(str(bad))
    with pytest.raises(ConfigError, match="gpt_size"):
        load_study("gpt_sise")


def _study(kind: str, **options: Any) -> Study:
    return Study("made-up", "made-up", kind, "shakespeare_char", [], {}, options)


def _record(name: str, params: dict[str, Any], curve: list[float], **extra: Any) -> dict[str, Any]:
    steps = [20 * (i + 1) for i in range(len(curve))]
    return {
        "name": name,
        "params": params,
        "eval_steps": steps,
        "val_losses": curve,
        "final_val_loss": curve[-1],
        "best_val_loss": min(curve),
        "steps": steps[-1],
        "tokens": steps[-1] * 64 * extra.get("batch_size", 16),
        "n_params": 0,
        "flops": 0,
        "batch_size": 16,
    } | extra


def test_size_analysis_fits_and_checks_the_extrapolation(tmp_path: Path) -> None:
    sizes = [1e3, 3e3, 1e4, 3e4, 1e5, 3e5]
    results = [_record(f"n{i}", {}, [5 * n**-0.3 + 1.5], n_params=n) for i, n in enumerate(sizes)]
    summary = analyse(_study("size", fit={"holdout": 1}), results, tmp_path, n_boot=50)
    assert summary["fit"]["alpha"] == pytest.approx(0.3, rel=1e-5)
    assert abs(summary["fit"]["holdout"]["error"][0]) < 1e-6
    assert Path(summary["figure"]).stat().st_size > 10_000
    assert json.loads((tmp_path / "summary.json").read_text())["lines"] == summary["lines"]


def test_factor_analysis_pairs_windows_and_matches_scipy(tmp_path: Path) -> None:
    from scipy import stats

    g = np.random.default_rng(0)
    base = g.gamma(4, 0.5, 200)
    better = base - 0.05 + g.normal(0, 0.02, 200)
    results = [
        _record(f"d{v}s{s}", {"gpt.dropout": v, "train.seed": s}, [3.0, w.mean()], window_losses=w)
        for v, w in ((0.0, base), (0.2, better))
        for s in (0, 1)
    ]
    study = _study("factor", factor={"name": "gpt.dropout", "baseline": 0.0})
    summary = analyse(study, results, tmp_path)
    d = summary["factor"]["table"][1]["vs_baseline"]
    assert d["mean"] == pytest.approx(float((better - base).mean()))
    assert d["low"] < d["mean"] < d["high"] < 0
    assert d["p"] == pytest.approx(stats.ttest_rel(better, base).pvalue)
    ci = stats.bootstrap((better - base,), np.mean, n_resamples=9999, rng=0, method="percentile")
    assert (d["low"], d["high"]) == pytest.approx(
        (ci.confidence_interval.low, ci.confidence_interval.high)
    )
    assert paired_difference(base, base)["mean"] == 0.0


def test_batch_analysis_finds_the_critical_batch(tmp_path: Path) -> None:
    results = []
    for rule in ("linear", "sqrt"):
        for b in (4, 8, 16, 32, 64):
            s = 100 * (1 + 16 / b)  # S_min = 100, B_crit = 16
            curve = [3.0 - 1.0 * (20 * (i + 1)) / s for i in range(40)]  # reaches 2.0 at s
            results.append(_record(f"{rule}{b}", {"lr.rule": rule}, curve, batch_size=b))
    summary = analyse(_study("batch", batch={"target": 2.0}), results, tmp_path)
    fit = summary["batch"]["fits"]["linear"]
    assert fit["s_min"] == pytest.approx(100, rel=1e-6) and fit["b_crit"] == pytest.approx(16)


def test_mlab_study_runs_a_tiny_study_on_the_queue_and_reruns_nothing(tmp_path: Path) -> None:
    args = ["study", "gpt_size", "--tiny", "--runs-dir", str(tmp_path)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    said = " ".join(first.output.split())  # rich wraps lines at the terminal's width
    assert "4 of 4 runs" in said and "alpha" in said
    folder = tmp_path / "gpt_size-tiny"
    assert (folder / "queue.db").is_file() and (folder / "figure.png").is_file()
    summary = json.loads((folder / "summary.json").read_text())
    assert len(summary["runs"]) == 4 and summary["runs"][0]["steps"] == 30
    again = CliRunner().invoke(app, [*args, "--figure", str(tmp_path / "copy.png")])
    assert again.exit_code == 0, again.output
    assert "0 new jobs" in " ".join(again.output.split()) and (tmp_path / "copy.png").is_file()
