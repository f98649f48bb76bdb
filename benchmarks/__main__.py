"""Run every benchmark: ``python -m benchmarks`` (``make bench``)."""

from __future__ import annotations

import torch

from benchmarks import (
    bench_cli_latency,
    bench_w1d1_vectorised,
    bench_w1d2_logistic,
    bench_w1d2_raytrace,
    bench_w1d3_conv,
    bench_w1d3_resnet,
    bench_w1d4_autograd_mlp,
    bench_w1d6_ddp,
    bench_w1d7_inspect,
    bench_w2d1_bert,
    bench_w2d2_gpt2,
    bench_w2d3_tokenizers,
    bench_w2d4_sampling,
    bench_w2d5_deberta,
    bench_w3d1_loop,
    bench_w3d2_search,
    bench_w4d1_dqn,
)
from benchmarks.common import run

BENCHMARKS = [
    bench_cli_latency,
    bench_w1d1_vectorised,
    bench_w1d2_logistic,
    bench_w1d2_raytrace,
    bench_w1d3_conv,
    bench_w1d3_resnet,
    bench_w1d4_autograd_mlp,
    bench_w1d6_ddp,
    bench_w1d7_inspect,
    bench_w2d1_bert,
    bench_w2d2_gpt2,
    bench_w2d3_tokenizers,
    bench_w2d4_sampling,
    bench_w2d5_deberta,
    bench_w3d1_loop,
    bench_w3d2_search,
    bench_w4d1_dqn,
]


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for bench in BENCHMARKS:
        run(bench.__name__.removeprefix("benchmarks."), bench.main)


if __name__ == "__main__":
    main()
