"""Checks for part 4 of w1d2: the batched ray tracer.

The references here are independent of the exercises' code: brute-force Python loops in float64
(one ray and one triangle at a time, solving the 3x3 system by Cramer's rule with explicit
determinants; a sphere by its closest approach to the centre), numpy's cross product, a camera
built with numpy's ``meshgrid``/``linspace``, and analytic geometry: known distances to
known points, rays parallel to a triangle, exact hits on edges and vertices, and the area of a
sphere's silhouette.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from mlab.course.engine.checks import Namespace, check
from mlab.errors import ShapeError
from mlab.tensor.meshes import cube, icosphere
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_no_python_loop,
    assert_raises,
    assert_shape,
    case,
    expect,
    generator,
)

Vec = Sequence[float]


def _t(values: object, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.tensor(values, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# Brute force in plain Python floats (float64)


def _sub(a: Vec, b: Vec) -> list[float]:
    return [a[0] - b[0], a[1] - b[1], a[2] - b[2]]


def _dot(a: Vec, b: Vec) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _det3(c0: Vec, c1: Vec, c2: Vec) -> float:
    """The determinant of the 3x3 matrix with columns c0, c1, c2 (rule of Sarrus)."""
    return (
        c0[0] * c1[1] * c2[2]
        + c1[0] * c2[1] * c0[2]
        + c2[0] * c0[1] * c1[2]
        - c2[0] * c1[1] * c0[2]
        - c1[0] * c0[1] * c2[2]
        - c0[0] * c2[1] * c1[2]
    )


def _brute_triangle(o: Vec, d: Vec, tri: Sequence[Vec]) -> tuple[float, bool]:
    """(distance or inf, ambiguous): solve o + t d = A + u (B - A) + v (C - A) by Cramer's
    rule. Ambiguous means within rounding of a decision (an edge, t = 0, a parallel ray), where
    float32 code may rightly decide either way."""
    a, b, c = tri
    cols = [[-x for x in d], _sub(b, a), _sub(c, a)]
    rhs = _sub(o, a)
    det = _det3(*cols)
    if abs(det) < 1e-6:
        return math.inf, True
    t = _det3(rhs, cols[1], cols[2]) / det
    u = _det3(cols[0], rhs, cols[2]) / det
    v = _det3(cols[0], cols[1], rhs) / det
    margin = min(t, u, v, 1 - u - v)
    return (t if margin >= 0 else math.inf), abs(margin) < 1e-4 or abs(det) < 1e-4


def _brute_matrix(origins: Tensor, directions: Tensor, tris: Tensor) -> tuple[Tensor, Tensor]:
    """The (rays, tris) distance matrix and its ambiguous entries, one pair at a time."""
    rows, flags = [], []
    for o, d in zip(origins.double().tolist(), directions.double().tolist(), strict=True):
        pairs = [_brute_triangle(o, d, tri) for tri in tris.double().tolist()]
        rows.append([p[0] for p in pairs])
        flags.append([p[1] for p in pairs])
    shape = (len(origins), len(tris))
    return torch.tensor(rows, dtype=torch.float64).reshape(shape), torch.tensor(flags).reshape(
        shape
    )


def _brute_sphere(o: Vec, d: Vec, center: Vec, radius: float) -> float:
    """Distance to a sphere from the ray's closest approach to its centre."""
    to_center = _sub(center, o)
    along = _dot(to_center, d)  # t of the closest approach
    gap2 = _dot(to_center, to_center) - along * along  # squared distance centre-line
    if gap2 > radius * radius:
        return math.inf
    half = math.sqrt(radius * radius - gap2)
    hits = [t for t in (along - half, along + half) if t >= 0]
    return min(hits) if hits else math.inf


