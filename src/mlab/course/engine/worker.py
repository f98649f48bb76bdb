"""The check worker: a child process that loads the code under check and runs checks on it.

The parent (:mod:`mlab.course.engine.runner`) writes one JSON job per line to our stdin and
reads our answers, one JSON object per line, from our original stdout. Anything the learner's
code prints is captured per job instead, and whatever writes straight to file descriptor 1 is
sent to stderr, so nothing the learner does can corrupt the protocol.

Events we send for a job: ``{"event": "begin", "files": [...]}`` once the target is loaded
(the files that count as the code under check), ``{"event": "check", "check": name}`` before each
check, then ``{"event": "result", ...}``. The parent times each phase and kills us on an infinite
loop; before that it sends SIGUSR1, on which :mod:`faulthandler` writes every thread's stack to
stderr, so the timeout message can show the line that was running.

A result's ``origin`` says where a non-pass came from: ``code`` (the code under check raised:
one of its frames is in the traceback), ``check`` (a check failed, or raised by itself),
``course`` (the day's checks are broken) or ``load`` (the code could not be loaded). The
mutation report counts a mutant as killed only by a failed check or a raise in its own code.
"""

from __future__ import annotations
import __future__

import ast
import contextlib
import faulthandler
import hashlib
import importlib
import io
import json
import linecache
import os
import re
import signal
import sys
import time
import traceback
import types
from pathlib import Path
from typing import IO, Any, NamedTuple

import torch

from mlab import testing
from mlab.course.engine.checks import MissingExercise, Namespace, checks_for
from mlab.course.engine.manifest import Day, Exercise, get_day
from mlab.course.engine.stubgen import workspace_source
from mlab.errors import MismatchError

__all__ = ["LoadError", "Loaded", "load_target", "main", "run_exercise"]

MAX_OUTPUT = 4000


class LoadError(Exception):
    """The code under check could not be loaded (syntax error, error at import time)."""


def _code_frames(tb: types.TracebackType | None, filenames: set[str]) -> list[str]:
    """Traceback lines for the frames whose file is one of ``filenames`` (the learner's)."""
    lines = []
    for frame in traceback.extract_tb(tb):
        if frame.filename in filenames:
            code = frame.line or linecache.getline(frame.filename, frame.lineno or 0).strip()
            where = (
                Path(frame.filename).name if not frame.filename.startswith("<") else frame.filename
            )
            lines.append(f"  {where}, line {frame.lineno}, in {frame.name}: {code}")
    return lines


def _raised_in(exc: BaseException, files: set[str]) -> str:
    """``code`` if the traceback passes through the code under check, else ``check``."""
    frames = traceback.extract_tb(exc.__traceback__)
    return "code" if any(frame.filename in files for frame in frames) else "check"


_STUB_RAISE = re.compile(r"raise\s+NotImplementedError\b")


