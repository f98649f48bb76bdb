"""w3d4's regularisers as options of w3d1's training loop, and the studies that measure them.

Label smoothing (``ImageTask.label_smoothing`` / ``LanguageModelTask.label_smoothing``) against
``F.cross_entropy(label_smoothing=...)`` and the formula written out, with evaluation left
plain; data augmentation (``ImageTask.augment``: crop after padding, horizontal flip) against
hand-computed crops and flips, drawn by batch position so a resumed run equals an uninterrupted
one; bad values named. Studies: the Fashion-MNIST studies share their baseline runs, the
early-stopping and per-seed analyses against the rule and scipy, tiny studies end to end on
SQLite and on a real redis-server with two workers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

pytest.importorskip("gin", reason="the train extra: pip install -e '.[train]'")

from mlab.cli import app
from mlab.errors import ConfigError, ShapeError
from mlab.scaling.analyse import analyse, seed_difference
from mlab.scaling.regularisation import early_stopping
from mlab.scaling.runner import study_jobs
from mlab.scaling.studies import Study, load_study
from mlab.train.builders import mlp
from mlab.train.checkpoint import list_checkpoints, read_checkpoint
from mlab.train.config import CONFIGURABLES, check_binding
from mlab.train.data import (
    ImageTask,
    LanguageModelTask,
    augment_images,
    crop_images,
    flip_images,
    write_token_file,
)
from mlab.train.loop import train

CPU = torch.device("cpu")


def _digits(**options: Any) -> ImageTask:
    return ImageTask("digits", batch_size=32, num_workers=0, seed=1, **options)


# ----------------------------------------------------------------------------------------------
# Label smoothing


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.2])
def test_image_label_smoothing_is_torchs_for_training_only(eps: float) -> None:
    torch.manual_seed(0)
    net = mlp(64, (16,), 10)
    task, plain = _digits(label_smoothing=eps), _digits()
    x, y = task.next_batch()
    logits = net(x)
    logp = torch.log_softmax(logits, -1)
    by_hand = ((1 - eps) * -logp.gather(1, y[:, None]).squeeze(1) - eps * logp.mean(-1)).mean()
    got = task.loss(net, (x, y))
    torch.testing.assert_close(got, F.cross_entropy(logits, y, label_smoothing=eps))
    torch.testing.assert_close(got, by_hand)
    metrics, examples = task.evaluate_examples(net, CPU)
    want, want_examples = plain.evaluate_examples(net, CPU)
    assert metrics == want  # evaluation is plain cross-entropy whatever eps is
    np.testing.assert_array_equal(examples["losses"], want_examples["losses"])
    with torch.no_grad():
        val = F.cross_entropy(net(task.val_x), task.val_y)
    assert metrics["val_loss"] == pytest.approx(float(val), rel=1e-5)


def test_language_model_label_smoothing_is_torchs_on_the_flattened_sequence(
    tmp_path: Path,
) -> None:
    from mlab.train.builders import gpt

    ids = torch.randint(0, 16, (600,), generator=torch.Generator().manual_seed(0)).numpy()
    write_token_file(tmp_path / "t.npy", ids[:500])
    write_token_file(tmp_path / "v.npy", ids[500:])
    files = {"train_file": str(tmp_path / "t.npy"), "val_file": str(tmp_path / "v.npy")}
    task = LanguageModelTask(4, 8, eval_batches=2, label_smoothing=0.1, **files)
    plain = LanguageModelTask(4, 8, eval_batches=2, **files)
    torch.manual_seed(0)
    net = gpt(16, 8, 1, 2, 16)
    x, y = task.next_batch()
    logits = net(x).logits
    want = F.cross_entropy(logits.reshape(-1, 16), y.reshape(-1), label_smoothing=0.1)
    torch.testing.assert_close(task.loss(net, (x, y)), want)
    assert task.loss(net, (x, y)) > plain.loss(net, (x, y))  # smoothing never lowers it here
    assert task.evaluate(net, CPU) == plain.evaluate(net, CPU)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"label_smoothing": -0.1}, r"label_smoothing=-0.1: use a weight in \[0, 1\)"),
        ({"label_smoothing": 1.0}, r"label_smoothing=1.0"),
        ({"label_smoothing": "0.1"}, r"label_smoothing=0.1"),
        ({"crop_padding": -1}, r"crop_padding=-1: a number of pixels >= 0"),
        ({"crop_padding": 1.5}, r"crop_padding=1.5"),
        ({"augment": "yes"}, r"augment='yes'.*True or False"),
        ({"train_examples": 0}, r"train_examples=0: digits has 1437; use 1 to 1437 or None"),
        ({"val_examples": 10**6}, r"val_examples=1000000: digits has 360"),
    ],
)
def test_bad_values_are_named_with_the_fix(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _digits(**options)


def test_the_new_bindings_are_bindable_and_a_misspelling_is_named() -> None:
    for param in ("label_smoothing", "augment", "crop_padding", "flip", "train_examples"):
        assert check_binding(f"ImageTask.{param} = 1", CONFIGURABLES) == ("ImageTask", param)
    assert check_binding("LanguageModelTask.label_smoothing = 0.1", CONFIGURABLES)
    with pytest.raises(ConfigError, match="did you mean 'label_smoothing'"):
        check_binding("ImageTask.label_smothing = 0.1", CONFIGURABLES)


def test_subsets_are_the_first_images() -> None:
    full, small = _digits(), _digits(train_examples=100, val_examples=50)
    assert len(small.train_set) == 100 and len(small.val_y) == 50
    assert torch.equal(small.train_set.tensors[0], full.train_set.tensors[0][:100])
    assert torch.equal(small.val_x, full.val_x[:50])


# ----------------------------------------------------------------------------------------------
# Augmentation: by hand


IMAGE = torch.arange(1.0, 10.0).view(1, 1, 3, 3)  # rows 1 2 3 / 4 5 6 / 7 8 9


@pytest.mark.parametrize(
    ("top", "left", "want"),
    [
        (1, 1, [[1, 2, 3], [4, 5, 6], [7, 8, 9]]),  # the centre of the padded image: unchanged
        (0, 0, [[0, 0, 0], [0, 1, 2], [0, 4, 5]]),  # moved down and right
        (2, 2, [[5, 6, 0], [8, 9, 0], [0, 0, 0]]),  # moved up and left
        (0, 2, [[0, 0, 0], [2, 3, 0], [5, 6, 0]]),
        (2, 1, [[4, 5, 6], [7, 8, 9], [0, 0, 0]]),
    ],
)
def test_crop_after_padding_by_hand(top: int, left: int, want: list[list[int]]) -> None:
    got = crop_images(IMAGE, 1, torch.tensor([top]), torch.tensor([left]))
    assert got.tolist() == [[want]]


def test_crop_moves_channels_together_and_each_image_by_its_own_offsets() -> None:
    x = torch.stack([IMAGE[0], 10 * IMAGE[0]]).repeat(1, 2, 1, 1)  # (2, 2, 3, 3)
    x[:, 1] += 100
    got = crop_images(x, 2, torch.tensor([0, 4]), torch.tensor([4, 2]))
    assert got.shape == x.shape
    # image 0 moved down 2 and left 2: only its pixel (0, 2) stays, at (2, 0); zeros elsewhere
    assert got[0, 0].tolist() == [[0, 0, 0], [0, 0, 0], [3, 0, 0]]
    assert got[0, 1].tolist() == [[0, 0, 0], [0, 0, 0], [103, 0, 0]]
    # image 1 moved up 2: its last row on top
    assert got[1, 0].tolist() == [[70, 80, 90], [0, 0, 0], [0, 0, 0]]
    with pytest.raises(ShapeError, match=r"\(batch, channels, h, w\)"):
        crop_images(IMAGE[0], 1, torch.tensor([0]), torch.tensor([0]))


def test_flip_mirrors_only_the_masked_images() -> None:
    x = torch.cat([IMAGE, IMAGE + 9])
    got = flip_images(x, torch.tensor([True, False]))
    assert got[0, 0].tolist() == [[3, 2, 1], [6, 5, 4], [9, 8, 7]]
    assert torch.equal(got[1], x[1])


def test_augmentation_draws_every_shift_and_flips_half() -> None:
    n = 4000
    x = torch.zeros(n, 1, 12, 12)
    x[:, 0, 5, 3] = 1.0  # a marker, away from the edges by more than the padding
    got = augment_images(x, torch.Generator().manual_seed(0), crop_padding=2, flip=True)
    assert torch.equal(got.sum((1, 2, 3)), torch.ones(n))  # the marker never falls off
    where = got[:, 0].flatten(1).argmax(1)
    rows, cols = where // 12, where % 12
    flipped = cols >= 6  # 3 + shift stays < 6; mirrored, 11 - (3 + shift) >= 6
    shift_r = rows - 5
    shift_c = torch.where(flipped, 11 - cols, cols) - 3
    assert set(shift_r.tolist()) == set(shift_c.tolist()) == {-2, -1, 0, 1, 2}
    counts = torch.bincount((shift_r + 2) * 5 + shift_c + 2, minlength=25).float()
    assert counts.min() > 100  # 160 expected for each of the 25 shifts
    assert abs(float(flipped.float().mean()) - 0.5) < 0.03  # 4.7 sigma
    same = augment_images(x, torch.Generator().manual_seed(0), crop_padding=2, flip=True)
    assert torch.equal(same, got)
    assert torch.equal(augment_images(x, torch.Generator(), crop_padding=0, flip=False), x)


def test_augmentation_is_for_training_batches_only_and_fixed_by_position() -> None:
    plain, task = _digits(), _digits(augment=True)
    batches = [task.next_batch() for _ in range(60)]  # 45 per epoch: two epochs
    plains = [plain.next_batch() for _ in range(60)]
    for (x, y), (px, py) in zip(batches, plains, strict=True):
        assert torch.equal(y, py) and not torch.equal(x, px)  # same order, new images
    task.set_position({"epoch": 1, "index": 3})  # as a resumed run does
    assert torch.equal(task.next_batch()[0], batches[45 + 3][0])
    torch.manual_seed(0)
    net = mlp(64, (16,), 10)
    assert task.evaluate(net, CPU) == plain.evaluate(net, CPU)


def test_a_resumed_run_with_augmentation_and_smoothing_equals_an_uninterrupted_one(
    tmp_path: Path,
) -> None:
    def run(folder: str, **kwargs: Any) -> dict[str, Any]:
        train(
            tmp_path / folder,
            model=lambda: mlp(64, (32,), 10, dropout=0.1),
            task=lambda: _digits(augment=True, label_smoothing=0.1, crop_padding=1),
            max_steps=60,
            eval_every=20,
            checkpoint_every=25,
            log_every=5,
            layer_stats_every=0,
            seed=3,
            device="cpu",
            progress=False,
            tensorboard=False,
            say=lambda _: None,
            **kwargs,
        )
        return read_checkpoint(list_checkpoints(tmp_path / folder)[-1][1])

    straight = run("straight")
    run("killed", until=37)  # the newest checkpoint is step 25, mid-epoch
    resumed = run("killed", resume=True)
    for name, tensor in straight["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    assert resumed["data"] == straight["data"] == {"epoch": 1, "index": 15}

    def lines(folder: str) -> list[dict[str, Any]]:
        text = (tmp_path / folder / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(t).items() if k != "throughput"} for t in text]

    assert lines("killed") == lines("straight")


# ----------------------------------------------------------------------------------------------
# Studies


FASHION = ["fashion_augmentation", "fashion_label_smoothing", "fashion_weight_decay"]


def test_the_fashion_studies_share_their_baseline_runs(tmp_path: Path) -> None:
    baseline = {"ImageTask.augment": False, "ImageTask.label_smoothing": 0.0}
    baseline |= {"AdamW.weight_decay": 0.05}
    ids: list[set[str]] = []
    every: set[str] = set()
    for name in [*FASHION, "fashion_early_stopping"]:
        study = load_study(name)
        assert study.search == "fashion_resnet"
        jobs = study_jobs(study, tmp_path)
        ids.append({j.id for r, j in jobs if r.params.items() >= baseline.items()})  # type: ignore[attr-defined]
        every |= {j.id for _, j in jobs}  # type: ignore[attr-defined]
        assert len(ids[-1]) == 3  # three seeds
        seeded = [r.bindings for r, _ in jobs if r.params["seed"] == 2]
        assert all({"train.seed = 2", "ImageTask.seed = 2"} <= set(b) for b in seeded)
    assert all(i == ids[0] for i in ids)
    assert len(every) == 3 + 3 + 6 + 6  # baseline, augmentation, smoothing, weight decay
    # the existing studies keep their own search and job ids
    assert load_study("gpt_dropout").search == "gpt_dropout"


def test_a_factor_study_with_seeds_matches_scipy_per_seed(tmp_path: Path) -> None:
    from scipy import stats

    g = np.random.default_rng(1)
    results = []
    for value in (0.0, 0.1):
        for seed in range(4):
            losses = g.gamma(4, 0.5, 300) - 0.1 * value
            correct = (g.random(300) < 0.8 + value).astype(float)
            final = float(losses.mean()) + 0.01 * seed
            results.append(
                {
                    "name": f"{value}-{seed}",
                    "params": {"ImageTask.label_smoothing": value, "seed": seed},
                    "eval_steps": [10, 20],
                    "val_losses": [3.0, final],
                    "final_val_loss": final,
                    "best_val_loss": final,
                    "final_val_accuracy": float(correct.mean()),
                    "window_losses": losses,
                    "correct": correct,
                }
            )
    study = Study("s", "s", "factor", "resnet_fashion_mnist", [], {}, {})
    study.options["factor"] = {"name": "ImageTask.label_smoothing", "baseline": 0.0}
    summary = analyse(study, results, tmp_path, n_boot=50)
    row = summary["factor"]["table"][1]
    a = [r["final_val_loss"] for r in results[4:]]
    b = [r["final_val_loss"] for r in results[:4]]
    seeds = row["final_val_loss_by_seed"]
    assert seeds["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    interval = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (seeds["low"], seeds["high"]) == pytest.approx((interval.low, interval.high))
    acc = np.mean([r["correct"] for r in results[4:]], 0) - np.mean(
        [r["correct"] for r in results[:4]], 0
    )
    assert row["accuracy_vs_baseline"]["mean"] == pytest.approx(acc.mean())
    assert any("per seed (4 seeds), accuracy" in line for line in summary["lines"])
    assert math.isnan(seed_difference([1.0], [2.0])["low"])


def test_early_stopping_analysis_applies_the_rule_to_each_curve(tmp_path: Path) -> None:
    curves = [[2.0, 1.5, 1.2, 1.3, 1.25, 1.4, 1.5], [2.0, 1.6, 1.4, 1.35, 1.5, 1.6, 1.7]]
    g = np.random.default_rng(0)
    results = []
    for seed, curve in enumerate(curves):
        folder = tmp_path / f"run{seed}" / "examples"
        folder.mkdir(parents=True)
        files = {}
        for i, loss in enumerate(curve):
            step = 10 * (i + 1)
            files[step] = folder / f"step_{step}.npz"
            labels = g.integers(0, 10, 200)
            np.savez(
                files[step],
                losses=g.normal(loss, 0.1, 200),
                labels=labels,
                predictions=np.where(g.random(200) < 0.7, labels, 0),
            )
        results.append(
            {
                "name": f"run{seed}",
                "params": {"seed": seed},
                "eval_steps": list(files),
                "val_losses": curve,
                "steps": 70,
                "final_val_loss": curve[-1],
                "best_val_loss": min(curve),
                "example_files": files,
            }
        )
    study = Study("e", "e", "early_stopping", "resnet_fashion_mnist", [], {})
    study.options["early_stopping"] = {"patience": [1, 2]}
    summary = analyse(study, results, tmp_path, n_boot=50)
    for row in summary["early_stopping"]["table"]:
        for curve, stop, best in zip(curves, row["stop_steps"], row["best_steps"], strict=True):
            i, j = early_stopping(curve, row["patience"])
            assert (stop, best) == (10 * (i + 1), 10 * (j + 1))
        kept = [
            np.load(r["example_files"][s])["losses"]
            for r, s in zip(results, row["best_steps"], strict=True)
        ]
        end = [np.load(r["example_files"][70])["losses"] for r in results]
        want = np.mean(kept, 0) - np.mean(end, 0)
        assert row["vs_end"]["mean"] == pytest.approx(want.mean())
    first = summary["early_stopping"]["table"][0]
    assert first["stop_steps"] == [40, 50] and first["best_steps"] == [30, 40]
    assert first["saved"] == pytest.approx(np.mean([1 - 40 / 70, 1 - 50 / 70]))
    assert Path(summary["figure"]).stat().st_size > 10_000


@pytest.mark.slow
def test_tiny_fashion_studies_run_and_share_their_baseline(
    tmp_path: Path, fashion_mnist_files: dict[str, Path]
) -> None:
    del fashion_mnist_files  # present, or this test is skipped with the install hint
    smoothing = ["study", "fashion_label_smoothing", "--tiny", "--runs-dir", str(tmp_path)]
    first = CliRunner().invoke(app, smoothing)
    assert first.exit_code == 0, first.output
    said = " ".join(first.output.split())
    assert "(4 of 4 runs)" in said and "per seed (2 seeds), val loss" in said, said
    folder = tmp_path / "fashion_resnet-tiny"
    summary = json.loads((folder / "fashion_label_smoothing-tiny" / "summary.json").read_text())
    assert summary["runs"][0]["steps"] == 8 and len(summary["runs"][0]["eval_steps"]) == 4
    early = CliRunner().invoke(app, ["study", "fashion_early_stopping", "--tiny", *smoothing[3:]])
    assert early.exit_code == 0, early.output
    said = " ".join(early.output.split())
    assert "2 runs, 0 new jobs" in said and "patience 2: stops at step" in said, said
    assert (folder / "fashion_early_stopping-tiny" / "figure.png").is_file()


@pytest.mark.slow
def test_a_tiny_study_on_redis_with_two_workers(tmp_path: Path) -> None:
    from mlab.search import open_queue
    from mlab.search.redis_server import INSTALL_HINT, RedisServer, redis_server_binary

    if redis_server_binary() is None:
        pytest.skip(f"redis-server is not installed: {INSTALL_HINT}")
    with RedisServer(tmp_path / "redis") as server:
        args = ["study", "gpt_dropout", "--tiny", "--runs-dir", str(tmp_path)]
        args += ["--queue", server.url, "--workers", "2"]
        out = CliRunner().invoke(app, args)
        assert out.exit_code == 0, out.output
        said = " ".join(out.output.split())
        assert f"4 new jobs on {server.url}" in said and "(4 of 4 runs)" in said, said
        with open_queue(server.url) as q:
            done = q.results("gpt_dropout-tiny")
        assert len(done) == 4


def test_seeds_added_to_a_study_with_defaults_keep_its_runs(tmp_path: Path) -> None:
    study = load_study("gpt_size")  # three seeds, the first the config's train.seed = 1337
    assert study.space["train.seed"][0] == 1337 and study.options["defaults"]
    before = load_study("gpt_size")  # as it was with one seed: no seed key, no defaults
    del before.space["train.seed"], before.options["defaults"]
    old = {j.id for _, j in study_jobs(before, tmp_path)}  # type: ignore[attr-defined]
    jobs = study_jobs(study, tmp_path)
    kept = {j.id for r, j in jobs if r.params["train.seed"] == 1337}  # type: ignore[attr-defined]
    assert kept == old and len({j.id for _, j in jobs}) == 3 * len(old)  # type: ignore[attr-defined]
    assert all("train.seed = 2" in r.bindings for r, _ in jobs if r.params["train.seed"] == 2)
    del study.options["defaults"]  # without it, every run is a new job
    assert not {j.id for _, j in study_jobs(study, tmp_path)} & old  # type: ignore[attr-defined]


def test_the_extrapolation_check_holds_out_every_seed_of_the_largest_size(tmp_path: Path) -> None:
    results = []
    for i, n in enumerate([1e3, 3e3, 1e4, 3e4, 1e5]):
        for seed, noise in enumerate((-0.01, 0.01)):
            loss = 5 * n**-0.3 + 1.5 + noise
            results.append(
                {
                    "name": f"{i}-{seed}",
                    "params": {},
                    "eval_steps": [1],
                    "val_losses": [loss],
                    "final_val_loss": loss,
                    "best_val_loss": loss,
                    "n_params": n,
                }
            )
    study = Study("s", "s", "size", "shakespeare_char", [], {}, {"fit": {"holdout": 1}})
    held = analyse(study, results, tmp_path, n_boot=20)["fit"]["holdout"]
    largest = 5 * 1e5**-0.3 + 1.5
    assert held["x"] == [1e5, 1e5]
    assert held["actual"] == pytest.approx([largest - 0.01, largest + 0.01])
    assert held["alpha"] == pytest.approx(0.3, abs=0.05)
