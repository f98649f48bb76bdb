"""The CPPN demo (mlab.tensor.cppn): `mlab demo cppn` writes a real picture, the same for the
same seed and at any size; the docstring examples run; the jaxtyping shapes in the signatures
hold (checked with beartype). The exercises themselves are checked against torch by the
course's checks (src/mlab/course/w1d2_regression/checks_cppn.py)."""

from __future__ import annotations

import doctest
from pathlib import Path
from typing import Any

import pytest
import torch
from beartype import beartype
from jaxtyping import jaxtyped
from typer.testing import CliRunner

import mlab.tensor.cppn as cppn
from mlab.cli import app
from mlab.images import read_png
from mlab.testing import generator, randn


def test_cli_writes_a_png_of_the_requested_size(tmp_path: Path) -> None:
    out = tmp_path / "pictures" / "cppn.png"
    result = CliRunner().invoke(
        app, ["demo", "cppn", "--seed", "3", "--size", "40", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "cppn.png" in result.output
    image = read_png(out)
    assert image.shape == (40, 40, 3)
    assert image.dtype == torch.uint8


def test_cli_rejects_an_empty_size(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "cppn", "--size", "0", "--out", str(tmp_path / "x.png")]
    )
    assert result.exit_code != 0
    assert not (tmp_path / "x.png").exists()


def test_demo_is_deterministic_by_seed(tmp_path: Path) -> None:
    first = cppn.demo(seed=5, size=24, out=tmp_path / "a.png").read_bytes()
    again = cppn.demo(seed=5, size=24, out=tmp_path / "b.png").read_bytes()
    other = cppn.demo(seed=6, size=24, out=tmp_path / "c.png").read_bytes()
    assert first == again
    assert first != other


def test_demo_draws_the_same_picture_at_any_size(tmp_path: Path) -> None:
    small = read_png(cppn.demo(seed=1, size=21, out=tmp_path / "small.png")).int()
    large = read_png(cppn.demo(seed=1, size=63, out=tmp_path / "large.png")).int()
    # the centre pixel of each 3x3 block of the large picture is a pixel of the small one;
    # rounding to 8 bits may differ by one level
    assert int((large[1::3, 1::3] - small).abs().max()) <= 1


def _neighbour_difference(image: torch.Tensor) -> float:
    """Mean absolute difference between vertical plus horizontal neighbours."""
    down = (image[1:] - image[:-1]).abs().mean()
    right = (image[:, 1:] - image[:, :-1]).abs().mean()
    return float(down + right)


def test_the_default_picture_is_a_picture(tmp_path: Path) -> None:
    """Not flat, not noise: colours vary over the picture (in every channel), but neighbouring
    pixels are close (much closer than in the same pixels shuffled), and the picture is not
    one grey."""
    image = read_png(cppn.demo(seed=cppn.DEMO_SEED, size=128, out=tmp_path / "p.png")).float()
    spread = image.reshape(-1, 3).std(dim=0)
    assert bool((spread > 40).all()), f"channel std {spread.tolist()}: too flat"
    noise = image.reshape(-1, 3)[torch.randperm(128 * 128, generator=generator(0))]
    smooth, rough = _neighbour_difference(image), _neighbour_difference(noise.reshape(image.shape))
    assert smooth < 0.25 * rough, f"neighbours differ by {smooth:.0f}, shuffled by {rough:.0f}"
    saturation = (image.amax(dim=-1) - image.amin(dim=-1)).mean()
    assert float(saturation) > 60, f"mean saturation {float(saturation):.0f}: too grey"


def test_docstring_examples() -> None:
    result = doctest.testmod(
        cppn, extraglobs={"torch": torch}, optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0
    assert result.failed == 0


def _typed(fn: Any) -> Any:
    """``fn`` with its jaxtyping annotations checked by beartype on every call."""
    return jaxtyped(typechecker=beartype)(fn)


def test_signatures_shapes_hold() -> None:
    params = _typed(cppn.cppn_init)([5, 8, 8, 3], 2.0, generator(0))
    grid = _typed(cppn.cppn_grid)(4, 6)
    features = _typed(cppn.cppn_features)(grid, randn(2, seed=1))
    assert features.shape == (4, 6, 5)
    assert _typed(cppn.cppn_forward)(params, features).shape == (4, 6, 3)
    assert _typed(cppn.cppn_render)(params, 4, 6, randn(2, seed=1)).shape == (4, 6, 3)


def test_the_shape_checker_catches_a_wrong_latent() -> None:
    with pytest.raises(Exception, match=r"d_z|shape|Float"):
        _typed(cppn.cppn_features)(cppn.cppn_grid(2, 3), torch.zeros(2, 2))
