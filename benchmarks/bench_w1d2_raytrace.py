"""w1d2: the batched ray tracer. All ray-triangle pairs at once against Python loops over the
same small scene (the ratio says why we batch), and the time to render the demo picture."""

from __future__ import annotations

import time

import torch

from benchmarks.common import Row, best_time, print_table
from mlab.tensor.meshes import icosphere
from mlab.tensor.raytrace import (
    _demo_shapes,
    camera_rays,
    ray_mesh_distances,
    ray_triangle_distance,
    render,
    render_scene,
)


def _pair_loop(origins: torch.Tensor, directions: torch.Tensor, tris: torch.Tensor) -> list[float]:
    return [
        ray_triangle_distance(o, d, tri)
        for o, d in zip(origins, directions, strict=True)
        for tri in tris
    ]


def _ray_loop(
    origins: torch.Tensor, directions: torch.Tensor, tris: torch.Tensor
) -> list[torch.Tensor]:
    return [
        ray_mesh_distances(origins[i : i + 1], directions[i : i + 1], tris)
        for i in range(len(origins))
    ]


def main() -> None:
    tris = icosphere(1)  # 80 triangles
    eye, target, light = torch.tensor([0.0, 0.5, 3.0]), torch.zeros(3), torch.tensor([1.0, 1, 1])
    origins, directions = camera_rays(16, 16, 45.0, eye, target)  # 256 rays: 20,480 pairs
    vec = best_time(lambda: ray_mesh_distances(origins, directions, tris))
    rows: list[Row] = [
        (
            "one ray-triangle pair at a time (256 x 80)",
            best_time(lambda: _pair_loop(origins, directions, tris), min_seconds=0, repeat=1),
            vec,
            "ray_mesh_distances",
        ),
        (
            "one ray at a time, all triangles (256 x 80)",
            best_time(lambda: _ray_loop(origins, directions, tris), repeat=3),
            vec,
            "ray_mesh_distances",
        ),
    ]
    print_table("why batch: Python loops vs all ray-triangle pairs at once", rows)

    shapes = _demo_shapes("scene", None)
    start = time.perf_counter()
    render_scene(shapes, 256)
    demo_s = time.perf_counter() - start
    sphere = icosphere(2)  # 320 triangles, every ray against every triangle
    plain = best_time(lambda: render(sphere, 128, 128, 40.0, eye, target, light), repeat=1)
    print(
        f"mlab demo raytrace, 256x256 (1,294 triangles, shadows, bounding spheres): "
        f"{demo_s:.2f} s\n"
        f"render() of a 320-triangle icosphere at 128x128, all pairs: {plain:.2f} s"
    )


if __name__ == "__main__":
    main()
