"""Triangle meshes for the ray tracer: procedural shapes and the STL file format.

A mesh here is a *triangle soup*: a float tensor of shape ``(tris, 3, 3)`` holding, for each
triangle, its three vertices ``A, B, C`` (each ``x, y, z``). Vertices are listed
counter-clockwise seen from outside, so ``(B - A) x (C - A)`` points outwards.

- :func:`icosphere`: a subdivided icosahedron (each step splits every triangle in four and
  pushes the new vertices out onto the sphere), the usual way to mesh a sphere evenly.
- :func:`cube` and :func:`quad`: boxes and floors.
- :func:`read_stl` / :func:`write_stl`: STL, the triangle-soup format of 3D printing
  (binary and ASCII; see "The StL Format", 3D Systems, 1989, or Wikipedia's "STL (file format)").
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from mlab.errors import DataError, ShapeError

__all__ = ["cube", "face_normals", "icosphere", "quad", "read_stl", "write_stl"]

_HEADER = 80  # binary STL: 80-byte header, uint32 count, then 50 bytes per triangle
_RECORD = struct.Struct("<12fH")  # normal, 3 vertices, attribute


def _check_mesh(triangles: Tensor) -> None:
    if triangles.ndim != 3 or tuple(triangles.shape[1:]) != (3, 3):
        raise ShapeError(
            f"triangles has shape {tuple(triangles.shape)}; a mesh is (tris, 3, 3): three "
            "vertices of three coordinates per triangle (reshape(-1, 3, 3) a flat vertex list)"
        )


def face_normals(triangles: Float[Tensor, "tris 3 3"]) -> Float[Tensor, "tris 3"]:
    """The unit normal ``(B - A) x (C - A) / |(B - A) x (C - A)|`` of each triangle ``A, B, C``
    (it points to the side from which the vertices run counter-clockwise). A degenerate
    triangle (no area) gets the zero vector, as ``torch.nn.functional.normalize`` gives."""
    a, b, c = triangles.unbind(dim=1)
    return torch.nn.functional.normalize(torch.linalg.cross(b - a, c - a), dim=1)


# ----------------------------------------------------------------------------------------------
# Procedural shapes


def _icosahedron() -> Tensor:
    phi = (1 + math.sqrt(5)) / 2
    v = torch.tensor(
        [
            [-1, phi, 0], [1, phi, 0], [-1, -phi, 0], [1, -phi, 0],
            [0, -1, phi], [0, 1, phi], [0, -1, -phi], [0, 1, -phi],
            [phi, 0, -1], [phi, 0, 1], [-phi, 0, -1], [-phi, 0, 1],
        ],
        dtype=torch.float64,
    )  # fmt: skip
    faces = torch.tensor(
        [
            [0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11],
            [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
            [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
            [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1],
        ]
    )  # fmt: skip
    return torch.nn.functional.normalize(v, dim=-1)[faces]


def icosphere(
    subdivisions: int = 2, radius: float = 1.0, center: Sequence[float] = (0.0, 0.0, 0.0)
) -> Float[Tensor, "tris 3 3"]:
    """A sphere meshed as an icosahedron whose triangles are each split ``subdivisions`` times
    into four: ``20 * 4**subdivisions`` triangles, every vertex on the sphere (float32)."""
    if subdivisions < 0:
        raise ValueError(f"subdivisions={subdivisions} must be >= 0")
    tris = _icosahedron()
    for _ in range(subdivisions):
        a, b, c = tris.unbind(dim=1)
        ab, bc, ca = (
            torch.nn.functional.normalize(p + q, dim=-1) for p, q in ((a, b), (b, c), (c, a))
        )
        tris = torch.cat(
            [torch.stack(t, dim=1) for t in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))]
        )
    return (tris * radius + torch.tensor(center, dtype=torch.float64)).float()


def quad(corners: Sequence[Sequence[float]]) -> Float[Tensor, "2 3 3"]:
    """Two triangles covering the planar quadrilateral with corners ``P0, P1, P2, P3`` (in
    order around it; counter-clockwise seen from the side the normal should face)."""
    p = torch.tensor(corners, dtype=torch.float32)
    if p.shape != (4, 3):
        raise ShapeError(f"corners has shape {tuple(p.shape)}; a quad needs 4 corners of 3 coords")
    return torch.stack([p[[0, 1, 2]], p[[0, 2, 3]]])


def cube(size: float = 1.0, center: Sequence[float] = (0.0, 0.0, 0.0)) -> Float[Tensor, "12 3 3"]:
    """An axis-aligned cube with edge ``size``: 12 triangles, normals pointing outwards."""
    h = size / 2
    cx, cy, cz = center
    faces = []
    # each face: its outward axis and sign; corners counter-clockwise seen from outside
    for axis in range(3):
        for sign in (-1.0, 1.0):
            u, v = (axis + 1) % 3, (axis + 2) % 3
            corners = []
            for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                p = [0.0, 0.0, 0.0]
                p[axis], p[u], p[v] = sign * h, du * h, dv * h * sign
                corners.append([p[0] + cx, p[1] + cy, p[2] + cz])
            faces.append(quad(corners))
    return torch.cat(faces)


# ----------------------------------------------------------------------------------------------
# STL


def write_stl(
    path: str | Path,
    triangles: Float[Tensor, "tris 3 3"],
    *,
    binary: bool = True,
    name: str = "mlab",
) -> Path:
    """Write a mesh as a binary (default) or ASCII STL file, with computed face normals."""
    _check_mesh(triangles)
    rows = torch.cat([face_normals(triangles.double()), triangles.double().reshape(-1, 9)], dim=1)
    out = Path(path)
    if binary:
        body = b"".join(_RECORD.pack(*row, 0) for row in rows.tolist())
        header = f"binary STL written by mlab: {name}".encode()[:_HEADER].ljust(_HEADER, b" ")
        out.write_bytes(header + struct.pack("<I", len(rows)) + body)
        return out
    lines = [f"solid {name}"]
    for row in rows.tolist():
        lines += [f"  facet normal {row[0]:.7g} {row[1]:.7g} {row[2]:.7g}", "    outer loop"]
        lines += [f"      vertex {x:.9g} {y:.9g} {z:.9g}" for x, y, z in _triples(row[3:])]
        lines += ["    endloop", "  endfacet"]
    lines.append(f"endsolid {name}")
    out.write_text("\n".join(lines) + "\n", encoding="ascii")
    return out


def _triples(values: list[float]) -> list[tuple[float, float, float]]:
    return [(values[i], values[i + 1], values[i + 2]) for i in range(0, len(values), 3)]


def read_stl(path: str | Path) -> Float[Tensor, "tris 3 3"]:
    """Read a binary or ASCII STL file as a float32 ``(tris, 3, 3)`` mesh (the normals stored in
    the file are ignored: they are often wrong, and ``face_normals`` recomputes them).

    A file is binary when its size is exactly ``84 + 50 * count`` for the count in its header
    (some binary files start with the word "solid" too), ASCII when it starts with ``solid``.
    A malformed file raises :class:`mlab.errors.DataError` saying where and what was expected.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read the STL file {path}: {err.strerror}") from None
    if len(data) >= _HEADER + 4:
        (count,) = struct.unpack_from("<I", data, _HEADER)
        if len(data) == _HEADER + 4 + 50 * count:
            return _read_binary(data, count)
    if data.lstrip()[:5].lower() == b"solid":
        return _read_ascii(data, path)
    if len(data) < _HEADER + 4:
        raise DataError(
            f"{path}: {len(data)} bytes is too short for a binary STL (at least 84) and the file "
            "does not start with 'solid' (ASCII STL)"
        )
    raise DataError(
        f"{path}: binary STL header says {count} triangles, which needs "
        f"{_HEADER + 4 + 50 * count} bytes, but the file has {len(data)} bytes: it is truncated "
        "or not an STL file"
    )


