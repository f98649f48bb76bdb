"""Checks for part 3 of w3d2: ``run_one_job_from_queue`` against a queue that records every
call (the library's :class:`~mlab.search.queue.Queue` interface, in memory): the claim, the
heartbeats while the job runs and none after, the result stored, a failure reported with its
whole traceback and the full-jitter delay, and what each case returns."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from typing import Any

from mlab.course.engine.checks import Namespace, check
from mlab.search.queue import Job, JobSpec, Queue
from mlab.testing import assert_equal, case, expect


class RecordingQueue(Queue):
    """One job to hand out (or none); every call recorded."""

    url = "memory://"

    def __init__(self, job: Job | None, complete: bool = True, fail: str = "queued") -> None:
        self.job = job
        self.calls: list[tuple[Any, ...]] = []
        self.beats: list[tuple[float, str, str, float]] = []
        self._complete, self._fail = complete, fail
        self.lock = threading.Lock()

    def submit(self, jobs: Sequence[JobSpec]) -> int:
        raise AssertionError("run_one_job_from_queue should not submit jobs")

    def claim(self, worker: str, lease_s: float) -> Job | None:
        self.calls.append(("claim", worker, lease_s))
        job, self.job = self.job, None
        return job

    def heartbeat(self, job_id: str, token: str, lease_s: float) -> bool:
        with self.lock:
            self.beats.append((time.monotonic(), job_id, token, lease_s))
        return True

    def complete(self, job_id: str, token: str, result: dict[str, Any]) -> bool:
        self.calls.append(("complete", job_id, token, result))
        return self._complete

    def fail(self, job_id: str, token: str, error: str, retry_in: float) -> str:
        self.calls.append(("fail", job_id, token, error, retry_in))
        return self._fail

    def jobs(self, search: str | None = None) -> list[Job]:
        return []


def _job(attempts: int = 1) -> Job:
    return Job(
        id="3f2a9c",
        search="lr",
        params={"AdamW.lr": 3e-4},
        config="AdamW.lr = 3e-4\n",
        state="running",
        attempts=attempts,
        worker="me",
        token="tok-7",
        lease_until=0.0,
    )


def _names(queue: RecordingQueue) -> list[str]:
    return [c[0] for c in queue.calls]


@check("run_one_job_from_queue")
def nothing_to_do_returns_none(ns: Namespace) -> None:
    queue = RecordingQueue(None)
    ran: list[Job] = []
    with case("an empty queue"):
        got = ns.run_one_job_from_queue(queue, ran.append, "host:1", 7.5)
        expect(got is None, f"returned {got!r}: with no job available return None")
        assert_equal(queue.calls, [("claim", "host:1", 7.5)], what="the queue calls")
        expect(not ran, "the runner was called without a job")


@check("run_one_job_from_queue")
def a_job_runs_and_its_result_is_stored(ns: Namespace) -> None:
    job = _job()
    ran: list[Job] = []

    def runner(j: Job) -> dict[str, Any]:
        ran.append(j)
        return {"val_loss": 1.25}

    for complete, want in ((True, "done"), (False, "duplicate")):
        queue = RecordingQueue(job, complete=complete)
        with case(f"a job whose result {'is new' if complete else 'was already stored'}"):
            got = ns.run_one_job_from_queue(queue, runner, "host:2", 60.0)
            assert_equal(queue.calls[0], ("claim", "host:2", 60.0), what="the claim")
            expect(bool(ran) and ran[-1] is job, "the runner should get the claimed job")
            assert_equal(
                queue.calls[1:],
                [("complete", "3f2a9c", "tok-7", {"val_loss": 1.25})],
                what="the calls after the claim",
            )
            assert_equal(got, want, what="the returned state")
    expect(len(ran) == 2, f"the runner ran {len(ran)} times for 2 jobs")


@check("run_one_job_from_queue")
def heartbeats_while_the_job_runs_and_not_after(ns: Namespace) -> None:
    queue = RecordingQueue(_job())
    lease = 0.15
    window: list[float] = []

    def slow(j: Job) -> dict[str, Any]:
        window.append(time.monotonic())
        time.sleep(0.6)
        window.append(time.monotonic())
        return {"val_loss": 0.5}

    with case(f"a job running 0.6 s under a lease of {lease} s"):
        assert_equal(ns.run_one_job_from_queue(queue, slow, "w", lease), "done", what="state")
        after = len(queue.beats)
        time.sleep(0.25)
        expect(len(queue.beats) >= 2, f"{len(queue.beats)} heartbeats in 0.6 s (every 0.05 s)")
        expect(
            len(queue.beats) == after,
            "heartbeats went on after run_one_job_from_queue returned: stop them",
        )
        for at, job_id, token, lease_s in queue.beats:
            assert_equal((job_id, token, lease_s), ("3f2a9c", "tok-7", lease), what="a beat")
            expect(window[0] <= at <= window[1] + 1.0, "a heartbeat long after the job's run")


@check("run_one_job_from_queue")
def a_failing_job_fails_with_its_traceback_not_the_worker(ns: Namespace) -> None:
    def broken(j: Job) -> dict[str, Any]:
        raise ValueError("AdamW.lrr: no such parameter")

    for attempts, state in ((1, "queued"), (3, "dead"), (6, "queued")):
        queue = RecordingQueue(_job(attempts), fail=state)
        seed, base, cap = 10 + attempts, 2.0, 20.0
        with case(f"a runner raising ValueError on try {attempts} (fail answers {state!r})"):
            got = ns.run_one_job_from_queue(
                queue, broken, "w", 60.0, base, cap, random.Random(seed)
            )
            assert_equal(_names(queue), ["claim", "fail"], what="the queue calls")
            _, job_id, token, error, delay = queue.calls[1]
            assert_equal((job_id, token), ("3f2a9c", "tok-7"), what="fail's job id and token")
            expect(
                isinstance(error, str)
                and error.startswith("Traceback (most recent call last)")
                and "ValueError: AdamW.lrr: no such parameter" in error
                and "in broken" in error,
                f"fail's error should be the whole traceback (traceback.format_exc()): "
                f"got {error!r}",
            )
            want = random.Random(seed).uniform(0, min(cap, base * 2 ** (attempts - 1)))
            expect(
                delay == want,
                f"fail's delay is {delay!r}, expected backoff_delay({attempts}, {base}, {cap}, "
                f"rng) = {want!r}",
            )
            assert_equal(got, state, what="the returned state (what fail returned)")
    queue = RecordingQueue(_job(2))
    with case("a failing runner, rng=None"):
        ns.run_one_job_from_queue(queue, broken, "w", 60.0, 1.0, 10.0)
        delay = queue.calls[-1][-1]
        expect(0 <= delay <= 2.0, f"delay {delay!r} outside [0, min(10, 1 * 2 ** 1)]")


@check("run_one_job_from_queue")
def an_interrupt_is_not_a_job_failure(ns: Namespace) -> None:
    def interrupted(j: Job) -> dict[str, Any]:
        time.sleep(0.1)
        raise KeyboardInterrupt

    queue = RecordingQueue(_job())
    with case("Ctrl-C while the job runs"):
        try:
            ns.run_one_job_from_queue(queue, interrupted, "w", 0.06)
        except KeyboardInterrupt:
            pass
        else:
            expect(False, "KeyboardInterrupt was swallowed: catch Exception, not BaseException")
        assert_equal(_names(queue), ["claim"], what="the queue calls (the lease brings it back)")
        after = len(queue.beats)
        time.sleep(0.1)
        expect(len(queue.beats) == after, "heartbeats went on after the interrupt: stop them")
