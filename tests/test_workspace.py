"""Finding the workspace: ``--dir``, then ``$MLAB_WORKSPACE``, then the folder holding
``.mlab/`` found upwards from the current folder (as git finds ``.git``), else ``./workspace``.
Every command run in the project folder, in ``workspace/`` or below it uses the same
workspace, and none ever makes a workspace inside a workspace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

import mlab.cli
from mlab.cli import app
from mlab.course import check
from mlab.course.engine.manifest import get_day
from mlab.course.engine.report import default_workspace, find_workspace
from mlab.course.engine.store import ProgressStore

DAY = get_day("w1d1")
FILE = DAY.workspace_filename
EX = "contiguous_strides"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlab.cli, "console", Console(width=500, color_system=None))
    monkeypatch.delenv("MLAB_WORKSPACE", raising=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder where `mlab start w1d1` was run: project/workspace/ holds the day's
    file and .mlab/. The current folder is the project folder."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    with monkeypatch.context() as m:  # the file and its folder only: no check run
        m.setattr(mlab.cli, "check_and_report", lambda *a, **k: True)
        invoke("start", "w1d1")
    return root


def invoke(*args: str | Path, code: int = 0) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, result.output
    return result.output


def no_nested_workspace(root: Path) -> None:
    nested = sorted(str(p) for p in root.rglob("workspace/**/workspace"))
    assert not nested, f"a workspace inside a workspace was made: {nested}"


def recorded(workspace: Path) -> dict[str, str]:
    return {n: p.status for n, p in ProgressStore.for_workspace(workspace).latest("w1d1").items()}


def test_start_marks_the_workspace_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`.mlab/` is made before anything else, so a later command anywhere below finds it
    (even if the first check run never happened)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(mlab.cli, "check_and_report", lambda *a, **k: True)
    invoke("start", "w1d1")
    assert (tmp_path / "workspace" / FILE).is_file()
    assert (tmp_path / "workspace" / ".mlab").is_dir()


def test_check_from_the_project_folder(project: Path) -> None:
    out = invoke("check", "w1d1", "-e", EX, code=1)
    assert f"workspace/{FILE}" in out
    assert recorded(project / "workspace") == {EX: "not started"}


@pytest.mark.parametrize("below", [".", "notes", "notes/deeper"])
def test_every_command_from_inside_the_workspace_uses_it(
    project: Path, monkeypatch: pytest.MonkeyPatch, below: str
) -> None:
    workspace = project / "workspace"
    here = workspace / below
    here.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(here)
    out = invoke("check", "w1d1", "-e", EX, code=1)
    assert "There is no" not in out
    assert recorded(workspace) == {EX: "not started"}
    assert str(Path(os.path.relpath(workspace / FILE, here))) in out
    status = invoke("status")
    assert "w1d1" in status and "0/61" in status.replace(" ", "")
    # Starting the day again finds the file that is there, and makes no other.
    with monkeypatch.context() as m:
        m.setattr(mlab.cli, "check_and_report", lambda *a, **k: True)
        again = invoke("start", "w1d1")
    assert "already there" in again
    no_nested_workspace(project)
    assert not (here / "workspace").exists()


def test_a_folder_beside_the_workspace_finds_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = project / "docs" / "more"
    docs.mkdir(parents=True)
    monkeypatch.chdir(docs)
    invoke("check", "w1d1", "-e", EX, code=1)
    assert recorded(project / "workspace") == {EX: "not started"}
    assert not (docs / "workspace").exists()


def test_a_folder_named_workspace_without_a_marker_is_not_nested(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A learner who makes `workspace/` by hand and starts there gets the day's file in it."""
    here = tmp_path / "workspace"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setattr(mlab.cli, "check_and_report", lambda *a, **k: True)
    invoke("start", "w1d1")
    assert (here / FILE).is_file()
    assert (here / ".mlab").is_dir()
    assert not (here / "workspace").exists()


def test_dir_then_environment_then_discovery(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.chdir(project / "workspace")
    assert default_workspace().absolute() == (project / "workspace").absolute()
    monkeypatch.setenv("MLAB_WORKSPACE", str(other))
    assert default_workspace() == other
    monkeypatch.setattr(mlab.cli, "check_and_report", lambda *a, **k: True)
    invoke("start", "w1d1", "--dir", elsewhere)
    assert (elsewhere / FILE).is_file()
    assert not (other / FILE).exists()
    invoke("start", "w1d1")
    assert (other / FILE).is_file()


def test_find_workspace_stops_at_the_first_marker(tmp_path: Path) -> None:
    outer = tmp_path / "a"
    inner = outer / "workspace" / "b"
    (outer / "workspace" / ".mlab").mkdir(parents=True)
    inner.mkdir()
    assert find_workspace(inner) == outer / "workspace"
    assert find_workspace(outer) == outer / "workspace"
    (inner / ".mlab").mkdir()
    assert find_workspace(inner / "c") == inner
    lone = tmp_path / "lone"
    lone.mkdir()
    found = find_workspace(lone)
    assert found is None or not found.is_relative_to(tmp_path)


def test_notebook_helper_from_the_workspace_folder(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where Jupyter and VS Code start a kernel: the notebook's folder, `workspace/`. A cell's
    code has no `__file__` (this test module's own would lead elsewhere)."""
    monkeypatch.chdir(project / "workspace")
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    cell: dict[str, Any] = {"check": check, "__name__": "__main__"}
    exec(f'ok = check("w1d1", exercise="{EX}")', cell)
    assert cell["ok"] is False
    out = capsys.readouterr().out
    assert EX in out and "not started" in out
    assert recorded(project / "workspace") == {EX: "not started"}
    no_nested_workspace(project)


def test_notebook_helper_from_a_script_in_the_workspace(project: Path, tmp_path: Path) -> None:
    """A script in the workspace calling check() is checked against its own workspace, from
    whatever folder it is run."""
    scripts = project / "workspace" / "scratch"
    scripts.mkdir()
    script = scripts / "try_it.py"
    script.write_text(
        'from mlab.course import check\nok = check("w1d1", exercise="contiguous_strides")\n'
        'print("RESULT", ok)\n',
        encoding="utf-8",
    )
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if k != "MLAB_WORKSPACE"}
    env["COLUMNS"] = "200"
    run = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "RESULT False" in run.stdout
    assert EX in run.stdout
    assert recorded(project / "workspace") == {EX: "not started"}
    assert not (tmp_path / "workspace").exists()
