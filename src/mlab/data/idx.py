"""IDX files, the format of MNIST and Fashion-MNIST: reading, decoding, encoding, writing.

An IDX file (LeCun, Cortes & Burges, "The MNIST database", section "file formats") is a short
header followed by raw numbers, everything big-endian (most significant byte first):

    bytes 0-1    0x00 0x00
    byte  2      type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                 0x0D float32, 0x0E float64
    byte  3      ndim, the number of dimensions
    4 * ndim     the size of each dimension, unsigned 32-bit big-endian
    the rest     prod(sizes) numbers of the type, row-major, each big-endian

The files are usually gzipped; :func:`read_idx` tells by the gzip magic bytes ``1f 8b``, never
by the file name. :func:`parse_idx_header` and :func:`decode_idx` are exercises of day w1d2.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import torch
from jaxtyping import Shaped
from torch import Tensor

from mlab.errors import DataError

__all__ = [
    "GZIP_MAGIC",
    "IDX_DTYPES",
    "decode_idx",
    "encode_idx",
    "parse_idx_header",
    "read_bytes",
    "read_idx",
    "write_idx",
]

# IDX type code (byte 2 of the magic number) -> the dtype of the numbers that follow.
IDX_DTYPES: dict[int, torch.dtype] = {
    0x08: torch.uint8,
    0x09: torch.int8,
    0x0B: torch.int16,
    0x0C: torch.int32,
    0x0D: torch.float32,
    0x0E: torch.float64,
}
_TYPE_CODES = {dtype: code for code, dtype in IDX_DTYPES.items()}
GZIP_MAGIC = b"\x1f\x8b"


def parse_idx_header(data: bytes) -> tuple[torch.dtype, tuple[int, ...], int]:
    """Parse the header at the start of the IDX bytes ``data``: return ``(dtype, shape,
    offset)``, where ``offset`` is the number of header bytes (where the numbers start).

    The header is the 4-byte magic number ``00 00 TT NN`` (``TT``: the type code, a key of
    ``IDX_DTYPES`` giving the dtype; ``NN``: the number of dimensions), then ``NN`` sizes,
    each an unsigned 32-bit **big-endian** integer (``struct`` format ``">I"``, or
    ``int.from_bytes(b, "big")``). Only the header is read: ``data`` may end right after it.

    Raise ``DataError`` (with a message that mentions the "magic number") when ``data`` has
    fewer than 4 bytes or does not start with two zero bytes (a gzipped file starts with
    ``1f 8b``: decompress it first); ``DataError`` on a type code not in ``IDX_DTYPES``; and
    ``DataError`` when ``data`` ends before the last size.

    >>> parse_idx_header(bytes([0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28]))
    (torch.uint8, (2, 28, 28), 16)
    """
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DataError(
            f"not an IDX file: its magic number {data[:4].hex(' ')} should be 00 00 TT NN "
            "(a gzipped file starts with 1f 8b: decompress it first)"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        known = ", ".join(
            f"0x{c:02X} {str(t).removeprefix('torch.')}" for c, t in IDX_DTYPES.items()
        )
        raise DataError(f"unknown IDX type code 0x{type_code:02X}; the known codes are {known}")
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(
            f"truncated IDX header: {ndim} dimensions need {offset} header bytes, "
            f"found only {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:offset])
    return IDX_DTYPES[type_code], shape, offset


def decode_idx(data: bytes) -> Shaped[Tensor, "*shape"]:
    """Decode a whole (uncompressed) IDX file into a tensor of its dtype and shape.

    Parse the header with ``parse_idx_header``, check the length, then turn the bytes after
    the header into numbers. The numbers are **big-endian**, but torch reinterprets bytes in
    the machine's order, little-endian on every machine you will meet: reverse the bytes of
    each number before viewing them as the dtype. ``torch.frombuffer(bytearray(data),
    dtype=torch.uint8)`` gives the bytes as a tensor; ``Tensor.view(dtype)`` reinterprets the
    last dimension's bytes (4 uint8 -> 1 int32). The result owns its memory (not ``data``).

    Raise ``DataError`` saying how many bytes were expected and how many found when the file
    is shorter than header + prod(shape) * itemsize ("truncated") or longer ("trailing bytes").

    >>> decode_idx(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE]))
    tensor([258,  -2], dtype=torch.int16)
    """
    dtype, shape, offset = parse_idx_header(data)
    expected = offset + math.prod(shape) * dtype.itemsize
    if len(data) < expected:
        raise DataError(
            f"truncated IDX file: shape {shape} of {dtype} needs {expected} bytes, "
            f"found {len(data)} ({expected - len(data)} missing)"
        )
    if len(data) > expected:
        raise DataError(
            f"IDX file has trailing bytes: shape {shape} of {dtype} needs {expected} bytes, "
            f"found {len(data)} ({len(data) - expected} too many)"
        )
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)[offset:]
    # (n, itemsize) bytes, most significant first; flipped to the machine's little-endian order
    return raw.view(-1, dtype.itemsize).flip(1).view(dtype).reshape(shape)


def encode_idx(x: Tensor) -> bytes:
    """The IDX bytes (uncompressed) of ``x``: header, then its numbers big-endian, row-major.

    ``x`` must have an IDX dtype (uint8, int8, int16, int32, float32, float64) and fewer than
    256 dimensions.
    """
    if x.dtype not in _TYPE_CODES:
        names = ", ".join(str(t).removeprefix("torch.") for t in _TYPE_CODES)
        raise DataError(f"IDX cannot store dtype {x.dtype}; it stores {names}")
    if x.dim() > 255:
        raise DataError(f"IDX stores at most 255 dimensions, got {x.dim()}")
    array = x.detach().cpu().numpy()
    header = bytes([0, 0, _TYPE_CODES[x.dtype], x.dim()]) + struct.pack(f">{x.dim()}I", *x.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def read_bytes(path: str | Path) -> bytes:
    """The contents of ``path``, gunzipped when it starts with the gzip magic bytes."""
    raw = Path(path).read_bytes()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as err:
        raise DataError(
            f"{path}: a gzip file that cannot be decompressed ({err}); it is probably an "
            "incomplete download or corrupt: delete it and get it again"
        ) from None


def read_idx(path: str | Path, *, dtype: torch.dtype | None = None) -> Shaped[Tensor, "*shape"]:
    """Read an IDX file, gzipped or plain, into a tensor. With ``dtype``, raise ``DataError``
    unless the file holds that dtype."""
    try:
        x = decode_idx(read_bytes(path))
    except DataError as err:
        raise DataError(f"{path}: {err}") from None
    if dtype is not None and x.dtype != dtype:
        raise DataError(f"{path} holds {x.dtype} numbers but {dtype} was expected")
    return x


def write_idx(path: str | Path, x: Tensor, *, compress: bool | None = None) -> None:
    """Write ``x`` as an IDX file, gzipped when ``compress`` is true (by default: when the file
    name ends in ``.gz``)."""
    path = Path(path)
    data = encode_idx(x)
    if compress is None:
        compress = path.suffix == ".gz"
    # mtime=0 makes the gzip bytes a function of the data alone (reproducible files)
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
