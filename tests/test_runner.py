"""The check runner: learner files that pass, fail, crash, loop or exit are each reported with a
useful status and message, in an isolated worker process that is never hung on."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import pytest
import torch

import mlab.course.engine.runner as runner
from mlab.course.engine.manifest import get_day
from mlab.course.engine.runner import Result, Target, run_checks, run_jobs

DAY = get_day("w1d1")
EX = "contiguous_strides"  # its reference is torch.empty(shape).stride()
assert DAY.exercises[0].name == EX

FRAMEWORK = ("worker.py", "runner.py", "checks_strides.py", "mlab/testing.py", "<frozen")

LEARNER_FILES = {
    "good": """
        import math


        def contiguous_strides(shape):
            sizes = [max(s, 1) for s in shape]
            return tuple(math.prod(sizes[i + 1 :]) for i in range(len(sizes)))
    """,
    "wrong": """
        def contiguous_strides(shape):
            return tuple(1 for _ in shape)  # every stride 1: wrong from 2 dims on
    """,
    "raises": """
        def _size_of(shape, i):
            return shape[i + 1] * _size_of(shape, i + 1)  # walks off the end: IndexError


        def contiguous_strides(shape):
            return tuple(_size_of(shape, i) for i in range(len(shape)))
    """,
    "syntax": """
        def contiguous_strides(shape):
            strides = []
            for size in reversed(shape)
                strides.append(size)
            return tuple(strides)
    """,
    "import_error": """
        import torch
        import no_such_module_anywhere


        def contiguous_strides(shape):
            return torch.empty(shape).stride()
    """,
    # top-level trial code that raises (a notebook cell trying a stub) is skipped, with a warning
    "scratch": """
        import torch

        TABLE = torch.zeros(3)[5]


        def contiguous_strides(shape):
            return torch.empty(shape).stride()


        print(element_offset((1, 2), (3, 1)))


        def element_offset(index, stride, offset=0):
            raise NotImplementedError("element_offset: not started: replace this line")
    """,
    "sys_exit": """
        import sys


        def contiguous_strides(shape):
            sys.exit()
    """,
    "printer": """
        import os
        import sys

        import torch


        def contiguous_strides(shape):
            print("hello from the learner", shape)
            os.write(1, b"not json: straight to fd 1\\n")
            sys.__stdout__.write("{also not the protocol}\\n")
            return torch.empty(shape).stride()
    """,
    "asserts": """
        def contiguous_strides(shape):
            assert False, "my own sanity check"
    """,
    "missing": """
        def contiguous_stride(shape):  # misspelled
            return ()
    """,
    "leaks_state": """
        import torch


        def contiguous_strides(shape):
            torch.set_default_dtype(torch.float64)
            torch.set_grad_enabled(False)
            return torch.empty(shape).stride()
    """,
    "needs_defaults": """
        import torch


        def contiguous_strides(shape):
            if torch.get_default_dtype() != torch.float32 or not torch.is_grad_enabled():
                return (-1,) * len(shape)  # wrong whenever global state leaked in
            return torch.empty(shape).stride()
    """,
    "loops": """
        def contiguous_strides(shape):
            while True:
                pass
    """,
    "exits_3": """
        import os


        def contiguous_strides(shape):
            os._exit(3)
    """,
    "slow": """
        import time

        import torch


        def contiguous_strides(shape):
            if shape == ():
                print("slow learner")
                time.sleep(1.5)
            return torch.empty(shape).stride()
    """,
    "top_level_loop": """
        while True: pass


        def contiguous_strides(shape):
            return ()
    """,
    "aborts": """
        import os


        def contiguous_strides(shape):
            os.abort()  # as a Triton kernel reading out of bounds can
    """,
    "loops_in_a_helper": """
        import torch


        def _spin():
            while True: pass


        def contiguous_strides(shape):
            return _spin()
    """,
    # torch raises NotImplementedError for a real bug: not to be taken for the stub's raise
    "meta_tensor": """
        import torch


        def contiguous_strides(shape):
            return tuple(torch.empty(shape, device="meta").to("cpu").stride())
    """,
    # the learner's own `raise NotImplementedError`, in a helper: still not started
    "own_stub": """
        def _todo():
            raise NotImplementedError


        def contiguous_strides(shape):
            return _todo()
    """,
}

# Jobs one worker serves in turn without dying, in this order.
BATCH = [
    "good",
    "wrong",
    "raises",
    "syntax",
    "import_error",
    "scratch",
    "sys_exit",
    "printer",
    "asserts",
    "missing",
    "leaks_state",
    "needs_defaults",
    "meta_tensor",
    "own_stub",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("learners")
    paths = {}
    for name, source in LEARNER_FILES.items():
        path = root / f"{name}.py"
        path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
        paths[name] = path
    return paths


@pytest.fixture(scope="module")
def batch(files: dict[str, Path]) -> dict[str, Result]:
    results = run_jobs(DAY, [(Target.file(files[name]), EX) for name in BATCH])
    return dict(zip(BATCH, results, strict=True))


def line_of(path: Path, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, start=1) if text in line)


def assert_no_framework_frames(message: str) -> None:
    for name in FRAMEWORK:
        assert name not in message, f"{name} in:\n{message}"


def test_a_correct_file_passes(batch: dict[str, Result]) -> None:
    r = batch["good"]
    assert (r.exercise, r.status, r.message, r.check) == (EX, "pass", "", "")
    assert r.passed and 0 < r.seconds < 5


def test_a_wrong_answer_fails_with_expected_got_and_the_input(batch: dict[str, Result]) -> None:
    r = batch["wrong"]
    assert r.status == "fail" and not r.passed
    assert r.check  # the name of the check that failed
    assert "expected" in r.message and "got 1" in r.message
    assert "while checking:" in r.message and "shape" in r.message
    assert_no_framework_frames(r.message)


def test_an_exception_names_the_learners_file_line_and_code(
    batch: dict[str, Result], files: dict[str, Path]
) -> None:
    r = batch["raises"]
    assert r.status == "error"
    assert r.message.startswith("IndexError: tuple index out of range")
    path = files["raises"]
    inner = line_of(path, "return shape[i + 1]")
    outer = line_of(path, "return tuple(_size_of")
    assert f"raises.py, line {inner}, in _size_of: return shape[i + 1] * _size_of" in r.message
    assert f"raises.py, line {outer}, in contiguous_strides" in r.message
    assert "while checking:" in r.message  # the input that triggered it
    assert_no_framework_frames(r.message)


def test_a_syntax_error_names_the_line(batch: dict[str, Result], files: dict[str, Path]) -> None:
    r = batch["syntax"]
    assert r.status == "error"
    line = line_of(files["syntax"], "for size in reversed(shape)")
    assert f"syntax.py, line {line}: SyntaxError" in r.message
    assert "for size in reversed(shape)" in r.message
    assert "until the file parses, no exercise can be checked" in r.message


def test_an_error_at_import_time(batch: dict[str, Result], files: dict[str, Path]) -> None:
    r = batch["import_error"]
    assert r.status == "error" and r.load_failed
    assert "raised an error while being imported" in r.message
    assert "ModuleNotFoundError" in r.message
    line = line_of(files["import_error"], "import no_such_module_anywhere")
    assert f"import_error.py, line {line}, in <module>: import no_such" in r.message
    assert_no_framework_frames(r.message)


def test_top_level_code_that_raises_is_skipped_with_a_warning(
    batch: dict[str, Result], files: dict[str, Path]
) -> None:
    """A trial call of an exercise not written yet (a notebook cell) must not stop the
    checks of the others: the statement is skipped and named."""
    r = batch["scratch"]
    assert r.passed and not r.load_failed, r.message
    table = line_of(files["scratch"], "TABLE =")
    trial = line_of(files["scratch"], "print(element_offset")
    assert f"(lines {table}, {trial})" in r.warning, r.warning
    assert "IndexError" in r.warning and "NameError" in r.warning, r.warning
    assert 'if __name__ == "__main__":' in r.warning
    assert_no_framework_frames(r.warning)


def test_sys_exit_is_an_error_not_the_end(batch: dict[str, Result]) -> None:
    r = batch["sys_exit"]
    assert r.status == "error"
    assert "SystemExit" in r.message and "sys_exit.py, line" in r.message
    # the worker survived it: the next job ran in the same process and passed
    assert batch["printer"].status == "pass"


def test_printed_output_is_captured_and_cannot_corrupt_the_protocol(
    batch: dict[str, Result],
) -> None:
    r = batch["printer"]
    assert r.status == "pass", r.message
    assert "hello from the learner ()" in r.output
    assert "hello from the learner (2, 3)" in r.output
    assert "not json" not in r.output  # fd 1 writes go to stderr, away from the protocol


def test_a_learners_own_assert_is_an_error_not_a_failed_check(batch: dict[str, Result]) -> None:
    r = batch["asserts"]
    assert r.status == "error"
    assert "AssertionError: my own sanity check" in r.message
    assert "asserts.py, line 2, in contiguous_strides" in r.message


def test_a_missing_function_is_named(batch: dict[str, Result]) -> None:
    r = batch["missing"]
    assert r.status == "not started"
    assert r.missing
    assert "missing.py does not define 'contiguous_strides'" in r.message


def test_global_torch_state_does_not_leak_between_exercises(batch: dict[str, Result]) -> None:
    assert batch["leaks_state"].status == "pass"
    # same worker, next job: default dtype and grad mode are back to their defaults
    r = batch["needs_defaults"]
    assert r.status == "pass", r.message


def test_a_library_notimplementederror_is_an_error_not_not_started(
    batch: dict[str, Result], files: dict[str, Path]
) -> None:
    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor"):
        torch.empty(2, device="meta").to("cpu")  # the real thing raises it
    r = batch["meta_tensor"]
    assert r.status == "error", r.message
    assert r.message.startswith("NotImplementedError: Cannot copy out of meta tensor")
    line = line_of(files["meta_tensor"], 'device="meta"')
    assert f"meta_tensor.py, line {line}, in contiguous_strides: return tuple(" in r.message
    assert "while checking:" in r.message
    assert_no_framework_frames(r.message)


def test_a_raise_notimplementederror_in_the_learners_file_is_not_started(
    batch: dict[str, Result],
) -> None:
    assert batch["own_stub"].status == "not started"


def test_a_timeout_shows_the_learners_lines_that_were_running(files: dict[str, Path]) -> None:
    (r,) = run_jobs(DAY, [(Target.file(files["loops_in_a_helper"]), EX)], timeout_scale=0.2)
    assert r.status == "timeout"
    path = files["loops_in_a_helper"]
    outer = f"loops_in_a_helper.py, line {line_of(path, 'return _spin()')}, in contiguous_strides"
    inner = f"loops_in_a_helper.py, line {line_of(path, 'while True')}, in _spin: while True: pass"
    lines = r.message.splitlines()
    assert "It was running here (your code, innermost last):" in lines, r.message
    at = lines.index("It was running here (your code, innermost last):")
    assert lines[at + 1 : at + 3] == [f"  {outer}: return _spin()", f"  {inner}"], r.message
    assert_no_framework_frames(r.message)
    assert "torch" not in r.message
    # and the input it was working on, as any other failure says
    assert re.search(r"\nwhile checking: .*shape", r.message), r.message


def test_an_infinite_loop_times_out_and_the_next_job_still_runs(files: dict[str, Path]) -> None:
    start = time.monotonic()
    looped, after = run_jobs(
        DAY,
        [(Target.file(files["loops"]), EX), (Target.file(files["good"]), EX)],
        timeout_scale=0.2,
    )
    elapsed = time.monotonic() - start
    limit = DAY.exercise(EX).timeout * 0.2
    assert looped.status == "timeout"
    assert f"{EX} did not finish within {limit:g} s" in looped.message
    assert "infinite loop" in looped.message
    assert looped.seconds == limit and looped.check
    assert after.status == "pass"  # a fresh worker replaced the killed one
    assert elapsed < 60


def test_a_top_level_loop_times_out_every_exercise_once(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "LOAD_TIMEOUT", 3.0)
    target = Target.file(files["top_level_loop"])
    start = time.monotonic()
    results = run_jobs(DAY, [(target, ex.name) for ex in DAY.exercises])
    elapsed = time.monotonic() - start
    assert [r.exercise for r in results] == [ex.name for ex in DAY.exercises]
    assert {r.status for r in results} == {"timeout"}
    assert all(r.load_failed for r in results)
    assert "Loading the file took longer than 3 s" in results[-1].message
    assert "top level of your file" in results[-1].message
    # where it was: faulthandler's dump of the worker, before it was killed
    assert (
        "It was running this line of your code:\n"
        "  top_level_loop.py, line 1, in <module>: while True: pass"
    ) in results[-1].message
    assert elapsed < 45  # one load timeout, not one per exercise


def test_os_exit_is_reported_with_its_exit_code(files: dict[str, Path]) -> None:
    exited, after = run_jobs(
        DAY, [(Target.file(files["exits_3"]), EX), (Target.file(files["good"]), EX)]
    )
    assert exited.status == "error"
    assert f"The check process exited with code 3 while checking {EX}" in exited.message
    assert after.status == "pass"


def test_reference_passes_and_stub_is_not_started_in_job_order(files: dict[str, Path]) -> None:
    names = [ex.name for ex in DAY.exercises]
    jobs = [(Target.file(files["slow"]), EX)]
    jobs += [(Target.reference(), n) for n in names] + [(Target.stub(), n) for n in names]
    finished: list[int] = []
    results = run_jobs(DAY, jobs, workers=2, on_result=lambda i, r: finished.append(i))
    # the slow first job finished after others (so completion order is not job order) ...
    assert sorted(finished) == list(range(len(jobs))) and finished[0] != 0
    # ... yet results come in job order
    slow, reference, stub = results[0], results[1 : len(names) + 1], results[len(names) + 1 :]
    assert slow.status == "pass" and slow.output.startswith("slow learner")
    assert [r.exercise for r in reference] == names and [r.exercise for r in stub] == names
    failing = {r.exercise: r.message for r in reference if not r.passed}
    assert not failing, failing
    assert {r.status for r in stub} == {"not started"}, [
        r for r in stub if r.status != "not started"
    ]
    assert all(f"{r.exercise}: not started" in r.message for r in stub)


def test_run_checks_rejects_unknown_exercises_before_starting() -> None:
    with pytest.raises(Exception, match="has no exercise 'contiguous_stride'"):
        run_checks(DAY, Target.reference(), ["contiguous_stride"])


def test_targets_serialise_without_empty_fields(tmp_path: Path) -> None:
    assert Target.reference().to_json() == {"kind": "reference"}
    assert Target.file(tmp_path / "x.py").to_json() == {
        "kind": "file",
        "path": str((tmp_path / "x.py").resolve()),
    }


def test_a_crash_in_compiled_code_shows_the_learners_line(files: dict[str, Path]) -> None:
    (r,) = run_jobs(DAY, [(Target.file(files["aborts"]), EX)])
    assert r.status == "error"
    assert "killed by signal SIGABRT" in r.message and "mask" in r.message, r.message
    line = line_of(files["aborts"], "os.abort()")
    assert f"aborts.py, line {line}, in contiguous_strides: os.abort()" in r.message, r.message
    assert "Fatal Python error" not in r.message  # the dump itself is not shown
    assert_no_framework_frames(r.message)


def test_a_recycled_exercise_gets_a_fresh_worker_for_each_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutants of Triton kernels can corrupt the worker's memory: with `recycle`, no job of
    theirs shares a worker with the next job."""
    pids = tmp_path / "pids.txt"
    monkeypatch.setenv("MLAB_TEST_PIDS", str(pids))
    path = tmp_path / "pid.py"
    path.write_text(
        "import os\nimport torch\n\n\ndef contiguous_strides(shape):\n"
        "    with open(os.environ['MLAB_TEST_PIDS'], 'a') as f:\n"
        "        f.write(f'{os.getpid()}\\n')\n"
        "    return torch.empty(shape).stride()\n"
    )
    jobs = [(Target.file(path), EX), (Target.file(path), EX)]
    assert all(r.passed for r in run_jobs(DAY, jobs))
    assert len(set(pids.read_text().split())) == 1  # one worker serves both
    pids.unlink()
    assert all(r.passed for r in run_jobs(DAY, jobs, recycle=frozenset({EX})))
    assert len(set(pids.read_text().split())) == 2
