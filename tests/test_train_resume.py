"""The w3d1 training loop: a run killed with SIGKILL at random steps and resumed ends with the
same weights, optimizer state and logged metrics, bit for bit, as a run never interrupted; a
corrupt checkpoint is skipped for the previous good one; bad bindings fail before training."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("gin", reason="the train extra: pip install -e '.[train]'")

from mlab.train.checkpoint import list_checkpoints, read_checkpoint
from mlab.train.data import write_token_file
from mlab.train.main import main

# A tiny GPT on a memory-mapped token file, with dropout (the torch RNG), gradient accumulation,
# clipping, a schedule, and checkpoint, log and eval intervals out of step with each other.
CONFIG = """
train.model = @gpt
train.task = @LanguageModelTask
train.optimizer = @AdamW
train.schedule = @WarmupCosine
train.max_steps = 240
train.grad_accum = 2
train.max_grad_norm = 0.5
train.eval_every = 10
train.checkpoint_every = 7
train.keep_checkpoints = 2
train.log_every = 1
train.layer_stats_every = 5
train.seed = 3
train.device = "cpu"  # bit for bit is promised on CPU
gpt.vocab_size = 16
gpt.block_size = 8
gpt.n_layer = 1
gpt.n_head = 2
gpt.n_embd = 16
gpt.dropout = 0.1
LanguageModelTask.batch_size = 4
LanguageModelTask.block_size = 8
LanguageModelTask.eval_batches = 2
LanguageModelTask.train_file = "TRAIN"
LanguageModelTask.val_file = "VAL"
AdamW.lr = 3e-3
WarmupCosine.warmup_steps = 10
"""
# One thread in every process: the same arithmetic, and no oversubscribed cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TIMING = ("throughput",)


def _mlab() -> list[str]:
    script = Path(sys.executable).parent / "mlab"
    return [str(script), "train"] if script.exists() else [sys.executable, "-m", "mlab.train.main"]


def _metrics(path: Path) -> list[dict[str, object]]:
    lines = path.read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def _final_state(run_dir: Path) -> dict[str, object]:
    step, path = list_checkpoints(run_dir)[-1]
    assert step == 240, f"the run ended at step {step}, not 240"
    return read_checkpoint(path)


def _assert_same_run(got: Path, want: Path) -> None:
    a, b = _final_state(got), _final_state(want)
    for name, tensor in b["model"].items():  # type: ignore[attr-defined]
        assert torch.equal(a["model"][name], tensor), f"weights {name} differ"  # type: ignore[index]
    opt_a, opt_b = a["optimizer"]["state"], b["optimizer"]["state"]  # type: ignore[index]
    for key in opt_b:
        for field in opt_b[key]:
            assert torch.equal(opt_a[key][field], opt_b[key][field]), f"Adam {field} differs"
    assert a["rng"]["torch"].equal(b["rng"]["torch"])  # type: ignore[index]
    assert a["data"] == b["data"] and a["loop"] == b["loop"]
    assert _metrics(got / "metrics.jsonl") == _metrics(want / "metrics.jsonl")
    assert (got / "layers.jsonl").read_text() == (want / "layers.jsonl").read_text()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    ids = torch.randint(0, 16, (3000,), generator=torch.Generator().manual_seed(0))
    write_token_file(root / "train.npy", ids[:2500].numpy())
    write_token_file(root / "val.npy", ids[2500:].numpy())
    text = CONFIG.replace("TRAIN", str(root / "train.npy")).replace("VAL", str(root / "val.npy"))
    (root / "tiny.gin").write_text(text)
    argv = [str(root / "tiny.gin"), "--runs-dir", str(root), "--name", "straight"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*argv, "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    return root


def _last_step(path: Path) -> int:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return 0
    return json.loads(lines[-1])["step"] if lines and lines[-1].endswith("}") else 0


@pytest.mark.slow
def test_sigkill_at_random_steps_then_resume_is_bit_exact(runs: Path) -> None:
    rng = random.Random(os.getpid())
    targets = sorted(rng.sample(range(5, 200), 3))
    cmd = [*_mlab(), str(runs / "tiny.gin"), "--runs-dir", str(runs), "--name", "killed"]
    metrics = runs / "killed" / "metrics.jsonl"
    kills = []
    for i, target in enumerate(targets):
        args = cmd if i == 0 else [*_mlab(), "--resume", str(runs / "killed")]
        with open(runs / f"killed-{i}.log", "w") as log:
            proc = subprocess.Popen([*args, "--no-progress"], env=ENV, stderr=log)
            while proc.poll() is None and _last_step(metrics) < target:
                time.sleep(0.002)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        if proc.returncode == -signal.SIGKILL:
            kills.append(_last_step(metrics))
    logs = "".join((runs / f"killed-{i}.log").read_text() for i in range(len(targets)))
    assert len(kills) >= 2, f"only {len(kills)} kills landed before the run ended: {logs}"
    final = subprocess.run(
        [*_mlab(), "--resume", str(runs / "killed"), "--no-progress"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr
    assert "resuming" in final.stderr
    _assert_same_run(runs / "killed", runs / "straight")


def test_a_corrupt_checkpoint_is_skipped_for_the_previous_good_one(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlab.train.config import parse_config, registered

    parse_config((runs / "tiny.gin").read_text())
    run_dir = runs / "corrupt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        registered()["train"](run_dir=run_dir, until=30, progress=False)
        (step, newest), (older, _) = list_checkpoints(run_dir)[-1], list_checkpoints(run_dir)[-2]
        assert (step, older) == (28, 21)
        newest.write_bytes(newest.read_bytes()[:-100])  # truncated, as by a full disk
        registered()["train"](run_dir=run_dir, resume=True, progress=False)
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().out
    assert "ckpt-00000028.pt" in err and "corrupt or truncated" in err, err
    assert "from step 21" in err
    _assert_same_run(run_dir, runs / "straight")


def test_a_misspelt_binding_fails_before_training_naming_the_nearest(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(runs / "tiny.gin"), "--runs-dir", str(runs), "--name", "typo"]
    assert main([*argv, "--bind", "AdamW.lrr = 1e-3"]) == 2
    assert "did you mean 'lr'" in capsys.readouterr().err
    assert main([*argv, "--bind", "AdamV.lr = 1e-3"]) == 2
    assert "'AdamW'?" in capsys.readouterr().err
    assert not (runs / "typo").exists()
    operative = (runs / "straight" / "operative_config.gin").read_text()
    assert "gpt.dropout = 0.1" in operative and "AdamW.eps = 1e-08" in operative
