"""The check runner: runs a day's checks on some code in a separate process, with time limits.

Learner code can loop forever, exhaust the stack, call ``exit()`` or crash the interpreter. So
checks run in a worker process (:mod:`mlab.course.engine.worker`) that the runner watches: a
check that overruns its exercise's ``timeout`` is reported as ``timeout`` and the worker is
killed and replaced (first asked, with SIGUSR1, for :mod:`faulthandler`'s dump of its stacks,
so the message shows the line of the code under check that was running); a worker that dies is
reported as ``error`` with its exit code.

    results = run_checks(get_day("w1d1"), Target.file("workspace/w1d1_tensors.py"))

``run_jobs`` runs many (target, exercise) jobs over several workers; the mutation engine uses
it to check hundreds of mutants.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal

from mlab.course.engine import warm as warm_worker
from mlab.course.engine.manifest import Day

__all__ = ["STATUSES", "Result", "Target", "run_checks", "run_jobs"]

Status = Literal["pass", "fail", "error", "timeout", "not started", "skipped"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "error", "timeout", "not started", "skipped")

# Starting a worker: Python and torch imports (slow on a loaded CI machine).
START_TIMEOUT = 120.0
# Loading the code under check: the learner's module-level code.
LOAD_TIMEOUT = 20.0


@dataclass(frozen=True)
class Target:
    """What the checks run on: a learner's file, the reference library, the generated stub,
    or one mutant of one exercise."""

    kind: Literal["file", "reference", "stub", "mutant"]
    path: str | None = None
    exercise: str | None = None
    source: str | None = None
    label: str | None = None

    @classmethod
    def file(cls, path: str | Path) -> Target:
        return cls("file", path=str(Path(path).resolve()))

    @classmethod
    def reference(cls) -> Target:
        return cls("reference")

    @classmethod
    def stub(cls) -> Target:
        return cls("stub")

    @classmethod
    def mutant(cls, exercise: str, source: str, label: str) -> Target:
        return cls("mutant", exercise=exercise, source=source, label=label)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Result:
    exercise: str
    status: Status
    message: str = ""
    check: str = ""  # the check that failed
    seconds: float = 0.0
    output: str = ""  # what the code printed
    load_failed: bool = False  # the code could not even be loaded (so no check ran)
    missing: bool = False  # the code does not define the exercise at all
    # Where a non-pass came from: "code" (the code under check raised, or ran out of time),
    # "check" (a check failed or raised by itself), "course" (the day's checks are broken),
    # "load" (the code could not be loaded), "worker" (the check process died or never started).
    origin: str = ""
    # Top-level statements of the learner's file that raised and were skipped (see worker).
    warning: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass
class _Worker:
    """One worker process and a thread that turns its stdout lines into queue items."""

    process: subprocess.Popen[str] | warm_worker.ForkedProcess
    lines: queue.Queue[dict[str, Any] | None]
    stderr: IO[bytes]
    next_id: int = 0
    alive: bool = True
    ready: bool = False
    _reader: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def start(cls, *, warm: bool = False, day: str | None = None) -> _Worker:
        """A new worker process; with ``warm``, forked by the warm server when it can be
        (:mod:`mlab.course.engine.warm`), else started from scratch."""
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in kill())
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        # Learner code runs with one thread: checks are small, and several workers share cores.
        env.setdefault("OMP_NUM_THREADS", "1")
        process: subprocess.Popen[str] | warm_worker.ForkedProcess | None = None
        if warm and warm_worker.enabled():
            # The warm server only runs where there is no GPU: Triton kernels (w1d6) run in
            # its interpreter, chosen before triton is first imported.
            env.setdefault("TRITON_INTERPRET", "1")
            process = warm_worker.connect(env, stderr.fileno(), day=day)
        if process is None:
            process = subprocess.Popen(
                [sys.executable, "-m", "mlab.course.engine.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                encoding="utf-8",
                env=env,
                start_new_session=True,  # its own process group: we can kill it and its children
            )
        lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        worker = cls(process, lines, stderr)
        worker._reader = threading.Thread(target=worker._read, daemon=True)
        worker._reader.start()
        return worker

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.lines.put(json.loads(line))
            except json.JSONDecodeError:
                continue
        self.lines.put(None)  # EOF: the process ended

    def stack_dump(self, wait: float = 1.0) -> str:
        """Ask the (live) worker for faulthandler's dump of its stacks; the text it wrote."""
        fd = self.stderr.fileno()
        start = os.fstat(fd).st_size
        try:
            os.kill(self.process.pid, signal.SIGUSR1)
        except ProcessLookupError:
            return ""
        deadline = time.monotonic() + wait
        text = ""
        while time.monotonic() < deadline:
            time.sleep(0.05)
            # pread: the worker shares this file's offset, so never move it while it writes.
            size = os.fstat(fd).st_size
            if "most recent call first" in text and size == start + len(text.encode()):
                break  # the dump is there and nothing more came in 50 ms
            text = os.pread(fd, size - start, start).decode("utf-8", "replace")
        return text

    def stderr_tail(self, n: int = 1500) -> str:
        self.stderr.seek(0)
        text = self.stderr.read().decode("utf-8", "replace")
        return text[-n:].strip()

    def kill(self) -> None:
        self.alive = False
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.stderr.close()

    def _died(
        self, exercise: str, during: str, locate: Callable[[str], str] | None = None
    ) -> Result:
        """The worker is gone: say how, and where in the code under check it crashed when
        ``locate`` finds that in faulthandler's dump of a fatal signal."""
        code = self.process.wait()
        text = self.stderr_tail(20_000)
        dump_at = text.find("Fatal Python error")
        tail = (text[:dump_at] if dump_at >= 0 else text).strip()[-1500:]
        if code < 0:
            why = f"was killed by signal {signal.Signals(-code).name}"
            if -code == signal.SIGKILL:
                why += " (out of memory?)"
            elif -code in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS):
                why += (
                    " (a crash in compiled code: in a Triton kernel, often a load or store "
                    "outside the tensor, where the mask is missing or wrong)"
                )
        else:
            why = f"exited with code {code}"
        message = f"The check process {why} while {during}."
        if dump_at >= 0 and locate is not None:
            message += locate(text[dump_at:])
        if code in (0, 1) and not tail:
            message += " Does your code call exit() or os._exit()?"
        if tail:
            message += "\nLast lines it wrote to stderr:\n" + tail
        self.kill()
        return Result(exercise, "error", message, origin="worker")

    def _wait(self, deadline: float) -> dict[str, Any] | Literal["timeout"] | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout"
        try:
            return self.lines.get(timeout=remaining)
        except queue.Empty:
            return "timeout"

    def run(self, day: Day, target: Target, exercise: str, timeout: float) -> Result:
        """Run one job. Kills the worker (``alive`` becomes False) on a timeout or crash."""
        if not self.ready:
            item = self._wait(time.monotonic() + START_TIMEOUT)
            if item is None:
                return self._died(exercise, "starting")
            if item == "timeout":
                self.kill()
                return Result(
                    exercise,
                    "error",
                    f"The check process did not start within "
                    f"{START_TIMEOUT:.0f} s; is the machine overloaded?",
                    origin="worker",
                )
            self.ready = True
        self.next_id += 1
        job = {"id": self.next_id, "day": day.id, "target": target.to_json(), "exercise": exercise}
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(job) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._died(exercise, "starting")
        deadline = time.monotonic() + LOAD_TIMEOUT
        phase = "loading the code"
        check_name = case = ""
        files = _code_files(day, target)
        while True:
            item = self._wait(deadline)
            if item is None:
                died = self._died(
                    exercise,
                    phase,
                    functools.partial(_where_it_was, files=files, day=day, target=target),
                )
                return replace(died, load_failed=phase == "loading the code")
            if item == "timeout":
                where = _where_it_was(self.stack_dump(), files, day, target)
                self.kill()
                loading = phase == "loading the code"
                if loading:
                    msg = (
                        f"Loading the file took longer than {LOAD_TIMEOUT:.0f} s, so no check ran."
                        f"{where}\nIs there an infinite loop, or a long computation, at the top "
                        "level of your file (outside any function)? Move it into a function or "
                        'under `if __name__ == "__main__":`.'
                    )
                else:
                    which = f" (in check `{check_name}`)" if check_name else ""
                    msg = (
                        f"{exercise} did not finish within {timeout:g} s{which}, so the check "
                        f"was stopped.{where}\nLook for an infinite loop (a `while` whose "
                        "condition never changes) or a Python loop over far more elements than "
                        "needed." + (f"\nwhile checking: {case}" if case else "")
                    )
                return Result(
                    exercise,
                    "timeout",
                    msg,
                    check=check_name,
                    seconds=LOAD_TIMEOUT if loading else timeout,
                    load_failed=loading,
                    origin="load" if loading else "code",
                )
            assert isinstance(item, dict)
            if item.get("id") != self.next_id:
                continue  # "ready", or a stale line
            event = item["event"]
            if event == "begin":
                phase = f"checking {exercise}"
                deadline = time.monotonic() + timeout
                files = set(item.get("files", ())) or files
            elif event == "check":
                check_name, case = item["check"], ""
            elif event == "case":
                case = item["description"]
            elif event == "result":
                return Result(
                    exercise=exercise,
                    status=item["status"],
                    message=item.get("message", ""),
                    check=item.get("check", ""),
                    seconds=float(item.get("seconds", 0.0)),
                    output=item.get("output", ""),
                    missing=bool(item.get("missing", False)),
                    load_failed=item.get("origin") == "load",  # the worker's LoadError
                    origin=item.get("origin", ""),
                    warning=item.get("warning", ""),
                )


