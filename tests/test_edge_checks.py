"""Realistic wrong solutions that passed every check of their exercise before the checks tried
the edge that tells them apart (issue 12, "Checks that let wrong code through"). Each must now
fail with a message naming that edge; the reference must still pass."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.hooks import RemovableHandle

from checkrun import assert_fails, run_checks
from mlab.errors import StateDictError
from mlab.inspect import record
from mlab.inspect.health import Finding, frozen_message, same_param
from mlab.nn import layers
from mlab.tensor.raytrace import _check_rays

_run = run_checks
_fails = assert_fails


# ----------------------------------------------------------------------------------------------
# w1d3


class GroupNormByStrides(layers.GroupNorm):
    """Groups read with as_strided from the shape: right only for a contiguous input."""

    def forward(self, x: Tensor) -> Tensor:
        per_sample = x[0].numel()
        size = per_sample // self.num_groups
        groups = x.as_strided((x.shape[0], self.num_groups, size), (per_sample, size, 1))
        mean = groups.mean(-1, keepdim=True)
        var = groups.var(-1, keepdim=True, correction=0)
        out = ((groups - mean) / torch.sqrt(var + self.eps)).reshape(x.shape)
        shape = (-1,) + (1,) * (x.ndim - 2)
        if self.weight is not None:
            out = out * self.weight.reshape(shape)
        if self.bias is not None:
            out = out + self.bias.reshape(shape)
        return out


GroupNormByStrides.__name__ = "GroupNorm"  # its repr must read like torch's


def load_while_checking(model: torch.nn.Module, state_dict: dict[str, Tensor]) -> None:
    """Copies each key as soon as it is checked: a failed load leaves a half-loaded model."""
    ours = model.state_dict()
    problems = [f"missing {n}" for n in sorted(ours.keys() - state_dict.keys())]
    for name, value in state_dict.items():
        if name not in ours:
            problems.append(f"unexpected {name}")
        elif value.shape != ours[name].shape:
            problems.append(f"{name}: {tuple(value.shape)} vs {tuple(ours[name].shape)}")
        else:
            ours[name].copy_(value)
    if problems:
        raise StateDictError("; ".join(problems))


@pytest.mark.parametrize(
    ("exercise", "value", "message"),
    [
        ("GroupNorm", GroupNormByStrides, r"channels_last \(2, 6, 4, 5\) input"),
        ("load_checked_state_dict", load_while_checking, r"after a failed load.*nothing may"),
    ],
)
def test_w1d3_wrong_solutions_fail(exercise: str, value: Any, message: str) -> None:
    _fails("w1d3", exercise, value, message)


# ----------------------------------------------------------------------------------------------
# w1d7


def record_output_keeping_the_grad(
    rec: record.StepRecord,
    name: str,
    out: Tensor,
    saturation: tuple[float, float] | None,
    keep: bool,
) -> Any:
    """Keeps the gradient tensor itself (an alias), not a copy."""
    if name in rec.activations:
        return None
    rec.activations[name] = record.tensor_stats(out, saturation)
    if keep:
        rec.tensors[f"act:{name}"] = record.cpu_copy(out)
    if not out.requires_grad:
        return None

    def hook(grad: Tensor) -> None:
        if name not in rec.gradients:
            rec.gradients[name] = record.tensor_stats(grad)
            if keep:
                rec.tensors[f"grad:{name}"] = grad

    return out.register_hook(hook)  # type: ignore[no-untyped-call]


def unchanged_first_vs_last(run: Any) -> list[Finding]:
    """Compares each parameter's first and last recorded values only."""
    steps = [s for s in run.steps if s.params]
    if len(steps) < 2:
        return []
    names = [n for n in steps[0].params if all(n in s.params for s in steps)]
    frozen = [n for n in names if same_param(steps[0], steps[-1], n)]
    if frozen and len(frozen) == len(names):
        return [Finding("error", None, "no weight changed")]
    return [Finding("warning", n, frozen_message(run, n, len(steps))) for n in frozen]


@pytest.mark.parametrize(
    ("exercise", "value", "message"),
    [
        ("record_output", record_output_keeping_the_grad, r"clips the gradient in place"),
        ("unchanged_weights", unchanged_first_vs_last, r"weight flips 1\.0, -1\.0, 1\.0"),
    ],
)
def test_w1d7_wrong_solutions_fail(exercise: str, value: Any, message: str) -> None:
    _fails("w1d7", exercise, value, message)


# ----------------------------------------------------------------------------------------------
# w1d1


def bincount_in_the_dtype_of_x(x: Tensor, minlength: int = 0) -> Tensor:
    """Counts by comparing with every bin, summed in x's own dtype (uint8 wraps at 256)."""
    if bool((x < 0).any()):
        raise ValueError("negative value")
    size = max(minlength, int(x.max()) + 1) if len(x) else minlength
    hits = x[:, None] == torch.arange(size, dtype=x.dtype)
    return hits.sum(0, dtype=x.dtype).long()


def count_uniques_in_the_dtype_of_x(x: Tensor) -> tuple[Tensor, Tensor]:
    """Counts accumulated in x's dtype: bfloat16 cannot count to 300."""
    s = x.sort().values
    is_start = torch.ones(len(s), dtype=torch.bool)
    is_start[1:] = s[1:] != s[:-1]
    run = is_start.cumsum(0) - 1
    counts = torch.zeros(int(is_start.sum()), dtype=s.dtype)
    return s[is_start], counts.index_add_(0, run, torch.ones_like(s)).long()


