"""w3d2: what the search queue costs per job. A no-op job (the runner returns at once) through
``mlab.search`` on SQLite (WAL, one file) and on Redis, side by side with RQ 3.0.0 (a widely
used Redis job queue: https://python-rq.org) on the same redis-server: the time per job with
one worker (the queue's overhead: claim, heartbeat thread, result stored, state updated) and
jobs per second with 1 and 2 worker processes. RQ is timed with its ``SimpleWorker`` (jobs run
in the worker's process, as ours do) and its default ``Worker`` (a forked work-horse per job,
which isolates jobs as our process-per-worker does not). Goal: our overhead per job no more
than RQ's (SimpleWorker) on the same server.

Needs redis-server (sudo apt-get install redis-server) and the bench extra (pip install -e
'.[bench]': rq); skipped with that hint otherwise."""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.common import Skipped

JOBS = 400
GOAL = 1.0  # our seconds per job over RQ's (SimpleWorker): at most 1


def noop(*args: Any) -> dict[str, Any]:
    """The job: nothing. What is timed is the queue around it."""
    return {}


def _ours_worker(url: str, go: Any) -> None:
    from mlab.search import open_queue, work

    queue = open_queue(url)
    go.wait()
    work(queue, runner=noop, until_empty=True, poll_s=0.005, lease_s=60.0, say=lambda m: None)
    queue.close()


def _rq_worker(url: str, go: Any, simple: bool) -> None:
    import redis
    from rq import Queue, SimpleWorker, Worker

    conn = redis.Redis.from_url(url)
    cls = SimpleWorker if simple else Worker
    worker = cls([Queue("bench", connection=conn)], connection=conn)
    go.wait()
    worker.work(burst=True, logging_level="WARNING")


def _drain(target: Callable[..., None], args: tuple[Any, ...], workers: int) -> float:
    """Seconds for ``workers`` processes, started and connected first, to drain the queue."""
    ctx = mp.get_context("fork")
    go = ctx.Event()
    procs = [ctx.Process(target=target, args=(*args[:1], go, *args[1:])) for _ in range(workers)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # imports and connections are not what is measured
    start = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a benchmark worker exited with {p.exitcode}")
    return time.perf_counter() - start


def _fill_ours(url: str, tag: str) -> None:
    from mlab.search import open_queue
    from mlab.search.queue import JobSpec

    with open_queue(url) as queue:
        queue.submit([JobSpec(tag, {"i": i}, f"probe.y = {i}\n", 3, "probe") for i in range(JOBS)])


def _fill_rq(url: str) -> None:
    import redis
    from rq import Queue

    conn = redis.Redis.from_url(url)
    conn.flushdb()
    queue = Queue("bench", connection=conn)
    queue.enqueue_many([Queue.prepare_data(noop, (i,)) for i in range(JOBS)])


def main() -> None:
    from mlab.search.redis_server import INSTALL_HINT, RedisServer, redis_server_binary

    if redis_server_binary() is None:
        raise Skipped(INSTALL_HINT)
    if importlib.util.find_spec("rq") is None:
        raise Skipped("RQ is not installed: pip install -e '.[bench]' (rq==3.0.0)")
    rows: list[tuple[str, int, float]] = []
    with (
        tempfile.TemporaryDirectory() as folder,
        RedisServer(Path(folder) / "redis", appendfsync="everysec") as server,
    ):
        for workers in (1, 2):
            for backend in ("sqlite", "redis"):
                url = (
                    f"sqlite:///{folder}/q{workers}.db"
                    if backend == "sqlite"
                    else server.url.replace("/0", f"/{workers}")
                )
                _fill_ours(url, f"bench{workers}")
                rows.append(
                    (f"mlab.search, {backend}", workers, _drain(_ours_worker, (url,), workers))
                )
            for simple, name in ((True, "RQ SimpleWorker"), (False, "RQ Worker (fork per job)")):
                url = server.url.replace("/0", "/5")
                _fill_rq(url)
                rows.append((f"{name}, redis", workers, _drain(_rq_worker, (url, simple), workers)))
    table = Table(
        title=f"w3d2 search queue: {JOBS} no-op jobs, redis-server on 127.0.0.1 "
        "(AOF, appendfsync everysec)",
        title_justify="left",
    )
    for col in ("queue", "workers", "ms per job", "jobs/s"):
        table.add_column(col, justify="left" if col == "queue" else "right")
    for name, workers, seconds in rows:
        table.add_row(name, str(workers), f"{1000 * seconds / JOBS:.2f}", f"{JOBS / seconds:.0f}")
    Console().print(table)
    ours = next(s for n, w, s in rows if n == "mlab.search, redis" and w == 1)
    rq = next(s for n, w, s in rows if n.startswith("RQ SimpleWorker") and w == 1)
    ratio = ours / rq
    verdict = "met" if ratio <= GOAL else "NOT met"
    print(
        f"overhead per job, 1 worker, Redis: ours {1000 * ours / JOBS:.2f} ms, RQ SimpleWorker "
        f"{1000 * rq / JOBS:.2f} ms: {ratio:.2f}x (goal <= {GOAL}x: {verdict})"
    )


if __name__ == "__main__":
    main()
