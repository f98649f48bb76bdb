"""Checks for part 1 of w2d5: log buckets of relative positions and the relative-position
matrix, against transformers 5.24's own ``make_log_bucket_position`` and
``build_relative_position`` (DeBERTa-v2), over every distance in a wide range."""

from __future__ import annotations

from typing import Any

import torch
from transformers.models.deberta_v2 import modeling_deberta_v2

from mlab.course.engine.checks import Namespace, check
from mlab.testing import assert_equal, assert_raises, assert_unchanged, case, expect

# transformers is untyped
hf: Any = modeling_deberta_v2

# (bucket_size, max_position): DeBERTa-v3's (256, 512), small tables, odd sizes, mid = 1;
# (6, 16) at distance 375 is where float64 logarithms give another bucket than float32
BUCKETS = [(256, 512), (8, 24), (6, 10), (6, 16), (5, 64), (32, 1024), (2, 9), (4, 4)]


@check("log_bucket_position")
def log_buckets_match_hf(ns: Namespace) -> None:
    rel = torch.arange(-1100, 1101)
    for bucket, max_pos in BUCKETS:
        with case(f"every distance -1100..1100, bucket_size={bucket}, max_position={max_pos}"):
            before = rel.clone()
            got = ns.log_bucket_position(rel, bucket, max_pos)
            want = hf.make_log_bucket_position(rel, bucket, max_pos).long()
            assert_equal(got, want, what="buckets")
            assert_unchanged(rel, before)
    square = rel[:900].reshape(30, 30).T
    with case("a non-contiguous (30, 30) matrix, bucket_size=8, max_position=24", rel=square):
        assert_equal(
            ns.log_bucket_position(square, 8, 24), hf.make_log_bucket_position(square, 8, 24).long()
        )


@check("log_bucket_position")
def log_buckets_reject_bad_sizes(ns: Namespace) -> None:
    rel = torch.arange(-5, 6)
    for bucket, max_pos in [(1, 10), (0, 10), (8, 5), (8, 2), (10, 6)]:
        with case(f"bucket_size={bucket}, max_position={max_pos}"):
            assert_raises(
                ns.log_bucket_position, rel, bucket, max_pos, exc=ValueError, match=str(bucket)
            )


@check("relative_positions")
def relative_positions_match_hf(ns: Namespace) -> None:
    sizes = [(1, 1), (5, 5), (3, 8), (8, 3), (40, 40), (600, 600), (30, 7)]
    tables = [(-1, -1), (8, 24), (4, 100), (256, 512), (8, -1), (-1, 24)]
    for i, (q, k) in enumerate(sizes):
        for bucket, max_pos in tables[i % 3 :: 2]:
            with case(
                f"query_size={q}, key_size={k}, bucket_size={bucket}, max_position={max_pos}"
            ):
                got = ns.relative_positions(q, k, bucket, max_pos)
                want = hf.build_relative_position(
                    torch.zeros(q, 1), torch.zeros(k, 1), bucket_size=bucket, max_position=max_pos
                )[0]
                assert_equal(got, want)
    with case("the defaults: no buckets"):
        assert_equal(
            ns.relative_positions(4, 6),
            hf.build_relative_position(torch.zeros(4, 1), torch.zeros(6, 1))[0],
        )
    for bucket, max_pos in [(0, 24), (8, 0)]:
        with case(f"bucket_size={bucket}, max_position={max_pos}: no buckets (both must be > 0)"):
            assert_equal(
                ns.relative_positions(30, 30, bucket, max_pos),
                hf.build_relative_position(
                    torch.zeros(30, 1), torch.zeros(30, 1), bucket_size=bucket, max_position=max_pos
                )[0],
            )
    for bucket, max_pos in [(1, 24), (4, 1)]:
        with case(f"bucket_size={bucket}, max_position={max_pos}: too small for log buckets"):
            assert_raises(ns.relative_positions, 5, 5, bucket, max_pos, exc=ValueError)
    with case("query_size=0"):
        got = ns.relative_positions(0, 3)
        expect(tuple(got.shape) == (0, 3), f"expected shape (0, 3), got {tuple(got.shape)}")
