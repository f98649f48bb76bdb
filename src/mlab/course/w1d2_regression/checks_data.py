"""Checks for part 1 of w1d2: loading data. IDX bytes are built and decoded with numpy's
explicit big-endian dtypes (``>u4``, ``>i4``, ...); splits and batches are compared with
``torch.randperm`` and ``torch.utils.data.DataLoader`` over a ``TensorDataset``."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from mlab.course.engine.checks import Namespace, check
from mlab.errors import DataError, ShapeError
from mlab.testing import (
    assert_close,
    assert_equal,
    assert_raises,
    assert_unchanged,
    case,
    expect,
    generator,
    randint,
    randn,
)

# The IDX type codes, as the format defines them, with numpy's big-endian spelling.
_CODES: dict[torch.dtype, tuple[int, str]] = {
    torch.uint8: (0x08, ">u1"),
    torch.int8: (0x09, ">i1"),
    torch.int16: (0x0B, ">i2"),
    torch.int32: (0x0C, ">i4"),
    torch.float32: (0x0D, ">f4"),
    torch.float64: (0x0E, ">f8"),
}


def _header(dtype: torch.dtype, shape: tuple[int, ...]) -> bytes:
    code, _ = _CODES[dtype]
    return bytes([0, 0, code, len(shape)]) + np.array(shape, dtype=">u4").tobytes()


def _values(dtype: torch.dtype, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random values of ``dtype`` that use every byte: big, negative, fractional."""
    g = np.random.default_rng(seed)
    if dtype.is_floating_point:
        return (g.standard_normal(shape) * 1e3).astype(_CODES[dtype][1][1:])
    info = np.iinfo(_CODES[dtype][1][1:])
    return g.integers(info.min, info.max, size=shape, endpoint=True).astype(info.dtype)


def _idx_file(dtype: torch.dtype, shape: tuple[int, ...], seed: int) -> tuple[bytes, np.ndarray]:
    """An IDX file (header + big-endian numbers) and the values it holds."""
    values = _values(dtype, shape, seed)
    return _header(dtype, shape) + values.astype(_CODES[dtype][1]).tobytes(), values


def _numpy_decode(data: bytes, dtype: torch.dtype, shape: tuple[int, ...]) -> Tensor:
    """numpy's reading of an IDX file's numbers: explicit big-endian, then native order."""
    big = np.frombuffer(data, dtype=_CODES[dtype][1], offset=4 + 4 * len(shape))
    return torch.from_numpy(big.astype(big.dtype.newbyteorder("="))).reshape(shape)


_SHAPES: list[tuple[int, ...]] = [(7,), (3, 5), (2, 3, 4), (), (0, 4), (1, 2, 1, 3)]


# ----------------------------------------------------------------------------------------------
# parse_idx_header


@check("parse_idx_header")
def headers_match_the_format(ns: Namespace) -> None:
    cases: list[tuple[torch.dtype, tuple[int, ...]]] = [
        (torch.uint8, (60000, 28, 28)),
        (torch.uint8, (10000,)),
        (torch.int8, (3, 5)),
        (torch.int16, (2, 3, 4)),
        (torch.int32, (1, 256, 65536, 7)),
        (torch.float32, ()),
        (torch.float64, (0, 4)),
        (torch.int32, (2**31 + 5, 3)),  # an unsigned size: needs ">I", not ">i"
    ]
    for dtype, shape in cases:
        header = _header(dtype, shape)
        for what, data in [("just the header", header), ("header + data", header + b"\x07" * 9)]:
            with case(f"{what} of a {dtype} IDX file of shape {shape}", header=header.hex(" ")):
                got = ns.parse_idx_header(data)
                expect(
                    isinstance(got, tuple) and len(got) == 3,
                    f"expected a tuple (dtype, shape, offset), got {got!r}",
                )
                assert_equal(got[0], dtype, what="dtype")
                assert_equal(tuple(got[1]), shape, what="shape")
                assert_equal(got[2], 4 + 4 * len(shape), what="offset")


@check("parse_idx_header")
def bad_magic_numbers_are_rejected(ns: Namespace) -> None:
    cases = [
        ("a gzipped file (1f 8b 08 00 ...)", bytes.fromhex("1f8b0800") + bytes(12)),
        ("first byte 01", bytes.fromhex("01000801") + bytes(4)),
        ("second byte 01", bytes.fromhex("00010801") + bytes(4)),
        ("an empty file", b""),
        ("only 3 bytes", bytes.fromhex("000008")),
        ("a PNG file", b"\x89PNG\r\n\x1a\n" + bytes(8)),
    ]
    for what, data in cases:
        with case(what, data=data.hex(" ")):
            assert_raises(
                ns.parse_idx_header, data, exc=DataError, match="magic", what="parse_idx_header"
            )


