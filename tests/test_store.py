"""The progress store: concurrent writers lose nothing, latest() is the newest run, hints are
revealed one at a time."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

from mlab.course.engine.runner import Result
from mlab.course.engine.store import ProgressStore

WRITERS = 6
RUNS_EACH = 50


def _write_runs(path: str, writer: int, start: multiprocessing.synchronize.Event) -> None:
    store = ProgressStore(Path(path))
    start.wait(timeout=60)  # every writer begins at once
    for i in range(RUNS_EACH):
        store.record(
            "w1d1",
            [Result(f"ex{writer}", "pass" if i % 2 else "fail", f"run {i}", seconds=0.01)],
            file_sha=f"{writer}-{i}",
        )


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / ".mlab" / "progress.sqlite3"
    ProgressStore(path)  # create the schema once, as `mlab start` would
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_write_runs, args=(str(path), w, start)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * WRITERS

    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == WRITERS * RUNS_EACH
        per_writer = dict(db.execute("SELECT exercise, COUNT(*) FROM runs GROUP BY exercise"))
        assert per_writer == {f"ex{w}": RUNS_EACH for w in range(WRITERS)}
        shas = {row[0] for row in db.execute("SELECT file_sha FROM runs")}
        assert len(shas) == WRITERS * RUNS_EACH
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()

    latest = ProgressStore(path).latest("w1d1")
    assert set(latest) == {f"ex{w}" for w in range(WRITERS)}
    for progress in latest.values():
        # each writer's last run (i = 49) passed; it ran 50 times
        assert (progress.status, progress.runs, progress.ever_passed) == ("pass", RUNS_EACH, True)


def test_latest_is_the_newest_run(tmp_path: Path) -> None:
    store = ProgressStore.for_workspace(tmp_path)
    assert store.path == tmp_path / ".mlab" / "progress.sqlite3"
    assert store.latest("w1d1") == {}
    store.record("w1d1", [Result("a", "pass"), Result("b", "fail", "wrong")], "sha1")
    store.record("w1d1", [Result("a", "error", "boom")], "sha2")
    store.record("w1d2", [Result("a", "pass")], "sha3")
    latest = store.latest("w1d1")
    assert set(latest) == {"a", "b"}
    assert (latest["a"].status, latest["a"].runs, latest["a"].ever_passed) == ("error", 2, True)
    assert (latest["b"].status, latest["b"].runs, latest["b"].ever_passed) == ("fail", 1, False)
    assert latest["a"].ts >= latest["b"].ts
    store.record("w1d1", [Result("b", "pass")], "sha4")
    assert store.latest("w1d1")["b"].status == "pass"
    assert store.latest("w1d2")["a"].runs == 1


def test_long_messages_are_truncated_not_refused(tmp_path: Path) -> None:
    store = ProgressStore.for_workspace(tmp_path)
    store.record("w1d1", [Result("a", "fail", "x" * 10_000)], "sha")
    db = sqlite3.connect(store.path)
    try:
        assert len(db.execute("SELECT message FROM runs").fetchone()[0]) == 4000
    finally:
        db.close()


def test_hints_are_revealed_one_at_a_time_up_to_the_number_available(tmp_path: Path) -> None:
    store = ProgressStore.for_workspace(tmp_path)
    assert store.hints_revealed("w1d1", "a") == 0
    assert [store.reveal_hint("w1d1", "a", 3) for _ in range(5)] == [1, 2, 3, 3, 3]
    assert store.hints_revealed("w1d1", "a") == 3
    # counted per day and exercise
    assert store.hints_revealed("w1d1", "b") == 0
    assert store.hints_revealed("w1d2", "a") == 0
    assert store.reveal_hint("w1d1", "b", 2) == 1
    # a second store on the same file sees the same state
    assert ProgressStore.for_workspace(tmp_path).hints_revealed("w1d1", "b") == 1


def test_a_run_whose_file_did_not_load_keeps_each_exercise_as_it_was(tmp_path: Path) -> None:
    store = ProgressStore.for_workspace(tmp_path)
    store.record("w1d1", [Result("a", "pass"), Result("b", "fail", "wrong")], "sha1")
    assert store.load_failure("w1d1") is None
    broken = "w1d1_tensors.py, line 7: SyntaxError: invalid syntax"
    store.record(
        "w1d1",
        [Result(n, "error", broken, load_failed=True) for n in ("a", "b")]
        + [Result("c", "skipped", "needs triton")],
        "sha2",
    )
    latest = store.latest("w1d1")
    assert {n: p.status for n, p in latest.items()} == {"a": "pass", "b": "fail", "c": "skipped"}
    assert latest["a"].runs == 1  # the failed load is not a run of the exercise
    assert store.load_failure("w1d1") == broken
    assert store.load_failure("w1d2") is None
    store.record("w1d1", [Result("a", "pass")], "sha3")  # it loads again
    assert store.load_failure("w1d1") is None


def test_an_older_database_gains_the_load_failures_table(tmp_path: Path) -> None:
    path = tmp_path / ".mlab" / "progress.sqlite3"
    path.parent.mkdir()
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, "
        "day TEXT NOT NULL, exercise TEXT NOT NULL, status TEXT NOT NULL, "
        "message TEXT NOT NULL, seconds REAL NOT NULL, file_sha TEXT NOT NULL);"
        "INSERT INTO runs VALUES (1, 1.0, 'w1d1', 'a', 'pass', '', 0.1, 'sha');"
    )
    db.close()
    store = ProgressStore(path)
    store.record("w1d1", [Result("a", "error", "boom", load_failed=True)], "sha2")
    assert store.latest("w1d1")["a"].status == "pass"
    assert store.load_failure("w1d1") == "boom"
