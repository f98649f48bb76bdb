"""Per-example losses saved by the training loop, and ``mlab analyze``'s report on two tiny
real runs (a tiny GPT on a token file; an MLP on digits): the arrays agree with torch's
cross-entropy, the report holds the tests and the pictures inline, and renders."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

pytest.importorskip("gin", reason="the train extra: pip install -e '.[train]'")

from mlab.analysis.render import image_grid_png, png_data_uri, token_loss_html
from mlab.analysis.report import common_step, compare_losses, verdict, write_report
from mlab.errors import ConfigError, ShapeError
from mlab.train.builders import gpt, mlp
from mlab.train.data import ImageTask, LanguageModelTask, lm_batch, write_token_file
from mlab.train.loop import train
from mlab.train.metrics import list_eval_examples, read_eval_examples


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("tokens")
    ids = torch.randint(0, 16, (3000,), generator=torch.Generator().manual_seed(1))
    write_token_file(root / "train.npy", ids[:2000].numpy())
    write_token_file(root / "val.npy", ids[2000:].numpy())
    return str(root / "train.npy"), str(root / "val.npy")


def _lm_run(root: Path, tokens: tuple[str, str], name: str, lr: float) -> Path:
    train(
        root / name,
        lambda: gpt(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=16),
        lambda: LanguageModelTask(4, 8, train_file=tokens[0], val_file=tokens[1], eval_batches=6),
        optimizer=lambda p: torch.optim.AdamW(p, lr=lr),
        max_steps=20,
        eval_every=10,
        checkpoint_every=20,
        log_every=5,
        progress=False,
        tensorboard=False,
        say=lambda _: None,
    )
    return root / name


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory: pytest.TempPathFactory, tokens: tuple[str, str]) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    return _lm_run(root, tokens, "slow", 1e-4), _lm_run(root, tokens, "fast", 3e-2)


def test_every_evaluation_saves_per_example_losses(
    lm_runs: tuple[Path, Path], tokens: tuple[str, str]
) -> None:
    run = lm_runs[1]
    assert [s for s, _ in list_eval_examples(run)] == [10, 20]
    arrays = read_eval_examples(list_eval_examples(run)[-1][1])
    assert arrays["token_losses"].shape == (24, 8) and arrays["losses"].shape == (24,)
    # The windows are lm_batch's fixed validation windows, in order.
    val = np.load(tokens[1], mmap_mode="r")
    x, y = lm_batch(val, 2, 4, 8, seed=-1)
    np.testing.assert_array_equal(arrays["inputs"][8:12], x.numpy())
    np.testing.assert_array_equal(arrays["targets"][8:12], y.numpy())
    # Their mean is the logged val_loss, and each is torch's cross-entropy of the model.
    from mlab.train.checkpoint import list_checkpoints, read_checkpoint

    model = gpt(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=16)
    model.load_state_dict(read_checkpoint(list_checkpoints(run)[-1][1])["model"])
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(arrays["inputs"])).logits
    want = F.cross_entropy(
        logits.transpose(1, 2), torch.from_numpy(arrays["targets"]), reduction="none"
    )
    np.testing.assert_allclose(arrays["token_losses"], want.numpy(), rtol=1e-5, atol=1e-6)
    metrics = [
        line for line in (run / "metrics.jsonl").read_text().splitlines() if "val_loss" in line
    ]
    val_loss = float(re.search(r'"val_loss": ([0-9.]+)', metrics[-1]).group(1))  # type: ignore[union-attr]
    assert arrays["losses"].mean() == pytest.approx(val_loss, rel=1e-5)


def test_image_evaluation_saves_losses_labels_and_predictions(tmp_path: Path) -> None:
    task = ImageTask("digits", 64, num_workers=0)
    model = mlp(hidden=(16,))
    metrics, arrays = task.evaluate_examples(model.eval(), torch.device("cpu"))
    with torch.no_grad():
        logits = model(task.val_x)
    np.testing.assert_allclose(
        arrays["losses"], F.cross_entropy(logits, task.val_y, reduction="none").numpy(), rtol=1e-5
    )
    np.testing.assert_array_equal(arrays["predictions"], logits.argmax(-1).numpy())
    assert metrics["val_accuracy"] == pytest.approx(
        float((arrays["predictions"] == arrays["labels"]).mean())
    )
    assert metrics == task.evaluate(model, torch.device("cpu"))


def test_the_report_compares_two_real_runs(lm_runs: tuple[Path, Path], tmp_path: Path) -> None:
    slow, fast = lm_runs
    assert common_step(slow, fast) == 20
    out = write_report(slow, fast, tmp_path / "report.html", k=3)
    page = out.read_text()
    a = read_eval_examples(list_eval_examples(slow)[-1][1])["losses"]
    b = read_eval_examples(list_eval_examples(fast)[-1][1])["losses"]
    t = stats.ttest_rel(a, b).statistic
    assert f"t = {t:.4g}" in page
    assert page.count("data:image/png;base64,") == 2  # curves and differences, inline
    assert 'src="http' not in page and 'href="http' not in page  # nothing from the network
    assert page.count('class="example"') == 3 * 3  # each run's worst and the disagreements
    c = compare_losses(a, b)
    assert ("lower" in verdict(c, "slow", "fast")) and c.n == 24
    with pytest.raises(ConfigError, match="step 15"):
        common_step(slow, fast, 15)


def test_the_report_refuses_runs_without_common_examples(
    lm_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="share no evaluated step"):
        write_report(lm_runs[0], tmp_path / "empty", tmp_path / "r.html")


def test_the_verdict_says_when_only_pairing_sees_the_difference() -> None:
    rng = np.random.default_rng(0)
    hard = rng.exponential(2.0, 300)
    c = compare_losses(hard + rng.normal(0, 0.05, 300), hard - 0.03 + rng.normal(0, 0.05, 300))
    text = verdict(c, "A", "B")
    assert "B's mean loss is lower" in text and "real at the 5% level" in text
    assert "would have hidden the difference" in text
    same = compare_losses(hard + rng.normal(0, 0.05, 300), hard + rng.normal(0, 0.05, 300))
    assert "no evidence" in verdict(same)


def test_rendering_escapes_text_and_writes_pngs(tmp_path: Path) -> None:
    html_text = token_loss_html(["<b>", " ", "\n"], np.array([0.0, 1.0, 2.0]))
    assert (
        "&lt;b&gt;" in html_text and "↵<br>" in html_text and "rgba(220, 38, 38, 1.00)" in html_text
    )
    with pytest.raises(ShapeError):
        token_loss_html(["a"], np.zeros(2))
    path = image_grid_png(
        np.random.default_rng(0).random((3, 8, 8)), ["a", "b", "c"], tmp_path / "g.png"
    )
    from PIL import Image

    assert Image.open(path).size[0] > 100
    assert png_data_uri(path).startswith("data:image/png;base64,iVBOR")
    text_file = tmp_path / "x.txt"
    text_file.write_text("hello")
    with pytest.raises(ValueError, match="not a PNG"):
        png_data_uri(text_file)


def test_mlab_analyze_cli(lm_runs: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlab.cli import app

    out = tmp_path / "cli.html"
    result = CliRunner().invoke(
        app, ["analyze", str(lm_runs[0]), str(lm_runs[1]), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "Welch" in result.output and "Wrote" in result.output and out.is_file()
    result = CliRunner().invoke(app, ["analyze", str(lm_runs[0]), str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a run" in result.output


def test_mlab_analyze_a_folder_compares_its_two_best_runs(
    lm_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from mlab.analysis.cli import best_two_runs
    from mlab.cli import app
    from mlab.train.metrics import read_metrics

    folder = lm_runs[0].parent  # slow and fast, as a search leaves its runs
    last = {
        run.name: [m["val_loss"] for m in read_metrics(run / "metrics.jsonl") if "val_loss" in m][
            -1
        ]
        for run in lm_runs
    }
    ranked = best_two_runs(folder)
    assert [(p.name, v) for p, v in ranked] == sorted(last.items(), key=lambda kv: kv[1])
    out = tmp_path / "search.html"
    result = CliRunner().invoke(app, ["analyze", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    first, second = (p.name for p, _ in ranked)
    assert f"1. {first}" in result.output and f"2. {second}" in result.output
    assert out.is_file() and "Comparing the best two" in result.output
    result = CliRunner().invoke(app, ["analyze", str(lm_runs[0])])
    assert result.exit_code == 2 and "is one run" in result.output
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["analyze", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "holds 0 run(s)" in result.output


def test_the_report_shows_images_in_grids(tmp_path: Path) -> None:
    """Two image runs (random MLPs on digits, evaluated as the loop does): the worst examples
    and the disagreements come as captioned grids, inlined."""
    from mlab.train.metrics import MetricsLogger, eval_examples_path, write_eval_examples

    task = ImageTask("digits", 64, num_workers=0)
    for seed in (0, 1):
        run = tmp_path / f"mlp{seed}"
        run.mkdir()
        torch.manual_seed(seed)
        metrics, arrays = task.evaluate_examples(mlp(hidden=(8,)).eval(), torch.device("cpu"))
        logger = MetricsLogger(run, tensorboard=False)
        logger.log(5, loss=2.0 + seed, **metrics)
        logger.close()
        write_eval_examples(eval_examples_path(run, 5), arrays)
        (run / "config.gin").write_text('ImageTask.dataset = "digits"\n')
    page = write_report(tmp_path / "mlp0", tmp_path / "mlp1", tmp_path / "r.html", k=2).read_text()
    assert page.count("data:image/png;base64,") == 2 + 3  # curves, differences, three grids
    assert "validation images" in page and "label" not in page.split("<body>")[0]