def _is_not_started(exc: NotImplementedError, files: set[str]) -> bool:
    """Whether ``exc`` comes from a ``raise NotImplementedError`` statement in the code under
    check (the stub's own line, or the learner's), not from a library it called: torch raises
    NotImplementedError for real bugs ("Cannot copy out of meta tensor")."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames or frames[-1].filename not in files:
        return False
    last = frames[-1]
    line = last.line or linecache.getline(last.filename, last.lineno or 0)
    return bool(_STUB_RAISE.match(line.strip()))


def _notes(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", None) or []
    return "\n".join(notes)


def _describe_error(exc: BaseException, filenames: set[str]) -> str:
    head = f"{type(exc).__name__}: {exc}"
    frames = _code_frames(exc.__traceback__, filenames)
    parts = [head]
    if frames:
        parts.append("raised here in your code:" if len(frames) == 1 else "traceback (your code):")
        parts.extend(frames[-6:])
    notes = _notes(exc)
    if notes:
        parts.append(notes)
    return "\n".join(parts)


def _exec_module(source: str, filename: str, module_name: str) -> types.ModuleType:
    """Run ``source`` as a new module; :class:`LoadError` when it does not parse or raises."""
    module, _ = _load_module(source, filename, module_name, skip_scratch=False)
    return module


# Statements that make a file what it is: when one of them fails, the file cannot be checked.
_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _load_module(
    source: str, filename: str, module_name: str, *, skip_scratch: bool
) -> tuple[types.ModuleType, str]:
    """Run ``source`` as a new module. With ``skip_scratch``, a top-level statement that is
    not an import or a definition (a trial call such as ``print(f(x))``, often a notebook
    cell) and raises is skipped, and the rest of the file still runs: returns the module and
    a warning naming what was skipped."""
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as err:
        shown = Path(filename).name if not filename.startswith("<") else filename
        text = (err.text or "").rstrip("\n")
        caret = ""
        if text and err.offset:
            caret = "\n    " + " " * (err.offset - 1 - (len(text) - len(text.lstrip()))) + "^"
        raise LoadError(
            f"{shown}, line {err.lineno}: SyntaxError: {err.msg}\n    {text.strip()}{caret}\n"
            "Fix this line: until the file parses, no exercise can be checked."
        ) from None
    module = types.ModuleType(module_name)
    module.__file__ = filename
    sys.modules[module_name] = module
    # Make the source visible to tracebacks even for generated (not on disk) files.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    if not skip_scratch:
        units = [(code, True)]
    else:
        tree = ast.parse(source)
        flags = _future_flags(tree)
        units = [
            (
                compile(ast.Module([stmt], []), filename, "exec", flags=flags, dont_inherit=True),
                isinstance(stmt, _DEFINITIONS),
            )
            for stmt in tree.body
        ]
    skipped: list[str] = []
    for unit, essential in units:
        try:
            exec(unit, module.__dict__)
        except BaseException as exc:  # the learner's module-level code may raise anything
            if isinstance(exc, KeyboardInterrupt):
                raise
            if essential or isinstance(exc, ImportError):
                raise LoadError(
                    "Your file raised an error while being imported, before any check ran:\n"
                    + _describe_error(exc, {filename})
                ) from None
            skipped.append(_describe_error(exc, {filename}))
    warning = ""
    if skipped:
        lines = sorted({int(m) for m in re.findall(r", line (\d+), in <module>", "".join(skipped))})
        where = ", ".join(map(str, lines)) if lines else "?"
        warning = (
            f"Top-level code of your file raised (line{'s' * (len(lines) > 1)} {where}), so "
            f"{'those statements were' if len(skipped) > 1 else 'that statement was'} skipped "
            "and the checks ran on the rest of the file:\n"
            + "\n".join(skipped[:3])
            + "\nThe checks run your whole file each time: put trial calls under "
            '`if __name__ == "__main__":`, where they run only when you run the file (or '
            "the cell) yourself."
        )
    return module, warning


def _future_flags(tree: ast.Module) -> int:
    """The compiler flags of the ``from __future__ import ...`` lines at the top of ``tree``,
    which compiling one statement at a time would otherwise lose."""
    flags = 0
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            for alias in stmt.names:
                feature = getattr(__future__, alias.name, None)
                if feature is not None:
                    flags |= feature.compiler_flag
    return flags


def _module_namespace(module: types.ModuleType, day: Day, source: str) -> Namespace:
    values = {ex.name: getattr(module, ex.name) for ex in day.exercises if hasattr(module, ex.name)}
    return Namespace(values, source=source, references=_references(day))


def _available(day: Day) -> list[Exercise]:
    """The day's exercises whose optional packages are installed (the others are skipped)."""
    return [ex for ex in day.exercises if not ex.missing_requirements()]


def _references(day: Day) -> dict[str, Any]:
    """Exercise name -> its reference, looked up when first needed: whatever an exercise
    returns to a check is held to the reference's return annotation (see ``returns``)."""
    return {ex.name: ex.reference for ex in _available(day)}


def _reference_namespace(day: Day) -> Namespace:
    values = {ex.name: ex.reference() for ex in _available(day)}
    return Namespace(values, source="the reference", references=_references(day))


class Loaded(NamedTuple):
    """The code under check, loaded."""

    namespace: Namespace
    files: set[str]  # the file names that count as "the code under check" in tracebacks
    warning: str = ""  # top-level statements of the learner's file that raised and were skipped


def load_target(day: Day, target: dict[str, Any]) -> Loaded:
    """Build the namespace under check and the file names that count as "the code under
    check" in tracebacks. Raises :class:`LoadError` with a message for the learner."""
    kind = target["kind"]
    if kind == "reference":
        files = {
            ex.reference().__code__.co_filename
            for ex in _available(day)
            if hasattr(ex.reference(), "__code__")
        }
        return Loaded(_reference_namespace(day), files)
    if kind == "stub":
        filename = f"<stub of {day.id}>"
        module = _exec_module(workspace_source(day), filename, f"_mlab_stub_{day.id}")
        return Loaded(_module_namespace(module, day, "the generated stub"), {filename})
    if kind == "file":
        path = Path(target["path"]).resolve()
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as err:
            raise LoadError(f"Cannot read {path}: {err.strerror}") from None
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
        # Like `python file.py`: modules beside the learner's file are importable.
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        module, warning = _load_module(
            source, str(path), f"_mlab_ws_{path.stem}_{digest}", skip_scratch=True
        )
        return Loaded(_module_namespace(module, day, path.name), {str(path)}, warning)
    if kind == "mutant":
        exercise = day.exercise(target["exercise"])
        glb = dict(vars(importlib.import_module(exercise.ref_module)))
        filename = f"<mutant {target['label']}>"
        source = target["source"]
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), glb)
        obj = glb[exercise.ref_qualname.rsplit(".", 1)[-1]]
        return Loaded(_reference_namespace(day).replace(exercise.name, obj), {filename})
    raise ValueError(f"unknown target kind {kind!r}")


def _reset_global_state() -> None:
    """Undo global settings a previous exercise may have changed."""
    torch.set_default_dtype(torch.float32)
    torch.set_grad_enabled(True)
    torch.manual_seed(0)


