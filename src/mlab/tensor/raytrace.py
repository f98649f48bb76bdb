"""A batched ray tracer: every camera ray against every triangle at once, with no Python loop.

A ray is ``origin + t * direction`` for ``t > 0``. A pinhole camera sends one ray per pixel
(:func:`camera_rays`); a ray meets a triangle ``A, B, C`` where ``origin + t d`` equals the
point ``A + u (B - A) + v (C - A)`` with barycentric coordinates ``u, v >= 0, u + v <= 1``
(Möller & Trumbore, "Fast, minimum storage ray/triangle intersection", 1997). Broadcasting a
``(rays, 1, 3)`` tensor against a ``(1, tris, 3)`` one solves all pairs together
(:func:`ray_mesh_distances`); the nearest hit per ray, the triangle's normal and Lambert's
cosine law give a shaded image (:func:`render`). :func:`demo` adds colour, shadows, a floor and
a sky for ``mlab demo raytrace``. The exercises follow ARENA's ray-tracing day (Callum McDougall
et al.), reworked around a real mesh format (:mod:`mlab.tensor.meshes`).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

from mlab.errors import ConfigError, ShapeError
from mlab.images import write_png
from mlab.tensor.meshes import cube, face_normals, icosphere, quad, read_stl

__all__ = [
    "camera_rays",
    "demo",
    "lambert_shade",
    "nearest_hits",
    "ray_mesh_distances",
    "ray_sphere_distance",
    "ray_triangle_distance",
    "render",
]


def _check_rays(origins: Tensor, directions: Tensor) -> None:
    if origins.ndim != 2 or origins.shape[1] != 3 or origins.shape != directions.shape:
        raise ShapeError(
            f"origins has shape {tuple(origins.shape)} and directions {tuple(directions.shape)}; "
            "both should be (rays, 3), one row per ray (reshape(-1, 3) an image of rays)"
        )


def camera_rays(
    height: int,
    width: int,
    fov_degrees: float,
    eye: Float[Tensor, " 3"],
    target: Float[Tensor, " 3"],
) -> tuple[Float[Tensor, "rays 3"], Float[Tensor, "rays 3"]]:
    """One ray per pixel of a ``height x width`` pinhole camera at ``eye`` looking at ``target``.

    The camera's axes: ``forward = normalise(target - eye)``, ``right = normalise(forward x up)``
    with the world's up ``(0, 1, 0)``, and its own ``up = right x forward``. The ray of pixel
    ``(i, j)`` (row ``i`` from the top, column ``j`` from the left) is row ``i * width + j`` of
    the outputs and passes through the pixel's centre:

        x = ((2 * j + 1) / width - 1) * tan(fov / 2) * width / height
        y = (1 - (2 * i + 1) / height) * tan(fov / 2)
        direction = normalise(forward + x * right + y * up)

    so ``fov_degrees`` is the vertical field of view, and pixels are square. ``origins`` is
    ``eye`` for every ray (an expanded view is fine); ``directions`` have unit length. Both have
    ``eye``'s dtype. Raise ``ValueError`` unless ``height, width >= 1`` and
    ``0 < fov_degrees < 180``, or when ``target - eye`` is zero or parallel to the world's up.
    """
    if height < 1 or width < 1 or not 0 < fov_degrees < 180:
        raise ValueError(
            f"height={height}, width={width}, fov_degrees={fov_degrees}: need at least one "
            "pixel each way and a field of view strictly between 0 and 180 degrees"
        )
    forward = target - eye
    right = torch.linalg.cross(forward, eye.new_tensor([0.0, 1.0, 0.0]))
    if not right.any():
        raise ValueError(
            f"eye={eye.tolist()}, target={target.tolist()}: the view direction is zero or "
            "straight up/down, so 'right' is undefined; move the target sideways a little"
        )
    forward, right = forward / forward.norm(), right / right.norm()
    up = torch.linalg.cross(right, forward)
    half = math.tan(math.radians(fov_degrees) / 2)
    ys = (1 - (2 * torch.arange(height, dtype=eye.dtype) + 1) / height) * half
    xs = ((2 * torch.arange(width, dtype=eye.dtype) + 1) / width - 1) * half * width / height
    directions = forward + xs[None, :, None] * right + ys[:, None, None] * up  # (H, W, 3)
    directions = torch.nn.functional.normalize(directions.reshape(-1, 3), dim=1)
    return eye.expand(height * width, 3), directions


def ray_sphere_distance(
    origins: Float[Tensor, "rays 3"],
    directions: Float[Tensor, "rays 3"],
    center: Float[Tensor, " 3"],
    radius: float,
) -> Float[Tensor, " rays"]:
    """The distance ``t >= 0`` along each ray to the first point where it meets the sphere, or
    ``inf`` when it misses. Directions have unit length.

    Substituting the ray into ``|p - center|^2 = radius^2`` gives the quadratic
    ``t^2 + 2 b t + c = 0`` with ``b = d . (o - center)`` and ``c = |o - center|^2 - radius^2``.
    No real root (``b^2 - c < 0``) is a miss; otherwise take the smaller root
    ``-b - sqrt(b^2 - c)`` if it is ``>= 0``, else the larger one (the origin is inside the
    sphere), and if that is negative too the sphere is behind the ray: a miss. A tangent ray
    (one double root) hits. Raise ``ShapeError`` unless origins and directions are both
    ``(rays, 3)``: the helper ``_check_rays(origins, directions)`` does that.
    """
    _check_rays(origins, directions)
    oc = origins - center
    b = (directions * oc).sum(dim=1)
    disc = b * b - ((oc * oc).sum(dim=1) - radius**2)
    near, far = -b - disc.sqrt(), -b + disc.sqrt()  # NaN where disc < 0: no real root
    t = torch.where(near >= 0, near, far)
    return torch.where(t >= 0, t, torch.inf)  # NaN >= 0 is False: a miss


def ray_triangle_distance(
    origin: Float[Tensor, " 3"], direction: Float[Tensor, " 3"], triangle: Float[Tensor, "3 3"]
) -> float:
    """Where one ray meets one triangle: the distance ``t`` as a Python float, or ``math.inf``.

    With the triangle's vertices ``A, B, C`` (its rows), solve the 3x3 linear system
    ``origin + t * direction = A + u * (B - A) + v * (C - A)`` for ``(t, u, v)``, for example
    with ``torch.linalg.solve`` (its matrix has columns ``-direction, B - A, C - A``). The ray
    hits when ``t > 0``, ``u >= 0``, ``v >= 0`` and ``u + v <= 1``: edges and vertices count,
    and either side of the triangle may face the ray. When the system is singular
    (determinant exactly 0: the ray is parallel to the triangle's plane, or the triangle has no
    area) it misses.
    """
    a, b, c = triangle
    matrix = torch.stack((-direction, b - a, c - a), dim=1)
    if torch.linalg.det(matrix) == 0:
        return math.inf
    t, u, v = torch.linalg.solve(matrix, origin - a)
    return float(t) if t > 0 and u >= 0 and v >= 0 and u + v <= 1 else math.inf


def ray_mesh_distances(
    origins: Float[Tensor, "rays 3"],
    directions: Float[Tensor, "rays 3"],
    triangles: Float[Tensor, "tris 3 3"],
) -> Float[Tensor, "rays tris"]:
    """The distance along every ray to every triangle, ``inf`` where it misses, all pairs at
    once: the same rule as :func:`ray_triangle_distance`, with no Python loop.

    Möller-Trumbore solves the system by Cramer's rule: with ``e1 = B - A``, ``e2 = C - A``,
    ``s = o - A``, ``p = d x e2``, ``q = s x e1`` and ``det = e1 . p``,
    ``u = (s . p) / det``, ``v = (d . q) / det`` and ``t = (e2 . q) / det``. Give the rays a
    triangle axis and the triangles a ray axis, so each of these is ``(rays, tris)`` (or
    ``(rays, tris, 3)`` before the dot products). A zero determinant yields inf or NaN, and
    every comparison with NaN is False: a miss without a special case. Output has the inputs'
    dtype. Raise ``ShapeError`` unless origins and directions are ``(rays, 3)`` (call
    ``_check_rays(origins, directions)``) and triangles ``(tris, 3, 3)``.
    """
    _check_rays(origins, directions)
    if triangles.shape[1:] != (3, 3):
        raise ShapeError(
            f"triangles has shape {tuple(triangles.shape)}; expected (tris, 3, 3): three "
            "vertices of three coordinates each"
        )
    a, b, c = triangles[None].unbind(dim=2)  # each (1, tris, 3)
    d = directions[:, None]  # (rays, 1, 3)
    s = origins[:, None] - a  # (rays, tris, 3)
    e1, e2 = b - a, c - a
    p = torch.linalg.cross(d, e2)
    q = torch.linalg.cross(s, e1)
    det = (e1 * p).sum(dim=-1)
    u = (s * p).sum(dim=-1) / det
    v = (d * q).sum(dim=-1) / det
    t = (e2 * q).sum(dim=-1) / det
    return torch.where((u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0), t, torch.inf)


def nearest_hits(
    origins: Float[Tensor, "rays 3"],
    directions: Float[Tensor, "rays 3"],
    triangles: Float[Tensor, "tris 3 3"],
    chunk_size: int = 4096,
) -> tuple[Float[Tensor, " rays"], Int[Tensor, " rays"]]:
    """For each ray, the distance to the nearest triangle it hits and that triangle's index
    (int64); ``inf`` and ``-1`` for a ray that hits nothing (or when there are no triangles).
    On a tie the lowest index wins.

    Use :func:`ray_mesh_distances` on ``chunk_size`` rays at a time: its ``(rays, tris)``
    matrix, and the ``(rays, tris, 3)`` temporaries behind it, would not fit in memory for a
    large image at once. Raise ``ValueError`` (naming ``chunk_size``) if ``chunk_size < 1``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size}: process at least 1 ray per chunk")
    t = torch.full((len(origins),), torch.inf, dtype=origins.dtype)
    index = torch.full((len(origins),), -1)
    if len(triangles) == 0:
        return t, index
    for start in range(0, len(origins), chunk_size):
        end = start + chunk_size
        t[start:end], index[start:end] = ray_mesh_distances(
            origins[start:end], directions[start:end], triangles
        ).min(dim=1)
    index[t.isinf()] = -1
    return t, index