def _read_binary(data: bytes, count: int) -> Tensor:
    # one record: normal (3 float32), three vertices (9 float32), a 2-byte attribute
    record = np.dtype([("normal", "<f4", 3), ("vertices", "<f4", 9), ("attribute", "<u2")])
    rows = np.frombuffer(data, dtype=record, count=count, offset=_HEADER + 4)
    return torch.from_numpy(rows["vertices"].astype(np.float32)).reshape(count, 3, 3)


def _read_ascii(data: bytes, path: Path) -> Tensor:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: starts with 'solid' but byte {err.start} is not ASCII, and its size does "
            "not match a binary STL header: a corrupt file"
        ) from None
    tokens = [
        (word, number)
        for number, line in enumerate(text.splitlines(), start=1)
        for word in line.split()
    ]
    pos = 0

    def take(*expected: str) -> str:
        nonlocal pos
        if pos == len(tokens):
            raise DataError(
                f"{path}: file ends where {' or '.join(map(repr, expected))} was expected"
            )
        word, line = tokens[pos]
        if expected and word.lower() not in expected:
            raise DataError(
                f"{path}, line {line}: expected {' or '.join(map(repr, expected))}, got {word!r}"
            )
        pos += 1
        return word

    def number() -> float:
        word = take()
        try:
            return float(word)
        except ValueError:
            raise DataError(
                f"{path}, line {tokens[pos - 1][1]}: {word!r} is not a number (a vertex has three)"
            ) from None

    triangles: list[list[float]] = []
    while pos < len(tokens):
        take("solid")
        solid_line = tokens[pos - 1][1]
        while pos < len(tokens) and tokens[pos][1] == solid_line:
            pos += 1  # the solid's name, if any
        while take("facet", "endsolid").lower() == "facet":
            take("normal")
            for _ in range(3):
                number()
            take("outer")
            take("loop")
            vertices: list[float] = []
            while take("vertex", "endloop").lower() == "vertex":
                vertices += [number(), number(), number()]
            if len(vertices) != 9:
                raise DataError(
                    f"{path}, line {tokens[pos - 1][1]}: a facet has {len(vertices) // 3} "
                    "vertices; STL facets are triangles (exactly 3)"
                )
            take("endfacet")
            triangles.append(vertices)
        endsolid_line = tokens[pos - 1][1]
        while pos < len(tokens) and tokens[pos][1] == endsolid_line:
            pos += 1  # the name repeated after endsolid
    return torch.tensor(triangles, dtype=torch.float32).reshape(-1, 3, 3)
