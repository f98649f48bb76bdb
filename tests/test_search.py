"""The search queue (mlab.search) on both backends: SQLite in WAL mode and a real
redis-server started here on a free loopback port (AOF on), skipped with the install hint only
where the binary is missing. Leases, heartbeats, retries with back-off, the dead-letter list,
idempotent results, space files and their errors, and `mlab search` end to end. The chaos
tests (kill -9, a Redis restart) are in tests/test_search_chaos.py."""

from __future__ import annotations

import itertools
import math
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from scipy import stats
from typer.testing import CliRunner

pytest.importorskip("gin", reason="the train extra: pip install -e '.[train]'")

from mlab.errors import ConfigError
from mlab.search import create_search_jobs, open_queue, parse_space, run_one_job_from_queue, work
from mlab.search.queue import JobSpec, Queue, backoff_delay
from mlab.search.redis_queue import RedisQueue
from mlab.search.redis_server import INSTALL_HINT, RedisServer, redis_server_binary
from mlab.search.space import grid_points, log_uniform
from mlab.search.sqlite_queue import SQLiteQueue
from mlab.search.worker import run_probe

PROBE_SPACE = """\
search.name = "probe_grid"
search.runner = "probe"
probe.x = grid(0.001, 0.01, 0.1)   # least val_loss at 0.01
probe.y = grid(0, 1)
"""


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if redis_server_binary() is None:
        pytest.skip(f"redis-server is not installed: {INSTALL_HINT}")
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Queue]:
    q: Queue
    if request.param == "sqlite":
        q = SQLiteQueue(tmp_path / "q.db")
    else:
        server = request.getfixturevalue("redis_server")
        q = RedisQueue(server.url, prefix=f"test:{uuid.uuid4().hex}")
    yield q
    q.close()


def specs(n: int, max_attempts: int = 3, fail: str = "") -> list[JobSpec]:
    return [
        JobSpec(
            "s", {"x": i}, f"probe.x = {10.0**-i}\nprobe.fail = {fail!r}\n", max_attempts, "probe"
        )
        for i in range(n)
    ]


def poll(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"not true within {timeout} s: {condition}")


# ----------------------------------------------------------------------------------------------
# The queue, both backends


def test_submit_is_idempotent_and_claims_go_in_order(queue: Queue) -> None:
    jobs = specs(3)
    assert queue.submit(jobs) == 3
    assert queue.submit(jobs) == 0
    assert [j.id for j in queue.jobs()] == [s.id for s in jobs]
    claimed = [queue.claim("w", 30.0) for _ in range(3)]
    assert [j.id for j in claimed if j] == [s.id for s in jobs]
    assert all(j is not None and j.state == "running" and j.attempts == 1 for j in claimed)
    assert len({j.token for j in claimed if j}) == 3
    assert queue.claim("w", 30.0) is None
    assert queue.counts() == {"queued": 0, "running": 3, "done": 0, "dead": 0}


def test_results_are_stored_once(queue: Queue) -> None:
    queue.submit(specs(1))
    job = queue.claim("w", 30.0)
    assert job is not None and job.token is not None
    assert queue.complete(job.id, job.token, {"val_loss": 1.5})
    assert not queue.complete(job.id, job.token, {"val_loss": 9.0})  # a re-run: ignored
    assert queue.fail(job.id, job.token, "late failure", 0.0) == "stale"
    (done,) = queue.results()
    assert done.result == {"val_loss": 1.5} and done.state == "done"
    assert queue.claim("w", 30.0) is None


def test_an_expired_lease_requeues_and_a_heartbeat_keeps_it(queue: Queue) -> None:
    queue.submit(specs(2, max_attempts=2))
    first, second = queue.claim("w1", 5.0), queue.claim("w2", 0.3)
    assert first is not None and second is not None and first.token and second.token

    def second_is_back() -> bool:  # w1 keeps beating; w2 went silent
        assert queue.heartbeat(first.id, first.token or "", 5.0)
        again = queue.claim("w3", 0.3)
        if again is None:
            return False
        assert again.id == second.id and again.attempts == 2
        return True

    poll(second_is_back)
    assert "lease expired: worker w2 stopped heartbeating" in (queue.jobs()[1].error or "")
    assert not queue.heartbeat(second.id, second.token, 0.3)  # the old claim is gone
    assert queue.fail(second.id, second.token, "from the old claim", 0.0) == "stale"
    # the second try goes silent too: its attempts are used up, so it is dead
    poll(lambda: queue.claim("w4", 30.0) is None and queue.counts()["dead"] == 1)
    assert queue.heartbeat(first.id, first.token, 5.0)
    assert queue.counts() == {"queued": 0, "running": 1, "done": 0, "dead": 1}
    (dead,) = queue.dead()
    assert "worker w3 stopped heartbeating (try 2)" in (dead.error or "")


