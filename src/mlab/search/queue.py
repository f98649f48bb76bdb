"""The job queue's interface, shared by both backends: :class:`Job`, :class:`Queue`,
:func:`open_queue` (a queue from a URL), :func:`job_id` and :func:`backoff_delay`.

A job is a training run described as gin text (never a pickle): any worker, on any machine,
can run it from the text alone. Its life: ``queued`` -> ``running`` (claimed by one worker,
under a *lease* the worker renews with heartbeats) -> ``done`` (its result stored once), or
back to ``queued`` after a failure or a lost lease (after a back-off delay), or ``dead`` (in the
dead-letter list, with the last traceback) once it has been tried ``max_attempts`` times.
Leases are how SQS's visibility timeout and Celery's ``acks_late`` recover work from a worker
that died; the back-off is "full jitter" from AWS's Architecture Blog (Brooker, 2015,
"Exponential Backoff And Jitter").

Backends: ``sqlite:///path/to/search.db`` (:mod:`mlab.search.sqlite_queue`, SQLite in WAL
mode: one file, nothing to start, workers on one machine) and ``redis://host:port/db``
(:mod:`mlab.search.redis_queue`, a real Redis server: workers anywhere).
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlab.errors import ConfigError

__all__ = [
    "STATES",
    "Job",
    "JobSpec",
    "Queue",
    "backoff_delay",
    "job_id",
    "open_queue",
]

STATES = ("queued", "running", "done", "dead")


def job_id(search: str, config: str) -> str:
    """A job's id: the first 16 hex digits of the SHA-256 of its search name and config text.
    The same run submitted twice is the same job, so creating a search again adds nothing."""
    return hashlib.sha256(f"{search}\n{config}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class JobSpec:
    """What :meth:`Queue.submit` takes: one run of a search."""

    search: str  # the search's name: results are grouped by it
    params: dict[str, Any]  # the searched values, e.g. {"AdamW.lr": 3e-4}
    config: str  # the whole gin text of the run (base config + bindings)
    max_attempts: int = 3
    runner: str = "train"  # what runs it: a name in mlab.search.worker.RUNNERS

    @property
    def id(self) -> str:
        return job_id(self.search, self.config)


@dataclass
class Job:
    """A job as the queue holds it."""

    id: str
    search: str
    params: dict[str, Any]
    config: str
    state: str = "queued"
    attempts: int = 0  # how many times it was claimed
    max_attempts: int = 3
    worker: str | None = None  # who holds (or last held) it
    token: str | None = None  # the current claim's token: heartbeats and failures name it
    lease_until: float | None = None
    error: str | None = None  # the last failure's traceback (or "lease expired ...")
    result: dict[str, Any] | None = None
    runner: str = "train"


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before try number ``attempt + 1`` (``attempt`` >= 1 tries so far):
    "full jitter", a uniform draw from ``[0, min(cap, base * 2 ** (attempt - 1))]``.

    Exponential growth spreads retries out as failures persist; the cap bounds the wait; the
    jitter keeps workers that failed together (a server restart) from retrying in lock-step.
    Draw with ``rng.uniform``. Raise ``ValueError`` naming the value when ``attempt < 1``,
    ``base <= 0`` or ``cap < base``.

    >>> backoff_delay(3, 0.5, 10.0, random.Random(0)) <= 2.0
    True
    """
    if attempt < 1:
        raise ValueError(f"attempt={attempt}: count the tries made so far, from 1")
    if base <= 0 or cap < base:
        raise ValueError(f"base={base}, cap={cap}: need 0 < base <= cap")
    return rng.uniform(0.0, min(cap, base * 2 ** (attempt - 1)))


class Queue(ABC):
    """A durable job queue with leases, retries and a dead-letter list.

    Every method is safe to call from many processes (and, for Redis, many machines) at once.
    ``claim``, ``heartbeat``, ``complete`` and ``fail`` are atomic.
    """

    url: str

    @abstractmethod
    def submit(self, jobs: Sequence[JobSpec]) -> int:
        """Add jobs; a job whose id is already in the queue (in any state) is skipped. Return
        how many were added."""

    @abstractmethod
    def claim(self, worker: str, lease_s: float) -> Job | None:
        """Take the oldest available queued job for ``worker`` for ``lease_s`` seconds (its
        ``attempts`` counted up, a fresh ``token``), or None when none is available. Jobs whose
        lease expired first go back to the queue, or to the dead-letter list when they have
        used up their attempts."""

    @abstractmethod
    def heartbeat(self, job_id: str, token: str, lease_s: float) -> bool:
        """Extend the lease of the claim ``token`` to ``lease_s`` seconds from now. False when
        the claim is no longer current (the lease expired and the job moved on)."""

    @abstractmethod
    def complete(self, job_id: str, token: str, result: dict[str, Any]) -> bool:
        """Store the job's result and mark it done. Idempotent: only the first result of a
        job is kept (a re-run, or a late worker whose lease expired, stores nothing); True
        when this call stored it."""

    @abstractmethod
    def fail(self, job_id: str, token: str, error: str, retry_in: float) -> str:
        """Record a failed try of the claim ``token``: back to ``queued`` (available again in
        ``retry_in`` seconds) or ``dead`` when its attempts are used up. Returns the state
        (``"stale"`` when the claim is no longer current: nothing changes)."""

    @abstractmethod
    def jobs(self, search: str | None = None) -> list[Job]:
        """Every job (of ``search``), in submission order, results included."""

    def counts(self, search: str | None = None) -> dict[str, int]:
        """How many jobs are in each state."""
        out = dict.fromkeys(STATES, 0)
        for job in self.jobs(search):
            out[job.state] += 1
        return out

    def results(self, search: str | None = None) -> list[Job]:
        """The finished jobs, each with its ``result``."""
        return [j for j in self.jobs(search) if j.state == "done"]

    def dead(self, search: str | None = None) -> list[Job]:
        """The dead-letter list: jobs that failed ``max_attempts`` times, with their error."""
        return [j for j in self.jobs(search) if j.state == "dead"]

    def unfinished(self) -> int:
        """Jobs still queued or running (``work --until-empty`` stops at 0)."""
        counts = self.counts()
        return counts["queued"] + counts["running"]

    def close(self) -> None:  # noqa: B027 (optional for backends)
        """Release connections."""

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_queue(url: str | Path) -> Queue:
    """The queue at ``url``: ``sqlite:///relative/or/absolute/path.db`` (a plain path also
    means SQLite; the file is created) or ``redis://host:port/db`` (a running server)."""
    text = str(url)
    if text.startswith("redis://") or text.startswith("rediss://"):
        from mlab.search.redis_queue import RedisQueue

        return RedisQueue(text)
    if text.startswith("sqlite:///"):
        path = text.removeprefix("sqlite:///")
    elif "://" in text:
        raise ConfigError(
            f"queue URL {text!r}: use sqlite:///path/to/search.db or redis://host:port/db"
        )
    else:
        path = text
    from mlab.search.sqlite_queue import SQLiteQueue

    return SQLiteQueue(path)
