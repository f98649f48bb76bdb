"""Checks for part 3 of w3d1: random states against Python's, NumPy's and torch's own
functions; checkpoint files against ``hashlib`` and ``torch.load`` (with ``os.fsync`` and
``os.replace`` watched); resuming against corrupt, truncated and renamed files; and all of it
against a small network with dropout trained six steps without interruption."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from torch import nn

from mlab.course.engine.checks import Namespace, check
from mlab.errors import DataError, MismatchError
from mlab.testing import assert_equal, assert_raises, case, expect

MAGIC = b"MLAB-CHECKPOINT 1 "
KEYS = ("python", "numpy", "torch", "cuda")


def _numpy_key() -> Any:
    state: Any = np.random.get_state()
    return state[1]


def _draws() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


@contextlib.contextmanager
def _folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="w3d1-") as d:
        yield Path(d)


def _file_bytes(state: dict[str, Any], digest: str | None = None, magic: bytes = MAGIC) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    return magic + (digest or hashlib.sha256(payload).hexdigest()).encode() + b"\n" + payload


# ----------------------------------------------------------------------------------------------
# capture_rng_state / restore_rng_state


@check("capture_rng_state")
def captured_state_replays_every_generator(ns: Namespace) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    _draws()
    with case("after seeding and drawing from each generator"):
        state = ns.capture_rng_state()
        expect(isinstance(state, dict), f"return a dict, got {type(state).__name__}")
        assert_equal(sorted(state), sorted(KEYS), what="keys")
        want = _draws()
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        assert_equal(_draws(), want, what="draws after setting the captured states")
        assert_equal(state["cuda"], torch.cuda.get_rng_state_all(), what="the CUDA states")
        again = ns.capture_rng_state()
        expect(
            not torch.equal(again["torch"], state["torch"]),
            "a second capture after more draws should differ: capture the current state",
        )


@check("restore_rng_state")
def restored_state_replays_every_generator(ns: Namespace) -> None:
    random.seed(4)
    np.random.seed(5)
    torch.manual_seed(6)
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all(),
    }
    want = _draws()
    _draws()
    with case("states from random.getstate, np.random.get_state, torch.get_rng_state"):
        expect(ns.restore_rng_state(state) is None, "restore_rng_state returns None")
        assert_equal(_draws(), want, what="draws after restoring")


@check("restore_rng_state")
def restoring_an_incomplete_state_changes_nothing(ns: Namespace) -> None:
    for missing in (["torch"], ["cuda"], ["numpy", "python"]):
        random.seed(7)
        np.random.seed(7)
        torch.manual_seed(7)
        full = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": [],
        }
        _draws()
        partial = {k: v for k, v in full.items() if k not in missing}
        before = (random.getstate(), _numpy_key().copy(), torch.get_rng_state())
        with case(f"a state without {missing}"):
            err = assert_raises(ns.restore_rng_state, partial, exc=ValueError)
            for key in missing:
                expect(repr(key) in str(err), f"the message should name {key!r}: {err}")
            after = (random.getstate(), _numpy_key(), torch.get_rng_state())
            expect(before[0] == after[0], "Python's generator changed before the error")
            expect(np.array_equal(before[1], after[1]), "NumPy's generator changed")
            expect(torch.equal(before[2], after[2]), "torch's generator changed")


# ----------------------------------------------------------------------------------------------
# write_checkpoint


class _Watch:
    """Records os.fsync and os.replace calls, with what the synced file held at that moment."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, Any]] = []
        self._fsync, self._replace = os.fsync, os.replace

    def fsync(self, fd: Any) -> None:
        fd = fd if isinstance(fd, int) else fd.fileno()
        target = os.readlink(f"/proc/self/fd/{fd}")
        self.events.append(("fsync", target, os.fstat(fd).st_size))
        self._fsync(fd)

    def replace(self, src: Any, dst: Any) -> None:
        self.events.append(("replace", os.fspath(src), os.fspath(dst)))
        self._replace(src, dst)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        with (
            mock.patch.object(os, "fsync", self.fsync),
            mock.patch.object(os, "replace", self.replace),
        ):
            yield


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@check("write_checkpoint")
def written_file_is_header_then_torch_save(ns: Namespace) -> None:
    state = {"step": 7, "w": torch.arange(6.0).reshape(2, 3), "rng": random.getstate()}
    with _folder() as d, case("a state with a tensor and Python's random state"):
        path = d / "deep" / "er" / "ckpt.pt"
        expect(ns.write_checkpoint(path, state) is None, "write_checkpoint returns None")
        expect(path.is_file(), f"no file at {path} after write_checkpoint")
        data = path.read_bytes()
        header, _, payload = data.partition(b"\n")
        expect(header.startswith(MAGIC), f"the file should start with {MAGIC!r}: {header[:40]!r}")
        assert_equal(
            header[len(MAGIC) :].decode(), hashlib.sha256(payload).hexdigest(), what="digest"
        )
        try:
            back = torch.load(io.BytesIO(payload), weights_only=False)
        except Exception as err:
            raise MismatchError(
                f"torch.load cannot read what follows the header ({len(payload)} bytes): {err}"
            ) from None
        assert_equal(back["step"], 7, what="step")
        assert_equal(back["w"], state["w"], what="w")
        expect(back["rng"] == state["rng"], "the random state did not round-trip")
        assert_equal(sorted(p.name for p in path.parent.iterdir()), ["ckpt.pt"], what="files")
    with _folder() as d, case("writing over an existing checkpoint (path as str)"):
        path = d / "ckpt.pt"
        path.write_bytes(b"old")
        ns.write_checkpoint(path, {"step": 8})
        expect(path.read_bytes().startswith(MAGIC), "the old file should be replaced")
        ns.write_checkpoint(str(path), {"step": 9})
        back = torch.load(io.BytesIO(path.read_bytes().partition(b"\n")[2]), weights_only=False)
        assert_equal(back["step"], 9, what="step after writing twice")


