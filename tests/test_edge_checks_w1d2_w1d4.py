"""Realistic wrong solutions of w1d2 and w1d4 that passed every check before the checks
tried the edge they miss; each must now fail with a message that names that edge."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.hooks import RemovableHandle

from mlab.course.engine.checks import checks_for
from mlab.course.engine.manifest import get_day
from mlab.errors import MismatchError
from mlab.tensor.raytrace import _check_rays


def _run(day_id: str, exercise: str, value: Any = None) -> None:
    from mlab.course.engine.worker import _reference_namespace

    day = get_day(day_id)
    ns = _reference_namespace(day)
    if value is not None:
        ns = ns.replace(exercise, value)
    module = next(
        p.checks_module for p in day.parts if any(e.name == exercise for e in p.exercises)
    )
    checks = checks_for(module, exercise)
    assert checks
    for c in checks:
        c.fn(ns)


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


WRONG = [
    ("w1d2", "minibatches", minibatches_as_a_list, r"reseeded with 8 after the call"),
    ("w1d2", "ray_triangle_distance", ray_triangle_with_epsilon, r"side 1e-4 .*only 0 is"),
    ("w1d2", "ray_mesh_distances", ray_mesh_with_epsilon, r"scaled by 1e-4 .*only 0 is"),
    ("w1d4", "clip_grad_norm_hook", clip_hook_in_place, r"upstream .*modified in place"),
]


@pytest.mark.parametrize(("day_id", "exercise", "value", "message"), WRONG)
def test_wrong_solutions_fail(day_id: str, exercise: str, value: Any, message: str) -> None:
    with pytest.raises(MismatchError) as info:
        _run(day_id, exercise, value)
    text = str(info.value) + "\n".join(getattr(info.value, "__notes__", []))
    assert re.search(message, text, flags=re.DOTALL), text


@pytest.mark.parametrize(("day_id", "exercise"), [w[:2] for w in WRONG])
def test_the_reference_passes(day_id: str, exercise: str) -> None:
    _run(day_id, exercise)