def _random_scene(
    n_rays: int, n_tris: int, seed: int, *, paired: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """Triangles of size ~1 around the origin, and rays from ~4 away aimed at random points
    near a random triangle (``paired``: ray i at triangle i) with barycentric weights in
    [-0.5, 1.5], so that about half of them hit it."""
    g = generator(seed)
    centres = torch.randn(n_tris, 1, 3, generator=g) * 0.7
    tris = centres + torch.randn(n_tris, 3, 3, generator=g) * 0.6
    starts = torch.nn.functional.normalize(torch.randn(n_rays, 3, generator=g), dim=1) * 4
    weights = torch.rand(n_rays, 3, generator=g) * 2 - 0.5
    weights = weights / weights.sum(dim=1, keepdim=True)
    which = torch.randint(0, n_tris, (n_rays,), generator=g)
    if paired:
        which = torch.arange(n_rays) % n_tris
    aims = (weights[:, :, None] * tris[which]).sum(dim=1)
    return starts, torch.nn.functional.normalize(aims - starts, dim=1), tris


def _no_loop(fn: object, make_args: object, what: str) -> None:
    with case(f"{what}, of size 8 and of size 200 (counting Python lines run)"):
        assert_no_python_loop(fn, make_args)  # type: ignore[arg-type]


# A unit square at z = 0 split along its diagonal, and the rays straight down at it: dyadic
# coordinates make every computation exact, so hits on edges and vertices are unambiguous.
_SQUARE = _t([[[0, 0, 0], [1, 0, 0], [1, 1, 0]], [[0, 0, 0], [1, 1, 0], [0, 1, 0]]])
_ON_EDGES = [
    [0.5, 0.5],  # the shared diagonal: on both triangles
    [0.25, 0.25],
    [0.0, 0.0],  # a vertex of both
    [1.0, 1.0],
    [1.0, 0.0],  # a vertex of the first only
    [0.5, 0.0],  # an outer edge of the first
    [1.0, 0.75],
    [0.0, 0.5],  # an outer edge of the second
    [0.5, 1.0],
]
# which triangle of _SQUARE each point lies on (closed triangles)
_ON_FIRST = [True, True, True, True, True, True, True, False, False]
_ON_SECOND = [True, True, True, True, False, False, False, True, True]


def _down_rays(points: list[list[float]], height: float = 2.0) -> tuple[Tensor, Tensor]:
    origins = _t([[x, y, height] for x, y in points])
    return origins, _t([[0.0, 0.0, -1.0]] * len(points))


# ----------------------------------------------------------------------------------------------
# camera_rays


def _numpy_camera(h: int, w: int, fov: float, eye: Vec, target: Vec) -> np.ndarray:
    """Directions built independently: a meshgrid of pixel centres in [-1, 1], a look-at basis
    from numpy's cross product."""
    forward = np.asarray(target, float) - np.asarray(eye, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    half = math.tan(math.radians(fov) / 2)
    ys = np.linspace(1 - 1 / h, -1 + 1 / h, h) * half
    xs = np.linspace(-1 + 1 / w, 1 - 1 / w, w) * half * w / h
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    dirs = forward + grid_x[..., None] * right + grid_y[..., None] * up
    dirs = dirs.reshape(-1, 3)
    unit: np.ndarray = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    return unit


@check("camera_rays")
def camera_rays_match_an_independent_camera(ns: Namespace) -> None:
    cases: list[tuple[str, int, int, float, list[float], list[float]]] = [
        ("3x5 pixels, looking down -z from the origin", 3, 5, 60.0, [0, 0, 0], [0, 0, -1]),
        ("4x2 pixels, looking down +z, fov 90", 4, 2, 90.0, [0, 0, -3], [0, 0, 0]),
        ("5x7 pixels from above and to the side", 5, 7, 40.0, [2.0, 3.0, 4.0], [0.5, 0.2, -1]),
        ("1x1 pixel: the ray points at the target", 1, 1, 30.0, [1.0, -2.0, 0.5], [3, 1, 2]),
        ("2x3 pixels, fov 0.5 degrees", 2, 3, 0.5, [0, 1, 0], [1, 1, 1]),
        ("2x2 pixels, fov 179.5 degrees", 2, 2, 179.5, [0, 0, 0], [1, 0, 0]),
    ]
    for what, h, w, fov, eye, target in cases:
        e, tg = _t(eye), _t(target)
        with case(what, height=h, width=w, fov_degrees=fov, eye=e, target=tg):
            origins, directions = ns.camera_rays(h, w, fov, e, tg)
            assert_shape(origins, (h * w, 3), what="origins")
            assert_close(origins, e.expand(h * w, 3), what="origins")
            expected = torch.from_numpy(_numpy_camera(h, w, fov, eye, target)).float()
            assert_close(directions, expected, atol=2e-6, rtol=1e-5, what="directions")


@check("camera_rays")
def camera_rays_keep_float64(ns: Namespace) -> None:
    eye, target = _t([1.0, 0.5, 2.0], torch.float64), _t([0.0, 0.0, 0.0], torch.float64)
    with case("float64 eye and target, 3x4 pixels", eye=eye, target=target):
        origins, directions = ns.camera_rays(3, 4, 50.0, eye, target)
        expected = torch.from_numpy(_numpy_camera(3, 4, 50.0, [1.0, 0.5, 2.0], [0, 0, 0]))
        assert_close(directions, expected, what="directions")
        assert_equal(origins.dtype, torch.float64, what="origins dtype")


@check("camera_rays")
def camera_rays_reject_bad_cameras(ns: Namespace) -> None:
    eye, target = _t([0.0, 0.0, 0.0]), _t([0.0, 0.0, -1.0])
    for h, w, fov in ((0, 4, 60.0), (4, 0, 60.0), (3, 3, 0.0), (3, 3, 180.0), (3, 3, -10.0)):
        with case(f"height={h}, width={w}, fov_degrees={fov}"):
            assert_raises(ns.camera_rays, h, w, fov, eye, target, exc=ValueError)
    for what, e, tg in (
        ("eye == target", [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),
        ("looking straight up", [0.0, 0.0, 0.0], [0.0, 5.0, 0.0]),
        ("looking straight down", [1.0, 2.0, 3.0], [1.0, -1.0, 3.0]),
    ):
        with case(what, eye=_t(e), target=_t(tg)):
            assert_raises(ns.camera_rays, 2, 2, 60.0, _t(e), _t(tg), exc=ValueError)


@check("camera_rays")
def camera_rays_have_no_python_loop(ns: Namespace) -> None:
    eye, target = _t([0.0, 1.0, 4.0]), _t([0.0, 0.0, 0.0])
    _no_loop(ns.camera_rays, lambda n: (3, n, 50.0, eye, target), "camera_rays")


# ----------------------------------------------------------------------------------------------
# ray_sphere_distance


@check("ray_sphere_distance")
def sphere_distances_match_brute_force(ns: Namespace) -> None:
    g = generator(7)
    center, radius = _t([0.5, -0.25, 1.0]), 1.5
    starts = torch.randn(40, 3, generator=g) * 2.5 + center  # some inside, most outside
    aims = center + torch.randn(40, 3, generator=g) * 1.2
    directions = torch.nn.functional.normalize(aims - starts, dim=1)
    directions[::5] *= -1  # a few look away from the sphere: behind them, a miss
    expected = torch.tensor(
        [
            _brute_sphere(o, d, center.tolist(), radius)
            for o, d in zip(starts.tolist(), directions.tolist(), strict=True)
        ]
    )
    expect(
        bool(expected.isfinite().sum() >= 10) and bool(expected.isinf().sum() >= 5),
        "course bug: the random rays should both hit and miss",
    )
    with case("40 random rays, sphere at (0.5, -0.25, 1) of radius 1.5", origins=starts):
        got = ns.ray_sphere_distance(starts, directions, center, radius)
        assert_close(got, expected, rtol=1e-4, atol=1e-4)


@check("ray_sphere_distance")
def sphere_distances_on_exact_cases(ns: Namespace) -> None:
    origins = _t(
        [
            [0, 0, -5],  # straight at the centre: hits at 4
            [1, 0, -5],  # tangent: the double root, a hit at 5
            [1, 0.5, -5],  # just beside: a miss
            [0, 0, 0],  # from the centre: 1 (the far root)
            [0, 0, -1],  # on the surface, going in: 0
            [0, 0, 1],  # on the surface, going out: 0
            [0, 0, 3],  # sphere behind: a miss
            [0, 0.6, -0.8],  # on the surface at a slant, going in
        ]
    )
    directions = _t([[0, 0, 1]] * 7 + [[0, -0.6, 0.8]])
    expected = _t([4.0, 5.0, math.inf, 1.0, 0.0, 0.0, math.inf, 0.0])
    with case("the unit sphere at the origin", origins=origins, directions=directions):
        got = ns.ray_sphere_distance(origins, directions, _t([0.0, 0.0, 0.0]), 1.0)
        assert_close(got, expected, atol=1e-6)
    with case("float64 rays, sphere of radius 2 at (0, 0, 1)"):
        got = ns.ray_sphere_distance(
            origins.double(), directions.double(), _t([0.0, 0.0, 1.0], torch.float64), 2.0
        )
        expected = torch.tensor(
            [4.0, 6 - math.sqrt(3), 6 - math.sqrt(2.75), 3.0], dtype=torch.float64
        )
        assert_close(got[:4], expected)


@check("ray_sphere_distance")
def sphere_rejects_bad_shapes(ns: Namespace) -> None:
    center = _t([0.0, 0.0, 0.0])
    for what, o, d in (
        ("origins (4, 2)", torch.zeros(4, 2), torch.zeros(4, 2)),
        ("origins (4, 3) but directions (5, 3)", torch.zeros(4, 3), torch.zeros(5, 3)),
        ("a single ray of shape (3,)", torch.zeros(3), torch.zeros(3)),
    ):
        with case(what, origins=o, directions=d):
            assert_raises(ns.ray_sphere_distance, o, d, center, 1.0, exc=ShapeError)


@check("ray_sphere_distance")
def sphere_has_no_python_loop(ns: Namespace) -> None:
    def make(n: int) -> tuple[Tensor, Tensor, Tensor, float]:
        o, d, _ = _random_scene(n, 1, seed=n)
        return o, d, _t([0.0, 0.0, 0.0]), 1.0

    _no_loop(ns.ray_sphere_distance, make, "ray_sphere_distance")


# ----------------------------------------------------------------------------------------------
# ray_triangle_distance


@check("ray_triangle_distance")
def triangle_distance_matches_brute_force(ns: Namespace) -> None:
    origins, directions, tris = _random_scene(40, 40, seed=11, paired=True)
    compared = hits = 0
    for i in range(40):
        expected, ambiguous = _brute_triangle(
            origins[i].tolist(), directions[i].tolist(), tris[i].tolist()
        )
        if ambiguous:
            continue
        compared += 1
        hits += expected < math.inf
        with case(f"random ray and triangle #{i}", origin=origins[i], triangle=tris[i]):
            got = ns.ray_triangle_distance(origins[i], directions[i], tris[i])
            expect(isinstance(got, float), f"expected a Python float, got {got!r}")
            assert_close(got, expected, rtol=1e-4, atol=1e-4)
    expect(compared >= 35 and hits >= 10, "course bug: too many ambiguous pairs or misses")


@check("ray_triangle_distance")
def triangle_distance_on_exact_cases(ns: Namespace) -> None:
    tri = _SQUARE[0]
    down, up = _t([0.0, 0.0, -1.0]), _t([0.0, 0.0, 1.0])
    cases = [
        ("from above, straight down at (0.75, 0.25)", _t([0.75, 0.25, 2.0]), down, 2.0),
        ("from below, straight up (the back face)", _t([0.75, 0.25, -3.0]), up, 3.0),
        ("from just above: t = 0.5", _t([0.5, 0.25, 0.5]), down, 0.5),
        ("origin on the triangle (t = 0 is not a hit)", _t([0.75, 0.25, 0.0]), down, math.inf),
        ("triangle behind the ray", _t([0.75, 0.25, 2.0]), up, math.inf),
        ("beside the triangle", _t([0.25, 0.75, 2.0]), down, math.inf),
        ("parallel to the plane, in it", _t([-1.0, 0.25, 0.0]), _t([1.0, 0.0, 0.0]), math.inf),
        ("parallel to the plane, above it", _t([-1.0, 0.25, 1.0]), _t([1.0, 0.0, 0.0]), math.inf),
    ]
    for what, origin, direction, expected in cases:
        with case(what, origin=origin, direction=direction, triangle=tri):
            assert_close(ns.ray_triangle_distance(origin, direction, tri), expected)
    origins, directions = _down_rays(_ON_EDGES)
    for k in range(len(_ON_EDGES)):
        expected = 2.0 if _ON_FIRST[k] else math.inf
        with case(f"straight down at {_ON_EDGES[k]}: edges and vertices count", triangle=tri):
            assert_close(ns.ray_triangle_distance(origins[k], directions[k], tri), expected)
    flat = _t([[0, 0, 0], [1, 0, 0], [2, 0, 0]])
    with case("a degenerate triangle (three points on a line)", triangle=flat):
        assert_close(ns.ray_triangle_distance(_t([1.0, 0.0, 1.0]), down, flat), math.inf)


@check("ray_triangle_distance")
def triangle_distance_at_a_small_scale(ns: Namespace) -> None:
    # The determinant scales with the area: 1e-8 here. Only an exact 0 means parallel; a
    # tolerance like Moller-Trumbore's EPSILON (1e-6, or float32's 1.2e-7) misses these.
    scale = 1e-4
    tri = _SQUARE[0] * scale
    down = _t([0.0, 0.0, -1.0])
    for what, at, expected in [
        ("straight down at (0.75, 0.25) * 1e-4 from 2e-4 above", [0.75, 0.25], 2 * scale),
        ("straight down beside it, at (0.25, 0.75) * 1e-4", [0.25, 0.75], math.inf),
    ]:
        origin = _t([at[0] * scale, at[1] * scale, 2 * scale])
        what = f"a triangle of side 1e-4 (determinant 1e-8; only 0 is parallel): {what}"
        with case(what, origin=origin, triangle=tri):
            assert_close(ns.ray_triangle_distance(origin, down, tri), expected, rtol=1e-4, atol=0)


# ----------------------------------------------------------------------------------------------
# ray_mesh_distances


def _compare_with_brute(got: Tensor, origins: Tensor, directions: Tensor, tris: Tensor) -> None:
    expected, ambiguous = _brute_matrix(origins, directions, tris)
    expect(bool(expected.isfinite().any()), "course bug: no ray hits a triangle in this scene")
    assert_shape(got, tuple(expected.shape))
    expected = torch.where(ambiguous, got.double(), expected).to(got.dtype)
    assert_close(got, expected, rtol=1e-4, atol=1e-4)


@check("ray_mesh_distances")
def mesh_distances_match_brute_force(ns: Namespace) -> None:
    for what, n_rays, n_tris, seed in (
        ("30 random rays, 20 random triangles", 30, 20, 1),
        ("7 rays, 1 triangle", 7, 1, 1),
        ("1 ray, 9 triangles", 1, 9, 1),
        ("3 rays, 3 triangles", 3, 3, 5),
    ):
        origins, directions, tris = _random_scene(n_rays, n_tris, seed)
        with case(what, origins=origins, triangles=tris):
            got = ns.ray_mesh_distances(origins, directions, tris)
            _compare_with_brute(got, origins, directions, tris)
    # 0.1 mm triangles in metres: every determinant is ~1e-8, distances scale with the scene
    origins, directions, tris = _random_scene(30, 20, seed=1)
    expected, ambiguous = _brute_matrix(origins, directions, tris)
    small_o, small_t = origins * 1e-4, tris * 1e-4
    what = "30 rays, 20 triangles, all scaled by 1e-4 (determinants ~1e-8; only 0 is parallel)"
    with case(what, triangles=small_t):
        got = ns.ray_mesh_distances(small_o, directions, small_t)
        assert_shape(got, tuple(expected.shape))
        expected = torch.where(ambiguous, got.double(), expected * 1e-4).to(got.dtype)
        assert_close(got, expected, rtol=1e-4, atol=1e-8)
    origins, directions, tris = _random_scene(12, 8, seed=6)
    o, d, t = origins.double(), directions.double(), tris.double()
    with case("float64 inputs", origins=o, triangles=t):
        got = ns.ray_mesh_distances(o, d, t)
        assert_equal(got.dtype, torch.float64, what="dtype")
        _compare_with_brute(got, o, d, t)


@check("ray_mesh_distances")
def mesh_distances_at_known_points(ns: Namespace) -> None:
    _, _, tris = _random_scene(1, 10, seed=21)
    a, b, c = tris.double().unbind(dim=1)
    normal = torch.nn.functional.normalize(torch.linalg.cross(b - a, c - a), dim=1)
    centroid = (a + b + c) / 3
    heights = torch.linspace(0.5, 3.0, 10, dtype=torch.float64)
    origins = (centroid + heights[:, None] * normal).float()
    with case("a ray from above each triangle's centroid, along the normal", triangles=tris):
        got = ns.ray_mesh_distances(origins, (-normal).float(), tris)
        assert_close(got.diagonal(), heights.float(), rtol=1e-4, atol=1e-5, what="diagonal")
    with case("the same rays pointing away: the triangle is behind them", triangles=tris):
        got = ns.ray_mesh_distances(origins, normal.float(), tris)
        assert_equal(got.diagonal().isinf().all().item(), True, what="all diagonal are inf")
    with case("rays parallel to each triangle, above its centroid", triangles=tris):
        along = torch.nn.functional.normalize(b - a, dim=1).float()
        got = ns.ray_mesh_distances(origins, along, tris)
        assert_equal(got.diagonal().isinf().all().item(), True, what="all diagonal are inf")


@check("ray_mesh_distances")
def mesh_distances_on_edges_and_vertices(ns: Namespace) -> None:
    origins, directions = _down_rays(_ON_EDGES)
    expected = torch.where(_t([_ON_FIRST, _ON_SECOND], torch.bool).T, 2.0, math.inf)
    with case("rays straight down at edges and vertices of a split unit square"):
        assert_equal(ns.ray_mesh_distances(origins, directions, _SQUARE), expected)
    origins, directions = _down_rays([[0.75, 0.25], [0.25, 0.75]], height=0.0)
    with case("rays starting on the triangles: t = 0 is not a hit"):
        got = ns.ray_mesh_distances(origins, directions, _SQUARE)
        assert_equal(got, torch.full((2, 2), math.inf))
    flat = _t([[[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 0, 0], [0, 0, 0], [0, 0, 0]]])
    origins, directions = _down_rays([[1.0, 0.0], [0.0, 0.0]], height=1.0)
    with case("degenerate triangles (a line, a point) are never hit", triangles=flat):
        assert_equal(ns.ray_mesh_distances(origins, directions, flat), torch.full((2, 2), math.inf))
    in_plane = _t([[-1.0, 0.25, 0.0], [-1.0, 0.5, 0.0]])
    sideways = _t([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]) / _t([[1.0], [math.sqrt(2)]])
    with case("rays in the triangles' plane (parallel to it) miss"):
        got = ns.ray_mesh_distances(in_plane, sideways, _SQUARE)
        assert_equal(got, torch.full((2, 2), math.inf))


@check("ray_mesh_distances")
def mesh_distances_reject_bad_shapes(ns: Namespace) -> None:
    o, d, _ = _random_scene(4, 1, seed=0)
    for what, oo, dd, tris in (
        ("triangles (5, 3): vertices, not triangles", o, d, torch.zeros(5, 3)),
        ("triangles (5, 3, 2)", o, d, torch.zeros(5, 3, 2)),
        ("triangles (5, 4, 3): quads", o, d, torch.zeros(5, 4, 3)),
        ("origins (4, 2)", o[:, :2], d[:, :2], torch.zeros(5, 3, 3)),
        ("origins (4, 3) but directions (3, 3)", o, d[:3], torch.zeros(5, 3, 3)),
    ):
        with case(what, origins=oo, directions=dd, triangles=tris):
            assert_raises(ns.ray_mesh_distances, oo, dd, tris, exc=ShapeError)


@check("ray_mesh_distances")
def mesh_distances_have_no_python_loop(ns: Namespace) -> None:
    _no_loop(ns.ray_mesh_distances, lambda n: _random_scene(n, n, seed=n), "ray_mesh_distances")


# ----------------------------------------------------------------------------------------------
# nearest_hits


def _brute_nearest(origins: Tensor, directions: Tensor, tris: Tensor) -> tuple[Tensor, Tensor]:
    matrix, ambiguous = _brute_matrix(origins, directions, tris)
    expect(not bool(ambiguous.any()), "course bug: an ambiguous pair in a nearest-hit check")
    t, index = [], []
    for row in matrix.tolist():
        best = min(range(len(row)), key=lambda k: (row[k], k)) if row else -1
        t.append(row[best] if row else math.inf)
        index.append(best if row and row[best] < math.inf else -1)
    return torch.tensor(t, dtype=torch.float32), torch.tensor(index)


@check("nearest_hits")
def nearest_hits_match_brute_force(ns: Namespace) -> None:
    origins, directions, tris = _random_scene(10, 25, seed=3)
    t, index = _brute_nearest(origins, directions, tris)
    expect(bool((index >= 0).sum() >= 5) and bool((index < 0).sum() >= 1), "course bug: scene")
    for chunk in (4096, 1, 3, 4, 10, 11):
        with case(f"10 random rays, 25 triangles, chunk_size={chunk}", origins=origins):
            got = ns.nearest_hits(origins, directions, tris, chunk)
            assert_close(tuple(got), (t, index), rtol=1e-4, atol=1e-4)


@check("nearest_hits")
def nearest_hits_edge_cases(ns: Namespace) -> None:
    origins, directions = _down_rays([[0.5, 0.5], [0.75, 0.25], [0.25, 0.75], [2.0, 2.0]])
    with case("a shared edge is a tie: the lowest index wins", triangles=_SQUARE):
        got = ns.nearest_hits(origins, directions, _SQUARE, 2)
        assert_equal(tuple(got), (_t([2.0, 2.0, 2.0, math.inf]), torch.tensor([0, 0, 1, -1])))
    stack = torch.cat([_SQUARE + _t([0, 0, -1.0]), _SQUARE, _SQUARE + _t([0, 0, 1.0])])
    with case("three stacked squares: the nearest is the top one", triangles=stack):
        got = ns.nearest_hits(origins, directions, stack)
        assert_equal(tuple(got), (_t([1.0, 1.0, 1.0, math.inf]), torch.tensor([4, 4, 5, -1])))
    with case("one triangle", triangles=_SQUARE[1:]):
        got = ns.nearest_hits(origins, directions, _SQUARE[1:])
        assert_equal(tuple(got), (_t([2.0, math.inf, 2.0, math.inf]), torch.tensor([0, -1, 0, -1])))
    with case("no triangles at all: every ray misses"):
        got = ns.nearest_hits(origins, directions, torch.zeros(0, 3, 3))
        assert_equal(tuple(got), (torch.full((4,), math.inf), torch.full((4,), -1)))
    with case("no rays"):
        got = ns.nearest_hits(torch.zeros(0, 3), torch.zeros(0, 3), _SQUARE)
        assert_equal(tuple(got), (torch.zeros(0), torch.zeros(0, dtype=torch.long)))
    with case("float64 rays"):
        t, _ = ns.nearest_hits(origins.double(), directions.double(), _SQUARE.double())
        assert_equal(t.dtype, torch.float64, what="dtype of the distances")
    for chunk in (0, -3):
        with case(f"chunk_size={chunk}"):
            assert_raises(
                ns.nearest_hits,
                origins,
                directions,
                _SQUARE,
                chunk,
                exc=ValueError,
                match="chunk_size",
            )


@check("nearest_hits")
def nearest_hits_have_no_python_loop(ns: Namespace) -> None:
    _no_loop(ns.nearest_hits, lambda n: _random_scene(n, 30, seed=n), "nearest_hits")


# ----------------------------------------------------------------------------------------------
# face_normals


@check("face_normals")
def face_normals_match_numpy(ns: Namespace) -> None:
    _, _, tris = _random_scene(1, 12, seed=31)
    for what, x in (
        ("12 random triangles", tris),
        ("float64", tris.double()),
        ("every other triangle (non-contiguous)", tris[::2]),
    ):
        v = x.double().numpy()
        n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
        expected = torch.from_numpy(n / np.linalg.norm(n, axis=1, keepdims=True)).to(x.dtype)
        with case(what, triangles=x):
            assert_close(ns.face_normals(x), expected, rtol=1e-5, atol=1e-6)
    known = _t([[[0, 0, 0], [2, 0, 0], [0, 3, 0]], [[0, 0, 1], [0, 2, 1], [0, 0, 3]]])
    with case("counter-clockwise seen from +z and from +x", triangles=known):
        assert_close(ns.face_normals(known), _t([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    flat = _t([[[0, 0, 0], [1, 1, 1], [2, 2, 2]], [[1, 2, 3], [0, 0, 1], [1, 2, 3]]])
    with case("degenerate triangles get the zero vector", triangles=flat):
        assert_equal(ns.face_normals(flat), torch.zeros(2, 3))


# ----------------------------------------------------------------------------------------------
# lambert_shade


def _brute_shade(
    dirs: Tensor, index: Tensor, normals: Tensor, light: Vec, ambient: float
) -> Tensor:
    norm = math.sqrt(_dot(light, light))
    out = []
    for d, k in zip(dirs.double().tolist(), index.tolist(), strict=True):
        if k < 0:
            out.append(0.0)
            continue
        n = normals[k].double().tolist()
        if _dot(n, d) > 0:
            n = [-x for x in n]
        out.append(ambient + (1 - ambient) * max(0.0, _dot(n, light) / norm))
    return torch.tensor(out, dtype=dirs.dtype)


@check("lambert_shade")
def lambert_matches_brute_force(ns: Namespace) -> None:
    g = generator(41)
    normals = torch.nn.functional.normalize(torch.randn(6, 3, generator=g), dim=1)
    dirs = torch.nn.functional.normalize(torch.randn(20, 3, generator=g), dim=1)
    index = torch.randint(-1, 6, (20,), generator=g)
    index[:3] = torch.tensor([0, 5, -1])
    for what, light, ambient, dtype in (
        ("a unit light, ambient 0.1", [0.6, 0.8, 0.0], 0.1, torch.float32),
        ("a light of length 3, ambient 0.3", [1.0, -2.0, 2.0], 0.3, torch.float32),
        ("float64, no ambient light", [-0.5, 1.0, 0.25], 0.0, torch.float64),
    ):
        d, n = dirs.to(dtype), normals.to(dtype)
        with case(what, directions=d, index=index, normals=n, light=light, ambient=ambient):
            got = ns.lambert_shade(d, index, n, _t(light, dtype), ambient)
            assert_close(got, _brute_shade(d, index, n, light, ambient), rtol=1e-5, atol=1e-6)


@check("lambert_shade")
def lambert_on_exact_cases(ns: Namespace) -> None:
    normals = _t([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    dirs = _t([[0, 0, -1], [0, 0, 1], [0, 0, -1], [1, 0, 0], [0, -1, 0], [0, 0, 1]])
    index = torch.tensor([0, 0, 1, 1, 1, -1])
    light = _t([0.0, 0.0, 2.0])  # straight above the first triangle
    # [facing the light, seen from behind (flipped away from it), grazing light,
    #  seen edge-on (n . d == 0: not flipped), facing the camera, a miss]
    expected = _t([1.0, 0.2, 0.2, 0.2, 0.2, 0.0])
    with case("a light straight above, ambient 0.2", directions=dirs, index=index):
        assert_close(ns.lambert_shade(dirs, index, normals, light, 0.2), expected)
    light = _t([0.0, 3.0, 4.0])  # unit direction (0, 0.6, 0.8)
    expected = _t([0.2 + 0.8 * 0.8, 0.2, 0.2 + 0.8 * 0.6, 0.2 + 0.8 * 0.6, 0.2 + 0.8 * 0.6, 0.0])
    with case("a slanted light of length 5, ambient 0.2", directions=dirs, index=index):
        assert_close(ns.lambert_shade(dirs, index, normals, light, 0.2), expected)


# ----------------------------------------------------------------------------------------------
# render


@check("render")
def render_matches_brute_force(ns: Namespace) -> None:
    tris = cube(1.2, center=(0.1, -0.2, 0.0))
    eye, target, light = [1.6, 1.1, 2.0], [0.1, -0.5, 0.0], [1.0, 2.0, 0.5]
    h, w, fov = 6, 9, 45.0
    dirs = torch.from_numpy(_numpy_camera(h, w, fov, eye, target))
    origins = torch.tensor([eye], dtype=torch.float64).expand(h * w, 3)
    _, index = _brute_nearest(origins, dirs, tris)
    v = tris.double().numpy()
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    normals = torch.from_numpy(n / np.linalg.norm(n, axis=1, keepdims=True))
    expected = _brute_shade(dirs, index, normals, light, 0.15).float().reshape(h, w)
    expect(bool((index >= 0).sum() >= 15), "course bug: the cube should fill part of the image")
    with case(f"a cube, {h}x{w} pixels", triangles=tris):
        got = ns.render(tris, h, w, fov, _t(eye), _t(target), _t(light), 0.15)
        assert_close(got, expected, rtol=1e-4, atol=1e-5)


@check("render")
def render_silhouette_of_a_sphere(ns: Namespace) -> None:
    # A convex mesh lies between its inscribed and circumscribed spheres, so its silhouette lies
    # between theirs: a disc of radius rho = r / sqrt(D^2 - r^2) on the screen at distance 1.
    # Counting pixel centres adds at most half a pixel diagonal to each radius.
    tris = icosphere(2, radius=1.0)
    a, b, c = tris.double().unbind(dim=1)
    normal = torch.nn.functional.normalize(torch.linalg.cross(b - a, c - a), dim=1)
    r_in, dist, h, w, fov = float((normal * a).sum(1).min()), 6.0, 64, 80, 30.0
    pixel = 2 * math.tan(math.radians(fov) / 2) / h

    def radius_px(r: float) -> float:
        return r / math.sqrt(dist**2 - r**2) / pixel

    low = math.pi * (radius_px(r_in) - 0.71) ** 2
    high = math.pi * (radius_px(1.0) + 0.71) ** 2
    with case(f"an icosphere of radius 1 (inscribed radius {r_in:.4f}) seen from {dist} away"):
        image = ns.render(tris, h, w, fov, _t([0, 0, dist]), _t([0, 0, 0]), _t([1, 1, 1]), 0.2)
        assert_shape(image, (h, w))
        count = int((image > 0).sum())
        expect(
            low <= count <= high,
            f"{count} pixels show the sphere; a {h}x{w} image with a {fov} degree field of "
            f"view should show between {low:.0f} and {high:.0f}",
        )
        expect(
            bool(image.max() <= 1 + 1e-5) and bool(image[image > 0].min() >= 0.2 - 1e-6),
            f"values should be in [0.2, 1] on the sphere, got [{image.min()}, {image.max()}]",
        )
