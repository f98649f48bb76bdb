"""Realistic wrong solutions of w3d2's exercises: each must fail its checks with a message
naming what is wrong; the reference must pass. Runs the checks in process, as
tests/test_w3d1_wrong_solutions.py does. Most wrong versions are the reference's source with
one learner's mistake edited in (``variant``), so each differs from the right one in that
mistake alone."""

from __future__ import annotations

import inspect
import itertools
import math
import random
import textwrap
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import pytest

pytest.importorskip("gin", reason="the train extra: pip install -e '.[train]'")

from checkrun import assert_fails, run_checks
from mlab.course.engine.manifest import get_day
from mlab.errors import ConfigError, MismatchError
from mlab.search import queue as queue_module
from mlab.search import sqlite_queue, worker

_run = partial(run_checks, "w3d2")
_fails = partial(assert_fails, "w3d2")


def variant(fn: Callable[..., Any], *edits: tuple[str, str]) -> Callable[..., Any]:
    """``fn`` recompiled from its source with each ``(old, new)`` edit made at the last
    occurrence of ``old`` (the code, after the docstring that may quote it)."""
    source = textwrap.dedent(inspect.getsource(fn))
    for old, new in edits:
        at = source.rfind(old)
        assert at >= 0, f"{old!r} is not in {fn.__name__}"
        source = source[:at] + new + source[at + len(old) :]
    namespace = dict(vars(inspect.getmodule(fn)))
    exec(compile(source, f"<wrong {fn.__name__}>", "exec"), namespace)
    return namespace[fn.__name__]  # type: ignore[no-any-return]


@pytest.mark.parametrize("exercise", [e.name for p in get_day("w3d2").parts for e in p.exercises])
def test_the_reference_passes(exercise: str) -> None:
    _run(exercise)


# ----------------------------------------------------------------------------------------------
# grid_points


def grid_last_axis_slowest(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    names = list(axes)[::-1]
    combos = itertools.product(*(axes[n] for n in names))
    return [{n: c[names.index(n)] for n in axes} for c in combos]


def grid_without_the_empty_axis_error(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(axes, c, strict=True)) for c in itertools.product(*axes.values())]


def grid_sharing_one_dict(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    for name, values in axes.items():
        if not values:
            raise ConfigError(f"axis {name!r} has no values")
    point: dict[str, Any] = {}
    out = []
    for combo in itertools.product(*axes.values()):
        point.update(zip(axes, combo, strict=True))
        out.append(point)
    return out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (grid_last_axis_slowest, "itertools.product's order"),
        (grid_without_the_empty_axis_error, "should raise ConfigError"),
        (grid_sharing_one_dict, "point 0 is"),
    ],
)
def test_grid_points_wrong(wrong: Callable[..., Any], message: str) -> None:
    _fails("grid_points", wrong, message)


# ----------------------------------------------------------------------------------------------
# log_uniform


def uniform_not_log(low: float, high: float, rng: random.Random) -> float:
    if not 0 < low < high:
        raise ConfigError(f"log_uniform({low}, {high}): need 0 < low < high")
    return low + (high - low) * rng.random()


def natural_log_but_power_of_ten(low: float, high: float, rng: random.Random) -> float:
    if not 0 < low < high:
        raise ConfigError(f"log_uniform({low}, {high}): need 0 < low < high")
    return float(10 ** rng.uniform(math.log(low), math.log(high)))


def no_bound_check(low: float, high: float, rng: random.Random) -> float:
    return math.exp(math.log(low) + rng.random() * math.log(high / low))


@pytest.mark.parametrize(
    ("wrong", "message", "exc"),
    [
        (uniform_not_log, "low \\* \\(high / low\\) \\*\\* u", MismatchError),
        (natural_log_but_power_of_ten, "low \\* \\(high / low\\) \\*\\* u", MismatchError),
        (no_bound_check, "math domain error|should raise ConfigError", (MismatchError, ValueError)),
    ],
)
def test_log_uniform_wrong(wrong: Callable[..., Any], message: str, exc: Any) -> None:
    _fails("log_uniform", wrong, message, exc=exc)


# ----------------------------------------------------------------------------------------------
# backoff_delay

backoff = queue_module.backoff_delay


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("base * 2 ** (attempt - 1)", "base * 2**attempt"), "expected"),  # off by one
        (
            (
                "rng.uniform(0.0, min(cap, base * 2 ** (attempt - 1)))",
                "min(cap, base * 2 ** (attempt - 1))",
            ),
            "expected",
        ),  # no jitter
        (
            (
                "rng.uniform(0.0, min(",
                "rng.uniform(0.5 * min(cap, base * 2 ** (attempt - 1)), min(",
            ),
            "expected",
        ),  # equal jitter
        (
            ("if base <= 0 or cap < base", "if base <= 0 or cap <= base"),
            "backoff_delay\\(3, base=2.0, cap=2.0",
        ),
        (("if attempt < 1:", "if attempt < 0:"), "should raise ValueError"),
    ],
)
def test_backoff_delay_wrong(edit: tuple[str, str], message: str) -> None:
    _fails("backoff_delay", variant(backoff, edit), message, exc=(MismatchError, ValueError))


# ----------------------------------------------------------------------------------------------
# claim_job

claim = sqlite_queue.claim_job


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ([('conn.execute("BEGIN IMMEDIATE")', 'conn.execute("BEGIN")')], "BEGIN IMMEDIATE"),
        (
            [
                ('conn.execute("BEGIN IMMEDIATE")', "pass"),
                ('conn.execute("COMMIT")', "pass"),
                ('conn.execute("ROLLBACK")', "pass"),
            ],
            "rolled-back claim|claimed twice|still open",
        ),
        ([('conn.execute("ROLLBACK")', "pass")], "still open"),
        ([("lease_until < ?", "lease_until <= ?")], "b's lease lasts until NOW inclusive"),
        ([('"dead" if attempts >= max_attempts else "queued"', '"queued"')], "the claimed job"),
        ([("ORDER BY seq LIMIT 1", "ORDER BY id DESC LIMIT 1")], "the oldest first"),
        ([("now + lease_s", "lease_s")], "lease_until"),
        ([("attempts = attempts + 1", "attempts = 1")], "attempts"),
    ],
)
def test_claim_job_wrong(edits: list[tuple[str, str]], message: str) -> None:
    _fails("claim_job", variant(claim, *edits), message)


# ----------------------------------------------------------------------------------------------
# run_one_job_from_queue

run_one = worker.run_one_job_from_queue


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        ([("except Exception:", "except BaseException:")], "KeyboardInterrupt was swallowed"),
        ([("traceback.format_exc()", "str(sys.exc_info()[1])")], "the whole traceback"),
        ([("job.attempts, retry_base_s", "job.attempts + 1, retry_base_s")], "delay"),
        (
            [("with keep_alive(queue, job, lease_s):\n", "if True:\n")],
            "heartbeats in 0.6 s",
        ),
        (
            [
                (
                    '"done" if queue.complete(job.id, job.token or "", result) else "duplicate"',
                    'queue.complete(job.id, job.token or "", result) and "done"',
                )
            ],
            "returned a bool \\(False\\), but its signature promises",
        ),
    ],
)
def test_run_one_job_from_queue_wrong(edits: list[tuple[str, str]], message: str) -> None:
    _fails("run_one_job_from_queue", variant(run_one, *edits), message)


def test_run_one_job_from_queue_forgetting_to_return_the_failure() -> None:
    wrong = variant(run_one, ("return queue.fail(", "queue.fail("))
    _fails("run_one_job_from_queue", wrong, "result", exc=UnboundLocalError)
