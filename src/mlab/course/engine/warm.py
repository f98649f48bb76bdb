"""A warm check worker: a fork server that has already imported torch and the course engine.

Starting a check worker costs more than the check itself: Python, torch and the checks
modules take 1.5-2 s to import, and a learner runs `mlab check` dozens of times an hour. So the
first check starts a small server process in the background that imports all of that once and
then waits on a Unix socket. Each check run connects, and the server forks a child that *is* a
fresh worker (:func:`mlab.course.engine.worker.main`) already past its imports: the learner's
file is loaded anew in every child, so edits are always seen.

The server is invalidated by a fingerprint of the installed mlab sources (their sizes and
modification times), the Python executable and the environment variables that matter at import
time: after an edit to mlab, an upgrade or another venv, the old server refuses the request and
exits, and a new one starts. It also exits after :data:`IDLE_SECONDS` without a request.

The protocol on the connection, one JSON object per line:

- client → server: ``{"fingerprint": ..., "cwd": ..., "env": {...}, "day": ...}`` with the file
  descriptor for the worker's stderr attached (``SCM_RIGHTS``);
- child → client: ``{"event": "forked", "pid": N}``, then the worker protocol of
  :mod:`mlab.course.engine.worker` (the child's stdin and stdout are the connection);
- server → client once the child has exited: ``{"event": "exit", "code": C}`` (negative: the
  signal that ended it), then the connection closes.

``MLAB_WARM_WORKER=0`` turns it off (then every check run starts a worker as before). Linux
only: elsewhere checks always start a fresh worker.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["IDLE_SECONDS", "ForkedProcess", "connect", "enabled", "fingerprint", "stop_all"]

IDLE_SECONDS = 20 * 60
# Environment variables read when torch, triton or mlab are imported: a server started under
# other values would not behave like a fresh worker.
_ENV_PREFIXES = ("TORCH", "OMP_", "MKL_", "CUDA", "TRITON", "PYTHON", "HF_", "MLAB_", "LD_")


def enabled() -> bool:
    """Whether check runs should use the warm server: on Linux, without an NVIDIA GPU (CUDA
    does not survive a fork, and a GPU machine has the cores to start workers), and not
    turned off with ``MLAB_WARM_WORKER=0``."""
    return (
        sys.platform == "linux"
        and os.environ.get("MLAB_WARM_WORKER", "1") != "0"
        and not Path("/dev/nvidiactl").exists()
    )


def fingerprint(env: dict[str, str]) -> str:
    """What the server's imported state depends on: mlab's sources, the interpreter, the
    installed packages (a package installed, upgraded or removed changes its folder's
    modification time) and the import-time environment. Costs a few milliseconds (one stat
    per source file)."""
    import mlab

    root = Path(mlab.__file__).resolve().parent
    h = hashlib.sha256()
    h.update(sys.executable.encode())
    for folder in sorted(set(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))):
        with contextlib.suppress(OSError):
            h.update(f"{folder}:{os.stat(folder).st_mtime_ns}\0".encode())
    for key in sorted(env):
        if key.startswith(_ENV_PREFIXES) and key != "MLAB_WARM_WORKER":
            h.update(f"{key}={env[key]}\0".encode())
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".toml"):
            st = path.stat()
            h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:20]


def _socket_path(fp: str) -> Path:
    # One server per installation and fingerprint; a short path (Unix sockets allow ~100 bytes).
    folder = Path(tempfile.gettempdir()) / f"mlab-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"worker-{fp}.sock"


def _private(folder: Path) -> bool:
    """Whether only we can reach ``folder`` (else another user could pose as the server)."""
    st = folder.stat()
    return st.st_uid == os.getuid() and st.st_mode & 0o077 == 0


class _Lines:
    """The child's output lines; the server's closing ``exit`` line is taken out and kept."""

    def __init__(self, stream: IO[str], process: ForkedProcess) -> None:
        self._stream = stream
        self._process = process

    def close(self) -> None:
        self._stream.close()

    def __iter__(self) -> Iterator[str]:
        try:
            for line in self._stream:
                if line.startswith('{"event": "exit"'):
                    with contextlib.suppress(ValueError, KeyError):
                        self._process.returncode = int(json.loads(line)["code"])
                        continue
                yield line
        except OSError:
            pass
        finally:
            self._process._eof.set()


class _Writer:
    """The child's stdin: closing it ends the child's input (the socket stays open to read)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("w", encoding="utf-8")

    def write(self, text: str) -> int:
        return self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
            self._sock.shutdown(socket.SHUT_WR)


class ForkedProcess:
    """The parts of :class:`subprocess.Popen` the runner uses, for a worker forked by the
    server: ``pid`` (its own process group), ``stdin``, ``stdout``, ``poll`` and ``wait``."""

    def __init__(self, sock: socket.socket, pid: int, reader: IO[str]) -> None:
        self._sock = sock
        self.pid = pid
        self.returncode: int | None = None
        self._eof = threading.Event()
        self.stdin = _Writer(sock)
        self.stdout = _Lines(reader, self)

    def poll(self) -> int | None:
        return self.returncode if self._eof.is_set() else None

    def wait(self, timeout: float | None = None) -> int:
        if not self._eof.wait(timeout):
            raise subprocess.TimeoutExpired("mlab warm worker", timeout or 0.0)
        self._sock.close()
        # The server reports the exit status; without it (the server itself died) we only
        # know the worker is gone.
        return self.returncode if self.returncode is not None else -signal.SIGKILL


