"""A headless Chromium driven over the DevTools protocol, for tests of the course web site.

Chromium reads protocol commands from file descriptor 3 and writes replies and events to
descriptor 4 (``--remote-debugging-pipe``): JSON messages ended by a NUL byte. This is the
whole client: no websockets, no Selenium, no driver binary to match the browser's version.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "Chromium is not installed: `apt-get install -y chromium` (Debian/Ubuntu; .ci/run does it)."
)


def find_chromium() -> str | None:
    for name in CANDIDATES:
        if path := shutil.which(name):
            return path
    return None


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless browser with one tab. ``call`` sends a command to the tab and returns its
    result; events that arrive meanwhile are kept for ``wait_event``."""

    def __init__(self, executable: str, profile: Path, *, width: int = 1280, height: int = 1000):
        # Pipe ends for the browser, numbered 10 or more so they are not 3 or 4 already.
        low_r, self._commands_w = os.pipe()
        self._replies_r, low_w = os.pipe()
        commands_r = fcntl.fcntl(low_r, fcntl.F_DUPFD, 10)
        replies_w = fcntl.fcntl(low_w, fcntl.F_DUPFD, 10)
        os.close(low_r)
        os.close(low_w)
        args = [
            executable,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        # The browser must find the pipes as descriptors 3 and 4: bash moves them there (dash
        # cannot: it only knows descriptors 0 to 9).
        script = f'exec 3<&{commands_r} 4>&{replies_w} {commands_r}<&- {replies_w}>&-; exec "$@"'
        self.process = subprocess.Popen(
            ["bash", "-c", script, "chromium", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(commands_r, replies_w),
        )
        os.close(commands_r)
        os.close(replies_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        try:
            target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
            attached = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})
            self._session = attached["sessionId"]
            self.call("Page.enable")
            self.call("Runtime.enable")
        except BaseException:  # a browser that never answered is not left running
            self.process.kill()
            self.process.wait()
            os.close(self._commands_w)
            os.close(self._replies_r)
            raise

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() >= deadline:
                raise BrowserError("Chromium did not answer in time")
            ready, _, _ = select.select(
                [self._replies_r], [], [], max(0.0, deadline - time.monotonic())
            )
            if not ready:
                continue  # the deadline check above raises
            chunk = os.read(self._replies_r, 1 << 16)
            if not chunk:
                raise BrowserError("Chromium closed the protocol pipe (did it crash?)")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        result: dict[str, Any] = json.loads(message)
        return result

    def _send(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._events.append(reply)

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._send(method, params, session=self._session)

    def wait_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method:
                    return self._events.pop(i)
            self._events.append(self._read_message(deadline))

    def open(self, url: str) -> None:
        self._events.clear()
        reply = self.call("Page.navigate", {"url": url})
        if "errorText" in reply:
            raise BrowserError(f"could not open {url}: {reply['errorText']}")
        if reply.get("loaderId"):  # none when only the #fragment changed: nothing loads
            self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str, *, timeout: float = 30) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        reply = self.call(
            "Runtime.evaluate",
            {
                "expression": expression,
                "awaitPromise": True,
                "returnByValue": True,
                "timeout": timeout * 1000,
            },
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript failed: {text}")
        return reply["result"].get("value")

    def screenshot(self, path: Path, *, full_page: bool = False) -> None:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            )
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
        data = self.call("Page.captureScreenshot", params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(BrowserError):
            self._send("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands_w)
        os.close(self._replies_r)