def lambert_shade(
    directions: Float[Tensor, "rays 3"],
    index: Int[Tensor, " rays"],
    normals: Float[Tensor, "tris 3"],
    light: Float[Tensor, " 3"],
    ambient: float = 0.1,
) -> Float[Tensor, " rays"]:
    """The brightness of each ray's pixel under a distant light, by Lambert's cosine law.

    A ray that hits nothing (``index == -1``) gives 0. A ray that hits triangle ``k`` gives
    ``ambient + (1 - ambient) * max(0, n . l)``, where ``l = light / |light|`` is the unit
    direction towards the light and ``n`` is ``normals[k]`` turned to face the camera: negated
    when ``n . direction > 0`` (so both sides of a triangle are lit alike). Output has the
    directions' dtype, values in ``[0, 1]`` (up to rounding).
    """
    n = normals[index]  # index -1 picks the last normal; those rays are masked below
    n = torch.where((n * directions).sum(dim=1, keepdim=True) > 0, -n, n)
    cosine = ((n * light).sum(dim=1) / light.norm()).clamp(min=0)
    return torch.where(index >= 0, ambient + (1 - ambient) * cosine, 0.0)


def render(
    triangles: Float[Tensor, "tris 3 3"],
    height: int,
    width: int,
    fov_degrees: float,
    eye: Float[Tensor, " 3"],
    target: Float[Tensor, " 3"],
    light: Float[Tensor, " 3"],
    ambient: float = 0.1,
) -> Float[Tensor, "height width"]:
    """A greyscale picture of the mesh, values in ``[0, 1]`` (up to rounding): one ray per
    pixel from :func:`camera_rays`, the nearest hit of each (:func:`nearest_hits`), and the
    brightness :func:`lambert_shade` gives with the normals of
    :func:`mlab.tensor.meshes.face_normals`, as a ``(height, width)`` image (pixel ``(i, j)``
    is ray ``i * width + j``)."""
    origins, directions = camera_rays(height, width, fov_degrees, eye, target)
    _, index = nearest_hits(origins, directions, triangles)
    shade = lambert_shade(directions, index, face_normals(triangles), light, ambient)
    return shade.reshape(height, width)


