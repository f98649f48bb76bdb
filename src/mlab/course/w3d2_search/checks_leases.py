"""Checks for part 2 of w3d2: ``backoff_delay`` against the full-jitter formula drawn from the
same seeded ``random.Random``, and ``claim_job`` on a real SQLite file in WAL mode: the order,
the lease, expired leases, the dead-letter state, a rolled-back error, and another worker
claiming between statements (SQLite's own locking decides who wins)."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlab.course.engine.checks import Namespace, check
from mlab.errors import MismatchError
from mlab.search.sqlite_queue import SCHEMA
from mlab.testing import assert_equal, assert_raises, case, expect

# ----------------------------------------------------------------------------------------------
# backoff_delay


@check("backoff_delay")
def full_jitter_from_the_same_draw(ns: Namespace) -> None:
    for attempt, base, cap in (
        (1, 0.5, 30.0),
        (2, 0.5, 30.0),
        (5, 0.5, 30.0),
        (4, 1.0, 5.0),
        (12, 0.1, 60.0),
        (3, 2.0, 2.0),
        (30, 1.0, 300.0),
    ):
        with case(f"backoff_delay({attempt}, base={base}, cap={cap}, rng)"):
            bound = min(cap, base * 2 ** (attempt - 1))
            want = random.Random(attempt).uniform(0.0, bound)
            got = ns.backoff_delay(attempt, base, cap, random.Random(attempt))
            expect(
                got == want,
                f"got {got!r}, expected {want!r} = rng.uniform(0, min(cap, base * 2 ** "
                f"(attempt - 1))) = rng.uniform(0, {bound!r})",
            )


@check("backoff_delay")
def delays_spread_over_the_whole_window(ns: Namespace) -> None:
    rng = random.Random(3)
    draws = [ns.backoff_delay(4, 0.25, 100.0, rng) for _ in range(400)]
    with case("400 draws of backoff_delay(4, 0.25, 100.0, rng): the window is [0, 2]"):
        expect(min(draws) >= 0 and max(draws) <= 2.0, f"draws in [{min(draws)}, {max(draws)}]")
        expect(min(draws) < 0.1 and max(draws) > 1.9, "the draws should fill [0, 2] (jitter)")


@check("backoff_delay")
def bad_arguments_are_errors(ns: Namespace) -> None:
    for args, name in (
        ((0, 1.0, 10.0), "attempt=0"),
        ((-2, 1.0, 10.0), "attempt=-2"),
        ((1, 0.0, 10.0), "base=0.0"),
        ((1, -1.0, 10.0), "base=-1.0"),
        ((1, 2.0, 1.0), "cap=1.0"),
    ):
        with case(f"backoff_delay{args}"):
            assert_raises(ns.backoff_delay, *args, random.Random(0), exc=ValueError, match=name)


# ----------------------------------------------------------------------------------------------
# claim_job

NOW = 1_000_000.0


@contextmanager
def _database() -> Iterator[tuple[sqlite3.Connection, Path]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "queue.db"
        conn = sqlite3.connect(path, isolation_level=None, timeout=0.2)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SCHEMA)
        try:
            yield conn, path
        finally:
            conn.close()


def _add(conn: sqlite3.Connection, job_id: str, **columns: Any) -> None:
    values = {"id": job_id, "search": "s", "params": json.dumps({"i": job_id}), "config": "x"}
    values |= columns
    names = ", ".join(values)
    marks = ", ".join("?" * len(values))
    conn.execute(f"INSERT INTO jobs ({names}) VALUES ({marks})", list(values.values()))


def _row(conn: sqlite3.Connection, job_id: str) -> dict[str, Any]:
    cur = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,))
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchone(), strict=True))


def _claim(ns: Namespace, conn: sqlite3.Connection, worker: str, lease: float, now: float) -> Any:
    job = ns.claim_job(conn, worker, lease, now)
    expect(not conn.in_transaction, "the transaction is still open after claim_job: COMMIT it")
    return job


@check("claim_job")
def claims_in_submission_order_under_a_lease(ns: Namespace) -> None:
    with _database() as (conn, _), case("jobs a, b, c queued; claimed three times"):
        for job_id in ("a", "b", "c"):
            _add(conn, job_id)
        tokens = set()
        for want, worker, lease in (("a", "w1", 30.0), ("b", "w2", 5.0), ("c", "w1", 0.5)):
            job = _claim(ns, conn, worker, lease, NOW)
            expect(job is not None, f"claim_job returned None with job {want!r} queued")
            assert_equal(job.id, want, what="the claimed job's id (the oldest first)")
            row = _row(conn, want)
            assert_equal(row["state"], "running", what=f"job {want}'s state in the table")
            assert_equal(row["attempts"], 1, what=f"job {want}'s attempts in the table")
            assert_equal(row["worker"], worker, what=f"job {want}'s worker in the table")
            assert_equal(row["lease_until"], NOW + lease, what=f"job {want}'s lease_until")
            expect(
                re.fullmatch(r"[0-9a-f]{32}", row["token"] or "") is not None,
                f"the token should be uuid.uuid4().hex: got {row['token']!r}",
            )
            tokens.add(row["token"])
            for field in ("state", "attempts", "worker", "token", "lease_until"):
                expect(
                    getattr(job, field) == row[field],
                    f"the returned job's {field} is {getattr(job, field)!r}, but the table "
                    f"holds {row[field]!r}: return the job as read_job reads it after the claim",
                )
            assert_equal(job.params, {"i": want}, what="the returned job's params")
        expect(len(tokens) == 3, "every claim needs a new token")
        expect(_claim(ns, conn, "w3", 30.0, NOW) is None, "nothing is queued: return None")


@check("claim_job")
def only_available_queued_jobs(ns: Namespace) -> None:
    with _database() as (conn, _), case("a done, b dead, c due in 1 s, d due now"):
        _add(conn, "a", state="done")
        _add(conn, "b", state="dead")
        _add(conn, "c", available_at=NOW + 1)
        _add(conn, "d", available_at=NOW)
        job = _claim(ns, conn, "w", 10.0, NOW)
        assert_equal(job.id if job else None, "d", what="the claimed job")
        expect(_claim(ns, conn, "w", 10.0, NOW) is None, "c is not due until NOW + 1")
        job = _claim(ns, conn, "w", 10.0, NOW + 1)
        assert_equal(job.id if job else None, "c", what="the job claimed at NOW + 1")


@check("claim_job")
def expired_leases_go_back_or_die(ns: Namespace) -> None:
    with _database() as (conn, _), case("a's lease ended 1 s ago; b's ends now"):
        _add(
            conn, "a", state="running", attempts=1, worker="host:17", token="t", lease_until=NOW - 1
        )
        _add(conn, "b", state="running", attempts=1, worker="host:18", token="u", lease_until=NOW)
        job = _claim(ns, conn, "w", 10.0, NOW)
        assert_equal(job.id if job else None, "a", what="the claimed job (a's lease expired)")
        row = _row(conn, "a")
        assert_equal((row["attempts"], row["worker"]), (2, "w"), what="a's (attempts, worker)")
        expect(row["token"] != "t", "the re-claimed job needs a new token")
        expect(
            "lease expired" in (row["error"] or "") and "host:17" in (row["error"] or ""),
            f"a's error should say the lease expired and name host:17: got {row['error']!r}",
        )
        expect(
            _row(conn, "b")["state"] == "running",
            "b's lease lasts until NOW inclusive: it is not expired (lease_until < now is)",
        )
    with _database() as (conn, _), case("a's lease expired on its last try (3 of 3)"):
        _add(
            conn, "a", state="running", attempts=3, worker="host:9", token="t", lease_until=NOW - 5
        )
        _add(
            conn, "b", state="running", attempts=2, max_attempts=2, worker="h", lease_until=NOW - 1
        )
        _add(
            conn, "c", state="running", attempts=1, max_attempts=2, worker="h", lease_until=NOW - 1
        )
        job = _claim(ns, conn, "w", 10.0, NOW)
        assert_equal(job.id if job else None, "c", what="the claimed job (c has a try left)")
        for dead in ("a", "b"):
            row = _row(conn, dead)
            assert_equal(row["state"], "dead", what=f"{dead}'s state (no tries left)")
            expect(row["token"] is None, f"{dead}'s token should be NULL: got {row['token']!r}")
            expect("lease expired" in (row["error"] or ""), f"{dead}'s error: {row['error']!r}")
        assert_equal(_row(conn, "c")["attempts"], 2, what="c's attempts")


@check("claim_job")
def an_error_rolls_back(ns: Namespace) -> None:
    with _database() as (conn, _), case("the claim's UPDATE of a queued job fails (a trigger)"):
        _add(conn, "a", state="running", attempts=1, worker="h", token="t", lease_until=NOW - 1)
        _add(conn, "b")
        conn.execute(
            "CREATE TRIGGER no_claims BEFORE UPDATE OF state ON jobs "
            "WHEN NEW.state = 'running' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
        assert_raises(ns.claim_job, conn, "w", 10.0, NOW, exc=sqlite3.Error, match="disk on fire")
        expect(not conn.in_transaction, "after an error the transaction is still open: ROLLBACK")
        assert_equal(
            (_row(conn, "a")["state"], _row(conn, "a")["token"]),
            ("running", "t"),
            what="job a after the rolled-back claim (its requeue must be undone too)",
        )


@check("claim_job")
def another_worker_cannot_claim_the_same_job(ns: Namespace) -> None:
    """Before each statement the claim runs, a second connection (another worker) tries to
    claim the oldest queued job itself. SQLite's lock must keep it out while the claim holds
    its transaction; otherwise both may end up with the same job."""
    with _database() as (conn, path), case("another worker claims before each of your statements"):
        for i in range(6):
            _add(conn, f"j{i}")
        other = sqlite3.connect(path, isolation_level=None, timeout=0)
        stolen: list[str] = []

        def intrude(statement: str) -> None:
            try:
                other.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return  # locked by the claim in progress: exactly right
            row = other.execute(
                "SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is not None:
                other.execute(
                    "UPDATE jobs SET state = 'running', worker = 'other', token = 'o', "
                    "attempts = attempts + 1, lease_until = ? WHERE id = ?",
                    (NOW + 60, row[0]),
                )
                stolen.append(row[0])
            other.execute("COMMIT")

        conn.set_trace_callback(intrude)
        try:
            job = ns.claim_job(conn, "me", 30.0, NOW)
        except sqlite3.OperationalError as err:
            raise MismatchError(
                f"claim_job raised {err!r} when another worker wrote between its SELECT and "
                "its UPDATE: take the write lock before reading (BEGIN IMMEDIATE)"
            ) from None
        finally:
            conn.set_trace_callback(None)
            other.close()
        expect(job is not None, "claim_job returned None with jobs queued")
        expect(
            job.id not in stolen,
            f"job {job.id} was claimed twice: by another worker between your statements, and "
            "then by you. Read and write in one transaction that holds the write lock from "
            "the start (BEGIN IMMEDIATE)",
        )
        row = _row(conn, job.id)
        assert_equal((row["worker"], row["attempts"]), ("me", 1), what="your job's row")
