"""How to call ``mlab`` from where the user is, for every command the tool prints.

Right after ``make run`` the virtual environment is not activated, so a bare ``mlab`` is not on
the PATH (or it is another installation's). Every printed command therefore starts with
:func:`mlab_command`: ``mlab`` when that runs this very installation, else the path to this
installation's script, relative to the current folder when that is shorter
(``.venv/bin/mlab``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["mlab_command", "python_command", "script_command"]


def _script() -> Path:
    """This installation's ``mlab`` script: beside the interpreter that runs us (not resolved,
    since a venv's ``python`` is a link to the system interpreter)."""
    return Path(sys.executable).with_name("mlab")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _command(name: str, program: Path, cwd: Path | None) -> str:
    """``name`` if the PATH finds ``program`` by that name, else the shorter of the path to
    ``program`` relative to ``cwd`` and its absolute path."""
    found = shutil.which(name)
    if found is not None and _same_file(Path(found), program):
        return name
    absolute = str(program.absolute())
    try:
        relative = os.path.relpath(absolute, cwd or Path.cwd())
    except ValueError:  # another drive (Windows)
        relative = absolute
    if not relative.startswith(os.pardir):
        relative = os.path.join(os.curdir, relative) if os.sep not in relative else relative
    shortest = min(relative, absolute, key=len)
    return shlex.quote(shortest)


def mlab_command(cwd: Path | None = None) -> str:
    """The words that run this installation's ``mlab`` when typed in ``cwd`` (default: the
    current folder): ``mlab`` if the PATH finds this installation, else a path to it
    (``.venv/bin/mlab``)."""
    script = _script()
    if not script.is_file():
        return "mlab"  # not installed as a script (e.g. run from a source tree): the usual name
    return _command("mlab", script, cwd)


def python_command(cwd: Path | None = None) -> str:
    """The words that run this Python (with mlab and torch) when typed in ``cwd``: ``python``
    if the PATH finds this interpreter, else a path to it (``.venv/bin/python``)."""
    return _command("python", Path(sys.executable), cwd)


def script_command(name: str, *args: str) -> str:
    """A command line running the script ``name`` of this environment (``jupyter lab``), as
    typed in the current folder: the bare name when the PATH finds this very script, else a
    path to it (``.venv/bin/jupyter``)."""
    script = Path(sys.executable).with_name(name)
    first = _command(name, script, None) if script.is_file() else name
    return " ".join([first, *map(shlex.quote, args)])
