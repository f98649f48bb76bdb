"""The learner's progress: every check run and every hint revealed, in a SQLite file in the
workspace (``workspace/.mlab/progress.sqlite3``).

A run on a file that does not load (a syntax error, an error at import time) says nothing about
any exercise, so it is kept apart (``load_failures``): the exercises keep their last known
status, and :meth:`ProgressStore.load_failure` tells that the file stopped loading since.

SQLite in WAL mode lets several ``mlab check`` processes write at once: each run is one short
transaction, and a writer that finds the database busy waits (``busy_timeout``) instead of
failing. Nothing is ever updated in place, so a crash mid-run cannot corrupt earlier records.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlab.course.engine.runner import Result

__all__ = ["ExerciseProgress", "ProgressStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    day TEXT NOT NULL,
    exercise TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    seconds REAL NOT NULL,
    file_sha TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_exercise ON runs (day, exercise, id);
CREATE TABLE IF NOT EXISTS load_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    day TEXT NOT NULL,
    message TEXT NOT NULL,
    file_sha TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hints (
    day TEXT NOT NULL,
    exercise TEXT NOT NULL,
    revealed INTEGER NOT NULL,
    PRIMARY KEY (day, exercise)
);
"""


@dataclass(frozen=True)
class ExerciseProgress:
    status: str
    ts: float
    runs: int  # how many times it was checked
    ever_passed: bool


class ProgressStore:
    """Progress records for one workspace."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @classmethod
    def for_workspace(cls, workspace: Path) -> ProgressStore:
        return cls(workspace / ".mlab" / "progress.sqlite3")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            yield db
        finally:
            db.close()

    def record(self, day: str, results: Iterable[Result], file_sha: str) -> None:
        """Store one check run (all its exercises) in a single transaction. Results of a file
        that did not load (``load_failed``) are stored as one load failure instead, so that they
        do not overwrite what is known of each exercise."""
        now = time.time()
        results = list(results)
        rows = [
            (now, day, r.exercise, r.status, r.message[:4000], r.seconds, file_sha)
            for r in results
            if not r.load_failed
        ]
        failed = next((r for r in results if r.load_failed), None)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO runs (ts, day, exercise, status, message, seconds, file_sha) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                if failed is not None:
                    db.execute(
                        "INSERT INTO load_failures (ts, day, message, file_sha) "
                        "VALUES (?, ?, ?, ?)",
                        (now, day, failed.message[:4000], file_sha),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def latest(self, day: str) -> dict[str, ExerciseProgress]:
        """Each checked exercise of ``day``: its latest status and a little history."""
        query = """
            SELECT r.exercise, r.status, r.ts, agg.n, agg.passed
            FROM runs r
            JOIN (SELECT exercise, MAX(id) AS last, COUNT(*) AS n,
                         MAX(status = 'pass') AS passed
                  FROM runs WHERE day = ? GROUP BY exercise) agg
              ON r.id = agg.last
        """
        with self._connect() as db:
            rows = db.execute(query, (day,)).fetchall()
        return {
            name: ExerciseProgress(status, ts, n, bool(passed))
            for name, status, ts, n, passed in rows
        }

    def load_failure(self, day: str) -> str | None:
        """The message of the last check run of ``day`` if the file did not load then (no run
        has checked an exercise since), else None."""
        query = """
            SELECT message FROM load_failures
            WHERE day = ? AND ts >= (SELECT COALESCE(MAX(ts), 0) FROM runs WHERE day = ?)
            ORDER BY id DESC LIMIT 1
        """
        with self._connect() as db:
            row = db.execute(query, (day, day)).fetchone()
        return str(row[0]) if row else None

    def hints_revealed(self, day: str, exercise: str) -> int:
        with self._connect() as db:
            row = db.execute(
                "SELECT revealed FROM hints WHERE day = ? AND exercise = ?", (day, exercise)
            ).fetchone()
        return int(row[0]) if row else 0

    def reveal_hint(self, day: str, exercise: str, available: int) -> int:
        """Reveal one more hint (up to ``available``); returns how many are now revealed."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT revealed FROM hints WHERE day = ? AND exercise = ?", (day, exercise)
            ).fetchone()
            revealed = min(available, (int(row[0]) if row else 0) + 1)
            db.execute(
                "INSERT INTO hints (day, exercise, revealed) VALUES (?, ?, ?) "
                "ON CONFLICT (day, exercise) DO UPDATE SET revealed = excluded.revealed",
                (day, exercise, revealed),
            )
            db.execute("COMMIT")
        return revealed