@check("parse_idx_header")
def unknown_type_codes_are_rejected(ns: Namespace) -> None:
    for code in (0x00, 0x07, 0x0A, 0x0F, 0x10, 0xFF):
        data = bytes([0, 0, code, 1]) + np.array([3], dtype=">u4").tobytes() + bytes(3)
        with case(f"type code 0x{code:02X}", data=data.hex(" ")):
            assert_raises(ns.parse_idx_header, data, exc=DataError, what="parse_idx_header")


@check("parse_idx_header")
def truncated_headers_are_rejected(ns: Namespace) -> None:
    full = _header(torch.uint8, (60000, 28, 28))
    for cut in (4, 9, 15):
        with case(f"a 3-dimension header cut to {cut} of its 16 bytes", data=full[:cut].hex(" ")):
            assert_raises(ns.parse_idx_header, full[:cut], exc=DataError, what="parse_idx_header")


# ----------------------------------------------------------------------------------------------
# decode_idx


@check("decode_idx")
def decoding_matches_numpy(ns: Namespace) -> None:
    seed = 0
    for dtype in _CODES:
        for shape in _SHAPES:
            seed += 1
            data, _ = _idx_file(dtype, shape, seed)
            expected = _numpy_decode(data, dtype, shape)
            with case(f"a {dtype} IDX file of shape {shape}", data=data[:24].hex(" ") + " ..."):
                assert_equal(ns.decode_idx(data), expected, what="decoded tensor")


@check("decode_idx")
def decoding_known_bytes(ns: Namespace) -> None:
    data = bytes([0, 0, 0x0C, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0xEA, 0x60, 0xFF, 0xFF, 0xFF, 0xFE])
    with case("int32 [[0x0000EA60, 0xFFFFFFFE]]: 60000 and -2", data=data.hex(" ")):
        assert_equal(
            ns.decode_idx(data), torch.tensor([[60000, -2]], dtype=torch.int32), what="decoded"
        )


@check("decode_idx")
def wrong_lengths_are_rejected(ns: Namespace) -> None:
    for dtype, shape in [(torch.int16, (3, 5)), (torch.uint8, (4, 7)), (torch.float64, (2,))]:
        data, _ = _idx_file(dtype, shape, 99)
        header = 4 + 4 * len(shape)
        for what, bad in [
            ("truncated by 1 byte", data[:-1]),
            ("truncated to the header", data[:header]),
            ("1 trailing byte", data + b"\x00"),
            ("9 trailing bytes", data + bytes(range(9))),
        ]:
            with case(f"a {dtype} IDX file of shape {shape}, {what}"):
                err = assert_raises(ns.decode_idx, bad, exc=DataError, what="decode_idx")
                for number, meaning in [(len(data), "expected"), (len(bad), "found")]:
                    expect(
                        str(number) in str(err),
                        f"the message {str(err)!r} should say how many bytes were {meaning} "
                        f"({number})",
                    )


@check("decode_idx")
def bad_magic_is_reported(ns: Namespace) -> None:
    data, _ = _idx_file(torch.uint8, (2, 3), 5)
    with case("a gzip header in front of IDX bytes"):
        assert_raises(
            ns.decode_idx, b"\x1f\x8b" + data[2:], exc=DataError, match="magic", what="decode_idx"
        )


# ----------------------------------------------------------------------------------------------
# normalise_images


def _numpy_normalise(images: Tensor, mean: float, std: float) -> Tensor:
    scaled = images.numpy().astype(np.float64) / 255.0
    return torch.from_numpy(((scaled - mean) / std).astype(np.float32))


