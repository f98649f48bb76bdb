"""Pictures from a random network: a compositional pattern-producing network (CPPN).

A CPPN (Stanley, "Compositional pattern producing networks: a novel abstraction of
development", 2007) is a function from a pixel's coordinates to its colour. Here it is a
small multilayer perceptron with random weights, evaluated on every pixel at once: the inputs
are the pixel's position ``(x, y)``, its distance ``r`` from the centre and a latent vector
``z`` shared by all pixels; the hidden layers use ``tanh`` and the output ``sigmoid`` gives
RGB in [0, 1]. Because the network is a smooth function of the coordinates, neighbouring
pixels get similar colours and the picture is made of smooth shapes, not noise; a deeper
network folds the plane more times and draws more detail. (The idea was popularised for
art by David Ha's blog post "Generating abstract patterns with TensorFlow", 2016.)

The coordinates do not depend on the image size, so the same network draws the same picture
at any resolution: :func:`demo` renders it as a 64x64 thumbnail or a 1024x1024 poster.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from mlab.errors import ShapeError
from mlab.images import write_png

__all__ = [
    "DEMO_SEED",
    "DEPTH",
    "D_LATENT",
    "SCALE",
    "WIDTH",
    "Params",
    "cppn_features",
    "cppn_forward",
    "cppn_grid",
    "cppn_init",
    "cppn_render",
    "demo",
]

# The network of the demo: tuned by eye for smooth, colourful, detailed pictures.
WIDTH = 32  # hidden units per layer
DEPTH = 10  # hidden (tanh) layers
SCALE = 3.5  # weight std times sqrt(fan_in): large enough that tanh folds the plane
D_LATENT = 4  # size of the latent vector z
DEMO_SEED = 0

# One (weight, bias) pair per layer, in torch.nn.Linear's layout. The sizes differ from layer to
# layer, so the dimension names start with "_": jaxtyping does not bind them across layers.
Params = list[tuple[Float[Tensor, "_fan_out _fan_in"], Float[Tensor, " _fan_out"]]]


def cppn_grid(height: int, width: int) -> Float[Tensor, "height width 2"]:
    """The coordinates of each pixel's centre: ``out[i, j] = (x, y)`` for the pixel in row
    ``i`` and column ``j`` of a ``height`` x ``width`` image, as float32.

    Pixels are squares of side ``2 / size``, with ``size = max(height, width)``, centred on
    the origin: ``x = (2 * j + 1 - width) / size`` grows to the right and
    ``y = (2 * i + 1 - height) / size`` grows downwards (like row numbers). So the longer side
    spans [-1, 1] and the shorter one keeps the aspect ratio (a 2x4 image spans y in
    [-0.5, 0.5]). Compute the division last, on whole numbers, so that the grid is exactly
    resolution independent: the centres of an image ``k`` times larger (``k`` odd) include
    these, ``cppn_grid(k * h, k * w)[k // 2 :: k, k // 2 :: k] == cppn_grid(h, w)``.

    Raise ``ValueError`` if ``height`` or ``width`` is smaller than 1.

    >>> cppn_grid(2, 4)[..., 0]
    tensor([[-0.7500, -0.2500,  0.2500,  0.7500],
            [-0.7500, -0.2500,  0.2500,  0.7500]])
    >>> cppn_grid(2, 4)[..., 1]
    tensor([[-0.2500, -0.2500, -0.2500, -0.2500],
            [ 0.2500,  0.2500,  0.2500,  0.2500]])
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size {height}x{width}: height and width must be at least 1 pixel")
    size = max(height, width)
    x = (torch.arange(width) * 2 + 1 - width) / size
    y = (torch.arange(height) * 2 + 1 - height) / size
    return torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1)