def _code_files(day: Day, target: Target) -> set[str]:
    """The file names the code under check has in tracebacks, as the worker names them
    (until it names them itself in its "begin" event)."""
    if target.kind == "file" and target.path is not None:
        return {target.path}
    if target.kind == "stub":
        return {f"<stub of {day.id}>"}
    if target.kind == "mutant":
        return {f"<mutant {target.label}>"}
    return set()


# A frame in faulthandler's dump: `  File "/path/x.py", line 12 in name`.
_DUMP_FRAME = re.compile(r'^\s*File "(?P<file>.*)", line (?P<line>\d+) in (?P<name>.*)$')


def _source_line(filename: str, lineno: int, day: Day, target: Target) -> str:
    if target.kind == "mutant" and filename == f"<mutant {target.label}>":
        text = target.source or ""
    elif target.kind == "stub" and filename == f"<stub of {day.id}>":
        from mlab.course.engine.stubgen import workspace_source

        text = workspace_source(day)
    else:
        try:
            text = Path(filename).read_text(encoding="utf-8")
        except OSError:
            return ""
    lines = text.splitlines()
    return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""


def _where_it_was(dump: str, files: set[str], day: Day, target: Target) -> str:
    """The frames of the code under check in faulthandler's ``dump``, innermost last, as lines
    to append to a timeout message ("" when the dump shows none)."""
    threads: list[list[tuple[str, int, str]]] = []
    for line in dump.splitlines():
        if "(most recent call first)" in line:
            threads.append([])
        elif threads and (m := _DUMP_FRAME.match(line)) and m["file"] in files:
            threads[-1].append((m["file"], int(m["line"]), m["name"].strip()))
    frames = next((t for t in threads if t), [])
    if not frames:
        return ""
    shown = []
    for filename, lineno, name in reversed(frames[:6]):  # the dump lists innermost first
        where = Path(filename).name if not filename.startswith("<") else filename
        code = _source_line(filename, lineno, day, target)
        shown.append(f"  {where}, line {lineno}, in {name}" + (f": {code}" if code else ""))
    head = (
        "\nIt was running this line of your code:"
        if len(shown) == 1
        else "\nIt was running here (your code, innermost last):"
    )
    return "\n".join([head, *shown])


