"""Checks for part 4 of w3d1: ``truncate_metrics`` on logs with repeated steps, partial last
lines and a missing file, and replaying a killed run's log against an uninterrupted one."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from mlab.course.engine.checks import Namespace, check
from mlab.testing import assert_equal, case, expect


def _line(step: int, **values: float) -> str:
    return json.dumps({"step": step, **values}) + "\n"


def _log(steps: range, eval_every: int = 4) -> list[str]:
    lines = []
    for s in steps:
        lines.append(_line(s, loss=1.0 / s, lr=0.001 * s))
        if s % eval_every == 0:
            lines.append(_line(s, val_loss=2.0 / s))
    return lines


@check("truncate_metrics")
def keeps_the_lines_up_to_the_step(ns: Namespace) -> None:
    lines = _log(range(1, 11))
    for step in (8, 7, 1, 0, 10, 50):
        with tempfile.TemporaryDirectory() as d, case(f"steps 1..10 (evals at 4, 8), step={step}"):
            path = Path(d) / "metrics.jsonl"
            path.write_text("".join(lines))
            want = [line for line in lines if json.loads(line)["step"] <= step]
            got = ns.truncate_metrics(path, step)
            assert_equal(got, len(want), what="lines kept")
            assert_equal(path.read_text(), "".join(want), what="the file")


@check("truncate_metrics")
def drops_a_half_written_last_line(ns: Namespace) -> None:
    lines = _log(range(1, 7))
    partials = {
        "a last line cut mid-way": '{"step": 7, "lo',
        "a last line that is JSON but lacks its newline": '{"step": 3}',
        "a last line of spaces": "   ",
        "a last line that ends but is not JSON (zeros after a power cut)": "\x00\x00\x00\n",
    }
    for what, partial in partials.items():
        with tempfile.TemporaryDirectory() as d, case(what, partial=partial):
            path = Path(d) / "metrics.jsonl"
            path.write_text("".join(lines) + partial)
            assert_equal(ns.truncate_metrics(path, 5), 6, what="lines kept")
            want = "".join(line for line in lines if json.loads(line)["step"] <= 5)
            assert_equal(path.read_text(), want, what="the file")
        with tempfile.TemporaryDirectory() as d, case(what + ", every step kept", partial=partial):
            path = Path(d) / "metrics.jsonl"
            path.write_text("".join(lines) + partial)
            assert_equal(ns.truncate_metrics(str(path), 100), 7, what="lines kept (path as str)")
            assert_equal(path.read_text(), "".join(lines), what="the file")
    with tempfile.TemporaryDirectory() as d, case("an empty file"):
        path = Path(d) / "metrics.jsonl"
        path.write_text("")
        assert_equal(ns.truncate_metrics(path, 5), 0, what="lines kept")
    with tempfile.TemporaryDirectory() as d, case("a file that does not exist"):
        path = Path(d) / "metrics.jsonl"
        assert_equal(ns.truncate_metrics(path, 5), 0, what="lines kept")
        expect(not path.exists(), "do not create a missing file")


@check("truncate_metrics")
def a_resumed_log_equals_an_uninterrupted_one(ns: Namespace) -> None:
    full = "".join(_log(range(1, 21), eval_every=5))
    with tempfile.TemporaryDirectory() as d, case("killed at step 13 mid-line, resumed at 10"):
        path = Path(d) / "metrics.jsonl"
        path.write_text("".join(_log(range(1, 14), eval_every=5)) + '{"step": 14, "lo')
        ns.truncate_metrics(path, 10)
        with open(path, "a") as f:
            f.write("".join(_log(range(11, 21), eval_every=5)))
        assert_equal(path.read_text(), full, what="the log after resuming")
