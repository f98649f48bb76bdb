"""The search queue under faults, on both backends: worker processes killed with SIGKILL at
seeded moments while they hold a job, a redis-server killed and restarted mid-search (AOF,
appendfsync always), and the LR x batch-size search of the Shakespeare GPT in its test form
with 2 workers. Every job must finish, its result stored exactly once and equal to what the
job computes; none lost, none dead.

Deterministic enough never to flake: the kill moments come from a seeded generator, each
kill picks a worker that holds a running job (read from the queue), and every wait polls the
queue against a generous deadline instead of sleeping a fixed time."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("gin", reason="the train extra: pip install -e '.[train]'")

from mlab.search import open_queue
from mlab.search.queue import JobSpec, Queue
from mlab.search.redis_queue import RedisQueue
from mlab.search.redis_server import INSTALL_HINT, RedisServer, redis_server_binary

pytestmark = pytest.mark.slow

DEADLINE_S = 120.0


def probe_jobs(n: int, seconds: float) -> list[JobSpec]:
    return [
        JobSpec(
            "chaos",
            {"x": 10.0 ** (-i % 5), "i": i},
            f"probe.x = {10.0 ** (-i % 5)!r}\nprobe.y = {i}\nprobe.seconds = {seconds}\n",
            max_attempts=20,
            runner="probe",
        )
        for i in range(n)
    ]


def expected(spec: JobSpec) -> float:
    return (math.log10(spec.params["x"]) + 2) ** 2 + spec.params["i"] ** 2


class Workers:
    """Worker processes (`python -m mlab.search work`), each logging to its own file."""

    def __init__(self, url: str, folder: Path, lease_s: float = 1.0) -> None:
        self.url, self.folder, self.lease_s = url, folder, lease_s
        self.procs: list[subprocess.Popen[bytes]] = []
        self.killed = 0

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        args = [sys.executable, "-m", "mlab.search", "work", "--queue", self.url]
        args += ["--until-empty", "--lease", str(self.lease_s), "--poll", "0.05"]
        args += ["--retry-base", "0.05", "--runs-dir", str(self.folder / "runs")]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self.procs.append(proc)
        return proc

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.kill()  # SIGKILL: no clean-up runs
        proc.wait()
        self.killed += 1

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stop()
                raise AssertionError(
                    f"workers still running after {timeout} s:\n{self.logs()}"
                ) from None

    def stop(self) -> None:
        for proc in self.alive():
            proc.kill()
            proc.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.folder.glob("worker-*.log")))


def poll(condition: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def assert_every_job_done_once(queue: Queue, jobs: list[JobSpec]) -> None:
    stored = queue.jobs("chaos")
    assert [j.id for j in stored] == [s.id for s in jobs]
    assert queue.counts("chaos") == {"queued": 0, "running": 0, "done": len(jobs), "dead": 0}
    for spec, job in zip(jobs, stored, strict=True):
        assert job.result is not None
        assert job.result["val_loss"] == pytest.approx(expected(spec)), job


@pytest.fixture(scope="module")
def redis_binary() -> str:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip(f"redis-server is not installed: {INSTALL_HINT}")
    return binary


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/queue.db"
        return
    request.getfixturevalue("redis_binary")
    with RedisServer(tmp_path / "redis") as server:
        yield server.url


@pytest.mark.parametrize("seed", [0])
def test_workers_killed_at_random_moments_lose_no_job(
    queue_url: str, tmp_path: Path, seed: int
) -> None:
    jobs = probe_jobs(32, seconds=0.25)
    queue = open_queue(queue_url)
    assert queue.submit(jobs) == 32
    workers = Workers(queue_url, tmp_path)
    rng = random.Random(seed)
    try:
        for _ in range(3):
            workers.start()
        deadline = time.monotonic() + DEADLINE_S
        while workers.killed < 6 and queue.unfinished() > 0:
            assert time.monotonic() < deadline, f"only {workers.killed} kills:\n{workers.logs()}"
            time.sleep(rng.uniform(0.1, 0.5))
            holders = {j.worker for j in queue.jobs() if j.state == "running"}
            victims = [p for p in workers.alive() if any(f":{p.pid}" in (h or "") for h in holders)]
            if victims:
                workers.kill(rng.choice(victims))
                workers.start()
        workers.wait(DEADLINE_S)
    finally:
        workers.stop()
    assert workers.killed >= 4, f"only {workers.killed} kills landed while jobs ran"
    assert_every_job_done_once(queue, jobs)
    stored = queue.jobs("chaos")
    assert sum(j.attempts for j in stored) > len(jobs)  # killed jobs ran again
    assert any("lease expired" in (j.error or "") for j in stored)
    queue.close()


def test_a_redis_restart_mid_search_loses_nothing(redis_binary: str, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", appendfsync="always").start()
    jobs = probe_jobs(20, seconds=0.2)
    queue = RedisQueue(server.url, say=lambda m: None)
    queue.submit(jobs)
    workers = Workers(server.url, tmp_path, lease_s=5.0)
    try:
        for _ in range(2):
            workers.start()
        poll(lambda: queue.counts()["done"] >= 4, "4 jobs done before the restart")
        server.kill()  # a crash: SIGKILL, no final save
        time.sleep(0.5)
        server.start()  # same port, same folder: the AOF is replayed
        workers.wait(DEADLINE_S)
        assert_every_job_done_once(queue, jobs)
        assert "lost the queue at redis://127.0.0.1" in workers.logs()
        assert "retrying in" in workers.logs()
    finally:
        workers.stop()
        queue.close()
        server.stop()


def test_the_lr_batch_size_search_of_the_shakespeare_gpt(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlab.cli import app
    from mlab.models.shakespeare import load_tiny_shakespeare

    try:
        load_tiny_shakespeare()
    except Exception as err:  # offline without the file
        pytest.skip(f"tiny Shakespeare is not available: {err}")
    url = f"sqlite:///{tmp_path}/queue.db"
    cli = CliRunner()
    out = cli.invoke(app, ["search", "create", "shakespeare_lr_tiny", "--queue", url])
    assert out.exit_code == 0, out.output
    workers = Workers(url, tmp_path, lease_s=30.0)
    try:
        for _ in range(2):
            workers.start()
        workers.wait(DEADLINE_S * 2)
    finally:
        workers.stop()
    png = tmp_path / "lr.png"
    out = cli.invoke(app, ["search", "results", "--queue", url, "--plot", str(png)])
    assert out.exit_code == 0, out.output
    assert "4 done, 0 to go, 0 dead" in out.output
    assert "best: AdamW.lr = 0.01" in out.output  # 1e-4 barely moves in 30 steps
    assert png.stat().st_size > 10_000
    with open_queue(url) as queue:
        holders = {j.worker for j in queue.jobs()}
        assert len(holders) == 2, holders  # both workers took jobs
        for job in queue.jobs():
            assert job.result is not None and job.result["step"] == 30
            assert Path(job.result["run_dir"], "checkpoints").is_dir()