# ----------------------------------------------------------------------------------------------
# The demo: colour, shadows, a floor and a sky (library code, not an exercise)

_SKY_TOP = torch.tensor([0.35, 0.52, 0.80])
_SKY_HORIZON = torch.tensor([0.86, 0.90, 0.95])


def _fit(triangles: Tensor, height: float) -> Tensor:
    """Scale and move a mesh so its largest side is ``height`` and it stands on y = 0."""
    lo, hi = triangles.reshape(-1, 3).amin(0), triangles.reshape(-1, 3).amax(0)
    scale = height / float((hi - lo).max().clamp(min=1e-12))
    base = torch.stack([(lo[0] + hi[0]) / 2, lo[1], (lo[2] + hi[2]) / 2])
    return (triangles - base) * scale


def _turn(triangles: Tensor, angle: float, shift: tuple[float, float, float]) -> Tensor:
    """Rotate a mesh by ``angle`` radians about the y axis, then move it by ``shift``."""
    c, s = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
    return triangles @ rotation + torch.tensor(shift)


# a shape in the demo: its triangles, its colour, and its centre if it is a smooth sphere
_Shape = tuple[Tensor, tuple[float, float, float], tuple[float, float, float] | None]


def _demo_shapes(mesh: str, stl: Path | None) -> list[_Shape]:
    red, blue, sand = (0.85, 0.22, 0.18), (0.22, 0.42, 0.85), (0.80, 0.62, 0.35)
    if stl is not None:
        return [(_fit(read_stl(stl), 2.0), sand, None)]
    sphere: _Shape = (icosphere(3, center=(-0.6, 1.0, 0.0)), red, (-0.6, 1.0, 0.0))
    box: _Shape = (_turn(_fit(cube(), 1.1), 0.6, (1.3, 0.0, -0.5)), blue, None)
    shapes: dict[str, list[_Shape]] = {
        "icosphere": [(icosphere(3, center=(0.2, 1.0, 0.0)), red, (0.2, 1.0, 0.0))],
        "cube": [(_turn(_fit(cube(), 1.6), 0.6, (0.2, 0.0, 0.0)), blue, None)],
        "scene": [sphere, box],
    }
    if mesh not in shapes:
        raise ConfigError(f"mesh={mesh!r}: choose one of {', '.join(shapes)} (or pass an STL file)")
    return shapes[mesh]