def cppn_features(
    grid: Float[Tensor, "*batch 2"], z: Float[Tensor, " d_z"]
) -> Float[Tensor, "*batch d_in"]:
    """The network's input at each point: ``(x, y, r, z[0], ..., z[d_z - 1])`` with
    ``r = sqrt(x**2 + y**2)`` the distance from the centre (it lets the network draw round
    shapes) and the latent vector ``z`` the same at every point (changing it smoothly morphs
    the picture). ``d_in = 3 + d_z``.

    No Python loop: broadcast ``z`` over the batch dimensions. Raise ``ShapeError`` if the last
    dimension of ``grid`` is not 2 or if ``z`` is not 1-D.

    >>> cppn_features(torch.tensor([[3.0, 4.0]]), torch.tensor([0.5, -1.0]))
    tensor([[ 3.0000,  4.0000,  5.0000,  0.5000, -1.0000]])
    """
    if grid.ndim == 0 or grid.shape[-1] != 2:
        raise ShapeError(f"grid has shape {tuple(grid.shape)}; expected (..., 2) points (x, y)")
    if z.ndim != 1:
        raise ShapeError(f"z has shape {tuple(z.shape)}; expected a 1-D latent vector")
    r = grid.norm(dim=-1, keepdim=True)
    return torch.cat((grid, r, z.expand(*grid.shape[:-1], -1)), dim=-1)


def cppn_init(sizes: Sequence[int], scale: float, generator: torch.Generator) -> Params:
    """Random weights for a multilayer perceptron with layer sizes ``sizes``
    (``[d_in, hidden, ..., hidden, d_out]``): one ``(weight, bias)`` pair per layer, with
    ``weight`` of shape ``(fan_out, fan_in)`` and ``bias`` of shape ``(fan_out,)``, as in
    ``torch.nn.Linear``.

    Both are drawn from ``N(0, scale**2 / fan_in)``: each unit then sums ``fan_in`` inputs
    into a value of std about ``scale`` times the inputs' (the bias counts as one more
    input). Draw in this order, so that a seed always gives the same network: for each layer,
    first ``torch.randn(fan_out, fan_in, generator=generator)``, then
    ``torch.randn(fan_out, generator=generator)``, each times ``scale / sqrt(fan_in)``.

    Raise ``ValueError`` if ``sizes`` has fewer than 2 entries or an entry smaller than 1.
    """
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(
            f"sizes={list(sizes)}: need at least an input and an output size, each >= 1"
        )
    params = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        std = scale / fan_in**0.5
        weight = torch.randn(fan_out, fan_in, generator=generator) * std
        bias = torch.randn(fan_out, generator=generator) * std
        params.append((weight, bias))
    return params


def cppn_forward(
    params: Params, inputs: Float[Tensor, "*batch d_in"]
) -> Float[Tensor, "*batch d_out"]:
    """Run the network on every point at once: each layer computes ``h @ weight.T + bias``,
    followed by ``tanh`` on every layer but the last and ``sigmoid`` on the last (so the
    output is in [0, 1]). The same as ``torch.nn.Sequential(Linear, Tanh, ..., Linear,
    Sigmoid)`` holding these weights.

    The points are a batch: any leading dimensions, e.g. ``(height, width, d_in)`` for a whole
    image. Loop over the layers, never over the points. Raise ``ShapeError`` if the last
    dimension of ``inputs`` is not the first layer's ``fan_in``.
    """
    if inputs.shape[-1] != params[0][0].shape[1]:
        raise ShapeError(
            f"inputs have shape {tuple(inputs.shape)} but the first layer takes "
            f"{params[0][0].shape[1]} features per point"
        )
    h = inputs
    for weight, bias in params[:-1]:
        h = torch.tanh(h @ weight.T + bias)
    weight, bias = params[-1]
    return torch.sigmoid(h @ weight.T + bias)


def cppn_render(
    params: Params, height: int, width: int, z: Float[Tensor, " d_z"]
) -> Float[Tensor, "height width d_out"]:
    """A ``height`` x ``width`` picture: the network ``params`` applied to the features
    (``x, y, r, z``) of every pixel's centre, with channels last (an RGB image when the
    network has 3 outputs), values in [0, 1]: grid, then features, then the forward pass."""
    return cppn_forward(params, cppn_features(cppn_grid(height, width), z))


def demo(seed: int = DEMO_SEED, size: int = 512, out: str | Path = "cppn.png") -> Path:
    """Draw the picture of network ``seed`` at ``size`` x ``size`` pixels into the PNG file
    ``out``; return its path. The network and its latent vector come from one generator
    seeded with ``seed``: the same seed draws the same picture, at any size."""
    generator = torch.Generator().manual_seed(seed)
    params = cppn_init([3 + D_LATENT, *[WIDTH] * DEPTH, 3], SCALE, generator)
    z = torch.randn(D_LATENT, generator=generator)
    with torch.no_grad():
        image = cppn_render(params, size, size, z)
    return write_png(out, image)
