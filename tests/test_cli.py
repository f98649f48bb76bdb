"""The ``mlab`` command, end to end in a temporary workspace."""

from __future__ import annotations

import json
import os
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
    # As in an activated environment: printed commands say `mlab` (tests below check what
    # they say when it is not on the PATH).
    monkeypatch.setenv("PATH", f"{MLAB.parent}{os.pathsep}{os.environ.get('PATH', '')}")


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
    assert f"`mlab start w1d1 --new --dir {ws}` writes fresh stubs beside it" in out
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
    assert set(payload) == {"day", "file", "warning", "exercises"}
    assert payload["warning"] == ""  # no top-level code was skipped
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
    assert re.search(rf"w1d1.*{DAY.title}.*\b1/{len(DAY.exercises)}\b", days)

    status = invoke("status", "--dir", ws)
    assert re.search(rf"w1d1.*1/{len(DAY.exercises)}.*{DAY.workspace_filename}", status)
    assert f"progress in {ws}" in status
    path = ws / DAY.workspace_filename
    assert f"Next: `mlab check w1d1 --dir {ws}`, after editing {path}." in " ".join(status.split())
    fresh = invoke("status", "--dir", ws.parent / "elsewhere")
    assert f"Next: `mlab start w1d1 --dir {ws.parent / 'elsewhere'}`." in fresh


def test_check_without_a_file_says_how_to_make_one(ws: Path) -> None:
    result = CliRunner().invoke(app, ["check", "w1d1", "--dir", str(ws)])
    assert f"Run `mlab start w1d1 --dir {ws}` to create it" in str(result.exception)


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
    assert "error: There is no day 'w7d7'. Did you mean w1d7? Days: w1d1" in proc.stderr
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
    everything = [Result(ex.name, "pass") for ex in DAY.exercises]
    assert next_step(DAY, everything).startswith("Every exercise of w1d1 passes")


# ----------------------------------------------------------------------------------------------
# a run of one exercise speaks of that exercise


def test_one_exercise_that_passes_names_the_next_unsolved_one() -> None:
    from mlab.course.engine.report import next_step

    names = [ex.name for ex in DAY.exercises]
    solved = {name: "pass" for name in names[:9]}  # 9 of 61 solved, as recorded
    step = next_step(DAY, [Result(EX, "pass")], solved)
    assert "Every exercise" not in step
    assert step.startswith(f"`{EX}` passes. Next: implement `{names[9]}`"), step
    assert f"`mlab check w1d1 --exercise {names[9]}`" in step
    assert f"{len(names) - 9} of {len(names)} exercises of w1d1 are left" in step
    # the next one after the exercise checked, even when an earlier one was skipped
    step = next_step(DAY, [Result(names[5], "pass")], {})
    assert f"Next: implement `{names[6]}`" in step
    # but an earlier one that was tried and fails comes first, as a whole-day check says
    step = next_step(DAY, [Result(names[5], "pass")], {names[0]: "fail"})
    assert f"Next: `{names[0]}` did not pass when last checked (fail)" in step
    # one that failed when last checked is named as such
    step = next_step(DAY, [Result(EX, "pass")], {names[1]: "fail"})
    assert f"Next: `{names[1]}` did not pass when last checked (fail)" in step
    # the day is done only when the record says every other exercise passes
    step = next_step(DAY, [Result(EX, "pass")], {name: "pass" for name in names[1:]})
    assert step.startswith("Every exercise of w1d1 passes")


def test_check_one_exercise_does_not_claim_the_day_is_done(ws: Path) -> None:
    solve_first_exercise(write_stubs(ws))
    out = invoke("check", "w1d1", "-e", EX, "--dir", ws)
    assert "Every exercise" not in out
    second = DAY.exercises[1].name
    assert f"`{EX}` passes. Next: implement `{second}`" in out
    assert f"`mlab check w1d1 --exercise {second} --dir {ws}`" in out