def run_exercise(
    day: Day,
    ns: Namespace,
    exercise_name: str,
    files: set[str],
    emit: Any = None,
) -> dict[str, Any]:
    """Run every check of one exercise, stopping at the first failure. Returns the result."""
    exercise = day.exercise(exercise_name)
    part = day.parts[exercise.part]
    try:
        checks = checks_for(part.checks_module, exercise.name)
    except Exception as exc:
        return {
            "status": "error",
            "message": "The day's checks could not be loaded: this is a bug in the course, "
            f"not in your code. Please report it.\n{type(exc).__name__}: {exc}",
            "origin": "course",
        }
    if not checks:
        return {
            "status": "error",
            "message": f"{exercise.name} has no checks (course bug)",
            "origin": "course",
        }
    out = io.StringIO()
    start = time.perf_counter()
    status, message, check_name, missing, origin = "pass", "", "", False, ""
    _reset_global_state()
    if emit is not None:  # each input as it is tried: a timeout then says which one
        testing.case_listener = lambda what: emit({"event": "case", "description": what})
    with contextlib.redirect_stdout(out):
        for chk in checks:
            check_name = chk.name
            if emit is not None:
                emit({"event": "check", "check": chk.name})
            try:
                chk.fn(ns)
            except NotImplementedError as exc:
                if _is_not_started(exc, files):
                    status, message = "not started", str(exc) or "not implemented yet"
                else:  # a real error that happens to be a NotImplementedError (torch's)
                    status, message = "error", _describe_error(exc, files)
                    origin = _raised_in(exc, files)
                break
            except MissingExercise as exc:
                # Not written yet (or renamed): the report lists these together.
                status, message, missing = "not started", str(exc), True
                break
            except MismatchError as exc:
                status, origin = "fail", "check"
                message = "\n".join(filter(None, [str(exc), _notes(exc)]))
                break
            except AssertionError as exc:
                tb = traceback.extract_tb(exc.__traceback__)
                in_code = bool(tb) and tb[-1].filename in files
                status = "error" if in_code else "fail"
                origin = "code" if in_code else "check"
                message = (
                    _describe_error(exc, files)
                    if in_code
                    else ("\n".join(filter(None, [str(exc) or "assertion failed", _notes(exc)])))
                )
                break
            except RecursionError as exc:
                status = "error"
                message = (
                    "RecursionError: your code recursed too deeply (a function calling "
                    "itself with no base case?)\n" + _describe_error(exc, files)
                )
                origin = _raised_in(exc, files)
                break
            except (Exception, SystemExit) as exc:
                status, message = "error", _describe_error(exc, files)
                origin = _raised_in(exc, files)
                break
    testing.case_listener = None
    printed = out.getvalue()
    if len(printed) > MAX_OUTPUT:
        printed = printed[:MAX_OUTPUT] + f"\n... ({len(printed) - MAX_OUTPUT} more characters)"
    return {
        "status": status,
        "message": message,
        "check": check_name if status != "pass" else "",
        "seconds": time.perf_counter() - start,
        "output": printed,
        "missing": missing,
        "origin": origin,
    }


def main() -> None:
    """Serve jobs from stdin until it closes."""
    proto: IO[str] = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray writes to fd 1 (C code, os.write) go to stderr, not the protocol
    sys.stdout = sys.stderr
    # Without a GPU, Triton kernels (w1d6) run in its interpreter; it must be chosen before
    # triton is first imported (by a checks module).
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    # On a timeout the parent sends SIGUSR1 before killing us: the stacks show where we were.
    faulthandler.register(signal.SIGUSR1, file=2, all_threads=True)  # fd 2: stderr
    # A crash in compiled code (a Triton kernel out of bounds) dumps them too before we die.
    faulthandler.enable(file=2, all_threads=True)

    def emit(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    cache: dict[str, Loaded | LoadError] = {}
    emit({"event": "ready"})
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        job_id = job["id"]

        def emit_job(obj: dict[str, Any], job_id: int = job_id) -> None:
            emit({"id": job_id, **obj})

        day = get_day(job["day"])
        key = json.dumps([job["day"], job["target"]], sort_keys=True)
        if key not in cache:
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    cache[key] = load_target(day, job["target"])
            except LoadError as err:
                cache[key] = err
            # Mutants are used once: do not keep thousands of namespaces alive.
            if job["target"]["kind"] == "mutant":
                loaded = cache.pop(key)
                cache["__last_mutant__"] = loaded
                key = "__last_mutant__"
        loaded = cache[key]
        if isinstance(loaded, LoadError):
            emit_job(
                {
                    "event": "result",
                    "status": "error",
                    "message": str(loaded),
                    "check": "",
                    "seconds": 0.0,
                    "output": "",
                    "origin": "load",
                }
            )
            continue
        emit_job({"event": "begin", "files": sorted(loaded.files)})
        result = run_exercise(day, loaded.namespace, job["exercise"], loaded.files, emit=emit_job)
        emit_job({"event": "result", **result, "warning": loaded.warning})


if __name__ == "__main__":
    main()
