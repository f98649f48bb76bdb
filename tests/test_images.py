"""mlab.images against Pillow, the PNG codec everyone uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mlab.errors import ShapeError
from mlab.images import read_png, to_uint8, write_png
from mlab.testing import generator


@pytest.mark.parametrize("shape", [(5, 7), (6, 3, 3), (1, 1), (1, 9, 3)])
def test_pillow_reads_what_we_write(tmp_path, shape) -> None:
    image = torch.rand(*shape, generator=generator(0))
    path = write_png(tmp_path / "out.png", image)
    with Image.open(path) as png:
        assert png.size == (shape[1], shape[0])
        assert png.mode == ("L" if len(shape) == 2 else "RGB")
        pixels = np.asarray(png)
    np.testing.assert_array_equal(pixels, to_uint8(image))


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_we_read_what_pillow_writes_with_every_filter(tmp_path, mode) -> None:
    # Pillow's optimize=True tries PNG's adaptive filters (sub, up, average, Paeth) per row:
    # a gradient plus noise makes it use several of them.
    g = np.random.default_rng(0)
    h, w = 23, 31
    ramp = np.add.outer(np.arange(h) * 7, np.arange(w) * 3) % 256
    noise = g.integers(0, 40, size=(h, w))
    grey = ((ramp + noise) % 256).astype(np.uint8)
    pixels = grey if mode == "L" else np.stack([grey, grey[::-1], grey[:, ::-1]], axis=-1)
    path = tmp_path / f"pillow_{mode}.png"
    Image.fromarray(np.ascontiguousarray(pixels), mode=mode).save(path, optimize=True)
    np.testing.assert_array_equal(read_png(path).numpy(), pixels)


def test_floats_are_clamped_and_rounded() -> None:
    image = torch.tensor([[-0.5, 0.0, 0.5, 1.0, 2.0]])
    assert to_uint8(image).tolist() == [[0, 0, 128, 255, 255]]


def test_bad_images_get_clear_errors(tmp_path) -> None:
    with pytest.raises(ShapeError, match=r"permute\(1, 2, 0\)"):
        write_png(tmp_path / "x.png", torch.rand(3, 4, 5))
    with pytest.raises(ShapeError, match="at least 1x1"):
        write_png(tmp_path / "x.png", torch.rand(0, 4))
    with pytest.raises(ValueError, match="NaN"):
        write_png(tmp_path / "x.png", torch.tensor([[float("nan")]]))
    with pytest.raises(TypeError, match="float tensor"):
        write_png(tmp_path / "x.png", torch.zeros(2, 2, dtype=torch.int64))
    (tmp_path / "not.png").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="not a PNG"):
        read_png(tmp_path / "not.png")
