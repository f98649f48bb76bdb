"""The w3d1 training loop's parts beyond exact resume: the shipped configs parse, the image
loader's order does not depend on its workers and resumes mid-epoch, early stopping, a
non-finite gradient skips its step, an MLP on digits learns, and ``mlab runs``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

pytest.importorskip("gin", reason="the train extra: pip install -e '.[train]'")

from mlab.train.builders import WarmupCosine, gpt
from mlab.train.checkpoint import list_checkpoints, read_checkpoint
from mlab.train.config import check_config_text, parse_config, shipped_configs
from mlab.train.data import ImageTask, LanguageModelTask, write_token_file
from mlab.train.loop import train
from mlab.train.main import main
from mlab.train.metrics import read_metrics
from mlab.train.runs import list_runs, plot_runs


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("tokens")
    ids = torch.randint(0, 16, (2000,), generator=torch.Generator().manual_seed(1))
    write_token_file(root / "train.npy", ids[:1500].numpy())
    write_token_file(root / "val.npy", ids[1500:].numpy())
    return str(root / "train.npy"), str(root / "val.npy")


def _tiny_gpt() -> Any:
    return gpt(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=16)


def test_the_shipped_configs_parse_and_bind_only_real_names() -> None:
    assert shipped_configs() == ["mlp_digits", "resnet_fashion_mnist", "shakespeare_char"]
    from importlib import resources

    for name in shipped_configs():
        text = (resources.files("mlab.train") / "configs" / f"{name}.gin").read_text()
        check_config_text(text)
        parse_config(text)


def test_memory_mapped_batches_depend_on_seed_and_index_only(tokens: tuple[str, str]) -> None:
    a = LanguageModelTask(4, 8, train_file=tokens[0], val_file=tokens[1], seed=5)
    first = [a.next_batch() for _ in range(5)]
    b = LanguageModelTask(4, 8, train_file=tokens[0], val_file=tokens[1], seed=5)
    b.set_position({"index": 3})
    assert all(torch.equal(x, y) for x, y in zip(b.next_batch(), first[3], strict=True))
    x, y = first[0]
    assert x.shape == (4, 8) and torch.equal(x[:, 1:], y[:, :-1])
    assert a.train_tokens.dtype.name == "uint16"  # memory-mapped, never copied to int64


def test_image_order_is_the_same_with_workers_and_resumes_mid_epoch() -> None:
    def batches(task: ImageTask, n: int) -> list[Tensor]:
        return [task.next_batch()[1] for _ in range(n)]

    plain = batches(ImageTask("digits", 200, num_workers=0, seed=2), 12)  # 8 per epoch: 2 epochs
    workers = batches(ImageTask("digits", 200, num_workers=2, seed=2), 12)
    assert all(torch.equal(a, b) for a, b in zip(plain, workers, strict=True))
    task = ImageTask("digits", 200, num_workers=2, seed=2)
    task.set_position({"epoch": 0, "index": 6})
    resumed = batches(task, 6)
    assert all(torch.equal(a, b) for a, b in zip(plain[6:], resumed, strict=True))
    assert not torch.equal(plain[0], plain[8][: len(plain[0])])  # a new permutation per epoch


def test_early_stopping_and_a_stopped_run_stays_stopped(
    tmp_path: Path, tokens: tuple[str, str]
) -> None:
    def run(resume: bool = False) -> Any:
        return train(
            tmp_path,
            _tiny_gpt,
            lambda: LanguageModelTask(4, 8, train_file=tokens[0], val_file=tokens[1]),
            optimizer=lambda p: torch.optim.SGD(p, lr=0.0),  # the validation loss never improves
            max_steps=100,
            eval_every=5,
            patience=2,
            checkpoint_every=50,
            progress=False,
            resume=resume,
            say=lambda _: None,
        )

    result = run()
    assert result.stopped_early and result.step == 15  # evals at 5 (best), 10, 15
    assert list_checkpoints(tmp_path)[-1][0] == 15
    assert run(resume=True).step == 15


class _NaNAtStep3(LanguageModelTask):
    def loss(self, model: Any, batch: Any) -> Tensor:
        loss = super().loss(model, batch)
        return loss * float("nan") if self.index == 3 else loss


def test_a_non_finite_gradient_skips_its_step(tmp_path: Path, tokens: tuple[str, str]) -> None:
    said: list[str] = []
    train(
        tmp_path,
        _tiny_gpt,
        lambda: _NaNAtStep3(4, 8, train_file=tokens[0], val_file=tokens[1]),
        schedule=lambda total: WarmupCosine(total, warmup_steps=2),
        max_steps=6,
        log_every=1,
        progress=False,
        say=said.append,
    )
    assert any("step 3" in s and "skipped" in s for s in said), said
    records = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "loss" in r]
    assert [r["skipped_steps"] for r in records] == [0, 0, 1, 1, 1, 1]
    state = read_checkpoint(list_checkpoints(tmp_path)[-1][1])
    assert all(torch.isfinite(t).all() for t in state["model"].values())


@pytest.mark.slow
def test_mlp_on_digits_learns_with_dataloader_workers_and_mlab_runs_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["mlp_digits", "--runs-dir", str(tmp_path), "--no-progress"]
    binds = ["train.max_steps = 60", "train.eval_every = 30", "train.checkpoint_every = 30"]
    short = ["train.max_steps = 4", "train.eval_every = 2", "ImageTask.num_workers = 0"]
    short.append("WarmupCosine.warmup_steps = 1")
    for name, extra in (("fast", ["AdamW.lr = 3e-3"]), ("short", short)):
        bindings = [x for b in [*binds, *extra] for x in ("--bind", b)]
        assert main([*argv, "--name", name, *bindings]) == 0
    records = read_metrics(tmp_path / "fast" / "metrics.jsonl")
    evals = [r for r in records if "val_accuracy" in r]
    assert evals[-1]["val_accuracy"] > 0.8, evals  # 10 classes: chance is 0.1
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < losses[0] / 2
    assert {"step", "loss", "lr", "grad_norm", "throughput"} <= records[0].keys()
    layers = json.loads((tmp_path / "fast" / "layers.jsonl").read_text().splitlines()[0])
    assert layers["step"] == 50 and sum(layers["layers"]["1.weight"]["hist"]) == 128 * 64
    config = (tmp_path / "fast" / "config.gin").read_text()
    assert "AdamW.lr = 3e-3  # --bind" in config
    runs = list_runs(tmp_path)
    assert [(r.name, r.step, r.checkpoint) for r in runs] == [("fast", 60, 60), ("short", 4, 4)]
    png = plot_runs([r.path for r in runs], tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bf16_autocast_and_gradient_accumulation_run(
    tmp_path: Path, tokens: tuple[str, str]
) -> None:
    result = train(
        tmp_path,
        _tiny_gpt,
        lambda: LanguageModelTask(4, 8, train_file=tokens[0], val_file=tokens[1]),
        max_steps=4,
        grad_accum=3,
        amp="bf16",  # what amp="auto" picks on a CUDA device with bf16
        device="cpu",
        eval_every=4,
        progress=False,
    )
    assert result.step == 4 and all(
        torch.isfinite(torch.tensor(v)) for v in result.metrics.values()
    )
    state = read_checkpoint(list_checkpoints(tmp_path)[-1][1])
    assert state["data"] == {"index": 12}


@pytest.mark.slow
def test_the_fashion_mnist_resnet_config_trains(
    tmp_path: Path, fashion_mnist_files: dict[str, Path]
) -> None:
    from importlib import resources

    from mlab.train.config import registered

    del fashion_mnist_files  # present (or this test is skipped with the install hint)
    text = (resources.files("mlab.train") / "configs" / "resnet_fashion_mnist.gin").read_text()
    bindings = "ImageTask.batch_size = 16\nImageTask.num_workers = 0\ntrain.log_every = 1\n"
    parse_config(text + "\n" + bindings)
    result = registered()["train"](run_dir=tmp_path, until=3, progress=False, say=print)
    assert result.step == 3
    losses = [r["loss"] for r in read_metrics(tmp_path / "metrics.jsonl")]
    assert len(losses) == 3 and all(0 < loss < 5 for loss in losses), losses


def test_w3d1s_config_checks_leave_gins_registry_as_they_found_it() -> None:
    """The checks register their own AdamW (``w3d1check.AdamW``); left behind, it made
    ``@AdamW`` ambiguous to every later training config in the process."""
    import gin.config

    from mlab.course.w3d1_training.checks_configs import _gin_accepts
    from mlab.train.config import parse_config

    parse_config("train.optimizer = @AdamW\nAdamW.lr = 0.1")  # mlab.train's names
    before = dict(gin.config._REGISTRY.items())
    assert _gin_accepts("AdamW.lr = 0.1")
    assert not _gin_accepts("AdamW.learning_rate = 0.1")
    assert dict(gin.config._REGISTRY.items()) == before
    parse_config("train.optimizer = @AdamW\nAdamW.lr = 0.1")
    gin.clear_config()
