"""The ``mlab`` command, end to end in a temporary workspace."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

import mlab.cli
from mlab.cli import app
from mlab.course.engine.manifest import get_day
from mlab.course.engine.runner import Result
from mlab.course.engine.store import ProgressStore
from mlab.course.engine.stubgen import exercise_source, workspace_source

DAY = get_day("w1d1")
EX = "contiguous_strides"
MLAB = Path(sys.executable).with_name("mlab")

GOOD = '''
def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Solved by the tests."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))
'''


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Print without wrapping (a long tmp path would break lines) and ignore the caller's
    workspace."""
    monkeypatch.setattr(mlab.cli, "console", Console(width=500, color_system=None))
    monkeypatch.delenv("MLAB_WORKSPACE", raising=False)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return tmp_path / "ws"


def invoke(*args: str | Path, code: int = 0) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, result.output
    return result.output


def solve_first_exercise(path: Path) -> None:
    """Replace the stub of contiguous_strides with a working body."""
    text = path.read_text(encoding="utf-8")
    stub = next(
        block for block in text.split("\n# %%\n") if block.startswith(f"def {EX}(")
    ).rstrip()
    path.write_text(text.replace(stub, GOOD.strip(), 1), encoding="utf-8")


@pytest.fixture
def no_checks(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """`start` ends with a check run; these tests are about the file, so skip the run."""
    calls: list[dict[str, Any]] = []

    def fake(day, **kwargs):
        calls.append({"day": day.id, **kwargs})
        return False

    monkeypatch.setattr(mlab.cli, "check_and_report", fake)
    return calls


# ----------------------------------------------------------------------------------------------
# start


def test_start_writes_the_file_and_never_overwrites_edits(ws: Path, no_checks) -> None:
    path = ws / DAY.workspace_filename
    out = invoke("start", "w1d1", "--dir", ws)
    assert f"Wrote {path}: {len(DAY.exercises)} exercises for w1d1" in out
    assert path.read_text(encoding="utf-8") == workspace_source(DAY)
    assert no_checks == [{"day": "w1d1", "directory": ws, "console": mlab.cli.console}]

    out = invoke("start", "w1d1", "--dir", ws)
    assert "is already there, unchanged since it was written" in out

    solve_first_exercise(path)
    edited = path.read_bytes()
    out = invoke("start", "w1d1", "--dir", ws)
    assert "already there with your edits, so it was left as it is" in out
    assert "`mlab start w1d1 --new` writes fresh stubs beside it" in out
    assert path.read_bytes() == edited


def test_start_new_writes_beside_the_file(ws: Path, no_checks) -> None:
    invoke("start", "w1d1", "--dir", ws)
    path = ws / DAY.workspace_filename
    path.write_text("# my own work\n", encoding="utf-8")
    out = invoke("start", "w1d1", "--dir", ws, "--new")
    beside = ws / f"{path.stem}.new.py"
    assert f"Your file {path} is untouched; fresh stubs are in {beside}" in out
    assert beside.read_text(encoding="utf-8") == workspace_source(DAY)
    invoke("start", "w1d1", "--dir", ws, "--new")
    assert (ws / f"{path.stem}.new2.py").read_text(encoding="utf-8") == workspace_source(DAY)
    assert path.read_text(encoding="utf-8") == "# my own work\n"


def test_start_shows_the_status_of_the_new_file(ws: Path) -> None:
    out = invoke("start", "w1d1", "--dir", ws)
    assert "not started" in out
    assert f"0/{len(DAY.exercises)} passing." in out
    assert f"Next: implement `{EX}` (part 1" in out


# ----------------------------------------------------------------------------------------------
# check


def test_check_reference_passes(ws: Path) -> None:
    out = invoke("check", "w1d1", "--reference", "--dir", ws)
    n = len(DAY.exercises)
    assert f"{n}/{n} passing." in out
    assert "the reference solution" in out
    assert not (ws / ".mlab").exists()  # checking the reference records no progress


def write_stubs(ws: Path) -> Path:
    """What `mlab start` writes (tested above), without its check run."""
    ws.mkdir(parents=True, exist_ok=True)
    path = ws / DAY.workspace_filename
    path.write_text(workspace_source(DAY), encoding="utf-8")
    return path


def test_check_json_on_fresh_stubs_fails(ws: Path) -> None:
    write_stubs(ws)
    out = invoke("check", "w1d1", "--json", "--dir", ws, code=1)
    payload = json.loads(out)  # the whole output is one JSON object
    assert set(payload) == {"day", "file", "exercises"}
    assert payload["day"] == "w1d1"
    assert payload["file"] == str(ws / DAY.workspace_filename)
    assert [e["name"] for e in payload["exercises"]] == [ex.name for ex in DAY.exercises]
    for e in payload["exercises"]:
        assert set(e) == {"name", "status", "message"}
        assert e["status"] == "not started", e
        assert e["message"].startswith(f"{e['name']}: not started")
    progress = ProgressStore.for_workspace(ws).latest("w1d1")
    assert {p.status for p in progress.values()} == {"not started"}


def test_check_one_exercise_then_list_and_status_show_progress(ws: Path) -> None:
    solve_first_exercise(write_stubs(ws))
    out = invoke("check", "w1d1", "--exercise", EX, "--dir", ws)
    assert "1/1 passing." in out
    assert re.search(rf"\b1\b.*\b{EX}\b.*✓ pass", out)
    assert DAY.exercises[1].name not in out.split("1/1 passing.")[0]

    listing = invoke("list", "w1d1", "--dir", ws)
    assert re.search(rf"{EX}.*✓ pass", listing)
    assert re.search(rf"{DAY.exercises[1].name}.*· not started", listing)

    days = invoke("list", "--dir", ws)
    assert re.search(rf"w1d1.*{DAY.title}.*\b{len(DAY.exercises)}\b.*\b1\b", days)

    status = invoke("status", "--dir", ws)
    assert re.search(rf"w1d1.*1/{len(DAY.exercises)}", status)
    assert str(ws / DAY.workspace_filename) in status
    assert "Next: `mlab start w1d1` or `mlab check w1d1`." in status


def test_check_without_a_file_says_how_to_make_one(ws: Path) -> None:
    result = CliRunner().invoke(app, ["check", "w1d1", "--dir", str(ws)])
    assert "Run `mlab start w1d1` to create it" in str(result.exception)


# ----------------------------------------------------------------------------------------------
# hints, solutions, instructions


def test_hint_reveals_one_more_each_time(ws: Path) -> None:
    hints = DAY.exercise(EX).hints
    assert len(hints) >= 2
    for k in range(1, len(hints) + 2):
        out = invoke("hint", "w1d1", EX, "--dir", ws)
        shown = min(k, len(hints))
        for i, text in enumerate(hints[:shown], start=1):
            assert f"Hint {i}/{len(hints)}: {text}" in out
        assert f"Hint {shown + 1}/" not in out
        if shown < len(hints):
            assert f"Run the same command again for hint {shown + 1}." in out
        else:
            assert f"That was the last hint. `mlab solution w1d1 {EX}`" in out
    assert ProgressStore.for_workspace(ws).hints_revealed("w1d1", EX) == len(hints)


def test_solution_prints_the_reference_source() -> None:
    out = invoke("solution", "w1d1", EX)
    src = exercise_source(DAY.exercise(EX))
    assert f"{src.filename}, line {src.first_line}" in out
    for line in src.source.splitlines():
        assert line.rstrip() in out


def test_read_renders_the_instructions() -> None:
    out = invoke("read", "w1d1")
    for i, part in enumerate(DAY.parts, start=1):
        assert f"Part {i}: {part.title}" in out
    for ex in DAY.exercises:
        assert ex.name in out
    assert "# " not in out.splitlines()[0]  # Markdown rendered, not echoed


def test_every_command_has_help() -> None:
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert {"list", "start", "read", "check", "hint", "solution", "status", "mutants"} <= set(names)
    assert "Usage" in invoke("--help")
    for name in names:
        out = invoke(name, "--help")
        assert "Usage" in out and name in out, name


# ----------------------------------------------------------------------------------------------
# errors: exit code 2 and a message, never a traceback


def run_mlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MLAB), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_unknown_day_exits_2_with_the_list_of_days(tmp_path: Path) -> None:
    proc = run_mlab("check", "w7d7", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "error: There is no day 'w7d7'. Days: w1d1" in proc.stderr
    assert "`mlab list` shows them all" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_exercise_exits_2_with_a_suggestion(tmp_path: Path) -> None:
    proc = run_mlab("hint", "w1d1", "contiguous_stride", "--dir", "ws", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    message = " ".join(proc.stderr.split())  # rich wraps at 80 columns
    assert "has no exercise 'contiguous_stride'. Did you mean contiguous_strides?" in message
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "ws").exists()


def test_errors_inside_the_app_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["mlab", "check", "w1d1", "-e", "nope_not_here"])
    with pytest.raises(SystemExit) as info:
        mlab.cli.main()
    assert info.value.code == 2
    assert "has no exercise 'nope_not_here'" in capsys.readouterr().err


def test_a_results_table_marks_each_status() -> None:
    from mlab.course.engine.report import next_step

    results = [Result(EX, "pass"), Result(DAY.exercises[1].name, "fail", "wrong")]
    assert next_step(DAY, results).startswith(f"Next: fix `{DAY.exercises[1].name}`")
    assert next_step(DAY, [Result(EX, "pass")]).startswith("Every exercise of w1d1 passes")