@check("write_checkpoint")
def written_atomically_and_durably(ns: Namespace) -> None:
    watch = _Watch()
    with _folder() as d, case("os.fsync and os.replace watched"):
        path = d / "run" / "ckpt-00000003.pt"
        fds = _open_fds()
        with watch.active():
            ns.write_checkpoint(path, {"step": 3, "w": torch.ones(50)})
        expect(_open_fds() == fds, "a file descriptor was left open (close the folder's fd)")
        size = path.stat().st_size
        kinds = [e[0] for e in watch.events]
        expect("replace" in kinds, f"write to a temporary file, then os.replace it: {kinds}")
        i = kinds.index("replace")
        _, src, dst = watch.events[i]
        expect(Path(dst) == path, f"os.replace should land on {path}, not {dst}")
        expect(
            Path(src).parent == path.parent and Path(src) != path,
            f"the temporary file {src} should be another name in {path.parent}",
        )
        synced_files = [e for e in watch.events[:i] if e[0] == "fsync" and e[1] == src]
        expect(bool(synced_files), "os.fsync the temporary file before os.replace")
        expect(
            synced_files[-1][2] == size,
            f"when fsync ran the file held {synced_files[-1][2]} of {size} bytes: f.flush() "
            "first (Python buffers writes)",
        )
        synced_dir = [e for e in watch.events[i:] if e[0] == "fsync" and Path(e[1]) == path.parent]
        expect(bool(synced_dir), "os.fsync the folder after os.replace (the rename is in it)")


# ----------------------------------------------------------------------------------------------
# read_checkpoint


@check("read_checkpoint")
def reads_what_was_written(ns: Namespace) -> None:
    state: dict[str, Any] = {"step": 11}
    state["w"] = torch.randn(4, generator=torch.Generator().manual_seed(0))
    state["rng"] = np.random.get_state()
    with _folder() as d, case("a file with a correct header"):
        path = d / "ckpt.pt"
        path.write_bytes(_file_bytes(state))
        back = ns.read_checkpoint(path)
        assert_equal(back["step"], 11, what="step")
        assert_equal(back["w"], state["w"], what="w")
        expect(np.array_equal(back["rng"][1], state["rng"][1]), "numpy state did not load")
        assert_equal(ns.read_checkpoint(str(path))["step"], 11, what="step (path as str)")


@check("read_checkpoint")
def damaged_files_are_refused(ns: Namespace) -> None:
    good = _file_bytes({"step": 1, "w": torch.ones(100)})
    header_len = good.index(b"\n")
    wrong_digest = hashlib.sha256(b"other").hexdigest()
    cases = {
        "truncated by 10 bytes": good[:-10],
        "one payload byte flipped": good[:-50] + bytes([good[-50] ^ 1]) + good[-49:],
        "the wrong digest": _file_bytes({"step": 1}, digest=wrong_digest),
        "a digest one character short": good[: header_len - 1] + good[header_len:],
        "another magic with a right digest": b"X" + good[1:],
        "an empty file": b"",
        "no header line": good[header_len + 1 :],
    }
    for what, data in cases.items():
        with _folder() as d, case(what):
            path = d / "ckpt-00000001.pt"
            path.write_bytes(data)
            err = assert_raises(ns.read_checkpoint, path, exc=DataError)
            expect(str(path) in str(err), f"the message should name the file: {err}")


# ----------------------------------------------------------------------------------------------
# find_resume_checkpoint