@check("normalise_images")
def normalisation_matches_numpy(ns: Namespace) -> None:
    every_value = torch.arange(256, dtype=torch.uint8).reshape(16, 16)
    pictures = randint(0, 256, 3, 5, 7, seed=1).to(torch.uint8)
    for what, images, mean, std in [
        ("every value 0..255, default mean and std", every_value, None, None),
        ("3x5x7 random pixels, Fashion-MNIST's mean and std", pictures, 0.2860, 0.3530),
        ("3x5x7 random pixels, mean 0.5, std 2", pictures, 0.5, 2.0),
        ("a transposed (non-contiguous) batch, mean -1, std 0.25", pictures.mT, -1.0, 0.25),
        ("an empty batch", pictures[:0], 0.1, 0.2),
    ]:
        before = images.clone()
        with case(what, images=images, mean=mean, std=std):
            if mean is None or std is None:
                got = ns.normalise_images(images)
                expected = _numpy_normalise(images, 0.0, 1.0)
            else:
                got = ns.normalise_images(images, mean, std)
                expected = _numpy_normalise(images, mean, std)
            assert_close(got, expected, what="normalised images")
            assert_unchanged(images, before, what="images")


@check("normalise_images")
def normalisation_rejects_bad_input(ns: Namespace) -> None:
    pictures = randint(0, 256, 2, 3, seed=2).to(torch.uint8)
    for what, images in [("float32 images", pictures / 255), ("int64 images", pictures.long())]:
        with case(what, images=images):
            assert_raises(ns.normalise_images, images, exc=DataError, what="normalise_images")
    for std in (0.0, -0.5):
        with case(f"std={std}", images=pictures):
            assert_raises(
                ns.normalise_images, pictures, 0.1, std, exc=ValueError, what="normalise_images"
            )


# ----------------------------------------------------------------------------------------------
# train_val_split


@check("train_val_split")
def split_cuts_one_permutation(ns: Namespace) -> None:
    for n, fraction, seed in [
        (10, 0.3, 0),
        (100, 0.29, 1),  # 100 * 0.29 == 28.999999999999996: rounds to 29
        (60000, 0.1, 2),
        (7, 0.6, 3),
        (5, 0.0, 4),
        (5, 1.0, 5),
        (1, 0.2, 6),
        (0, 0.5, 7),
    ]:
        order = torch.randperm(n, generator=generator(seed))
        n_val = round(n * fraction)
        with case(f"n={n}, val_fraction={fraction}, generator seeded {seed}"):
            got = ns.train_val_split(n, fraction, generator(seed))
            expect(
                isinstance(got, tuple) and len(got) == 2,
                f"expected a tuple (train_idx, val_idx), got {type(got).__name__}",
            )
            assert_equal(got[1], order[:n_val], what="val_idx (the first entries of randperm)")
            assert_equal(got[0], order[n_val:], what="train_idx (the rest of randperm)")


@check("train_val_split")
def split_is_a_partition(ns: Namespace) -> None:
    n = 57
    with case("n=57, val_fraction=0.25, default generator (None)"):
        train, val = ns.train_val_split(n, 0.25)
        assert_equal(len(val), 14, what="number of validation indices")
        everything = torch.cat([train, val]).sort().values
        assert_equal(everything, torch.arange(n), what="sorted train + val indices")
    with case("n=57, val_fraction=0.25, seeds 3 and 4"):
        first, _ = ns.train_val_split(n, 0.25, generator(3))
        again, _ = ns.train_val_split(n, 0.25, generator(3))
        other, _ = ns.train_val_split(n, 0.25, generator(4))
        assert_equal(again, first, what="train_idx for the same seed twice")
        expect(not torch.equal(first, other), "different seeds gave the same split")


@check("train_val_split")
def split_rejects_bad_fractions(ns: Namespace) -> None:
    for fraction in (-0.1, 1.5):
        with case(f"n=10, val_fraction={fraction}"):
            assert_raises(ns.train_val_split, 10, fraction, exc=ValueError, what="train_val_split")


# ----------------------------------------------------------------------------------------------
# minibatches


def _loader_batches(
    x: Tensor, y: Tensor, batch_size: int, order: Tensor, drop_last: bool
) -> list[tuple[Tensor, Tensor]]:
    """The batches torch's DataLoader makes over TensorDataset(x, y) in this order."""
    if len(x) == 0:
        return []
    loader = DataLoader(
        TensorDataset(x, y), batch_size=batch_size, sampler=order.tolist(), drop_last=drop_last
    )
    return [(bx, by) for bx, by in loader]