# ----------------------------------------------------------------------------------------------
# a file that does not load keeps the progress recorded before


def break_file(path: Path, line: str) -> int:
    """Append ``line`` to the file; returns its line number."""
    text = path.read_text(encoding="utf-8").rstrip("\n") + "\n"
    path.write_text(text + line + "\n", encoding="utf-8")
    return text.count("\n") + 1


@pytest.mark.parametrize("bad", ["x = = 1", "import mlab_no_such_module_here"])
def test_a_file_that_does_not_load_keeps_the_recorded_progress(ws: Path, bad: str) -> None:
    path = write_stubs(ws)
    solve_first_exercise(path)
    invoke("check", "w1d1", "-e", EX, "--dir", ws)
    line = break_file(path, bad)

    out = invoke("check", "w1d1", "--dir", ws, code=1)
    assert "your file could not be loaded" in out
    assert f"line {line}" in out
    assert f"Next: your file does not load, so no exercise could be checked: fix line {line}" in out
    assert f"Next: fix `{EX}`" not in out

    listing = invoke("list", "w1d1", "--dir", ws)
    assert re.search(rf"{EX}.*✓ pass", listing)  # still as last checked
    assert not re.search(r"! error|✗ fail", listing)
    assert f"Your file did not load when last checked (line {line})" in listing
    status = invoke("status", "--dir", ws)
    n = len(DAY.exercises)
    assert re.search(rf"w1d1.*1/{n} .*\b0\b.*\b{n - 1}\b", status), status
    assert f"w1d1: your file did not load when last checked (line {line})" in status

    path.write_text(path.read_text(encoding="utf-8").replace(bad, ""), encoding="utf-8")
    invoke("check", "w1d1", "-e", EX, "--dir", ws)
    assert "did not load" not in invoke("status", "--dir", ws)


# ----------------------------------------------------------------------------------------------
# printed commands run as printed, with or without mlab on the PATH


def without_mlab_on_path() -> dict[str, str]:
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    kept = [d for d in dirs if d and not (Path(d) / "mlab").exists()]
    return {**os.environ, "PATH": os.pathsep.join(kept), "COLUMNS": "200"}


def test_mlab_command_is_a_path_when_mlab_is_not_on_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlab.invocation import mlab_command

    assert mlab_command() == "mlab"  # the fixture put this installation on the PATH
    monkeypatch.setenv("PATH", without_mlab_on_path()["PATH"])
    root = MLAB.parent.parent.parent  # the folder holding .venv
    assert mlab_command(root) == os.path.relpath(MLAB, root)  # ".venv/bin/mlab"
    assert mlab_command(MLAB.parent) == "./mlab"
    assert mlab_command(tmp_path) in (str(MLAB), os.path.relpath(MLAB, tmp_path))
    # another installation's mlab first on the PATH is not ours
    other = tmp_path / "bin" / "mlab"
    other.parent.mkdir()
    other.write_text("#!/bin/sh\nexit 3\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", f"{other.parent}{os.pathsep}{MLAB.parent}")
    assert mlab_command(tmp_path) != "mlab"


def printed_commands(out: str) -> list[str]:
    """The commands in backticks (as a reader sees them: lines wrapped by rich rejoined)."""
    out = " ".join(out.split())
    return [c for c in re.findall(r"`([^`]*\bmlab [^`]*)`", out) if "DAY" not in c]


