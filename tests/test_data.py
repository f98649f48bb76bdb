"""mlab.data: the IDX reader/writer against numpy's big-endian decoding, the Fashion-MNIST
loader on the real Debian files, the search order, and downloads from a local HTTP server on
127.0.0.1 (tests never reach the internet)."""

from __future__ import annotations

import ast
import dataclasses
import functools
import gzip
import hashlib
import http.server
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import files_or_skip, load_or_skip
from mlab.data import (
    FASHION_MNIST,
    FASHION_MNIST_CLASSES,
    IDX_DTYPES,
    MNIST,
    IdxImageDataset,
    decode_idx,
    encode_idx,
    load_digits,
    load_fashion_mnist,
    load_idx_images,
    load_mnist,
    missing_data_hint,
    read_idx,
    write_idx,
)
from mlab.data.idx import read_bytes
from mlab.errors import DataError
from mlab.testing import generator

# The type codes of the IDX format, as the MNIST page (yann.lecun.com/exdb/mnist, "THE IDX
# FILE FORMAT") lists them: written out here, never taken from mlab.data.idx.
SPEC_TYPE_CODES = {
    torch.uint8: 0x08,  # unsigned byte
    torch.int8: 0x09,  # signed byte
    torch.int16: 0x0B,  # short (2 bytes)
    torch.int32: 0x0C,  # int (4 bytes)
    torch.float32: 0x0D,  # float (4 bytes)
    torch.float64: 0x0E,  # double (8 bytes)
}
BIG_ENDIAN = {
    torch.uint8: ">u1",
    torch.int8: ">i1",
    torch.int16: ">i2",
    torch.int32: ">i4",
    torch.float32: ">f4",
    torch.float64: ">f8",
}


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test sees the developer's MLAB_DATA_DIR or cache; downloads land in tmp_path."""
    monkeypatch.delenv("MLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("MLAB_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache"


def _random(dtype: torch.dtype, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = generator(seed)
    if dtype.is_floating_point:
        return torch.randn(shape, generator=g, dtype=dtype) * 1e3
    info = torch.iinfo(dtype)
    return torch.randint(info.min, info.max + 1, shape, generator=g, dtype=torch.int64).to(dtype)


# ----------------------------------------------------------------------------------------------
# IDX


@pytest.mark.parametrize("dtype", list(BIG_ENDIAN), ids=str)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (), (0, 4), (1, 2, 1, 3)], ids=str)
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_idx_round_trip(tmp_path: Path, dtype: torch.dtype, shape: tuple[int, ...], compress: bool):
    x = _random(dtype, shape, seed=len(shape))
    # the name never says whether the file is gzipped: the reader looks at the magic bytes
    path = tmp_path / ("data.idx" if compress else "data.gz")
    write_idx(path, x, compress=compress)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == compress
    back = read_idx(path, dtype=dtype)
    assert back.dtype == dtype and back.shape == x.shape
    assert torch.equal(back, x)
    # numpy's independent reading of what we wrote: header, then big-endian numbers
    data = gzip.decompress(raw) if compress else raw
    assert data[:4] == bytes([0, 0, SPEC_TYPE_CODES[dtype], len(shape)])
    dims = np.frombuffer(data, dtype=">u4", count=len(shape), offset=4)
    assert tuple(int(d) for d in dims) == shape
    values = np.frombuffer(data, dtype=BIG_ENDIAN[dtype], offset=4 + 4 * len(shape))
    np.testing.assert_array_equal(values.reshape(shape), x.numpy())


