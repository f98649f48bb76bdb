"""The embedded queue: SQLite in WAL mode, one file, nothing to start (``sqlite:///search.db``).

Write-ahead logging lets readers (``mlab search status``) run while a worker writes, and every
change is one transaction: a worker killed at any instant leaves the file as the last commit
left it. ``synchronous=NORMAL`` in WAL mode survives a killed process (not a power cut's last
few commits). Many worker processes on one machine share the file; SQLite's lock serialises
their writes, each taken with ``BEGIN IMMEDIATE`` so that a claim's read and write are one step
(https://www.sqlite.org/wal.html, https://www.sqlite.org/lang_transaction.html).

Results live in their own table keyed by the job's id: a second result for the same job is
ignored by the primary key, so a job re-run after its lease expired stores one result.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlab.search.queue import Job, JobSpec, Queue

__all__ = ["SCHEMA", "SQLiteQueue", "claim_job", "read_job"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    search TEXT NOT NULL,
    params TEXT NOT NULL,
    config TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    available_at REAL NOT NULL DEFAULT 0,
    worker TEXT,
    token TEXT,
    lease_until REAL,
    error TEXT,
    runner TEXT NOT NULL DEFAULT 'train'
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, available_at);
CREATE TABLE IF NOT EXISTS results (
    job_id TEXT PRIMARY KEY,
    result TEXT NOT NULL,
    worker TEXT,
    finished_at REAL NOT NULL
);
"""

_COLUMNS = (
    "id, search, params, config, state, attempts, max_attempts, jobs.worker, token, lease_until"
)


def read_job(conn: sqlite3.Connection, job_id: str) -> Job | None:
    """The job ``job_id`` as stored (its result and last error included), or None."""
    row = conn.execute(
        f"SELECT {_COLUMNS}, error, result, runner FROM jobs LEFT JOIN results ON job_id = id "
        "WHERE id = ?",
        (job_id,),
    ).fetchone()
    return None if row is None else _job(row)


def _job(row: Sequence[Any]) -> Job:
    job = Job(*row[:10])
    job.params = json.loads(job.params)  # type: ignore[arg-type]
    job.error = row[10]
    job.result = None if row[11] is None else json.loads(row[11])
    job.runner = row[12]
    return job


def claim_job(conn: sqlite3.Connection, worker: str, lease_s: float, now: float) -> Job | None:
    """Claim the next job for ``worker`` at time ``now`` (seconds) in one write transaction,
    and return it as :func:`read_job` reads it after the claim; None when no job is available.

    ``conn`` is in autocommit mode (``isolation_level=None``): open the transaction yourself
    with ``BEGIN IMMEDIATE``, which takes SQLite's write lock *before* reading, so that no
    other worker can claim the same row between your SELECT and your UPDATE; COMMIT at the
    end, ROLLBACK (and re-raise) on an error. Inside it:

    1. Leases that expired (state ``'running'`` and ``lease_until < now``): the job goes back
       to ``'queued'`` (``available_at = now``), or to ``'dead'`` when ``attempts >=
       max_attempts``; either way ``token = NULL`` and ``error`` says the lease expired and
       names the worker that held it.
    2. The available job that was submitted first: ``state = 'queued' AND available_at <=
       now``, smallest ``seq``. None left: commit and return None.
    3. Claim it: ``state = 'running'``, ``attempts + 1``, ``worker``, a new random
       ``token`` (``uuid.uuid4().hex``), ``lease_until = now + lease_s``.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        expired = conn.execute(
            "SELECT id, attempts, max_attempts, worker FROM jobs "
            "WHERE state = 'running' AND lease_until < ?",
            (now,),
        ).fetchall()
        for expired_id, attempts, max_attempts, holder in expired:
            conn.execute(
                "UPDATE jobs SET state = ?, token = NULL, available_at = ?, error = ? WHERE id = ?",
                (
                    "dead" if attempts >= max_attempts else "queued",
                    now,
                    f"lease expired: worker {holder} stopped heartbeating (try {attempts})",
                    expired_id,
                ),
            )
        row = conn.execute(
            "SELECT id FROM jobs WHERE state = 'queued' AND available_at <= ? ORDER BY seq LIMIT 1",
            (now,),
        ).fetchone()
        if row is not None:
            conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = ?, "
                "token = ?, lease_until = ? WHERE id = ?",
                (worker, uuid.uuid4().hex, now + lease_s, row[0]),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return None if row is None else read_job(conn, row[0])


class SQLiteQueue(Queue):
    """The queue in one SQLite file (created with its folder when missing)."""

    def __init__(self, path: str | Path, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.url = f"sqlite:///{self.path}"
        # isolation_level=None: autocommit; every transaction here is opened explicitly.
        self.conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")

    def submit(self, jobs: Sequence[JobSpec]) -> int:
        added = 0
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for spec in jobs:
                cur = self.conn.execute(
                    "INSERT OR IGNORE INTO jobs (id, search, params, config, max_attempts, runner) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        spec.id,
                        spec.search,
                        json.dumps(spec.params),
                        spec.config,
                        spec.max_attempts,
                        spec.runner,
                    ),
                )
                added += cur.rowcount
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return added

    def claim(self, worker: str, lease_s: float) -> Job | None:
        return claim_job(self.conn, worker, lease_s, time.time())

    def heartbeat(self, job_id: str, token: str, lease_s: float) -> bool:
        cur = self.conn.execute(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND token = ? AND state = 'running'",
            (time.time() + lease_s, job_id, token),
        )
        return cur.rowcount == 1

    def complete(self, job_id: str, token: str, result: dict[str, Any]) -> bool:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            holder = self.conn.execute("SELECT worker FROM jobs WHERE id = ?", (job_id,))
            row = holder.fetchone()
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO results (job_id, result, worker, finished_at) "
                "VALUES (?, ?, ?, ?)",
                (job_id, json.dumps(result), row[0] if row else None, time.time()),
            )
            stored = cur.rowcount == 1
            if stored:
                self.conn.execute(
                    "UPDATE jobs SET state = 'done', token = NULL WHERE id = ?", (job_id,)
                )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return stored

    def fail(self, job_id: str, token: str, error: str, retry_in: float) -> str:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            row = self.conn.execute(
                "SELECT attempts, max_attempts FROM jobs "
                "WHERE id = ? AND token = ? AND state = 'running'",
                (job_id, token),
            ).fetchone()
            state = "stale"
            if row is not None:
                state = "dead" if row[0] >= row[1] else "queued"
                self.conn.execute(
                    "UPDATE jobs SET state = ?, token = NULL, error = ?, available_at = ? "
                    "WHERE id = ?",
                    (state, error, time.time() + retry_in, job_id),
                )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return state

    def jobs(self, search: str | None = None) -> list[Job]:
        where, args = ("WHERE search = ?", (search,)) if search is not None else ("", ())
        rows = self.conn.execute(
            f"SELECT {_COLUMNS}, error, result, runner FROM jobs LEFT JOIN results ON job_id = id "
            f"{where} ORDER BY seq",
            args,
        ).fetchall()
        return [_job(r) for r in rows]

    def counts(self, search: str | None = None) -> dict[str, int]:
        where, args = ("WHERE search = ?", (search,)) if search is not None else ("", ())
        rows = self.conn.execute(
            f"SELECT state, COUNT(*) FROM jobs {where} GROUP BY state", args
        ).fetchall()
        out = dict.fromkeys(("queued", "running", "done", "dead"), 0)
        out |= dict(rows)
        return out

    def close(self) -> None:
        self.conn.close()
