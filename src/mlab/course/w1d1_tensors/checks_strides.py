"""Checks for part 1 of w1d1: strides and views, against the layouts torch itself computes."""

from __future__ import annotations

import torch

from mlab.course.engine.checks import Namespace, check
from mlab.testing import assert_equal, case

SHAPES = [(), (5,), (2, 3), (2, 3, 4), (1, 7, 1), (4, 0, 3), (3, 1, 2, 5)]


@check("contiguous_strides")
def strides_match_fresh_tensors(ns: Namespace) -> None:
    for shape in SHAPES:
        with case(f"shape {shape}", shape=shape):
            got = ns.contiguous_strides(shape)
            assert_equal(tuple(got), torch.empty(shape).stride(), what="strides")
