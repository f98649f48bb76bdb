"""w1d7: what recording costs. Each bug-hunt target trains for a few steps plain (the
reference) and under ``mlab.inspect.Recorder``, summaries only and with every tensor kept
(what ``mlab bughunt inspect`` does for its first steps), side by side in one process."""

from __future__ import annotations

import time

import torch

from benchmarks.common import Row, print_table
from mlab.bughunt.catalogue import target_path, targets
from mlab.inspect import Recorder
from mlab.inspect.script import load_script

STEPS = 10


def _seconds(name: str, mode: str) -> float:
    """Best of 3: build and train ``STEPS`` steps, plain or recorded."""
    script = load_script(target_path(name))
    best = float("inf")
    for _ in range(3):
        torch.manual_seed(0)
        model = script.build_model(0)
        start = time.perf_counter()
        if mode == "plain":
            script.train(model, steps=STEPS, seed=0, on_step=lambda loss: None)
        else:
            with Recorder(model, keep_tensors=mode == "kept", max_tensor_steps=STEPS) as rec:
                script.train(model, steps=STEPS, seed=0, on_step=rec.end_step)
        best = min(best, time.perf_counter() - start)
    return best / STEPS


def main() -> None:
    rows: list[Row] = []
    for name in targets():
        plain = _seconds(name, "plain")
        rows.append((f"{name}: recorded, summaries", _seconds(name, "summaries"), plain, "plain"))
        rows.append((f"{name}: recorded, tensors kept", _seconds(name, "kept"), plain, "plain"))
    print_table(f"w1d7 mlab.inspect: time per training step ({STEPS} steps)", rows)


if __name__ == "__main__":
    main()