def _bounding_sphere(tris: Tensor) -> tuple[Tensor, float]:
    points = tris.reshape(-1, 3)
    center = (points.amin(0) + points.amax(0)) / 2
    return center, float((points - center).norm(dim=1).max())


def _clusters(rows: Tensor, tris: Tensor, size: int) -> list[Tensor]:
    """Split triangle numbers ``rows`` into groups of at most ``size`` that lie close together:
    halve at the median centroid along the widest axis, again and again (a k-d split)."""
    if len(rows) <= size:
        return [rows]
    centroids = tris[rows].mean(dim=1)
    axis = int((centroids.amax(0) - centroids.amin(0)).argmax())
    order = rows[centroids[:, axis].argsort()]
    half = len(rows) // 2
    return _clusters(order[:half], tris, size) + _clusters(order[half:], tris, size)


def _trace(origins: Tensor, directions: Tensor, meshes: list[Tensor]) -> tuple[Tensor, Tensor]:
    """:func:`nearest_hits` over several meshes, trying each cluster of nearby triangles only
    on the rays that meet the mesh's bounding sphere and then the cluster's (a two-level
    bounding-volume hierarchy: most rays skip most triangles)."""
    t = torch.full((len(origins),), torch.inf)
    index = torch.full((len(origins),), -1)
    offset = 0
    for tris in meshes:
        center, radius = _bounding_sphere(tris)
        near = ray_sphere_distance(origins, directions, center, radius).isfinite()
        mesh_rows = near.nonzero()[:, 0]
        for group in _clusters(torch.arange(len(tris)), tris, 32):
            center, radius = _bounding_sphere(tris[group])
            o, d = origins[mesh_rows], directions[mesh_rows]
            rows = mesh_rows[ray_sphere_distance(o, d, center, radius).isfinite()]
            sub_t, sub_index = nearest_hits(origins[rows], directions[rows], tris[group])
            closer = sub_t < t[rows]
            t[rows[closer]] = sub_t[closer]
            index[rows[closer]] = group[sub_index[closer]] + offset
        offset += len(tris)
    return t, index