def test_printed_commands_run_as_printed_without_mlab_on_the_path(tmp_path: Path) -> None:
    env = without_mlab_on_path()
    root = MLAB.parent.parent.parent
    prefix = os.path.relpath(MLAB, root)

    listing = subprocess.run(
        [str(MLAB), "list"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert f"`{prefix} list DAY`" in listing.stdout, listing.stdout

    ws = tmp_path / "ws"
    solve_first_exercise(write_stubs(ws))
    proc = subprocess.run(
        [str(MLAB), "check", "w1d1", "-e", EX, "--dir", str(ws)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    commands = printed_commands(proc.stdout)
    assert commands, proc.stdout
    assert all(c.startswith(f"{prefix} ") for c in commands), commands
    ran = subprocess.run(
        commands[-1], shell=True, cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    # `... check w1d1 --exercise element_offset --dir ws`: a stub, so exit 1, with the table
    assert ran.returncode == 1, ran.stderr
    assert f"{DAY.exercises[1].name}" in ran.stdout and "not started" in ran.stdout


# ----------------------------------------------------------------------------------------------
# 80 columns: code and names are never cut


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> Console:
    console = Console(width=80, color_system=None)
    monkeypatch.setattr(mlab.cli, "console", console)
    return console


def table_cells(out: str, column: int) -> str:
    """The text of one column of a rich table (rows folded onto lines joined by spaces)."""
    parts = [line.split("│")[column + 1] for line in out.splitlines() if line.startswith("│")]
    return " ".join(" ".join(parts).split())


def assert_fits(out: str) -> None:
    assert "…" not in out
    too_wide = [line for line in out.splitlines() if len(line) > 80 and line.startswith(("│", "┃"))]
    assert not too_wide, too_wide


def test_solution_at_80_columns_never_cuts_code(narrow: Console) -> None:
    ex = get_day("w1d3").exercise("conv1d")
    src = exercise_source(ex)
    lines = src.source.rstrip("\n").splitlines()
    assert max(map(len, lines)) > 80  # the case in point: lines wider than the terminal
    out = invoke("solution", "w1d3", "conv1d")
    for number, line in enumerate(lines, start=src.first_line):
        assert re.search(rf"^\s*{number} {re.escape(line.rstrip())}$", out, re.M), line


def test_list_at_80_columns_shows_whole_summaries(narrow: Console) -> None:
    from mlab.course.engine.manifest import all_days

    out = invoke("list")
    assert_fits(out)
    summaries = table_cells(out, 3)
    for d in all_days():
        assert " ".join(d.summary.split()) in summaries, d.id  # not cut at "(no F."


@pytest.mark.parametrize("day", ["w1d1", "w1d2", "w1d3"])
def test_list_day_at_80_columns_never_cuts_names(narrow: Console, day: str) -> None:
    d = get_day(day)
    out = invoke("list", day)
    assert_fits(out)
    for ex in d.exercises:
        assert re.search(rf"│ {ex.name} +│", out), ex.name
        # importance stays: a learner short of time picks by it
        assert re.search(rf"│ {ex.name} .*│ {'★' * ex.importance} +│", out), ex.name
    for i, part in enumerate(d.parts, start=1):  # said below the table when not in it
        assert f"{i}. {part.title}" in " ".join(out.split())


def test_list_day_on_a_wide_terminal_shows_every_column(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlab.cli, "console", Console(width=160, color_system=None))
    out = invoke("list", "w1d1")
    for header in ("exercise", "part", "difficulty", "importance", "min", "status"):
        assert header in out
    assert f"1. {DAY.parts[0].title}" in out


def test_check_results_and_status_at_80_columns(narrow: Console, ws: Path) -> None:
    from mlab.course.engine.manifest import all_days
    from mlab.course.engine.report import print_results

    for d in all_days():
        results = [Result(ex.name, "not started", "") for ex in d.exercises]
        with narrow.capture() as captured:
            print_results(d, results, narrow, f"{d.id} {d.title}: {ws / d.workspace_filename}")
        out = captured.get()
        assert_fits(out)
        for ex in d.exercises:
            assert re.search(rf"│ {ex.name} +│", out), ex.name
    write_stubs(ws)
    out = invoke("status", "--dir", ws)
    assert_fits(out)
    assert DAY.workspace_filename in table_cells(out, 5).replace(" ", "")


# ----------------------------------------------------------------------------------------------
# reading: one part at a time, a pager on a terminal


def test_read_one_part() -> None:
    out = invoke("read", "w1d1", "--part", "2")
    assert f"part 2 of {len(DAY.parts)}" in out
    assert f"Part 2: {DAY.parts[1].title}" in out
    for ex in DAY.parts[1].exercises:
        assert ex.name in out
    for ex in DAY.parts[0].exercises + DAY.parts[2].exercises:
        assert f"{ex.name} (" not in out
    assert len(out.splitlines()) < len(invoke("read", "w1d1").splitlines()) / 3


@pytest.mark.parametrize("part", ["0", "7", "-1"])
def test_read_a_part_that_is_not_there(part: str) -> None:
    result = CliRunner().invoke(app, ["read", "w1d1", "--part", part])
    assert f"w1d1 has parts 1 to {len(DAY.parts)}, so there is no part {part}" in str(
        result.exception
    )


def test_read_pages_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import pydoc

    paged: list[str] = []
    monkeypatch.setattr(pydoc, "pager", paged.append)
    monkeypatch.setattr(mlab.cli, "console", Console(width=80, force_terminal=True))
    out = invoke("read", "w1d1")
    assert len(paged) == 1 and out == ""
    for ex in DAY.exercises:
        assert ex.name in paged[0]
    out = invoke("read", "w1d1", "--no-pager")
    assert len(paged) == 1 and DAY.exercises[-1].name in out


def test_read_on_a_pipe_prints_all_and_says_how_to_read_one_part() -> None:
    out = invoke("read", "w1d1")
    assert f"`mlab read w1d1 --part N` shows only part N (1 to {len(DAY.parts)})." in out


# ----------------------------------------------------------------------------------------------
# bug hunts: a misspelt target


def test_bughunt_misspelt_target_gets_did_you_mean(ws: Path) -> None:
    result = CliRunner().invoke(app, ["bughunt", "new", "--target", "mpl", "--dir", str(ws)])
    assert result.exit_code == 2
    assert "no bug-hunt target 'mpl'. Did you mean mlp?" in " ".join(result.output.split())
    assert not (ws / "bughunt").exists()


def test_printed_commands_are_never_split_across_lines() -> None:
    """Prose wraps at the terminal's width, but a command in backticks moves to the next line
    whole, so it can be copied and run as printed."""
    from io import StringIO

    from rich.console import Console

    from mlab.course.engine.report import say

    out = StringIO()
    command = "`.venv/bin/mlab check w1d1 --exercise contiguous_strides`"
    text = f"Next: implement `contiguous_strides` (part 1, about 5 min), then run {command}."
    say(Console(file=out, width=80), text)
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert any(command in line for line in lines), lines
    assert " ".join(lines) == text


def test_hint_without_arguments_is_for_the_first_exercise_not_passing(ws: Path) -> None:
    write_stubs(ws)
    out = invoke("hint", "--dir", ws)
    first = DAY.exercises[0]
    assert f"{DAY.id} {first.name}, the first exercise not passing yet" in out
    assert f"Hint 1/{len(first.hints)}:" in out
    out = invoke("hint", "w1d1", "--dir", ws)  # a day alone: the same exercise, next hint
    assert f"Hint 2/{len(first.hints)}:" in out


def test_a_diagnostic_line_that_wraps_keeps_its_indent() -> None:
    """Inside a diagnostic panel, a long line (the learner's code, a tensor preview) wraps
    under its own indent, so it does not read as two lines."""
    from mlab.course.engine.report import wrap

    line = "  w1d1_tensors.py, line 473, in normalise_rows: return x / torch.clamp(length, min=e)"
    wrapped = wrap(f"head\n{line}", 60).splitlines()
    assert wrapped[0] == "head" and len(wrapped) == 3
    assert all(len(w) <= 60 for w in wrapped)
    assert wrapped[2].startswith("    ") and not wrapped[2].startswith("     ")
    assert " ".join(w.strip() for w in wrapped[1:]) == line.strip()
