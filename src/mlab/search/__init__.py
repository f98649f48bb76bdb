"""Hyperparameter search on a job queue (course day w3d2).

- :mod:`mlab.search.queue`: the interface (:class:`Queue`, :class:`Job`, :func:`open_queue`
  from ``sqlite:///path.db`` or ``redis://host:port/db``), and retry back-off;
- :mod:`mlab.search.sqlite_queue` / :mod:`mlab.search.redis_queue`: the two backends;
- :mod:`mlab.search.space`: search spaces (grid, random, log-uniform, seeds) -> gin text jobs;
- :mod:`mlab.search.worker`: :func:`run_one_job_from_queue`, :func:`work`, the runners;
- :mod:`mlab.search.results`: the best runs and a plot of the metric against a parameter;
- :mod:`mlab.search.cli`: ``mlab search create/work/status/results``.

From Python::

    from mlab.search import create_search_jobs, open_queue, work
    queue = open_queue("sqlite:///runs/search.db")
    create_search_jobs("shakespeare_lr_batch", queue)   # a space file, a name or a Space
    work(queue, until_empty=True)
"""

from __future__ import annotations

from pathlib import Path

from mlab.search.queue import Job, JobSpec, Queue, backoff_delay, job_id, open_queue
from mlab.search.space import Axis, Space, parse_space, read_space
from mlab.search.worker import run_one_job_from_queue, work

__all__ = [
    "Axis",
    "Job",
    "JobSpec",
    "Queue",
    "Space",
    "backoff_delay",
    "create_search_jobs",
    "job_id",
    "open_queue",
    "parse_space",
    "read_space",
    "run_one_job_from_queue",
    "work",
]


def create_search_jobs(
    space: Space | str | Path, queue: Queue | str | Path | None = None
) -> list[JobSpec]:
    """The jobs of ``space`` (a :class:`Space`, a space file, or a shipped space's name),
    submitted to ``queue`` (a :class:`Queue` or its URL) when one is given. Submitting is
    idempotent: a job already in the queue (same search name and gin text) is not added
    again. Raises ``ConfigError`` naming the file and line of a malformed space."""
    spec = space if isinstance(space, Space) else read_space(space)
    jobs = spec.jobs()
    if queue is not None:
        if isinstance(queue, Queue):
            queue.submit(jobs)
        else:
            with open_queue(queue) as q:
                q.submit(jobs)
    return jobs