def run_jobs(
    day: Day,
    jobs: Iterable[tuple[Target, str]],
    *,
    workers: int = 1,
    timeout_scale: float = 1.0,
    on_result: Callable[[int, Result], None] | None = None,
    warm: bool = False,
    recycle: frozenset[str] = frozenset(),
) -> list[Result]:
    """Run ``(target, exercise)`` jobs on ``workers`` worker processes; results in job order.

    A worker that ran a job of an exercise in ``recycle`` is not used again: code that can
    write outside its memory (a mutated Triton kernel, run by the CPU interpreter) might have
    corrupted it for the next job.

    Each exercise's checks get ``exercise.timeout * timeout_scale`` seconds. With ``warm``,
    workers are forked by the warm server (:mod:`mlab.course.engine.warm`) where it runs.
    """
    job_list = list(jobs)
    results: list[Result | None] = [None] * len(job_list)
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(job_list)):
        todo.put(i)
    lock = threading.Lock()
    # A target whose loading timed out would time out again for every exercise: remember it.
    load_timeouts: dict[str, Result] = {}

    def serve() -> None:
        worker: _Worker | None = None
        try:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                target, name = job_list[i]
                key = json.dumps(target.to_json(), sort_keys=True)
                missing = day.exercise(name).missing_requirements()
                if missing:
                    result = Result(
                        name,
                        "skipped",
                        f"needs {', '.join(missing)}, which is not installed: "
                        "`make setup EXTRAS=dev,nlp,notebook,docs,train,gpu` installs it.",
                    )
                elif key in load_timeouts:
                    result = replace(load_timeouts[key], exercise=name)
                else:
                    if worker is None or not worker.alive:
                        worker = _Worker.start(warm=warm, day=day.id)
                    timeout = day.exercise(name).timeout * timeout_scale
                    result = worker.run(day, target, name, timeout)
                    if result.load_failed:
                        load_timeouts[key] = result
                    if name in recycle:
                        worker.kill()
                results[i] = result
                if on_result is not None:
                    with lock:
                        on_result(i, result)
        finally:
            if worker is not None:
                worker.kill()

    n = max(1, min(workers, len(job_list)))
    threads = [threading.Thread(target=serve, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [
        r if r is not None else Result(job_list[i][1], "error", "not run")
        for i, r in enumerate(results)
    ]


def run_checks(
    day: Day,
    target: Target,
    exercises: Iterable[str] | None = None,
    *,
    workers: int = 1,
    on_result: Callable[[int, Result], None] | None = None,
    warm: bool = False,
) -> list[Result]:
    """Run the checks of ``exercises`` (default: all of the day's) on ``target``."""
    names = [ex.name for ex in day.exercises] if exercises is None else list(exercises)
    for name in names:
        day.exercise(name)  # unknown names fail here, with suggestions
    return run_jobs(
        day, [(target, n) for n in names], workers=workers, on_result=on_result, warm=warm
    )