def _compare_batches(got: object, expected: list[tuple[Tensor, Tensor]]) -> None:
    batches = list(got)  # type: ignore[call-overload]
    sizes = [len(b[0]) if isinstance(b, (tuple, list)) else b for b in batches]
    expect(
        len(batches) == len(expected),
        f"{len(batches)} batches of sizes {sizes} but expected {len(expected)} of sizes "
        f"{[len(b[0]) for b in expected]}",
    )
    for i, (batch, (ex, ey)) in enumerate(zip(batches, expected, strict=True)):
        expect(
            isinstance(batch, (tuple, list)) and len(batch) == 2,
            f"batch {i} should be a pair (x_batch, y_batch), got {type(batch).__name__}",
        )
        assert_equal(batch[0], ex, what=f"x of batch {i}")
        assert_equal(batch[1], ey, what=f"y of batch {i}")


@check("minibatches")
def batches_match_dataloader(ns: Namespace) -> None:
    x = randn(23, 3, 2, seed=10)
    y = torch.arange(100, 123)
    for batch_size in (5, 4, 1, 23, 30):
        for shuffle in (True, False):
            for drop_last in (False, True):
                seed = 20 + batch_size
                order = torch.randperm(23, generator=generator(seed)) if shuffle else None
                expected = _loader_batches(
                    x, y, batch_size, torch.arange(23) if order is None else order, drop_last
                )
                with case(
                    f"23 examples, batch_size={batch_size}, shuffle={shuffle}, "
                    f"drop_last={drop_last}, generator seeded {seed}",
                    x=x,
                    y=y,
                ):
                    got = ns.minibatches(
                        x,
                        y,
                        batch_size,
                        generator=generator(seed),
                        shuffle=shuffle,
                        drop_last=drop_last,
                    )
                    _compare_batches(got, expected)


@check("minibatches")
def batches_default_to_shuffled_and_kept(ns: Namespace) -> None:
    x = randn(11, 4, seed=11)
    y = randint(0, 10, 11, seed=12)
    order = torch.randperm(11, generator=generator(5))
    with case("11 examples, batch_size=3, only a generator given", x=x, y=y):
        _compare_batches(
            ns.minibatches(x, y, 3, generator=generator(5)),
            _loader_batches(x, y, 3, order, drop_last=False),
        )


@check("minibatches")
def each_epoch_has_a_new_order(ns: Namespace) -> None:
    x = randn(10, 2, seed=13)
    y = torch.arange(10)
    g = generator(6)
    first, second = torch.randperm(10, generator=g), torch.randperm(10, generator=g)
    g = generator(6)
    with case("two epochs over 10 examples, batch_size=4, one generator", x=x, y=y):
        _compare_batches(
            ns.minibatches(x, y, 4, generator=g), _loader_batches(x, y, 4, first, False)
        )
        _compare_batches(
            ns.minibatches(x, y, 4, generator=g), _loader_batches(x, y, 4, second, False)
        )


@check("minibatches")
def order_is_drawn_when_iteration_starts(ns: Namespace) -> None:
    x = randn(10, 2, seed=15)
    y = torch.arange(10)
    g = generator(7)
    order = torch.randperm(10, generator=generator(8))
    with case(
        "10 examples, batch_size=4; the generator reseeded with 8 after the call, before the "
        "first batch: draw the order when iteration starts (a generator function that "
        "yields), not when minibatches is called",
        x=x,
        y=y,
    ):
        got = ns.minibatches(x, y, 4, generator=g)
        g.manual_seed(8)
        _compare_batches(got, _loader_batches(x, y, 4, order, False))


@check("minibatches")
def no_examples_no_batches(ns: Namespace) -> None:
    with case("0 examples, batch_size=4"):
        _compare_batches(ns.minibatches(torch.zeros(0, 3), torch.zeros(0), 4, shuffle=False), [])


def _all_batches(ns: Namespace, *args: object, **kwargs: object) -> list[object]:
    """Run the generator to the end (it raises only once iteration starts)."""
    return list(ns.minibatches(*args, **kwargs))


@check("minibatches")
def batches_reject_bad_input(ns: Namespace) -> None:
    x = randn(6, 2, seed=14)
    with case("x with 6 examples, y with 5", x=x):
        assert_raises(_all_batches, ns, x, torch.arange(5), 2, exc=ShapeError, what="minibatches")
    for batch_size, drop_last in [(0, False), (0, True), (-3, False)]:
        with case(f"6 examples, batch_size={batch_size}, drop_last={drop_last}"):
            assert_raises(
                _all_batches,
                ns,
                x,
                torch.arange(6),
                batch_size,
                drop_last=drop_last,
                exc=ValueError,
                what="minibatches",
            )