def test_failures_retry_after_the_back_off_then_go_to_the_dead_letter_list(queue: Queue) -> None:
    queue.submit(specs(1, max_attempts=2))
    job = queue.claim("w", 30.0)
    assert job is not None and job.token
    assert queue.fail(job.id, job.token, "Traceback: first", 1.0) == "queued"
    assert queue.claim("w", 30.0) is None  # waiting out the back-off
    poll(lambda: queue.counts()["running"] == 1 or queue.claim("w", 30.0) is not None)
    job = next(j for j in queue.jobs() if j.state == "running")
    assert job.attempts == 2 and job.token
    assert queue.fail(job.id, job.token, "Traceback: second", 0.0) == "dead"
    (dead,) = queue.dead()
    assert dead.error == "Traceback: second" and dead.attempts == 2
    assert queue.claim("w", 30.0) is None


def test_a_bad_job_fails_itself_not_the_worker(queue: Queue) -> None:
    good = specs(1)[0]
    unknown = JobSpec("s", {"x": 1}, "probe.xx = 1\n", 1, "probe")
    unparsable = JobSpec("s", {"x": 2}, "probe.x = (1,\n", 1, "probe")
    queue.submit([unknown, unparsable, good])
    assert work(queue, until_empty=True, poll_s=0.01, say=lambda m: None) == 1
    dead = {j.id: j.error or "" for j in queue.dead()}
    assert "probe has no parameter 'xx'" in dead[unknown.id] and "'x'" in dead[unknown.id]
    assert "does not parse" in dead[unparsable.id]
    assert [j.id for j in queue.results()] == [good.id]


def test_a_training_job_with_a_misspelt_binding_fails_with_the_message(
    queue: Queue, tmp_path: Path
) -> None:
    from mlab.search.worker import runner_for

    job = JobSpec("s", {}, "train.model = @mlp\nAdamW.lrr = 1e-3\n", 2, "train")
    queue.submit([job])
    runner = runner_for("train", tmp_path / "runs")
    assert (
        run_one_job_from_queue(queue, runner, "w", retry_base_s=0.01, retry_cap_s=0.01) == "queued"
    )
    poll(lambda: run_one_job_from_queue(queue, runner, "w") == "dead")
    (dead,) = queue.dead()
    assert (
        "ConfigError: binding 'AdamW.lrr =': AdamW has no parameter 'lrr'; did you mean 'lr'?"
        in (dead.error or "")
    )
    assert queue.unfinished() == 0


def test_run_one_job_from_queue_beats_while_the_job_runs(queue: Queue) -> None:
    queue.submit(specs(1))
    beats: list[float] = []
    real = queue.heartbeat

    def counting(job_id: str, token: str, lease_s: float) -> bool:
        beats.append(time.monotonic())
        return real(job_id, token, lease_s)

    queue.heartbeat = counting  # type: ignore[method-assign]

    def slow(job: object) -> dict[str, float]:
        time.sleep(0.5)
        return {"val_loss": 0.0}

    assert run_one_job_from_queue(queue, slow, "w", lease_s=0.15) == "done"
    assert len(beats) >= 2  # every 0.05 s for 0.5 s: at least two, however loaded the machine
    assert queue.counts()["done"] == 1
    assert run_one_job_from_queue(queue, slow, "w") is None


def test_open_queue_reads_urls(tmp_path: Path) -> None:
    with open_queue(f"sqlite:///{tmp_path}/a/q.db") as q:
        assert isinstance(q, SQLiteQueue) and (tmp_path / "a" / "q.db").is_file()
        assert q.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(ConfigError, match=r"sqlite:///path/to/search\.db or redis://"):
        open_queue("postgres://x")


# ----------------------------------------------------------------------------------------------
# Spaces


def test_grid_points_follow_itertools_product() -> None:
    axes = {"a": [1, 2, 3], "b": ["x", "y"], "c": [0.5]}
    want = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
    assert grid_points(axes) == want
    assert grid_points({}) == [{}]
    with pytest.raises(ConfigError, match="axis 'b' has no values"):
        grid_points({"a": [1], "b": []})


def test_log_uniform_is_log_uniform() -> None:
    rng = random.Random(0)
    draws = [log_uniform(1e-4, 1e-1, rng) for _ in range(4000)]
    assert stats.kstest(draws, stats.loguniform(1e-4, 1e-1).cdf).pvalue > 1e-3
    assert stats.kstest(draws, stats.uniform(1e-4, 1e-1).cdf).pvalue < 1e-10
    with pytest.raises(ConfigError, match=r"log_uniform\(0, 1\)"):
        log_uniform(0, 1, rng)


def test_backoff_delay_is_full_jitter() -> None:
    rng = random.Random(1)
    for attempt, bound in ((1, 0.5), (2, 1.0), (4, 4.0), (9, 10.0)):
        draws = [backoff_delay(attempt, 0.5, 10.0, rng) for _ in range(500)]
        assert min(draws) >= 0 and max(draws) <= bound and max(draws) > 0.9 * bound
    with pytest.raises(ValueError, match="attempt=0"):
        backoff_delay(0, 1.0, 2.0, rng)