@pytest.mark.parametrize("dtype", list(SPEC_TYPE_CODES), ids=str)
def test_idx_type_codes_are_the_specs(dtype: torch.dtype) -> None:
    """Bytes built by hand from the format's description decode to the dtype it names."""
    values = np.array([1, -2, 3] if dtype != torch.uint8 else [1, 2, 3])
    numbers = values.astype(BIG_ENDIAN[dtype]).tobytes()
    data = bytes([0, 0, SPEC_TYPE_CODES[dtype], 1, 0, 0, 0, 3]) + numbers
    x = decode_idx(data)
    assert x.dtype == dtype, f"type code 0x{SPEC_TYPE_CODES[dtype]:02X} decoded as {x.dtype}"
    assert x.tolist() == values.tolist()
    assert IDX_DTYPES[SPEC_TYPE_CODES[dtype]] == dtype
    assert encode_idx(x)[:4] == data[:4]


def test_write_idx_compresses_by_suffix(tmp_path: Path) -> None:
    x = torch.arange(6, dtype=torch.uint8).reshape(2, 3)
    write_idx(tmp_path / "a.gz", x)
    write_idx(tmp_path / "a.idx", x)
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "a.idx").read_bytes()[:4] == bytes([0, 0, 0x08, 2])


def test_write_idx_rejects_other_dtypes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="int64"):
        write_idx(tmp_path / "x.idx", torch.arange(3))


def _good_file(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "good.idx"
    write_idx(path, _random(torch.int16, (3, 5), seed=0))
    return path, path.read_bytes()


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(
    ("name", "corrupt", "message"),
    [
        ("bad magic", lambda d: b"\x01" + d[1:], "magic number 01 00 0b 02"),
        ("unknown type code", lambda d: d[:2] + b"\x0a" + d[3:], "unknown IDX type code 0x0A"),
        ("truncated", lambda d: d[:-3], "needs 42 bytes, found 39"),
        ("truncated header", lambda d: d[:7], "need 12 header bytes, found only 7"),
        ("trailing bytes", lambda d: d + b"xyz", "needs 42 bytes, found 45"),
    ],
)
def test_corrupt_idx_files_give_clear_errors(tmp_path, name, corrupt, message, compress) -> None:
    _, data = _good_file(tmp_path)
    bad = tmp_path / "bad.idx"
    bad.write_bytes(gzip.compress(corrupt(data)) if compress else corrupt(data))
    with pytest.raises(DataError, match=message) as err:
        read_idx(bad)
    assert str(bad) in str(err.value)  # the message names the file


def test_wrong_dtype_is_an_error(tmp_path: Path) -> None:
    good, _ = _good_file(tmp_path)
    with pytest.raises(
        DataError, match=r"holds torch\.int16 numbers but torch\.uint8 was expected"
    ):
        read_idx(good, dtype=torch.uint8)


def test_broken_gzip_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(bytes(100))[:20])
    with pytest.raises(DataError, match="cannot be decompressed"):
        read_idx(path)


def test_decoded_tensor_is_writable_and_owns_its_memory() -> None:
    data = bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 1, 2, 3])
    x = decode_idx(data)
    x += 1
    assert x.tolist() == [2, 3, 4] and data[-3:] == bytes([1, 2, 3])


# ----------------------------------------------------------------------------------------------
# The real Fashion-MNIST (Debian's dataset-fashion-mnist in CI; the fixture skips without it)


def _folder(files: dict[str, Path]) -> Path:
    """A folder holding the real files, for ``data_dir=``: the autouse fixture hides the
    developer's MLAB_DATA_DIR and cache from the loaders."""
    folders = {path.parent for path in files.values()}
    assert len(folders) == 1, f"these tests want Fashion-MNIST's files in one folder: {files}"
    return folders.pop()


