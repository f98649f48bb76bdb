"""Start a throw-away ``redis-server`` on a free loopback port (tests, the benchmark, a laptop
search): :class:`RedisServer`. Debian/Ubuntu: ``sudo apt-get install redis-server``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from mlab.errors import ConfigError

__all__ = ["INSTALL_HINT", "RedisServer", "free_port", "redis_server_binary"]

INSTALL_HINT = "install Redis: sudo apt-get install redis-server (Debian/Ubuntu)"


def redis_server_binary() -> str | None:
    """The path of ``redis-server``, or None when it is not installed."""
    return shutil.which("redis-server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """``redis-server`` on ``127.0.0.1:port`` with its files in ``folder``: the append-only
    file on (``appendfsync``: ``always`` loses no acknowledged write), no RDB snapshots.
    ``start()`` waits until it answers PING; ``kill()`` is ``kill -9``; ``stop()`` asks it to
    shut down. Restarting on the same folder and port reloads the AOF."""

    def __init__(self, folder: str | Path, port: int | None = None, appendfsync: str = "always"):
        binary = redis_server_binary()
        if binary is None:
            raise ConfigError(f"redis-server is not installed: {INSTALL_HINT}")
        self.binary, self.folder = binary, Path(folder)
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.folder), "--appendonly", "yes"]
        args += ["--appendfsync", self.appendfsync, "--save", "", "--daemonize", "no"]
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 (the server's stdout)
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.folder / "redis.log").read_text(errors="replace")[-800:]
                raise ConfigError(f"redis-server exited with {self.process.returncode}:\n{tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        raise ConfigError(f"redis-server did not answer on port {self.port} in {timeout} s")

    def kill(self) -> None:
        """Kill it at once (SIGKILL), as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
