"""The notebook route: `mlab start DAY --notebook` pairs the day's file with a notebook
(jupytext), and the notebook runs headless (nbclient) in the workspace folder, where Jupyter
and VS Code start its kernel, check cell included."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import mlab.cli
from mlab.cli import app
from mlab.course.engine.manifest import get_day
from mlab.course.engine.notebook import KERNEL_NAME, notebook_for, sync_from_notebook
from mlab.course.engine.store import ProgressStore

jupytext = pytest.importorskip("jupytext", reason="the `notebook` extra is not installed")
nbformat = pytest.importorskip("nbformat", reason="the `notebook` extra is not installed")
nbclient = pytest.importorskip("nbclient", reason="the `notebook` extra is not installed")

DAY = get_day("w1d1")
EX = "contiguous_strides"
SOLVED = '''def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Solved in the notebook."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))'''


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlab.cli, "console", Console(width=500, color_system=None))
    monkeypatch.delenv("MLAB_WORKSPACE", raising=False)


def start_notebook(root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """`mlab start w1d1 --notebook` in ``root``, without its check run."""
    monkeypatch.chdir(root)
    with monkeypatch.context() as m:
        m.setattr(mlab.cli, "check_and_report", lambda *a, **k: True)
        result = CliRunner().invoke(app, ["start", "w1d1", "--notebook"])
    assert result.exit_code == 0, result.output
    return result.output


def save(notebook: object, path: Path) -> None:
    """Write the notebook as an editor saves it: after the paired file."""
    nbformat.write(notebook, path)
    later = time.time() + 2
    os.utime(path, (later, later))


def stub_cell(notebook: object, name: str) -> int:
    cells = notebook.cells  # type: ignore[attr-defined]
    return next(i for i, c in enumerate(cells) if c.source.startswith(f"def {name}("))


def test_start_writes_a_notebook_paired_with_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = start_notebook(tmp_path, monkeypatch)
    py = tmp_path / "workspace" / DAY.workspace_filename
    nb_path = notebook_for(py)
    assert nb_path.is_file()
    assert f"workspace/{nb_path.name}" in out and "jupyter lab" in out
    nb = nbformat.read(nb_path, as_version=4)
    # The same cells as the file, as jupytext reads the file.
    as_text = jupytext.read(py, fmt="py:percent")
    assert [(c.cell_type, c.source) for c in nb.cells] == [
        (c.cell_type, c.source) for c in as_text.cells
    ]
    # jupytext (the JupyterLab extension writes both on save) sees the pair.
    formats = nb.metadata["jupytext"]["formats"]
    from jupytext.paired_paths import paired_paths

    paired = paired_paths(str(nb_path), "ipynb", formats)
    assert str(py) in [path for path, _ in paired]
    # The kernel it names is this environment's Python, found as Jupyter finds kernels.
    from jupyter_client.kernelspec import KernelSpecManager

    assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    assert Path(spec.argv[0]) == Path(sys.executable)
    # Never over the learner's notebook.
    nb.cells[0].source += "\n# my note"
    save(nb, nb_path)
    again = start_notebook(tmp_path, monkeypatch)
    assert "already there" in again
    assert "# my note" in nbformat.read(nb_path, as_version=4).cells[0].source


@pytest.mark.slow
def test_the_notebook_runs_headless_in_the_workspace_check_cell_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A learner solves an exercise in the notebook, saves it, and runs every cell, the
    check cell last, in a kernel whose working folder is `workspace/`."""
    start_notebook(tmp_path, monkeypatch)
    workspace = tmp_path / "workspace"
    py = workspace / DAY.workspace_filename
    nb_path = notebook_for(py)
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[stub_cell(nb, EX)].source = SOLVED
    save(nb, nb_path)

    monkeypatch.setenv("COLUMNS", "100")
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name=KERNEL_NAME, resources={"metadata": {"path": str(workspace)}}
    )
    client.execute()  # raises CellExecutionError if any cell raises

    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    check_cell = nb.cells[-1]
    assert 'check("w1d1"' in check_cell.source
    text = "".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in check_cell.outputs
    )
    assert "w1d1 Tensors" in text  # the results table's title
    assert "1/61 passing" in text
    assert "CourseError" not in text and "Traceback" not in text
    # the commands it prints run from a cell, in the kernel's folder: `!../.venv/bin/mlab ...`
    assert re.search(r"`!\S*mlab check w1d1 --exercise \w+`", " ".join(text.split())), text
    row = next(line for line in text.splitlines() if f" {EX} " in line)
    assert "pass" in row, row
    # The check read the saved notebook through its paired file, and recorded it there.
    assert "Solved in the notebook." in py.read_text(encoding="utf-8")
    latest = ProgressStore.for_workspace(workspace).latest("w1d1")
    assert latest[EX].status == "pass"
    assert not (workspace / "workspace").exists()


def test_sync_copies_a_notebook_saved_after_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_notebook(tmp_path, monkeypatch)
    py = tmp_path / "workspace" / DAY.workspace_filename
    nb_path = notebook_for(py)
    original = py.read_bytes()

    # Nothing saved since `start`: nothing to copy, the file is left byte for byte.
    assert sync_from_notebook(py) is None
    assert py.read_bytes() == original

    # Saved later with the same cells (a re-save): the file's code is not rewritten.
    nb = nbformat.read(nb_path, as_version=4)
    save(nb, nb_path)
    assert sync_from_notebook(py) is None
    assert py.read_bytes() == original

    # Saved later with an edit: the file gets it, and reads back as the same cells.
    nb.cells[stub_cell(nb, EX)].source = SOLVED
    save(nb, nb_path)
    message = sync_from_notebook(py)
    assert message is not None and nb_path.name in message
    assert [c.source for c in jupytext.read(py, fmt="py:percent").cells] == [
        c.source for c in nb.cells
    ]

    # The file edited after the notebook: the file wins, untouched.
    py.write_text(py.read_text(encoding="utf-8") + "\n# edited in the editor\n", "utf-8")
    os.utime(py, (time.time() + 10, time.time() + 10))
    edited = py.read_bytes()
    assert sync_from_notebook(py) is None
    assert py.read_bytes() == edited


def test_a_notebook_not_paired_with_the_file_is_never_copied(tmp_path: Path) -> None:
    py = tmp_path / DAY.workspace_filename
    py.write_text("# %%\nx = 1\n", encoding="utf-8")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("y = 2")])
    save(nb, notebook_for(py))
    assert sync_from_notebook(py) is None
    assert py.read_text(encoding="utf-8") == "# %%\nx = 1\n"
    # Paired (jupytext's formats metadata): copied.
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    save(nb, notebook_for(py))
    assert sync_from_notebook(py) is not None
    assert "y = 2" in py.read_text(encoding="utf-8")


def test_saving_in_jupyterlab_writes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JupyterLab saves through jupytext's contents manager (its server extension, installed
    with jupytext): opening the new pair works, and saving the notebook writes the file."""
    start_notebook(tmp_path, monkeypatch)
    workspace = tmp_path / "workspace"
    py = workspace / DAY.workspace_filename
    nb_name = notebook_for(py).name
    manager = jupytext.TextFileContentsManager(root_dir=str(workspace))
    model = manager.get(nb_name)
    cells = model["content"].cells
    cells[stub_cell(model["content"], EX)].source = SOLVED
    manager.save(model, nb_name)
    assert "Solved in the notebook." in py.read_text(encoding="utf-8")
    assert sync_from_notebook(py) is None  # already in step
