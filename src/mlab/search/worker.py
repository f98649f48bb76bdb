"""Workers: :func:`run_one_job_from_queue` (claim, run under a heartbeat, store the result or
the failure) and :func:`work` (the loop), with the runners a job can name: ``train`` (an
``mlab train`` run of the job's gin text) and ``probe`` (a stand-in that sleeps and returns a
known function of its arguments: the chaos tests and the benchmark use it).

A worker runs one job at a time, in its own process. It may die at any instant (``kill -9``):
its job's lease then expires, and the next claim puts the job back in the queue. A training
run re-claimed that way continues from its newest checkpoint (w3d1's exact resume).
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
import random
import socket
import sys
import threading
import time
import tokenize
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlab.errors import ConfigError
from mlab.search.queue import Job, Queue, backoff_delay

__all__ = [
    "RUNNERS",
    "Runner",
    "check_probe_binding",
    "keep_alive",
    "probe",
    "run_one_job_from_queue",
    "runner_for",
    "work",
    "worker_name",
]

Runner = Callable[[Job], dict[str, Any]]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def worker_name() -> str:
    """``host:pid``: who holds a job, as ``mlab search status`` shows it."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def keep_alive(queue: Queue, job: Job, lease_s: float) -> Iterator[threading.Event]:
    """Renew ``job``'s lease every ``lease_s / 3`` seconds from a thread while the block runs.
    The event it yields is set when the lease was lost (the job moved on without us)."""
    stop, lost = threading.Event(), threading.Event()
    assert job.token is not None  # a claimed job has a token

    def beat() -> None:
        while not stop.wait(lease_s / 3):
            if not queue.heartbeat(job.id, job.token or "", lease_s):
                lost.set()
                _say(f"job {job.id}: lease lost (it expired; the job went back to the queue)")
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{job.id}", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join()


def run_one_job_from_queue(
    queue: Queue,
    runner: Runner,
    worker: str,
    lease_s: float = 60.0,
    retry_base_s: float = 5.0,
    retry_cap_s: float = 300.0,
    rng: random.Random | None = None,
) -> str | None:
    """Claim one job from ``queue`` for ``worker`` and run it; return what became of it:
    ``"done"``, ``"duplicate"`` (it ran, but another try had already stored a result),
    ``"queued"`` (it failed and will be retried), ``"dead"`` (it failed its last try), or
    None when no job was available.

    1. ``queue.claim(worker, lease_s)``; None: return None.
    2. Run ``runner(job)`` inside ``keep_alive(queue, job, lease_s)``, so the lease is renewed
       while it runs.
    3. If the runner raises an ``Exception`` (a config that does not parse, a diverged run):
       the worker survives. Report it with ``queue.fail(job.id, job.token, text, delay)``
       where ``text`` is the whole traceback (``traceback.format_exc()``) and ``delay`` is
       ``backoff_delay(job.attempts, retry_base_s, retry_cap_s, rng)``; return what ``fail``
       returns. (``KeyboardInterrupt`` and ``SystemExit`` are not ``Exception``s: they stop
       the worker, and the lease brings the job back.) ``rng`` None: a new
       ``random.Random()``.
    4. Else ``queue.complete(job.id, job.token, result)``: True -> ``"done"``, False ->
       ``"duplicate"``.
    """
    job = queue.claim(worker, lease_s)
    if job is None:
        return None
    try:
        with keep_alive(queue, job, lease_s):
            result = runner(job)
    except Exception:
        delay = backoff_delay(job.attempts, retry_base_s, retry_cap_s, rng or random.Random())
        return queue.fail(job.id, job.token or "", traceback.format_exc(), delay)
    return "done" if queue.complete(job.id, job.token or "", result) else "duplicate"


def work(
    queue: Queue,
    runner: Runner | None = None,
    worker: str | None = None,
    lease_s: float = 60.0,
    poll_s: float = 1.0,
    until_empty: bool = False,
    max_jobs: int | None = None,
    retry_base_s: float = 5.0,
    say: Callable[[str], None] = _say,
    runs_dir: str | Path = "runs",
) -> int:
    """Run jobs from ``queue`` one after another; return how many this worker finished.

    ``runner`` None: each job's own runner (:func:`runner_for`). ``until_empty``: stop when no
    job is queued or running (else poll every ``poll_s`` seconds, forever). ``max_jobs``: stop
    after that many tries.
    """
    name = worker or worker_name()
    tried = finished = 0
    say(f"worker {name} on {queue.url}")

    def run_job(job: Job) -> dict[str, Any]:
        say(f"job {job.id} ({job.search}, try {job.attempts}): {job.params}")
        started = time.perf_counter()
        try:
            result = (runner or runner_for(job.runner, runs_dir))(job)
        except Exception as err:
            say(f"job {job.id} failed: {type(err).__name__}: {err}")
            raise
        say(f"job {job.id} finished in {time.perf_counter() - started:.1f} s")
        return result

    while max_jobs is None or tried < max_jobs:
        state = run_one_job_from_queue(queue, run_job, name, lease_s, retry_base_s)
        if state is None:
            if until_empty and queue.unfinished() == 0:
                break
            time.sleep(poll_s)
            continue
        tried += 1
        finished += state in ("done", "duplicate")
        if state == "dead":
            say("  its last try: in the dead-letter list (mlab search status --dead)")
    return finished