def _try_connect(path: Path, request: dict[str, Any], stderr_fd: int) -> ForkedProcess | None:
    """A worker forked for us, or None when no (current) server listens at ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        socket.send_fds(sock, [(json.dumps(request) + "\n").encode()], [stderr_fd])
        reader = sock.makefile("r", encoding="utf-8")
        first = json.loads(reader.readline() or "{}")
    except (OSError, ValueError):
        sock.close()
        return None
    if first.get("event") != "forked":
        sock.close()
        return None
    return ForkedProcess(sock, int(first["pid"]), reader)


def connect(
    env: dict[str, str], stderr_fd: int, day: str | None = None, start_timeout: float = 120.0
) -> ForkedProcess | None:
    """A worker forked by the warm server, starting the server if none is running.

    Returns None when that fails (the caller then starts a worker the ordinary way)."""
    fp = fingerprint(env)
    path = _socket_path(fp)
    if not _private(path.parent):
        return None
    request = {"fingerprint": fp, "cwd": os.getcwd(), "env": env, "day": day}
    if path.exists():
        forked = _try_connect(path, request, stderr_fd)
        if forked is not None:
            return forked
        path.unlink(missing_ok=True)  # left by a server that died
    log = path.with_suffix(".log")
    with log.open("ab") as err:
        subprocess.Popen(
            [sys.executable, "-m", "mlab.course.engine.warm", str(path), fp],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            cwd="/",  # it outlives this command: hold no folder of the user's
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + start_timeout
    while time.monotonic() < deadline:
        time.sleep(0.02)
        if path.exists():
            return _try_connect(path, request, stderr_fd)
    return None


def stop_all() -> int:
    """Stop every warm server of this user (they start again on demand). Returns how many."""
    folder = _socket_path("x").parent
    return sum(_stop_at(path) for path in folder.glob("worker-*.sock"))


def _stop_at(path: Path) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        socket.send_fds(sock, [b'{"stop": true}\n'], [])
        sock.recv(1)  # the server closes the connection once it has stopped listening
    except OSError:
        return False
    finally:
        sock.close()
    return True


# --- the server ----------------------------------------------------------------------------


def _preload_day(day_id: str) -> None:
    """Import a day's checks modules (and so its reference modules) for the next children."""
    from mlab.course.engine.manifest import get_day

    with contextlib.suppress(Exception):
        for part in get_day(day_id).parts:
            importlib.import_module(part.checks_module)


def _child(conn: socket.socket, request: dict[str, Any], stderr_fd: int) -> None:
    """In the forked child: become a worker whose stdin and stdout are the connection."""
    os.setsid()  # its own process group, so the runner can kill it and whatever it starts
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.dup2(stderr_fd, 2)
    os.close(stderr_fd)
    os.dup2(conn.fileno(), 0)
    os.dup2(conn.fileno(), 1)
    conn.close()
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", line_buffering=True
    )
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    # `python -m` puts its start folder first on sys.path: be the client's, as a fresh worker is
    if sys.path and sys.path[0] == "/":
        sys.path[0] = request["cwd"]
    os.write(1, (json.dumps({"event": "forked", "pid": os.getpid()}) + "\n").encode())

    from mlab.course.engine import worker

    code = 0
    try:
        worker.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
    os._exit(code)


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], int | None]:
    conn.settimeout(5.0)
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 1)
    while not data.endswith(b"\n") and data:
        more = conn.recv(1 << 20)
        if not more:
            break
        data += more
    conn.settimeout(None)
    return json.loads(data or b"{}"), (fds[0] if fds else None)


def _replaced(path: Path, inode: int) -> bool:
    """Whether another server took over our socket's name."""
    try:
        return path.stat().st_ino != inode
    except FileNotFoundError:
        return True


def serve(path: Path, fp: str) -> None:
    """Import what every worker needs, then fork a worker per connection until idle."""
    import torch

    import mlab.course.engine.worker  # noqa: F401  (the import is the point)

    torch.set_num_threads(1)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = path.with_name(f"{path.name}.{os.getpid()}")
    listener.bind(str(tmp))
    listener.listen(16)
    os.replace(tmp, path)  # atomically: a client sees no socket or a ready one
    inode = path.stat().st_ino
    children: dict[int, socket.socket] = {}
    last_used = time.monotonic()
    try:
        while True:
            ready, _, _ = select.select([listener.fileno(), wake_r], [], [], 30.0)
            if wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
            while children:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                conn = children.pop(pid, None)
                if conn is not None:
                    code = os.waitstatus_to_exitcode(status)
                    with contextlib.suppress(OSError):
                        conn.sendall((json.dumps({"event": "exit", "code": code}) + "\n").encode())
                    conn.close()
                last_used = time.monotonic()
            if listener.fileno() in ready:
                conn, _ = listener.accept()
                try:
                    request, stderr_fd = _read_request(conn)
                except (OSError, ValueError):
                    conn.close()
                    continue
                if request.get("stop"):
                    conn.close()
                    return
                if request.get("fingerprint") != fp or stderr_fd is None:
                    # mlab changed since we started: let the client start a new server.
                    conn.close()
                    if stderr_fd is not None:
                        os.close(stderr_fd)
                    return
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    _child(conn, request, stderr_fd)
                os.close(stderr_fd)
                children[pid] = conn
                last_used = time.monotonic()
                if request.get("day"):
                    _preload_day(str(request["day"]))
            if not children and (
                time.monotonic() - last_used > IDLE_SECONDS
                or _replaced(path, inode)
                or fingerprint(dict(os.environ)) != fp  # mlab was edited or upgraded
            ):
                return
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            if path.stat().st_ino == inode:
                path.unlink()
        for conn in children.values():
            conn.close()
        log = path.with_suffix(".log")
        with contextlib.suppress(OSError):
            if log.stat().st_size == 0:
                log.unlink()


if __name__ == "__main__":
    try:
        serve(Path(sys.argv[1]), sys.argv[2])
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise
