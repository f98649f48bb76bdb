"""Tests of the ray tracer's library parts that the course checks do not cover: the STL reader
and writer (files written here byte by byte with ``struct``, independently of ``write_stl``),
the procedural meshes, and the ``mlab demo raytrace`` command."""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mlab.cli import app
from mlab.errors import ConfigError, DataError, ShapeError
from mlab.images import read_png
from mlab.tensor.meshes import cube, face_normals, icosphere, quad, read_stl, write_stl
from mlab.tensor.raytrace import render
from mlab.testing import assert_close, assert_equal

TRIS = torch.tensor(
    [
        [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        [[0.5, -1.25, 2.0], [3.0, 0.125, -1.0], [-2.5, 0.75, 1.5]],
        [[1e-3, 2e5, -7.0], [0.1, 0.2, 0.3], [-0.1, 9.0, 4.0]],
    ]
)


def _binary_stl(tris: list[list[list[float]]], header: bytes = b"made by a test") -> bytes:
    body = b"".join(
        struct.pack("<3f", 0.0, 0.0, 0.0)  # a wrong normal: the reader ignores it
        + b"".join(struct.pack("<3f", *vertex) for vertex in tri)
        + struct.pack("<H", 0)
        for tri in tris
    )
    return header.ljust(80, b"\0") + struct.pack("<I", len(tris)) + body


ASCII = """solid two_triangles
  facet normal 0 0 1
    outer loop
      vertex 0 0 0
      vertex 1 0 0
      vertex 0 1 0
    endloop
  endfacet
  FACET NORMAL 0 0 0
    OUTER LOOP
      VERTEX 0.5e0 -1.25 2
      VERTEX 3 0.125 -1.0
      VERTEX -2.5 .75 1.5
    ENDLOOP
  ENDFACET
endsolid two_triangles
"""


# ----------------------------------------------------------------------------------------------
# Reading and writing STL


def test_read_binary_written_with_struct(tmp_path: Path) -> None:
    path = tmp_path / "mesh.stl"
    path.write_bytes(_binary_stl(TRIS.tolist()))
    assert_equal(read_stl(path), TRIS)


def test_binary_whose_header_starts_with_solid_is_binary(tmp_path: Path) -> None:
    path = tmp_path / "mesh.stl"
    path.write_bytes(_binary_stl(TRIS.tolist(), header=b"solid but binary"))
    assert_equal(read_stl(path), TRIS)


def test_read_ascii(tmp_path: Path) -> None:
    path = tmp_path / "mesh.stl"
    path.write_text(ASCII)
    assert_equal(read_stl(path), TRIS[:2])


def test_read_ascii_with_two_solids_and_no_names(tmp_path: Path) -> None:
    path = tmp_path / "mesh.stl"
    one = ASCII.replace("solid two_triangles", "solid").replace(
        "endsolid two_triangles", "endsolid"
    )
    path.write_text(one + one)
    assert_equal(read_stl(path), torch.cat([TRIS[:2], TRIS[:2]]))


@pytest.mark.parametrize("binary", [True, False])
def test_write_then_read_round_trip(tmp_path: Path, binary: bool) -> None:
    for tris in (TRIS, icosphere(1, radius=2.5, center=(1, -2, 3)), cube(), torch.zeros(0, 3, 3)):
        path = write_stl(tmp_path / "mesh.stl", tris, binary=binary)
        assert_equal(read_stl(path), tris)


def test_binary_writer_matches_the_format(tmp_path: Path) -> None:
    data = write_stl(tmp_path / "mesh.stl", TRIS[:2]).read_bytes()
    assert len(data) == 84 + 2 * 50
    assert struct.unpack_from("<I", data, 80) == (2,)
    first = struct.unpack_from("<12fH", data, 84)
    assert_close(list(first[:3]), [0.0, 0.0, 1.0])  # the computed unit normal
    assert_close(list(first[3:12]), TRIS[0].reshape(-1).tolist())
    assert first[12] == 0


def test_ascii_writer_is_readable_text(tmp_path: Path) -> None:
    text = write_stl(tmp_path / "m.stl", TRIS[:1], binary=False, name="part").read_text()
    words = text.split()
    assert words[:2] == ["solid", "part"] and words[-2:] == ["endsolid", "part"]
    assert words[2:5] == ["facet", "normal", "0"] and words.count("vertex") == 3


def test_empty_ascii_solid(tmp_path: Path) -> None:
    path = tmp_path / "empty.stl"
    path.write_text("solid nothing\nendsolid nothing\n")
    assert read_stl(path).shape == (0, 3, 3)


def test_write_rejects_a_flat_vertex_list(tmp_path: Path) -> None:
    with pytest.raises(ShapeError, match=r"\(9, 3\)"):
        write_stl(tmp_path / "m.stl", torch.zeros(9, 3))


# ----------------------------------------------------------------------------------------------
# Malformed files


def _write(tmp_path: Path, data: bytes | str) -> Path:
    path = tmp_path / "bad.stl"
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def test_truncated_binary(tmp_path: Path) -> None:
    path = _write(tmp_path, _binary_stl(TRIS.tolist())[:-7])
    with pytest.raises(DataError, match=r"3 triangles.*234 bytes.*227 bytes.*truncated"):
        read_stl(path)


def test_binary_count_mismatch(tmp_path: Path) -> None:
    data = bytearray(_binary_stl(TRIS.tolist()))
    data[80:84] = struct.pack("<I", 5)
    with pytest.raises(DataError, match="header says 5 triangles"):
        read_stl(_write(tmp_path, bytes(data)))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read the STL file"):
        read_stl(tmp_path / "nowhere.stl")


def test_too_short_and_not_ascii(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="too short"):
        read_stl(_write(tmp_path, b"\x00\x01 not an stl"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            ASCII.replace("vertex 1 0 0", "vertx 1 0 0"),
            r"line 5: expected 'vertex' or 'endloop', got 'vertx'",
        ),
        (ASCII.replace("outer loop", "outer lop"), r"line 3: expected 'loop', got 'lop'"),
        (ASCII.replace("vertex 0 1 0", "vertex 0 one 0"), r"line 6: 'one' is not a number"),
        (ASCII.replace("      vertex 0 1 0\n", ""), r"line 6: a facet has 2 vertices"),
        (ASCII.replace("vertex 0 1 0", "vertex 0 1 0\n vertex 1 1 1"), r"a facet has 4 vertices"),
        (ASCII.replace("endsolid two_triangles\n", ""), r"file ends where 'facet' or 'endsolid'"),
        (
            ASCII.replace("solid two_triangles\n", "solid x\nfacet normal 0 0 1 2\n", 1),
            r"line 2: expected 'outer', got '2'",
        ),
        (ASCII + "junk\n", r"line 17: expected 'solid', got 'junk'"),
    ],
)
def test_malformed_ascii(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_stl(_write(tmp_path, text))


def test_ascii_with_non_ascii_bytes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not ASCII"):
        read_stl(_write(tmp_path, ASCII.encode() + "é".encode()))


# ----------------------------------------------------------------------------------------------
# Procedural meshes


def _edge_counts(tris: torch.Tensor) -> Counter[tuple[tuple[float, ...], tuple[float, ...]]]:
    edges: Counter[tuple[tuple[float, ...], tuple[float, ...]]] = Counter()
    for tri in tris.tolist():
        for i in range(3):
            a, b = tuple(tri[i]), tuple(tri[(i + 1) % 3])
            edges[(min(a, b), max(a, b))] += 1
    return edges


@pytest.mark.parametrize("subdivisions", [0, 1, 2])
def test_icosphere(subdivisions: int) -> None:
    tris = icosphere(subdivisions, radius=2.0, center=(1.0, 0.0, -1.0))
    assert tris.shape == (20 * 4**subdivisions, 3, 3) and tris.dtype == torch.float32
    offsets = tris - torch.tensor([1.0, 0.0, -1.0])
    assert_close(offsets.norm(dim=-1), torch.full(tris.shape[:2], 2.0), rtol=1e-6, atol=1e-6)
    assert bool(((face_normals(tris) * offsets.mean(dim=1)).sum(-1) > 0).all()), "inward face"
    # watertight: every edge is shared by exactly two triangles (vertices computed identically)
    assert set(_edge_counts(tris).values()) == {2}


def test_icosphere_rejects_negative_subdivisions() -> None:
    with pytest.raises(ValueError, match="subdivisions=-1"):
        icosphere(-1)


def test_cube() -> None:
    tris = cube(2.0, center=(0.0, 1.0, 0.0))
    assert tris.shape == (12, 3, 3)
    a, b, c = tris.unbind(dim=1)
    area = torch.linalg.cross(b - a, c - a).norm(dim=1).sum() / 2
    assert_close(float(area), 24.0)
    outward = (face_normals(tris) * (tris.mean(dim=1) - torch.tensor([0.0, 1.0, 0.0]))).sum(-1)
    assert_close(outward, torch.ones(12))
    assert set(_edge_counts(tris).values()) == {2}


def test_quad_rejects_three_corners() -> None:
    with pytest.raises(ShapeError, match="4 corners"):
        quad([[0, 0, 0], [1, 0, 0], [1, 1, 0]])


# ----------------------------------------------------------------------------------------------
# Rendering and the demo


def test_render_is_an_image_in_unit_range() -> None:
    eye, target, light = torch.tensor([0.0, 1.0, 4.0]), torch.zeros(3), torch.tensor([1.0, 1, 1])
    image = render(icosphere(1), 12, 20, 40.0, eye, target, light)
    assert image.shape == (12, 20)
    assert float(image.min()) >= 0 and float(image.max()) <= 1 + 1e-6  # up to rounding
    assert float(image[6, 10]) > 0.1 and float(image[0, 0]) == 0.0  # sphere centre, background


def _demo(tmp_path: Path, *args: str) -> torch.Tensor:
    out = tmp_path / "demo.png"
    result = CliRunner().invoke(app, ["demo", "raytrace", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return read_png(out)


def test_demo_scene_writes_a_picture(tmp_path: Path) -> None:
    image = _demo(tmp_path, "--size", "48").int()
    assert image.shape == (48, 48, 3)
    sky, ground = image[0, 24], image[-1, 24]
    assert sky[2] > sky[0], f"the top row should be blue sky, got {sky.tolist()}"
    assert abs(int(ground[0]) - int(ground[2])) < 20, f"the floor is grey, got {ground.tolist()}"
    red = (image[:, :, 0] > image[:, :, 1] + 60).sum()
    assert int(red) > 48 * 48 // 20, "the red sphere should fill part of the picture"


@pytest.mark.parametrize("mesh", ["icosphere", "cube"])
def test_demo_builtin_meshes(tmp_path: Path, mesh: str) -> None:
    image = _demo(tmp_path, "--size", "24", "--mesh", mesh)
    assert image.shape == (24, 24, 3) and image.float().std() > 10


def test_demo_renders_an_stl_file(tmp_path: Path) -> None:
    stl = write_stl(tmp_path / "part.stl", cube(30.0, center=(100, 0, 0)), binary=False)
    image = _demo(tmp_path, "--size", "24", "--stl", str(stl))
    assert image.shape == (24, 24, 3) and image.float().std() > 10


def test_demo_rejects_an_unknown_mesh(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "raytrace", "--out", str(tmp_path / "x.png"), "--mesh", "torus"]
    )
    assert isinstance(result.exception, ConfigError)
    assert "icosphere, cube, scene" in str(result.exception)