def _run_dir(d: Path, steps: list[int], damaged: dict[int, str]) -> Path:
    folder = d / "checkpoints"
    folder.mkdir(parents=True)
    for s in steps:
        data = _file_bytes({"step": s, "w": torch.full((3,), float(s))})
        if damaged.get(s) == "truncated":
            data = data[:-7]
        elif damaged.get(s) == "renamed":
            data = _file_bytes({"step": s - 1})
        (folder / f"ckpt-{s:08d}.pt").write_bytes(data)
    (folder / "ckpt-00000099.pt.tmp").write_bytes(b"half a file")
    return d


@check("find_resume_checkpoint")
def resumes_from_the_newest_good_checkpoint(ns: Namespace) -> None:
    scenarios: list[tuple[str, list[int], dict[int, str], int | None, list[int]]] = [
        ("three good checkpoints", [5, 10, 15], {}, 15, []),
        ("the newest truncated", [5, 10, 15], {15: "truncated"}, 10, [15]),
        ("the two newest bad", [5, 10, 15], {15: "truncated", 10: "renamed"}, 5, [15, 10]),
        ("all bad", [5, 10], {5: "truncated", 10: "truncated"}, None, [10, 5]),
        ("no checkpoint", [], {}, None, []),
        ("steps past 9 sort by number", [9, 10, 100], {100: "truncated"}, 10, [100]),
    ]
    for what, steps, damaged, want, skipped in scenarios:
        said: list[str] = []
        with _folder() as d, case(what, steps=steps, damaged=damaged):
            state = ns.find_resume_checkpoint(_run_dir(d, steps, damaged), said.append)
            got = None if state is None else state["step"]
            assert_equal(got, want, what="the step resumed from")
            expect(
                len(said) == len(skipped),
                f"say one message per skipped checkpoint ({len(skipped)}), got {said}",
            )
            for message, step in zip(said, skipped, strict=False):
                name = f"ckpt-{step:08d}.pt"
                expect(name in message, f"the message should name {name}: {message!r}")
    with _folder() as d, case("a run folder that does not exist"):
        assert_equal(ns.find_resume_checkpoint(d / "nope", print), None, what="result")


# ----------------------------------------------------------------------------------------------
# the whole: checkpoint mid-run, scramble, resume: the same weights as an uninterrupted run


def _train(model: nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    for _ in range(steps):
        x = torch.randn(8, 5)  # the global generator: its state matters
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.Linear(8, 1))
    return model, torch.optim.Adam(model.parameters(), lr=0.01)


def _interrupted(
    ns: Namespace,
    capture: Callable[[], Any],
    restore: Callable[[Any], None],
    write: Callable[..., None],
    read: Callable[[Path], Any],
) -> None:
    model, opt = _fresh()
    _train(model, opt, 6)
    want = [p.detach().clone() for p in model.parameters()]
    model, opt = _fresh()
    _train(model, opt, 3)
    with _folder() as d, case("3 steps, checkpoint, scramble every generator, resume, 3 steps"):
        state = {"model": model.state_dict(), "opt": opt.state_dict(), "rng": capture()}
        write(d / "ckpt.pt", state)
        torch.manual_seed(1234)
        random.seed(1234)
        np.random.seed(1234)
        model, opt = _fresh()
        back = read(d / "ckpt.pt")
        model.load_state_dict(back["model"])
        opt.load_state_dict(back["opt"])
        restore(back["rng"])
        _train(model, opt, 3)
        for i, (p, q) in enumerate(zip(model.parameters(), want, strict=True)):
            assert_equal(p.detach(), q, what=f"parameter {i} after resuming")


def _reference_write(path: Path, state: dict[str, Any]) -> None:
    path.write_bytes(_file_bytes(state))


def _reference_read(path: Path) -> Any:
    return torch.load(io.BytesIO(path.read_bytes().partition(b"\n")[2]), weights_only=False)


def _torch_capture() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": [],
    }


def _torch_restore(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


@check("capture_rng_state")
def capture_resumes_like_an_uninterrupted_run(ns: Namespace) -> None:
    _interrupted(ns, ns.capture_rng_state, _torch_restore, _reference_write, _reference_read)


@check("restore_rng_state")
def restore_resumes_like_an_uninterrupted_run(ns: Namespace) -> None:
    _interrupted(ns, _torch_capture, ns.restore_rng_state, _reference_write, _reference_read)


@check("write_checkpoint")
def write_resumes_like_an_uninterrupted_run(ns: Namespace) -> None:
    _interrupted(ns, _torch_capture, _torch_restore, ns.write_checkpoint, _reference_read)


@check("read_checkpoint")
def read_resumes_like_an_uninterrupted_run(ns: Namespace) -> None:
    _interrupted(ns, _torch_capture, _torch_restore, _reference_write, ns.read_checkpoint)