# ----------------------------------------------------------------------------------------------
# Runners


def probe(
    x: float = 1.0, y: float = 0.0, seconds: float = 0.0, fail: str = "", seed: int = 0
) -> dict[str, float]:
    """A stand-in for a training run, configured by gin like one (``probe.x = 0.01``): sleep
    ``seconds``, raise ``RuntimeError(fail)`` when ``fail`` is set, and return
    ``{"val_loss": (log10(x) + 2) ** 2 + y ** 2, "x": x, "y": y, "seed": seed}`` (least at
    x = 0.01, y = 0)."""
    if seconds:
        time.sleep(seconds)
    if fail:
        raise RuntimeError(fail)
    return {"val_loss": (math.log10(x) + 2) ** 2 + y**2, "x": x, "y": y, "seed": seed}


_probe_registered: list[Any] = []


def check_probe_binding(line: str) -> None:
    """Raise ``ConfigError`` unless ``line`` binds one of :func:`probe`'s parameters (as
    ``mlab.train.config.check_binding`` does for training configs, without importing torch)."""
    key, eq, _ = line.partition("=")
    selector, _, param = key.strip().rpartition(".")
    if not eq or selector.rpartition("/")[2] != "probe":
        raise ConfigError(f"binding {line.strip()!r}: the probe runner binds only probe.<param>")
    params = list(inspect.signature(probe).parameters)
    if param not in params:
        close = difflib.get_close_matches(param, params, n=3, cutoff=0.6)
        hint = " or ".join(repr(c) for c in close) if close else ", ".join(map(repr, params))
        raise ConfigError(
            f"binding {line.strip()!r}: probe has no parameter {param!r}; "
            + (f"did you mean {hint}?" if close else f"valid names: {hint}")
        )


def run_probe(job: Job) -> dict[str, Any]:
    """Parse the job's gin text with ``probe`` registered, and call it."""
    import gin

    if not _probe_registered:
        _probe_registered.append(gin.external_configurable(probe, name="probe", module="search"))
    for line in job.config.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            check_probe_binding(line)
    gin.clear_config()
    try:
        gin.parse_config(job.config)
    except (ValueError, SyntaxError, tokenize.TokenError) as err:
        raise ConfigError(f"the config does not parse: {err}") from None
    result: dict[str, Any] = _probe_registered[0]()
    return result


def train_runner(runs_dir: str | Path = "runs") -> Runner:
    """A runner that trains the job's config with ``mlab train`` into
    ``runs_dir/<search>/<job id>/``, continuing from the newest checkpoint an earlier try left
    there, and returns the run's last metrics plus its best ``val_loss`` and final ``step``."""

    def run_train(job: Job) -> dict[str, Any]:
        from mlab.train.checkpoint import list_checkpoints
        from mlab.train.main import run
        from mlab.train.metrics import read_metrics

        folder = Path(runs_dir) / job.search
        run_dir = folder / job.id
        if list_checkpoints(run_dir):
            run(None, [], resume=str(run_dir), progress=False)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            config = folder / f"{job.id}.gin"
            config.write_text(job.config)
            run(str(config), [], runs_dir=folder, name=job.id, progress=False)
        records = read_metrics(run_dir / "metrics.jsonl")
        result: dict[str, Any] = {"run_dir": str(run_dir)}
        for record in records:
            result |= {k: v for k, v in record.items() if k != "throughput"}
        losses = [r["val_loss"] for r in records if isinstance(r.get("val_loss"), float)]
        if losses:
            result["best_val_loss"] = min(losses)
        return result

    return run_train


RUNNERS: dict[str, Callable[[str | Path], Runner]] = {
    "train": train_runner,
    "probe": lambda runs_dir: run_probe,
}


def runner_for(name: str, runs_dir: str | Path = "runs") -> Runner:
    """The runner a job names (:data:`RUNNERS`)."""
    if name not in RUNNERS:
        raise ConfigError(f"runner {name!r}: use one of {', '.join(RUNNERS)}")
    return RUNNERS[name](runs_dir)