def render_scene(shapes: list[_Shape], size: int) -> Float[Tensor, "size size 3"]:
    """Render coloured meshes standing on a checkered floor under a sky: Lambert shading from a
    low sun with a highlight, shadows (a second batch of rays from each hit towards the sun),
    smooth normals on spheres, and haze that fades distant points into the horizon colour."""
    floor = quad([[-40.0, 0.0, -40.0], [-40.0, 0.0, 40.0], [40.0, 0.0, 40.0], [40.0, 0.0, -40.0]])
    meshes = [tris for tris, _, _ in shapes] + [floor]
    triangles = torch.cat(meshes)
    n_floor = len(triangles) - 2
    albedo = torch.cat([torch.tensor(colour).expand(len(tris), 3) for tris, colour, _ in shapes])
    eye, target = torch.tensor([1.4, 2.4, 5.2]), torch.tensor([0.2, 0.75, 0.0])
    light = torch.nn.functional.normalize(torch.tensor([0.8, 0.75, 0.6]), dim=0)

    origins, directions = camera_rays(size, size, 40.0, eye, target)
    t, index = _trace(origins, directions, meshes)
    hit = index >= 0
    points = origins + t.nan_to_num(posinf=0.0)[:, None] * directions
    normals = face_normals(triangles)[index]
    offset = 0
    for tris, _, center in shapes:  # a sphere's true normal hides its facets
        on = (index >= offset) & (index < offset + len(tris))
        if center is not None:
            smooth = torch.nn.functional.normalize(points - torch.tensor(center), dim=1)
            normals = torch.where(on[:, None], smooth, normals)
        offset += len(tris)
    normals = torch.where((normals * directions).sum(1, keepdim=True) > 0, -normals, normals)
    # shadow rays start a hair above the surface, so they do not hit their own triangle
    rows = hit.nonzero()[:, 0]
    shadow_t, _ = _trace(points[rows] + 2e-3 * normals[rows], light.expand(len(rows), 3), meshes)
    lit = torch.zeros(len(t))
    lit[rows] = shadow_t.isinf().float()
    cosine = (normals @ light).clamp(min=0)

    checker = ((points[:, 0].floor() + points[:, 2].floor()) % 2)[:, None]
    floor_colour = 0.72 + 0.16 * checker
    colour = torch.where(
        (index >= n_floor)[:, None], floor_colour, albedo[index.clamp(max=n_floor - 1)]
    )
    shade = colour * (0.2 + 0.8 * cosine * lit)[:, None]
    mirror = light - 2 * (light * normals).sum(1, keepdim=True) * normals
    glint = (directions * mirror).sum(1).clamp(min=0) ** 40 * lit * (index < n_floor)
    shade = shade + 0.4 * glint[:, None]

    sky = _SKY_HORIZON + (_SKY_TOP - _SKY_HORIZON) * directions[:, 1:2].clamp(min=0).sqrt()
    haze = 1 - torch.exp(-t.nan_to_num(posinf=1e9) / 30.0)[:, None]
    image = torch.where(hit[:, None], shade * (1 - haze) + _SKY_HORIZON * haze, sky)
    return image.clamp(0, 1).reshape(size, size, 3)


def demo(out: Path, size: int = 256, mesh: str = "scene", stl: Path | None = None) -> Path:
    """Render a built-in mesh (``icosphere``, ``cube`` or ``scene``) or an STL file to a
    ``size x size`` RGB PNG at ``out``; returns the path written."""
    if size < 1:
        raise ConfigError(f"size={size}: the image needs at least 1x1 pixels")
    return write_png(out, render_scene(_demo_shapes(mesh, stl), size))