@pytest.mark.parametrize(("split", "n"), [("train", 60000), ("test", 10000)])
def test_fashion_mnist_real_files(fashion_mnist_files: dict[str, Path], split: str, n: int):
    folder = _folder(fashion_mnist_files)
    images, labels = load_fashion_mnist(split, data_dir=folder, download=False)
    assert images.shape == (n, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert labels.bincount().tolist() == [n // 10] * 10
    assert len(FASHION_MNIST_CLASSES) == 10
    # numpy's reading of the same file agrees
    prefix = "train" if split == "train" else "t10k"
    raw = read_bytes(fashion_mnist_files[f"{prefix}-images-idx3-ubyte.gz"])
    expected = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 28, 28)
    np.testing.assert_array_equal(images.numpy(), expected)


def test_real_files_match_the_recorded_checksums(fashion_mnist_files: dict[str, Path]) -> None:
    for filename, digest in FASHION_MNIST.sha256.items():
        data = read_bytes(fashion_mnist_files[filename])
        assert hashlib.sha256(data).hexdigest() == digest, filename


def test_fashion_mnist_as_float(fashion_mnist_files: dict[str, Path]) -> None:
    folder = _folder(fashion_mnist_files)
    images, _ = load_fashion_mnist("test", data_dir=folder, download=False, as_float=True)
    assert images.dtype == torch.float32
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    uint8, _ = load_fashion_mnist("test", data_dir=folder, download=False)
    torch.testing.assert_close(images, uint8.double().div(255).float())


def test_unknown_split_is_an_error() -> None:
    with pytest.raises(ValueError, match="'valid'"):
        load_fashion_mnist("valid")


# ----------------------------------------------------------------------------------------------
# Search order


@pytest.mark.parametrize("layout", ["subfolder", "directly", "unpacked"])
def test_mlab_data_dir_comes_first(tmp_path, monkeypatch, layout, fashion_mnist_files) -> None:
    root = tmp_path / "data"
    folder = root / "fashion-mnist" if layout == "subfolder" else root
    folder.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        if layout == "unpacked":  # decompressed, named without .gz
            data = read_bytes(fashion_mnist_files[name])
            (folder / name.removesuffix(".gz")).write_bytes(data)
        else:
            (folder / name).symlink_to(fashion_mnist_files[name])
    monkeypatch.setenv("MLAB_DATA_DIR", str(root))
    images, labels = load_fashion_mnist("test", download=False)
    assert images.shape == (10000, 28, 28) and labels.bincount().tolist() == [1000] * 10
    # proof that this copy, not Debian's, is read: corrupt it and the error names it
    victim = folder / (
        "t10k-labels-idx1-ubyte" if layout == "unpacked" else "t10k-labels-idx1-ubyte.gz"
    )
    victim.unlink()
    victim.write_bytes(b"not an idx file")
    with pytest.raises(DataError, match="Delete") as err:
        load_fashion_mnist("test", download=False)
    assert str(victim) in str(err.value)


def test_a_file_failing_its_checksum_is_never_used(tmp_path, monkeypatch) -> None:
    root = tmp_path / "data" / "fashion-mnist"
    root.mkdir(parents=True)
    images = torch.zeros(10000, 28, 28, dtype=torch.uint8)  # well-formed, but not the real ones
    write_idx(root / "t10k-images-idx3-ubyte.gz", images)
    monkeypatch.setenv("MLAB_DATA_DIR", str(root.parent))
    with pytest.raises(DataError, match="SHA-256") as err:
        load_fashion_mnist("test", download=False)
    assert str(root / "t10k-images-idx3-ubyte.gz") in str(err.value)


def _fake_data_set(folder: Path) -> tuple[IdxImageDataset, dict[str, torch.Tensor]]:
    """A small MNIST-style data set (4x4 images, 6 to train and 3 to test) written to
    ``folder`` with ``write_idx``: its spec, and the tensors in each file."""
    spec = IdxImageDataset(
        name="tiny",
        title="Tiny",
        base_url="http://127.0.0.1:9/",  # never used: the tests do not download
        classes=("a", "b", "c"),
        sizes={"train": 6, "test": 3},
        system_package="dataset-tiny",
        image_shape=(4, 4),
    )
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, (images_file, labels_file) in spec.files.items():
        n = spec.sizes[split]
        gen = generator(n)
        written[images_file] = torch.randint(0, 256, (n, 4, 4), generator=gen, dtype=torch.uint8)
        written[labels_file] = torch.arange(n, dtype=torch.uint8) % 3
        for name in (images_file, labels_file):
            write_idx(folder / name, written[name])
    return spec, written


def test_the_data_fixture_yields_data_where_it_is(tmp_path, monkeypatch) -> None:
    spec, written = _fake_data_set(tmp_path / "data" / "tiny")
    monkeypatch.setenv("MLAB_DATA_DIR", str(tmp_path / "data"))
    assert files_or_skip(spec) == {name: tmp_path / "data" / "tiny" / name for name in written}
    train, test = load_or_skip(spec)
    assert torch.equal(train.images, written["train-images-idx3-ubyte.gz"])
    assert torch.equal(test.images, written["t10k-images-idx3-ubyte.gz"])
    assert test.labels.tolist() == [0, 1, 2] and test.labels.dtype == torch.int64


def test_the_data_fixture_skips_with_the_hint_where_data_is_missing(tmp_path, monkeypatch):
    spec, _ = _fake_data_set(tmp_path / "data" / "tiny")
    (tmp_path / "data" / "tiny" / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("MLAB_DATA_DIR", str(tmp_path / "data"))
    for fixture in (files_or_skip, load_or_skip):
        with pytest.raises(pytest.skip.Exception) as skipped:
            fixture(spec)
        reason = str(skipped.value)
        assert reason.startswith(
            "Tiny is not on this machine: install it (sudo apt-get install "
            "dataset-tiny), set MLAB_DATA_DIR"
        ), reason
        assert reason.endswith("python -m mlab.data tiny (missing: t10k-labels-idx1-ubyte.gz)")
    # a file that is there but corrupt fails the test: it is not a missing file
    (tmp_path / "data" / "tiny" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not idx")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz"):
        load_or_skip(spec)


def test_the_fashion_mnist_hint_names_the_three_ways() -> None:
    hint = missing_data_hint(FASHION_MNIST)
    assert "sudo apt-get install dataset-fashion-mnist" in hint
    assert "set MLAB_DATA_DIR to a folder holding its files" in hint
    assert "python -m mlab.data fashion-mnist" in hint


def _fake_mnist(folder: Path, split: str = "test", n: int = 10000) -> torch.Tensor:
    """Write random MNIST-shaped files; return the images."""
    folder.mkdir(parents=True, exist_ok=True)
    images = torch.randint(0, 256, (n, 28, 28), generator=generator(1), dtype=torch.uint8)
    labels = torch.arange(n, dtype=torch.uint8) % 10
    images_file, labels_file = MNIST.files[split]
    write_idx(folder / images_file, images)
    write_idx(folder / labels_file, labels)
    return images


def test_mnist_from_mlab_data_dir(tmp_path, monkeypatch) -> None:
    images = _fake_mnist(tmp_path / "data" / "mnist")
    monkeypatch.setenv("MLAB_DATA_DIR", str(tmp_path / "data"))
    got, labels = load_mnist("test", download=False, as_float=True)
    torch.testing.assert_close(got, images.float() / 255)
    assert labels.dtype == torch.int64 and labels[:12].tolist() == [*range(10), 0, 1]


def test_data_dir_argument(tmp_path) -> None:
    images = _fake_mnist(tmp_path / "elsewhere")
    got, _ = load_mnist("test", data_dir=tmp_path / "elsewhere", download=False)
    assert torch.equal(got, images)


def test_mnist_checks_structure(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "data" / "mnist"
    _fake_mnist(folder)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", torch.full((10000,), 10, dtype=torch.uint8))
    monkeypatch.setenv("MLAB_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError, match="label 10 but there are only 10 classes"):
        load_mnist("test", download=False)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", torch.zeros(9999, dtype=torch.uint8))
    with pytest.raises(
        DataError, match=r"shape is \(9999,\) but the test split should be \(10000,\)"
    ):
        load_mnist("test", download=False)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", torch.zeros(10000, dtype=torch.int32))
    with pytest.raises(DataError, match="int32"):
        load_mnist("test", download=False)


def test_mnist_rejects_fashion_mnist_files(tmp_path, monkeypatch, fashion_mnist_files) -> None:
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name in MNIST.files["test"]:
        (folder / name).symlink_to(fashion_mnist_files[name])
    monkeypatch.setenv("MLAB_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError, match=r"Fashion-MNIST's t10k-images-idx3-ubyte\.gz"):
        load_mnist("test", download=False)


def test_nothing_found_and_no_download_names_the_ways() -> None:
    spec = dataclasses.replace(FASHION_MNIST, system_dirs=())
    with pytest.raises(DataError) as err:
        load_idx_images(spec, "test", download=False)
    message = str(err.value)
    assert "MLAB_DATA_DIR" in message
    assert "apt install dataset-fashion-mnist" in message
    assert "connect to the internet" in message


# ----------------------------------------------------------------------------------------------
# Downloads, from a server on 127.0.0.1


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _CutHandler(http.server.BaseHTTPRequestHandler):
    """Promises 100000 bytes, sends 1000, hangs up."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(bytes(1000))
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local server over tmp_path/served; yields (base URL, folder)."""
    folder = tmp_path / "served"
    folder.mkdir()
    yield from ((url, folder) for url in _serve(functools.partial(_QuietHandler, directory=folder)))


def _md5s(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_download_verifies_and_caches(served, isolated_dirs) -> None:
    url, folder = served
    images = _fake_mnist(folder)
    spec = dataclasses.replace(MNIST, base_url=url, download_md5=_md5s(folder))
    got, labels = load_idx_images(spec, "test")
    assert torch.equal(got, images) and labels.shape == (10000,)
    assert _leftovers(isolated_dirs / "mnist") == sorted(MNIST.files["test"])
    # the second load uses the cache: the server has nothing left to give
    for path in folder.iterdir():
        path.unlink()
    again, _ = load_idx_images(spec, "test")
    assert torch.equal(again, images)


def test_download_with_wrong_checksum_saves_nothing(served, isolated_dirs) -> None:
    url, folder = served
    _fake_mnist(folder)
    md5s = {name: "0" * 32 for name in MNIST.files["test"]}
    spec = dataclasses.replace(MNIST, base_url=url, download_md5=md5s)
    with pytest.raises(
        DataError, match=r"failed verification.*MD5 is [0-9a-f]{32}, expected 0{32}"
    ):
        load_idx_images(spec, "test")
    assert _leftovers(isolated_dirs / "mnist") == []


def test_download_failing_sha256_saves_nothing(served, isolated_dirs) -> None:
    url, folder = served
    _fake_mnist(folder)  # MNIST-shaped files where Fashion-MNIST's are expected
    spec = dataclasses.replace(FASHION_MNIST, base_url=url, system_dirs=())
    with pytest.raises(DataError, match=r"failed verification.*SHA-256"):
        load_idx_images(spec, "test")
    assert _leftovers(isolated_dirs / "fashion-mnist") == []


def test_download_of_fashion_mnist_from_a_mirror(served, isolated_dirs, fashion_mnist_files):
    url, folder = served
    for name in FASHION_MNIST.files["test"]:
        shutil.copy(fashion_mnist_files[name], folder / name)
    spec = dataclasses.replace(FASHION_MNIST, base_url=url, system_dirs=())
    images, labels = load_idx_images(spec, "test")
    assert images.shape == (10000, 28, 28) and labels.bincount().tolist() == [1000] * 10
    assert _leftovers(isolated_dirs / "fashion-mnist") == sorted(FASHION_MNIST.files["test"])


def test_interrupted_download_saves_nothing(isolated_dirs) -> None:
    for url in _serve(_CutHandler):
        spec = dataclasses.replace(MNIST, base_url=url)
        with pytest.raises(DataError, match="interrupted: received 1000 of 100000 bytes"):
            load_idx_images(spec, "test")
    assert _leftovers(isolated_dirs / "mnist") == []


def test_offline_message_names_the_three_ways(isolated_dirs) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = dataclasses.replace(FASHION_MNIST, base_url=f"http://127.0.0.1:{port}/", system_dirs=())
    with pytest.raises(DataError) as err:
        load_idx_images(spec, "test")
    message = str(err.value)
    assert f"could not download http://127.0.0.1:{port}/t10k-images-idx3-ubyte.gz" in message
    assert "MLAB_DATA_DIR" in message
    assert "sudo apt install dataset-fashion-mnist" in message
    assert "connect to the internet and run again" in message
    assert str(isolated_dirs / "fashion-mnist") in message
    assert _leftovers(isolated_dirs / "fashion-mnist") == []


# ----------------------------------------------------------------------------------------------
# scikit-learn's digits


def test_digits() -> None:
    from sklearn.datasets import load_digits as sklearn_load_digits

    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (1797,) and labels.dtype == torch.int64
    bunch = sklearn_load_digits()
    np.testing.assert_allclose(images.numpy(), bunch.images / 16, rtol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), bunch.target)
    assert float(images.max()) == 1.0 and set(labels.tolist()) == set(range(10))


def test_every_test_gets_fashion_mnist_from_the_fixtures() -> None:
    """A test that loads Fashion-MNIST itself fails on a machine without it, instead of
    skipping with the hint: only tests that ask for a fixture may load it."""
    fixtures = {"fashion_mnist", "fashion_mnist_files"}
    no_real_data = {  # tests that load it with no real file in reach, on purpose
        "test_unknown_split_is_an_error",  # fails on the split's name before looking for files
        "test_a_file_failing_its_checksum_is_never_used",  # reads the wrong file it wrote
    }
    offenders = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            takes = {arg.arg for arg in node.args.args}
            loads = any(
                isinstance(call, ast.Call)
                and getattr(call.func, "id", getattr(call.func, "attr", "")) == "load_fashion_mnist"
                for call in ast.walk(node)
            )
            if loads and not takes & fixtures and node.name not in no_real_data:
                offenders.append(f"{path.name}::{node.name}")
    assert offenders == [], f"load Fashion-MNIST without the fixtures: {offenders}"


def test_a_benchmark_without_its_data_is_skipped_with_the_hint(monkeypatch, capsys) -> None:
    from benchmarks import common

    with socket.socket() as sock:  # a port that nothing listens on: the download fails
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = dataclasses.replace(FASHION_MNIST, base_url=f"http://127.0.0.1:{port}/", system_dirs=())
    monkeypatch.setattr(common, "FASHION_MNIST", spec)
    monkeypatch.setattr(common, "load_fashion_mnist", lambda split: load_idx_images(spec, split))
    ran = []

    def bench() -> None:
        common.fashion_mnist()
        ran.append("trained")

    common.run("bench_x", bench)
    common.run("bench_y", lambda: ran.append("next"))
    assert ran == ["next"]
    assert capsys.readouterr().out == f"bench_x: skipped: {missing_data_hint(spec)}\n"


def test_python_m_mlab_data(tmp_path, monkeypatch, capsys) -> None:
    from mlab.data import __main__ as command

    spec, _ = _fake_data_set(tmp_path / "data" / "tiny")
    monkeypatch.setitem(command.DATA_SETS, "tiny", spec)
    monkeypatch.setenv("MLAB_DATA_DIR", str(tmp_path / "data"))
    assert command.main(["tiny"]) == 0
    assert f"Tiny: every file is there and verified, in {tmp_path / 'data' / 'tiny'}" in (
        capsys.readouterr().out
    )
    assert command.main(["fashion"]) == 2
    assert "unknown data set fashion; known: fashion-mnist, mnist, tiny" in capsys.readouterr().out
    (tmp_path / "data" / "tiny" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not idx")
    assert command.main(["tiny"]) == 2
    assert "t10k-labels-idx1-ubyte.gz" in capsys.readouterr().err