def test_space_files_make_gin_jobs(tmp_path: Path) -> None:
    space = parse_space(PROBE_SPACE)
    jobs = space.jobs()
    assert [j.params for j in jobs][:2] == [
        {"probe.x": 0.001, "probe.y": 0, "seed": 0},
        {"probe.x": 0.001, "probe.y": 1, "seed": 0},
    ]
    assert len({j.id for j in jobs}) == 6
    assert run_probe(jobs[2])["val_loss"] == pytest.approx((math.log10(0.01) + 2) ** 2)
    q = SQLiteQueue(tmp_path / "q.db")
    assert len(create_search_jobs(space, q)) == 6
    create_search_jobs(space, q)
    assert q.counts()["queued"] == 6
    shipped = create_search_jobs("shakespeare_lr_batch")
    assert len(shipped) == 10 and "gpt.n_embd = 128" in shipped[0].config
    assert shipped[0].config.rstrip().endswith("train.seed = 1337")
    random_space = create_search_jobs("lr_random")
    assert len(random_space) == 24 and random_space == create_search_jobs("lr_random")
    assert all(1e-4 <= j.params["probe.x"] <= 1.0 for j in random_space)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("probe.x = grid(1, 2", "2: 'probe.x = grid\\(1, 2': .* is not a Python literal"),
        ("probe.x", "2: 'probe.x': a line should look like 'Name.param = value'"),
        ("probe.x = gird(1, 2)", "gird\\(...\\) is not an axis"),
        ("probe.x = grid()", "grid\\(\\) has no values"),
        ("probe.x = log_uniform(0, 1)", "need 0 < low < high"),
        ("probe.xx = grid(1, 2)", "probe has no parameter 'xx'; did you mean 'x'"),
        ("search.trails = 3", "no setting search.trails; did you mean 'trials'"),
        ("probe.x = 'unterminated", "is not a Python literal"),
        ("probe.y = 1\nprobe.y = 2", "3: 'probe.y = 2': probe.y is already set on line 2"),
        ("probe.x = uniform(0.1, 1)", "draws at random, which a grid cannot"),
    ],
)
def test_a_malformed_space_fails_at_its_line(line: str, message: str) -> None:
    text = 'search.runner = "probe"\n' + line + "\n"
    where = "space.gin:" if message[0].isdigit() else "space.gin:2: .*"
    with pytest.raises(ConfigError, match=where + message):
        parse_space(text, "space.gin")


def test_a_training_space_checks_its_bindings_as_mlab_train_does() -> None:
    text = 'search.base = "shakespeare_char"\nAdamW.lrr = grid(1e-3, 1e-2)\n'
    with pytest.raises(ConfigError, match=r"s\.gin:2: .*AdamW has no parameter 'lrr'"):
        parse_space(text, "s.gin")
    with pytest.raises(ConfigError, match=r"s\.gin:1: .*neither a file nor a shipped config"):
        parse_space('search.base = "shakespear"\n', "s.gin")


# ----------------------------------------------------------------------------------------------
# The command line


def test_mlab_search_end_to_end(tmp_path: Path) -> None:
    from mlab.cli import app

    (tmp_path / "space.gin").write_text(PROBE_SPACE)
    url = f"sqlite:///{tmp_path}/q.db"
    cli = CliRunner()
    out = cli.invoke(app, ["search", "create", str(tmp_path / "space.gin"), "--queue", url])
    assert out.exit_code == 0, out.output
    assert "6 jobs, 6 new" in out.output
    out = cli.invoke(app, ["search", "status", "--queue", url])
    assert out.exit_code == 0 and "probe_grid" in out.output
    out = cli.invoke(app, ["search", "work", "--queue", url, "--until-empty", "--poll", "0.01"])
    assert out.exit_code == 0, out.output
    png = tmp_path / "plot.png"
    out = cli.invoke(app, ["search", "results", "--queue", url, "--plot", str(png)])
    assert out.exit_code == 0, out.output
    assert "best: probe.x = 0.01, probe.y = 0" in out.output
    assert png.stat().st_size > 10_000
    (tmp_path / "failing.gin").write_text(
        'search.name = "failing"\nsearch.runner = "probe"\nsearch.max_attempts = 1\n'
        'probe.fail = grid("out of memory")\n'
    )
    out = cli.invoke(app, ["search", "create", str(tmp_path / "failing.gin"), "--queue", url])
    assert out.exit_code == 0, out.output
    out = cli.invoke(app, ["search", "work", "--queue", url, "--until-empty", "--poll", "0.01"])
    assert out.exit_code == 0, out.output
    out = cli.invoke(app, ["search", "status", "--queue", url, "--watch"])  # ends: all done
    assert out.exit_code == 0 and "failing" in out.output, out.output
    out = cli.invoke(app, ["search", "status", "--queue", url, "--dead"])
    assert "RuntimeError: out of memory" in out.output and "1 dead jobs" in out.output
    (tmp_path / "bad.gin").write_text(PROBE_SPACE + "probe.z = 3\n")
    out = cli.invoke(app, ["search", "create", str(tmp_path / "bad.gin"), "--queue", url])
    assert (
        out.exit_code == 2 and "bad.gin:5" in out.output and "probe has no parameter" in out.output
    )