def histogram_by_floor_division(x: Tensor, bins: int, lo: float, hi: float) -> Tensor:
    """(v - lo) // width: 0.5 // 0.1 is 4 in float32, so 0.5 lands in bin 4."""
    if bins < 1 or not lo < hi:
        raise ValueError("need bins >= 1 and lo < hi")
    inside = x[(x >= lo) & (x <= hi)]
    index = ((inside - lo) // ((hi - lo) / bins)).long().clamp(max=bins - 1)
    ones = torch.ones(len(index), dtype=torch.int64)
    return torch.zeros(bins, dtype=torch.int64).index_add_(0, index, ones)


@pytest.mark.parametrize(
    ("exercise", "value", "message"),
    [
        ("bincount", bincount_in_the_dtype_of_x, r"expected 300, got 44.*uint8 values"),
        ("count_uniques", count_uniques_in_the_dtype_of_x, r"expected 300, got 256.*bfloat16"),
        ("histogram", histogram_by_floor_division, r"0\.5 is on an edge"),
    ],
)
def test_w1d1_wrong_solutions_fail(exercise: str, value: Any, message: str) -> None:
    _fails("w1d1", exercise, value, message)


def test_the_reference_bincount_counts_small_integer_types_like_torch() -> None:
    from mlab.tensor.vectorised import bincount

    for dtype in (torch.uint8, torch.int8, torch.int16, torch.int32):
        x = torch.tensor([2] * 300 + [0, 5], dtype=dtype)
        assert torch.equal(bincount(x), torch.bincount(x))


@pytest.mark.parametrize(
    ("day_id", "exercise"),
    [
        *itertools.product(["w1d3"], ["GroupNorm", "load_checked_state_dict"]),
        *itertools.product(["w1d7"], ["record_output", "unchanged_weights"]),
        *itertools.product(["w1d1"], ["bincount", "count_uniques", "histogram"]),
    ],
)
def test_the_reference_passes(day_id: str, exercise: str) -> None:
    _run(day_id, exercise)


# ----------------------------------------------------------------------------------------------
# w1d2 and w1d4


def minibatches_as_a_list(
    x: Tensor, y: Tensor, batch_size: int, *, generator: Any = None, shuffle: bool = True,
    drop_last: bool = False,
) -> list[tuple[Tensor, Tensor]]:  # fmt: skip
    """A plain function: the order is drawn at the call, not when iteration starts."""
    if batch_size < 1:
        raise ValueError(batch_size)
    order = torch.randperm(len(x), generator=generator) if shuffle else torch.arange(len(x))
    stop = len(x) - len(x) % batch_size if drop_last else len(x)
    chunks = [order[s : s + batch_size] for s in range(0, stop, batch_size)]
    return [(x[idx], y[idx]) for idx in chunks]


def ray_triangle_with_epsilon(origin: Tensor, direction: Tensor, triangle: Tensor) -> float:
    """Moller-Trumbore with the paper's EPSILON: misses small triangles."""
    a, b, c = triangle
    e1, e2 = b - a, c - a
    p = torch.linalg.cross(direction, e2)
    det = e1 @ p
    if abs(det) < 1e-6:
        return math.inf
    s = origin - a
    q = torch.linalg.cross(s, e1)
    u, v, t = (s @ p) / det, (direction @ q) / det, (e2 @ q) / det
    return float(t) if t > 0 and u >= 0 and v >= 0 and u + v <= 1 else math.inf


def ray_mesh_with_epsilon(origins: Tensor, directions: Tensor, triangles: Tensor) -> Tensor:
    _check_rays(origins, directions)
    a, b, c = triangles[None].unbind(dim=2)
    d = directions[:, None]
    s = origins[:, None] - a
    e1, e2 = b - a, c - a
    p, q = torch.linalg.cross(d, e2), torch.linalg.cross(s, e1)
    det = (e1 * p).sum(dim=-1)
    ok = det.abs() > 1e-6
    det = torch.where(ok, det, 1.0)
    u, v = (s * p).sum(dim=-1) / det, (d * q).sum(dim=-1) / det
    t = (e2 * q).sum(dim=-1) / det
    return torch.where(ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0), t, torch.inf)


def clip_hook_in_place(t: Tensor, max_norm: float) -> RemovableHandle:
    """Scales the gradient it is given in place: the caller's upstream tensor changes."""
    if max_norm <= 0:
        raise ValueError(max_norm)

    def clip(grad: Tensor) -> Tensor:
        norm = grad.norm()
        if norm > max_norm:
            grad.mul_(max_norm / norm)
        return grad

    return t.register_hook(clip)  # type: ignore[no-untyped-call,no-any-return]


W1D2_W1D4 = [
    ("w1d2", "minibatches", minibatches_as_a_list, r"reseeded with 8 after the call"),
    ("w1d2", "ray_triangle_distance", ray_triangle_with_epsilon, r"side 1e-4 .*only 0 is"),
    ("w1d2", "ray_mesh_distances", ray_mesh_with_epsilon, r"scaled by 1e-4 .*only 0 is"),
    ("w1d4", "clip_grad_norm_hook", clip_hook_in_place, r"upstream .*modified in place"),
]


@pytest.mark.parametrize(("day_id", "exercise", "value", "message"), W1D2_W1D4)
def test_w1d2_w1d4_wrong_solutions_fail(
    day_id: str, exercise: str, value: Any, message: str
) -> None:
    _fails(day_id, exercise, value, message)


@pytest.mark.parametrize(("day_id", "exercise"), [w[:2] for w in W1D2_W1D4])
def test_w1d2_w1d4_references_pass(day_id: str, exercise: str) -> None:
    _run(day_id, exercise)
