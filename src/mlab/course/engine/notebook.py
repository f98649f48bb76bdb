"""The notebook route: the day's exercise file paired with a Jupyter notebook (jupytext).

``mlab start DAY --notebook`` writes ``workspace/<day file>.ipynb`` beside the ``.py``, paired
with it in jupytext's percent format. The ``.py`` stays the file that checks read:

- JupyterLab from the course's environment (``.venv/bin/jupyter lab``) has jupytext's
  extension, which writes the ``.py`` every time the notebook is saved.
- An editor that knows nothing of the pairing (VS Code's notebook editor) saves the ``.ipynb``
  only. So before a check, :func:`sync_from_notebook` copies the notebook's cells into the
  ``.py`` when the notebook was saved after it.

Either way a check reads the *saved* notebook: save (Ctrl+S) before running the check cell.

The notebook names the kernel ``mlab``, a kernelspec installed into this environment's own
``share/jupyter`` (never the user's home), whose Python is the one mlab is installed in.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from mlab.errors import CourseError

__all__ = [
    "KERNEL_NAME",
    "kernelspec",
    "missing_packages",
    "notebook_for",
    "sync_from_notebook",
    "write_notebook",
]

KERNEL_NAME = "mlab"
FORMATS = "ipynb,py:percent"
PACKAGES = ("jupytext", "nbformat", "ipykernel")


def notebook_for(py: Path) -> Path:
    """The notebook paired with the exercise file ``py``."""
    return py.with_suffix(".ipynb")


def missing_packages() -> list[str]:
    """The packages of the ``notebook`` extra that the notebook route needs and that are not
    installed."""
    return [name for name in PACKAGES if importlib.util.find_spec(name) is None]


def _require() -> None:
    missing = missing_packages()
    if missing:
        raise CourseError(
            f"The notebook route needs {', '.join(missing)} (the `notebook` extra), which "
            "is not installed here. Run `make setup` in the mlab folder (it installs that "
            "extra), or `pip install -e '.[notebook]'`."
        )


def _in_virtualenv() -> bool:
    return sys.prefix != sys.base_prefix


def kernelspec() -> dict[str, str]:
    """The notebook's kernelspec metadata: the ``mlab`` kernel of this environment, installed
    into its ``share/jupyter/kernels`` if missing or pointing at another Python. Outside a
    virtual environment (where that folder is the system's), Python's own ``python3``."""
    _require()
    if not _in_virtualenv():
        return {"name": "python3", "display_name": "Python 3", "language": "python"}
    display = f"mlab (Python {sys.version_info.major}.{sys.version_info.minor})"
    spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    if not spec.is_file() or f'"{sys.executable}"' not in spec.read_text(encoding="utf-8"):
        from ipykernel.kernelspec import install

        install(kernel_name=KERNEL_NAME, display_name=display, prefix=sys.prefix)
    return {"name": KERNEL_NAME, "display_name": display, "language": "python"}


def write_notebook(py: Path) -> Path:
    """Write the notebook paired with ``py`` (jupytext, percent format) and return its path.
    Its cells are the file's ``# %%`` cells, so the two hold the same code."""
    _require()
    import jupytext

    notebook = jupytext.read(py, fmt="py:percent")
    notebook.metadata["jupytext"] = {"formats": FORMATS}
    notebook.metadata["kernelspec"] = kernelspec()
    path = notebook_for(py)
    jupytext.write(notebook, path)
    os.utime(py)  # the pair is in step: the notebook is not newer than the file
    return path


def sync_from_notebook(py: Path) -> str | None:
    """Copy the cells of the notebook paired with ``py`` into ``py`` when the notebook was
    saved after ``py`` (an editor that does not know the pairing saved it). Returns a line
    saying so, or None when there was nothing to do."""
    notebook = notebook_for(py)
    if not notebook.is_file() or not py.is_file():
        return None
    if notebook.stat().st_mtime <= py.stat().st_mtime:
        return None
    if missing_packages():
        return (
            f"{notebook} was saved after {py}, but jupytext is not installed to copy its "
            f"cells over, so {py} is checked as it is."
        )
    import jupytext

    nb: Any = jupytext.read(notebook)
    formats = str(nb.metadata.get("jupytext", {}).get("formats", ""))
    if not any(f.split(":")[0].endswith("py") for f in formats.split(",")):
        return None  # a notebook of the same name that is not paired with the file
    if _cells(nb) == _cells(jupytext.read(py, fmt="py:percent")):
        os.utime(py)  # the same cells: mark the file as up to date
        return None
    py.write_text(jupytext.writes(nb, fmt="py:percent"), encoding="utf-8")
    return f"Copied your saved notebook {notebook.name} into {py.name}, which checks read."


def _cells(notebook: Any) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]
