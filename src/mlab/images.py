"""Writing and reading PNG images with the standard library only (zlib + struct), so demos
need no imaging package. Supports 8-bit greyscale and RGB, which is all the course draws.

The format: an 8-byte signature, then chunks (length, type, data, CRC-32). IHDR gives the
size and colour type, IDAT holds the zlib-compressed scanlines (each prefixed by a filter
byte; we write filter 4, "Paeth", and read all five), IEND ends the file. See the PNG
specification, section 11.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mlab.errors import ShapeError

__all__ = ["read_png", "to_uint8", "write_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 3: 2}  # channels -> PNG colour type (greyscale, truecolour)


def to_uint8(image: Tensor) -> np.ndarray:
    """A float image with values in [0, 1] (or a uint8 one) as an (H, W) or (H, W, C) uint8
    array. Floats are clamped to [0, 1] and rounded; NaN is an error.

    >>> to_uint8(torch.tensor([[-0.5, 0.0, 0.5, 1.0, 2.0]]))
    array([[  0,   0, 128, 255, 255]], dtype=uint8)
    """
    if image.dtype == torch.uint8:
        return image.detach().cpu().numpy()
    if not image.is_floating_point():
        raise TypeError(f"image dtype {image.dtype}: expected a float tensor in [0, 1] or uint8")
    if bool(torch.isnan(image).any()):
        raise ValueError("image contains NaN; fix the computation before saving it")
    scaled = (image.detach().float().clamp(0, 1) * 255).round()
    return scaled.to(torch.uint8).cpu().numpy()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth_filter(raw: np.ndarray, channels: int) -> np.ndarray:
    """PNG filter 4 (Paeth) for every row at once: each byte minus the prediction from its
    left, upper and upper-left neighbours (PNG spec, section 9.4). Smooth images then hold
    mostly small numbers, which zlib compresses far better than the raw bytes."""
    padded = np.pad(raw, ((1, 0), (channels, 0)))
    left, up, up_left = padded[1:, :-channels], padded[:-1, channels:], padded[:-1, :-channels]
    p = left + up - up_left
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
    pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    return ((raw - pred) % 256).astype(np.uint8)


def write_png(path: str | Path, image: Tensor) -> Path:
    """Save an (H, W) greyscale or (H, W, 3) RGB image (floats in [0, 1] or uint8) as PNG.

    Returns the path written. Folders are created as needed.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> ramp = torch.linspace(0, 1, 6).repeat(4, 1)  # 4 rows, dark to light
    >>> path = write_png(f"{folder}/ramp.png", ramp)
    >>> path.read_bytes()[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    >>> read_png(path)
    tensor([[  0,  51, 102, 153, 204, 255],
            [  0,  51, 102, 153, 204, 255],
            [  0,  51, 102, 153, 204, 255],
            [  0,  51, 102, 153, 204, 255]], dtype=torch.uint8)
    >>> import shutil; shutil.rmtree(folder)
    """
    pixels = to_uint8(image)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in _COLOUR_TYPES:
        raise ShapeError(
            f"image has shape {tuple(image.shape)}; expected (height, width) for greyscale "
            "or (height, width, 3) for RGB (channels last: use .permute(1, 2, 0) on (3, H, W))"
        )
    height, width, channels = pixels.shape
    if height == 0 or width == 0:
        raise ShapeError(f"image has shape {tuple(image.shape)}: a PNG needs at least 1x1 pixels")
    filtered = _paeth_filter(pixels.reshape(height, width * channels).astype(np.int16), channels)
    rows = np.concatenate([np.full((height, 1), 4, np.uint8), filtered], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[channels], 0, 0, 0)
    data = (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
        + _chunk(b"IEND", b"")
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out


def read_png(path: str | Path) -> Tensor:
    """Read a PNG written by :func:`write_png` (8-bit greyscale or RGB, not interlaced, any
    filter) as a uint8 tensor of shape (H, W) or (H, W, 3)."""
    data = Path(path).read_bytes()
    if not data.startswith(_SIGNATURE):
        raise ValueError(f"{path} is not a PNG file (bad signature)")
    pos, idat = len(_SIGNATURE), b""
    width = height = colour = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (0, 2) or interlace:
                raise ValueError(f"{path}: only 8-bit greyscale/RGB, non-interlaced PNGs")
        elif kind == b"IDAT":
            idat += body
    channels = 1 if colour == 0 else 3
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.int32)
    for y in range(height):  # undo the per-row filters (PNG spec, section 9)
        kind, row = raw[y, 0], raw[y, 1:].astype(np.int32)
        prev = out[y - 1] if y else np.zeros(stride, np.int32)
        if kind == 0:
            out[y] = row
        elif kind == 2:
            out[y] = (row + prev) % 256
        else:
            for x in range(stride):
                left = out[y, x - channels] if x >= channels else 0
                up_left = prev[x - channels] if x >= channels else 0
                if kind == 1:
                    pred = left
                elif kind == 3:
                    pred = (left + prev[x]) // 2
                else:  # Paeth
                    p = left + prev[x] - up_left
                    pa, pb, pc = abs(p - left), abs(p - prev[x]), abs(p - up_left)
                    pred = left if pa <= pb and pa <= pc else (prev[x] if pb <= pc else up_left)
                out[y, x] = (row[x] + pred) % 256
    image = torch.from_numpy(out.astype(np.uint8)).reshape(height, width, channels)
    return image[:, :, 0] if channels == 1 else image
