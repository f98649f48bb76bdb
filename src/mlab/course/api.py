"""Checks callable from a notebook cell: ``from mlab.course import check; check("w1d1")``."""

from __future__ import annotations

import inspect
import os
import warnings
from pathlib import Path
from types import FrameType

__all__ = ["check"]

# Where the code calling check() lives: a script's own name, the notebook VS Code runs, the
# notebook Jupyter started the kernel for (ipykernel's ``__session__``, from JPY_SESSION_NAME).
_CALLER_NAMES = ("__file__", "__vsc_ipynb_file__", "__session__")


def _caller_folder(frame: FrameType | None) -> Path | None:
    """The folder of the file or notebook whose code is running in ``frame``, when known."""
    candidates: list[object] = []
    if frame is not None:
        candidates += [frame.f_globals.get(name) for name in _CALLER_NAMES]
    candidates.append(os.environ.get("JPY_SESSION_NAME"))
    for name in candidates:
        if isinstance(name, str) and name and Path(name).is_file():
            return Path(name).absolute().parent
    return None


def check(day: str, *, exercise: str | None = None, file: str | Path | None = None) -> bool:
    """Run ``day``'s checks on the learner's file and print the results table.

    With no ``file``, the file is the day's exercise file in the workspace that the calling
    notebook or script is in (or beside, as ``workspace/``), found as ``mlab`` finds it from
    the current folder. A notebook made by ``mlab start DAY --notebook`` is paired with that
    file: the check reads the notebook as last saved. Returns True when every exercise checked
    passes.
    """
    from mlab.course.engine.report import check_and_report, default_workspace

    directory = None
    if file is not None and Path(file).suffix == ".ipynb":
        file = Path(file).with_suffix(".py")  # a notebook's __file__: the file it is paired with
    if file is None:
        frame = inspect.currentframe()
        here = _caller_folder(frame.f_back if frame is not None else None)
        if here is not None:
            found = default_workspace(here)
            # Name the folder only where the current folder would not find the same one, so
            # printed commands stay as short as they can be.
            if found.absolute() != default_workspace().absolute():
                directory = found
    with warnings.catch_warnings():
        # rich's progress line needs ipywidgets in a notebook; without it, it is left out.
        warnings.filterwarnings("ignore", message='install "ipywidgets"')
        return check_and_report(day, exercise=exercise, file=file, directory=directory)
